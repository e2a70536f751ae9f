//! Reading a canonical table by code, page by page.
//!
//! The store writes events sorted by SNOMED concept and medication issues
//! sorted by dm+d code, with page statistics (`store::write_parquet`). A value
//! set's rows therefore sit in a few runs of pages. [`CodePages`] reads each
//! file's page index, keeps the pages whose code range holds at least one code
//! of the value sets, and hands DataFusion that row selection with the file
//! (`ParquetRowSelection`): the scan decodes those pages only, of every
//! column. The rows inside them still go through the code join, so the
//! selection only decides what is decoded, never what matches.
//!
//! DataFusion's own page pruning does not do this for a value set: it turns
//! an IN list of more than 20 values into no page predicate at all.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::catalog::TableProvider;
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::ParquetRowSelection;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use datafusion::parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader};
use datafusion::parquet::file::page_index::column_index::ColumnIndexMetaData;
use datafusion::physical_plan::ExecutionPlan;

use super::io;
use crate::cohort::{Error, Result};

/// The pages of one file that may hold a code.
#[derive(Debug, Clone)]
struct FilePages {
    path: PathBuf,
    size: u64,
    selection: RowSelection,
    /// Rows the selection decodes.
    rows: usize,
}

/// A canonical table restricted to the pages that may hold some code of a
/// sorted code list.
#[derive(Debug)]
pub struct CodePages {
    schema: SchemaRef,
    files: Vec<FilePages>,
    /// Rows decoded, and rows in the files.
    pub selected: usize,
    pub total: usize,
}

impl CodePages {
    /// Selects the pages of every Parquet file under `dir` whose `column`
    /// statistics hold a code of `codes` (sorted, distinct).
    pub fn select(dir: &Path, schema: SchemaRef, column: &str, codes: &[i64]) -> Result<CodePages> {
        let mut files = Vec::new();
        let (mut selected, mut total) = (0, 0);
        for path in parquet_files(dir)? {
            let file = File::open(&path).map_err(io(&path))?;
            let size = file.metadata().map_err(io(&path))?.len();
            let (selection, rows, all) = select_file(&file, column, codes)
                .map_err(|e| Error::Store(format!("{}: {e}", path.display())))?;
            selected += rows;
            total += all;
            if rows > 0 {
                files.push(FilePages {
                    path,
                    size,
                    selection,
                    rows,
                });
            }
        }
        Ok(CodePages {
            schema,
            files,
            selected,
            total,
        })
    }
}

/// Every `*.parquet` file below `dir`, sorted.
fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(io(&d))? {
            let p = entry.map_err(io(&d))?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The row selection of one file, the rows it selects and the file's rows.
fn select_file(
    file: &File,
    column: &str,
    codes: &[i64],
) -> std::result::Result<(RowSelection, usize, usize), String> {
    let meta = ParquetMetaDataReader::new()
        .with_page_index_policy(PageIndexPolicy::Optional)
        .parse_and_finish(file)
        .map_err(|e| e.to_string())?;
    let schema = meta.file_metadata().schema_descr();
    let ci = (0..schema.num_columns())
        .find(|&i| schema.column(i).path().string() == column)
        .ok_or_else(|| format!("no column {column}"))?;
    let (column_index, offset_index) = (meta.column_index(), meta.offset_index());
    let mut selectors: Vec<RowSelector> = Vec::new();
    let (mut selected, mut total) = (0usize, 0usize);
    let mut push = |select: bool, rows: usize| {
        if rows == 0 {
            return;
        }
        match selectors.last_mut() {
            Some(last) if last.skip != select => last.row_count += rows,
            _ => selectors.push(if select {
                RowSelector::select(rows)
            } else {
                RowSelector::skip(rows)
            }),
        }
    };
    for (rg, rg_meta) in meta.row_groups().iter().enumerate() {
        let rg_rows = rg_meta.num_rows() as usize;
        total += rg_rows;
        // Row-group statistics first: a group outside every code is skipped whole.
        let stats = rg_meta.column(ci).statistics();
        if let Some(s) = stats
            && let (Some(min), Some(max)) = (s.min_bytes_opt(), s.max_bytes_opt())
            && let (Ok(min), Ok(max)) = (<[u8; 8]>::try_from(min), <[u8; 8]>::try_from(max))
            && !holds_code(codes, i64::from_le_bytes(min), i64::from_le_bytes(max))
        {
            push(false, rg_rows);
            continue;
        }
        let pages = match (column_index, offset_index) {
            (Some(c), Some(o)) => match (&c[rg][ci], &o[rg][ci]) {
                (ColumnIndexMetaData::INT64(index), offsets) => Some((index, offsets)),
                _ => None,
            },
            _ => None,
        };
        let Some((index, offsets)) = pages else {
            // No page index: the whole group is read.
            push(true, rg_rows);
            selected += rg_rows;
            continue;
        };
        let locations = offsets.page_locations();
        for (p, loc) in locations.iter().enumerate() {
            let start = loc.first_row_index as usize;
            let end = locations
                .get(p + 1)
                .map_or(rg_rows, |next| next.first_row_index as usize);
            let keep = match (index.min_value(p), index.max_value(p)) {
                (Some(min), Some(max)) => holds_code(codes, *min, *max),
                // A page of nulls only: unmapped rows, never a code match.
                _ => false,
            };
            push(keep, end - start);
            if keep {
                selected += end - start;
            }
        }
    }
    Ok((RowSelection::from(selectors), selected, total))
}

/// Whether some code of sorted `codes` lies in `min..=max`.
fn holds_code(codes: &[i64], min: i64, max: i64) -> bool {
    let at = codes.partition_point(|&c| c < min);
    codes.get(at).is_some_and(|&c| c <= max)
}

#[async_trait]
impl TableProvider for CodePages {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        // Filters stay above the scan; the physical optimiser pushes them
        // (and the code join's runtime filter) into the Parquet reader.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
        // Files to partitions, largest selections first, each to the lightest.
        let partitions = state.config().target_partitions().max(1);
        let mut order: Vec<&FilePages> = self.files.iter().collect();
        order.sort_by(|a, b| b.rows.cmp(&a.rows).then(a.path.cmp(&b.path)));
        let mut groups: Vec<(usize, Vec<PartitionedFile>)> =
            (0..partitions).map(|_| (0, Vec::new())).collect();
        for f in order {
            let lightest = groups
                .iter_mut()
                .min_by_key(|g| g.0)
                .expect("at least one partition");
            lightest.0 += f.rows;
            let file = PartitionedFile::new(f.path.to_string_lossy(), f.size)
                .with_extension(ParquetRowSelection::new(f.selection.clone()));
            lightest.1.push(file);
        }
        let groups: Vec<FileGroup> = groups
            .into_iter()
            .filter(|g| !g.1.is_empty())
            .map(|g| FileGroup::new(g.1))
            .collect();
        let source = format.file_source(self.schema.clone().into());
        let config = FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), source)
            .with_file_groups(groups)
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        format.create_physical_plan(state, config).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Array, Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
    use datafusion::prelude::*;

    use super::{CodePages, holds_code};

    /// Writes `codes` (in this order) as one file with 100-row pages.
    fn write(dir: &std::path::Path, codes: Vec<Option<i64>>) -> Arc<Schema> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("code", DataType::Int64, true),
            Field::new("row", DataType::Int64, false),
        ]));
        let n = codes.len() as i64;
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(codes)),
                Arc::new(Int64Array::from_iter_values(0..n)),
            ],
        )
        .unwrap();
        let props = WriterProperties::builder()
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_data_page_row_count_limit(100)
            .set_write_batch_size(100)
            .set_max_row_group_row_count(Some(1000))
            .build();
        std::fs::create_dir_all(dir.join("p=1")).unwrap();
        let file = std::fs::File::create(dir.join("p=1/data.parquet")).unwrap();
        let mut w = ArrowWriter::try_new(file, schema.clone(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        schema
    }

    #[tokio::test]
    async fn selected_pages_hold_every_row_of_the_codes_and_skip_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        // 3000 rows sorted by code (nulls first, as the store writes them):
        // 200 nulls, then codes 0..=279 ten rows each.
        let mut codes: Vec<Option<i64>> = vec![None; 200];
        codes.extend((0..2800).map(|i| Some(i / 10)));
        let schema = write(dir.path(), codes.clone());
        let wanted = [5i64, 150, 151, 279, 1000];
        let pages = CodePages::select(dir.path(), schema, "code", &wanted).unwrap();
        assert_eq!(pages.total, 3000);
        // Code 5 in one page, 150 and 151 in one, 279 in the last: 3 pages.
        assert_eq!(pages.selected, 300);

        let ctx = SessionContext::new();
        let batches = ctx
            .read_table(Arc::new(pages))
            .unwrap()
            .collect()
            .await
            .unwrap();
        let mut read: Vec<i64> = Vec::new();
        let mut matched = 0;
        for b in &batches {
            let code = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            let row = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
            for i in 0..b.num_rows() {
                read.push(row.value(i));
                if !code.is_null(i) && wanted.contains(&code.value(i)) {
                    matched += 1;
                }
            }
        }
        assert_eq!(read.len(), 300);
        // Every row with a wanted code was read: 10 rows for each of the 4 present.
        let expected = codes
            .iter()
            .filter(|c| c.is_some_and(|c| wanted.contains(&c)))
            .count();
        assert_eq!(expected, 40);
        assert_eq!(matched, expected);
    }

    #[test]
    fn a_range_holds_a_code_only_when_one_lies_inside_it() {
        let codes = [10, 20, 30];
        assert!(holds_code(&codes, 10, 10));
        assert!(holds_code(&codes, 11, 20));
        assert!(holds_code(&codes, 0, 100));
        assert!(!holds_code(&codes, 11, 19));
        assert!(!holds_code(&codes, 31, 40));
        assert!(!holds_code(&codes, 0, 9));
        assert!(!holds_code(&[], 0, 100));
    }
}
