//! RF2 snapshot files: finding them by name, checking their headers, reading
//! their rows and merging several editions into one snapshot.
//!
//! Invariants: a file is read only if its name says it is a Snapshot file of a
//! known type; its header must equal the RF2 header for that type exactly; every
//! SCTID column passes the Verhoeff check; for a component present in several
//! files the row with the latest effectiveTime wins (ties: the later file, in
//! the order the folders were given). Lines end in LF or CRLF; empty trailing
//! columns after the last RF2 column are ignored.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::{Error, Result, ids, io, sctid};

/// The RF2 file types the importer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Concept,
    Description,
    Relationship,
    SimpleRefset,
    Association,
    Language,
}

impl Kind {
    pub fn header(self) -> &'static str {
        match self {
            Kind::Concept => "id\teffectiveTime\tactive\tmoduleId\tdefinitionStatusId",
            Kind::Description => {
                "id\teffectiveTime\tactive\tmoduleId\tconceptId\tlanguageCode\ttypeId\tterm\tcaseSignificanceId"
            }
            Kind::Relationship => {
                "id\teffectiveTime\tactive\tmoduleId\tsourceId\tdestinationId\trelationshipGroup\ttypeId\tcharacteristicTypeId\tmodifierId"
            }
            Kind::SimpleRefset => {
                "id\teffectiveTime\tactive\tmoduleId\trefsetId\treferencedComponentId"
            }
            Kind::Association => {
                "id\teffectiveTime\tactive\tmoduleId\trefsetId\treferencedComponentId\ttargetComponentId"
            }
            Kind::Language => {
                "id\teffectiveTime\tactive\tmoduleId\trefsetId\treferencedComponentId\tacceptabilityId"
            }
        }
    }

    /// The file types every edition's snapshot must hold. Simple refsets are
    /// optional: an edition may publish none.
    pub const REQUIRED: [Kind; 5] = [
        Kind::Concept,
        Kind::Description,
        Kind::Relationship,
        Kind::Language,
        Kind::Association,
    ];

    /// The name pattern of this type's Snapshot files, for messages.
    pub fn pattern(self) -> &'static str {
        match self {
            Kind::Concept => "sct2_Concept_*Snapshot*.txt",
            Kind::Description => "sct2_Description_*Snapshot*.txt",
            Kind::Relationship => "sct2_Relationship_*Snapshot*.txt",
            Kind::SimpleRefset => "der2_Refset_Simple*Snapshot*.txt",
            Kind::Association => "der2_cRefset_Association*Snapshot*.txt",
            Kind::Language => "der2_cRefset_Language*Snapshot*.txt",
        }
    }

    /// The type of an RF2 Snapshot file from its name, or None for any other file.
    pub fn classify(name: &str) -> Option<Kind> {
        if !name.ends_with(".txt") || !name.contains("Snapshot") {
            return None;
        }
        let starts = |p: &str| name.starts_with(p);
        if starts("sct2_Concept_") {
            Some(Kind::Concept)
        } else if starts("sct2_Description_") {
            Some(Kind::Description)
        } else if starts("sct2_Relationship_") {
            Some(Kind::Relationship)
        } else if starts("der2_Refset_Simple") {
            Some(Kind::SimpleRefset)
        } else if starts("der2_cRefset_Association") {
            Some(Kind::Association)
        } else if starts("der2_cRefset_Language") {
            Some(Kind::Language)
        } else {
            None
        }
    }
}

/// One RF2 file found under an input folder.
#[derive(Debug, Clone)]
pub struct Rf2File {
    pub kind: Kind,
    pub path: PathBuf,
    /// Country/namespace element of the name, e.g. `INT` or `GB1000000`.
    pub namespace: String,
    /// Release date element of the name, e.g. `20260506`.
    pub date: String,
}

/// All RF2 Snapshot files under `dirs` (recursively), in folder order, then by path.
///
/// An edition is the (namespace, date) pair of the file names. Every edition
/// found in a folder must have a file of each [`Kind::REQUIRED`] type: a
/// release with a file missing is refused, naming the edition and the file,
/// rather than imported with its concepts' terms or history silently absent.
pub fn discover(dirs: &[PathBuf]) -> Result<Vec<Rf2File>> {
    let mut out = Vec::new();
    for dir in dirs {
        if !dir.is_dir() {
            return Err(Error::Input {
                path: dir.clone(),
                message: "not a folder; hint: --rf2 takes the folder of an unzipped RF2 release"
                    .into(),
            });
        }
        let mut found = Vec::new();
        walk(dir, &mut found)?;
        found.sort();
        let first = out.len();
        for path in found {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if let Some(kind) = Kind::classify(&name) {
                let stem = name.trim_end_matches(".txt");
                let parts: Vec<&str> = stem.split('_').collect();
                let (namespace, date) = match parts.as_slice() {
                    [.., ns, date] => (ns.to_string(), date.to_string()),
                    _ => (String::new(), String::new()),
                };
                out.push(Rf2File {
                    kind,
                    path,
                    namespace,
                    date,
                });
            }
        }
        complete(dir, &out[first..])?;
    }
    Ok(out)
}

/// Every edition among `files` (found under `dir`) has each required file type.
fn complete(dir: &Path, files: &[Rf2File]) -> Result<()> {
    let mut editions: std::collections::BTreeMap<(&str, &str), Vec<Kind>> = Default::default();
    for f in files {
        editions
            .entry((f.namespace.as_str(), f.date.as_str()))
            .or_default()
            .push(f.kind);
    }
    for ((namespace, date), kinds) in editions {
        if let Some(missing) = Kind::REQUIRED.into_iter().find(|k| !kinds.contains(k)) {
            let mut found: Vec<String> = kinds.iter().map(|k| format!("{k:?}")).collect();
            found.sort();
            found.dedup();
            return Err(Error::MissingFile {
                folder: dir.to_path_buf(),
                edition: format!("{namespace} {date}"),
                pattern: missing.pattern(),
                found: found.join(", "),
            });
        }
    }
    Ok(())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Reads a tab-separated file whose first line must equal `header`, calling
/// `row(line_number, fields)` for every data row.
///
/// The file is read to its end and must be whole: every row has the header's
/// number of fields and every line, the last included, ends in LF or CRLF (as
/// RF2 requires). A file cut off mid-row is an error naming the line and the
/// byte offset where the row starts, never a shorter file.
pub fn read_tsv(
    path: &Path,
    header: &str,
    mut row: impl FnMut(u64, &[&str]) -> Result<()>,
) -> Result<u64> {
    let file = File::open(path).map_err(io(path))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let columns = header.split('\t').count();
    let mut line = String::new();
    let mut number = 0u64;
    let mut rows = 0u64;
    // Byte offset of the start of the next line.
    let mut next = 0u64;
    loop {
        line.clear();
        let offset = next;
        let n = reader.read_line(&mut line).map_err(|e| Error::Row {
            path: path.to_path_buf(),
            line: number + 1,
            message: format!(
                "byte {}: {e}; hint: RF2 files are UTF-8; a file cut off inside a character is truncated",
                offset
            ),
        })?;
        if n == 0 {
            break;
        }
        next = offset + n as u64;
        number += 1;
        if !line.ends_with('\n') {
            return Err(Error::Row {
                path: path.to_path_buf(),
                line: number,
                message: format!(
                    "byte {offset}: the last line has no line end, so the file may be cut off mid-row; hint: take the file again from the release (a whole RF2 file ends every line with CRLF)"
                ),
            });
        }
        let text = line.trim_end_matches(['\n', '\r']);
        if number == 1 {
            let found = text.trim_start_matches('\u{feff}');
            if found != header {
                return Err(Error::Header {
                    path: path.to_path_buf(),
                    expected: header.to_string(),
                    found: found.to_string(),
                });
            }
            continue;
        }
        if text.is_empty() {
            continue;
        }
        let mut fields: Vec<&str> = text.split('\t').collect();
        while fields.len() > columns && fields.last() == Some(&"") {
            fields.pop();
        }
        if fields.len() != columns {
            return Err(Error::Row {
                path: path.to_path_buf(),
                line: number,
                message: format!(
                    "byte {offset}: {} fields, expected {columns}; hint: a tab inside a term, or the file is cut off: take it again from the release",
                    fields.len()
                ),
            });
        }
        row(number, &fields)?;
        rows += 1;
    }
    if number == 0 {
        return Err(Error::Row {
            path: path.to_path_buf(),
            line: 1,
            message:
                "the file is empty, without even its header; hint: take it again from the release"
                    .into(),
        });
    }
    Ok(rows)
}

/// Field parsers that name the file, line and column on failure.
pub struct Fields<'a> {
    pub path: &'a Path,
    pub line: u64,
}

impl Fields<'_> {
    pub fn sctid(&self, column: &'static str, value: &str) -> Result<u64> {
        sctid::parse(value).map_err(|reason| Error::Sctid {
            path: self.path.to_path_buf(),
            line: self.line,
            column,
            id: value.to_string(),
            reason,
        })
    }

    pub fn date(&self, value: &str) -> Result<u32> {
        match value.parse::<u32>() {
            Ok(d) if value.len() == 8 && (10_000_101..=99_991_231).contains(&d) => Ok(d),
            _ => Err(self.error(format!(
                "effectiveTime {value:?} is not YYYYMMDD; hint: RF2 dates have no separators"
            ))),
        }
    }

    pub fn active(&self, value: &str) -> Result<bool> {
        match value {
            "1" => Ok(true),
            "0" => Ok(false),
            _ => Err(self.error(format!("active {value:?} is not 0 or 1"))),
        }
    }

    pub fn error(&self, message: String) -> Error {
        Error::Row {
            path: self.path.to_path_buf(),
            line: self.line,
            message,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Concept {
    pub effective: u32,
    pub active: bool,
    pub module: u64,
}

#[derive(Debug, Clone)]
pub struct Description {
    pub effective: u32,
    pub active: bool,
    pub concept: u64,
    pub language: String,
    pub type_id: u64,
    pub term: String,
}

#[derive(Debug, Clone)]
pub struct IsA {
    pub effective: u32,
    pub active: bool,
    pub child: u64,
    pub parent: u64,
}

/// A refset member: simple (target None), association (target Some) or language
/// (target = acceptability id).
#[derive(Debug, Clone)]
pub struct Member {
    pub effective: u32,
    pub active: bool,
    pub refset: u64,
    pub component: u64,
    pub target: Option<u64>,
}

/// Several RF2 snapshots merged: latest effectiveTime per component id.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub concepts: HashMap<u64, Concept>,
    pub descriptions: HashMap<u64, Description>,
    pub isa: HashMap<u64, IsA>,
    pub simple: HashMap<String, Member>,
    pub associations: HashMap<String, Member>,
    /// GB English language refset members only.
    pub language: HashMap<String, Member>,
    /// Rows read per input file.
    pub rows: Vec<(PathBuf, u64)>,
}

trait Effective {
    fn effective(&self) -> u32;
}
macro_rules! effective {
    ($($t:ty),*) => {$(impl Effective for $t { fn effective(&self) -> u32 { self.effective } })*};
}
effective!(Concept, Description, IsA, Member);

fn upsert<K: std::hash::Hash + Eq, V: Effective>(map: &mut HashMap<K, V>, key: K, value: V) {
    match map.get(&key) {
        Some(old) if old.effective() > value.effective() => {}
        _ => {
            map.insert(key, value);
        }
    }
}

impl Snapshot {
    /// Reads and merges `files` in order.
    pub fn load(files: &[Rf2File]) -> Result<Snapshot> {
        let mut snap = Snapshot::default();
        for file in files {
            let rows = snap.read(file)?;
            tracing::info!(file = %file.path.display(), rows, "read RF2 file");
            snap.rows.push((file.path.clone(), rows));
        }
        Ok(snap)
    }

    fn read(&mut self, file: &Rf2File) -> Result<u64> {
        let path = file.path.as_path();
        read_tsv(path, file.kind.header(), |line, f| {
            let at = Fields { path, line };
            let effective = at.date(f[1])?;
            let active = at.active(f[2])?;
            let module = at.sctid("moduleId", f[3])?;
            match file.kind {
                Kind::Concept => {
                    let id = at.sctid("id", f[0])?;
                    at.sctid("definitionStatusId", f[4])?;
                    let c = Concept {
                        effective,
                        active,
                        module,
                    };
                    upsert(&mut self.concepts, id, c);
                }
                Kind::Description => {
                    let id = at.sctid("id", f[0])?;
                    let concept = at.sctid("conceptId", f[4])?;
                    let type_id = at.sctid("typeId", f[6])?;
                    at.sctid("caseSignificanceId", f[8])?;
                    let d = Description {
                        effective,
                        active,
                        concept,
                        language: f[5].to_string(),
                        type_id,
                        term: f[7].to_string(),
                    };
                    upsert(&mut self.descriptions, id, d);
                }
                Kind::Relationship => {
                    let id = at.sctid("id", f[0])?;
                    let child = at.sctid("sourceId", f[4])?;
                    let parent = at.sctid("destinationId", f[5])?;
                    let type_id = at.sctid("typeId", f[7])?;
                    at.sctid("characteristicTypeId", f[8])?;
                    at.sctid("modifierId", f[9])?;
                    if type_id == ids::IS_A {
                        let r = IsA {
                            effective,
                            active,
                            child,
                            parent,
                        };
                        upsert(&mut self.isa, id, r);
                    }
                }
                Kind::SimpleRefset | Kind::Association | Kind::Language => {
                    let refset = at.sctid("refsetId", f[4])?;
                    let component = at.sctid("referencedComponentId", f[5])?;
                    let target = match file.kind {
                        Kind::Association => Some(at.sctid("targetComponentId", f[6])?),
                        Kind::Language => Some(at.sctid("acceptabilityId", f[6])?),
                        _ => None,
                    };
                    let m = Member {
                        effective,
                        active,
                        refset,
                        component,
                        target,
                    };
                    let key = f[0].to_string();
                    match file.kind {
                        Kind::SimpleRefset => upsert(&mut self.simple, key, m),
                        Kind::Association => upsert(&mut self.associations, key, m),
                        _ if refset == ids::GB_LANGUAGE => upsert(&mut self.language, key, m),
                        _ => {}
                    }
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_names() {
        let cases = [
            (
                "sct2_Concept_UKCLSnapshot_GB1000000_20260506.txt",
                Some(Kind::Concept),
            ),
            (
                "sct2_Concept_Snapshot_INT_20250701.txt",
                Some(Kind::Concept),
            ),
            ("sct2_Concept_Full_INT_20250701.txt", None),
            (
                "sct2_Description_Snapshot-en_INT_20250701.txt",
                Some(Kind::Description),
            ),
            ("sct2_TextDefinition_Snapshot-en_INT_20250701.txt", None),
            (
                "sct2_Relationship_Snapshot_INT_20250701.txt",
                Some(Kind::Relationship),
            ),
            ("sct2_StatedRelationship_Snapshot_INT_20250701.txt", None),
            (
                "sct2_RelationshipConcreteValues_Snapshot_INT_20250701.txt",
                None,
            ),
            (
                "der2_Refset_SimpleSnapshot_INT_20250701.txt",
                Some(Kind::SimpleRefset),
            ),
            (
                "der2_Refset_SimpleUKCLSnapshot_GB1000000_20260506.txt",
                Some(Kind::SimpleRefset),
            ),
            (
                "der2_cRefset_AssociationSnapshot_INT_20250701.txt",
                Some(Kind::Association),
            ),
            (
                "der2_cRefset_LanguageSnapshot-en_INT_20250701.txt",
                Some(Kind::Language),
            ),
            ("der2_cRefset_LanguageDelta-en_INT_20250701.txt", None),
            ("der2_Refset_SimpleSnapshot_INT_20250701.zip", None),
        ];
        for (name, want) in cases {
            assert_eq!(Kind::classify(name), want, "{name}");
        }
    }

    fn tsv(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sct2_Concept_Snapshot_INT_20250701.txt");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn reads_crlf_and_trailing_empty_columns() {
        let h = Kind::SimpleRefset.header();
        let text = format!("{h}\r\na\t20250701\t1\t900000000000207008\t446609009\t138875005\t\r\n");
        let (_d, path) = tsv(&text);
        let mut seen = Vec::new();
        let n = read_tsv(&path, h, |line, f| {
            seen.push((line, f[5].to_string()));
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 1);
        assert_eq!(seen, vec![(2, "138875005".to_string())]);
    }

    #[test]
    fn wrong_header_names_file_and_expected_header() {
        let (_d, path) = tsv("id\teffectiveTime\tactive\n");
        let err = read_tsv(&path, Kind::Concept.header(), |_, _| Ok(())).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("sct2_Concept_Snapshot_INT_20250701.txt"),
            "{msg}"
        );
        assert!(msg.contains("definitionStatusId"), "{msg}");
    }

    #[test]
    fn bad_check_digit_names_line_and_id() {
        let h = Kind::Concept.header();
        let text = format!(
            "{h}\n138875005\t20020131\t1\t900000000000207008\t900000000000074008\n404684004\t20020131\t1\t900000000000207008\t900000000000074008\n"
        );
        let (_d, path) = tsv(&text);
        let file = Rf2File {
            kind: Kind::Concept,
            path,
            namespace: "INT".into(),
            date: "20250701".into(),
        };
        let msg = Snapshot::load(&[file]).unwrap_err().to_string();
        assert!(msg.contains(":3: id \"404684004\""), "{msg}");
        assert!(msg.contains("Verhoeff"), "{msg}");
    }
}
