//! Reading given rows of the store by their position in their practice's
//! file: the evidence of the chosen events.
//!
//! The slice keeps what evaluation needs and, in each row key, the practice
//! and the row's position in that practice's file (the Parquet reader's own
//! row number). The explanations need a dozen more columns of the chosen
//! rows, wide text among them (`source_row_id`, terms): decoding them for
//! every slice row cost more than the rest of the slice. Here each practice's
//! file is read with a row selection of its chosen rows and its page index,
//! so only the pages holding them are decompressed. (DataFusion's own scan
//! loads the page index only for a predicate, and would decompress every
//! page of each row group it touches; the store writes `source_row_id`
//! without a dictionary for the same reason: see `store::write_parquet`.)

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::{
    ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use datafusion::parquet::file::metadata::PageIndexPolicy;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};

use super::io;
use super::scan::StoreView;
use crate::cohort::model::Table;
use crate::cohort::{Error, Result};

/// The practice and position columns [`rows`] adds.
pub const PRACTICE: &str = "f_practice";
pub const POSITION: &str = "f_row";

/// `columns` of the rows at `wanted` (per practice, positions in its file,
/// sorted and distinct) of `table`, in the table's column order, each row
/// with its practice ([`PRACTICE`]) and position ([`POSITION`]), as one batch.
pub async fn rows(
    ctx: &SessionContext,
    view: &StoreView,
    table: Table,
    wanted: &BTreeMap<String, Vec<u64>>,
    columns: &[&str],
) -> Result<RecordBatch> {
    let schema = super::scan::canonical(table).schema();
    // In file order: the order the reader returns them.
    let mut projection = columns
        .iter()
        .map(|c| schema.index_of(c))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    projection.sort_unstable();
    projection.dedup();
    let mut out_fields: Vec<Field> = projection
        .iter()
        .map(|i| schema.field(*i).clone())
        .collect();
    out_fields.push(Field::new(PRACTICE, DataType::Utf8, false));
    out_fields.push(Field::new(POSITION, DataType::Int64, false));
    let out_schema = Arc::new(Schema::new(out_fields));
    let wanted: Vec<(&String, &Vec<u64>)> = wanted.iter().filter(|w| !w.1.is_empty()).collect();
    if wanted.is_empty() {
        return Ok(RecordBatch::new_empty(out_schema));
    }

    // One read per practice's file, on the blocking pool: a reader returns
    // its selected rows in file order, so the positions are the rows' own.
    let reads = wanted.into_iter().map(|(practice, positions)| {
        let path = view.file(table, practice);
        let (practice, positions, projection) =
            (practice.clone(), positions.clone(), projection.clone());
        let out_schema = out_schema.clone();
        tokio::task::spawn_blocking(move || {
            read_file(&path, &practice, &positions, &projection, &out_schema)
        })
    });
    let threads = ctx.state().config().target_partitions().max(1);
    let batches: Vec<RecordBatch> = futures::stream::iter(reads)
        .buffered(threads)
        .map(|joined| joined.map_err(|e| Error::Store(format!("evidence read failed: {e}")))?)
        .try_collect()
        .await?;
    Ok(concat_batches(&out_schema, &batches)?)
}

/// The rows at `positions` of one practice's file, with the practice and
/// position columns added. The page index lets the reader decode only the
/// pages holding them.
fn read_file(
    path: &Path,
    practice: &str,
    positions: &[u64],
    projection: &[usize],
    out_schema: &SchemaRef,
) -> Result<RecordBatch> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    let parquet = |e: datafusion::parquet::errors::ParquetError| {
        Error::Store(format!("{}: {e}", path.display()))
    };
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
    let builder =
        ParquetRecordBatchReaderBuilder::try_new_with_options(file, options).map_err(parquet)?;
    let total = builder.metadata().file_metadata().num_rows() as u64;
    let changed = |read: u64| {
        Error::Store(format!(
            "{}: {read} rows where the run's slice read {} chosen ones: the store changed during the run; hint: run again",
            path.display(),
            positions.len()
        ))
    };
    let selection = select(positions, total).ok_or_else(|| changed(total))?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), projection.iter().copied());
    let reader = builder
        .with_projection(mask)
        .with_row_selection(selection)
        .with_batch_size(positions.len().max(1))
        .build()
        .map_err(parquet)?;
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
    let read: usize = batches.iter().map(|b| b.num_rows()).sum();
    if read != positions.len() {
        return Err(changed(read as u64));
    }
    let Some(first) = batches.first() else {
        return Ok(RecordBatch::new_empty(out_schema.clone()));
    };
    let mut cols: Vec<ArrayRef> = concat_batches(&first.schema(), &batches)?
        .columns()
        .to_vec();
    cols.push(Arc::new(StringArray::from(vec![practice; positions.len()])));
    cols.push(Arc::new(Int64Array::from_iter_values(
        positions.iter().map(|p| *p as i64),
    )));
    Ok(RecordBatch::try_new(out_schema.clone(), cols)?)
}

/// The selection of `positions` (sorted, distinct) in a file of `total`
/// rows; `None` when a position is past its end.
fn select(positions: &[u64], total: u64) -> Option<RowSelection> {
    let mut selectors = Vec::new();
    let mut at = 0u64;
    let mut i = 0;
    while i < positions.len() {
        let start = positions[i];
        if start >= total || start < at {
            return None;
        }
        let mut end = start + 1;
        i += 1;
        while i < positions.len() && positions[i] == end {
            end += 1;
            i += 1;
        }
        if start > at {
            selectors.push(RowSelector::skip((start - at) as usize));
        }
        selectors.push(RowSelector::select((end - start) as usize));
        at = end;
    }
    if at < total {
        selectors.push(RowSelector::skip((total - at) as usize));
    }
    Some(RowSelection::from(selectors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selection_takes_runs_of_positions_and_skips_the_rest() {
        let s = select(&[0, 1, 5, 9], 12).unwrap();
        let selectors: Vec<RowSelector> = s.into();
        assert_eq!(
            selectors,
            vec![
                RowSelector::select(2),
                RowSelector::skip(3),
                RowSelector::select(1),
                RowSelector::skip(3),
                RowSelector::select(1),
                RowSelector::skip(2),
            ]
        );
        assert!(select(&[3, 12], 12).is_none());
        assert!(select(&[4, 4], 12).is_none());
    }
}
