//! Canonical tables written as they are derived, then sorted by a plan.
//!
//! The adapters derive canonical rows a batch of source rows at a time; each
//! derived batch goes straight to an unsorted scratch file ([`TableSink`]),
//! which counts its rows, quarantine reasons and flag values on the way. The
//! store's file is then written by a DataFusion plan over the scratch file:
//! `row_order` as a window (each person's rows ranked by `source_row_id`,
//! `source_table`), sorted by the table's sort columns, streamed into the
//! store's Parquet writer. Sorts and windows spill under the engine's memory
//! pool, so a table's size never sets ingest's memory.
//!
//! Invariants: the file holds exactly the rows pushed; `source_rows = loaded
//! + quarantined`; the order is total (the sort columns, then `source_row_id`
//! and `source_table`), so the same rows always give the same file.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{Array, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::DataFusionError;
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{Expr, ExprFunctionExt, SortExpr, cast as cast_expr, ident, lit};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::ParquetReadOptions;
use futures::StreamExt;

use super::engine::Engine;
use super::quarantine::Reason;
use crate::canonical::CanonicalTable;
use crate::canonical::tables::ROW_ORDER;
use crate::source::derive::DerivedTable;
use crate::store::{StoreError, conform, writer_properties};

/// Value counts of flag columns, keyed `table.column`.
pub type FlagCounts = BTreeMap<String, BTreeMap<String, u64>>;

/// What one canonical table came to, once written.
#[derive(Debug, Clone)]
pub struct TableSummary {
    pub table: CanonicalTable,
    pub source_table: &'static str,
    /// Rows in the source table's state: `loaded + quarantined`.
    pub source_rows: u64,
    pub loaded: u64,
    pub quarantined: BTreeMap<Reason, u64>,
    pub flags: FlagCounts,
}

impl TableSummary {
    pub fn reconciles(&self) -> bool {
        self.source_rows == self.loaded + self.quarantined.values().sum::<u64>()
    }
}

/// A canonical table being derived: rows go to an unsorted scratch file.
pub struct TableSink {
    table: CanonicalTable,
    source_table: &'static str,
    scratch: PathBuf,
    writer: ArrowWriter<File>,
    source_rows: u64,
    loaded: u64,
    quarantined: BTreeMap<Reason, u64>,
    flags: FlagCounts,
}

fn parquet_err(path: &Path) -> impl Fn(&dyn std::fmt::Display) -> StoreError + '_ {
    move |e| StoreError::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

impl TableSink {
    /// A sink for `table`, derived from `source_table`, writing into `scratch_dir`.
    pub fn new(
        table: CanonicalTable,
        source_table: &'static str,
        scratch_dir: &Path,
    ) -> Result<TableSink, StoreError> {
        let scratch = scratch_dir.join(format!("{}-unsorted.parquet", table.name()));
        let file = File::create(&scratch).map_err(|source| StoreError::Io {
            path: scratch.clone(),
            source,
        })?;
        let writer = ArrowWriter::try_new(file, table.schema(), Some(scratch_properties()))
            .map_err(|e| parquet_err(&scratch)(&e))?;
        // Every flag column is reported, with no values when no row has one.
        let mut flags = FlagCounts::new();
        count_flags(table, &RecordBatch::new_empty(table.schema()), &mut flags);
        Ok(TableSink {
            table,
            source_table,
            scratch,
            writer,
            source_rows: 0,
            loaded: 0,
            quarantined: BTreeMap::new(),
            flags,
        })
    }

    pub fn table(&self) -> CanonicalTable {
        self.table
    }

    /// Adds the rows derived from one batch of the source table.
    pub fn push(&mut self, part: DerivedTable) -> Result<(), StoreError> {
        debug_assert_eq!(part.table, self.table, "a sink takes one table");
        self.source_rows += part.source_rows;
        for (reason, n) in part.quarantined {
            *self.quarantined.entry(reason).or_default() += n;
        }
        self.loaded += part.batch.num_rows() as u64;
        count_flags(self.table, &part.batch, &mut self.flags);
        if part.batch.num_rows() > 0 {
            self.writer
                .write(&part.batch)
                .map_err(|e| parquet_err(&self.scratch)(&e))?;
        }
        Ok(())
    }

    /// Writes the store's file at `dest`, sorted, with `row_order` derived,
    /// and removes the scratch file.
    pub fn finish(self, engine: &Engine, dest: &Path) -> Result<TableSummary, SinkError> {
        let TableSink {
            table,
            source_table,
            scratch,
            writer,
            source_rows,
            loaded,
            quarantined,
            flags,
        } = self;
        writer
            .close()
            .map_err(|e| SinkError::Store(parquet_err(&scratch)(&e)))?;
        let written = engine
            .block_on(sorted_write(engine, &scratch, table, dest))
            .map_err(|e| SinkError::Plan {
                message: engine.explain(&format!("writing canonical {}", table.name()), &e),
            })?;
        if written != loaded {
            return Err(SinkError::Plan {
                message: format!(
                    "writing canonical {}: {written} rows written, {loaded} derived; this is a bug in phm",
                    table.name()
                ),
            });
        }
        let _ = std::fs::remove_file(&scratch);
        Ok(TableSummary {
            table,
            source_table,
            source_rows,
            loaded,
            quarantined,
            flags,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{message}")]
    Plan { message: String },
}

/// The plans that write a table's file, one sort each, so the two sorts never
/// share the pool: first `row_order` as a window (sorted by person and row),
/// into a second scratch file; then the table's sort, streamed into the
/// store's Parquet writer.
async fn sorted_write(
    engine: &Engine,
    scratch: &Path,
    table: CanonicalTable,
    dest: &Path,
) -> Result<u64, DataFusionError> {
    let schema = table.schema();
    let by_row = || -> Vec<SortExpr> {
        vec![
            ident("source_row_id").sort(true, true),
            ident("source_table").sort(true, true),
        ]
    };
    let read = |path: &Path| {
        let path = path.to_string_lossy().into_owned();
        async move {
            engine
                .ctx()
                .read_parquet(path, ParquetReadOptions::default())
                .await
        }
    };
    let ranked_path = scratch.with_extension("ranked.parquet");
    let source = if table.has_row_order() {
        let select: Vec<Expr> = schema
            .fields()
            .iter()
            .map(|f| {
                if f.name() == ROW_ORDER {
                    let rank = row_number()
                        .partition_by(vec![ident("person_key")])
                        .order_by(by_row())
                        .build()?;
                    Ok(cast_expr(rank - lit(1u64), DataType::Int64).alias(ROW_ORDER))
                } else {
                    Ok(ident(f.name()))
                }
            })
            .collect::<Result<_, DataFusionError>>()?;
        let stream = read(scratch)
            .await?
            .select(select)?
            .execute_stream()
            .await?;
        write_stream(stream, &schema, &ranked_path, scratch_properties()).await?;
        ranked_path.as_path()
    } else {
        scratch
    };
    let mut order: Vec<SortExpr> = table
        .sort_columns()
        .iter()
        .map(|c| ident(*c).sort(true, true))
        .collect();
    order.extend(by_row());
    let stream = read(source).await?.sort(order)?.execute_stream().await?;
    let rows = write_stream(stream, &schema, dest, writer_properties()).await?;
    let _ = std::fs::remove_file(&ranked_path);
    Ok(rows)
}

/// Scratch files are read once: no compression work.
fn scratch_properties() -> datafusion::parquet::file::properties::WriterProperties {
    datafusion::parquet::file::properties::WriterProperties::builder()
        .set_compression(datafusion::parquet::basic::Compression::LZ4_RAW)
        .build()
}

/// Writes a plan's output to `path` in `schema` (its string types and
/// nullability); returns the rows written.
async fn write_stream(
    mut stream: datafusion::physical_plan::SendableRecordBatchStream,
    schema: &datafusion::arrow::datatypes::SchemaRef,
    path: &Path,
    props: datafusion::parquet::file::properties::WriterProperties,
) -> Result<u64, DataFusionError> {
    let file = File::create(path).map_err(DataFusionError::IoError)?;
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props))?;
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = conform(schema, &batch?)?;
        rows += batch.num_rows() as u64;
        writer.write(&batch)?;
    }
    writer.close()?;
    Ok(rows)
}

/// Counts the values of `table`'s flag columns in `batch` into `out`.
pub fn count_flags(table: CanonicalTable, batch: &RecordBatch, out: &mut FlagCounts) {
    let columns: &[&str] = match table {
        CanonicalTable::Patients => &["nhs_number_status", "date_of_birth_flag", "is_test_patient"],
        CanonicalTable::Registrations => &["registration_type"],
        CanonicalTable::Events => &["date_flag", "value_flag", "mapping_kind"],
        CanonicalTable::Medications => &["date_flag", "mapping_kind"],
    };
    for name in columns {
        let counts = out.entry(format!("{}.{}", table.name(), name)).or_default();
        let col = batch.column_by_name(name).expect("flag column");
        if let Some(s) = col.as_any().downcast_ref::<StringArray>() {
            for v in s.iter().flatten() {
                match counts.get_mut(v) {
                    Some(n) => *n += 1,
                    None => {
                        counts.insert(v.to_string(), 1);
                    }
                }
            }
        } else if let Some(b) = col.as_any().downcast_ref::<BooleanArray>() {
            for v in b.iter().flatten() {
                *counts.entry(v.to_string()).or_default() += 1;
            }
        }
    }
}
