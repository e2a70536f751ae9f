//! Expanding a [`ValueSet`] against a compiled [`Release`], the expansion hash,
//! and the difference between two expansions.
//!
//! Order of work: the definition (ECL, listed codes, CSV rows, dm+d VTM/VMP →
//! VMPs and AMPs) and the referenced value sets give the members; `exclude`
//! removes codes; the history policy then adds inactive concepts whose
//! historical association (one step) points at a member. A row keeps the first
//! reason it was included. Rows are sorted by code.
//!
//! The hash is SHA-256 over a versioned text form: the value set id, version
//! and release id, then one line per row (`code\tterm\tactive\thow_included`).
//! It changes when any of them changes, and only then.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use super::catalogue::Catalogue;
use super::definition::{Code, Definition, Reference, ValueSet};
use super::{Error, Result};
use crate::terminology::Release;
use crate::terminology::ecl;

/// One expanded code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub code: u64,
    pub term: String,
    pub active: bool,
    /// Why the code is in: `ecl`, `listed`, `dmd:vmp of vtm X`,
    /// `dmd:amp of vmp X`, `history:SAME AS X`, `ref:ID@VERSION`.
    pub how_included: String,
}

/// A value set version expanded against one release.
#[derive(Debug, Clone)]
pub struct Expansion {
    pub id: String,
    pub version: String,
    pub release_id: String,
    pub rows: Vec<Row>,
    /// Hex SHA-256, see the module docs.
    pub hash: String,
}

impl Expansion {
    /// The rows as CSV (`code,term,active,how_included`), RFC 4180 quoting.
    pub fn to_csv(&self) -> String {
        let quote = |s: &str| {
            if s.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_string()
            }
        };
        let mut out = String::from("code,term,active,how_included\n");
        for r in &self.rows {
            out.push_str(&format!(
                "{},{},{},{}\n",
                r.code,
                quote(&r.term),
                r.active,
                quote(&r.how_included)
            ));
        }
        out
    }
}

/// The hash of rows pinned to a value set version and a release.
pub fn hash(id: &str, version: &str, release_id: &str, rows: &[Row]) -> String {
    let mut h = Sha256::new();
    h.update(format!(
        "phm value set expansion v1\n{id}\n{version}\n{release_id}\n"
    ));
    for r in rows {
        h.update(format!(
            "{}\t{}\t{}\t{}\n",
            r.code, r.term, r.active, r.how_included
        ));
    }
    hex::encode(h.finalize())
}

/// Member code → (how included, term from the source).
type Members = BTreeMap<u64, (String, Option<String>)>;

/// Expands `set` against `release`; references are looked up in `catalogue`.
pub fn expand(catalogue: &Catalogue, set: &ValueSet, release: &Release) -> Result<Expansion> {
    let members = members(catalogue, set, release, &mut Vec::new())?;
    let rows: Vec<Row> = members
        .into_iter()
        .map(|(code, (how_included, source_term))| Row {
            code,
            term: release
                .term(code)
                .map(str::to_string)
                .or(source_term)
                .unwrap_or_default(),
            // A dm+d product with no concept row counts as active.
            active: release.is_active(code).unwrap_or(true),
            how_included,
        })
        .collect();
    Ok(Expansion {
        hash: hash(&set.id, &set.version, release.id(), &rows),
        id: set.id.clone(),
        version: set.version.clone(),
        release_id: release.id().to_string(),
        rows,
    })
}

fn members(
    catalogue: &Catalogue,
    set: &ValueSet,
    release: &Release,
    stack: &mut Vec<String>,
) -> Result<Members> {
    let key = set.key();
    if stack.iter().any(|k| split_id(k) == set.id) {
        let mut chain = stack.clone();
        chain.push(key);
        return Err(Error::Cycle { chain });
    }
    stack.push(key);
    let mut out = Members::new();
    let known = |c: &Code, in_csv: Option<&std::path::Path>| -> Result<u64> {
        if release.contains(c.id) {
            Ok(c.id)
        } else {
            Err(Error::UnknownConcept {
                path: in_csv.unwrap_or(&set.path).to_path_buf(),
                line: c.line,
                column: c.column,
                code: c.id,
                release: release.id().to_string(),
            })
        }
    };
    let add = |out: &mut Members, code: u64, how: String, term: Option<String>| {
        out.entry(code).or_insert((how, term));
    };
    match &set.definition {
        Some(Definition::Ecl { text, pos }) => {
            let wrap = |source| Error::Ecl {
                path: set.path.clone(),
                pos: *pos,
                source,
            };
            let parsed = ecl::parse(text).map_err(wrap)?;
            for code in ecl::evaluate(&parsed, release, text).map_err(wrap)? {
                add(&mut out, code, "ecl".into(), None);
            }
        }
        Some(Definition::Codes(codes)) => {
            for c in codes {
                add(&mut out, known(c, None)?, "listed".into(), None);
            }
        }
        Some(Definition::OpenCodelists { path, codes }) => {
            for c in codes {
                let id = known(c, Some(path))?;
                add(&mut out, id, "listed".into(), c.term.clone());
            }
        }
        Some(Definition::Dmd { vtm, vmp }) => {
            let mut vmps = BTreeMap::new();
            for c in vtm {
                let id = known(c, None)?;
                let found = release.vmps_of_vtm.get(&id).ok_or_else(|| Error::Definition {
                    path: set.path.clone(),
                    pos: super::Pos {
                        line: c.line as usize,
                        column: c.column,
                    },
                    message: format!(
                        "{id} is not a VTM with VMPs in release {}; hint: list a VMP under `vmp`",
                        release.id()
                    ),
                })?;
                for &v in found {
                    vmps.entry(v).or_insert(format!("dmd:vmp of vtm {id}"));
                }
            }
            for c in vmp {
                vmps.insert(known(c, None)?, "dmd:vmp".into());
            }
            for (v, how) in &vmps {
                add(&mut out, *v, how.clone(), None);
            }
            for v in vmps.keys() {
                for &amp in release.amps_of_vmp.get(v).into_iter().flatten() {
                    add(&mut out, amp, format!("dmd:amp of vmp {v}"), None);
                }
            }
        }
        None => {}
    }
    for Reference { id, version, pos } in &set.references {
        let other = catalogue
            .resolve(id, version.as_deref())
            .map_err(|e| Error::Definition {
                path: set.path.clone(),
                pos: *pos,
                message: e.to_string(),
            })?;
        let how = format!("ref:{}", other.key());
        for code in members(catalogue, other, release, stack)?.into_keys() {
            add(&mut out, code, how.clone(), None);
        }
    }
    for c in &set.exclude {
        out.remove(&known(c, None)?);
    }
    let excluded: BTreeSet<u64> = set.exclude.iter().map(|c| c.id).collect();
    let mut added = Members::new();
    for (&source, associations) in &release.history {
        if out.contains_key(&source)
            || excluded.contains(&source)
            || release.is_active(source) == Some(true)
        {
            continue;
        }
        let best = associations
            .iter()
            .filter(|a| set.history.follows(&a.association) && out.contains_key(&a.target))
            .min_by_key(|a| (rank(&a.association), a.association.clone(), a.target));
        if let Some(a) = best {
            let how = format!("history:{} {}", a.association, a.target);
            added.insert(source, (how, None));
        }
    }
    out.extend(added);
    stack.pop();
    if out.is_empty() && !set.allow_empty {
        return Err(Error::Empty {
            path: set.path.clone(),
            id: set.id.clone(),
            version: set.version.clone(),
            release: release.id().to_string(),
        });
    }
    Ok(out)
}

fn split_id(key: &str) -> &str {
    key.split_once('@').map_or(key, |(id, _)| id)
}

/// The preferred association when an inactive concept has several.
fn rank(association: &str) -> u8 {
    match association {
        "SAME AS" => 0,
        "REPLACED BY" => 1,
        "POSSIBLY EQUIVALENT TO" => 2,
        _ => 3,
    }
}

/// Codes added and removed from `a` to `b`, each sorted by code, with terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    pub added: Vec<(u64, String)>,
    pub removed: Vec<(u64, String)>,
}

/// Compares two code → term maps.
pub fn diff(a: &BTreeMap<u64, String>, b: &BTreeMap<u64, String>) -> Diff {
    let only = |x: &BTreeMap<u64, String>, y: &BTreeMap<u64, String>| {
        x.iter()
            .filter(|(c, _)| !y.contains_key(c))
            .map(|(c, t)| (*c, t.clone()))
            .collect()
    };
    Diff {
        added: only(b, a),
        removed: only(a, b),
    }
}

/// The codes a value set lists, without a release: only for `codes` and
/// `opencodelists_csv` definitions with no references and no history policy.
pub fn listed(set: &ValueSet) -> Result<BTreeMap<u64, String>> {
    let needs = |message: &str| Error::NeedsRelease {
        path: set.path.clone(),
        pos: super::Pos { line: 1, column: 1 },
        message: format!("{}: {message}", set.key()),
    };
    if !set.references.is_empty() {
        return Err(needs("it references other value sets"));
    }
    if set.history != super::History::None {
        return Err(needs("its history policy needs the release's associations"));
    }
    let codes = match &set.definition {
        Some(Definition::Codes(c)) | Some(Definition::OpenCodelists { codes: c, .. }) => c,
        _ => {
            return Err(needs(
                "an ECL or dm+d definition is evaluated against a release",
            ));
        }
    };
    let excluded: BTreeSet<u64> = set.exclude.iter().map(|c| c.id).collect();
    Ok(codes
        .iter()
        .filter(|c| !excluded.contains(&c.id))
        .map(|c| (c.id, c.term.clone().unwrap_or_default()))
        .collect())
}

impl Expansion {
    /// code → term.
    pub fn terms(&self) -> BTreeMap<u64, String> {
        self.rows.iter().map(|r| (r.code, r.term.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::PathBuf;

    use super::*;
    use crate::terminology::release::{Association, ConceptInfo, Manifest};
    use crate::valueset::definition;

    // Valid SCTIDs: a tiny hierarchy, two inactive concepts and dm+d products.
    const ROOT: u64 = 138875005;
    const DM: u64 = 73211009;
    const T1: u64 = 46635009;
    const T2: u64 = 44054006;
    const OLD_SAME: u64 = 284449005;
    const OLD_POSS: u64 = 724276006;
    const OLD_WAS: u64 = 237613005;
    const VTM: u64 = 108537001;
    const VMP: u64 = 323398002;
    const AMP: u64 = 27871711000001100;

    fn release() -> Release {
        let mut concepts = HashMap::new();
        let mut put = |id: u64, active: bool, term: &str| {
            concepts.insert(
                id,
                ConceptInfo {
                    active,
                    term: Some(term.to_string()),
                },
            );
        };
        put(ROOT, true, "SNOMED CT Concept");
        put(DM, true, "Diabetes mellitus");
        put(T1, true, "Type 1 diabetes mellitus");
        put(T2, true, "Type 2 diabetes mellitus");
        put(OLD_SAME, false, "Old same");
        put(OLD_POSS, false, "Old possibly");
        put(OLD_WAS, false, "Old was a");
        let assoc = |target, name: &str| Association {
            target,
            association: name.to_string(),
        };
        let history = HashMap::from([
            (OLD_SAME, vec![assoc(T1, "SAME AS")]),
            (OLD_POSS, vec![assoc(T2, "POSSIBLY EQUIVALENT TO")]),
            (OLD_WAS, vec![assoc(DM, "WAS A")]),
        ]);
        Release {
            dir: PathBuf::from("r"),
            manifest: Manifest {
                release_id: "test-1".into(),
                format: 1,
                editions: vec![],
                latest_effective_time: 20260101,
                inputs: vec![],
                rows: Default::default(),
            },
            concepts,
            children: HashMap::from([(ROOT, vec![DM]), (DM, vec![T1, T2])]),
            parents: HashMap::from([(DM, vec![ROOT]), (T1, vec![DM]), (T2, vec![DM])]),
            descendants: HashMap::from([(ROOT, vec![DM, T1, T2]), (DM, vec![T1, T2])]),
            ancestors: HashMap::from([
                (DM, vec![ROOT]),
                (T1, vec![ROOT, DM]),
                (T2, vec![ROOT, DM]),
            ]),
            refsets: HashMap::new(),
            history,
            vmps_of_vtm: HashMap::from([(VTM, vec![VMP])]),
            amps_of_vmp: HashMap::from([(VMP, vec![AMP])]),
            vpid_prev: HashMap::new(),
            dmd_names: HashMap::from([
                (VTM, "Benzylpenicillin".into()),
                (VMP, "Benzylpenicillin 600mg vials".into()),
                (AMP, "Benzylpenicillin 600mg vials (X Ltd)".into()),
            ]),
        }
    }

    /// A catalogue of `(id, body)` files, each version 1.
    fn catalogue(files: &[(&str, &str)]) -> (tempfile::TempDir, Catalogue) {
        let tmp = tempfile::tempdir().unwrap();
        for (id, body) in files {
            let dir = tmp.path().join(id);
            std::fs::create_dir_all(&dir).unwrap();
            let text = format!(
                "id = \"{id}\"\nversion = \"1\"\ntitle = \"t\"\nstatus = \"draft\"\nowner = \"o\"\nprovenance = \"p\"\n{body}\n"
            );
            std::fs::write(dir.join("1.toml"), text).unwrap();
        }
        let cat = Catalogue::load(&[tmp.path().to_path_buf()]).unwrap();
        (tmp, cat)
    }

    fn rows(cat: &Catalogue, key: &str) -> Result<Vec<(u64, String)>, String> {
        let set = cat.get(key).map_err(|e| e.to_string())?;
        expand(cat, set, &release())
            .map(|e| {
                e.rows
                    .into_iter()
                    .map(|r| (r.code, r.how_included))
                    .collect()
            })
            .map_err(|e| e.to_string())
    }

    #[test]
    fn expansions() {
        let s = |v: &[(u64, &str)]| -> Vec<(u64, String)> {
            v.iter().map(|(c, h)| (*c, h.to_string())).collect()
        };
        type Case = (&'static str, Result<Vec<(u64, String)>, &'static str>);
        let cases: Vec<Case> = vec![
            ("A", Ok(s(&[(T2, "ecl"), (T1, "ecl")]))),
            ("B", Ok(s(&[(T1, "listed")]))),
            (
                "C",
                Ok(s(&[(T1, "listed"), (OLD_SAME, "history:SAME AS 46635009")])),
            ),
            (
                "D",
                Ok(s(&[
                    (T2, "ecl"),
                    (T1, "ecl"),
                    (OLD_POSS, "history:POSSIBLY EQUIVALENT TO 44054006"),
                    (OLD_SAME, "history:SAME AS 46635009"),
                ])),
            ),
            (
                "E",
                Ok(s(&[
                    (T2, "ecl"),
                    (DM, "ecl"),
                    (T1, "ecl"),
                    (OLD_WAS, "history:WAS A 73211009"),
                    (OLD_POSS, "history:POSSIBLY EQUIVALENT TO 44054006"),
                    (OLD_SAME, "history:SAME AS 46635009"),
                ])),
            ),
            (
                "F",
                Ok(s(&[
                    (VMP, "dmd:vmp of vtm 108537001"),
                    (AMP, "dmd:amp of vmp 323398002"),
                ])),
            ),
            ("G", Ok(s(&[(T2, "ref:A@1"), (T1, "ref:A@1")]))),
            ("H", Ok(s(&[(T2, "ecl")]))),
            ("EMPTY_OK", Ok(vec![])),
            (
                "UNKNOWN",
                Err("UNKNOWN/1.toml:7:20: concept 100000000 is not in release test-1"),
            ),
            (
                "UNKNOWN_ECL",
                Err("ECL column 4: concept 100000000 is not in release"),
            ),
            (
                "EMPTY",
                Err("EMPTY@1 expands to no codes against release test-1"),
            ),
            ("CYCLE_A", Err("cycle: CYCLE_A@1 -> CYCLE_B@1 -> CYCLE_A@1")),
            ("NOT_VTM", Err("73211009 is not a VTM")),
        ];
        let (_tmp, cat) = catalogue(&[
            ("A", "ecl = \"< 73211009\""),
            ("B", "codes = [46635009]"),
            ("C", "codes = [46635009]\nhistory = \"min\""),
            ("D", "ecl = \"< 73211009\"\nhistory = \"mod\""),
            ("E", "ecl = \"<< 73211009\"\nhistory = \"max\""),
            ("F", "dmd = { vtm = [108537001] }"),
            ("G", "references = [\"A\"]"),
            ("H", "ecl = \"< 73211009\"\nexclude = [46635009]"),
            (
                "EMPTY_OK",
                "ecl = \"< 73211009 MINUS < 73211009\"\nallow_empty = true",
            ),
            ("UNKNOWN", "codes = [73211009, 100000000]"),
            ("UNKNOWN_ECL", "ecl = \"<< 100000000\""),
            ("EMPTY", "ecl = \"< 73211009 MINUS < 73211009\""),
            ("CYCLE_A", "codes = [73211009]\nreferences = [\"CYCLE_B\"]"),
            ("CYCLE_B", "codes = [73211009]\nreferences = [\"CYCLE_A\"]"),
            ("NOT_VTM", "dmd = { vtm = [73211009] }"),
        ]);
        for (key, want) in cases {
            let mut want = want.map_err(str::to_string);
            if let Ok(w) = &mut want {
                w.sort();
            }
            match (rows(&cat, key), want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{key}"),
                (Err(e), Err(w)) => assert!(e.contains(&w), "{key}: {e}"),
                (g, w) => panic!("{key}: {g:?} vs {w:?}"),
            }
        }
    }

    #[test]
    fn unknown_csv_code_names_the_csv_line() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("X")).unwrap();
        let csv = tmp.path().join("X/l.csv");
        std::fs::write(&csv, "code,term\n73211009,DM\n100000000,nope\n").unwrap();
        let text = "id = \"X\"\nversion = \"1\"\ntitle = \"t\"\nstatus = \"draft\"\nowner = \"o\"\nprovenance = \"p\"\nopencodelists_csv = \"l.csv\"\n";
        let set = definition::parse(&tmp.path().join("X/1.toml"), text).unwrap();
        let e = expand(&Catalogue::default(), &set, &release())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("l.csv:3:1: concept 100000000 is not in release test-1"),
            "{e}"
        );
    }

    #[test]
    fn hash_pins_rows_version_and_release() {
        let row = |code: u64| Row {
            code,
            term: "t".into(),
            active: true,
            how_included: "listed".into(),
        };
        let base = hash("A", "1", "r1", &[row(1), row(2)]);
        assert_eq!(base, hash("A", "1", "r1", &[row(1), row(2)]));
        let others = [
            hash("A", "2", "r1", &[row(1), row(2)]),
            hash("A", "1", "r2", &[row(1), row(2)]),
            hash("B", "1", "r1", &[row(1), row(2)]),
            hash("A", "1", "r1", &[row(1)]),
        ];
        for h in others {
            assert_ne!(base, h);
        }
        assert_eq!(base.len(), 64);
    }

    #[test]
    fn diffs() {
        let m = |v: &[u64]| v.iter().map(|c| (*c, format!("t{c}"))).collect();
        let d = diff(&m(&[1, 2, 3]), &m(&[2, 3, 4, 5]));
        assert_eq!(d.removed, vec![(1, "t1".to_string())]);
        assert_eq!(d.added, vec![(4, "t4".to_string()), (5, "t5".to_string())]);
        assert_eq!(diff(&m(&[1]), &m(&[1])), Diff::default());
    }
}
