//! The checks as DataFusion plans over the store's Parquet.
//!
//! Each canonical table is read as a listing table (as the cohort engine
//! reads it) and widened with what its checks need, by joins only:
//! patients with per-practice NHS-number counts and cross-practice person
//! counts, events with the release's concepts, medications with the
//! release's dm+d codes, registrations with their overlaps. Every
//! table-level check is then a pair of built-in boolean expressions over
//! that frame: which rows it applies to (denominator) and which of those
//! offend (numerator). One aggregate per table, grouped by practice, counts
//! every check at once; only that small result is collected. Offending rows
//! are written per practice straight from the plan to Parquet, capped per
//! check, and name source locations only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::common::JoinType;
use datafusion::functions_aggregate::expr_fn::{count, max, min, sum};
use datafusion::prelude::*;

use super::checks::{CHECKS, RANGES, Subject};
use super::{Error, Result};
use crate::canonical::{CanonicalTable, units};

/// Counts of one table's checks: (practice, check id) → (numerator, denominator).
pub type Counts = BTreeMap<(String, String), (u64, u64)>;

/// The store and the release, registered for querying.
pub struct Sources {
    pub ctx: SessionContext,
    store: PathBuf,
    release: PathBuf,
}

/// One table-level check as expressions over its table's frame.
pub(crate) struct Rule {
    pub(crate) id: &'static str,
    pub(crate) applies: Expr,
    pub(crate) offends: Expr,
}

fn is(column: &str, value: &str) -> Expr {
    col(column).eq(lit(value))
}

fn flag(column: &str) -> Expr {
    col(column).is_true()
}

/// Numeric rows: a value, or a value flag saying why the value is unusable.
fn numeric() -> Expr {
    col("value")
        .is_not_null()
        .or(col("value_flag").is_not_null())
}

/// The recorded unit is `canonical` (compared as `canonical::units` does:
/// whitespace removed, lower case).
fn unit_is(canonical: &str) -> Expr {
    const WHITESPACE: &str = "\t\n\u{b}\u{c}\r \u{85}\u{a0}\u{1680}\u{2000}\u{2001}\u{2002}\u{2003}\u{2004}\u{2005}\u{2006}\u{2007}\u{2008}\u{2009}\u{200a}\u{2028}\u{2029}\u{202f}\u{205f}\u{3000}";
    let spellings = units::spellings()
        .iter()
        .find(|(c, _)| *c == canonical)
        .map(|(_, s)| *s)
        .expect("ranges name recognised units");
    lower(translate(col("unit"), lit(WHITESPACE), lit("")))
        .in_list(spellings.iter().map(|s| lit(*s)).collect(), false)
}

/// (applies, offends) of a `measurements.implausible_*` check.
fn range_rule(id: &str) -> (Expr, Expr) {
    let (mut applies, mut offends) = (lit(false), lit(false));
    for r in RANGES.iter().filter(|r| r.check == id) {
        let eligible = col("snomed_concept_id")
            .in_list(r.concepts.iter().map(|c| lit(*c)).collect(), false)
            .and(col("value").is_not_null())
            .and(col("value_flag").is_null())
            .and(unit_is(r.unit));
        let outside = col("value").lt(lit(r.low)).or(col("value").gt(lit(r.high)));
        applies = applies.or(eligible.clone());
        offends = offends.or(eligible.and(outside));
    }
    (applies, offends)
}

/// The rule of a table-level check.
fn rule(id: &'static str) -> Rule {
    let all = lit(true);
    let (applies, offends) = match id {
        "patients.nhs_number_missing" => (all, is("nhs_number_status", "missing")),
        "patients.nhs_number_invalid" => (all, is("nhs_number_status", "invalid")),
        "patients.nhs_number_placeholder" => (all, is("nhs_number_status", "placeholder")),
        "patients.nhs_number_unverified" => (
            all,
            col("nhs_number_status")
                .is_null()
                .or(col("nhs_number_status").not_eq(lit("verified"))),
        ),
        "patients.test_patient" => (all, flag("is_test_patient")),
        "patients.duplicate_in_practice" => (all, flag("dq_duplicate_in_practice")),
        "patients.at_other_practice" => (all, flag("dq_at_other_practice")),
        "patients.registered_elsewhere" => (all, flag("dq_registered_elsewhere")),
        "patients.sex_unknown" => (
            all,
            col("sex")
                .is_null()
                .or(col("sex").in_list(vec![lit("U"), lit("")], false)),
        ),
        "patients.date_of_birth_missing" => (all, col("date_of_birth").is_null()),
        "patients.date_of_birth_flagged" => (all, col("date_of_birth_flag").is_not_null()),
        "events.before_birth" => (all, is("date_flag", "before_birth")),
        "events.after_death" => (all, is("date_flag", "after_death")),
        "events.future" | "medications.future" => (all, is("date_flag", "future")),
        "events.floor_date" => (all, is("date_flag", "floor_date")),
        "events.unknown_date" | "medications.unknown_date" => {
            (all, is("date_flag", "unknown_date"))
        }
        "events.partial_date" => (
            all,
            col("date_precision").in_list(vec![lit("Y"), lit("YM")], false),
        ),
        "codes.events_unmapped" => (all, is("mapping_kind", "unmapped")),
        // EMIS local codes carry no SNOMED CT concept; TPP local codes are CTV3 Y-codes.
        "codes.events_local_only" => (
            all,
            is("code_system", "emis_code_id")
                .and(col("snomed_concept_id").is_null())
                .or(is("code_system", "ctv3").and(col("source_code").like(lit("Y%")))),
        ),
        "codes.events_not_in_release" => (
            col("snomed_concept_id").is_not_null(),
            col("dq_concept_active").is_null(),
        ),
        "codes.events_inactive" => (
            col("dq_concept_active").is_not_null(),
            col("dq_concept_active").is_false(),
        ),
        "codes.events_history_substituted" | "medications.history_substituted" => {
            (all, is("mapping_kind", "history_substituted"))
        }
        "measurements.missing_unit" => (numeric(), is("value_flag", "missing_unit")),
        "measurements.unknown_unit" => (numeric(), is("value_flag", "unknown_unit")),
        "measurements.placeholder_value" => (numeric(), is("value_flag", "placeholder_value")),
        "measurements.non_finite_value" => (numeric(), is("value_flag", "non_finite_value")),
        "medications.no_dmd_code" => (all, col("dmd_code").is_null()),
        "medications.dmd_not_in_release" => {
            (col("dmd_code").is_not_null(), col("dq_dmd_known").is_null())
        }
        "registrations.ends_before_start" => (all, col("end_date").lt(col("start_date"))),
        "registrations.overlapping" => (is("registration_type", "gms"), flag("dq_overlapping")),
        implausible if implausible.starts_with("measurements.implausible_") => {
            range_rule(implausible)
        }
        other => unreachable!("no rule for table check {other}"),
    };
    Rule {
        id,
        applies,
        offends,
    }
}

pub(crate) fn rules(table: CanonicalTable) -> Vec<Rule> {
    CHECKS
        .iter()
        .filter(|c| c.subject == Subject::Table(table))
        .map(|c| rule(c.id))
        .collect()
}

/// Writes a rows file: zstd, one row group.
fn write_rows_file(path: &Path, batch: &RecordBatch) -> Result<()> {
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::basic::{Compression, ZstdLevel};
    use datafusion::parquet::file::properties::WriterProperties;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("level 3 is valid"),
        ))
        .build();
    let parquet = |e: datafusion::parquet::errors::ParquetError| Error::Engine(e.into());
    let file = std::fs::File::create(path).map_err(io)?;
    let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(parquet)?;
    w.write(batch).map_err(parquet)?;
    w.close().map_err(parquet)?;
    Ok(())
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn count_of(batch: &RecordBatch, name: &str, i: usize) -> Result<u64> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| Error::Internal(format!("aggregate lacks {name}")))?;
    let column =
        datafusion::arrow::compute::cast(column, &datafusion::arrow::datatypes::DataType::Int64)?;
    let values = column.as_primitive::<Int64Type>();
    Ok(if values.is_null(i) {
        0
    } else {
        values.value(i) as u64
    })
}

impl Sources {
    pub fn new(ctx: SessionContext, store: &Path, release: &Path) -> Sources {
        Sources {
            ctx,
            store: store.to_path_buf(),
            release: release.to_path_buf(),
        }
    }

    fn table_dir(&self, table: CanonicalTable) -> PathBuf {
        self.store.join("canonical").join(table.name())
    }

    /// Whether any practice holds the table.
    pub fn has(&self, table: CanonicalTable) -> bool {
        self.table_dir(table).is_dir()
    }

    async fn read(&self, table: CanonicalTable) -> Result<DataFrame> {
        let schema = table.schema();
        let dir = format!("{}/", path_str(&self.table_dir(table)));
        Ok(self
            .ctx
            .read_parquet(dir, ParquetReadOptions::default().schema(&schema))
            .await?)
    }

    async fn release_table(&self, name: &str) -> Result<DataFrame> {
        let path = self.release.join(format!("{name}.parquet"));
        Ok(self
            .ctx
            .read_parquet(path_str(&path), ParquetReadOptions::default())
            .await?)
    }

    /// The table with the columns its checks need (`dq_*`).
    pub(crate) async fn frame(&self, table: CanonicalTable) -> Result<DataFrame> {
        let base = self.read(table).await?;
        Ok(match table {
            CanonicalTable::Patients => {
                let verified = base.clone().filter(is("nhs_number_status", "verified"))?;
                // The same verified number twice in one practice.
                let twice = verified
                    .clone()
                    .aggregate(
                        vec![col("practice"), col("nhs_number")],
                        vec![count(lit(1)).alias("n")],
                    )?
                    .filter(col("n").gt(lit(1)))?
                    .select(vec![
                        col("practice").alias("dup_practice"),
                        col("nhs_number").alias("dup_number"),
                        lit(true).alias("dq_duplicate_in_practice"),
                    ])?;
                // One person (verified number, hence one key) at several
                // practices: the least and greatest practice differ. Not
                // `count(DISTINCT practice)`, whose per-person sets held
                // 12 GiB over 900,000 people under an 8 GiB limit.
                let elsewhere = verified
                    .aggregate(
                        vec![col("person_key")],
                        vec![
                            min(col("practice")).alias("first_practice"),
                            max(col("practice")).alias("last_practice"),
                        ],
                    )?
                    .filter(col("first_practice").not_eq(col("last_practice")))?
                    .select(vec![
                        col("person_key").alias("other_key"),
                        lit(true).alias("dq_at_other_practice"),
                    ])?;
                let patients = base
                    .join(
                        twice,
                        JoinType::Left,
                        &["practice", "nhs_number"],
                        &["dup_practice", "dup_number"],
                        None,
                    )?
                    .join(
                        elsewhere,
                        JoinType::Left,
                        &["person_key"],
                        &["other_key"],
                        None,
                    )?;
                if !self.has(CanonicalTable::Registrations) {
                    return Ok(patients.with_column(
                        "dq_registered_elsewhere",
                        lit(datafusion::scalar::ScalarValue::Boolean(None)),
                    )?);
                }
                patients.join(
                    self.registered_elsewhere().await?,
                    JoinType::Left,
                    &["practice", "person_key"],
                    &["re_practice", "re_key"],
                    None,
                )?
            }
            CanonicalTable::Events => {
                let concepts = self.release_table("concepts").await?.select(vec![
                    col("id").alias("concept_id"),
                    col("active").alias("dq_concept_active"),
                ])?;
                base.join(
                    concepts,
                    JoinType::Left,
                    &["snomed_concept_id"],
                    &["concept_id"],
                    None,
                )?
            }
            CanonicalTable::Medications => {
                let ids = |t: &'static str, c: &'static str| async move {
                    Ok::<_, Error>(
                        self.release_table(t)
                            .await?
                            .select(vec![col(c).alias("dmd_id")])?,
                    )
                };
                let known = ids("dmd_vtm", "vtmid")
                    .await?
                    .union(ids("dmd_vmp", "vpid").await?)?
                    .union(ids("dmd_amp", "apid").await?)?
                    .distinct()?
                    .select(vec![col("dmd_id"), lit(true).alias("dq_dmd_known")])?;
                base.join(known, JoinType::Left, &["dmd_code"], &["dmd_id"], None)?
            }
            CanonicalTable::Registrations => {
                let other = base
                    .clone()
                    .filter(is("registration_type", "gms"))?
                    .select(vec![
                        col("practice").alias("o_practice"),
                        col("person_key").alias("o_person_key"),
                        col("source_row_id").alias("o_row"),
                        col("start_date").alias("o_start"),
                        col("end_date").alias("o_end"),
                    ])?;
                // Strictly overlapping: a registration ending on the day the
                // next one starts is a transfer, not an overlap.
                let overlap = col("source_row_id")
                    .not_eq(col("o_row"))
                    .and(
                        col("start_date")
                            .lt(col("o_end"))
                            .or(col("o_end").is_null()),
                    )
                    .and(
                        col("o_start")
                            .lt(col("end_date"))
                            .or(col("end_date").is_null()),
                    );
                let overlapping = base
                    .clone()
                    .filter(is("registration_type", "gms"))?
                    .join(
                        other,
                        JoinType::Inner,
                        &["practice", "person_key"],
                        &["o_practice", "o_person_key"],
                        Some(overlap),
                    )?
                    .aggregate(vec![col("practice"), col("source_row_id")], vec![])?
                    .select(vec![
                        col("practice").alias("ov_practice"),
                        col("source_row_id").alias("ov_row"),
                        lit(true).alias("dq_overlapping"),
                    ])?;
                base.join(
                    overlapping,
                    JoinType::Left,
                    &["practice", "source_row_id"],
                    &["ov_practice", "ov_row"],
                    None,
                )?
            }
        })
    }

    /// (practice, person key) of linked people (verified NHS number) with GMS
    /// registrations at two organisations that overlap: registered at two
    /// practices at once.
    async fn registered_elsewhere(&self) -> Result<DataFrame> {
        let gms = self
            .read(CanonicalTable::Registrations)
            .await?
            .filter(is("registration_type", "gms").and(col("person_key").like(lit("N%"))))?;
        let other = gms.clone().select(vec![
            col("registered_at").alias("b_registered_at"),
            col("person_key").alias("b_key"),
            col("start_date").alias("b_start"),
            col("end_date").alias("b_end"),
        ])?;
        // Compared by the organisation each registration names, not by the
        // file it came from: TPP sends a patient's registrations at other
        // practices too, which repeat what that practice's own record holds.
        // Strictly overlapping, as for `registrations.overlapping`.
        let overlap = col("registered_at")
            .not_eq(col("b_registered_at"))
            .and(
                col("start_date")
                    .lt(col("b_end"))
                    .or(col("b_end").is_null()),
            )
            .and(
                col("b_start")
                    .lt(col("end_date"))
                    .or(col("end_date").is_null()),
            );
        Ok(gms
            .join(
                other,
                JoinType::Inner,
                &["person_key"],
                &["b_key"],
                Some(overlap),
            )?
            .aggregate(vec![col("practice"), col("person_key")], vec![])?
            .select(vec![
                col("practice").alias("re_practice"),
                col("person_key").alias("re_key"),
                lit(true).alias("dq_registered_elsewhere"),
            ])?)
    }

    /// Every check of `table`, per practice, and the rows per practice.
    pub async fn counts(&self, table: CanonicalTable) -> Result<(Counts, BTreeMap<String, u64>)> {
        let rules = rules(table);
        let mut aggregates = vec![count(lit(1)).alias("rows")];
        let one = |e: Expr| when(e, lit(1i64)).otherwise(lit(0i64));
        for r in &rules {
            aggregates.push(sum(one(r.applies.clone())?).alias(format!("d:{}", r.id)));
            aggregates.push(
                sum(one(r.applies.clone().and(r.offends.clone()))?).alias(format!("n:{}", r.id)),
            );
        }
        let batches = self
            .frame(table)
            .await?
            .aggregate(vec![col("practice")], aggregates)?
            .collect()
            .await?;
        let (mut counts, mut rows) = (Counts::new(), BTreeMap::new());
        for b in &batches {
            let practices = b
                .column_by_name("practice")
                .ok_or_else(|| Error::Internal("aggregate lacks practice".into()))?;
            let practices = datafusion::arrow::compute::cast(
                practices,
                &datafusion::arrow::datatypes::DataType::Utf8,
            )?;
            let practices = practices.as_string::<i32>();
            for i in 0..b.num_rows() {
                let practice = practices.value(i).to_string();
                rows.insert(practice.clone(), count_of(b, "rows", i)?);
                for r in &rules {
                    let n = count_of(b, &format!("n:{}", r.id), i)?;
                    let d = count_of(b, &format!("d:{}", r.id), i)?;
                    counts.insert((practice.clone(), r.id.to_string()), (n, d));
                }
            }
        }
        Ok((counts, rows))
    }

    /// The rows of `table` that offend one of its checks, one row per (row,
    /// check), each check meaning what it means in `phm dq`: `check_id`,
    /// `table`, `practice`, `person_key`, `supplier`, `source_table`,
    /// `source_row_id`, `extract_id` (Utf8) and `concept` (Int64: the
    /// event's SNOMED CT concept or the dm+d code; null for the
    /// patients and registrations tables). One scan of the table: rows that
    /// offend nothing are dropped first, the rest are paired with the checks
    /// they offend by a join on a small list of check ids.
    pub(crate) async fn offending(&self, table: CanonicalTable) -> Result<DataFrame> {
        use datafusion::arrow::datatypes::DataType;
        let rules = rules(table);
        let offends = |r: &Rule| r.applies.clone().and(r.offends.clone()).is_true();
        let any = rules
            .iter()
            .map(offends)
            .reduce(Expr::or)
            .unwrap_or(lit(false));
        let mut which: Option<datafusion::logical_expr::conditional_expressions::CaseBuilder> =
            None;
        for r in &rules {
            let (id, test) = (col("check_id").eq(lit(r.id)), offends(r));
            which = Some(match which {
                None => when(id, test),
                Some(mut w) => w.when(id, test),
            });
        }
        let Some(mut which) = which else {
            return Err(Error::Internal(format!("no checks for {}", table.name())));
        };
        // A VALUES list rather than a table in memory: the plan stays
        // serialisable, so it runs on a cluster as here.
        let ids = DataFrame::new(
            self.ctx.state(),
            datafusion::logical_expr::LogicalPlanBuilder::values(
                rules.iter().map(|r| vec![lit(r.id)]).collect(),
            )?
            .project(vec![col("column1").alias("check_id")])?
            .build()?,
        );
        let concept = match table {
            CanonicalTable::Events => cast(col("snomed_concept_id"), DataType::Int64),
            CanonicalTable::Medications => cast(col("dmd_code"), DataType::Int64),
            _ => lit(datafusion::scalar::ScalarValue::Int64(None)),
        };
        let text = |c: &str| cast(col(c), DataType::Utf8).alias(c);
        let rows = self.frame(table).await?.filter(any)?;
        Ok(ids
            .join_on(rows, JoinType::Inner, [which.otherwise(lit(false))?])?
            .select(vec![
                text("check_id"),
                lit(table.name()).alias("table"),
                text("practice"),
                text("person_key"),
                text("supplier"),
                text("source_table"),
                text("source_row_id"),
                text("extract_id"),
                concept.alias("concept"),
            ])?)
    }

    /// Quarantined rows per practice.
    pub async fn quarantined(&self) -> Result<BTreeMap<String, u64>> {
        let dir = self.store.join("quarantine");
        let mut out = BTreeMap::new();
        if !dir.is_dir() {
            return Ok(out);
        }
        let schema = crate::ingest::quarantine::schema();
        let batches = self
            .ctx
            .read_parquet(
                format!("{}/", path_str(&dir)),
                ParquetReadOptions::default().schema(&schema),
            )
            .await?
            .aggregate(vec![col("practice")], vec![count(lit(1)).alias("rows")])?
            .collect()
            .await?;
        for b in &batches {
            let practices = b.column(0).as_string::<i32>();
            for i in 0..b.num_rows() {
                out.insert(practices.value(i).to_string(), count_of(b, "rows", i)?);
            }
        }
        Ok(out)
    }

    /// Writes the offending rows of one practice (at most `cap` per check)
    /// to `path`: check id and source location, nothing that identifies.
    pub async fn write_rows(
        &self,
        practice: &str,
        tables: &[CanonicalTable],
        enabled: &dyn Fn(&str) -> bool,
        cap: usize,
        path: &Path,
    ) -> Result<()> {
        let mut union: Option<DataFrame> = None;
        for table in tables {
            let frame = self.frame(*table).await?;
            for r in rules(*table).into_iter().filter(|r| enabled(r.id)) {
                let rows = frame
                    .clone()
                    .filter(
                        col("practice")
                            .eq(lit(practice))
                            .and(r.applies)
                            .and(r.offends),
                    )?
                    .select(vec![
                        lit(r.id).alias("check_id"),
                        col("source_table"),
                        col("source_row_id"),
                        col("extract_id"),
                    ])?
                    .sort(vec![
                        col("source_table").sort(true, false),
                        col("source_row_id").sort(true, false),
                    ])?
                    .limit(0, Some(cap))?;
                union = Some(match union {
                    None => rows,
                    Some(u) => u.union(rows)?,
                });
            }
        }
        let Some(union) = union else {
            return Ok(());
        };
        let parent = path.parent().expect("rows files live in a folder");
        std::fs::create_dir_all(parent).map_err(|source| Error::Io {
            path: parent.to_path_buf(),
            source,
        })?;
        let union = union.sort(vec![
            col("check_id").sort(true, false),
            col("source_table").sort(true, false),
            col("source_row_id").sort(true, false),
        ])?;
        // At most `cap` rows per check: collected and written here, so a
        // cluster's run writes the same bytes as this machine's (a plan's
        // Parquet sink records the sort order only where it was planned).
        let schema = std::sync::Arc::new(union.schema().as_arrow().clone());
        let batches = union.collect().await?;
        let batch = datafusion::arrow::compute::concat_batches(&schema, &batches)?;
        write_rows_file(path, &batch)
    }
}
