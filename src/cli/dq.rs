//! `phm dq --store DIR --release DIR --out DIR --as-of DATE [--config FILE] [--practice ODS]…`:
//! per-practice data quality (`docs/quality.md`).

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::Args;

use super::{Failure, emit, exit};
use crate::quality::{self, Config, Error, PracticeStatus};

#[derive(Debug, Args)]
pub struct DqArgs {
    /// Canonical store written by `phm ingest`.
    #[arg(long)]
    pub store: PathBuf,
    /// Compiled terminology release codes are checked against.
    #[arg(long)]
    pub release: PathBuf,
    /// Output folder: dq.json and practice/<ODS>/dq_rows.parquet.
    #[arg(long)]
    pub out: PathBuf,
    /// The date extract freshness is measured to (YYYY-MM-DD); required so a
    /// run is reproducible.
    #[arg(long)]
    pub as_of: NaiveDate,
    /// TOML file: member practices, per-check thresholds and switches.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Assess only this practice (repeatable).
    #[arg(long = "practice")]
    pub practices: Vec<String>,
    /// Where the plans run: `local`, or `ballista://HOST:PORT` (a Ballista
    /// scheduler; phm built with the `ballista` feature; the store on
    /// storage every executor reads).
    #[arg(long, default_value = "local", value_name = "ENGINE")]
    pub engine: crate::session::EngineSpec,
    /// Memory limit for the query engine (e.g. 8GiB, 512MiB or a whole
    /// number of MiB; at least 64 MiB): aggregates and sorts spill beyond
    /// it. No limit when left out.
    #[arg(long, value_name = "SIZE")]
    pub memory_limit: Option<crate::session::MemoryLimit>,
}

/// The exit code and message of a failed assessment; `limit` is the
/// session's memory limit, named when the pool ran out.
pub(super) fn failure(e: Error, limit: Option<usize>) -> Failure {
    if let Error::Engine(df) = &e
        && let Some(detail) = crate::session::out_of_memory(df)
    {
        return Failure::new(
            exit::USAGE,
            crate::session::out_of_memory_message("data-quality", limit, &detail),
        );
    }
    let code = match &e {
        Error::Config { .. } | Error::Usage(_) => exit::USAGE,
        Error::Store(_) => exit::DATA,
        Error::Io { .. } | Error::Engine(_) | Error::Arrow(_) | Error::Internal(_) => {
            exit::INTERNAL
        }
    };
    Failure::new(code, e)
}

pub fn run(args: DqArgs) -> Result<u8, Failure> {
    let config = match &args.config {
        Some(path) => Config::read(path).map_err(|e| failure(e, None))?,
        None => Config::default(),
    };
    let manifest = args.release.join(crate::terminology::release::MANIFEST);
    if !manifest.is_file() {
        return Err(Failure::new(
            exit::USAGE,
            format!(
                "{}: not a compiled release (no {}); hint: --release takes a folder written by `phm terminology import`",
                args.release.display(),
                crate::terminology::release::MANIFEST
            ),
        ));
    }
    let release = crate::terminology::release::read_manifest(&args.release)
        .map_err(|e| Failure::new(exit::DATA, e))?;
    if !args.store.is_dir() {
        // Checked here too so a wrong --store creates no output folder.
        return Err(failure(
            Error::Usage(format!(
                "{}: store not found; hint: --store takes the folder `phm ingest --store` wrote",
                args.store.display()
            )),
            None,
        ));
    }
    // An engine that cannot be reached fails before anything is written.
    let limit = args.memory_limit.map(crate::session::MemoryLimit::bytes);
    let session = super::cohort_run::open_session(&args.engine, limit)?;
    std::fs::create_dir_all(&args.out).map_err(|e| {
        Failure::new(
            exit::USAGE,
            format!(
                "{}: phm cannot write the data-quality report here: {e}; hint: --out takes a folder phm can create and write (not a file)",
                args.out.display()
            ),
        )
    })?;
    let report = quality::run(&quality::Options {
        store: &args.store,
        release: &args.release,
        release_id: &release.release_id,
        out: &args.out,
        as_of: args.as_of,
        config: &config,
        practices: &args.practices,
        session: Some(&session),
    })
    .map_err(|e| match e {
        // On a cluster, a query that fails in the engine is most often the
        // cluster's doing (an executor lost, the scheduler gone, a store
        // the executors cannot read).
        Error::Engine(df) if session.distributed() && crate::session::out_of_memory(&df).is_none() => {
            Failure::new(
                exit::INFRASTRUCTURE,
                format!(
                    "the data-quality query failed on {}: {}; hint: check the scheduler's and executors' logs (a file an executor cannot open means the store or OUT is not on storage every executor reads), then rerun; dq.json was not written",
                    session.spec(),
                    crate::session::one_line(&df)
                ),
            )
        }
        e => failure(e, session.memory_limit()),
    })?;
    emit(&report.summary())?;
    emit(&format!("report: {}\n", args.out.join("dq.json").display()))?;
    let unavailable: Vec<&str> = report
        .practices
        .iter()
        .filter(|p| p.status != PracticeStatus::Ok)
        .map(|p| p.practice.as_str())
        .collect();
    if !unavailable.is_empty() {
        eprintln!(
            "error: {} practice(s) could not be assessed ({}); their checks are not_evaluated, the others were assessed",
            unavailable.len(),
            unavailable.join(", ")
        );
        return Ok(exit::DATA);
    }
    Ok(exit::OK)
}
