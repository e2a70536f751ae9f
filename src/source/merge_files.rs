//! Applying one delivery file to a table's state file in bounded memory.
//!
//! The state lives in a Parquet file between deliveries; the delivery is read
//! from the landing zone a batch at a time. Both are split by a hash of each
//! row's key into buckets small enough for the memory budget (one bucket
//! when the whole fits), and each bucket is merged by
//! [`crate::source::merge::merge`], the reference merge, so the semantics
//! are exactly its own:
//! - every row of one key falls in the same bucket, in its file order, and a
//!   key's outcome depends only on its own rows;
//! - a row without a usable key is quarantined wherever it falls;
//! - the counts of the buckets add up to the delivery's: `rows_in = applied +
//!   superseded + duplicate + deleted + quarantined` holds for each, so for
//!   the sum.
//!
//! Buckets go to Arrow IPC files in a scratch folder and the new state is
//! written bucket by bucket, so at most one bucket's state and delivery rows
//! are in memory. The new state's rows are in bucket order, then the
//! reference's order within a bucket: the same inputs always give the same
//! file.

use std::collections::HashSet;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{RecordBatch, UInt32Array};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::FileWriter;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::file::reader::{FileReader as _, SerializedFileReader};

use crate::source::merge::{MergeCounts, merge, remove_patients, row_keys};
use crate::source::read::{ReadError, state_schema};
use crate::source::table::TableSpec;
use crate::store::{StoreError, conform, writer_properties};

#[derive(Debug, thiserror::Error)]
pub enum MergeFileError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Result<T, E = MergeFileError> = std::result::Result<T, E>;

/// Rows of one delivery that cannot be applied: a bucket's delivery rows and
/// the indices, into them, of rows without a usable key and rows with an
/// invalid version.
pub struct Rejected {
    pub rows: RecordBatch,
    pub missing_key: Vec<u32>,
    pub invalid_version: Vec<u32>,
}

/// What applying a delivery file did; the new state is in the file asked for.
pub struct FileOutcome {
    pub counts: MergeCounts,
    pub rejected: Vec<Rejected>,
    /// For the patient table: ids of patients removed by this delivery.
    pub removed_patients: Vec<String>,
    /// Rows in the new state.
    pub state_rows: u64,
}

/// Memory the reference merge needs per row beyond the row's own Arrow
/// data: its key as a string, the hash map's entry and the row's outcome.
const KEY_BYTES_PER_ROW: usize = 160;

/// Memory the reference merge needs per byte of Arrow data: the two inputs
/// and the new state it builds from them.
const DATA_COPIES: usize = 2;

/// How many buckets `rows` of state and delivery need within `budget`, at
/// `row_bytes` of Arrow data per row.
pub fn buckets_for(rows: u64, row_bytes: usize, budget: usize) -> usize {
    let need = rows as usize * (row_bytes * DATA_COPIES + KEY_BYTES_PER_ROW);
    need.div_ceil(budget.max(1)).max(1)
}

/// Arrow bytes per row of a batch (its buffers over its rows).
fn row_bytes(batch: &RecordBatch) -> usize {
    batch.get_array_memory_size() / batch.num_rows().max(1)
}

/// Rows of a Parquet file, from its footer.
pub fn file_rows(path: &Path) -> Result<u64, StoreError> {
    let reader = open_footer(path)?;
    Ok(reader.metadata().file_metadata().num_rows().max(0) as u64)
}

fn open_footer(path: &Path) -> Result<SerializedFileReader<File>, StoreError> {
    let file = File::open(path).map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    SerializedFileReader::new(file).map_err(|e| StoreError::ParquetRead {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// A state file of `spec` read a batch at a time, each in the state schema
/// (the file's string types and nullability aside).
pub fn state_batches(
    spec: &TableSpec,
    path: &Path,
) -> Result<impl Iterator<Item = Result<RecordBatch, StoreError>> + use<>, StoreError> {
    let file = File::open(path).map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let read_err = {
        let path = path.to_path_buf();
        move |message: String| StoreError::State {
            path: path.clone(),
            message,
        }
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(64 * 1024).build())
        .map_err(|e| read_err(e.to_string()))?;
    let schema = state_schema(spec);
    Ok(reader.map(move |batch| {
        let batch = batch.map_err(|e| read_err(e.to_string()))?;
        conform(&schema, &batch).map_err(|e| read_err(e.to_string()))
    }))
}

/// Applies the delivery rows `delta` (`delta_rows` rows) to the state in
/// `state` (none: empty), writing the new state to `out`; buckets, when
/// needed, go to `scratch`. The bucket count comes from the rows of both
/// and the Arrow size of the first batch of the larger.
pub fn merge_file(
    spec: &'static TableSpec,
    state: Option<&Path>,
    delta: impl Iterator<Item = Result<RecordBatch, ReadError>>,
    delta_rows: u64,
    out: &Path,
    scratch: &Path,
    budget: usize,
) -> Result<FileOutcome> {
    let state_rows = state.map(file_rows).transpose()?.unwrap_or(0);
    let mut delta = delta.peekable();
    // Measured on the larger side: a small batch's buffers overstate its rows.
    let width = match (state, delta.peek()) {
        (Some(path), _) if state_rows > delta_rows => match state_batches(spec, path)?.next() {
            Some(first) => row_bytes(&first?),
            None => 0,
        },
        (_, Some(Ok(first))) => row_bytes(first),
        _ => 0,
    };
    let n = buckets_for(state_rows + delta_rows, width, budget);
    tracing::debug!(
        table = spec.name,
        buckets = n,
        state_rows,
        delta_rows,
        row_bytes = width,
        "merging"
    );
    let schema = state_schema(spec);
    let store_err = |path: &Path| {
        let path = path.to_path_buf();
        move |e: &dyn std::fmt::Display| StoreError::Parquet {
            path: path.clone(),
            message: e.to_string(),
        }
    };
    let mut writer = ArrowWriter::try_new(
        File::create(out).map_err(|source| StoreError::Io {
            path: out.to_path_buf(),
            source,
        })?,
        schema.clone(),
        Some(writer_properties()),
    )
    .map_err(|e| store_err(out)(&e))?;
    let mut outcome = FileOutcome {
        counts: MergeCounts::default(),
        rejected: Vec::new(),
        removed_patients: Vec::new(),
        state_rows: 0,
    };
    let mut apply = |state_rows: RecordBatch, delta_rows: RecordBatch| -> Result<()> {
        let m = merge(spec, Some(&state_rows), &delta_rows);
        add(&mut outcome.counts, &m.counts);
        if !m.missing_key.is_empty() || !m.invalid_version.is_empty() {
            outcome.rejected.push(Rejected {
                rows: delta_rows,
                missing_key: m.missing_key,
                invalid_version: m.invalid_version,
            });
        }
        outcome.removed_patients.extend(m.removed_patients);
        outcome.state_rows += m.state.num_rows() as u64;
        writer.write(&m.state).map_err(|e| store_err(out)(&e))?;
        Ok(())
    };
    if n == 1 {
        let state_rows = match state {
            Some(path) => collect(&schema, state_batches(spec, path)?)?,
            None => RecordBatch::new_empty(schema.clone()),
        };
        let delta_rows = collect(&schema, delta.map(|b| b.map_err(MergeFileError::from)))?;
        apply(state_rows, delta_rows)?;
    } else {
        let buckets = Buckets::new(spec, scratch, n)?;
        if let Some(path) = state {
            buckets.split(
                Side::State,
                state_batches(spec, path)?.map(|b| b.map_err(Into::into)),
            )?;
        }
        buckets.split(Side::Delta, delta.map(|b| b.map_err(Into::into)))?;
        for b in 0..n {
            let state_rows = buckets.read(Side::State, b)?;
            let delta_rows = buckets.read(Side::Delta, b)?;
            apply(state_rows, delta_rows)?;
            buckets.remove(b);
        }
    }
    writer.close().map_err(|e| store_err(out)(&e))?;
    Ok(outcome)
}

/// Rewrites the state file of child table `spec` without the rows of
/// `patients`, into `out`; returns how many rows went (none: `out` is not
/// written, the state is unchanged).
pub fn remove_patients_file(
    spec: &TableSpec,
    state: &Path,
    patients: &HashSet<String>,
    out: &Path,
) -> Result<u64, StoreError> {
    let store_err = |e: &dyn std::fmt::Display| StoreError::Parquet {
        path: out.to_path_buf(),
        message: e.to_string(),
    };
    let file = File::create(out).map_err(|source| StoreError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let mut writer = ArrowWriter::try_new(file, state_schema(spec), Some(writer_properties()))
        .map_err(|e| store_err(&e))?;
    let mut removed = 0;
    for batch in state_batches(spec, state)? {
        let (kept, gone) = remove_patients(spec, &batch?, patients);
        removed += gone;
        writer.write(&kept).map_err(|e| store_err(&e))?;
    }
    writer.close().map_err(|e| store_err(&e))?;
    if removed == 0 {
        let _ = std::fs::remove_file(out);
    }
    Ok(removed)
}

fn add(total: &mut MergeCounts, part: &MergeCounts) {
    total.rows_in += part.rows_in;
    total.applied += part.applied;
    total.superseded += part.superseded;
    total.duplicate += part.duplicate;
    total.deleted += part.deleted;
    total.quarantined += part.quarantined;
    total.deleted_not_found += part.deleted_not_found;
}

fn collect(
    schema: &datafusion::arrow::datatypes::SchemaRef,
    batches: impl Iterator<Item = Result<RecordBatch, impl Into<MergeFileError>>>,
) -> Result<RecordBatch> {
    let batches = batches
        .map(|b| b.map_err(Into::into))
        .collect::<Result<Vec<_>>>()?;
    concat_batches(schema, &batches).map_err(|e| {
        MergeFileError::Store(StoreError::State {
            path: PathBuf::from("(merge)"),
            message: e.to_string(),
        })
    })
}

#[derive(Clone, Copy)]
enum Side {
    State,
    Delta,
}

/// Bucket files of one merge: `n` per side, in a scratch folder.
struct Buckets {
    spec: &'static TableSpec,
    dir: PathBuf,
    n: usize,
}

impl Buckets {
    fn new(spec: &'static TableSpec, scratch: &Path, n: usize) -> Result<Buckets, StoreError> {
        let dir = scratch.join(format!("buckets-{}", spec.name));
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(Buckets { spec, dir, n })
    }

    fn path(&self, side: Side, b: usize) -> PathBuf {
        let side = match side {
            Side::State => "state",
            Side::Delta => "delta",
        };
        self.dir.join(format!("{side}-{b}.arrow"))
    }

    fn io(&self, path: &Path) -> impl Fn(&dyn std::fmt::Display) -> StoreError + use<> {
        let path = path.to_path_buf();
        move |e| StoreError::Scratch {
            path: path.clone(),
            message: e.to_string(),
        }
    }

    /// Writes every row of `batches` to its key's bucket, in order.
    fn split(
        &self,
        side: Side,
        batches: impl Iterator<Item = Result<RecordBatch, MergeFileError>>,
    ) -> Result<()> {
        let schema = state_schema(self.spec);
        let mut writers = (0..self.n)
            .map(|b| {
                let path = self.path(side, b);
                let file = File::create(&path).map_err(|source| StoreError::Io {
                    path: path.clone(),
                    source,
                })?;
                FileWriter::try_new(file, &schema).map_err(|e| self.io(&path)(&e))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        for batch in batches {
            let batch = batch?;
            let mut rows: Vec<Vec<u32>> = vec![Vec::new(); self.n];
            for (i, key) in row_keys(self.spec, &batch).iter().enumerate() {
                rows[bucket_of(key.as_deref(), self.n)].push(i as u32);
            }
            for (b, rows) in rows.into_iter().enumerate() {
                if rows.is_empty() {
                    continue;
                }
                let part = take_record_batch(&batch, &UInt32Array::from(rows))
                    .map_err(|e| self.io(&self.path(side, b))(&e))?;
                writers[b]
                    .write(&part)
                    .map_err(|e| self.io(&self.path(side, b))(&e))?;
            }
        }
        for (b, mut w) in writers.into_iter().enumerate() {
            w.finish().map_err(|e| self.io(&self.path(side, b))(&e))?;
        }
        Ok(())
    }

    /// One bucket of one side, whole (empty when the side was not split).
    fn read(&self, side: Side, b: usize) -> Result<RecordBatch> {
        let schema = state_schema(self.spec);
        let path = self.path(side, b);
        if !path.exists() {
            return Ok(RecordBatch::new_empty(schema));
        }
        let file = File::open(&path).map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        let reader = FileReader::try_new(file, None).map_err(|e| self.io(&path)(&e))?;
        let batches = reader
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.io(&path)(&e))?;
        Ok(concat_batches(&schema, &batches).map_err(|e| self.io(&path)(&e))?)
    }

    fn remove(&self, b: usize) {
        let _ = std::fs::remove_file(self.path(Side::State, b));
        let _ = std::fs::remove_file(self.path(Side::Delta, b));
    }
}

impl Drop for Buckets {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The bucket of a key: a fixed hash, so a key's bucket is the same on every
/// run; rows without a key go to bucket 0 (they are quarantined there).
fn bucket_of(key: Option<&str>, n: usize) -> usize {
    match key {
        None => 0,
        Some(k) => {
            let mut h = std::hash::DefaultHasher::new();
            k.hash(&mut h);
            (h.finish() % n as u64) as usize
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_counts_follow_the_budget() {
        // Rows of 92 Arrow bytes need 2 * 92 + 160 = 344 bytes each.
        let mib = 1usize << 20;
        let cases = [
            (0, 92, 512 * mib, 1),
            (1_000_000, 92, 512 * mib, 1),
            (1_560_000, 92, 512 * mib, 1),
            (1_561_000, 92, 512 * mib, 2),
            (6_000_000, 92, 512 * mib, 4),
            (6_000_000, 700, 512 * mib, 18),
        ];
        for (rows, width, budget, n) in cases {
            assert_eq!(buckets_for(rows, width, budget), n, "{rows} {width}");
        }
    }

    #[test]
    fn a_key_always_falls_in_one_bucket() {
        for n in [1, 2, 7] {
            assert_eq!(bucket_of(None, n), 0);
            for key in ["a", "guid-1\u{1f}guid-2", ""] {
                let b = bucket_of(Some(key), n);
                assert!(b < n);
                assert_eq!(b, bucket_of(Some(key), n));
            }
        }
    }
}
