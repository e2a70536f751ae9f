//! Applying a delivery's rows to a table's state as a DataFusion plan: the
//! state is read from its Parquet file, the new state is written straight to
//! another Parquet file as it streams out of the plan, and only the counts and
//! the quarantined row indices are collected. Sorts spill to a scratch folder
//! under a bounded memory pool, so a table's size no longer sets the merge's
//! memory.
//!
//! The plan implements exactly the semantics of [`crate::source::merge::merge`],
//! which stays as the reference implementation (the two are compared by
//! `tests/merge_plan.rs` on generated states and deltas). Over `state ∪ delta`,
//! sorted by the key (string key columns trimmed, empty as missing), the state's
//! row first, then version, then file row:
//! 1. a delta row without a key, or (with a version column) a version missing or
//!    below zero, is quarantined and takes no further part;
//! 2. a delta row older than the state's row for its key is superseded (window 1:
//!    the last state row's version and key so far); the others are *live*;
//! 3. a live delta row is a duplicate when the live row before it is a delta row,
//!    neither is a delete, and every source column is equal, nulls equal
//!    (window 2: `lag` of each column);
//! 4. among the live rows that are not duplicates (window 3: `lead` over them),
//!    the last one wins: a row it follows is superseded, a delete always counts
//!    as deleted, and the key leaves the state when the winner is a delete. A
//!    delete is *not found* when the row before it is none or a delete.
//!
//! Where the two could differ, on data no supplier sends: the reference joins a
//! composite key into one string with U+001F, so key values holding that
//! character could collide there and not here; and duplicates are found with
//! SQL `IS NOT DISTINCT FROM`, which may treat float NaN and -0.0 otherwise
//! than Arrow's array equality.
//!
//! Invariants: every delta row gets one outcome, so the counts reconcile as the
//! reference's do; the new state holds at most one row per key, in the order of
//! the plan's one sort (by key), so its file is the same on every run.
//! Only built-in expressions are used (no UDFs), so the plan can move to a
//! distributed engine unchanged. The delta itself is still an in-memory table
//! (it is read and normalised by [`crate::source::read::read_source_file`]).
//!
//! Ingest does not run this plan yet: on one EMIS practice it was much slower
//! than the reference at no lower peak memory (see `docs/ingest.md`).

use std::ops::Not;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Int8Array, Int64Array, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{cast, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::config::TableParquetOptions;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::functions::expr_fn::{btrim, nullif};
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::functions_aggregate::first_last::last_value_udaf;
use datafusion::functions_window::expr_fn::{lag, lead};
use datafusion::logical_expr::expr::{NullTreatment, WindowFunction};
use datafusion::logical_expr::{
    Expr, ExprFunctionExt, Operator, SortExpr, WindowFrame, WindowFrameBound, WindowFrameUnits,
    WindowFunctionDefinition, binary_expr, case, cast as cast_expr, ident, lit, when,
};
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionConfig, SessionContext};

use crate::source::merge::MergeCounts;
use crate::source::read::{EXTRACT_ID, EXTRACTED_AT, SOURCE_FILE, SOURCE_ROW, state_schema};
use crate::source::table::{DeleteMarker, TableSpec, Ty};

#[derive(Debug, thiserror::Error)]
pub enum MergePlanError {
    #[error(
        "merging table {table} into the state {state}: {message}; hint: the state file may be damaged (phm ingest checks it against state.json) or the merge ran out of memory or spill space"
    )]
    Query {
        table: &'static str,
        state: String,
        message: String,
    },
    #[error("{path}: cannot prepare the merge's scratch folder: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T, E = MergePlanError> = std::result::Result<T, E>;

/// A memory limit for one practice's merges, beyond which their sorts spill.
pub const MERGE_MEMORY_LIMIT: usize = 512 << 20;

const CHUNK_ROWS: usize = 8192;

/// What the plan reports about one table's delivery; the new state is in the
/// file it was asked to write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanOutcome {
    pub counts: MergeCounts,
    /// Indices (into the delivery's batch) of rows without a usable key.
    pub missing_key: Vec<u32>,
    /// Indices of rows whose version is missing or below zero.
    pub invalid_version: Vec<u32>,
    /// For the patient table: ids of patients removed by this delivery, in the
    /// order the deletes apply.
    pub removed_patients: Vec<String>,
    /// Rows in the new state.
    pub state_rows: u64,
}

/// A DataFusion context for merges, with a bounded, spilling memory pool and its
/// own async runtime (ingest runs practices on plain threads).
pub struct Merger {
    runtime: tokio::runtime::Runtime,
    ctx: SessionContext,
}

/// Columns the plan adds; none can clash with a supplier column (`__phm_`).
const SIDE: &str = "__phm_side";
const ROW: &str = "__phm_row";
const VERSION: &str = "__phm_version";
const DELETE: &str = "__phm_delete";
const STATE_VERSION: &str = "__phm_state_version";
const LIVE: &str = "__phm_live";
const DUPLICATE: &str = "__phm_duplicate";
const PREV_SIDE: &str = "__phm_prev_side";
const PREV_LIVE: &str = "__phm_prev_live";
const PREV_DELETE: &str = "__phm_prev_delete";
const NOTHING_BEFORE: &str = "__phm_nothing_before";
const SAME_KEY_BEFORE: &str = "__phm_same_key_before";
const SAME_KEY_AFTER: &str = "__phm_same_key_after";
const OUTCOME: &str = "__phm_outcome";
const NOT_FOUND: &str = "__phm_not_found";
const REMOVED: &str = "__phm_removed";
const KEEP: &str = "__phm_keep";

/// Outcome codes of a delta row (quarantined rows never reach the windows).
const APPLIED: i8 = 1;
const SUPERSEDED: i8 = 2;
const DUPLICATE_ROW: i8 = 3;
const DELETED: i8 = 4;

fn key_name(i: usize) -> String {
    format!("__phm_key{i}")
}

fn prev_name(i: usize) -> String {
    format!("__phm_prev{i}")
}

impl Merger {
    /// A merger spilling into `spill_dir` beyond `memory_limit` bytes.
    pub fn new(spill_dir: &Path, memory_limit: usize) -> Result<Merger> {
        let io = |source| MergePlanError::Io {
            path: spill_dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(spill_dir).map_err(io)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(io)?;
        let mut config = SessionConfig::new()
            .with_target_partitions(1)
            .with_information_schema(false);
        // The state is written and read as plain Utf8, as the reference holds it.
        config
            .options_mut()
            .execution
            .parquet
            .schema_force_view_types = false;
        // Sort the union as one stream: DataFusion 55 loses the union's
        // equivalences when it sorts each branch and merges them.
        config.options_mut().optimizer.repartition_sorts = false;
        let env = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(memory_limit)))
            .with_temp_file_path(spill_dir)
            .build()
            .map_err(|e| MergePlanError::Io {
                path: spill_dir.to_path_buf(),
                source: std::io::Error::other(e.to_string()),
            })?;
        Ok(Merger {
            runtime,
            ctx: SessionContext::new_with_config_rt(config, Arc::new(env)),
        })
    }

    /// Applies `delta` (one file's rows, in the state schema) to the state held in
    /// `state` (none: an empty state), writing the new state to `out`.
    pub fn merge(
        &self,
        spec: &'static TableSpec,
        state: Option<&Path>,
        delta: &RecordBatch,
        out: &Path,
    ) -> Result<PlanOutcome> {
        let query = |e: DataFusionError| MergePlanError::Query {
            table: spec.name,
            state: state.map_or("(empty)".to_string(), |p| p.display().to_string()),
            message: e.to_string(),
        };
        self.runtime
            .block_on(self.run(spec, state, delta, out))
            .map_err(query)
    }

    async fn run(
        &self,
        spec: &'static TableSpec,
        state: Option<&Path>,
        delta: &RecordBatch,
        out: &Path,
    ) -> Result<PlanOutcome, DataFusionError> {
        let columns = state_columns(spec);
        let delta_df = with_merge_columns(spec, self.ctx.read_batches(chunks(delta)?)?, 1)?;
        let (missing_key, invalid_version) = quarantined(spec, delta_df.clone()).await?;

        let mut union = delta_df.filter(usable(spec))?;
        if let Some(path) = state {
            let state_df = self
                .ctx
                .read_parquet(
                    path.to_string_lossy().as_ref(),
                    ParquetReadOptions::default(),
                )
                .await?;
            // The file's own nullability and string types aside: the state schema.
            let aligned = state_df.select(
                state_schema(spec)
                    .fields()
                    .iter()
                    .map(|f| cast_expr(ident(f.name()), f.data_type().clone()).alias(f.name()))
                    .collect::<Vec<_>>(),
            )?;
            let state_df = with_merge_columns(spec, aligned, 0)?;
            union = state_df.union(union)?;
        }
        let classified = classify(spec, union)?;

        let new_state = classified
            .ranked
            .clone()
            .filter(ident(KEEP))?
            .select(columns.iter().map(|c| ident(*c)).collect::<Vec<_>>())?;
        let mut parquet = TableParquetOptions::default();
        parquet.global.compression = Some("zstd(1)".to_string());
        new_state
            .write_parquet(
                &out.to_string_lossy(),
                DataFrameWriteOptions::new().with_single_file_output(true),
                Some(parquet),
            )
            .await?;
        if !out.exists() {
            // An empty result writes no file: write an empty state.
            let empty = RecordBatch::new_empty(state_schema(spec));
            crate::store::write_parquet(out, &empty, &[])
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
        }
        let state_rows = self
            .ctx
            .read_parquet(
                out.to_string_lossy().as_ref(),
                ParquetReadOptions::default(),
            )
            .await?
            .count()
            .await? as u64;

        let deltas = classified.ranked.filter(ident(SIDE).eq(lit(1i8)))?;
        // Counted apart: a union of the two trips DataFusion 55's nullability check.
        let mut counts = MergeCounts::default();
        tally(deltas.clone(), &mut counts).await?;
        tally(classified.settled, &mut counts).await?;
        counts.rows_in = delta.num_rows() as u64;
        counts.quarantined = (missing_key.len() + invalid_version.len()) as u64;
        let patient_table = spec.patient.is_some_and(|p| spec.key == [p]);
        let removed_patients = if patient_table {
            removed_keys(spec, deltas).await?
        } else {
            Vec::new()
        };
        Ok(PlanOutcome {
            counts,
            missing_key,
            invalid_version,
            removed_patients,
            state_rows,
        })
    }
}

/// The delivery in batches of [`CHUNK_ROWS`] rows with their own buffers: a
/// sort accounts a batch at the size of its buffers, so slices of one large
/// batch would each count as all of it.
fn chunks(delta: &RecordBatch) -> Result<Vec<RecordBatch>, DataFusionError> {
    if delta.num_rows() == 0 {
        // An empty list of batches would carry no schema.
        return Ok(vec![delta.clone()]);
    }
    (0..delta.num_rows())
        .step_by(CHUNK_ROWS)
        .map(|start| {
            let end = (start + CHUNK_ROWS).min(delta.num_rows());
            let rows = UInt32Array::from_iter_values(start as u32..end as u32);
            Ok(take_record_batch(delta, &rows)?)
        })
        .collect()
}

fn state_columns(spec: &TableSpec) -> Vec<&'static str> {
    let schema = state_schema(spec);
    let provenance = [EXTRACT_ID, EXTRACTED_AT, SOURCE_FILE, SOURCE_ROW];
    let mut names: Vec<&'static str> = spec.columns.iter().map(|(n, _)| *n).collect();
    names.extend(provenance);
    debug_assert_eq!(names.len(), schema.fields().len());
    names
}

/// The key column `name` as the merge compares it: strings trimmed, empty as missing.
fn key_expr(spec: &TableSpec, name: &str) -> Expr {
    let ty = spec
        .columns
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, ty)| *ty);
    match ty {
        Some(Ty::Str) => nullif(btrim(vec![ident(name)]), lit("")),
        _ => ident(name),
    }
}

/// Adds the side (0 state, 1 delta), the row within the delivery, the version,
/// the delete marker and the key columns the windows partition on.
fn with_merge_columns(
    spec: &TableSpec,
    df: DataFrame,
    side: i8,
) -> Result<DataFrame, DataFusionError> {
    let mut exprs: Vec<Expr> = state_columns(spec).iter().map(|c| ident(*c)).collect();
    exprs.push(lit(side).alias(SIDE));
    // The state's rows number below zero. Not a constant: DataFusion 55 drops
    // a union branch's constant sort columns and then rejects the merged order.
    exprs.push(if side == 1 {
        ident(SOURCE_ROW).alias(ROW)
    } else {
        (lit(-1i64) - ident(SOURCE_ROW)).alias(ROW)
    });
    if let Some(v) = spec.version {
        exprs.push(ident(v).alias(VERSION));
    }
    let delete = match (side, spec.delete) {
        (0, _) | (_, DeleteMarker::None) => lit(false),
        (_, DeleteMarker::EmisDeleted) => ident("Deleted").is_true(),
        (_, DeleteMarker::TppRemovedData) => ident("RemovedData").eq(lit(1i8)).is_true(),
    };
    exprs.push(delete.alias(DELETE));
    for (i, k) in spec.key.iter().enumerate() {
        exprs.push(key_expr(spec, k).alias(key_name(i)));
    }
    df.select(exprs)
}

fn has_key(spec: &TableSpec) -> Expr {
    (0..spec.key.len())
        .map(|i| ident(key_name(i)).is_not_null())
        .reduce(Expr::and)
        .unwrap_or(lit(true))
}

fn valid_version(spec: &TableSpec) -> Expr {
    match spec.version {
        Some(_) => ident(VERSION)
            .is_not_null()
            .and(ident(VERSION).gt_eq(lit(0i64))),
        None => lit(true),
    }
}

/// Delta rows that take part in the merge: keyed, and orderable.
fn usable(spec: &TableSpec) -> Expr {
    has_key(spec).and(valid_version(spec))
}

/// Row indices without a key, and with a key but no usable version, ascending.
async fn quarantined(
    spec: &TableSpec,
    delta: DataFrame,
) -> Result<(Vec<u32>, Vec<u32>), DataFusionError> {
    let batches = delta
        .filter(usable(spec).not())?
        .select(vec![ident(ROW), has_key(spec).alias("has_key")])?
        .collect()
        .await?;
    let mut missing = Vec::new();
    let mut invalid = Vec::new();
    for b in &batches {
        let rows = b.column(0).as_primitive::<Int64Type>();
        let keyed = b.column(1).as_boolean();
        for i in 0..b.num_rows() {
            let row = rows.value(i) as u32;
            if keyed.value(i) {
                invalid.push(row);
            } else {
                missing.push(row);
            }
        }
    }
    missing.sort_unstable();
    invalid.sort_unstable();
    Ok((missing, invalid))
}

/// The order every window reads the rows in: by key, the state's row first,
/// then the delivery's rows by version, then file row.
fn window_order(spec: &TableSpec) -> Vec<SortExpr> {
    let mut order: Vec<SortExpr> = (0..spec.key.len())
        .map(|i| ident(key_name(i)).sort(true, true))
        .collect();
    order.extend(processing_order(spec));
    order
}

/// The state's row first, then the delivery's rows by version, then file row.
fn processing_order(spec: &TableSpec) -> Vec<SortExpr> {
    let mut order = vec![ident(SIDE).sort(true, true)];
    if spec.version.is_some() {
        order.push(ident(VERSION).sort(true, true));
    }
    order.push(ident(ROW).sort(true, true));
    order
}

/// `f` over all rows in [`window_order`], one sort for every window. No
/// `PARTITION BY`: DataFusion evaluates each partition on its own, which costs
/// dearly with one partition per key, so a window compares the neighbouring
/// row's key itself ([`same_key`]).
fn over(f: Expr, spec: &TableSpec, frame: Option<WindowFrame>) -> Result<Expr, DataFusionError> {
    let b = f.order_by(window_order(spec));
    match frame {
        Some(frame) => b.window_frame(frame).build(),
        None => b.build(),
    }
}

/// True when the row `offset` rows away (negative: before) has this row's key.
fn same_key(spec: &TableSpec, offset: i64) -> Result<Expr, DataFusionError> {
    let mut same = Vec::new();
    for i in 0..spec.key.len() {
        let k = ident(key_name(i));
        let other = if offset < 0 {
            lag(k.clone(), Some(-offset), None)
        } else {
            lead(k.clone(), Some(offset), None)
        };
        same.push(over(other, spec, None)?.eq(k));
    }
    flag(same.into_iter().reduce(Expr::and).unwrap_or(lit(true)))
}

fn rows_frame(start: WindowFrameBound, end: WindowFrameBound) -> WindowFrame {
    WindowFrame::new_bounds(WindowFrameUnits::Rows, start, end)
}

/// `cond` as a non-null boolean, null read as false. A `CASE`, because DataFusion
/// 55 plans `IS TRUE` over window outputs as nullable where the logical plan
/// says it is not, and then refuses the plan.
fn flag(cond: Expr) -> Result<Expr, DataFusionError> {
    when(cond, lit(true)).otherwise(lit(false))
}

fn aggregate_window(f: Arc<datafusion::logical_expr::AggregateUDF>, arg: Expr) -> Expr {
    Expr::from(WindowFunction::new(
        WindowFunctionDefinition::AggregateUDF(f),
        vec![arg],
    ))
}

/// The merge's rows, classified: `settled` delta rows whose outcome the first
/// two windows decide (stale, duplicate), and `ranked`, the state's row and the
/// live delta rows that are not duplicates, each with its outcome and whether
/// it stays in the new state.
struct Classified {
    settled: DataFrame,
    ranked: DataFrame,
}

/// In window order a key's rows are: its state row, the delta rows older than
/// it (stale, not *live*), then the live delta rows, since the order is by
/// version. So the row before a live delta row is none (no state), the state
/// row or a stale row (the state is current), or a live delta row.
///
/// Every window is bounded (it looks only backwards, or one row ahead), so
/// DataFusion streams it over the sorted rows.
fn classify(spec: &TableSpec, union: DataFrame) -> Result<Classified, DataFusionError> {
    let mut df = union;
    let delta = ident(SIDE).eq(lit(1i8));
    // Window 1: the version and key of the last state row so far; a delta row
    // older than the state's row of its own key is stale.
    let live = match spec.version {
        Some(_) => {
            let so_far = rows_frame(
                WindowFrameBound::Preceding(ScalarValue::UInt64(None)),
                WindowFrameBound::CurrentRow,
            );
            let last_state = |value: Expr| -> Result<Expr, DataFusionError> {
                aggregate_window(
                    last_value_udaf(),
                    when(ident(SIDE).eq(lit(0i8)), value).end()?,
                )
                .order_by(window_order(spec))
                .null_treatment(NullTreatment::IgnoreNulls)
                .window_frame(so_far.clone())
                .build()
            };
            df = df.with_column(STATE_VERSION, last_state(ident(VERSION))?)?;
            let mut state_key = Vec::new();
            for i in 0..spec.key.len() {
                let name = format!("__phm_state_key{i}");
                df = df.with_column(&name, last_state(ident(key_name(i)))?)?;
                state_key.push(ident(name.as_str()).eq(ident(key_name(i))));
            }
            let has_state = state_key.into_iter().reduce(Expr::and).unwrap_or(lit(true));
            flag(has_state.and(ident(VERSION).lt(ident(STATE_VERSION))))?.not()
        }
        None => lit(true),
    };
    df = df.with_column(LIVE, flag(live)?)?;

    // Window 2: the row before, to find exact duplicates and deletes that find nothing.
    let source: Vec<&str> = spec.columns.iter().map(|(n, _)| *n).collect();
    df = df
        .with_column(
            PREV_SIDE,
            over(lag(ident(SIDE), Some(1), None), spec, None)?,
        )?
        .with_column(
            PREV_LIVE,
            over(lag(ident(LIVE), Some(1), None), spec, None)?,
        )?
        .with_column(
            PREV_DELETE,
            over(lag(ident(DELETE), Some(1), None), spec, None)?,
        )?;
    for (i, c) in source.iter().enumerate() {
        df = df.with_column(
            &prev_name(i),
            over(lag(ident(*c), Some(1), None), spec, None)?,
        )?;
    }
    df = df.with_column(SAME_KEY_BEFORE, same_key(spec, -1)?)?;
    let prev_live_delta = ident(SAME_KEY_BEFORE)
        .and(ident(PREV_SIDE).eq(lit(1i8)))
        .and(ident(PREV_LIVE));
    let same = source
        .iter()
        .enumerate()
        .map(|(i, c)| binary_expr(ident(*c), Operator::IsNotDistinctFrom, ident(prev_name(i))))
        .reduce(Expr::and)
        .unwrap_or(lit(true));
    let duplicate = flag(
        ident(LIVE)
            .and(delta.clone())
            .and(prev_live_delta.clone())
            .and(ident(PREV_DELETE).not())
            .and(ident(DELETE).not())
            .and(same),
    )?;
    // A duplicate is never a delete, so a delete's slot is empty exactly when
    // nothing is before it, or a live delete is (a stale row before it means
    // the state holds the key).
    let nothing_before = flag(
        ident(SAME_KEY_BEFORE)
            .not()
            .or(prev_live_delta.and(ident(PREV_DELETE))),
    )?;
    df = df
        .with_column(DUPLICATE, duplicate)?
        .with_column(NOTHING_BEFORE, nothing_before)?;
    let drop: Vec<String> = (0..source.len())
        .map(prev_name)
        .chain([PREV_SIDE, PREV_LIVE, PREV_DELETE].map(String::from))
        .collect();
    let df = df.drop_columns(&drop.iter().map(String::as_str).collect::<Vec<_>>())?;

    let settled = df
        .clone()
        .filter(delta.clone().and(ident(LIVE).not().or(ident(DUPLICATE))))?
        .with_column(
            OUTCOME,
            when(ident(DUPLICATE), lit(DUPLICATE_ROW)).otherwise(lit(SUPERSEDED))?,
        )?
        .with_column(NOT_FOUND, lit(false))?
        .with_column(REMOVED, lit(false))?;

    // Window 3, over the state's row and the live rows that are not
    // duplicates: the last one of its key wins.
    let ranked = df
        .filter(ident(LIVE).and(ident(DUPLICATE).not()))?
        .with_column(SAME_KEY_AFTER, same_key(spec, 1)?)?;
    let last = ident(SAME_KEY_AFTER).not();
    let outcome = case(lit(true))
        .when(ident(DELETE), lit(DELETED))
        .when(last.clone(), lit(APPLIED))
        .otherwise(lit(SUPERSEDED))?;
    let counted_delete = delta.and(ident(DELETE));
    let ranked = ranked
        .with_column(OUTCOME, outcome)?
        .with_column(
            NOT_FOUND,
            flag(counted_delete.clone().and(ident(NOTHING_BEFORE)))?,
        )?
        .with_column(
            REMOVED,
            flag(counted_delete.and(ident(NOTHING_BEFORE).not()))?,
        )?
        .with_column(KEEP, flag(ident(DELETE).not().and(last))?)?;
    Ok(Classified { settled, ranked })
}

/// The delta rows' outcomes counted (quarantined rows aside).
async fn tally(deltas: DataFrame, counts: &mut MergeCounts) -> Result<(), DataFusionError> {
    let batches = deltas
        .aggregate(
            vec![ident(OUTCOME)],
            vec![
                count(lit(1i8)).alias("n"),
                sum(cast_expr(ident(NOT_FOUND), DataType::Int64)).alias("not_found"),
            ],
        )?
        .collect()
        .await?;
    for b in &batches {
        let outcome = cast(b.column(0), &DataType::Int8)?;
        let outcome = outcome.as_any().downcast_ref::<Int8Array>().expect("int8");
        let n = b.column(1).as_primitive::<Int64Type>();
        let not_found = cast(b.column(2), &DataType::Int64)?;
        let not_found = not_found
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("int64");
        for i in 0..b.num_rows() {
            let n = n.value(i) as u64;
            match outcome.value(i) {
                APPLIED => counts.applied += n,
                SUPERSEDED => counts.superseded += n,
                DUPLICATE_ROW => counts.duplicate += n,
                DELETED => counts.deleted += n,
                other => {
                    return Err(DataFusionError::Internal(format!(
                        "merge outcome code {other} is not one the plan assigns"
                    )));
                }
            }
            if not_found.is_valid(i) {
                counts.deleted_not_found += not_found.value(i) as u64;
            }
        }
    }
    Ok(())
}

/// Keys removed by deletes that found them, in the order the deletes apply.
async fn removed_keys(spec: &TableSpec, deltas: DataFrame) -> Result<Vec<String>, DataFusionError> {
    let mut select: Vec<Expr> = (0..spec.key.len())
        .map(|i| cast_expr(ident(key_name(i)), DataType::Utf8))
        .collect();
    select.push(ident(ROW));
    let batches = deltas
        .filter(ident(REMOVED))?
        .sort(processing_order(spec))?
        .select(select)?
        .collect()
        .await?;
    let n = spec.key.len();
    let mut keys = Vec::new();
    for b in &batches {
        for row in 0..b.num_rows() {
            let parts: Vec<&str> = (0..n)
                .map(|k| b.column(k).as_string::<i32>().value(row))
                .collect();
            keys.push(parts.join("\u{1f}"));
        }
    }
    Ok(keys)
}

/// Reads a state file written by [`Merger::merge`] into one batch of the state
/// schema (what the derive step still needs in memory).
pub fn read_state(spec: &TableSpec, path: &Path) -> crate::store::Result<RecordBatch> {
    let batch = crate::store::read_parquet(path)?;
    crate::store::conform(&state_schema(spec), &batch).map_err(|e| {
        crate::store::StoreError::State {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    })
}
