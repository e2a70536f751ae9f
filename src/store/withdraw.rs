//! Withdrawing a practice from the store: its record first, then its data.
//!
//! ```text
//! store/withdrawn/<ODS>.json    who withdrew the practice, when and why, and what was removed
//! ```
//! [`Store::withdraw`] writes the record; from then on ingest refuses the
//! practice's deliveries, so a nightly run cannot bring its data back.
//! [`Store::remove_practice`] then moves every folder of the practice (its
//! canonical rows, quarantine, supplier state and `state.json`, in that
//! order) out of the store through the same journal as an ingest commit:
//! a crash part-way is finished when the store is next opened, and readers
//! meanwhile see a practice whose files are missing (refused loudly), never
//! a practice that looks complete.

use std::fs;
use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use super::{Journal, Result, Store, StoreError, io, state::PracticeState};

pub const WITHDRAWN_DIR: &str = "withdrawn";

/// The record of a practice's withdrawal: `withdrawn/<ODS>.json`. Counts
/// only; never a patient's identifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Withdrawal {
    pub practice: String,
    /// UTC, read by the command line.
    pub at: NaiveDateTime,
    /// The operating-system user who withdrew it.
    pub user: String,
    /// Why, as given (e.g. the data-sharing agreement ended).
    pub reason: String,
    /// Canonical patients the store held for the practice.
    pub patients: u64,
    /// Rows of every file removed (canonical, quarantine, supplier state).
    pub rows: u64,
    /// Files removed.
    pub files: usize,
}

/// The withdrawal record of `ods` in the store at `root`, if it was withdrawn.
pub fn withdrawal(root: &Path, ods: &str) -> Result<Option<Withdrawal>> {
    let path = record_path(root, ods);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::State {
                path,
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path)(e)),
    }
}

/// Every practice withdrawn from the store at `root`, sorted.
pub fn withdrawn(root: &Path) -> Result<Vec<String>> {
    let dir = root.join(WITHDRAWN_DIR);
    let mut out = Vec::new();
    match fs::read_dir(&dir) {
        Ok(entries) => {
            for entry in entries {
                let name = entry.map_err(io(&dir))?.file_name();
                if let Some(ods) = name.to_string_lossy().strip_suffix(".json") {
                    out.push(ods.to_string());
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&dir)(e)),
    }
    out.sort();
    Ok(out)
}

fn record_path(root: &Path, ods: &str) -> PathBuf {
    root.join(WITHDRAWN_DIR).join(format!("{ods}.json"))
}

/// What the store holds of a practice, before it is removed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Holdings {
    pub patients: u64,
    pub rows: u64,
    pub files: usize,
    /// Folders of the practice, relative to the store root, in removal order.
    pub folders: Vec<PathBuf>,
}

impl Store {
    /// What the store holds of `ods`: counted from its `state.json` (every
    /// file with its row count) and the folders that exist.
    pub fn holdings(&self, ods: &str) -> Result<Holdings> {
        let mut out = Holdings::default();
        if let Some(state) = PracticeState::read(&self.practice_dir(ods))? {
            let files = state.files.unwrap_or_default();
            out.files = files.len();
            for f in &files {
                out.rows += f.rows;
                if f.path.starts_with("canonical/patients/") {
                    out.patients += f.rows;
                }
            }
        }
        let partition = format!("practice={ods}");
        let canonical = self.root.join("canonical");
        let mut folders = Vec::new();
        if canonical.is_dir() {
            let mut tables: Vec<PathBuf> = fs::read_dir(&canonical)
                .map_err(io(&canonical))?
                .filter_map(std::result::Result::ok)
                .map(|e| Path::new("canonical").join(e.file_name()).join(&partition))
                .collect();
            tables.sort();
            folders.extend(tables);
        }
        folders.push(Path::new("quarantine").join(&partition));
        folders.push(Path::new("practices").join(ods));
        out.folders = folders
            .into_iter()
            .filter(|f| self.root.join(f).exists())
            .collect();
        Ok(out)
    }

    /// Records that `ods` is withdrawn (replacing an earlier record). From
    /// now on ingest refuses its deliveries.
    pub fn withdraw(&self, record: &Withdrawal) -> Result<()> {
        let path = record_path(&self.root, &record.practice);
        let dir = path.parent().expect("record has a folder");
        fs::create_dir_all(dir).map_err(io(dir))?;
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(record).expect("withdrawal serialises");
        fs::write(&tmp, json).map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// Removes every folder of `ods` from the store (see the module notes).
    /// Removing a practice the store no longer holds does nothing.
    pub fn remove_practice(&self, ods: &str) -> Result<Holdings> {
        let holdings = self.holdings(ods)?;
        let trash = Path::new(".staging").join(format!("removed-{ods}"));
        let journal = Journal {
            renames: holdings
                .folders
                .iter()
                .enumerate()
                .map(|(i, f)| (f.clone(), trash.join(i.to_string())))
                .collect(),
        };
        self.journalled(ods, &journal)?;
        let trash = self.root.join(trash);
        if trash.exists() {
            fs::remove_dir_all(&trash).map_err(io(&trash))?;
        }
        Ok(holdings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(root: &Path, rel: &str) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"x").unwrap();
    }

    #[test]
    fn removes_only_the_practice_and_keeps_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for ods in ["A81001", "B82002"] {
            file(
                root,
                &format!("canonical/events/practice={ods}/data.parquet"),
            );
            file(
                root,
                &format!("canonical/patients/practice={ods}/data.parquet"),
            );
            file(root, &format!("quarantine/practice={ods}/data.parquet"));
            file(root, &format!("practices/{ods}/source/Patient.parquet"));
        }
        let store = Store::open(root).unwrap();
        let record = Withdrawal {
            practice: "A81001".into(),
            at: chrono::NaiveDate::from_ymd_opt(2026, 12, 1)
                .unwrap()
                .and_hms_opt(9, 0, 0)
                .unwrap(),
            user: "ops".into(),
            reason: "agreement ended".into(),
            patients: 0,
            rows: 0,
            files: 0,
        };
        store.withdraw(&record).unwrap();
        let removed = store.remove_practice("A81001").unwrap();
        assert_eq!(
            removed.folders,
            vec![
                PathBuf::from("canonical/events/practice=A81001"),
                PathBuf::from("canonical/patients/practice=A81001"),
                PathBuf::from("quarantine/practice=A81001"),
                PathBuf::from("practices/A81001"),
            ]
        );
        for f in &removed.folders {
            assert!(!root.join(f).exists(), "{} still there", f.display());
        }
        assert!(
            root.join("canonical/events/practice=B82002/data.parquet")
                .exists()
        );
        assert!(
            root.join("practices/B82002/source/Patient.parquet")
                .exists()
        );
        assert!(!root.join(".staging/removed-A81001").exists());
        assert_eq!(withdrawal(root, "A81001").unwrap(), Some(record));
        assert_eq!(withdrawal(root, "B82002").unwrap(), None);
        assert_eq!(withdrawn(root).unwrap(), vec!["A81001".to_string()]);
        // Again: nothing left to remove.
        assert!(store.remove_practice("A81001").unwrap().folders.is_empty());
    }

    #[test]
    fn a_removal_cut_short_is_finished_when_the_store_is_opened() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        file(root, "canonical/events/practice=A81001/data.parquet");
        file(root, "practices/A81001/state.json");
        // A crash after the journal was written and the first rename ran.
        let journal = Journal {
            renames: vec![
                (
                    PathBuf::from("canonical/events/practice=A81001"),
                    PathBuf::from(".staging/removed-A81001/0"),
                ),
                (
                    PathBuf::from("practices/A81001"),
                    PathBuf::from(".staging/removed-A81001/1"),
                ),
            ],
        };
        fs::create_dir_all(root.join(".staging/removed-A81001")).unwrap();
        fs::rename(
            root.join("canonical/events/practice=A81001"),
            root.join(".staging/removed-A81001/0"),
        )
        .unwrap();
        fs::create_dir_all(root.join(".journal")).unwrap();
        fs::write(
            root.join(".journal/A81001.json"),
            serde_json::to_vec(&journal).unwrap(),
        )
        .unwrap();
        drop(Store::open(root).unwrap());
        assert!(!root.join("practices/A81001").exists());
        assert!(!root.join(".staging").exists());
        assert!(!root.join(".journal/A81001.json").exists());
    }
}
