//! `phm cohort run` and `phm cohort explain`: evaluate cohorts over a store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use clap::{Args, ValueEnum};

use super::cohort::{Folders, catalogue, failure};
use super::key::KeyArgs;
use super::{Failure, emit, exit, open_release};
use crate::cohort::engine::{self, CohortRun, RunOptions};
use crate::cohort::model::IndexDate;
use crate::cohort::{self, Cohort, explain, file};
use crate::session::{EngineSpec, MemoryLimit, Session};
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
    /// Memory limit for the query engine (e.g. 8GiB, 512MiB or a whole
    /// number of MiB; at least 64 MiB): sorts and aggregates spill beyond
    /// it, and the run's intermediate results are held in memory up to half
    /// of it (4 GiB without a limit), on disk past that. Writing the two
    /// output tiers runs under the same limit. No limit when left out.
    #[arg(long, alias = "memory-limit-mib", value_name = "SIZE")]
    pub memory_limit: Option<MemoryLimit>,
    /// Where the plans run: `local`, or `ballista://HOST:PORT` (a Ballista
    /// scheduler; phm built with the `ballista` feature; the store and OUT on
    /// storage every executor reads).
    #[arg(long, default_value = "local", value_name = "ENGINE")]
    pub engine: EngineSpec,
    /// With a pseudonym key, the run also writes OUT/network/ (pseudonymised,
    /// disclosure-controlled: may leave the practices), OUT/practice/<ODS>/
    /// (each practice's explanations, for its own clinicians) and
    /// OUT/manifest.json, and records the run in the store's audit log.
    #[command(flatten)]
    pub key: KeyArgs,
    /// Why the run is made: recorded in the manifest and the audit log.
    #[arg(long)]
    pub purpose: Option<String>,
    /// Network counts from 1 to this are written as suppressed.
    #[arg(long, default_value_t = 7, value_name = "N")]
    pub suppress_up_to: u64,
    /// Network counts are rounded to the nearest multiple of this.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub round_to: u64,
    /// Write network counts exactly, without suppression or rounding (said
    /// loudly, and recorded in the manifest).
    #[arg(long)]
    pub no_disclosure_control: bool,
    /// With a key, also keep the engine's identifiable per-cohort folders
    /// (OUT/<ID>@<version>/, store person keys) beside the two tiers, for
    /// `phm cohort explain --run`. Without it they are removed once the tiers
    /// are written, so OUT holds nothing that names a person by store key.
    #[arg(long)]
    pub keep_identifiable: bool,
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
    /// The person: a pseudonym from the network outputs (with the key that
    /// made it), or the store's person key (inside the store's boundary).
    #[arg(long)]
    pub patient: String,
    /// With a pseudonym: the key it was made with; the explanation is audited.
    #[command(flatten)]
    pub key: KeyArgs,
    /// Why the explanation is asked for: recorded in the audit log.
    #[arg(long)]
    pub purpose: Option<String>,
    /// Canonical store written by `phm ingest`: the person is evaluated afresh.
    #[arg(long, required_unless_present = "run", conflicts_with = "run")]
    pub store: Option<PathBuf>,
    /// Instead of evaluating the store, read the explanation from the
    /// outputs of a finished `phm cohort run` in this folder (its `--out`).
    #[arg(long)]
    pub run: Option<PathBuf>,
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

/// What a run needs to write its shareable tiers.
pub struct Shareable<'a> {
    pub store: &'a Path,
    pub out: &'a Path,
    pub key: &'a crate::output::pseudonym::Key,
    /// `None`: disclosure control off.
    pub policy: Option<crate::output::disclosure::Policy>,
    pub purpose: Option<String>,
    /// Cohort key → definition file.
    pub definitions: &'a BTreeMap<String, PathBuf>,
    /// Cohort key → the codes its criteria read.
    pub codes: &'a BTreeMap<String, crate::output::context::CohortCodes>,
    /// The release folder and its id.
    pub release: &'a Path,
    pub release_id: &'a str,
    /// The run's query memory pool in bytes; `None`: unbounded.
    pub memory_limit: Option<usize>,
    /// Record the stages' timings in the manifest (off: the same results
    /// give the same bytes).
    pub timings: bool,
}

impl Shareable<'_> {
    /// Writes the two tiers, `OUT/manifest.json` and the audit record.
    pub fn publish(
        &self,
        runs: &[(NaiveDate, CohortRun)],
        evaluated_secs: f64,
    ) -> cohort::Result<crate::output::lineage::RunManifest> {
        let t = std::time::Instant::now();
        let publication = crate::output::publish::Publication {
            store: self.store,
            release: self.release,
            out: self.out,
            key: self.key,
            policy: self.policy,
            memory_limit: self.memory_limit,
        };
        let none = crate::output::context::CohortCodes::default();
        let cohorts: Vec<crate::output::publish::Evaluated> = runs
            .iter()
            .map(|(date, r)| crate::output::publish::Evaluated {
                index: *date,
                results: crate::output::publish::CohortResults {
                    key: &r.key,
                    dir: &r.dir,
                    available: &r.available,
                },
                unavailable: &r.unavailable,
                codes: self.codes.get(&r.key).unwrap_or(&none),
            })
            .collect();
        crate::output::publish::publish(&publication, &cohorts)
            .map_err(|e| cohort::Error::Store(e.to_string()))?;
        self.manifest(
            runs,
            [
                ("evaluate", evaluated_secs),
                ("publish", t.elapsed().as_secs_f64()),
            ],
        )
        .map_err(cohort::Error::Store)
    }

    fn manifest(
        &self,
        runs: &[(NaiveDate, CohortRun)],
        timings: [(&str, f64); 2],
    ) -> Result<crate::output::lineage::RunManifest, String> {
        use crate::output::{audit, lineage};
        let (key, policy, definitions, release_id) =
            (self.key, self.policy, self.definitions, self.release_id);
        let mut defs = Vec::new();
        for (date, r) in runs {
            let path = definitions.get(&r.key).cloned().unwrap_or_default();
            let run_json: serde_json::Value = std::fs::read(r.dir.join("run.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            defs.push(lineage::Definition {
                cohort: r.key.clone(),
                index_date: *date,
                sha256: lineage::file_hash(&path).map_err(|e| e.to_string())?,
                path,
                valuesets: run_json["valuesets"].clone(),
                unavailable: r.unavailable.clone(),
            });
        }
        let mut m = lineage::RunManifest {
            run_id: String::new(),
            phm_version: env!("CARGO_PKG_VERSION").to_string(),
            release: release_id.to_string(),
            definitions: defs,
            practices: lineage::practices(self.store).map_err(|e| e.to_string())?,
            disclosure: policy,
            key_id: key.id().to_string(),
            purpose: self.purpose.clone(),
            timings: if self.timings {
                timings.iter().map(|(k, v)| (k.to_string(), *v)).collect()
            } else {
                Default::default()
            },
            outputs: Vec::new(),
        };
        m.run_id = lineage::run_id(&m);
        for tier in ["network", "practice"] {
            let root = self.out.join(tier);
            if root.exists() {
                for mut f in lineage::outputs(&root, &[]).map_err(|e| e.to_string())? {
                    f.path = Path::new(tier).join(&f.path);
                    m.outputs.push(f);
                }
            }
        }
        let path = self.out.join(lineage::MANIFEST_FILE);
        let mut text = serde_json::to_string_pretty(&m).expect("manifest serialises");
        text.push('\n');
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        audit::append(
            self.store,
            &audit::AuditRecord {
                at: super::key::now(),
                user: super::key::user(),
                action: "cohort run".into(),
                purpose: self.purpose.clone(),
                key_id: Some(m.key_id.clone()),
                practice: None,
                subjects: runs.iter().map(|(_, r)| r.key.clone()).collect(),
                outcome: "done".into(),
                detail: Some(format!(
                    "run {}; disclosure {}; outputs in {}",
                    m.run_id,
                    policy.map_or("OFF".to_string(), |p| format!(
                        "suppress 1-{}, round to {}",
                        p.threshold, p.base
                    )),
                    self.out.display()
                )),
            },
        )
        .map_err(|e| e.to_string())?;
        Ok(m)
    }
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

/// Cohort key → the codes its criteria read.
pub fn codes_of(cohorts: &[Cohort]) -> BTreeMap<String, crate::output::context::CohortCodes> {
    cohorts
        .iter()
        .map(|c| (c.def.key(), crate::output::context::CohortCodes::of(c)))
        .collect()
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

/// Where a run keeps the engine's identifiable per-cohort folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identifiable {
    /// In `OUT/<ID>@<version>/`: a run without a key, or one asked to keep them.
    Keep,
    /// In `OUT/.engine/`, removed once `then` has written the tiers: a run
    /// with a key leaves nothing in OUT that names a person by store key.
    Remove,
}

/// The folder the engine's identifiable results go to while a run that
/// removes them is under way.
pub const ENGINE_DIR: &str = ".engine";

/// Runs `cohorts` (grouped by index date, one engine run per group), then
/// `then` on the results, before the run's completion marker is written.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_then(
    store: &Path,
    cohorts: Vec<Cohort>,
    index: Option<NaiveDate>,
    out: &Path,
    identifiable: Identifiable,
    release_id: &str,
    session: &Session,
    then: impl FnOnce(&[(NaiveDate, CohortRun)]) -> cohort::Result<()>,
) -> Result<Vec<(NaiveDate, CohortRun)>, Failure> {
    let engine_out = match identifiable {
        Identifiable::Keep => out.to_path_buf(),
        Identifiable::Remove => out.join(ENGINE_DIR),
    };
    let mut groups: BTreeMap<NaiveDate, Vec<Cohort>> = BTreeMap::new();
    for c in cohorts {
        groups.entry(index_date(&c, index)?).or_default().push(c);
    }
    let groups: Vec<(Vec<Cohort>, RunOptions)> = groups
        .into_iter()
        .map(|(date, group)| {
            let opts = RunOptions {
                index_date: date,
                out: engine_out.clone(),
                person: None,
                memory_limit: None,
                work_memory: None,
                release_id: release_id.to_string(),
                session: Some(session.clone()),
                explain_plans: explain_plans(),
            };
            (group, opts)
        })
        .collect();
    engine::run_all_then(store, out, &groups, |runs| {
        then(runs)?;
        if identifiable == Identifiable::Remove {
            std::fs::remove_dir_all(&engine_out).map_err(|source| cohort::Error::Io {
                path: engine_out.clone(),
                source,
            })?;
        }
        Ok(())
    })
    .map_err(|e| match e {
        // On a cluster, a query that fails in the engine is most often the
        // cluster's doing (an executor lost, the scheduler gone).
        cohort::Error::Engine(e) if session.distributed() => Failure::new(
            exit::INFRASTRUCTURE,
            format!(
                "the query failed on {}: {}; hint: check the scheduler's and executors' logs (a file an executor cannot open means the store or OUT is not on storage every executor reads), then rerun; nothing was published",
                session.spec(),
                crate::session::one_line(&e)
            ),
        ),
        e => failure(e),
    })
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
    let key = args.key.load()?;
    let policy = if args.no_disclosure_control {
        if key.is_some() {
            eprintln!(
                "WARNING: disclosure control is OFF: network counts are exact, small numbers included; do not share these outputs outside the practices; this is recorded in manifest.json"
            );
        }
        None
    } else {
        Some(
            crate::output::disclosure::Policy::new(args.suppress_up_to, args.round_to)
                .map_err(usage)?,
        )
    };
    let definitions: BTreeMap<String, PathBuf> = cohorts
        .iter()
        .map(|c| (c.def.key(), c.def.path.clone()))
        .collect();
    let codes = codes_of(&cohorts);
    let session = open_session(&args.engine, args.memory_limit.map(MemoryLimit::bytes))?;
    let started = std::time::Instant::now();
    let mut published = None;
    let identifiable = if key.is_none() || args.keep_identifiable {
        Identifiable::Keep
    } else {
        Identifiable::Remove
    };
    let runs = evaluate_then(
        &args.store,
        cohorts,
        args.index_date,
        &args.out,
        identifiable,
        release.id(),
        &session,
        |runs| {
            let Some(key) = &key else { return Ok(()) };
            let shareable = Shareable {
                store: &args.store,
                out: &args.out,
                key,
                policy,
                purpose: args.purpose.clone(),
                definitions: &definitions,
                codes: &codes,
                release: &args.release,
                release_id: release.id(),
                memory_limit: args.memory_limit.map(MemoryLimit::bytes),
                timings: true,
            };
            published = Some(shareable.publish(runs, started.elapsed().as_secs_f64())?);
            Ok(())
        },
    )?;
    let mut out = table(&runs);
    for (date, r) in &runs {
        let written = match identifiable {
            Identifiable::Keep => r.dir.clone(),
            Identifiable::Remove => args.out.join("network").join(&r.key),
        };
        out.push_str(&format!(
            "{}: index {date}, {} in population, {} included, {} undetermined → {}\n",
            r.key,
            r.in_population,
            r.included,
            r.undetermined,
            written.display()
        ));
        for w in &r.warnings {
            eprintln!("warning: {}: {w}", r.key);
        }
    }
    match &published {
        Some(m) => out.push_str(&format!(
            "shareable: {} (pseudonymised, disclosure {}); per practice: {}; manifest: {} (run {})\n",
            args.out.join("network").display(),
            if m.disclosure.is_some() { "controlled" } else { "OFF" },
            args.out.join("practice").display(),
            args.out.join(crate::output::lineage::MANIFEST_FILE).display(),
            m.run_id
        )),
        None => out.push_str(
            "note: no pseudonym key given, so only the identifiable per-cohort folders were written: they hold store person keys and stay inside the store's boundary; pass --key-file or --key-env for shareable outputs\n",
        ),
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

pub fn explain(mut args: ExplainArgs) -> Result<u8, Failure> {
    let release = open_release(&args.release)?;
    // Asked by pseudonym: the explanation names the person by it.
    let mut shown_as = None;
    if let Some(key) = args.key.load()? {
        let store = args.store.clone().ok_or_else(|| {
            usage("a pseudonym is resolved through the store; hint: pass --store with --key-file")
        })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| Failure::new(exit::INTERNAL, e))?;
        let found = runtime
            .block_on(crate::output::reidentify::person_of(
                &store,
                &key,
                &args.patient,
            ))
            .map_err(|e| Failure::new(exit::DATA, e))?;
        crate::output::audit::append(
            &store,
            &crate::output::audit::AuditRecord {
                at: super::key::now(),
                user: super::key::user(),
                action: "cohort explain".into(),
                purpose: args.purpose.clone(),
                key_id: Some(key.id().to_string()),
                practice: found.as_ref().map(|(_, p)| p.clone()),
                subjects: vec![args.cohort.clone(), args.patient.clone()],
                outcome: if found.is_some() { "done" } else { "refused" }.into(),
                detail: None,
            },
        )
        .map_err(|e| Failure::new(exit::USAGE, e))?;
        let Some((person, _)) = found else {
            return Err(Failure::new(
                exit::DATA,
                format!(
                    "no patient in the store at {} has the pseudonym {} under key {}; hint: use the key the network outputs were made with",
                    store.display(),
                    args.patient,
                    key.id()
                ),
            ));
        };
        shown_as = Some(std::mem::replace(&mut args.patient, person));
    }
    let cohort = load(std::slice::from_ref(&args.cohort), &args.folders, &release)?
        .pop()
        .expect("one cohort loaded");
    let (e, date, source) = match (&args.run, &args.store) {
        (Some(out), _) => {
            let dir = out.join(cohort.def.key());
            if !dir.is_dir() && out.join(crate::output::lineage::MANIFEST_FILE).is_file() {
                return Err(usage(format!(
                    "{}: the run in {} was published with a pseudonym key and did not keep its identifiable per-cohort folders; hint: ask by pseudonym (--patient P… --key-file KEY --store STORE), or rerun with --keep-identifiable",
                    dir.display(),
                    out.display()
                )));
            }
            let e = explain::read(&dir, &cohort.def.key(), &args.patient).map_err(failure)?;
            let date = engine::marker::read(out)
                .map_err(failure)?
                .and_then(|r| r.cohorts.into_iter().find(|c| c.cohort == cohort.def.key()))
                .map(|c| c.index_date)
                .ok_or_else(|| {
                    Failure::new(
                        exit::DATA,
                        format!("{}: no index date recorded", dir.display()),
                    )
                })?;
            (e, date, format!("the run in {}", out.display()))
        }
        (None, Some(store)) => {
            let date = index_date(&cohort, args.index_date)?;
            let work = tempfile::Builder::new()
                .prefix("phm-explain-")
                .tempdir()
                .map_err(|e| Failure::new(exit::INTERNAL, format!("temporary folder: {e}")))?;
            let opts = RunOptions {
                index_date: date,
                out: work.path().to_path_buf(),
                person: Some(args.patient.clone()),
                memory_limit: None,
                work_memory: None,
                release_id: release.id().to_string(),
                session: None,
                explain_plans: explain_plans(),
            };
            let runs = engine::run(store, std::slice::from_ref(&cohort), &opts).map_err(failure)?;
            let e =
                explain::read(&runs[0].dir, &cohort.def.key(), &args.patient).map_err(failure)?;
            (e, date, format!("the store at {}", store.display()))
        }
        (None, None) => unreachable!("clap requires --store or --run"),
    };
    let e = e.map(|mut e| {
        if let Some(p) = &shown_as {
            e.person_key = p.clone();
        }
        e
    });
    let Some(e) = e else {
        return Err(Failure::new(
            exit::DATA,
            format!(
                "person key {} is not in {source}; hint: person keys are in a run's membership file",
                args.patient,
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

/// `PHM_ENGINE_EXPLAIN` set: the engine logs its plans with their metrics
/// (at debug level; each such query runs twice).
pub fn explain_plans() -> bool {
    std::env::var_os("PHM_ENGINE_EXPLAIN").is_some()
}

/// The session `--engine` names; one that cannot start is an
/// infrastructure failure, before anything is written.
pub fn open_session(spec: &EngineSpec, memory_limit: Option<usize>) -> Result<Session, Failure> {
    Session::open(spec, memory_limit).map_err(|e| {
        let code = match e {
            crate::session::SessionError::NotBuilt(_) => exit::USAGE,
            _ => exit::INFRASTRUCTURE,
        };
        Failure::new(code, e.to_string())
    })
}
