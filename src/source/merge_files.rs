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

use datafusion::arrow::array::{BooleanArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::compute::kernels::boolean::not;
use datafusion::arrow::compute::{concat_batches, filter_record_batch, take_record_batch};
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::FileWriter;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::file::reader::{FileReader as _, SerializedFileReader};

use crate::source::merge::{MergeCounts, merge, patient_id, remove_patients, row_keys};
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
    /// The delivery changed nothing (no rows, or none with a key): the state
    /// file is unchanged and `out` was not written.
    pub unchanged: bool,
    /// Rows of the new state left out because their patient was removed
    /// (`drop_patients`).
    pub removed_with_patient: u64,
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
#[allow(clippy::too_many_arguments)]
pub fn merge_file(
    spec: &'static TableSpec,
    state: Option<&Path>,
    delta: impl Iterator<Item = Result<RecordBatch, ReadError>>,
    delta_rows: u64,
    out: &Path,
    scratch: &Path,
    budget: usize,
    drop_patients: &HashSet<String>,
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
    if let Some(state) = state
        && delta_rows < state_rows
    {
        let delta_width = match delta.peek() {
            Some(Ok(first)) => row_bytes(first),
            _ => 0,
        };
        // The delivery and at most as many state rows (one per delivery
        // key) are held; the rest of the state streams through.
        if buckets_for(delta_rows * 2, delta_width.max(width), budget) == 1 {
            return merge_touched(spec, state, delta, out, drop_patients);
        }
    }
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
        unchanged: false,
        removed_with_patient: 0,
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
        let (kept, removed) = remove_patients(spec, &m.state, drop_patients);
        outcome.removed_with_patient += removed;
        outcome.state_rows += kept.num_rows() as u64;
        writer.write(&kept).map_err(|e| store_err(out)(&e))?;
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

/// Applies a delivery small enough to hold to a larger state: the state
/// streams through, rows whose key the delivery does not hold going straight
/// to `out`, and the reference merge runs on the delivery and the state rows
/// of its keys only. A key's outcome depends only on its own rows, so the
/// counts, the rejected rows and the new state (as a set of rows) are the
/// reference's.
fn merge_touched(
    spec: &'static TableSpec,
    state: &Path,
    delta: impl Iterator<Item = Result<RecordBatch, ReadError>>,
    out: &Path,
    drop_patients: &HashSet<String>,
) -> Result<FileOutcome> {
    let schema = state_schema(spec);
    let delta = collect(&schema, delta.map(|b| b.map_err(MergeFileError::from)))?;
    let keys: HashSet<String> = row_keys(spec, &delta).into_iter().flatten().collect();
    let mut outcome = FileOutcome {
        counts: MergeCounts::default(),
        rejected: Vec::new(),
        removed_patients: Vec::new(),
        state_rows: 0,
        unchanged: false,
        removed_with_patient: 0,
    };
    if keys.is_empty() && !has_patients(spec, state, drop_patients)? {
        // Nothing to apply: every row (if any) is quarantined, and the state
        // stays as it is without being rewritten.
        let m = merge(spec, None, &delta);
        debug_assert_eq!(m.state.num_rows(), 0);
        add(&mut outcome.counts, &m.counts);
        if !m.missing_key.is_empty() || !m.invalid_version.is_empty() {
            outcome.rejected.push(Rejected {
                rows: delta,
                missing_key: m.missing_key,
                invalid_version: m.invalid_version,
            });
        }
        outcome.state_rows = file_rows(state)?;
        outcome.unchanged = true;
        return Ok(outcome);
    }
    let store_err = |e: &dyn std::fmt::Display| StoreError::Parquet {
        path: out.to_path_buf(),
        message: e.to_string(),
    };
    let file = File::create(out).map_err(|source| StoreError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(writer_properties()))
        .map_err(|e| store_err(&e))?;
    let mut touched = Vec::new();
    for batch in state_batches(spec, state)? {
        let batch = batch?;
        let hit: BooleanArray = row_keys(spec, &batch)
            .iter()
            .map(|k| Some(k.as_ref().is_some_and(|k| keys.contains(k))))
            .collect();
        let passing = filter_record_batch(&batch, &not(&hit).map_err(|e| store_err(&e))?)
            .map_err(|e| store_err(&e))?;
        let (passing, removed) = remove_patients(spec, &passing, drop_patients);
        outcome.removed_with_patient += removed;
        outcome.state_rows += passing.num_rows() as u64;
        writer.write(&passing).map_err(|e| store_err(&e))?;
        touched.push(filter_record_batch(&batch, &hit).map_err(|e| store_err(&e))?);
    }
    let touched = concat_batches(&schema, &touched).map_err(|e| store_err(&e))?;
    let m = merge(spec, Some(&touched), &delta);
    add(&mut outcome.counts, &m.counts);
    if !m.missing_key.is_empty() || !m.invalid_version.is_empty() {
        outcome.rejected.push(Rejected {
            rows: delta,
            missing_key: m.missing_key,
            invalid_version: m.invalid_version,
        });
    }
    outcome.removed_patients = m.removed_patients;
    let (kept, removed) = remove_patients(spec, &m.state, drop_patients);
    outcome.removed_with_patient += removed;
    outcome.state_rows += kept.num_rows() as u64;
    writer.write(&kept).map_err(|e| store_err(&e))?;
    writer.close().map_err(|e| store_err(&e))?;
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
    if !has_patients(spec, state, patients)? {
        return Ok(0);
    }
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

/// True when the state file of `spec` holds a row of one of `patients`: a
/// scan of the patient column alone, so that a removal that touches nothing
/// does not rewrite the file.
fn has_patients(
    spec: &TableSpec,
    state: &Path,
    patients: &HashSet<String>,
) -> Result<bool, StoreError> {
    let Some(column) = spec.patient else {
        return Ok(false);
    };
    if patients.is_empty() {
        return Ok(false);
    }
    let read_err = |e: &dyn std::fmt::Display| StoreError::State {
        path: state.to_path_buf(),
        message: e.to_string(),
    };
    let file = File::open(state).map_err(|source| StoreError::Io {
        path: state.to_path_buf(),
        source,
    })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| read_err(&e))?;
    let index = builder
        .schema()
        .index_of(column)
        .map_err(|e| read_err(&e))?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), [index]);
    let schema = state_schema(spec);
    let index = schema.index_of(column).map_err(|e| read_err(&e))?;
    let reader = builder
        .with_projection(mask)
        .with_batch_size(64 * 1024)
        .build()
        .map_err(|e| read_err(&e))?;
    for batch in reader {
        let batch = batch.map_err(|e| read_err(&e))?;
        let col =
            cast(batch.column(0), schema.field(index).data_type()).map_err(|e| read_err(&e))?;
        if (0..batch.num_rows()).any(|i| patient_id(&col, i).is_some_and(|p| patients.contains(&p)))
        {
            return Ok(true);
        }
    }
    Ok(false)
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
