//! The run manifest, `OUT/manifest.json`: what a run read, how, and what it
//! wrote, so any output can be traced to its inputs (DESIGN.md, "Outputs").
//!
//! It records the definitions with their file hashes, the value-set
//! expansion hashes and the terminology release, every delivery in the
//! store, rows loaded and quarantined per practice, the disclosure policy
//! (or that it was off), the pseudonym key's id (never the key), timings,
//! and every output file with its SHA-256. The run id is a hash of the
//! inputs alone: the same inputs and definitions give the same run id.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::disclosure::Policy;
use crate::source::manifest::sha256_file;
use crate::store::state::{IngestedDelivery, PracticeState};

pub const MANIFEST_FILE: &str = "manifest.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    pub cohort: String,
    pub index_date: NaiveDate,
    pub path: PathBuf,
    pub sha256: String,
    /// Value set id → (version, expansion hash), from the cohort's `run.json`.
    pub valuesets: serde_json::Value,
    /// Practices the cohort could not be evaluated at.
    pub unavailable: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Practice {
    pub practice: String,
    pub deliveries: Vec<IngestedDelivery>,
    /// Canonical table → rows the store holds (tables with none left out).
    pub loaded: BTreeMap<String, u64>,
    /// Rows of the practice in the store's quarantine table.
    pub quarantined: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputFile {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    pub run_id: String,
    pub phm_version: String,
    pub release: String,
    pub definitions: Vec<Definition>,
    pub practices: Vec<Practice>,
    /// `None`: disclosure control was off (the run said so loudly).
    pub disclosure: Option<Policy>,
    pub key_id: String,
    pub purpose: Option<String>,
    /// Seconds: evaluating the cohorts, writing the two tiers.
    pub timings: BTreeMap<String, f64>,
    pub outputs: Vec<OutputFile>,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct Error {
    pub path: PathBuf,
    pub message: String,
}

fn err(path: &Path) -> impl Fn(String) -> Error + '_ {
    move |message| Error {
        path: path.to_path_buf(),
        message,
    }
}

/// The practices of the store with their deliveries and what the store
/// holds for them: rows in each canonical table and quarantined rows, read
/// from the files' footers, so the same store always gives the same counts
/// (whatever the last ingest applied).
pub fn practices(store_root: &Path) -> Result<Vec<Practice>, Error> {
    let dir = store_root.join("practices");
    let mut out = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| err(&dir)(e.to_string()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let rows = |path: PathBuf| -> Result<Option<u64>, Error> {
        if !path.is_file() {
            return Ok(None);
        }
        crate::source::merge_files::file_rows(&path)
            .map(Some)
            .map_err(|e| err(&path)(e.to_string()))
    };
    for ods in names {
        let Some(state) =
            PracticeState::read(&dir.join(&ods)).map_err(|e| err(&dir)(e.to_string()))?
        else {
            continue;
        };
        let partition = format!("practice={ods}");
        let mut loaded = BTreeMap::new();
        for table in crate::canonical::CanonicalTable::ALL {
            let file = store_root
                .join("canonical")
                .join(table.name())
                .join(&partition)
                .join("data.parquet");
            if let Some(n) = rows(file)?.filter(|n| *n > 0) {
                loaded.insert(table.name().to_string(), n);
            }
        }
        let quarantined = rows(
            store_root
                .join("quarantine")
                .join(&partition)
                .join("data.parquet"),
        )?
        .unwrap_or(0);
        out.push(Practice {
            practice: ods,
            deliveries: state.deliveries,
            loaded,
            quarantined,
        });
    }
    Ok(out)
}

/// Every file under `root` (relative paths, sorted) with its size and hash.
pub fn outputs(root: &Path, skip: &[&str]) -> Result<Vec<OutputFile>, Error> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| err(&dir)(e.to_string()))? {
            let path = entry.map_err(|e| err(&dir)(e.to_string()))?.path();
            let rel = path.strip_prefix(root).expect("under root").to_path_buf();
            let name = rel.to_string_lossy();
            if skip
                .iter()
                .any(|s| name == *s || name.starts_with(&format!("{s}/")))
            {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = path
                    .metadata()
                    .map_err(|e| err(&path)(e.to_string()))?
                    .len();
                let sha256 = sha256_file(&path).map_err(|e| err(&path)(e.to_string()))?;
                out.push(OutputFile {
                    path: rel,
                    bytes,
                    sha256,
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// The run id: a hash of what the run read and how (definitions, value-set
/// expansions, release, deliveries, disclosure policy, key id).
pub fn run_id(m: &RunManifest) -> String {
    let inputs = serde_json::json!({
        "release": m.release,
        "definitions": m.definitions,
        "deliveries": m.practices.iter().map(|p| (&p.practice, &p.deliveries)).collect::<Vec<_>>(),
        "disclosure": m.disclosure,
        "key_id": m.key_id,
        "phm_version": m.phm_version,
    });
    let digest = Sha256::digest(inputs.to_string().as_bytes());
    hex::encode(digest)[..16].to_string()
}

/// The SHA-256 of a definition file.
pub fn file_hash(path: &Path) -> Result<String, Error> {
    sha256_file(path).map_err(|e| err(path)(e.to_string()))
}
