//! The audit log: one JSON line per action that touches identifiable data or
//! a pseudonym key (a cohort run, an explanation, a re-identification), in
//! `<store>/audit/audit.jsonl`. Lines are only ever appended; each write is
//! one `write` call on a file opened for appending, so concurrent writers
//! never interleave within a line.
//!
//! A record says who, when, what, why and with which key (by its id): never
//! an NHS number, a person key or a key.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

pub const AUDIT_DIR: &str = "audit";
pub const AUDIT_FILE: &str = "audit.jsonl";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// UTC, read by the command line.
    pub at: NaiveDateTime,
    /// The operating-system user who ran the command.
    pub user: String,
    /// `cohort run`, `cohort explain`, `reidentify`, …
    pub action: String,
    /// The purpose the user gave.
    pub purpose: Option<String>,
    pub key_id: Option<String>,
    pub practice: Option<String>,
    /// What was asked for (cohort ids, pseudonyms): never an identifier.
    pub subjects: Vec<String>,
    /// `done`, `refused` or `partly refused`, with the counts.
    pub outcome: String,
    pub detail: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "{path}: cannot append to the audit log: {source}; hint: the store's audit folder must be writable by the user running phm; nothing was done without its audit record"
)]
pub struct AuditError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// The audit log of the store at `store_root`.
pub fn path(store_root: &Path) -> PathBuf {
    store_root.join(AUDIT_DIR).join(AUDIT_FILE)
}

/// Appends `record` as one line.
pub fn append(store_root: &Path, record: &AuditRecord) -> Result<(), AuditError> {
    let path = path(store_root);
    let err = |source| AuditError {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(path.parent().expect("audit file has a folder")).map_err(err)?;
    let mut line = serde_json::to_vec(record).expect("audit record serialises");
    line.push(b'\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(&line))
        .map_err(err)
}

/// Every record of the store's audit log, oldest first.
pub fn read(store_root: &Path) -> Result<Vec<AuditRecord>, AuditError> {
    let path = path(store_root);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(AuditError { path, source }),
    };
    text.lines()
        .map(|l| {
            serde_json::from_str(l).map_err(|e| AuditError {
                path: path.clone(),
                source: std::io::Error::other(e),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_appended_one_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let record = |n: usize| AuditRecord {
            at: chrono::DateTime::from_timestamp(1_780_000_000 + n as i64, 0)
                .unwrap()
                .naive_utc(),
            user: "analyst".into(),
            action: "reidentify".into(),
            purpose: Some("recall".into()),
            key_id: Some("k0123".into()),
            practice: Some("A81001".into()),
            subjects: vec![format!("P{n}")],
            outcome: "done".into(),
            detail: None,
        };
        append(dir.path(), &record(1)).unwrap();
        append(dir.path(), &record(2)).unwrap();
        assert_eq!(read(dir.path()).unwrap(), vec![record(1), record(2)]);
        let text = std::fs::read_to_string(path(dir.path())).unwrap();
        assert_eq!(text.lines().count(), 2);
    }
}
