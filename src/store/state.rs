//! Per-practice state kept with the canonical data: which deliveries have been
//! applied, the practice's capability profile and the files it owns; and the
//! record of an ingest that has started and not yet finished.
//!
//! Invariants: a practice's `state.json` is renamed into place last in its
//! commit, so the files it records are on disk whenever it is; a reader trusts
//! a practice only when every recorded file is there with its recorded size
//! and Parquet row count ([`PracticeState::check_files`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use super::{Result, StoreError, io};
use crate::source::manifest::{ExtractKind, Supplier, parquet_row_count, sha256_file};

pub const STATE_FILE: &str = "state.json";

/// At the store root while an ingest runs; left behind by one that crashed.
pub const IN_PROGRESS_FILE: &str = "ingest-in-progress.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestedDelivery {
    pub extract_id: String,
    pub kind: ExtractKind,
    pub extracted_at: NaiveDateTime,
    /// SHA-256 of the delivery's manifest.json: the same extract id with another
    /// manifest is a different delivery and is refused.
    pub manifest_sha256: String,
}

/// What a practice's data can answer (DESIGN.md, "capability profile"). A cohort
/// needing a table or code system a practice lacks reports it *unavailable*.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capability {
    pub supplier: Supplier,
    pub schema_version: String,
    /// Source tables present in the state, with their row counts.
    pub source_tables: BTreeMap<String, u64>,
    /// Canonical tables holding at least one row.
    pub canonical_tables: Vec<String>,
    pub code_systems: Vec<String>,
    pub latest_extracted_at: NaiveDateTime,
}

/// One file a practice owns, as its commit wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Relative to the store root, `/`-separated.
    pub path: String,
    pub bytes: u64,
    /// Rows in the Parquet footer.
    pub rows: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PracticeState {
    pub practice: String,
    pub supplier: Supplier,
    pub deliveries: Vec<IngestedDelivery>,
    pub capability: Capability,
    /// Every file of the practice (canonical tables, quarantine, source
    /// state); `None` in a state written before phm recorded them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<FileRecord>>,
}

impl PracticeState {
    pub fn read(practice_dir: &Path) -> Result<Option<PracticeState>> {
        let path = practice_dir.join(STATE_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::State {
                path,
                message: e.to_string(),
            })
    }

    pub fn write(&self, practice_dir: &Path) -> Result<()> {
        let path = practice_dir.join(STATE_FILE);
        let json = serde_json::to_vec_pretty(self).expect("state serialises");
        std::fs::write(&path, json).map_err(io(&path))
    }

    pub fn latest(&self) -> Option<&IngestedDelivery> {
        self.deliveries.iter().max_by_key(|d| d.extracted_at)
    }

    /// The recorded file at `path` (relative to the store root).
    pub fn file(&self, path: &str) -> Option<&FileRecord> {
        self.files.iter().flatten().find(|f| f.path == path)
    }

    /// What is wrong with the practice's files in the store at `root`: one
    /// line per file that is missing, has another size, has an unreadable
    /// footer or another row count than its commit recorded. Empty: every
    /// file is as written. (Sizes and footers only: hashing a whole store on
    /// every cohort run would cost more than the run; see `docs/ingest.md`.)
    pub fn check_files(&self, root: &Path) -> Vec<FileProblem> {
        let mut problems = Vec::new();
        for f in self.files.iter().flatten() {
            let path = root.join(&f.path);
            let problem = match std::fs::metadata(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => "missing".to_string(),
                Err(e) => format!("cannot be read: {e}"),
                Ok(m) if m.len() != f.bytes => {
                    format!("{} bytes, {} when it was written", m.len(), f.bytes)
                }
                Ok(_) => match parquet_row_count(&path) {
                    Err(e) => format!("cannot read Parquet: {e}"),
                    Ok(rows) if rows != f.rows => {
                        format!("{rows} rows in its footer, {} when it was written", f.rows)
                    }
                    Ok(_) => continue,
                },
            };
            problems.push(FileProblem { path, problem });
        }
        problems
    }
}

/// A practice file that is not as its commit wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileProblem {
    pub path: PathBuf,
    pub problem: String,
}

impl std::fmt::Display for FileProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.problem)
    }
}

/// Records every file under `dir`, as if it sat at `target` (relative to the
/// store root), except `state.json` itself.
pub(super) fn record_dir(dir: &Path, target: &Path, out: &mut Vec<FileRecord>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .map(|e| e.map(|e| e.path()).map_err(io(dir)))
        .collect::<Result<_>>()?;
    entries.sort();
    for path in entries {
        let name = path.file_name().expect("a directory entry has a name");
        let rel = target.join(name);
        if path.is_dir() {
            record_dir(&path, &rel, out)?;
        } else if name != STATE_FILE {
            let bytes = std::fs::metadata(&path).map_err(io(&path))?.len();
            let rows = parquet_row_count(&path).map_err(|message| StoreError::ParquetRead {
                path: path.clone(),
                message,
            })?;
            let sha256 = sha256_file(&path).map_err(io(&path))?;
            let rel = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            out.push(FileRecord {
                path: rel,
                bytes,
                rows,
                sha256,
            });
        }
    }
    Ok(())
}

/// Every file practice `ods` owns in the store at `root`, recorded as it is
/// now: for stores built by hand (tests) rather than by an ingest.
pub fn record_files(root: &Path, ods: &str) -> Result<Vec<FileRecord>> {
    let partition = format!("practice={ods}");
    let mut out = Vec::new();
    let mut places = vec![
        Path::new("quarantine").join(&partition),
        Path::new("practices").join(ods),
    ];
    let canonical = root.join("canonical");
    if canonical.is_dir() {
        for entry in std::fs::read_dir(&canonical).map_err(io(&canonical))? {
            let name = entry.map_err(io(&canonical))?.file_name();
            places.push(Path::new("canonical").join(name).join(&partition));
        }
    }
    places.sort();
    for rel in places {
        let dir = root.join(&rel);
        if dir.is_dir() {
            record_dir(&dir, &rel, &mut out)?;
        }
    }
    Ok(out)
}

/// An ingest that started: the practices it was about to change, with the
/// extracts each was to receive. Written before the first practice is
/// touched and removed when the ingest ends, so a store holding one was left
/// by an ingest that is still running or did not finish.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InProgress {
    pub pid: u32,
    pub practices: Vec<PendingPractice>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingPractice {
    pub practice: String,
    pub extracts: Vec<PendingExtract>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingExtract {
    pub extract_id: String,
    pub extracted_at: NaiveDateTime,
}

impl InProgress {
    pub fn read(root: &Path) -> Result<Option<InProgress>> {
        let path = root.join(IN_PROGRESS_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::State {
                path,
                message: e.to_string(),
            })
    }

    /// Practices the unfinished ingest left behind: each with why (missing
    /// from the store, or holding older extracts than it was to receive).
    /// `states`: the practices in the store.
    pub fn left_behind(&self, states: &[PracticeState]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for p in &self.practices {
            let state = states.iter().find(|s| s.practice == p.practice);
            let applied =
                |id: &str| state.is_some_and(|s| s.deliveries.iter().any(|d| d.extract_id == id));
            let missing: Vec<String> = p
                .extracts
                .iter()
                .filter(|e| !applied(&e.extract_id))
                .map(|e| format!("{} (extracted {})", e.extract_id, e.extracted_at))
                .collect();
            if missing.is_empty() {
                continue;
            }
            let why = match state.and_then(|s| s.latest()) {
                None => format!(
                    "missing from the store: an ingest did not finish applying {}",
                    missing.join(", ")
                ),
                Some(latest) => format!(
                    "stale: the store holds extracts up to {} (extracted {}); an ingest did not finish applying {}",
                    latest.extract_id,
                    latest.extracted_at,
                    missing.join(", ")
                ),
            };
            out.push((p.practice.clone(), why));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(day: u32) -> NaiveDateTime {
        chrono::NaiveDate::from_ymd_opt(2026, 3, day)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
    }

    fn state(practice: &str, extracts: &[(&str, u32)]) -> PracticeState {
        PracticeState {
            practice: practice.into(),
            supplier: Supplier::Emis,
            deliveries: extracts
                .iter()
                .map(|(id, day)| IngestedDelivery {
                    extract_id: id.to_string(),
                    kind: ExtractKind::Full,
                    extracted_at: at(*day),
                    manifest_sha256: String::new(),
                })
                .collect(),
            capability: Capability {
                supplier: Supplier::Emis,
                schema_version: "1".into(),
                source_tables: BTreeMap::new(),
                canonical_tables: vec![],
                code_systems: vec![],
                latest_extracted_at: at(1),
            },
            files: Some(vec![]),
        }
    }

    /// Each practice an unfinished ingest named, as the store holds it.
    #[test]
    fn an_unfinished_ingest_leaves_practices_missing_or_stale() {
        let pending = |practice: &str, extracts: &[(&str, u32)]| PendingPractice {
            practice: practice.into(),
            extracts: extracts
                .iter()
                .map(|(id, day)| PendingExtract {
                    extract_id: id.to_string(),
                    extracted_at: at(*day),
                })
                .collect(),
        };
        let record = InProgress {
            pid: 1,
            practices: vec![
                pending("A1", &[("a-2", 2)]),
                pending("B2", &[("b-2", 2), ("b-3", 3)]),
                pending("C3", &[("c-2", 2)]),
            ],
        };
        let states = [
            // A1 committed before the crash; C3 has its old extract only;
            // B2 was never committed.
            state("A1", &[("a-1", 1), ("a-2", 2)]),
            state("C3", &[("c-1", 1)]),
        ];
        let got = record.left_behind(&states);
        let want = [
            (
                "B2",
                "missing from the store: an ingest did not finish applying b-2 (extracted 2026-03-02 00:00:00), b-3 (extracted 2026-03-03 00:00:00)",
            ),
            (
                "C3",
                "stale: the store holds extracts up to c-1 (extracted 2026-03-01 00:00:00); an ingest did not finish applying c-2 (extracted 2026-03-02 00:00:00)",
            ),
        ];
        assert_eq!(got.len(), want.len(), "{got:?}");
        for ((p, why), (wp, wwhy)) in got.iter().zip(want) {
            assert_eq!((p.as_str(), why.as_str()), (wp, wwhy));
        }
    }
}
