//! The run id: a hash of everything that decides a run's outputs.
//!
//! Inputs, in a fixed order: phm's version; every delivery in the landing
//! zone (practice folder, delivery folder, SHA-256 of its manifest, which
//! itself holds every file's hash); every file under the cohort and value
//! set folders (path and SHA-256: a definition pins its value sets by
//! version, and a file's content is what the run reads); the release id; the
//! index date; and the settings that shape the outputs (cohorts, disclosure,
//! pseudonym key id, purpose, expected practices) and the practices
//! withdrawn from the store. Only what the run reads is hashed; the clock
//! and the environment are not.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::source::manifest::{MANIFEST_FILE, sha256_file};

/// What one run id is computed from; kept in the run's `status.json`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunInputs {
    pub phm_version: String,
    /// (practice folder, delivery folder, manifest SHA-256), sorted.
    pub deliveries: Vec<(String, String, String)>,
    /// (path under its folder, SHA-256) of cohort and value set files, sorted.
    pub definitions: Vec<(String, String)>,
    pub release_id: String,
    pub index_date: NaiveDate,
    pub cohorts: Vec<String>,
    pub disclosure: (u64, u64),
    pub key_id: String,
    pub purpose: String,
    pub expected_practices: Vec<String>,
    /// Practices withdrawn from the store (`phm store remove-practice`):
    /// a withdrawal changes what a run publishes.
    pub withdrawn: Vec<String>,
}

impl RunInputs {
    /// The run id: the first 16 hex digits of the SHA-256 of the inputs.
    pub fn run_id(&self) -> String {
        let json = serde_json::to_vec(self).expect("run inputs serialise");
        hex::encode(&Sha256::digest(&json)[..8])
    }
}

/// Every delivery in `landing`: (practice folder, delivery folder, SHA-256
/// of the manifest). A delivery folder without a manifest is listed with an
/// empty hash: ingest will refuse it and say why.
pub fn deliveries(landing: &Path) -> std::io::Result<Vec<(String, String, String)>> {
    let mut out = Vec::new();
    for practice in sorted_dirs(landing)? {
        for delivery in sorted_dirs(&practice)? {
            let manifest = delivery.join(MANIFEST_FILE);
            let hash = if manifest.is_file() {
                sha256_file(&manifest)?
            } else {
                String::new()
            };
            out.push((name(&practice), name(&delivery), hash));
        }
    }
    Ok(out)
}

/// Every file under `roots` (recursively): (root's name / path under it, SHA-256).
pub fn definition_files(roots: &[&Path]) -> std::io::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for root in roots {
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let path = entry?.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.is_file() {
                    let rel = path.strip_prefix(root).unwrap_or(&path);
                    out.push((
                        format!("{}/{}", name(root), rel.to_string_lossy()),
                        sha256_file(&path)?,
                    ));
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

fn sorted_dirs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir() && !name(p).starts_with('.'))
        .collect();
    dirs.sort();
    Ok(dirs)
}

fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> RunInputs {
        RunInputs {
            phm_version: "0.1.0".into(),
            deliveries: vec![("A81001".into(), "d1".into(), "ab".into())],
            definitions: vec![("cohorts/X/1.toml".into(), "cd".into())],
            release_id: "r1".into(),
            index_date: NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
            cohorts: vec!["X@1".into()],
            disclosure: (7, 5),
            key_id: "k".into(),
            purpose: "p".into(),
            expected_practices: vec!["A81001".into()],
            withdrawn: vec![],
        }
    }

    #[test]
    fn every_input_changes_the_run_id() {
        let base = inputs();
        let id = base.run_id();
        assert_eq!(id.len(), 16);
        assert_eq!(id, inputs().run_id(), "the same inputs, the same id");
        type Change = Box<dyn Fn(&mut RunInputs)>;
        let changes: Vec<Change> = vec![
            Box::new(|i| i.phm_version = "0.2.0".into()),
            Box::new(|i| i.deliveries[0].2 = "ac".into()),
            Box::new(|i| {
                i.deliveries
                    .push(("A81002".into(), "d1".into(), "ab".into()))
            }),
            Box::new(|i| i.definitions[0].1 = "ce".into()),
            Box::new(|i| i.release_id = "r2".into()),
            Box::new(|i| i.index_date = NaiveDate::from_ymd_opt(2026, 4, 30).unwrap()),
            Box::new(|i| i.cohorts.push("Y@1".into())),
            Box::new(|i| i.disclosure = (10, 5)),
            Box::new(|i| i.key_id = "k2".into()),
            Box::new(|i| i.purpose = "q".into()),
            Box::new(|i| i.expected_practices.clear()),
            Box::new(|i| i.withdrawn.push("A81002".into())),
        ];
        for (n, change) in changes.iter().enumerate() {
            let mut i = inputs();
            change(&mut i);
            assert_ne!(i.run_id(), id, "change {n}");
        }
    }
}
