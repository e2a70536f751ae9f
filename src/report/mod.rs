//! The network report, `phm report` (`docs/report.md`): one self-contained
//! HTML page from a finished cohort run and a `phm dq` report.
//!
//! The page is built in two steps. [`read`] gathers a small [`Model`] from
//! files that are already network aggregates: `OUT/manifest.json`,
//! `OUT/run.json`, each cohort's `network/<ID>@<v>/counts.parquet` (and
//! `quality.parquet` when a run wrote it) and `DQ/dq.json`. [`html::render`]
//! turns the model into a `String`, a pure function with no I/O.
//!
//! Invariants:
//! - Only aggregates are read: never `membership`, explanations, the
//!   practice tier or the engine's identifiable folders, so no pseudonym,
//!   person key or NHS number can reach the page. The report may leave the
//!   practices, like `network/`.
//! - Counts keep their three text states: a number, `suppressed`,
//!   `unavailable`; each is shown differently, and none is drawn as 0.
//! - Every string that reaches the page is escaped ([`html::escape`]).
//! - The page loads nothing: inline CSS, inline SVG, no script.

mod charts;
pub mod html;
mod read;

use std::path::PathBuf;

pub use read::{Inputs, default_out, read};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command named something that is not there or not usable.
    #[error("{0}")]
    Usage(String),
    /// A file that should be there cannot be read or parsed.
    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub run: RunSummary,
    /// The date freshness is measured to (from `dq.json`).
    pub as_of: String,
    /// The practice the report is scoped to (`--practice`), if any.
    pub scope: Option<String>,
    /// Sorted by practice code.
    pub practices: Vec<PracticeOverview>,
    /// The scorecard's checks, in `dq.json`'s order.
    pub checks: Vec<CheckInfo>,
    pub cohorts: Vec<CohortReport>,
}

/// The run's lineage, from `manifest.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    pub run_id: String,
    pub phm_version: String,
    pub release: String,
    pub key_id: String,
    pub purpose: Option<String>,
    /// `(suppress up to, round to)`; `None`: disclosure control was off.
    pub disclosure: Option<(u64, u64)>,
    pub output_files: usize,
    pub output_bytes: u64,
    pub definitions: Vec<DefinitionSummary>,
    pub deliveries: Vec<DeliveryRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DefinitionSummary {
    pub cohort: String,
    pub index_date: String,
    pub path: String,
    pub sha256: String,
    /// `(id, version, expansion hash)`.
    pub valuesets: Vec<(String, String, String)>,
    pub unavailable: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    pub practice: String,
    pub extract_id: String,
    pub kind: String,
    pub extracted_at: String,
}

/// One practice of the network, as `dq.json` and the run see it.
#[derive(Debug, Clone, PartialEq)]
pub struct PracticeOverview {
    pub practice: String,
    /// `ok`, `no_delivery`, `rejected`, `empty`; `unknown` when `dq.json`
    /// does not list a practice the run knows.
    pub status: String,
    pub supplier: Option<String>,
    pub latest_extracted_at: Option<String>,
    /// Days from the latest extraction to the as-of date.
    pub freshness_days: Option<i64>,
    /// The rows file, relative to the dq folder.
    pub rows_file: Option<String>,
    /// One per [`Model::checks`], same order; `None`: not in `dq.json`.
    pub checks: Vec<Option<CheckCell>>,
    /// Cohorts that could not be evaluated at the practice.
    pub unavailable_for: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CheckInfo {
    pub id: String,
    pub category: String,
    /// `percent` or `days`.
    pub measure: String,
    pub description: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    Pass,
    Fail,
    NotEvaluated,
    Disabled,
}

/// One check at one practice.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckCell {
    pub status: CheckStatus,
    pub numerator: Option<u64>,
    pub denominator: Option<u64>,
    pub percentage: Option<f64>,
    pub days: Option<i64>,
    pub threshold: f64,
    pub reason: Option<String>,
    pub rows_listed: Option<u64>,
}

/// A text table read from a network file: column names and cells (`None`:
/// null). Columns phm does not know are kept, so a newer run's file still
/// renders.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TextTable {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl TextTable {
    /// The cell of `column` in `row`; `None` for a null or a missing column.
    pub fn get(&self, row: usize, column: &str) -> Option<&str> {
        let c = self.columns.iter().position(|n| n == column)?;
        self.rows.get(row)?.get(c)?.as_deref()
    }
}

/// One cohort of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct CohortReport {
    /// `ID@version`.
    pub key: String,
    pub index_date: String,
    /// `complete` or `partial` (from `run.json`).
    pub status: String,
    /// `counts.parquet`, as written.
    pub counts: TextTable,
    /// `quality.parquet` (practice, check_id, rows, persons); `None` when the
    /// run wrote none.
    pub quality: Option<TextTable>,
}

/// A practice's position on a cohort's funnel plot that makes it an outlier.
pub const OUTLYING: &[&str] = &["above_95", "below_95", "above_99_8", "below_99_8"];
