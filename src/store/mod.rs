//! The canonical store on disk: layout, per-practice state, the run lock and the
//! staged, journalled commit that makes a practice's update all-or-nothing.
//!
//! ```text
//! store/
//!   canonical/<table>/practice=<ODS>/data.parquet   patients, registrations, events, medications
//!   quarantine/practice=<ODS>/data.parquet          rows not loaded, with reason and location
//!   practices/<ODS>/state.json                      deliveries ingested, capability profile, files owned
//!   practices/<ODS>/source/<Table>.parquet          supplier tables after deltas (for the next delta)
//!   reports/ingest.json                             the last ingest report
//!   withdrawn/<ODS>.json                            a practice withdrawn from the store (`withdraw`)
//!   ingest-in-progress.json                         only while an ingest runs, or after one crashed
//!   .lock                                           the writer lock (an OS file lock; the pid is information)
//! ```
//! A practice's update is written under `.staging/<ODS>/`, then a journal listing
//! the renames is written, then the renames run, `practices/<ODS>` last. A crash
//! part-way is rolled forward from the journal at the next open, so readers never
//! see half an update once the store is opened again. `state.json` records
//! every file of the practice with its size, row count and SHA-256, so a
//! reader can tell a missing or damaged file from an empty table.
//!
//! The lock is `flock`-style ([`File::try_lock`]): the operating system
//! releases it when the process ends, crashed or not, so a stale `.lock` file
//! never blocks the next ingest. The file itself stays (deleting it would race
//! with a process that has just opened it).

pub mod state;
pub mod withdraw;

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::{SortColumn, lexsort_to_indices, take_record_batch};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

pub use state::PracticeState;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: cannot write Parquet: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error(
        "{path}: cannot write or read a scratch file of the merge: {message}; hint: the disk holding the store may be full (a merge splits a large table into files beside the store); free space and run again; nothing of this delivery was stored"
    )]
    Scratch { path: PathBuf, message: String },
    #[error(
        "{path}: cannot read Parquet: {message}; hint: this store file is damaged; rebuild the practice by ingesting its landing zone into a new store (`phm ingest --store NEW_FOLDER`)"
    )]
    ParquetRead { path: PathBuf, message: String },
    /// The closing count of people linked across practices failed for want
    /// of memory: the message says what was stored and what to do.
    #[error("{0}")]
    Linkage(String),
    #[error(
        "{path}: phm cannot use this as a store: {source}; hint: --store takes a folder phm can create, read and write; check the path (not a file) and its permissions"
    )]
    Unusable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: the store is locked by another phm process (pid {pid}); hint: wait for it to finish (the lock is released when that process ends, even if it crashes)"
    )]
    Locked { path: PathBuf, pid: String },
    #[error(
        "practice {practice}: its files in the store are not as its last ingest wrote them: {problems}; hint: rebuild the practice by ingesting its landing zone into a new store (`phm ingest --store NEW_FOLDER`)"
    )]
    Damaged { practice: String, problems: String },
    #[error(
        "{path}: unreadable state file: {message}; hint: the store was written by an incompatible phm version or damaged; rebuild it from the landing zone into a new store"
    )]
    State { path: PathBuf, message: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub struct Store {
    root: PathBuf,
    /// Locked for the lifetime of the [`Store`]: one writer per store. The
    /// operating system unlocks it when the file is closed or the process dies.
    _lock: File,
}

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    /// (staged, target) pairs relative to the store root, applied in order.
    renames: Vec<(PathBuf, PathBuf)>,
}

impl Store {
    /// Opens (creating if needed) the store at `root`, takes its lock and rolls
    /// forward any commit a crash interrupted.
    pub fn open(root: &Path) -> Result<Store> {
        let unusable = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Unusable { path, source }
        };
        fs::create_dir_all(root).map_err(unusable(root))?;
        let lock_path = root.join(".lock");
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(unusable(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {
                use std::io::Write;
                // Information only: the lock is the OS lock, not the content.
                let _ = lock.set_len(0);
                let _ = write!(lock, "{}", std::process::id());
            }
            Err(fs::TryLockError::WouldBlock) => {
                let pid = fs::read_to_string(&lock_path).unwrap_or_default();
                let pid = match pid.trim() {
                    "" => "unknown".to_string(), // it has not written it yet
                    pid => pid.to_string(),
                };
                return Err(StoreError::Locked {
                    path: lock_path,
                    pid,
                });
            }
            Err(fs::TryLockError::Error(source)) => {
                return Err(StoreError::Unusable {
                    path: lock_path,
                    source,
                });
            }
        }
        let store = Store {
            root: root.to_path_buf(),
            _lock: lock,
        };
        store.recover()?;
        Ok(store)
    }

    /// Records that an ingest has started, with what it is about to apply.
    pub fn begin_ingest(&self, plan: &state::InProgress) -> Result<()> {
        let path = self.root.join(state::IN_PROGRESS_FILE);
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(plan).expect("ingest record serialises");
        fs::write(&tmp, json).map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// Removes the record of [`Store::begin_ingest`]: every practice is
    /// either committed or left unchanged (and reported).
    pub fn finish_ingest(&self) -> Result<()> {
        let path = self.root.join(state::IN_PROGRESS_FILE);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path)(e)),
            _ => Ok(()),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn canonical_dir(&self, table: &str) -> PathBuf {
        self.root.join("canonical").join(table)
    }

    pub fn practice_dir(&self, ods: &str) -> PathBuf {
        self.root.join("practices").join(ods)
    }

    /// Practices the store holds, sorted.
    pub fn practices(&self) -> Result<Vec<String>> {
        let dir = self.root.join("practices");
        if !dir.exists() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            if entry.path().join(state::STATE_FILE).is_file() {
                out.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        out.sort();
        Ok(out)
    }

    /// A staging area for one practice's update.
    pub fn stage(&self, ods: &str) -> Result<Staging> {
        let dir = self.root.join(".staging").join(ods);
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(io(&dir))?;
        }
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(Staging {
            ods: ods.to_string(),
            dir,
            renames: Vec::new(),
        })
    }

    /// Makes a staged update visible: journal, renames, `practices/<ODS>` last.
    pub fn commit(&self, staging: Staging) -> Result<()> {
        let journal = Journal {
            renames: staging.renames,
        };
        self.journalled(&staging.ods, &journal)?;
        let _ = fs::remove_dir_all(&staging.dir);
        Ok(())
    }

    /// Writes `journal` as `.journal/<name>.json`, runs its renames and
    /// removes it: a crash at any point is finished at the next open.
    fn journalled(&self, name: &str, journal: &Journal) -> Result<()> {
        let journal_dir = self.root.join(".journal");
        fs::create_dir_all(&journal_dir).map_err(io(&journal_dir))?;
        let journal_path = journal_dir.join(format!("{name}.json"));
        let tmp = journal_path.with_extension("json.tmp");
        fs::write(
            &tmp,
            serde_json::to_vec(journal).expect("journal serialises"),
        )
        .map_err(io(&tmp))?;
        fs::rename(&tmp, &journal_path).map_err(io(&journal_path))?;
        self.apply(journal)?;
        fs::remove_file(&journal_path).map_err(io(&journal_path))
    }

    /// Runs the renames of `journal`; run again after a crash at any point,
    /// it finishes them. A target being replaced is moved aside to
    /// `<target>.old` first and removed once the staged copy is in place,
    /// whether this pass or an interrupted one moved it there: nothing of it
    /// stays published.
    fn apply(&self, journal: &Journal) -> Result<()> {
        for (staged, target) in &journal.renames {
            let (staged, target) = (self.root.join(staged), self.root.join(target));
            let old = target.with_extension("old");
            if staged.exists() {
                if target.exists() {
                    if old.exists() {
                        fs::remove_dir_all(&old).map_err(io(&old))?;
                    }
                    fs::rename(&target, &old).map_err(io(&target))?;
                } else if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(io(parent))?;
                }
                fs::rename(&staged, &target).map_err(io(&target))?;
            }
            if old.exists() {
                fs::remove_dir_all(&old).map_err(io(&old))?;
            }
        }
        Ok(())
    }

    fn recover(&self) -> Result<()> {
        let journal_dir = self.root.join(".journal");
        if journal_dir.exists() {
            for entry in fs::read_dir(&journal_dir).map_err(io(&journal_dir))? {
                let path = entry.map_err(io(&journal_dir))?.path();
                if path.extension().is_some_and(|e| e == "json") {
                    let bytes = fs::read(&path).map_err(io(&path))?;
                    let journal: Journal =
                        serde_json::from_slice(&bytes).map_err(|e| StoreError::State {
                            path: path.clone(),
                            message: e.to_string(),
                        })?;
                    tracing::warn!(journal = %path.display(), "completing an ingest commit interrupted by a crash");
                    self.apply(&journal)?;
                    fs::remove_file(&path).map_err(io(&path))?;
                } else {
                    let _ = fs::remove_file(&path);
                }
            }
        }
        let staging = self.root.join(".staging");
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(io(&staging))?;
        }
        Ok(())
    }
}

/// Files of one practice's update, written aside until [`Store::commit`].
pub struct Staging {
    ods: String,
    dir: PathBuf,
    renames: Vec<(PathBuf, PathBuf)>,
}

impl Staging {
    /// Every file staged so far, recorded under the path it will have once
    /// committed (for the practice's `state.json`).
    pub fn file_records(&self) -> Result<Vec<state::FileRecord>> {
        let mut out = Vec::new();
        for (i, (_, target)) in self.renames.iter().enumerate() {
            state::record_dir(&self.dir.join(format!("{i}")), target, &mut out)?;
        }
        Ok(out)
    }

    /// A scratch folder for the practice's intermediate files: never
    /// committed, removed with the staging area (also after a crash, when
    /// the store is next opened).
    pub fn scratch(&self) -> Result<PathBuf> {
        let dir = self.dir.join("scratch");
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(dir)
    }

    /// Removes the scratch folder, once nothing in it is needed.
    pub fn remove_scratch(&self) -> Result<()> {
        let dir = self.dir.join("scratch");
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(io(&dir))?;
        }
        Ok(())
    }

    /// A directory to fill that will replace `target` (relative to the store root).
    pub fn dir_for(&mut self, target: PathBuf) -> Result<PathBuf> {
        let staged_rel = Path::new(".staging")
            .join(&self.ods)
            .join(format!("{}", self.renames.len()));
        let staged = self.dir.join(format!("{}", self.renames.len()));
        fs::create_dir_all(&staged).map_err(io(&staged))?;
        self.renames.push((staged_rel, target));
        Ok(staged)
    }
}

/// Rows per data page at most. Cohort runs read a few rows of the store by
/// position (the evidence of chosen events) and by code: a small page is
/// what a reader decompresses to reach one row.
const PAGE_ROWS: usize = 8 * 1024;

/// How the store writes every Parquet file: ZSTD, 256k-row groups, small
/// pages with page statistics, and no dictionary for the unique row ids.
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("level 1 is valid"),
        ))
        .set_max_row_group_row_count(Some(256 * 1024))
        .set_data_page_row_count_limit(PAGE_ROWS)
        // Unique per row: a dictionary would only grow to its limit, and a
        // reader of one row would decode it whole.
        .set_column_dictionary_enabled(ColumnPath::from("source_row_id"), false)
        .set_statistics_enabled(EnabledStatistics::Page)
        .build()
}

/// Writes `batch` sorted by `sort` (nulls first) as one Parquet file, with
/// its `row_order` column derived when it has one
/// ([`crate::canonical::tables::with_row_order`]).
pub fn write_parquet(path: &Path, batch: &RecordBatch, sort: &[&str]) -> Result<u64> {
    let parquet_err = |e: &dyn std::fmt::Display| StoreError::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    // A file holds one practice's rows: its row order is derived here, so no
    // writer can store a stale one.
    let batch = &crate::canonical::tables::with_row_order(batch).map_err(|e| parquet_err(&e))?;
    let sorted = if sort.is_empty() || batch.num_rows() == 0 {
        batch.clone()
    } else {
        let columns: Vec<SortColumn> = sort
            .iter()
            .map(|name| SortColumn {
                values: batch
                    .column_by_name(name)
                    .expect("sort column exists")
                    .clone(),
                options: None,
            })
            .collect();
        let indices = lexsort_to_indices(&columns, None).map_err(|e| parquet_err(&e))?;
        take_record_batch(batch, &indices).map_err(|e| parquet_err(&e))?
    };
    let props = writer_properties();
    let file = File::create(path).map_err(io(path))?;
    let mut writer =
        ArrowWriter::try_new(file, sorted.schema(), Some(props)).map_err(|e| parquet_err(&e))?;
    writer.write(&sorted).map_err(|e| parquet_err(&e))?;
    writer.close().map_err(|e| parquet_err(&e))?;
    Ok(sorted.num_rows() as u64)
}

/// The first events or medications file of the store at `root` written
/// before those tables carried `row_order` (`None`: every file has it).
pub fn file_without_row_order(root: &Path) -> Result<Option<PathBuf>> {
    let mut all = Vec::new();
    for table in ["events", "medications"] {
        let dir = root.join("canonical").join(table);
        if !dir.is_dir() {
            continue;
        }
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .map_err(io(&dir))?
            .filter_map(|e| e.ok().map(|e| e.path().join("data.parquet")))
            .filter(|f| f.is_file())
            .collect();
        files.sort();
        all.extend(files);
    }
    first_without_row_order(&all)
}

/// The first of `files` (events or medications files) without `row_order`.
pub fn first_without_row_order(files: &[PathBuf]) -> Result<Option<PathBuf>> {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    for file in files {
        let reader = File::open(file).map_err(io(file)).and_then(|f| {
            SerializedFileReader::new(f).map_err(|e| StoreError::ParquetRead {
                path: file.clone(),
                message: e.to_string(),
            })
        })?;
        let has = reader
            .metadata()
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .any(|c| c.name() == crate::canonical::tables::ROW_ORDER);
        if !has {
            return Ok(Some(file.clone()));
        }
    }
    Ok(None)
}

/// Practices of the store at `root` whose state was written before phm
/// recorded each practice's files (sorted; empty for a current store).
pub fn unrecorded_practices(root: &Path) -> Result<Vec<String>> {
    let dir = root.join("practices");
    let mut out = Vec::new();
    if dir.is_dir() {
        for entry in fs::read_dir(&dir).map_err(io(&dir))? {
            let path = entry.map_err(io(&dir))?.path();
            if let Some(s) = PracticeState::read(&path)?
                && s.files.is_none()
            {
                out.push(s.practice);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `batch` in `schema`: the same columns in order, each cast to the
/// schema's type where it differs (Parquet reads strings as views, and
/// files keep their own nullability), checked against the schema.
pub fn conform(
    schema: &datafusion::arrow::datatypes::SchemaRef,
    batch: &RecordBatch,
) -> datafusion::arrow::error::Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| {
            if c.data_type() == f.data_type() {
                Ok(c.clone())
            } else {
                datafusion::arrow::compute::cast(c, f.data_type())
            }
        })
        .collect::<datafusion::arrow::error::Result<Vec<_>>>()?;
    RecordBatch::try_new(schema.clone(), columns)
}

/// Reads a whole Parquet file the store wrote.
pub fn read_parquet(path: &Path) -> Result<RecordBatch> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let parquet_err = |e: &dyn std::fmt::Display| StoreError::ParquetRead {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let file = File::open(path).map_err(io(path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| parquet_err(&e))?;
    let schema = builder.schema().clone();
    let batches = builder
        .build()
        .map_err(|e| parquet_err(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| parquet_err(&e))?;
    datafusion::arrow::compute::concat_batches(&schema, &batches).map_err(|e| parquet_err(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAGED: &str = ".staging/P00001/0";
    const TARGET: &str = "canonical/events/practice=P00001";
    const OLD: &str = "canonical/events/practice=P00001.old";

    fn put(root: &Path, dir: &str, content: &str) {
        fs::create_dir_all(root.join(dir)).unwrap();
        fs::write(root.join(dir).join("data.parquet"), content).unwrap();
    }

    /// A commit replacing one partition, interrupted after each of its
    /// steps, is finished by the next open: the new content published, the
    /// old and the staged copies gone.
    #[test]
    fn an_interrupted_commit_is_finished_with_nothing_left_aside() {
        // (step reached, staged holds, target holds, old holds)
        let cases = [
            ("journal written", Some("new"), Some("old"), None),
            ("target moved aside", Some("new"), None, Some("old")),
            ("staged moved in", None, Some("new"), Some("old")),
            ("old removed", None, Some("new"), None),
        ];
        for (step, staged, target, old) in cases {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path();
            for (path, content) in [(STAGED, staged), (TARGET, target), (OLD, old)] {
                if let Some(content) = content {
                    put(root, path, content);
                }
            }
            fs::create_dir_all(root.join(".journal")).unwrap();
            let journal = Journal {
                renames: vec![(PathBuf::from(STAGED), PathBuf::from(TARGET))],
            };
            fs::write(
                root.join(".journal/P00001.json"),
                serde_json::to_vec(&journal).unwrap(),
            )
            .unwrap();

            drop(Store::open(root).unwrap());
            let published = fs::read_to_string(root.join(TARGET).join("data.parquet"));
            assert_eq!(published.unwrap(), "new", "{step}");
            for gone in [OLD, ".staging", ".journal/P00001.json"] {
                assert!(!root.join(gone).exists(), "{step}: {gone} left");
            }
        }
    }
}
