//! Two tiers from a cohort run's identifiable results (`docs/outputs.md`):
//!
//! - `network/<ID>@<version>/` may leave the practices: keyed pseudonyms,
//!   registered practice, 5-year age band, sex and verdicts per person, and
//!   disclosure-controlled counts, attrition and rule combinations. No date
//!   of birth, no event date, no source row id, no free text, no person key.
//! - `practice/<ODS>/<ID>@<version>/` is for that practice's own clinicians
//!   (direct care): its patients' explanations with the evidence event and
//!   its near misses, by pseudonym and the practice's own patient id.
//!
//! The engine's results are keyed by the store's person key. One pass over
//! them, a DataFusion plan joined to the store's patients, computes each
//! registered person's pseudonym as the batches stream by and writes an
//! identity file (person key → pseudonym, patient id, age band, sex) into
//! the run's work folder; every output is then a plan joining that file,
//! with the person key dropped. The work folder is removed afterwards.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::JoinType;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::functions::string::expr_fn::concat;
use datafusion::functions_aggregate::expr_fn::{max, min};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::*;
use futures::StreamExt;

use super::context::{self, CohortCodes};
use super::disclosure::{Policy, Shown};
use super::pseudonym::Key;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("publishing {what}: {source}")]
    Query {
        what: String,
        source: datafusion::error::DataFusionError,
    },
    #[error("publishing cohorts in context: {0}")]
    Context(#[from] super::context::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn query(what: &str) -> impl FnOnce(datafusion::error::DataFusionError) -> Error + '_ {
    move |source| Error::Query {
        what: what.to_string(),
        source,
    }
}

/// Where the engine's identifiable results of one cohort are, and where its
/// two tiers go.
pub struct CohortResults<'a> {
    /// `<ID>@<version>`.
    pub key: &'a str,
    /// The engine's output folder for the cohort (membership, explanations,
    /// near misses, attrition, combinations as Parquet).
    pub dir: &'a Path,
    /// Practices the cohort could be evaluated at.
    pub available: &'a [String],
}

/// The 5-year age band at `index` (`90+` from 90; `unknown` without a date
/// of birth).
pub fn age_band(dob: Expr, index: NaiveDate) -> Expr {
    let age = crate::cohort::engine::age_expr(dob.clone(), index);
    let low = (age.clone() / lit(5i64)) * lit(5i64);
    when(dob.is_null().or(age.clone().lt(lit(0i64))), lit("unknown"))
        .when(age.gt_eq(lit(90i64)), lit("90+"))
        .otherwise(concat(vec![
            cast(low.clone(), DataType::Utf8),
            lit("-"),
            cast(low + lit(4i64), DataType::Utf8),
        ]))
        .expect("CASE builds")
}

/// Writes the identity file of a run: one row per person registered at a
/// network practice on the index date, with their pseudonym under `key`.
/// `membership` is any cohort's membership (every cohort lists every person
/// known to the store with their registration at index).
pub async fn identities(
    ctx: &SessionContext,
    store_root: &Path,
    membership: &Path,
    index: NaiveDate,
    key: &Key,
    out: &Path,
) -> Result<()> {
    let what = "identities";
    let patients = ctx
        .read_parquet(
            format!("{}/", store_root.join("canonical/patients").display()),
            ParquetReadOptions::default(),
        )
        .await
        .map_err(query(what))?
        .aggregate(
            vec![col("person_key"), col("practice")],
            vec![
                min(cast(col("patient_id"), DataType::Utf8)).alias("patient_id"),
                max(when(
                    col("nhs_number_status").eq(lit("verified")),
                    cast(col("nhs_number"), DataType::Utf8),
                )
                .end()
                .expect("CASE builds"))
                .alias("nhs"),
                min(col("date_of_birth")).alias("dob"),
                min(cast(col("sex"), DataType::Utf8)).alias("sex"),
            ],
        )
        .and_then(|df| {
            df.select(vec![
                col("person_key").alias("p_person_key"),
                col("practice").alias("p_practice"),
                col("patient_id"),
                col("nhs"),
                col("dob"),
                col("sex"),
            ])
        })
        .map_err(query(what))?;
    let registered = ctx
        .read_parquet(
            membership.to_string_lossy().as_ref(),
            ParquetReadOptions::default(),
        )
        .await
        .and_then(|df| df.filter(col("practice").is_not_null()))
        .and_then(|df| {
            df.select(vec![
                cast(col("person_key"), DataType::Utf8).alias("person_key"),
                cast(col("practice"), DataType::Utf8).alias("practice"),
            ])
        })
        .and_then(|df| {
            df.join(
                patients,
                JoinType::Left,
                &["person_key", "practice"],
                &["p_person_key", "p_practice"],
                None,
            )
        })
        .and_then(|df| {
            df.select(vec![
                col("person_key"),
                col("practice"),
                col("patient_id"),
                col("nhs"),
                age_band(col("dob"), index).alias("age_band"),
                when(col("sex").is_null(), lit("U"))
                    .otherwise(col("sex"))
                    .expect("CASE builds")
                    .alias("sex"),
            ])
        })
        .map_err(query(what))?;

    let schema = Arc::new(Schema::new(
        [
            "person_key",
            "practice",
            "pseudonym",
            "patient_id",
            "age_band",
            "sex",
        ]
        .map(|n| Field::new(n, DataType::Utf8, true))
        .to_vec(),
    ));
    let file = std::fs::File::create(out).map_err(io(out))?;
    let mut writer =
        ArrowWriter::try_new(file, schema.clone(), None).map_err(|e| query(what)(e.into()))?;
    let mut stream = registered.execute_stream().await.map_err(query(what))?;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(query(what))?;
        let text = |n: &str| {
            batch
                .column_by_name(n)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .expect("string column")
        };
        let (person, practice, patient, nhs) = (
            text("person_key"),
            text("practice"),
            text("patient_id"),
            text("nhs"),
        );
        let mut pseudonyms = StringBuilder::new();
        for i in 0..batch.num_rows() {
            let local = if patient.is_valid(i) {
                patient.value(i)
            } else {
                person.value(i)
            };
            let verified = nhs.is_valid(i).then(|| nhs.value(i));
            pseudonyms.append_value(key.of_record(practice.value(i), local, verified));
        }
        let columns: Vec<ArrayRef> = vec![
            batch.column_by_name("person_key").expect("column").clone(),
            batch.column_by_name("practice").expect("column").clone(),
            Arc::new(pseudonyms.finish()),
            batch.column_by_name("patient_id").expect("column").clone(),
            batch.column_by_name("age_band").expect("column").clone(),
            batch.column_by_name("sex").expect("column").clone(),
        ];
        let out_batch =
            RecordBatch::try_new(schema.clone(), columns).map_err(|e| query(what)(e.into()))?;
        writer
            .write(&out_batch)
            .map_err(|e| query(what)(e.into()))?;
    }
    writer.close().map_err(|e| query(what)(e.into()))?;
    Ok(())
}

/// Writes `df` as one Parquet file (and one CSV file when `csv`), strings
/// as plain UTF-8 (not DataFusion's string views) so any reader opens them.
async fn write(df: DataFrame, path: &Path, csv: bool, what: &str) -> Result<()> {
    let plain: Vec<Expr> = df
        .schema()
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8View | DataType::LargeUtf8 => {
                cast(col(f.name()), DataType::Utf8).alias(f.name())
            }
            _ => col(f.name()),
        })
        .collect();
    let df = df.select(plain).map_err(query(what))?;
    let one = || DataFrameWriteOptions::new().with_single_file_output(true);
    df.clone()
        .write_parquet(
            &path.with_extension("parquet").to_string_lossy(),
            one(),
            None,
        )
        .await
        .map_err(query(what))?;
    if csv {
        df.write_csv(&path.with_extension("csv").to_string_lossy(), one(), None)
            .await
            .map_err(query(what))?;
    }
    Ok(())
}

/// The identity file joined to `df` on (`person_key`, `practice`), the
/// person key dropped and the pseudonym (and, with `patient`, the
/// practice's patient id) first.
async fn pseudonymised(
    ctx: &SessionContext,
    identity: &Path,
    df: DataFrame,
    extra: &[&str],
    rest: &[&str],
) -> datafusion::error::Result<DataFrame> {
    let ids = ctx
        .read_parquet(
            identity.to_string_lossy().as_ref(),
            ParquetReadOptions::default(),
        )
        .await?
        .select(
            [
                "person_key",
                "practice",
                "pseudonym",
                "patient_id",
                "age_band",
                "sex",
            ]
            .map(|c| col(c).alias(format!("i_{c}")))
            .to_vec(),
        )?;
    let joined = df.join(
        ids,
        JoinType::Inner,
        &["person_key", "practice"],
        &["i_person_key", "i_practice"],
        None,
    )?;
    let mut cols = vec![col("i_pseudonym").alias("pseudonym")];
    cols.extend(extra.iter().map(|c| col(format!("i_{c}")).alias(*c)));
    cols.extend(rest.iter().map(|c| col(*c)));
    joined.select(cols)
}

/// Writes the per-person tiers of one cohort: `network/<key>/membership`
/// and `practice/<ODS>/<key>/{explanations,near_misses}`.
pub async fn people(
    ctx: &SessionContext,
    identity: &Path,
    results: &CohortResults<'_>,
    out: &Path,
) -> Result<()> {
    let read = |name: &str| {
        let path = results.dir.join(format!("{name}.parquet"));
        async move {
            ctx.read_parquet(
                path.to_string_lossy().as_ref(),
                ParquetReadOptions::default(),
            )
            .await
        }
    };
    let network = out.join("network").join(results.key);
    std::fs::create_dir_all(&network).map_err(io(&network))?;
    let what = format!("{} membership", results.key);
    let membership = pseudonymised(
        ctx,
        identity,
        read("membership").await.map_err(query(&what))?,
        &["age_band", "sex"],
        &[
            "practice",
            "status",
            "outcome",
            "included",
            "deciding_rule",
            "near_miss_rule",
        ],
    )
    .await
    .and_then(|df| df.sort(vec![col("pseudonym").sort(true, false)]))
    .map_err(query(&what))?;
    write(membership, &network.join("membership"), false, &what).await?;

    for practice in results.available {
        let dir = out.join("practice").join(practice).join(results.key);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let what = format!("{} explanations for {practice}", results.key);
        let explanations = read("explanations").await.map_err(query(&what))?;
        let rest: Vec<String> = explanations
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| n != "person_key")
            .collect();
        let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
        let df = explanations
            .filter(col("practice").eq(lit(practice.as_str())))
            .map_err(query(&what))?;
        let df = pseudonymised(ctx, identity, df, &["patient_id"], &rest)
            .await
            .and_then(|df| {
                df.sort(vec![
                    col("patient_id").sort(true, false),
                    col("criterion").sort(true, false),
                ])
            })
            .map_err(query(&what))?;
        write(df, &dir.join("explanations"), true, &what).await?;

        let what = format!("{} near misses for {practice}", results.key);
        let df = read("near_misses")
            .await
            .and_then(|df| df.filter(col("practice").eq(lit(practice.as_str()))))
            .map_err(query(&what))?;
        let df = pseudonymised(ctx, identity, df, &["patient_id"], &["practice", "rule"])
            .await
            .and_then(|df| df.sort(vec![col("patient_id").sort(true, false)]))
            .map_err(query(&what))?;
        write(df, &dir.join("near_misses"), true, &what).await?;
    }
    Ok(())
}

/// How a count is written in a network file: the number, `suppressed`, or
/// (for a practice the cohort could not be evaluated at) `unavailable`. A
/// suppressed or unavailable count is never written as 0.
fn shown_text(policy: Option<&Policy>, shown: Option<Shown>, n: u64) -> String {
    match (policy, shown) {
        (None, _) => n.to_string(),
        (Some(_), Some(s)) => s.to_string(),
        (Some(p), None) => p.cell(n).to_string(),
    }
}

/// Wilson score interval for `k` of `n` at `z`, in percent.
pub fn wilson(k: u64, n: u64, z: f64) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    Some((
        100.0 * (centre - half).max(0.0),
        100.0 * (centre + half).min(1.0),
    ))
}

/// Where a practice's prevalence `k/n` lies against the network's `p0` on a
/// funnel plot ("Making Data Count": control limits p0 ± z·sqrt(p0(1−p0)/n)
/// at z = 1.96 (95%) and 3.09 (99.8%)).
pub fn funnel_position(k: u64, n: u64, p0: f64) -> &'static str {
    if n == 0 {
        return "no_population";
    }
    let p = k as f64 / n as f64;
    let sd = (p0 * (1.0 - p0) / n as f64).sqrt();
    let z = if sd > 0.0 { (p - p0) / sd } else { 0.0 };
    match z {
        z if z > 3.09 => "above_99_8",
        z if z < -3.09 => "below_99_8",
        z if z > 1.96 => "above_95",
        z if z < -1.96 => "below_95",
        _ => "within",
    }
}

/// Per-practice counts of one cohort, unrounded: registered on the index
/// date, in the population, included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PracticeCounts {
    pub practice: String,
    pub registered: u64,
    pub in_population: u64,
    pub included: u64,
    /// In the population, with an outcome the data cannot decide.
    pub undetermined: u64,
    /// In the population, not included (or undetermined), with an event at
    /// the practice whose code has no SNOMED CT concept: an upper bound of
    /// the verdicts that might change once that code is mapped.
    pub unmapped_dependent: u64,
}

/// Counts per available practice, from the engine's membership.
pub async fn practice_counts(
    ctx: &SessionContext,
    results: &CohortResults<'_>,
) -> Result<Vec<PracticeCounts>> {
    use datafusion::functions_aggregate::expr_fn::sum;
    let what = format!("{} counts", results.key);
    let path = results.dir.join("membership.parquet");
    let one_if = |e: Expr| {
        when(e, lit(1i64))
            .otherwise(lit(0i64))
            .expect("CASE builds")
    };
    let batches = ctx
        .read_parquet(
            path.to_string_lossy().as_ref(),
            ParquetReadOptions::default(),
        )
        .await
        .and_then(|df| df.filter(col("practice").is_not_null()))
        .and_then(|df| {
            df.aggregate(
                vec![cast(col("practice"), DataType::Utf8).alias("practice")],
                vec![
                    sum(lit(1i64)).alias("registered"),
                    sum(one_if(col("status").eq(lit("in_population")))).alias("in_population"),
                    sum(one_if(col("included").is_true())).alias("included"),
                    sum(one_if(col("outcome").eq(lit("undetermined")))).alias("undetermined"),
                ],
            )
        })
        .map_err(query(&what))?
        .collect()
        .await
        .map_err(query(&what))?;
    let mut out: Vec<PracticeCounts> = Vec::new();
    for b in &batches {
        let practice = b
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("practice");
        let n = |i: usize| {
            b.column(i)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                .expect("count")
        };
        for r in 0..b.num_rows() {
            out.push(PracticeCounts {
                practice: practice.value(r).to_string(),
                registered: n(1).value(r) as u64,
                in_population: n(2).value(r) as u64,
                included: n(3).value(r) as u64,
                undetermined: n(4).value(r) as u64,
                unmapped_dependent: 0,
            });
        }
    }
    for p in results.available {
        if !out.iter().any(|c| &c.practice == p) {
            out.push(PracticeCounts {
                practice: p.clone(),
                registered: 0,
                in_population: 0,
                included: 0,
                undetermined: 0,
                unmapped_dependent: 0,
            });
        }
    }
    out.retain(|c| results.available.contains(&c.practice));
    out.sort_by(|a, b| a.practice.cmp(&b.practice));
    Ok(out)
}

/// The network file of practice counts and prevalence: one row per
/// practice (unavailable ones say so) and the network (`ALL`), every count
/// disclosure-controlled as a group whose total is the network's.
pub fn counts_batch(
    counts: &[PracticeCounts],
    unavailable: &[String],
    policy: Option<&Policy>,
) -> RecordBatch {
    let column = |f: fn(&PracticeCounts) -> u64| -> (Vec<Option<Shown>>, Option<Shown>) {
        match policy {
            Some(p) => {
                let (cells, total) = p.group(&counts.iter().map(f).collect::<Vec<_>>());
                (cells.into_iter().map(Some).collect(), Some(total))
            }
            None => (vec![None; counts.len()], None),
        }
    };
    let (reg, reg_total) = column(|c| c.registered);
    let (pop, pop_total) = column(|c| c.in_population);
    let (inc, inc_total) = column(|c| c.included);
    let (und, und_total) = column(|c| c.undetermined);
    let (unm, unm_total) = column(|c| c.unmapped_dependent);
    let total = PracticeCounts {
        practice: crate::cohort::engine::NETWORK.to_string(),
        registered: counts.iter().map(|c| c.registered).sum(),
        in_population: counts.iter().map(|c| c.in_population).sum(),
        included: counts.iter().map(|c| c.included).sum(),
        undetermined: counts.iter().map(|c| c.undetermined).sum(),
        unmapped_dependent: counts.iter().map(|c| c.unmapped_dependent).sum(),
    };
    let p0 = if total.in_population > 0 {
        total.included as f64 / total.in_population as f64
    } else {
        0.0
    };
    let names = [
        "practice",
        "status",
        "registered",
        "in_population",
        "included",
        "undetermined",
        "unmapped_dependent",
        "prevalence_pct",
        "ci95_low_pct",
        "ci95_high_pct",
        "funnel",
    ];
    let mut cols: Vec<StringBuilder> = names.iter().map(|_| StringBuilder::new()).collect();
    let mut row = |c: &PracticeCounts, shown: [Option<Shown>; 5], funnel: Option<&str>| {
        let hidden = shown[1] == Some(Shown::Suppressed) || shown[2] == Some(Shown::Suppressed);
        let prevalence = (!hidden && c.in_population > 0)
            .then(|| 100.0 * c.included as f64 / c.in_population as f64);
        let ci = (!hidden)
            .then(|| wilson(c.included, c.in_population, 1.96))
            .flatten();
        let values = [
            Some(c.practice.clone()),
            Some("available".to_string()),
            Some(shown_text(policy, shown[0], c.registered)),
            Some(shown_text(policy, shown[1], c.in_population)),
            Some(shown_text(policy, shown[2], c.included)),
            Some(shown_text(policy, shown[3], c.undetermined)),
            Some(shown_text(policy, shown[4], c.unmapped_dependent)),
            Some(prevalence.map_or_else(|| "suppressed".into(), |p| format!("{p:.1}"))),
            Some(ci.map_or_else(|| "suppressed".into(), |c| format!("{:.1}", c.0))),
            Some(ci.map_or_else(|| "suppressed".into(), |c| format!("{:.1}", c.1))),
            // A funnel position would narrow a suppressed count down.
            funnel.map(|f| if hidden { "suppressed" } else { f }.to_string()),
        ];
        for (b, v) in cols.iter_mut().zip(values) {
            b.append_option(v);
        }
    };
    for (i, c) in counts.iter().enumerate() {
        row(
            c,
            [reg[i], pop[i], inc[i], und[i], unm[i]],
            Some(funnel_position(c.included, c.in_population, p0)),
        );
    }
    row(
        &total,
        [reg_total, pop_total, inc_total, und_total, unm_total],
        None,
    );
    // Unavailable practices: every count says so.
    for p in unavailable {
        for (i, b) in cols.iter_mut().enumerate() {
            match i {
                0 => b.append_value(p),
                1..=6 => b.append_value("unavailable"),
                _ => b.append_null(),
            }
        }
    }
    let out: Vec<ArrayRef> = cols
        .iter_mut()
        .map(|b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    let schema = Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(Arc::new(schema), out).expect("counts columns")
}

/// The engine's attrition, disclosure-controlled: within a row, entering is
/// the total of passing, removed and selected; across practices, the
/// network row is the total of a step's practice rows. A cell is suppressed
/// when either group suppresses it. Counts are written as text.
pub fn attrition_batch(engine: &RecordBatch, policy: Option<&Policy>) -> RecordBatch {
    // `entering` first: the total of the others in its row.
    let names: Vec<&str> = ["entering", "passing", "removed", "selected", "undetermined"]
        .into_iter()
        .filter(|n| engine.column_by_name(n).is_some())
        .collect();
    let int = |n: &str| {
        engine
            .column_by_name(n)
            .and_then(|c| {
                c.as_any()
                    .downcast_ref::<datafusion::arrow::array::Int64Array>()
            })
            .expect("count column")
    };
    let practice = engine
        .column_by_name("practice")
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .expect("practice column");
    let order = int("step_order");
    let rows = engine.num_rows();
    let values: Vec<Vec<u64>> = (0..rows)
        .map(|r| names.iter().map(|c| int(c).value(r) as u64).collect())
        .collect();
    let mut suppressed = vec![vec![false; names.len()]; rows];
    if let Some(p) = policy {
        for (r, v) in values.iter().enumerate() {
            let (cells, total) = p.group(&v[1..]);
            suppressed[r][0] |= total == Shown::Suppressed;
            for (i, c) in cells.iter().enumerate() {
                suppressed[r][i + 1] |= *c == Shown::Suppressed;
            }
        }
        let network = crate::cohort::engine::NETWORK;
        let mut steps: Vec<i64> = (0..rows).map(|r| order.value(r)).collect();
        steps.sort_unstable();
        steps.dedup();
        for s in steps {
            let members: Vec<usize> = (0..rows)
                .filter(|r| order.value(*r) == s && practice.value(*r) != network)
                .collect();
            let total_row =
                (0..rows).find(|r| order.value(*r) == s && practice.value(*r) == network);
            for c in 0..names.len() {
                let cells: Vec<u64> = members.iter().map(|r| values[*r][c]).collect();
                let (shown, total) = p.group(&cells);
                for (r, cell) in members.iter().zip(shown) {
                    suppressed[*r][c] |= cell == Shown::Suppressed;
                }
                if let Some(t) = total_row {
                    suppressed[t][c] |= total == Shown::Suppressed;
                }
            }
        }
    }
    let mut cols: Vec<ArrayRef> = ["practice", "step_order", "step"]
        .iter()
        .map(|n| engine.column_by_name(n).expect("attrition column").clone())
        .collect();
    let mut fields: Vec<Field> = ["practice", "step_order", "step"]
        .iter()
        .map(|n| engine.schema().field_with_name(n).expect("field").clone())
        .collect();
    for (c, name) in names.iter().enumerate() {
        let mut b = StringBuilder::new();
        for r in 0..rows {
            let n = values[r][c];
            b.append_value(match policy {
                None => n.to_string(),
                Some(_) if suppressed[r][c] => "suppressed".to_string(),
                Some(p) => p.round(n).to_string(),
            });
        }
        cols.push(Arc::new(b.finish()));
        fields.push(Field::new(*name, DataType::Utf8, false));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).expect("attrition columns")
}

/// Rule combinations, disclosure-controlled: within a practice the masks add
/// up to its population; a mask's count is written as text.
pub fn combinations_batch(engine: &RecordBatch, policy: Option<&Policy>) -> RecordBatch {
    let text = |n: &str| {
        engine
            .column_by_name(n)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            .expect("string column")
    };
    let persons = engine
        .column_by_name("persons")
        .and_then(|c| {
            c.as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
        })
        .expect("persons column");
    let practice = text("practice");
    let mut suppressed = vec![false; engine.num_rows()];
    if let Some(p) = policy {
        let mut practices: Vec<&str> = (0..engine.num_rows()).map(|r| practice.value(r)).collect();
        practices.sort_unstable();
        practices.dedup();
        for pr in practices {
            let rows: Vec<usize> = (0..engine.num_rows())
                .filter(|r| practice.value(*r) == pr)
                .collect();
            let (cells, _) = p.group(
                &rows
                    .iter()
                    .map(|r| persons.value(*r) as u64)
                    .collect::<Vec<_>>(),
            );
            for (r, c) in rows.iter().zip(cells) {
                suppressed[*r] = c == Shown::Suppressed;
            }
        }
    }
    let mut shown = StringBuilder::new();
    for r in 0..engine.num_rows() {
        let n = persons.value(r) as u64;
        shown.append_value(match policy {
            None => n.to_string(),
            Some(_) if suppressed[r] => "suppressed".to_string(),
            Some(p) => p.round(n).to_string(),
        });
    }
    let schema = Schema::new(vec![
        Field::new("practice", DataType::Utf8, false),
        Field::new("mask", DataType::Utf8, false),
        Field::new("persons", DataType::Utf8, false),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            engine.column_by_name("practice").expect("practice").clone(),
            engine.column_by_name("mask").expect("mask").clone(),
            Arc::new(shown.finish()),
        ],
    )
    .expect("combination columns")
}

/// Writes `batch` as Parquet and CSV at `path` (extension replaced).
pub fn write_small(path: &Path, batch: &RecordBatch) -> Result<()> {
    let what = path.display().to_string();
    let pq = path.with_extension("parquet");
    let file = std::fs::File::create(&pq).map_err(io(&pq))?;
    let mut w =
        ArrowWriter::try_new(file, batch.schema(), None).map_err(|e| query(&what)(e.into()))?;
    w.write(batch).map_err(|e| query(&what)(e.into()))?;
    w.close().map_err(|e| query(&what)(e.into()))?;
    let csv = path.with_extension("csv");
    let file = std::fs::File::create(&csv).map_err(io(&csv))?;
    let mut w = datafusion::arrow::csv::WriterBuilder::new()
        .with_header(true)
        .build(file);
    w.write(batch).map_err(|e| query(&what)(e.into()))?;
    Ok(())
}

/// Reads a small Parquet file the engine wrote, whole.
pub fn read_small(path: &Path) -> Result<RecordBatch> {
    crate::store::read_parquet(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// Writes the network aggregates of one cohort: `counts` (with the persons
/// whose verdict rests on unmapped codes, by practice), `attrition` and
/// `combinations`, each Parquet and CSV.
pub async fn aggregates(
    ctx: &SessionContext,
    results: &CohortResults<'_>,
    unavailable: &[String],
    unmapped_dependent: &BTreeMap<String, u64>,
    policy: Option<&Policy>,
    out: &Path,
) -> Result<()> {
    let network = out.join("network").join(results.key);
    std::fs::create_dir_all(&network).map_err(io(&network))?;
    let mut counts = practice_counts(ctx, results).await?;
    for c in &mut counts {
        c.unmapped_dependent = unmapped_dependent.get(&c.practice).copied().unwrap_or(0);
    }
    write_small(
        &network.join("counts"),
        &counts_batch(&counts, unavailable, policy),
    )?;
    let attrition = read_small(&results.dir.join("attrition.parquet"))?;
    write_small(
        &network.join("attrition"),
        &attrition_batch(&attrition, policy),
    )?;
    let combinations = read_small(&results.dir.join("combinations.parquet"))?;
    write_small(
        &network.join("combinations"),
        &combinations_batch(&combinations, policy),
    )?;
    Ok(())
}

/// Writes `practice/<ODS>/worklist.{parquet,csv}` for every practice with
/// a row bearing on one of the run's cohorts: the worklist is written once
/// to the work folder, then each practice's part from it.
async fn worklists(ctx: &SessionContext, bearing: Vec<DataFrame>, tmp: &Path) -> Result<()> {
    let what = "worklist";
    let Some(df) = context::worklist(ctx, bearing)? else {
        return Ok(());
    };
    let all = tmp.join("worklist.parquet");
    df.write_parquet(
        &all.to_string_lossy(),
        DataFrameWriteOptions::new().with_single_file_output(true),
        None,
    )
    .await
    .map_err(query(what))?;
    let read = || async {
        ctx.read_parquet(
            all.to_string_lossy().as_ref(),
            ParquetReadOptions::default(),
        )
        .await
    };
    let batches = read()
        .await
        .and_then(|df| df.aggregate(vec![cast(col("practice"), DataType::Utf8)], vec![]))
        .map_err(query(what))?
        .collect()
        .await
        .map_err(query(what))?;
    let mut practices: Vec<String> = Vec::new();
    for b in &batches {
        let a = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8)
            .map_err(|e| query(what)(e.into()))?;
        let a = a.as_any().downcast_ref::<StringArray>().expect("Utf8");
        practices.extend((0..a.len()).map(|i| a.value(i).to_string()));
    }
    practices.sort();
    for practice in practices {
        let dir = tmp.join("practice").join(&practice);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let what = format!("worklist for {practice}");
        let df = read()
            .await
            .and_then(|df| df.filter(col("practice").eq(lit(practice.as_str()))))
            .and_then(|df| {
                df.select(
                    [
                        "source_system",
                        "source_table",
                        "source_row_id",
                        "extract_id",
                        "check_id",
                        "problem",
                        "cohorts",
                    ]
                    .map(col)
                    .to_vec(),
                )
            })
            .and_then(|df| {
                df.sort(vec![
                    col("check_id").sort(true, false),
                    col("source_table").sort(true, false),
                    col("source_row_id").sort(true, false),
                ])
            })
            .map_err(query(&what))?;
        write(df, &dir.join("worklist"), true, &what).await?;
    }
    std::fs::remove_file(&all).map_err(io(&all))?;
    Ok(())
}

/// What a run publishes with.
pub struct Publication<'a> {
    pub store: &'a Path,
    /// The terminology release the run's value sets were expanded against.
    pub release: &'a Path,
    pub out: &'a Path,
    pub key: &'a Key,
    /// `None`: disclosure control off.
    pub policy: Option<Policy>,
    /// The query memory pool in bytes (the run's `--memory-limit-mib`);
    /// past it, sorts and aggregates spill to disk. `None`: unbounded.
    pub memory_limit: Option<usize>,
}

/// The publish step's session: the run's memory pool, so the worklist's
/// grouping and the sorts spill rather than grow past it.
fn session(memory_limit: Option<usize>) -> datafusion::error::Result<SessionContext> {
    let mut rt = datafusion::execution::runtime_env::RuntimeEnvBuilder::new();
    if let Some(limit) = memory_limit {
        rt = rt.with_memory_limit(limit, 1.0);
    }
    Ok(SessionContext::new_with_config_rt(
        SessionConfig::new(),
        Arc::new(rt.build()?),
    ))
}

/// One evaluated cohort, as the run hands it over.
pub struct Evaluated<'a> {
    pub index: NaiveDate,
    pub results: CohortResults<'a>,
    pub unavailable: &'a [String],
    /// The codes its criteria read.
    pub codes: &'a CohortCodes,
}

/// Writes `network/` and `practice/` for every cohort of a run, aside in
/// `OUT/.publish.tmp-<pid>/` first, then renamed into place (replacing a
/// previous run's). Beside each cohort's tiers: the checks bearing on it
/// (`network/<key>/quality`) and, per practice, the run's fix-at-source
/// worklist (`practice/<ODS>/worklist`), from the store's offending rows
/// written once to the work folder (`output::context`).
pub fn publish(p: &Publication<'_>, cohorts: &[Evaluated<'_>]) -> Result<()> {
    let tmp = p.out.join(format!(".publish.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(io(p.out))?;
    let written = runtime.block_on(async {
        let ctx = session(p.memory_limit).map_err(query("the publish session"))?;
        let t = std::time::Instant::now();
        let offences = tmp.join("offences.parquet");
        let offences = context::write_offences(p.store, p.release, &offences)
            .await?
            .then_some(offences);
        tracing::debug!(elapsed = ?t.elapsed(), "offending rows");
        let mut bearing = Vec::new();
        let mut identity_of: Vec<(NaiveDate, PathBuf)> = Vec::new();
        for c in cohorts {
            let identity = match identity_of.iter().find(|(d, _)| *d == c.index) {
                Some((_, path)) => path.clone(),
                None => {
                    let path = tmp.join(format!("identity-{}.parquet", c.index));
                    let membership = c.results.dir.join("membership.parquet");
                    identities(&ctx, p.store, &membership, c.index, p.key, &path).await?;
                    identity_of.push((c.index, path.clone()));
                    path
                }
            };
            let t = std::time::Instant::now();
            people(&ctx, &identity, &c.results, &tmp).await?;
            tracing::debug!(cohort = c.results.key, elapsed = ?t.elapsed(), "per-person tiers");
            let t = std::time::Instant::now();
            let found = match &offences {
                Some(path) => context::cohort(&ctx, path, &c.results, c.codes).await?,
                None => context::Context::default(),
            };
            let network = tmp.join("network").join(c.results.key);
            write_small(
                &network.join("quality"),
                &context::quality_batch(&found.figures, c.results.available, p.policy.as_ref()),
            )?;
            bearing.extend(found.bearing);
            tracing::debug!(cohort = c.results.key, elapsed = ?t.elapsed(), "quality in context");
            aggregates(
                &ctx,
                &c.results,
                c.unavailable,
                &found.unmapped_dependent,
                p.policy.as_ref(),
                &tmp,
            )
            .await?;
        }
        let t = std::time::Instant::now();
        worklists(&ctx, bearing, &tmp).await?;
        tracing::debug!(elapsed = ?t.elapsed(), "worklists");
        if let Some(path) = &offences {
            std::fs::remove_file(path).map_err(io(path))?;
        }
        for (_, path) in &identity_of {
            std::fs::remove_file(path).map_err(io(path))?;
        }
        for tier in ["network", "practice"] {
            let (from, to) = (tmp.join(tier), p.out.join(tier));
            if to.exists() {
                std::fs::remove_dir_all(&to).map_err(io(&to))?;
            }
            if from.exists() {
                std::fs::rename(&from, &to).map_err(io(&to))?;
            }
        }
        Ok(())
    });
    let _ = std::fs::remove_dir_all(&tmp);
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;

    fn texts(b: &RecordBatch, name: &str) -> Vec<String> {
        let a = b
            .column_by_name(name)
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        (0..a.len())
            .map(|i| {
                if a.is_valid(i) {
                    a.value(i).to_string()
                } else {
                    "null".into()
                }
            })
            .collect()
    }

    #[test]
    fn wilson_and_funnel() {
        // 10 of 100: the textbook Wilson interval 5.52%-17.44%.
        let (lo, hi) = wilson(10, 100, 1.96).unwrap();
        assert!(
            (lo - 5.52).abs() < 0.01 && (hi - 17.44).abs() < 0.01,
            "{lo} {hi}"
        );
        assert_eq!(wilson(0, 0, 1.96), None);
        // p0 = 0.1, n = 100: sd 0.03; (k, position)
        for (k, position) in [
            (20, "above_99_8"),
            (16, "above_95"),
            (10, "within"),
            (4, "below_95"),
            (0, "below_99_8"),
        ] {
            assert_eq!(funnel_position(k, 100, 0.1), position, "{k}");
        }
    }

    #[test]
    fn counts_are_grouped_and_unavailable_is_said() {
        let counts = [
            PracticeCounts {
                practice: "A81001".into(),
                registered: 100,
                in_population: 100,
                included: 3,
                undetermined: 0,
                unmapped_dependent: 0,
            },
            PracticeCounts {
                practice: "B82005".into(),
                registered: 200,
                in_population: 200,
                included: 40,
                undetermined: 9,
                unmapped_dependent: 12,
            },
        ];
        let b = counts_batch(&counts, &["C83001".to_string()], Some(&Policy::default()));
        assert_eq!(texts(&b, "practice"), ["A81001", "B82005", "ALL", "C83001"]);
        // 3 is suppressed; 40 with it (it and the total would give 3 away);
        // the total 43 rounds to 45.
        assert_eq!(
            texts(&b, "included"),
            ["suppressed", "suppressed", "45", "unavailable"]
        );
        assert_eq!(
            texts(&b, "in_population"),
            ["100", "200", "300", "unavailable"]
        );
        // Undetermined persons are counted beside the included, never in them.
        assert_eq!(texts(&b, "undetermined"), ["0", "10", "10", "unavailable"]);
        // Verdicts resting on unmapped codes: a group like the others.
        assert_eq!(
            texts(&b, "unmapped_dependent"),
            ["0", "10", "10", "unavailable"]
        );
        // Prevalence from unrounded counts, shown only with its counts.
        assert_eq!(
            texts(&b, "prevalence_pct"),
            ["suppressed", "suppressed", "14.3", "null"]
        );
        assert_eq!(
            texts(&b, "funnel"),
            ["suppressed", "suppressed", "null", "null"]
        );
        let exact = counts_batch(&counts, &[], None);
        assert_eq!(texts(&exact, "included"), ["3", "40", "43"]);
        assert_eq!(texts(&exact, "prevalence_pct"), ["3.0", "20.0", "14.3"]);
    }

    #[test]
    fn attrition_suppresses_within_rows_and_across_practices() {
        let rows: [(&str, [i64; 4]); 3] = [
            ("A81001", [20, 15, 3, 2]),
            ("B82005", [30, 30, 0, 0]),
            ("ALL", [50, 45, 3, 2]),
        ];
        let s = |f: fn(&(&str, [i64; 4])) -> String| {
            Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>())) as ArrayRef
        };
        let n = |i: usize| {
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.1[i]).collect::<Vec<_>>(),
            )) as ArrayRef
        };
        let schema = Schema::new(vec![
            Field::new("practice", DataType::Utf8, false),
            Field::new("step_order", DataType::Int64, false),
            Field::new("step", DataType::Utf8, false),
            Field::new("entering", DataType::Int64, false),
            Field::new("passing", DataType::Int64, false),
            Field::new("removed", DataType::Int64, false),
            Field::new("selected", DataType::Int64, false),
        ]);
        let engine = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                s(|r| r.0.to_string()),
                Arc::new(Int64Array::from(vec![3i64; 3])),
                s(|_| "diagnosed".to_string()),
                n(0),
                n(1),
                n(2),
                n(3),
            ],
        )
        .unwrap();
        let b = attrition_batch(&engine, Some(&Policy::default()));
        assert_eq!(texts(&b, "entering"), ["20", "30", "50"]);
        assert_eq!(texts(&b, "passing"), ["15", "30", "45"]);
        assert_eq!(texts(&b, "removed"), ["suppressed", "0", "suppressed"]);
        assert_eq!(texts(&b, "selected"), ["suppressed", "0", "suppressed"]);
        let exact = attrition_batch(&engine, None);
        assert_eq!(texts(&exact, "removed"), ["3", "0", "3"]);
    }
}
