//! Per-practice data quality (`phm dq`): how far each practice's data can be
//! trusted, check by check, in the Kahn framework OHDSI's
//! DataQualityDashboard uses (conformance, completeness, plausibility).
//!
//! Invariants:
//! - a practice that cannot be assessed is reported as `no_delivery`,
//!   `rejected` or `empty`, and its checks as `not_evaluated` with null
//!   figures: never as 0 %. A check with no eligible row has no figure either;
//! - the checks are DataFusion plans over the store's Parquet (`queries`);
//!   only per-practice aggregates are collected;
//! - `dq.json` carries counts; offending rows are named by source location
//!   (source table, source row id, extract id) in the practice's own
//!   `practice/<ODS>/dq_rows.parquet`, never by identity;
//! - no clock: the as-of date is an input.
//!
//! Reference: `docs/quality.md`; schema: `docs/dq.schema.json`.

pub mod checks;
pub mod config;
pub(crate) mod queries;
pub mod report;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

pub use config::Config;
pub use report::{CheckResult, CheckStatus, DqReport, PracticeDq, PracticeStatus};

use crate::canonical::CanonicalTable;
use crate::session::Session;
use crate::store::PracticeState;
use checks::{CHECKS, CheckDef, Measure, Subject};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}:{line}:{column}: {message}; hint: {hint}", path = path.display())]
    Config {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        hint: String,
    },
    /// The command asked for something that is not there; nothing was written.
    #[error("{0}")]
    Usage(String),
    /// The store cannot be read consistently.
    #[error("{0}")]
    Store(String),
    #[error("{path}: {source}", path = path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("data-quality query failed: {0}")]
    Engine(#[from] datafusion::error::DataFusionError),
    #[error("data-quality query failed: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Most offending rows listed per check and practice.
pub const ROWS_CAP: usize = 1000;

/// The rows file of a practice, relative to the output folder.
pub fn rows_file(practice: &str) -> String {
    format!("practice/{practice}/dq_rows.parquet")
}

/// What one `phm dq` run assesses.
pub struct Options<'a> {
    pub store: &'a Path,
    pub release: &'a Path,
    pub release_id: &'a str,
    pub out: &'a Path,
    pub as_of: NaiveDate,
    pub config: &'a Config,
    /// Only these practices (all when empty).
    pub practices: &'a [String],
    /// Where the plans run; `None`: this machine.
    pub session: Option<&'a Session>,
}

/// What the store and the last ingest say about one practice.
struct Known {
    state: Option<PracticeState>,
    /// The last ingest refused it; `true` when its folder held no delivery.
    rejected: Option<bool>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Every practice the store, the last ingest report or the config names.
fn known_practices(store: &Path, config: &Config) -> Result<BTreeMap<String, Known>> {
    let mut out: BTreeMap<String, Known> = BTreeMap::new();
    let dir = store.join("practices");
    if dir.is_dir() {
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let path = entry.map_err(io(&dir))?.path();
            if !path.is_dir() {
                continue;
            }
            let state = PracticeState::read(&path).map_err(|e| Error::Store(e.to_string()))?;
            let ods = path.file_name().expect("a folder has a name");
            out.insert(
                ods.to_string_lossy().into_owned(),
                Known {
                    state,
                    rejected: None,
                },
            );
        }
    }
    let report = store.join("reports").join("ingest.json");
    if report.is_file() {
        let bytes = std::fs::read(&report).map_err(io(&report))?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Store(format!(
                "{}: unreadable ingest report: {e}; hint: run `phm ingest` on the store again to rewrite it",
                report.display()
            ))
        })?;
        for p in value["practices"].as_array().into_iter().flatten() {
            let Some(ods) = p["practice"].as_str() else {
                continue;
            };
            if p["status"] == "rejected" {
                // ingest's `NoDeliveries` error: the practice folder was there, empty.
                let empty = p["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("holds no deliveries"));
                out.entry(ods.to_string())
                    .or_insert(Known {
                        state: None,
                        rejected: None,
                    })
                    .rejected = Some(empty);
            }
        }
    }
    for ods in &config.practices {
        out.entry(ods.clone()).or_insert(Known {
            state: None,
            rejected: None,
        });
    }
    Ok(out)
}

fn status_of(known: &Known, patients: u64) -> PracticeStatus {
    match (&known.state, known.rejected) {
        (None, Some(true)) | (None, None) => PracticeStatus::NoDelivery,
        (_, Some(_)) => PracticeStatus::Rejected,
        (Some(_), None) if patients == 0 => PracticeStatus::Empty,
        (Some(_), None) => PracticeStatus::Ok,
    }
}

/// Checks the store is there and whole, before anything is read.
fn open_store(store: &Path) -> Result<()> {
    if !store.is_dir() {
        return Err(Error::Usage(format!(
            "{}: store not found; hint: --store takes the folder `phm ingest --store` wrote",
            store.display()
        )));
    }
    if !store.join("canonical").is_dir() && !store.join("practices").is_dir() {
        return Err(Error::Usage(format!(
            "{}: not a phm store (no canonical/ or practices/ folder); hint: run `phm ingest --store {}` first",
            store.display(),
            store.display()
        )));
    }
    let journal = store.join(".journal");
    if journal.is_dir()
        && std::fs::read_dir(&journal)
            .map_err(io(&journal))?
            .next()
            .is_some()
    {
        return Err(Error::Store(format!(
            "{}: an ingest commit was interrupted; hint: run `phm ingest` on this store once to complete it, then run phm dq again",
            store.display()
        )));
    }
    Ok(())
}

/// Assesses the store and writes `dq.json` and the rows files under `out`.
pub fn run(opts: &Options<'_>) -> Result<DqReport> {
    open_store(opts.store)?;
    let known = known_practices(opts.store, opts.config)?;
    for asked in opts.practices {
        if !known.contains_key(asked) {
            let names: Vec<&str> = known.keys().map(String::as_str).collect();
            return Err(Error::Usage(format!(
                "practice {asked} is not in the store {} nor in its last ingest report; hint: practices known: {}",
                opts.store.display(),
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )));
        }
    }
    let local;
    let session = match opts.session {
        Some(s) => s,
        None => {
            local = Session::local(None).map_err(|e| Error::Internal(e.to_string()))?;
            &local
        }
    };
    session.block_on(assess(opts, known, session.ctx().clone()))
}

async fn assess(
    opts: &Options<'_>,
    known: BTreeMap<String, Known>,
    ctx: datafusion::prelude::SessionContext,
) -> Result<DqReport> {
    // A failed run must not leave an earlier run's report beside its own
    // partial rows files: the report goes first, and comes back last.
    let report_path = opts.out.join("dq.json");
    if report_path.exists() {
        std::fs::remove_file(&report_path).map_err(io(&report_path))?;
    }
    let sources = queries::Sources::new(ctx, opts.store, opts.release);
    let mut counts = queries::Counts::new();
    let mut rows: BTreeMap<(String, CanonicalTable), u64> = BTreeMap::new();
    for table in CanonicalTable::ALL {
        if !sources.has(table) {
            continue;
        }
        let _span = tracing::info_span!("dq", table = table.name()).entered();
        let (c, r) = sources.counts(table).await?;
        counts.extend(c);
        rows.extend(r.into_iter().map(|(p, n)| ((p, table), n)));
    }
    let quarantined = sources.quarantined().await?;

    let mut practices = Vec::new();
    for (ods, k) in &known {
        if !opts.practices.is_empty() && !opts.practices.contains(ods) {
            continue;
        }
        let held = |t: CanonicalTable| rows.get(&(ods.clone(), t)).copied().unwrap_or(0);
        let status = status_of(k, held(CanonicalTable::Patients));
        let held_tables: Vec<CanonicalTable> = CanonicalTable::ALL
            .into_iter()
            .filter(|t| held(*t) > 0)
            .collect();
        let gaps: Vec<String> = CanonicalTable::ALL
            .into_iter()
            .filter(|t| !held_tables.contains(t))
            .map(|t| t.name().to_string())
            .collect();
        let mut results = Vec::new();
        for def in CHECKS {
            let threshold = opts.config.threshold(def.id);
            let result = if !opts.config.enabled(def.id) {
                CheckResult::disabled(def, threshold)
            } else if status != PracticeStatus::Ok {
                CheckResult::not_evaluated(
                    def,
                    threshold,
                    format!("practice status {}", status.as_str()),
                )
            } else {
                let ctx = Practice {
                    ods,
                    state: k.state.as_ref().expect("an ok practice has a state"),
                    held_tables: &held_tables,
                    loaded: CanonicalTable::ALL.into_iter().map(held).sum(),
                    quarantined: quarantined.get(ods).copied().unwrap_or(0),
                    as_of: opts.as_of,
                };
                evaluate(def, threshold, &ctx, &counts)
            };
            results.push(result);
        }
        let mut rows_file = None;
        let relative = self::rows_file(ods);
        let path = opts.out.join(&relative);
        // A previous run's rows must not outlive the practice's status.
        if path.exists() {
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
        if status == PracticeStatus::Ok {
            let enabled = |id: &str| opts.config.enabled(id);
            sources
                .write_rows(ods, &held_tables, &enabled, ROWS_CAP, &path)
                .await?;
            if path.exists() {
                rows_file = Some(relative);
            }
        }
        let latest = k.state.as_ref().map(|s| s.capability.latest_extracted_at);
        practices.push(PracticeDq {
            practice: ods.clone(),
            status,
            supplier: k.state.as_ref().map(|s| s.supplier.as_str().to_string()),
            latest_extracted_at: latest.map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string()),
            capability_gaps: if k.state.is_some() { gaps } else { Vec::new() },
            rows_file,
            checks: results,
        });
    }
    let report = DqReport {
        schema_version: report::SCHEMA_VERSION,
        as_of: opts.as_of.to_string(),
        store: opts.store.display().to_string(),
        release_id: opts.release_id.to_string(),
        config: opts.config.path.as_ref().map(|p| p.display().to_string()),
        disabled_checks: opts.config.disabled.clone(),
        rows_cap: ROWS_CAP as u64,
        practices,
    };
    let mut json = serde_json::to_string_pretty(&report).expect("the report serialises");
    json.push('\n');
    let partial = opts.out.join(".dq.json.partial");
    std::fs::write(&partial, json).map_err(io(&partial))?;
    std::fs::rename(&partial, &report_path).map_err(io(&report_path))?;
    Ok(report)
}

/// What a practice-level check reads.
struct Practice<'a> {
    ods: &'a str,
    state: &'a PracticeState,
    held_tables: &'a [CanonicalTable],
    loaded: u64,
    quarantined: u64,
    as_of: NaiveDate,
}

fn evaluate(
    def: &CheckDef,
    threshold: f64,
    p: &Practice<'_>,
    counts: &queries::Counts,
) -> CheckResult {
    match def.subject {
        Subject::Table(table) => {
            if !p.held_tables.contains(&table) {
                return CheckResult::not_evaluated(
                    def,
                    threshold,
                    format!(
                        "the practice holds no {} rows (capability gap)",
                        table.name()
                    ),
                );
            }
            match counts.get(&(p.ods.to_string(), def.id.to_string())) {
                Some(&(n, d)) => {
                    let mut r = CheckResult::ratio(def, threshold, n, d);
                    if r.numerator.is_some() {
                        r.rows_listed = Some(n.min(ROWS_CAP as u64));
                    }
                    r
                }
                None => CheckResult::not_evaluated(def, threshold, "no eligible rows".into()),
            }
        }
        Subject::Practice => match (def.id, def.measure) {
            ("practice.extract_age", Measure::Days) => {
                let latest = p.state.capability.latest_extracted_at.date();
                CheckResult::days(def, threshold, (p.as_of - latest).num_days())
            }
            ("practice.quarantine_rate", _) => {
                CheckResult::ratio(def, threshold, p.quarantined, p.loaded + p.quarantined)
            }
            ("practice.capability_gaps", _) => {
                let all = CanonicalTable::ALL.len() as u64;
                CheckResult::ratio(def, threshold, all - p.held_tables.len() as u64, all)
            }
            (other, _) => unreachable!("no evaluation for practice check {other}"),
        },
    }
}
