//! A practice's supplier state while deliveries are applied: one Parquet
//! file per table, never a table in memory.
//!
//! A table starts at the store's file (`practices/<ODS>/source/<Table>.parquet`)
//! and moves to a new file in the practice's scratch folder each time a
//! delivery changes it; the store's files are only read. Once every delivery
//! is applied, the files are copied into the staging area and committed with
//! the canonical tables.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;

use crate::source::derive::{StateSource, empty_state};
use crate::source::merge_files::{file_rows, state_batches};
use crate::source::read::state_schema;
use crate::source::table::TableSpec;
use crate::store::StoreError;

pub struct StateFiles {
    files: BTreeMap<&'static str, PathBuf>,
    scratch: PathBuf,
    written: usize,
}

impl StateFiles {
    /// The state the store holds for a practice (tables it has files for).
    pub fn in_store(
        practice_dir: &Path,
        specs: &[&'static TableSpec],
        scratch: &Path,
    ) -> StateFiles {
        let files = specs
            .iter()
            .filter_map(|spec| {
                let path = practice_dir
                    .join("source")
                    .join(format!("{}.parquet", spec.name));
                path.is_file().then_some((spec.name, path))
            })
            .collect();
        StateFiles {
            files,
            scratch: scratch.to_path_buf(),
            written: 0,
        }
    }

    /// The file holding `spec`'s state; `None` when the practice has none.
    pub fn get(&self, spec: &TableSpec) -> Option<&Path> {
        self.files.get(spec.name).map(PathBuf::as_path)
    }

    /// A new scratch file for `spec`'s next state.
    pub fn next_file(&mut self, spec: &TableSpec) -> PathBuf {
        self.written += 1;
        self.scratch
            .join(format!("state-{}-{}.parquet", self.written, spec.name))
    }

    /// `path` now holds `spec`'s state.
    pub fn set(&mut self, spec: &'static TableSpec, path: PathBuf) {
        self.files.insert(spec.name, path);
    }

    /// A full extract replaces the practice's whole state.
    pub fn clear(&mut self) {
        self.files.clear();
    }

    /// Rows of each table's state, from the files' footers.
    pub fn rows(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        self.files
            .iter()
            .map(|(name, path)| Ok((name.to_string(), file_rows(path)?)))
            .collect()
    }

    /// Copies every table's state into `dir` as `<Table>.parquet`.
    pub fn copy_into(&self, dir: &Path) -> Result<(), StoreError> {
        for (name, path) in &self.files {
            let to = dir.join(format!("{name}.parquet"));
            let moved = path.starts_with(&self.scratch) && std::fs::rename(path, &to).is_ok();
            if !moved {
                std::fs::copy(path, &to).map_err(|source| StoreError::Io {
                    path: to.clone(),
                    source,
                })?;
            }
        }
        Ok(())
    }
}

impl StateSource for StateFiles {
    fn whole(&self, spec: &'static TableSpec) -> Result<RecordBatch, StoreError> {
        let Some(path) = self.get(spec) else {
            return Ok(empty_state(spec));
        };
        let batches = state_batches(spec, path)?.collect::<Result<Vec<_>, _>>()?;
        concat_batches(&state_schema(spec), &batches).map_err(|e| StoreError::State {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    fn batches(
        &self,
        spec: &'static TableSpec,
        f: &mut dyn FnMut(RecordBatch) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut any = false;
        if let Some(path) = self.get(spec) {
            for batch in state_batches(spec, path)? {
                any = true;
                f(batch?)?;
            }
        }
        if !any {
            f(empty_state(spec))?;
        }
        Ok(())
    }
}
