//! A compiled release: its manifest (`release.json`) and an in-memory index over
//! its tables for expanding value sets.
//!
//! The index holds concepts, IS-A, the closure, refset members, historical
//! associations and dm+d links of one release; it is reference data (not patient
//! data), a few hundred MB for a full UK edition. Lookups never invent a
//! concept: an id that is not in the release is reported as unknown.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{Array, BooleanArray, Int64Array, RecordBatch, StringArray};
use serde::{Deserialize, Serialize};

use super::{Error, Result, io};
use crate::store::read_parquet;

pub const MANIFEST: &str = "release.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The release folder's name.
    pub release_id: String,
    pub format: u32,
    /// (namespace, release date) of the RF2 files imported.
    pub editions: Vec<Edition>,
    /// The latest concept effectiveTime (YYYYMMDD).
    pub latest_effective_time: u32,
    pub inputs: Vec<InputFile>,
    /// Rows per compiled table.
    pub rows: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edition {
    pub namespace: String,
    pub date: String,
    pub files: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputFile {
    pub path: String,
    pub kind: String,
    pub sha256: String,
    pub rows: u64,
}

#[derive(Debug, Clone)]
pub struct ConceptInfo {
    pub active: bool,
    pub term: Option<String>,
}

/// A historical association from an inactive concept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Association {
    pub target: u64,
    pub association: String,
}

/// An opened compiled release.
#[derive(Debug)]
pub struct Release {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub concepts: HashMap<u64, ConceptInfo>,
    pub children: HashMap<u64, Vec<u64>>,
    pub parents: HashMap<u64, Vec<u64>>,
    /// ancestor → descendants (self excluded), sorted.
    pub descendants: HashMap<u64, Vec<u64>>,
    /// descendant → ancestors (self excluded), sorted.
    pub ancestors: HashMap<u64, Vec<u64>>,
    pub refsets: HashMap<u64, Vec<u64>>,
    /// inactive concept → its associations.
    pub history: HashMap<u64, Vec<Association>>,
    /// VTM → VMPs; VMP → AMPs; VMP → its previous VPID.
    pub vmps_of_vtm: HashMap<u64, Vec<u64>>,
    pub amps_of_vmp: HashMap<u64, Vec<u64>>,
    pub vpid_prev: HashMap<u64, u64>,
    /// dm+d names for ids with no concept row.
    pub dmd_names: HashMap<u64, String>,
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, path: &Path, name: &str) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| Error::Release {
            path: path.to_path_buf(),
            message: format!("no column {name:?} of the expected type; hint: the release was compiled by another phm version: import it again"),
        })
}

fn pairs(dir: &Path, table: &str, a: &str, b: &str) -> Result<Vec<(u64, u64)>> {
    let path = dir.join(format!("{table}.parquet"));
    let batch = read_parquet(&path)?;
    let (x, y) = (
        column::<Int64Array>(&batch, &path, a)?,
        column::<Int64Array>(&batch, &path, b)?,
    );
    Ok(x.values()
        .iter()
        .zip(y.values())
        .map(|(&x, &y)| (x as u64, y as u64))
        .collect())
}

fn group(pairs: impl IntoIterator<Item = (u64, u64)>) -> HashMap<u64, Vec<u64>> {
    let mut out: HashMap<u64, Vec<u64>> = HashMap::new();
    for (k, v) in pairs {
        out.entry(k).or_default().push(v);
    }
    for v in out.values_mut() {
        v.sort_unstable();
        v.dedup();
    }
    out
}

impl Release {
    pub fn open(dir: &Path) -> Result<Release> {
        let manifest_path = dir.join(MANIFEST);
        let bytes = std::fs::read(&manifest_path).map_err(|e| Error::Release {
            path: manifest_path.clone(),
            message: format!(
                "{e}; hint: --release takes a folder written by `phm terminology import`"
            ),
        })?;
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| Error::Release {
            path: manifest_path.clone(),
            message: e.to_string(),
        })?;

        let path = dir.join("concepts.parquet");
        let batch = read_parquet(&path)?;
        let ids = column::<Int64Array>(&batch, &path, "id")?;
        let active = column::<BooleanArray>(&batch, &path, "active")?;
        let terms = column::<StringArray>(&batch, &path, "preferred_term")?;
        let mut concepts = HashMap::with_capacity(ids.len());
        for i in 0..ids.len() {
            let term = (!terms.is_null(i)).then(|| terms.value(i).to_string());
            concepts.insert(
                ids.value(i) as u64,
                ConceptInfo {
                    active: active.value(i),
                    term,
                },
            );
        }
        let isa = pairs(dir, "isa", "child", "parent")?;
        let closure = pairs(dir, "closure", "descendant", "ancestor")?;

        let path = dir.join("history.parquet");
        let batch = read_parquet(&path)?;
        let (src, tgt) = (
            column::<Int64Array>(&batch, &path, "source")?,
            column::<Int64Array>(&batch, &path, "target")?,
        );
        let names = column::<StringArray>(&batch, &path, "association")?;
        let mut history: HashMap<u64, Vec<Association>> = HashMap::new();
        for i in 0..src.len() {
            history
                .entry(src.value(i) as u64)
                .or_default()
                .push(Association {
                    target: tgt.value(i) as u64,
                    association: names.value(i).to_string(),
                });
        }

        let mut dmd_names = HashMap::new();
        let mut vmps_of_vtm = Vec::new();
        let mut vpid_prev = HashMap::new();
        let path = dir.join("dmd_vtm.parquet");
        let batch = read_parquet(&path)?;
        let (id, nm) = (
            column::<Int64Array>(&batch, &path, "vtmid")?,
            column::<StringArray>(&batch, &path, "name")?,
        );
        for i in 0..id.len() {
            dmd_names.insert(id.value(i) as u64, nm.value(i).to_string());
        }
        let path = dir.join("dmd_vmp.parquet");
        let batch = read_parquet(&path)?;
        let (id, vtm, nm, prev) = (
            column::<Int64Array>(&batch, &path, "vpid")?,
            column::<Int64Array>(&batch, &path, "vtmid")?,
            column::<StringArray>(&batch, &path, "name")?,
            column::<Int64Array>(&batch, &path, "vpid_prev")?,
        );
        for i in 0..id.len() {
            let vpid = id.value(i) as u64;
            dmd_names.insert(vpid, nm.value(i).to_string());
            if !vtm.is_null(i) {
                vmps_of_vtm.push((vtm.value(i) as u64, vpid));
            }
            if !prev.is_null(i) {
                vpid_prev.insert(vpid, prev.value(i) as u64);
            }
        }
        let path = dir.join("dmd_amp.parquet");
        let batch = read_parquet(&path)?;
        let (id, vmp, nm) = (
            column::<Int64Array>(&batch, &path, "apid")?,
            column::<Int64Array>(&batch, &path, "vpid")?,
            column::<StringArray>(&batch, &path, "name")?,
        );
        let mut amps_of_vmp = Vec::new();
        for i in 0..id.len() {
            dmd_names.insert(id.value(i) as u64, nm.value(i).to_string());
            amps_of_vmp.push((vmp.value(i) as u64, id.value(i) as u64));
        }

        Ok(Release {
            dir: dir.to_path_buf(),
            manifest,
            concepts,
            children: group(isa.iter().map(|&(c, p)| (p, c))),
            parents: group(isa.iter().copied()),
            descendants: group(closure.iter().map(|&(d, a)| (a, d))),
            ancestors: group(closure.iter().copied()),
            refsets: group(pairs(
                dir,
                "refset_members",
                "refset_id",
                "referenced_component_id",
            )?),
            history,
            vmps_of_vtm: group(vmps_of_vtm),
            amps_of_vmp: group(amps_of_vmp),
            vpid_prev,
            dmd_names,
        })
    }

    pub fn id(&self) -> &str {
        &self.manifest.release_id
    }

    /// The preferred term of a concept, or the dm+d name of a product.
    pub fn term(&self, id: u64) -> Option<&str> {
        self.concepts
            .get(&id)
            .and_then(|c| c.term.as_deref())
            .or_else(|| self.dmd_names.get(&id).map(String::as_str))
    }

    pub fn contains(&self, id: u64) -> bool {
        self.concepts.contains_key(&id) || self.dmd_names.contains_key(&id)
    }

    pub fn is_active(&self, id: u64) -> Option<bool> {
        self.concepts.get(&id).map(|c| c.active)
    }
}

/// The manifest alone (cheap), e.g. to list releases.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Release {
        path,
        message: e.to_string(),
    })
}
