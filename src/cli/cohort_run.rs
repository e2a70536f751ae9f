//! `phm cohort run` and `phm cohort explain`: evaluate cohorts over a store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use clap::{Args, ValueEnum};

use super::cohort::{Folders, catalogue, failure};
use super::{Failure, emit, exit, open_release};
use crate::cohort::engine::{self, CohortRun, RunOptions};
use crate::cohort::model::IndexDate;
use crate::cohort::{self, Cohort, explain, file};
use crate::terminology::Release;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Cohorts to run: `ID` (latest version) or `ID@VERSION`; `--all` runs every shipped cohort.
    #[arg(required_unless_present = "all")]
    pub cohorts_wanted: Vec<String>,
    /// Run the latest version of every cohort in the cohorts folder.
    #[arg(long)]
    pub all: bool,
    /// Canonical store written by `phm ingest`.
    #[arg(long)]
    pub store: PathBuf,
    /// Compiled terminology release the value sets are expanded against.
    #[arg(long)]
    pub release: PathBuf,
    /// Index date for cohorts whose definition takes it as a parameter.
    #[arg(long)]
    pub index_date: Option<NaiveDate>,
    /// Output folder: one sub-folder per cohort (`ID@VERSION/`).
    #[arg(long)]
    pub out: PathBuf,
    /// Memory limit for the query engine, in MiB: sorts and aggregates spill
    /// beyond it, and the run's intermediate results are held in memory up to
    /// half of it (4 GiB without a limit), on disk past that.
    #[arg(long)]
    pub memory_limit_mib: Option<usize>,
    #[command(flatten)]
    pub folders: Folders,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The cohort: `ID` or `ID@VERSION`.
    pub cohort: String,
    /// The person key (as in the cohort's membership file).
    #[arg(long)]
    pub patient: String,
    /// Canonical store written by `phm ingest`.
    #[arg(long)]
    pub store: PathBuf,
    /// Compiled terminology release the value sets are expanded against.
    #[arg(long)]
    pub release: PathBuf,
    /// Index date for cohorts whose definition takes it as a parameter.
    #[arg(long)]
    pub index_date: Option<NaiveDate>,
    /// `text`: a narrative for people; `json`: the same for tools.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[command(flatten)]
    pub folders: Folders,
}

fn usage(e: impl std::fmt::Display) -> Failure {
    Failure::new(exit::USAGE, e)
}

/// Loads and binds the cohorts asked for.
pub fn load(keys: &[String], folders: &Folders, release: &Release) -> Result<Vec<Cohort>, Failure> {
    let catalogue = catalogue(folders)?;
    let mut out = Vec::new();
    for key in keys {
        let def = file::load(&folders.cohorts, key, &catalogue).map_err(failure)?;
        out.push(cohort::bind(def, &catalogue, release).map_err(failure)?);
    }
    Ok(out)
}

/// Every cohort id in the folder, latest version each.
pub fn all_keys(folders: &Folders) -> Result<Vec<String>, Failure> {
    Ok(file::list(&folders.cohorts)
        .map_err(failure)?
        .into_iter()
        .map(|(id, _)| id)
        .collect())
}

/// The index date of `cohort` in this run.
pub fn index_date(cohort: &Cohort, given: Option<NaiveDate>) -> Result<NaiveDate, Failure> {
    match (cohort.def.index_date, given) {
        (IndexDate::Fixed(d), None) => Ok(d),
        (IndexDate::Fixed(d), Some(g)) if d == g => Ok(d),
        (IndexDate::Fixed(d), Some(g)) => Err(usage(format!(
            "{} has a fixed index date {d}; --index-date {g} contradicts it; hint: drop --index-date or use a version whose index date is a parameter",
            cohort.def.key()
        ))),
        (IndexDate::Parameter, Some(g)) => Ok(g),
        (IndexDate::Parameter, None) => Err(usage(format!(
            "{} takes its index date as a parameter; hint: pass --index-date YYYY-MM-DD",
            cohort.def.key()
        ))),
    }
}

/// Runs `cohorts` (grouped by index date, one engine run per group).
pub fn evaluate(
    store: &Path,
    cohorts: Vec<Cohort>,
    index: Option<NaiveDate>,
    out: &Path,
    release_id: &str,
    memory_limit: Option<usize>,
) -> Result<Vec<(NaiveDate, CohortRun)>, Failure> {
    let mut groups: BTreeMap<NaiveDate, Vec<Cohort>> = BTreeMap::new();
    for c in cohorts {
        groups.entry(index_date(&c, index)?).or_default().push(c);
    }
    let mut runs = Vec::new();
    for (date, group) in groups {
        let opts = RunOptions {
            index_date: date,
            out: out.to_path_buf(),
            person: None,
            memory_limit,
            work_memory: None,
            release_id: release_id.to_string(),
        };
        for r in engine::run(store, &group, &opts).map_err(failure)? {
            runs.push((date, r));
        }
    }
    Ok(runs)
}

/// Practices down, cohorts across; `unavailable` where a practice cannot answer.
pub fn table(runs: &[(NaiveDate, CohortRun)]) -> String {
    let mut practices: Vec<&str> = runs
        .iter()
        .flat_map(|(_, r)| r.per_practice.iter().map(|(p, _)| p.as_str()))
        .collect();
    practices.sort();
    practices.dedup();
    // Column headings: the cohort id, or ID@VERSION when one id runs twice.
    let ids: Vec<&str> = runs
        .iter()
        .map(|(_, r)| r.key.split('@').next().unwrap_or(&r.key))
        .collect();
    let heads: Vec<&str> = runs
        .iter()
        .zip(&ids)
        .map(|((_, r), id)| {
            if ids.iter().filter(|x| *x == id).count() > 1 {
                r.key.as_str()
            } else {
                id
            }
        })
        .collect();
    let cell_width = |h: &str| h.len().max(11);
    let mut out = format!("{:<8}", "practice");
    for h in &heads {
        out.push_str(&format!(" {h:>w$}", w = cell_width(h)));
    }
    out.push('\n');
    let row = |out: &mut String, label: &str, cells: Vec<String>| {
        out.push_str(&format!("{label:<8}"));
        for (h, cell) in heads.iter().zip(cells) {
            out.push_str(&format!(" {cell:>w$}", w = cell_width(h)));
        }
        out.push('\n');
    };
    for p in &practices {
        let cells = runs
            .iter()
            .map(|(_, r)| match r.per_practice.iter().find(|(q, _)| q == p) {
                Some((_, Some(n))) => match r.undetermined_per_practice.get(*p) {
                    Some(u) => format!("{n} +{u}?"),
                    None => n.to_string(),
                },
                Some((_, None)) => "unavailable".to_string(),
                None => "no data".to_string(),
            })
            .collect();
        row(&mut out, p, cells);
    }
    let totals = runs
        .iter()
        .map(|(_, r)| {
            let n = if r.undetermined > 0 {
                format!("{} +{}?", r.included, r.undetermined)
            } else {
                r.included.to_string()
            };
            if r.unavailable.is_empty() {
                n
            } else {
                format!("{n}*")
            }
        })
        .collect();
    row(&mut out, "network", totals);
    if runs.iter().any(|(_, r)| r.undetermined > 0) {
        out.push_str(
            "+N? persons undetermined: the data that decides them was refused, is missing or is ambiguous; counted beside the included, never in them\n",
        );
    }
    if runs.iter().any(|(_, r)| !r.unavailable.is_empty()) {
        out.push_str(
            "* excludes practices unavailable for the cohort: their count is unknown, not zero\n",
        );
    }
    out
}

pub fn run(args: RunArgs) -> Result<u8, Failure> {
    let release = open_release(&args.release)?;
    let keys = if args.all {
        all_keys(&args.folders)?
    } else {
        args.cohorts_wanted.clone()
    };
    let cohorts = load(&keys, &args.folders, &release)?;
    let runs = evaluate(
        &args.store,
        cohorts,
        args.index_date,
        &args.out,
        release.id(),
        args.memory_limit_mib.map(|m| m * 1024 * 1024),
    )?;
    let mut out = table(&runs);
    for (date, r) in &runs {
        out.push_str(&format!(
            "{}: index {date}, {} in population, {} included, {} undetermined → {}\n",
            r.key,
            r.in_population,
            r.included,
            r.undetermined,
            r.dir.display()
        ));
        for w in &r.warnings {
            eprintln!("warning: {}: {w}", r.key);
        }
    }
    emit(&out)?;
    let unavailable = runs.iter().any(|(_, r)| !r.unavailable.is_empty());
    if unavailable {
        eprintln!(
            "warning: some practices were unavailable for some cohorts (see the table); their counts are not zero but unknown"
        );
        return Ok(exit::DATA);
    }
    Ok(exit::OK)
}

pub fn explain(args: ExplainArgs) -> Result<u8, Failure> {
    let release = open_release(&args.release)?;
    let cohort = load(std::slice::from_ref(&args.cohort), &args.folders, &release)?
        .pop()
        .expect("one cohort loaded");
    let date = index_date(&cohort, args.index_date)?;
    let work = tempfile::Builder::new()
        .prefix("phm-explain-")
        .tempdir()
        .map_err(|e| Failure::new(exit::DATA, format!("temporary folder: {e}")))?;
    let opts = RunOptions {
        index_date: date,
        out: work.path().to_path_buf(),
        person: Some(args.patient.clone()),
        memory_limit: None,
        work_memory: None,
        release_id: release.id().to_string(),
    };
    let runs = engine::run(&args.store, std::slice::from_ref(&cohort), &opts).map_err(failure)?;
    let dir = &runs[0].dir;
    let Some(e) = explain::read(dir, &cohort.def.key(), &args.patient).map_err(failure)? else {
        return Err(Failure::new(
            exit::DATA,
            format!(
                "person key {} is not in the store at {}; hint: person keys are in a run's membership file",
                args.patient,
                args.store.display()
            ),
        ));
    };
    match args.format {
        Format::Text => emit(&explain::narrative(&cohort.def, date, &e)),
        Format::Json => emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&e).expect("explanation serialises")
        )),
    }
}
