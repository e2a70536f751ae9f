//! Cohorts in context: which data-quality findings bear on a cohort, how
//! many of its verdicts could change once unmapped codes are fixed, and a
//! fix-at-source worklist per practice naming the cohorts each row affects
//! (`docs/outputs.md`).
//!
//! Invariants:
//! - a check means here exactly what it means in `phm dq`: the offending
//!   rows come from `quality::queries` (its rules and frames), never from a
//!   copy of them;
//! - everything is a DataFusion plan over the store's Parquet and the
//!   engine's membership; the run's offending rows are written once to a
//!   work file, and only per-practice aggregates are collected;
//! - a row bears on a cohort when (events, medications) its concept is in
//!   one of the cohort's value-set expansions; when it has no concept, when
//!   its person is registered at the row's practice, in the cohort's
//!   population and not included (a mapped code might put them in), and the
//!   cohort reads that table; (patients, registrations) when its person is
//!   registered at the row's practice and in the cohort's population;
//! - nothing written here holds a person key, NHS number, name or date of
//!   birth: network figures are counts, the worklist names source rows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use datafusion::common::JoinType;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::functions_aggregate::expr_fn::{count_distinct, sum};
use datafusion::functions_aggregate::string_agg::string_agg;
use datafusion::logical_expr::ExprFunctionExt;
use datafusion::prelude::*;

use super::disclosure::{Policy, Shown};
use super::publish::CohortResults;
use crate::canonical::CanonicalTable;
use crate::cohort::Cohort;
use crate::cohort::model::Table;
use crate::quality::checks::CHECKS;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}", path = path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{what}: {source}; hint: run `phm dq` on the same store and release to see whether its checks run"
    )]
    Quality {
        what: String,
        source: crate::quality::Error,
    },
    #[error("{what}: {source}")]
    Query {
        what: String,
        source: datafusion::error::DataFusionError,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn query(what: &str) -> impl FnOnce(datafusion::error::DataFusionError) -> Error + '_ {
    move |source| Error::Query {
        what: what.to_string(),
        source,
    }
}

/// The check whose rows hold an event code with no SNOMED CT concept.
pub const UNMAPPED_CHECK: &str = "codes.events_unmapped";

/// What a cohort reads: its value-set expansions by table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CohortCodes {
    /// SNOMED CT concepts of its event criteria.
    pub events: BTreeSet<i64>,
    /// dm+d codes of its medication criteria.
    pub medications: BTreeSet<i64>,
    /// Whether any criterion reads events (medications): a row of that table
    /// without a concept may bear on it.
    pub reads_events: bool,
    pub reads_medications: bool,
}

impl CohortCodes {
    pub fn of(cohort: &Cohort) -> CohortCodes {
        let mut out = CohortCodes::default();
        for c in &cohort.def.criteria {
            let codes = cohort.codes(c).unwrap_or_default();
            let codes = codes.into_iter().map(|c| c as i64);
            match c.table {
                Table::Events => {
                    out.reads_events = true;
                    out.events.extend(codes);
                }
                Table::Medications => {
                    out.reads_medications = true;
                    out.medications.extend(codes);
                }
                Table::Patients | Table::Registrations => {}
            }
        }
        out
    }
}

/// Writes every row of the store that offends a table check of `phm dq`,
/// one row per (row, check), to `path` (see `Sources::offending`).
/// Returns false when the store holds no canonical table.
pub async fn write_offences(store: &Path, release: &Path, path: &Path) -> Result<bool> {
    let sources = crate::quality::queries::Sources::new(SessionContext::new(), store, release);
    let mut union: Option<DataFrame> = None;
    for table in CanonicalTable::ALL {
        if !sources.has(table) {
            continue;
        }
        let rows = sources
            .offending(table)
            .await
            .map_err(|source| Error::Quality {
                what: format!("offending rows of {}", table.name()),
                source,
            })?;
        union = Some(match union {
            None => rows,
            Some(u) => u.union(rows).map_err(query("offending rows"))?,
        });
    }
    let Some(union) = union else {
        return Ok(false);
    };
    union
        .write_parquet(
            &path.to_string_lossy(),
            DataFrameWriteOptions::new().with_single_file_output(true),
            None,
        )
        .await
        .map_err(query("offending rows"))?;
    Ok(true)
}

/// One cohort's offending rows with what decides whether they bear on it:
/// the offences joined to its registered persons (`m_key`, `m_pop`,
/// `m_in`) and its codes, with `bears` and `dependent` (a person in the
/// population, not included, with an unmapped event at their practice).
async fn judged(
    ctx: &SessionContext,
    offences: &Path,
    results: &CohortResults<'_>,
    codes: &CohortCodes,
) -> datafusion::error::Result<DataFrame> {
    let members = ctx
        .read_parquet(
            results
                .dir
                .join("membership.parquet")
                .to_string_lossy()
                .as_ref(),
            ParquetReadOptions::default(),
        )
        .await?
        .filter(col("practice").is_not_null())?
        .select(vec![
            cast(col("person_key"), DataType::Utf8).alias("m_key"),
            cast(col("practice"), DataType::Utf8).alias("m_practice"),
            col("status").eq(lit("in_population")).alias("m_pop"),
            col("included").is_true().alias("m_in"),
        ])?;
    let (tables, values): (Vec<&str>, Vec<i64>) = codes
        .events
        .iter()
        .map(|c| ("events", *c))
        .chain(codes.medications.iter().map(|c| ("medications", *c)))
        .unzip();
    let code_batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("c_table", DataType::Utf8, false),
            Field::new("c_code", DataType::Int64, false),
        ])),
        vec![
            Arc::new(StringArray::from(tables)),
            Arc::new(Int64Array::from(values)),
        ],
    )?;
    let available: Vec<Expr> = results.available.iter().map(|p| lit(p.as_str())).collect();
    let pop = col("m_pop").is_true();
    let left_out = pop.clone().and(col("m_in").is_not_true());
    let reads = is("table", "events")
        .and(lit(codes.reads_events))
        .or(is("table", "medications").and(lit(codes.reads_medications)));
    let bears = when(col("concept").is_not_null(), col("c_code").is_not_null())
        .when(
            col("table").in_list(vec![lit("events"), lit("medications")], false),
            left_out.clone().and(reads),
        )
        .otherwise(pop)?;
    ctx.read_parquet(
        offences.to_string_lossy().as_ref(),
        ParquetReadOptions::default(),
    )
    .await?
    .filter(if available.is_empty() {
        lit(false)
    } else {
        col("practice").in_list(available, false)
    })?
    .join(
        members,
        JoinType::Left,
        &["person_key", "practice"],
        &["m_key", "m_practice"],
        None,
    )?
    .join(
        ctx.read_batch(code_batch)?,
        JoinType::Left,
        &["table", "concept"],
        &["c_table", "c_code"],
        None,
    )?
    .select(vec![
        cast(col("check_id"), DataType::Utf8).alias("check_id"),
        cast(col("practice"), DataType::Utf8).alias("practice"),
        cast(col("supplier"), DataType::Utf8).alias("supplier"),
        cast(col("source_table"), DataType::Utf8).alias("source_table"),
        cast(col("source_row_id"), DataType::Utf8).alias("source_row_id"),
        cast(col("extract_id"), DataType::Utf8).alias("extract_id"),
        col("m_key"),
        nullable(bears)?.alias("bears"),
        nullable(is("check_id", UNMAPPED_CHECK).and(left_out))?.alias("dependent"),
    ])
}

/// `e` where true, null otherwise: a flag both DataFusion's logical and
/// physical plans agree is nullable (`IS TRUE` over a left join's columns
/// is non-null in one and nullable in the other).
fn nullable(e: Expr) -> datafusion::error::Result<Expr> {
    when(e, lit(true)).otherwise(lit(datafusion::scalar::ScalarValue::Boolean(None)))
}

fn is(column: &str, value: &str) -> Expr {
    col(column).eq(lit(value))
}

/// One check's figures at one practice, unrounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figure {
    pub practice: String,
    pub check_id: String,
    /// Offending rows that bear on the cohort.
    pub rows: u64,
    /// Distinct persons registered at the practice whom those rows concern.
    pub persons: u64,
}

/// What one cohort's context comes to, unrounded.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub figures: Vec<Figure>,
    /// Persons in the population, not included, with an unmapped event at
    /// their practice, by practice.
    pub unmapped_dependent: BTreeMap<String, u64>,
    /// The rows that bear on the cohort (practice, supplier, source_table,
    /// source_row_id, extract_id, check_id, cohort), for the worklist.
    pub bearing: Option<DataFrame>,
}

/// The cohort's figures (collected: one row per practice and check) and
/// its bearing rows (a plan, not executed).
pub async fn cohort(
    ctx: &SessionContext,
    offences: &Path,
    results: &CohortResults<'_>,
    codes: &CohortCodes,
) -> Result<Context> {
    let what = format!("{} quality in context", results.key);
    let judged = judged(ctx, offences, results, codes)
        .await
        .map_err(query(&what))?;
    let one_if = |e: Expr| when(e, lit(1i64)).otherwise(lit(0i64));
    let key_if = |e: Expr| when(e, col("m_key")).end();
    let batches = judged
        .clone()
        .aggregate(
            vec![col("practice"), col("check_id")],
            vec![
                sum(one_if(col("bears")).map_err(query(&what))?).alias("rows"),
                count_distinct(key_if(col("bears")).map_err(query(&what))?).alias("persons"),
                count_distinct(key_if(col("dependent")).map_err(query(&what))?).alias("dependent"),
            ],
        )
        .map_err(query(&what))?
        .collect()
        .await
        .map_err(query(&what))?;
    let mut out = Context::default();
    for b in &batches {
        let text = |n: &str| -> Result<StringArray> {
            let c = datafusion::arrow::compute::cast(
                b.column_by_name(n).expect("aggregate column"),
                &DataType::Utf8,
            )
            .map_err(|e| query(&what)(e.into()))?;
            Ok(c.as_string::<i32>().clone())
        };
        let number = |n: &str| -> Result<Int64Array> {
            let c = datafusion::arrow::compute::cast(
                b.column_by_name(n).expect("aggregate column"),
                &DataType::Int64,
            )
            .map_err(|e| query(&what)(e.into()))?;
            Ok(c.as_primitive::<Int64Type>().clone())
        };
        let (practice, check) = (text("practice")?, text("check_id")?);
        let (rows, persons, dependent) =
            (number("rows")?, number("persons")?, number("dependent")?);
        let n = |a: &Int64Array, i: usize| if a.is_null(i) { 0 } else { a.value(i) as u64 };
        for i in 0..b.num_rows() {
            if n(&dependent, i) > 0 {
                *out.unmapped_dependent
                    .entry(practice.value(i).to_string())
                    .or_default() += n(&dependent, i);
            }
            if n(&rows, i) > 0 {
                out.figures.push(Figure {
                    practice: practice.value(i).to_string(),
                    check_id: check.value(i).to_string(),
                    rows: n(&rows, i),
                    persons: n(&persons, i),
                });
            }
        }
    }
    out.bearing = Some(
        judged
            .filter(col("bears").is_true())
            .and_then(|df| {
                df.select(vec![
                    col("practice"),
                    col("supplier"),
                    col("source_table"),
                    col("source_row_id"),
                    col("extract_id"),
                    col("check_id"),
                    lit(results.key).alias("cohort"),
                ])
            })
            .map_err(query(&what))?,
    );
    Ok(out)
}

/// The network file of checks bearing on a cohort: per check, one row per
/// practice with a non-zero figure and the network (`ALL`), rows and
/// persons disclosure-controlled as groups across the available practices
/// whose total is the network's (as `counts`). Text cells, sorted by check.
pub fn quality_batch(
    figures: &[Figure],
    available: &[String],
    policy: Option<&Policy>,
) -> RecordBatch {
    let network = crate::cohort::engine::NETWORK;
    let checks: BTreeSet<&str> = figures.iter().map(|f| f.check_id.as_str()).collect();
    let mut practices: Vec<&str> = available.iter().map(String::as_str).collect();
    practices.sort_unstable();
    let names = ["practice", "check_id", "rows", "persons"];
    let mut cols: Vec<Vec<String>> = vec![Vec::new(); names.len()];
    let text = |shown: Option<Shown>, n: u64| match (policy, shown) {
        (Some(_), Some(s)) => s.to_string(),
        _ => n.to_string(),
    };
    for check in checks {
        let of = |p: &str| {
            figures
                .iter()
                .find(|f| f.check_id == check && f.practice == p)
        };
        let rows: Vec<u64> = practices
            .iter()
            .map(|p| of(p).map_or(0, |f| f.rows))
            .collect();
        let persons: Vec<u64> = practices
            .iter()
            .map(|p| of(p).map_or(0, |f| f.persons))
            .collect();
        let grouped = |cells: &[u64]| -> (Vec<Option<Shown>>, Option<Shown>) {
            match policy {
                Some(p) => {
                    let (c, t) = p.group(cells);
                    (c.into_iter().map(Some).collect(), Some(t))
                }
                None => (vec![None; cells.len()], None),
            }
        };
        let (rows_shown, rows_total) = grouped(&rows);
        let (persons_shown, persons_total) = grouped(&persons);
        let mut push = |practice: &str, r: String, p: String| {
            for (c, v) in cols
                .iter_mut()
                .zip([practice.to_string(), check.to_string(), r, p])
            {
                c.push(v);
            }
        };
        for (i, p) in practices.iter().enumerate() {
            if rows[i] > 0 {
                push(
                    p,
                    text(rows_shown[i], rows[i]),
                    text(persons_shown[i], persons[i]),
                );
            }
        }
        let (total_rows, total_persons) = (rows.iter().sum(), persons.iter().sum());
        if total_rows > 0 {
            push(
                network,
                text(rows_total, total_rows),
                text(persons_total, total_persons),
            );
        }
    }
    let schema = Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(
        Arc::new(schema),
        cols.into_iter()
            .map(|c| Arc::new(StringArray::from(c)) as Arc<dyn Array>)
            .collect(),
    )
    .expect("quality columns")
}

/// The run's worklist, one row per (source row, check) with the cohorts it
/// bears on `;`-joined and sorted, and the check's description: a plan over
/// the cohorts' bearing rows.
pub fn worklist(ctx: &SessionContext, bearing: Vec<DataFrame>) -> Result<Option<DataFrame>> {
    let what = "worklist";
    let Some(union) = bearing
        .into_iter()
        .try_fold(None::<DataFrame>, |acc, df| {
            Ok::<_, datafusion::error::DataFusionError>(Some(match acc {
                None => df,
                Some(u) => u.union(df)?,
            }))
        })
        .map_err(query(what))?
    else {
        return Ok(None);
    };
    let problems = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("p_check_id", DataType::Utf8, false),
            Field::new("problem", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(StringArray::from(
                CHECKS.iter().map(|c| c.id).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                CHECKS.iter().map(|c| c.description).collect::<Vec<_>>(),
            )),
        ],
    )
    .map_err(|e| query(what)(e.into()))?;
    let cohorts = string_agg(col("cohort"), lit(";"))
        .distinct()
        .order_by(vec![col("cohort").sort(true, false)])
        .build()
        .map_err(query(what))?;
    let df = union
        .aggregate(
            vec![
                col("practice"),
                col("supplier"),
                col("source_table"),
                col("source_row_id"),
                col("extract_id"),
                col("check_id"),
            ],
            vec![cohorts.alias("cohorts")],
        )
        .and_then(|df| {
            df.join(
                ctx.read_batch(problems)?,
                JoinType::Left,
                &["check_id"],
                &["p_check_id"],
                None,
            )
        })
        .and_then(|df| {
            df.select(vec![
                col("practice"),
                col("supplier").alias("source_system"),
                col("source_table"),
                col("source_row_id"),
                col("extract_id"),
                col("check_id"),
                col("problem"),
                col("cohorts"),
            ])
        })
        .map_err(query(what))?;
    Ok(Some(df))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(b: &RecordBatch, name: &str) -> Vec<String> {
        let a = b.column_by_name(name).unwrap().as_string::<i32>();
        (0..a.len()).map(|i| a.value(i).to_string()).collect()
    }

    fn figure(practice: &str, check_id: &str, rows: u64, persons: u64) -> Figure {
        Figure {
            practice: practice.into(),
            check_id: check_id.into(),
            rows,
            persons,
        }
    }

    #[test]
    fn quality_is_grouped_per_check_across_practices() {
        let available = ["A81001".to_string(), "B82005".into(), "C83001".into()];
        let figures = [
            figure("A81001", "measurements.missing_unit", 3, 2),
            figure("B82005", "measurements.missing_unit", 40, 30),
            figure("C83001", "events.future", 12, 12),
        ];
        let b = quality_batch(&figures, &available, Some(&Policy::default()));
        // (practice, check, rows, persons): checks sorted, ALL after the
        // practices; a practice with no offending row has no line.
        let got: Vec<(String, String, String, String)> = (0..b.num_rows())
            .map(|i| {
                (
                    texts(&b, "practice")[i].clone(),
                    texts(&b, "check_id")[i].clone(),
                    texts(&b, "rows")[i].clone(),
                    texts(&b, "persons")[i].clone(),
                )
            })
            .collect();
        let row = |p: &str, c: &str, r: &str, n: &str| {
            (p.to_string(), c.to_string(), r.to_string(), n.to_string())
        };
        assert_eq!(
            got,
            [
                row("C83001", "events.future", "10", "10"),
                row("ALL", "events.future", "10", "10"),
                // 3 rows and 2 persons are suppressed; 40 and 30 with them,
                // as the network totals (43, 32) are shown.
                row(
                    "A81001",
                    "measurements.missing_unit",
                    "suppressed",
                    "suppressed"
                ),
                row(
                    "B82005",
                    "measurements.missing_unit",
                    "suppressed",
                    "suppressed"
                ),
                row("ALL", "measurements.missing_unit", "45", "30"),
            ]
        );
        let exact = quality_batch(&figures, &available, None);
        assert_eq!(texts(&exact, "rows"), ["12", "12", "3", "40", "43"]);
    }
}
