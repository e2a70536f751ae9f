//! `phm demo`: the whole path on a small synthetic network, from a fresh
//! checkout — terminology release, synthetic EMIS/TPP deliveries, ingest, every
//! shipped cohort, a per-practice table and one explanation.
//!
//! Each step is skipped when its output is already there (the release, the
//! landing zone); ingest and the cohort run are idempotent anyway.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use clap::Args;

use super::cohort::Folders;
use super::cohort_run;
use super::{Failure, emit, exit, open_release};
use crate::cohort::explain;
use crate::synth::{SynthConfig, generate};
use crate::terminology::{Release, fixture, import};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Working folder for the release, landing zone, store and outputs.
    #[arg(long, default_value = "demo")]
    pub dir: PathBuf,
    #[arg(long, default_value_t = 6)]
    pub practices: usize,
    #[arg(long, default_value_t = 20_000)]
    pub patients: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The synthetic extracts' date; also the cohorts' index date.
    #[arg(long, default_value = "2026-03-31")]
    pub as_of: NaiveDate,
    #[command(flatten)]
    pub folders: Folders,
}

fn data(e: impl std::fmt::Display) -> Failure {
    Failure::new(exit::DATA, e)
}

fn release(dir: &Path) -> Result<Release, Failure> {
    let out = dir.join("terminology").join("fixture");
    if !out.join(crate::terminology::release::MANIFEST).is_file() {
        let inputs = fixture::inputs(Path::new("terminology/fixture"));
        eprintln!(
            "building the fixture terminology release → {}",
            out.display()
        );
        import::import(&inputs, &out).map_err(|e| {
            Failure::new(
                exit::USAGE,
                format!("{e}; hint: run phm demo from the repository root"),
            )
        })?;
    }
    open_release(&out)
}

pub fn run(args: DemoArgs) -> Result<u8, Failure> {
    std::fs::create_dir_all(&args.dir).map_err(|e| {
        Failure::new(
            exit::USAGE,
            format!(
                "{}: phm cannot use this as the demo's working folder: {e}; hint: --dir takes a folder phm can create and write (not a file)",
                args.dir.display()
            ),
        )
    })?;
    let release = release(&args.dir)?;
    let landing = args.dir.join("landing");
    if !landing.join("ground_truth.json").is_file() {
        eprintln!(
            "synthesising {} patients at {} practices (seed {}) → {}",
            args.patients,
            args.practices,
            args.seed,
            landing.display()
        );
        let _ = std::fs::remove_dir_all(&landing);
        let config = SynthConfig {
            out: landing.clone(),
            practices: args.practices,
            patients: args.patients,
            seed: args.seed,
            emis_share: 0.5,
            deltas: 2,
            as_of: args.as_of,
            defect_rates: SynthConfig::default_defect_rates(),
            without_prescribing: 1,
        };
        generate(&config).map_err(|e| Failure::new(exit::USAGE, e))?;
    }
    let store = args.dir.join("store");
    // The demo's own store, from an earlier phm: rebuilt rather than refused.
    if crate::store::file_without_row_order(&store)
        .map_err(data)?
        .is_some()
        || !crate::store::unrecorded_practices(&store)
            .map_err(data)?
            .is_empty()
    {
        eprintln!(
            "{} was written by an earlier phm; rebuilding it",
            store.display()
        );
        std::fs::remove_dir_all(&store).map_err(|e| data(format!("{}: {e}", store.display())))?;
    }
    eprintln!("ingesting → {}", store.display());
    let subs = crate::ingest::history::Substitutions::from_release(&release);
    let report =
        crate::ingest::run(&landing, &store, Some(&subs)).map_err(super::ingest::failure)?;
    if !report.reconciles() {
        return Err(Failure::new(
            exit::INTERNAL,
            "ingest counts do not reconcile; this is a bug in phm",
        ));
    }
    let keys = cohort_run::all_keys(&args.folders)?;
    let cohorts = cohort_run::load(&keys, &args.folders, &release)?;
    let out = args.dir.join("out");
    eprintln!(
        "running {} cohorts at index date {} → {}",
        cohorts.len(),
        args.as_of,
        out.display()
    );
    let defs: Vec<_> = cohorts.iter().map(|c| c.def.clone()).collect();
    let runs = cohort_run::evaluate(&store, cohorts, Some(args.as_of), &out, release.id(), None)?;
    let mut text = format!(
        "Persons included per practice (index date {}):\n{}",
        args.as_of,
        cohort_run::table(&runs)
    );
    // One example: an included person, from DM_REG when it ran.
    let mut order: Vec<&(NaiveDate, crate::cohort::engine::CohortRun)> = runs.iter().collect();
    order.sort_by_key(|(_, r)| !r.key.starts_with("DM_REG@"));
    for (date, r) in order {
        let Some(def) = defs.iter().find(|d| d.key() == r.key) else {
            continue;
        };
        let Some(person) = explain::first_included(&r.dir).map_err(data)? else {
            continue;
        };
        if let Some(e) = explain::read(&r.dir, &r.key, &person).map_err(data)? {
            text.push_str("\nExample explanation:\n");
            text.push_str(&explain::narrative(def, *date, &e));
            text.push_str(&format!(
                "(phm cohort explain {} --patient {person} --store {} --release {} --index-date {date})\n",
                r.key,
                store.display(),
                args.dir.join("terminology/fixture").display()
            ));
        }
        break;
    }
    text.push_str(&format!("\nOutputs: {}\n", out.display()));
    for (_, r) in &runs {
        text.push_str(&format!("  {}\n", r.dir.display()));
    }
    emit(&text)
}
