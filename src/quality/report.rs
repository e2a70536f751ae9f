//! `dq.json`: the report's types, its JSON Schema (`docs/dq.schema.json`) and
//! the human summary.
//!
//! The report carries counts only. Offending rows are named by source
//! location in each practice's `practice/<ODS>/dq_rows.parquet`, never by
//! identity. A practice that cannot be assessed has a status other than `ok`
//! and every check `not_evaluated` with null figures: never 0 %.

use std::fmt::Write as _;

use serde::Serialize;

use super::checks::{Category, CheckDef, Measure};

/// Version of the `dq.json` layout; bump it on any change to these types.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[schemars(
    title = "phm dq report",
    description = "Per-practice data quality of a phm store (docs/quality.md)"
)]
pub struct DqReport {
    pub schema_version: u32,
    /// The date freshness is measured to (YYYY-MM-DD).
    pub as_of: String,
    /// The store assessed, as given on the command line.
    pub store: String,
    /// The terminology release codes were checked against.
    pub release_id: String,
    /// The config file, when one was given.
    pub config: Option<String>,
    /// Checks switched off by the config (reported as `disabled`).
    pub disabled_checks: Vec<String>,
    /// Most offending rows listed per check and practice in `dq_rows.parquet`.
    pub rows_cap: u64,
    /// Sorted by practice code.
    pub practices: Vec<PracticeDq>,
}

/// Whether a practice could be assessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PracticeStatus {
    /// The practice holds data and was assessed.
    Ok,
    /// A member practice with nothing in the store: no delivery arrived.
    NoDelivery,
    /// The last ingest refused the practice's delivery.
    Rejected,
    /// Deliveries were ingested but hold no patients.
    Empty,
}

impl PracticeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PracticeStatus::Ok => "ok",
            PracticeStatus::NoDelivery => "no_delivery",
            PracticeStatus::Rejected => "rejected",
            PracticeStatus::Empty => "empty",
        }
    }
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PracticeDq {
    /// ODS code.
    pub practice: String,
    pub status: PracticeStatus,
    /// `emis` or `tpp`; null when nothing was ingested.
    pub supplier: Option<String>,
    /// Latest extraction time of the ingested deliveries (YYYY-MM-DDTHH:MM:SS).
    pub latest_extracted_at: Option<String>,
    /// Canonical tables the practice holds no rows of.
    pub capability_gaps: Vec<String>,
    /// The rows file, relative to the output folder; null when none was written.
    pub rows_file: Option<String>,
    pub checks: Vec<CheckResult>,
}

/// The outcome of one check for one practice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Pass,
    Fail,
    /// No figure: the practice could not be assessed, it lacks the table, or
    /// no row is eligible (the `reason` says which).
    NotEvaluated,
    /// Switched off by the config.
    Disabled,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CheckResult {
    pub id: String,
    pub category: Category,
    pub measure: Measure,
    pub description: String,
    /// Offending rows (percent checks).
    pub numerator: Option<u64>,
    /// Rows the check applies to (percent checks).
    pub denominator: Option<u64>,
    /// numerator / denominator × 100, rounded to 3 decimals.
    pub percentage: Option<f64>,
    /// The figure of a days check.
    pub days: Option<i64>,
    /// Passes when the figure is at most this (percent or days).
    pub threshold: f64,
    pub status: CheckStatus,
    /// Why the check has no figure.
    pub reason: Option<String>,
    /// Offending rows listed in the rows file (at most `rows_cap`).
    pub rows_listed: Option<u64>,
}

impl CheckResult {
    fn blank(def: &CheckDef, threshold: f64, status: CheckStatus, reason: Option<String>) -> Self {
        CheckResult {
            id: def.id.to_string(),
            category: def.category,
            measure: def.measure,
            description: def.description.to_string(),
            numerator: None,
            denominator: None,
            percentage: None,
            days: None,
            threshold,
            status,
            reason,
            rows_listed: None,
        }
    }

    pub fn not_evaluated(def: &CheckDef, threshold: f64, reason: String) -> Self {
        Self::blank(def, threshold, CheckStatus::NotEvaluated, Some(reason))
    }

    pub fn disabled(def: &CheckDef, threshold: f64) -> Self {
        Self::blank(def, threshold, CheckStatus::Disabled, None)
    }

    /// A percent check; an empty denominator gives no figure, never 0 %.
    pub fn ratio(def: &CheckDef, threshold: f64, numerator: u64, denominator: u64) -> Self {
        if denominator == 0 {
            return Self::not_evaluated(def, threshold, "no eligible rows".into());
        }
        let pct = numerator as f64 * 100.0 / denominator as f64;
        CheckResult {
            numerator: Some(numerator),
            denominator: Some(denominator),
            percentage: Some((pct * 1000.0).round() / 1000.0),
            status: if pct <= threshold {
                CheckStatus::Pass
            } else {
                CheckStatus::Fail
            },
            ..Self::blank(def, threshold, CheckStatus::Pass, None)
        }
    }

    pub fn days(def: &CheckDef, threshold: f64, days: i64) -> Self {
        CheckResult {
            days: Some(days),
            status: if days as f64 <= threshold {
                CheckStatus::Pass
            } else {
                CheckStatus::Fail
            },
            ..Self::blank(def, threshold, CheckStatus::Pass, None)
        }
    }
}

/// The JSON Schema of `dq.json`, as committed in `docs/dq.schema.json`.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(DqReport);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serialises");
    text.push('\n');
    text
}

impl DqReport {
    /// One line per practice: status, supplier, failed and evaluated checks.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<8} {:<11} {:<5} {:>6} {:>9}  failing",
            "practice", "status", "supp", "failed", "evaluated"
        );
        for p in &self.practices {
            let evaluated = p
                .checks
                .iter()
                .filter(|c| matches!(c.status, CheckStatus::Pass | CheckStatus::Fail))
                .count();
            let failing: Vec<&str> = p
                .checks
                .iter()
                .filter(|c| c.status == CheckStatus::Fail)
                .map(|c| c.id.as_str())
                .collect();
            let _ = writeln!(
                out,
                "{:<8} {:<11} {:<5} {:>6} {:>9}  {}",
                p.practice,
                p.status.as_str(),
                p.supplier.as_deref().unwrap_or("-"),
                failing.len(),
                evaluated,
                failing.join(" ")
            );
        }
        out
    }
}
