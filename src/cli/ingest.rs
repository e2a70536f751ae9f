//! `phm ingest --landing DIR --store DIR`

use std::path::PathBuf;

use clap::Args;

use super::progress::Progress;
use super::{Failure, emit, exit};
use crate::ingest::engine::MemoryLimit;
use crate::ingest::{self, IngestError, Limits};
use crate::store::StoreError;

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Landing zone: one folder per practice ODS code, one sub-folder per delivery.
    #[arg(long)]
    pub landing: PathBuf,
    /// Canonical store to create or update.
    #[arg(long)]
    pub store: PathBuf,
    /// A compiled terminology release: inactive SNOMED CT concepts and previous dm+d
    /// codes are mapped to their active successors (`history_substituted`).
    #[arg(long)]
    pub release: Option<PathBuf>,
    /// Also write the ingest report (JSON) here; it is always written to STORE/reports/ingest.json.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Memory ingest may use (e.g. 2GiB, 512MiB): half for the query engine's
    /// sorts, which spill past it, half for merging deliveries, which split a
    /// table into as many parts as it takes to fit.
    #[arg(long, default_value = "2GiB")]
    pub memory_limit: MemoryLimit,
    /// Where sorts spill past the memory limit [default: STORE/.staging/.spill].
    #[arg(long)]
    pub spill_dir: Option<PathBuf>,
}

/// The exit code of an ingest that could not run: another writer holds the
/// store, the landing zone is wrong, or the store cannot be written.
pub(super) fn failure(e: IngestError) -> Failure {
    match e {
        IngestError::Store(StoreError::Locked { .. }) => Failure::new(exit::LOCKED, e),
        IngestError::NoLanding { .. }
        | IngestError::Store(StoreError::Unusable { .. } | StoreError::Linkage(_))
        | IngestError::Engine(_) => Failure::new(exit::USAGE, e),
        IngestError::Store(_) => Failure::new(exit::DATA, e),
    }
}

pub fn run(args: IngestArgs, progress: Progress) -> Result<u8, Failure> {
    let release = match &args.release {
        Some(dir) => Some(super::open_release(dir)?),
        None => None,
    };
    let substitutions = release
        .as_ref()
        .map(ingest::history::Substitutions::from_release);
    let bar = progress.practices(None);
    let limits = Limits {
        memory: args.memory_limit,
        spill_dir: args.spill_dir.clone(),
    };
    let report = ingest::run_observed(
        &args.landing,
        &args.store,
        substitutions.as_ref(),
        &limits,
        &bar,
    );
    bar.finish();
    let report = report.map_err(failure)?;
    if let Some(path) = &args.report {
        let json = serde_json::to_vec_pretty(&report).expect("report serialises");
        std::fs::write(path, json)
            .map_err(|e| Failure::new(exit::DATA, format!("{}: {e}", path.display())))?;
    }
    let stored = report.stored_counts();
    emit(&format!(
        "{}report: {}\n",
        report.summary_with(&stored),
        args.store.join("reports").join("ingest.json").display()
    ))?;
    if !report.reconciles() {
        return Err(Failure::new(
            exit::INTERNAL,
            "ingest counts do not reconcile (see the report); this is a bug in phm",
        ));
    }
    let unreadable: Vec<&String> = stored
        .iter()
        .filter(|(_, s)| !s.problems.is_empty())
        .map(|(ods, _)| ods)
        .collect();
    if !unreadable.is_empty() {
        eprintln!(
            "error: the store's files for {unreadable:?} cannot be read (see the summary); their counts are unknown, not zero"
        );
        return Ok(exit::DATA);
    }
    let rejected = report.rejected().count();
    if rejected > 0 {
        eprintln!(
            "error: {rejected} practice(s) rejected; the store is unchanged for them, the others were ingested"
        );
        return Ok(exit::DATA);
    }
    Ok(exit::OK)
}
