//! `phm store remove-practice ODS`: withdraw a practice and delete its data
//! from the store, with an audit record, and name the copies phm cannot
//! delete (published runs, the landing zone).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::{Failure, emit, exit};
use crate::output::audit::{self, AuditRecord};
use crate::pipeline::publish::RunLock;
use crate::pipeline::status::{RunStatus, read_history};
use crate::store::Store;
use crate::store::withdraw::Withdrawal;

#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    pub command: StoreCommand,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Withdraw a practice: delete its data from the store (audited) and
    /// refuse its deliveries from then on.
    RemovePractice(RemovePracticeArgs),
}

#[derive(Debug, Args)]
pub struct RemovePracticeArgs {
    /// The practice's ODS code.
    pub practice: String,
    /// The canonical store.
    #[arg(long)]
    pub store: PathBuf,
    /// Why (e.g. "data-sharing agreement ended 2026-11-30"): recorded in the
    /// audit log and the withdrawal record.
    #[arg(long)]
    pub reason: String,
    /// Remove: without it, only what would be removed is shown.
    #[arg(long)]
    pub yes: bool,
}

pub fn run(args: StoreArgs) -> Result<u8, Failure> {
    match args.command {
        StoreCommand::RemovePractice(a) => remove_practice(a),
    }
}

fn store_failure(e: crate::store::StoreError) -> Failure {
    let code = match e {
        crate::store::StoreError::Locked { .. } => exit::LOCKED,
        _ => exit::DATA,
    };
    Failure::new(code, e)
}

fn remove_practice(args: RemovePracticeArgs) -> Result<u8, Failure> {
    let ods = args.practice.trim().to_string();
    if ods.is_empty() || !ods.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Failure::new(
            exit::USAGE,
            format!("{ods:?} is not an ODS code; hint: give the practice code, e.g. A81001"),
        ));
    }
    if args.reason.trim().is_empty() {
        return Err(Failure::new(
            exit::USAGE,
            "--reason is empty; hint: say why the practice is withdrawn; it is audited",
        ));
    }
    if !args.store.is_dir() {
        return Err(Failure::new(
            exit::USAGE,
            format!(
                "{}: no store here; hint: --store takes the canonical store's folder",
                args.store.display()
            ),
        ));
    }
    // No pipeline run, and no ingest, may be reading or writing the store.
    let _run = RunLock::take(&args.store).map_err(|e| match e {
        crate::pipeline::publish::Error::Locked { .. } => Failure::new(exit::LOCKED, e),
        _ => Failure::new(exit::DATA, e),
    })?;
    let store = Store::open(&args.store).map_err(store_failure)?;
    let holdings = store.holdings(&ods).map_err(store_failure)?;
    let earlier = crate::store::withdraw::withdrawal(&args.store, &ods).map_err(store_failure)?;
    if holdings.folders.is_empty() && earlier.is_none() {
        return Err(Failure::new(
            exit::USAGE,
            format!(
                "{}: holds nothing of practice {ods}; nothing was removed; hint: `phm status --store` and the ingest report name the practices it holds",
                args.store.display()
            ),
        ));
    }
    let copies = retained_copies(&args.store, &ods);
    let what = format!(
        "practice {ods}: {} patients, {} rows in {} files, folders {}",
        holdings.patients,
        holdings.rows,
        holdings.files,
        if holdings.folders.is_empty() {
            "none (already removed)".to_string()
        } else {
            holdings
                .folders
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    if !args.yes {
        emit(&format!("would remove {what}\n{}", copies.text()))?;
        return Err(Failure::new(
            exit::USAGE,
            "nothing was removed; hint: add --yes to withdraw the practice and delete its data from the store",
        ));
    }

    let record = Withdrawal {
        practice: ods.clone(),
        at: super::key::now(),
        user: super::key::user(),
        reason: args.reason.trim().to_string(),
        patients: holdings.patients,
        rows: holdings.rows,
        files: holdings.files,
    };
    // The withdrawal record goes first (ingest refuses the practice from
    // then on), then the audit record; only then is anything deleted.
    store
        .withdraw(earlier.as_ref().unwrap_or(&record))
        .map_err(store_failure)?;
    audit::append(
        &args.store,
        &AuditRecord {
            at: record.at,
            user: record.user.clone(),
            action: "store remove-practice".into(),
            purpose: Some(record.reason.clone()),
            key_id: None,
            practice: Some(ods.clone()),
            subjects: Vec::new(),
            outcome: format!(
                "withdrawn: {} patients, {} rows in {} files removed from the store",
                holdings.patients, holdings.rows, holdings.files
            ),
            detail: Some(copies.summary()),
        },
    )
    .map_err(|e| Failure::new(exit::DATA, e))?;
    store.remove_practice(&ods).map_err(store_failure)?;
    emit(&format!(
        "removed {what}\nwithdrawal recorded in {}; ingest refuses {ods}'s deliveries from now on\naudit record appended to {}\n{}",
        args.store
            .join(crate::store::withdraw::WITHDRAWN_DIR)
            .join(format!("{ods}.json"))
            .display(),
        audit::path(&args.store).display(),
        copies.text()
    ))
}

/// Copies of the practice's data that phm does not delete: published runs
/// that included it, and its landing folder.
struct Copies {
    runs: Vec<PathBuf>,
    /// The practice's folder in the landing zone the last ingest read, and
    /// whether it is there (the report's path may be relative to another folder).
    landing: Option<(PathBuf, bool)>,
}

impl Copies {
    fn text(&self) -> String {
        let mut t = String::new();
        if !self.runs.is_empty() {
            t.push_str("published runs that hold its pseudonymised rows (delete or keep them as your data-sharing agreement says):\n");
            for r in &self.runs {
                t.push_str(&format!("  {}\n", r.display()));
            }
        }
        match &self.landing {
            Some((l, true)) => t.push_str(&format!(
                "its deliveries are still in the landing zone: {} (phm never deletes landing files; remove them)\n",
                l.display()
            )),
            Some((l, false)) => t.push_str(&format!(
                "its deliveries may still be in the landing zone the last ingest read: {} (not found from this folder; check, and remove them)\n",
                l.display()
            )),
            None => {}
        }
        t
    }

    fn summary(&self) -> String {
        format!(
            "retained copies outside the store: {} published runs{}",
            self.runs.len(),
            if self.landing.is_some() {
                ", its landing folder"
            } else {
                ""
            }
        )
    }
}

fn retained_copies(store: &Path, ods: &str) -> Copies {
    let (history, _) = read_history(store).unwrap_or_default();
    let mut runs: Vec<PathBuf> = history
        .into_iter()
        .filter_map(|h| h.run_dir)
        .filter(|d| {
            RunStatus::read(d)
                .map(|s| s.practices.landed.iter().any(|p| p == ods))
                .unwrap_or(false)
        })
        .collect();
    runs.sort();
    runs.dedup();
    let landing = std::fs::read(store.join("reports").join("ingest.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("landing")?.as_str().map(PathBuf::from))
        .map(|l| l.join(ods))
        .map(|l| {
            let there = l.is_dir();
            (l, there)
        });
    Copies { runs, landing }
}
