//! `phm terminology import`: RF2 snapshots (+ dm+d, + CTV3 map) → a compiled
//! release folder.
//!
//! The release is written beside its target as `.<name>.partial` and renamed
//! into place when complete, so a release folder is either whole or absent. A
//! release is immutable: importing into an existing folder is an error. Every
//! input file's SHA-256 and row count is recorded in `release.json`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};

use super::release::{Edition, InputFile, MANIFEST, Manifest};
use super::rf2::{Snapshot, discover};
use super::{Error, Result, association_name, closure, ctv3, dmd, ids, io, sha256_file};
use crate::store::write_parquet;

/// What to import.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub rf2: Vec<PathBuf>,
    pub dmd: Option<PathBuf>,
    pub ctv3_map: Option<PathBuf>,
}

/// Imports `inputs` into the release folder `out`; the folder name is the release id.
pub fn import(inputs: &Inputs, out: &Path) -> Result<Manifest> {
    let release_id = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty() && !n.starts_with('.'))
        .ok_or_else(|| Error::Input {
            path: out.to_path_buf(),
            message: "a release folder needs a name; hint: e.g. --out terminology/uk-20260506"
                .into(),
        })?;
    if out.exists() {
        return Err(Error::Input {
            path: out.to_path_buf(),
            message: "already exists; hint: a release is immutable: import into a new folder name"
                .into(),
        });
    }
    // Every path given is checked before anything is read: a wrong one is a
    // usage error, not a half-done import.
    for dir in &inputs.rf2 {
        if !dir.is_dir() {
            return Err(Error::Input {
                path: dir.clone(),
                message:
                    "--rf2: no such folder; hint: --rf2 takes the folder of an unzipped RF2 release"
                        .into(),
            });
        }
    }
    let dmd_files = match &inputs.dmd {
        Some(dir) if !dir.is_dir() => {
            return Err(Error::Input {
                path: dir.clone(),
                message: "--dmd: no such folder; hint: --dmd takes the folder of the unzipped dm+d XML release (f_vtm2_*.xml, f_vmp2_*.xml, f_amp2_*.xml); leave it out to import without dm+d".into(),
            });
        }
        Some(dir) => Some(dmd::locate(dir)?),
        None => None,
    };
    if let Some(map) = inputs.ctv3_map.as_ref().filter(|m| !m.is_file()) {
        return Err(Error::Input {
            path: map.clone(),
            message: "--ctv3-map: no such file; hint: --ctv3-map takes the CTV3 to SNOMED CT map file itself (e.g. SRCtv3ToSnomed.txt), not its folder; leave it out to import without the map".into(),
        });
    }
    let files = discover(&inputs.rf2)?;
    if !files.iter().any(|f| f.kind == super::rf2::Kind::Concept) {
        return Err(Error::Input {
            path: inputs.rf2.first().cloned().unwrap_or_default(),
            message: "no sct2_Concept_*Snapshot*.txt file found; hint: point --rf2 at an unzipped RF2 release (its Snapshot folder is searched recursively)".into(),
        });
    }
    let snap = Snapshot::load(&files)?;
    let mut manifest = Manifest {
        release_id,
        format: 1,
        editions: Vec::new(),
        latest_effective_time: snap
            .concepts
            .values()
            .map(|c| c.effective)
            .max()
            .unwrap_or(0),
        inputs: Vec::new(),
        rows: BTreeMap::new(),
    };
    let mut editions: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (file, (_, rows)) in files.iter().zip(&snap.rows) {
        *editions
            .entry((file.namespace.clone(), file.date.clone()))
            .or_default() += 1;
        manifest.inputs.push(InputFile {
            path: file.path.display().to_string(),
            kind: format!("{:?}", file.kind),
            sha256: sha256_file(&file.path)?,
            rows: *rows,
        });
    }
    manifest.editions = editions
        .into_iter()
        .map(|((namespace, date), files)| Edition {
            namespace,
            date,
            files,
        })
        .collect();

    let parent = out.parent().filter(|p| !p.as_os_str().is_empty());
    let parent = parent.unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let staging = parent.join(format!(".{}.partial", manifest.release_id));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    std::fs::create_dir_all(&staging).map_err(io(&staging))?;
    let mut write = |name: &str, batch: RecordBatch, sort: &[&str]| -> Result<()> {
        let rows = write_parquet(&staging.join(format!("{name}.parquet")), &batch, sort)?;
        manifest.rows.insert(name.to_string(), rows);
        Ok(())
    };

    write("concepts", concepts(&snap), &["id"])?;
    write("descriptions", descriptions(&snap), &["concept_id", "id"])?;
    let isa = isa_edges(&snap, &files_hint(&inputs.rf2))?;
    let closed = closure::closure(&isa)?;
    write("isa", pairs("child", "parent", &isa), &["child", "parent"])?;
    write("closure", pairs("descendant", "ancestor", &closed), &[])?;
    write("history", history(&snap), &["source", "target"])?;
    write(
        "refset_members",
        refset_members(&snap),
        &["refset_id", "referenced_component_id"],
    )?;
    drop(snap);

    let dmd = match &dmd_files {
        Some(files) => dmd::read_files(files)?,
        None => dmd::Dmd::default(),
    };
    write("dmd_vtm", dmd_vtm(&dmd), &["vtmid"])?;
    write("dmd_vmp", dmd_vmp(&dmd), &["vpid"])?;
    write("dmd_amp", dmd_amp(&dmd), &["apid"])?;
    let mut extra: Vec<(PathBuf, &str, u64)> = dmd
        .files
        .iter()
        .zip([dmd.vtms.len(), dmd.vmps.len(), dmd.amps.len()])
        .map(|(p, n)| (p.clone(), "Dmd", n as u64))
        .collect();
    let map = match &inputs.ctv3_map {
        Some(path) => {
            let rows = ctv3::load(path)?;
            extra.push((path.clone(), "Ctv3Map", rows.len() as u64));
            rows
        }
        None => Vec::new(),
    };
    write("ctv3_map", ctv3_map(&map), &["ctv3_code", "ctv3_term_id"])?;
    for (path, kind, rows) in extra {
        manifest.inputs.push(InputFile {
            path: path.display().to_string(),
            kind: kind.to_string(),
            sha256: sha256_file(&path)?,
            rows,
        });
    }

    let json = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
    let manifest_path = staging.join(MANIFEST);
    std::fs::write(&manifest_path, json).map_err(io(&manifest_path))?;
    std::fs::rename(&staging, out).map_err(io(out))?;
    Ok(manifest)
}

fn files_hint(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn ids_array(values: impl IntoIterator<Item = u64>) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(
        values.into_iter().map(|v| v as i64),
    ))
}

fn opt_ids(values: impl IntoIterator<Item = Option<u64>>) -> ArrayRef {
    Arc::new(
        values
            .into_iter()
            .map(|v| v.map(|v| v as i64))
            .collect::<Int64Array>(),
    )
}

fn strings<S: AsRef<str>>(values: impl IntoIterator<Item = Option<S>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<StringArray>())
}

fn bools(values: impl IntoIterator<Item = bool>) -> ArrayRef {
    Arc::new(values.into_iter().map(Some).collect::<BooleanArray>())
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).expect("columns of equal length")
}

/// A candidate term: (GB preferred?, description id, text).
type Term<'a> = (bool, u64, &'a str);

/// Concepts with their FSN and GB English preferred term.
fn concepts(snap: &Snapshot) -> RecordBatch {
    let acceptability: HashMap<u64, u64> = snap
        .language
        .values()
        .filter(|m| m.active)
        .map(|m| {
            (
                m.component,
                m.target.expect("language members have acceptability"),
            )
        })
        .collect();
    // concept → (fsn, preferred synonym, any synonym), each (preferred?, desc id, term)
    let mut terms: HashMap<u64, [Option<Term>; 3]> = HashMap::new();
    for (&id, d) in snap.descriptions.iter().filter(|(_, d)| d.active) {
        let preferred = acceptability.get(&id) == Some(&ids::PREFERRED);
        let slot = match d.type_id {
            ids::FSN => 0,
            ids::SYNONYM if preferred => 1,
            ids::SYNONYM => 2,
            _ => continue,
        };
        let entry = &mut terms.entry(d.concept).or_default()[slot];
        let candidate = (preferred, id, d.term.as_str());
        // Prefer GB-preferred, then the smallest description id (deterministic).
        let better = match entry {
            None => true,
            Some((p, i, _)) => (!*p && preferred) || (*p == preferred && id < *i),
        };
        if better {
            *entry = Some(candidate);
        }
    }
    let mut rows: Vec<(&u64, &super::rf2::Concept)> = snap.concepts.iter().collect();
    rows.sort_by_key(|(id, _)| **id);
    let term = |id: &u64, slots: &[usize]| -> Option<String> {
        let t = terms.get(id)?;
        slots
            .iter()
            .find_map(|&s| t[s].map(|(_, _, term)| term.to_string()))
    };
    batch(vec![
        ("id", ids_array(rows.iter().map(|(id, _)| **id))),
        ("active", bools(rows.iter().map(|(_, c)| c.active))),
        (
            "effective_time",
            Arc::new(
                rows.iter()
                    .map(|(_, c)| Some(c.effective as i32))
                    .collect::<datafusion::arrow::array::Int32Array>(),
            ),
        ),
        ("module_id", ids_array(rows.iter().map(|(_, c)| c.module))),
        ("fsn", strings(rows.iter().map(|(id, _)| term(id, &[0])))),
        (
            "preferred_term",
            strings(rows.iter().map(|(id, _)| term(id, &[1, 2, 0]))),
        ),
    ])
}

fn descriptions(snap: &Snapshot) -> RecordBatch {
    let acceptability: HashMap<u64, u64> = snap
        .language
        .values()
        .filter(|m| m.active)
        .map(|m| {
            (
                m.component,
                m.target.expect("language members have acceptability"),
            )
        })
        .collect();
    let mut rows: Vec<(&u64, &super::rf2::Description)> =
        snap.descriptions.iter().filter(|(_, d)| d.active).collect();
    rows.sort_by_key(|(id, _)| **id);
    let kind = |t: u64| match t {
        ids::FSN => "fsn".to_string(),
        ids::SYNONYM => "synonym".to_string(),
        other => other.to_string(),
    };
    let gb = |id: &u64| match acceptability.get(id) {
        Some(&ids::PREFERRED) => Some("preferred"),
        Some(&ids::ACCEPTABLE) => Some("acceptable"),
        _ => None,
    };
    batch(vec![
        ("id", ids_array(rows.iter().map(|(id, _)| **id))),
        ("concept_id", ids_array(rows.iter().map(|(_, d)| d.concept))),
        (
            "type",
            strings(rows.iter().map(|(_, d)| Some(kind(d.type_id)))),
        ),
        (
            "term",
            strings(rows.iter().map(|(_, d)| Some(d.term.as_str()))),
        ),
        (
            "language_code",
            strings(rows.iter().map(|(_, d)| Some(d.language.as_str()))),
        ),
        (
            "gb_acceptability",
            strings(rows.iter().map(|(id, _)| gb(id))),
        ),
    ])
}

/// Active IS-A edges; both ends must be concepts of the snapshot.
fn isa_edges(snap: &Snapshot, inputs: &str) -> Result<Vec<(u64, u64)>> {
    let mut edges: Vec<(u64, u64)> = Vec::with_capacity(snap.isa.len());
    for (id, r) in snap.isa.iter().filter(|(_, r)| r.active) {
        for end in [r.child, r.parent] {
            if !snap.concepts.contains_key(&end) {
                return Err(Error::Input {
                    path: PathBuf::from(inputs),
                    message: format!(
                        "IS-A relationship {id} ({} IS-A {}) names concept {end}, which no concept file holds; hint: import the edition it depends on too (e.g. the International edition with the UK edition)",
                        r.child, r.parent
                    ),
                });
            }
        }
        edges.push((r.child, r.parent));
    }
    edges.sort_unstable();
    edges.dedup();
    Ok(edges)
}

fn pairs(a: &str, b: &str, rows: &[(u64, u64)]) -> RecordBatch {
    batch(vec![
        (a, ids_array(rows.iter().map(|r| r.0))),
        (b, ids_array(rows.iter().map(|r| r.1))),
    ])
}

fn history(snap: &Snapshot) -> RecordBatch {
    let mut rows: Vec<(u64, u64, u64)> = snap
        .associations
        .values()
        .filter(|m| m.active)
        .map(|m| {
            (
                m.component,
                m.target.expect("associations have targets"),
                m.refset,
            )
        })
        .collect();
    rows.sort_unstable();
    rows.dedup();
    batch(vec![
        ("source", ids_array(rows.iter().map(|r| r.0))),
        ("target", ids_array(rows.iter().map(|r| r.1))),
        (
            "association",
            strings(rows.iter().map(|r| Some(association_name(r.2)))),
        ),
        ("refset_id", ids_array(rows.iter().map(|r| r.2))),
    ])
}

fn refset_members(snap: &Snapshot) -> RecordBatch {
    let mut rows: Vec<(u64, u64)> = snap
        .simple
        .values()
        .filter(|m| m.active)
        .map(|m| (m.refset, m.component))
        .collect();
    rows.sort_unstable();
    rows.dedup();
    pairs("refset_id", "referenced_component_id", &rows)
}

fn dmd_vtm(d: &dmd::Dmd) -> RecordBatch {
    batch(vec![
        ("vtmid", ids_array(d.vtms.iter().map(|v| v.vtmid))),
        (
            "name",
            strings(d.vtms.iter().map(|v| Some(v.name.as_str()))),
        ),
        ("invalid", bools(d.vtms.iter().map(|v| v.invalid))),
    ])
}

fn dmd_vmp(d: &dmd::Dmd) -> RecordBatch {
    batch(vec![
        ("vpid", ids_array(d.vmps.iter().map(|v| v.vpid))),
        ("vtmid", opt_ids(d.vmps.iter().map(|v| v.vtmid))),
        (
            "name",
            strings(d.vmps.iter().map(|v| Some(v.name.as_str()))),
        ),
        ("invalid", bools(d.vmps.iter().map(|v| v.invalid))),
        ("vpid_prev", opt_ids(d.vmps.iter().map(|v| v.vpid_prev))),
        (
            "vpid_date",
            strings(d.vmps.iter().map(|v| v.vpid_date.as_deref())),
        ),
    ])
}

fn dmd_amp(d: &dmd::Dmd) -> RecordBatch {
    batch(vec![
        ("apid", ids_array(d.amps.iter().map(|a| a.apid))),
        ("vpid", ids_array(d.amps.iter().map(|a| a.vpid))),
        (
            "name",
            strings(d.amps.iter().map(|a| Some(a.name.as_str()))),
        ),
        ("invalid", bools(d.amps.iter().map(|a| a.invalid))),
    ])
}

fn ctv3_map(rows: &[ctv3::MapRow]) -> RecordBatch {
    batch(vec![
        (
            "ctv3_code",
            strings(rows.iter().map(|r| Some(r.ctv3_code.as_str()))),
        ),
        (
            "ctv3_term_id",
            strings(rows.iter().map(|r| Some(r.ctv3_term_id.as_str()))),
        ),
        (
            "snomed_concept_id",
            ids_array(rows.iter().map(|r| r.snomed_concept_id)),
        ),
        ("assured", bools(rows.iter().map(|r| r.assured))),
        (
            "effective_date",
            strings(rows.iter().map(|r| Some(r.effective_date.as_str()))),
        ),
    ])
}
