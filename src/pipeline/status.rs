//! `status.json`: what a pipeline run did, for schedulers and people.
//!
//! Written into the run's folder before it is published, so a published run
//! always has one; `phm status` reads them.

use std::path::{Path, PathBuf};

use chrono::{NaiveDate, NaiveDateTime};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const STATUS_FILE: &str = "status.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every expected practice delivered and was ingested; every stage ran.
    Succeeded,
    /// Published, but some expected practices are missing or were rejected:
    /// their patients are not in the outputs (`practices`).
    Partial,
}

impl Outcome {
    /// As `status.json` and the history name it.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Partial => "partial",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PracticeOutcomes {
    /// The pipeline's expected practices.
    pub expected: Vec<String>,
    /// Practice folders found in the landing zone.
    pub landed: Vec<String>,
    /// Expected, with no folder in the landing zone.
    pub missing: Vec<String>,
    /// Refused by ingest (the store is unchanged for them), with the reason.
    pub rejected: Vec<Rejected>,
    /// In the landing zone but not expected: ingested, and named here.
    pub unexpected: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Rejected {
    pub practice: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Stage {
    pub stage: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RunStatus {
    pub run_id: String,
    pub pipeline: PathBuf,
    pub outcome: Outcome,
    /// The process exit code the run ended with.
    pub exit_code: u8,
    #[schemars(with = "String")]
    pub as_of: NaiveDate,
    #[schemars(with = "String")]
    pub index_date: NaiveDate,
    pub release: String,
    pub cohorts: Vec<String>,
    pub practices: PracticeOutcomes,
    pub stages: Vec<Stage>,
    /// When the run was published (UTC).
    #[schemars(with = "String")]
    pub published_at: NaiveDateTime,
    pub phm_version: String,
}

impl RunStatus {
    pub fn read(run_dir: &Path) -> std::io::Result<RunStatus> {
        let bytes = std::fs::read(run_dir.join(STATUS_FILE))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    pub fn write(&self, run_dir: &Path) -> std::io::Result<()> {
        let mut text = serde_json::to_string_pretty(self).expect("status serialises");
        text.push('\n');
        std::fs::write(run_dir.join(STATUS_FILE), text)
    }
}

/// The store's record of pipeline runs, newest last: `STORE/reports/runs.jsonl`.
pub const HISTORY_FILE: &str = "runs.jsonl";

/// One line of the store's run history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HistoryEntry {
    /// When the run ended (UTC).
    #[schemars(with = "String")]
    pub at: NaiveDateTime,
    pub run_id: String,
    /// `succeeded`, `partial` or `failed`.
    pub outcome: String,
    pub exit_code: u8,
    pub pipeline: PathBuf,
    /// The published run's folder; none when the run failed.
    pub run_dir: Option<PathBuf>,
    pub missing: Vec<String>,
    pub rejected: Vec<String>,
    /// Why the run failed: what, where, what to do next.
    pub error: Option<String>,
}

/// Appends `entry` to the store's run history.
pub fn append_history(store: &Path, entry: &HistoryEntry) -> std::io::Result<()> {
    use std::io::Write;
    let dir = store.join("reports");
    std::fs::create_dir_all(&dir)?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(HISTORY_FILE))?;
    let mut line = serde_json::to_string(entry).expect("history entry serialises");
    line.push('\n');
    file.write_all(line.as_bytes())?;
    file.sync_all()
}

/// The store's run history, oldest first (none: no run yet). A line that
/// cannot be read (a crash while appending) is skipped and counted.
pub fn read_history(store: &Path) -> std::io::Result<(Vec<HistoryEntry>, usize)> {
    let text = match std::fs::read_to_string(store.join("reports").join(HISTORY_FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let mut entries = Vec::new();
    let mut unreadable = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str(line) {
            Ok(e) => entries.push(e),
            Err(_) => unreadable += 1,
        }
    }
    Ok((entries, unreadable))
}
