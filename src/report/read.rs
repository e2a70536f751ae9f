//! Gathers the report's [`Model`] from a finished run's network aggregates and
//! `dq.json`: the I/O edge of the report.
//!
//! Reads `OUT/run.json` (the completion marker: without it the run did not
//! finish and nothing is read), `OUT/manifest.json`, each cohort's
//! `network/<ID>@<v>/counts.parquet` and, when present, `quality.parquet`,
//! and `DQ/dq.json`. Nothing else: no membership, no practice tier.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, NaiveDateTime};
use datafusion::arrow::array::{Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::DataType;
use serde::Deserialize;

use super::{
    CheckCell, CheckInfo, CheckStatus, CohortReport, DefinitionSummary, DeliveryRow, Error, Model,
    PracticeOverview, Result, RunSummary, TextTable,
};
use crate::cohort::engine::marker::{RUN_FILE, RunRecord};
use crate::output::lineage::{MANIFEST_FILE, RunManifest};

/// What the report is made from.
pub struct Inputs<'a> {
    /// A cohort run's `--out`, written with a key.
    pub run: &'a Path,
    /// A `phm dq --out` folder.
    pub dq: &'a Path,
    /// Scope the report to one practice.
    pub practice: Option<&'a str>,
}

/// `dq.json`, as far as the report reads it (unknown fields are ignored, so a
/// newer layout with more fields still reads).
#[derive(Debug, Deserialize)]
struct DqFile {
    as_of: String,
    practices: Vec<DqPractice>,
}

#[derive(Debug, Deserialize)]
struct DqPractice {
    practice: String,
    status: String,
    supplier: Option<String>,
    latest_extracted_at: Option<String>,
    rows_file: Option<String>,
    checks: Vec<DqCheck>,
}

#[derive(Debug, Deserialize)]
struct DqCheck {
    id: String,
    category: String,
    measure: String,
    description: String,
    numerator: Option<u64>,
    denominator: Option<u64>,
    percentage: Option<f64>,
    days: Option<i64>,
    threshold: f64,
    status: String,
    reason: Option<String>,
    rows_listed: Option<u64>,
}

fn input(path: &Path) -> impl Fn(String) -> Error + '_ {
    move |message| Error::Input {
        path: path.to_path_buf(),
        message,
    }
}

fn json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| input(path)(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| input(path)(format!("unreadable: {e}")))
}

/// Reads the model of the report on `inputs`.
pub fn read(inputs: &Inputs<'_>) -> Result<Model> {
    let marker = inputs.run.join(RUN_FILE);
    if !marker.is_file() {
        return Err(Error::Usage(format!(
            "{}: no {RUN_FILE}: not the folder of a finished cohort run (interrupted, failed or still running); hint: --run takes the --out of a `phm cohort run … --key-file FILE` that finished; run it again",
            inputs.run.display()
        )));
    }
    let manifest_path = inputs.run.join(MANIFEST_FILE);
    if !manifest_path.is_file() {
        return Err(Error::Usage(format!(
            "{}: no {MANIFEST_FILE}: the run wrote no shareable outputs; hint: run `phm cohort run` with --key-file or --key-env",
            inputs.run.display()
        )));
    }
    let dq_path = inputs.dq.join("dq.json");
    if !dq_path.is_file() {
        return Err(Error::Usage(format!(
            "{}: not found; hint: --dq takes the folder `phm dq --out` wrote",
            dq_path.display()
        )));
    }
    let record: RunRecord = json(&marker)?;
    let manifest: RunManifest = json(&manifest_path)?;
    let dq: DqFile = json(&dq_path)?;

    let known: BTreeSet<&str> = dq
        .practices
        .iter()
        .map(|p| p.practice.as_str())
        .chain(manifest.practices.iter().map(|p| p.practice.as_str()))
        .collect();
    if let Some(ods) = inputs.practice
        && !known.contains(ods)
    {
        return Err(Error::Usage(format!(
            "practice {ods} is not in the run's store or {} (known: {}); hint: --practice takes one of the known practice codes",
            dq_path.display(),
            known.iter().copied().collect::<Vec<_>>().join(", ")
        )));
    }
    let in_scope = |p: &str| inputs.practice.is_none_or(|s| s == p);

    let checks = check_infos(&dq);
    let as_of = NaiveDate::parse_from_str(&dq.as_of, "%Y-%m-%d").ok();
    let practices = known
        .iter()
        .filter(|p| in_scope(p))
        .map(|ods| overview(ods, &dq, &manifest, &checks, as_of))
        .collect();

    let mut cohorts = Vec::new();
    for c in &record.cohorts {
        let dir = inputs.run.join("network").join(&c.cohort);
        let counts_path = dir.join("counts.parquet");
        if !counts_path.is_file() {
            return Err(Error::Usage(format!(
                "{}: not found; hint: the run wrote no network tier for {}; run `phm cohort run` with --key-file or --key-env",
                counts_path.display(),
                c.cohort
            )));
        }
        let network = crate::cohort::engine::NETWORK;
        let counts = scoped(text_table(&counts_path)?, |p| p == network || in_scope(p));
        let quality_path = dir.join("quality.parquet");
        let quality = if quality_path.is_file() {
            Some(scoped(text_table(&quality_path)?, in_scope))
        } else {
            None
        };
        cohorts.push(CohortReport {
            key: c.cohort.clone(),
            index_date: c.index_date.to_string(),
            status: c.status.clone(),
            counts,
            quality,
        });
    }

    Ok(Model {
        run: summary(&manifest, in_scope),
        as_of: dq.as_of.clone(),
        scope: inputs.practice.map(str::to_string),
        practices,
        checks,
        cohorts,
    })
}

/// Every check id of `dq.json`, in the order the practices list them.
fn check_infos(dq: &DqFile) -> Vec<CheckInfo> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for c in dq.practices.iter().flat_map(|p| &p.checks) {
        if seen.insert(c.id.clone()) {
            out.push(CheckInfo {
                id: c.id.clone(),
                category: c.category.clone(),
                measure: c.measure.clone(),
                description: c.description.clone(),
            });
        }
    }
    out
}

fn status(text: &str) -> CheckStatus {
    match text {
        "pass" => CheckStatus::Pass,
        "fail" => CheckStatus::Fail,
        "disabled" => CheckStatus::Disabled,
        _ => CheckStatus::NotEvaluated,
    }
}

fn overview(
    ods: &str,
    dq: &DqFile,
    manifest: &RunManifest,
    checks: &[CheckInfo],
    as_of: Option<NaiveDate>,
) -> PracticeOverview {
    let entry = dq.practices.iter().find(|p| p.practice == ods);
    let cells: Vec<Option<CheckCell>> = checks
        .iter()
        .map(|info| {
            let c = entry?.checks.iter().find(|c| c.id == info.id)?;
            Some(CheckCell {
                status: status(&c.status),
                numerator: c.numerator,
                denominator: c.denominator,
                percentage: c.percentage,
                days: c.days,
                threshold: c.threshold,
                reason: c.reason.clone(),
                rows_listed: c.rows_listed,
            })
        })
        .collect();
    let latest = entry.and_then(|p| p.latest_extracted_at.clone());
    let freshness_days = latest
        .as_deref()
        .and_then(|t| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S").ok())
        .zip(as_of)
        .map(|(t, d)| (d - t.date()).num_days());
    PracticeOverview {
        practice: ods.to_string(),
        status: entry.map_or("unknown".to_string(), |p| p.status.clone()),
        supplier: entry.and_then(|p| p.supplier.clone()),
        latest_extracted_at: latest,
        freshness_days,
        rows_file: entry.and_then(|p| p.rows_file.clone()),
        checks: cells,
        unavailable_for: manifest
            .definitions
            .iter()
            .filter(|d| d.unavailable.iter().any(|u| u == ods))
            .map(|d| d.cohort.clone())
            .collect(),
    }
}

fn summary(m: &RunManifest, in_scope: impl Fn(&str) -> bool) -> RunSummary {
    let definitions = m
        .definitions
        .iter()
        .map(|d| {
            let valuesets = d
                .valuesets
                .as_object()
                .map(|vs| {
                    vs.iter()
                        .map(|(id, v)| {
                            let text = |k: &str| match &v[k] {
                                serde_json::Value::String(s) => s.clone(),
                                serde_json::Value::Null => String::new(),
                                other => other.to_string(),
                            };
                            (id.clone(), text("version"), text("hash"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            DefinitionSummary {
                cohort: d.cohort.clone(),
                index_date: d.index_date.to_string(),
                path: d.path.display().to_string(),
                sha256: d.sha256.clone(),
                valuesets,
                unavailable: d.unavailable.clone(),
            }
        })
        .collect();
    let deliveries = m
        .practices
        .iter()
        .filter(|p| in_scope(&p.practice))
        .flat_map(|p| {
            p.deliveries.iter().map(|d| DeliveryRow {
                practice: p.practice.clone(),
                extract_id: d.extract_id.clone(),
                kind: format!("{:?}", d.kind).to_lowercase(),
                extracted_at: d.extracted_at.format("%Y-%m-%dT%H:%M:%S").to_string(),
            })
        })
        .collect();
    RunSummary {
        run_id: m.run_id.clone(),
        phm_version: m.phm_version.clone(),
        release: m.release.clone(),
        key_id: m.key_id.clone(),
        purpose: m.purpose.clone(),
        disclosure: m.disclosure.map(|p| (p.threshold, p.base)),
        output_files: m.outputs.len(),
        output_bytes: m.outputs.iter().map(|o| o.bytes).sum(),
        definitions,
        deliveries,
    }
}

/// A small network file as text: every column cast to Utf8.
fn text_table(path: &Path) -> Result<TextTable> {
    let batch: RecordBatch =
        crate::output::publish::read_small(path).map_err(|e| input(path)(e.to_string()))?;
    let mut columns = Vec::new();
    let mut arrays = Vec::new();
    for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
        let utf8 = datafusion::arrow::compute::cast(array, &DataType::Utf8)
            .map_err(|e| input(path)(format!("column {}: {e}", field.name())))?;
        columns.push(field.name().clone());
        arrays.push(utf8);
    }
    let strings: Vec<&StringArray> = arrays
        .iter()
        .map(|a| {
            a.as_any()
                .downcast_ref::<StringArray>()
                .expect("cast to Utf8")
        })
        .collect();
    let rows = (0..batch.num_rows())
        .map(|r| {
            strings
                .iter()
                .map(|s| (!s.is_null(r)).then(|| s.value(r).to_string()))
                .collect()
        })
        .collect();
    Ok(TextTable { columns, rows })
}

/// The rows of `table` whose `practice` passes `keep`.
fn scoped(mut table: TextTable, keep: impl Fn(&str) -> bool) -> TextTable {
    if let Some(c) = table.columns.iter().position(|n| n == "practice") {
        table.rows.retain(|r| r[c].as_deref().is_some_and(&keep));
    }
    table
}

/// Where a report goes by default: `OUT/report.html`.
pub fn default_out(run: &Path) -> PathBuf {
    run.join(super::html::FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_keeps_the_practice_and_tolerates_a_table_without_one() {
        let t = TextTable {
            columns: vec!["practice".into(), "n".into()],
            rows: vec![
                vec![Some("A1".into()), Some("5".into())],
                vec![Some("B2".into()), Some("suppressed".into())],
                vec![None, Some("1".into())],
            ],
        };
        let kept = scoped(t.clone(), |p| p == "B2");
        assert_eq!(kept.rows, vec![t.rows[1].clone()]);
        let none = TextTable {
            columns: vec!["n".into()],
            rows: vec![vec![Some("1".into())]],
        };
        assert_eq!(scoped(none.clone(), |_| false), none);
    }

    #[test]
    fn unknown_statuses_are_not_evaluated_never_pass() {
        let cases = [
            ("pass", CheckStatus::Pass),
            ("fail", CheckStatus::Fail),
            ("disabled", CheckStatus::Disabled),
            ("not_evaluated", CheckStatus::NotEvaluated),
            ("something_new", CheckStatus::NotEvaluated),
        ];
        for (text, want) in cases {
            assert_eq!(status(text), want, "{text}");
        }
    }

    #[test]
    fn a_deserialised_dq_file_ignores_fields_it_does_not_know() {
        let text = r#"{"as_of":"2026-03-31","schema_version":9,"new":1,"practices":[]}"#;
        let dq: DqFile = serde_json::from_str(text).unwrap();
        assert_eq!(dq.as_of, "2026-03-31");
    }
}
