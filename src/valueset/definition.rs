//! Value set definition files, `valuesets/<ID>/<version>.toml`, read into a
//! validated [`ValueSet`] and gathered into a [`Catalogue`](super::Catalogue).
//!
//! A file holds `id`, `version`, `title`, `status`, `owner`, `provenance` and
//! exactly one definition: `ecl`, `codes`, `opencodelists_csv` (a path relative
//! to the file) or `dmd = { vtm = [...], vmp = [...] }`; optionally `history`,
//! `allow_empty`, `exclude` and `references`. Unknown fields are refused, and
//! every error names the file, line and column (from the TOML spans). Checks
//! that need no release happen here: the id and version agree with the path,
//! codes are SCTIDs (Verhoeff), a CSV has one of the OpenCodelists headers, a
//! value set does not reference itself. [`super::catalogue`] gathers the files.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{Error, Pos, Result, io};
use crate::terminology::{opencodelists, sctid};

/// The OpenCodelists download headers accepted in `opencodelists_csv`.
pub const CSV_HEADERS: [&str; 3] = [
    "code,term",
    "code,term,dmd_id,dmd_type,bnf_code",
    "code,term,id",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Draft,
    Reviewed,
    Approved,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad` so that width and alignment apply in tables.
        f.pad(match self {
            Status::Draft => "draft",
            Status::Reviewed => "reviewed",
            Status::Approved => "approved",
        })
    }
}

/// Which inactive concepts are added through historical associations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum History {
    #[default]
    None,
    /// SAME AS, REPLACED BY.
    Min,
    /// min + POSSIBLY EQUIVALENT TO.
    Mod,
    /// Every association.
    Max,
}

impl History {
    /// Whether an association (by name) is followed under this policy.
    pub fn follows(self, association: &str) -> bool {
        match self {
            History::None => false,
            History::Min => matches!(association, "SAME AS" | "REPLACED BY"),
            History::Mod => {
                matches!(
                    association,
                    "SAME AS" | "REPLACED BY" | "POSSIBLY EQUIVALENT TO"
                )
            }
            History::Max => true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    id: Spanned<String>,
    version: Spanned<String>,
    title: String,
    status: Status,
    owner: String,
    provenance: String,
    ecl: Option<Spanned<String>>,
    codes: Option<Spanned<Vec<Spanned<toml::Value>>>>,
    opencodelists_csv: Option<Spanned<String>>,
    dmd: Option<Spanned<DmdFile>>,
    #[serde(default)]
    history: History,
    #[serde(default)]
    allow_empty: bool,
    #[serde(default)]
    exclude: Vec<Spanned<toml::Value>>,
    #[serde(default)]
    references: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DmdFile {
    #[serde(default)]
    vtm: Vec<Spanned<toml::Value>>,
    #[serde(default)]
    vmp: Vec<Spanned<toml::Value>>,
}

/// A code and where it is written: a TOML line/column or a CSV line (column 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    pub id: u64,
    pub line: u64,
    pub column: usize,
    /// The term the source gives (CSV rows), used when the release has none.
    pub term: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Definition {
    Ecl { text: String, pos: Pos },
    Codes(Vec<Code>),
    OpenCodelists { path: PathBuf, codes: Vec<Code> },
    Dmd { vtm: Vec<Code>, vmp: Vec<Code> },
}

/// `ID` or `ID@VERSION` (latest version when none is given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub id: String,
    pub version: Option<String>,
    pub pos: Pos,
}

/// A validated value set definition.
#[derive(Debug, Clone)]
pub struct ValueSet {
    pub path: PathBuf,
    pub id: String,
    pub version: String,
    pub title: String,
    pub status: Status,
    pub owner: String,
    pub provenance: String,
    /// None only when the value set is the union of its `references`.
    pub definition: Option<Definition>,
    pub history: History,
    pub allow_empty: bool,
    pub exclude: Vec<Code>,
    pub references: Vec<Reference>,
}

impl ValueSet {
    pub fn key(&self) -> String {
        format!("{}@{}", self.id, self.version)
    }
}

/// Upper-case letters, digits and `_`, starting with a letter (value set and
/// cohort ids).
pub(crate) fn valid_id(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.bytes()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
}

/// Letters, digits, `.`, `_` and `-` (value set and cohort versions).
pub(crate) fn valid_version(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
}

/// Splits `ID[@VERSION]`.
pub fn split_key(key: &str) -> (&str, Option<&str>) {
    match key.split_once('@') {
        Some((id, version)) => (id, Some(version)),
        None => (key, None),
    }
}

/// Parses one definition file's text; `path` names it in errors and anchors a
/// relative `opencodelists_csv`.
pub fn parse(path: &Path, text: &str) -> Result<ValueSet> {
    let err = |at: usize, message: String| Error::Definition {
        path: path.to_path_buf(),
        pos: Pos::of(text, at),
        message,
    };
    let file: File = toml::from_str(text).map_err(|e| {
        let at = e.span().map_or(0, |s| s.start);
        err(at, e.message().trim_end().replace('\n', " "))
    })?;
    let code = |v: &Spanned<toml::Value>| -> Result<Code> {
        let at = v.span().start;
        let digits = match v.get_ref() {
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::String(s) => s.trim().to_string(),
            other => {
                return Err(err(at, format!("expected an SCTID, found {other}")));
            }
        };
        let id = sctid::parse(&digits).map_err(|e| err(at, format!("{digits}: {e}")))?;
        let pos = Pos::of(text, at);
        Ok(Code {
            id,
            line: pos.line as u64,
            column: pos.column,
            term: None,
        })
    };

    let (id, version) = (file.id.get_ref().clone(), file.version.get_ref().clone());
    if !valid_id(&id) {
        return Err(err(
            file.id.span().start,
            format!("id {id:?} is not upper-case letters, digits and `_`; hint: e.g. DM_COD"),
        ));
    }
    if !valid_version(&version) {
        return Err(err(
            file.version.span().start,
            format!(
                "version {version:?} is not letters, digits, `.`, `_` and `-`; hint: e.g. 20250627"
            ),
        ));
    }
    let folder = path
        .parent()
        .and_then(Path::file_name)
        .and_then(|s| s.to_str());
    if folder.is_some_and(|f| f != id) {
        return Err(err(
            file.id.span().start,
            format!(
                "id {id:?} does not match the folder {:?}; hint: the file must be valuesets/<id>/<version>.toml",
                folder.unwrap_or_default()
            ),
        ));
    }
    let stem = path.file_stem().and_then(|s| s.to_str());
    if stem.is_some_and(|s| s != version) {
        return Err(err(
            file.version.span().start,
            format!(
                "version {version:?} does not match the file name {:?}; hint: the file must be valuesets/<id>/<version>.toml",
                stem.unwrap_or_default()
            ),
        ));
    }

    let mut given: Vec<(&str, usize)> = Vec::new();
    if let Some(e) = &file.ecl {
        given.push(("ecl", e.span().start));
    }
    if let Some(c) = &file.codes {
        given.push(("codes", c.span().start));
    }
    if let Some(c) = &file.opencodelists_csv {
        given.push(("opencodelists_csv", c.span().start));
    }
    if let Some(d) = &file.dmd {
        given.push(("dmd", d.span().start));
    }
    given.sort_by_key(|&(_, at)| at);
    if given.len() > 1 {
        let names: Vec<_> = given.iter().map(|(n, _)| *n).collect();
        return Err(err(
            given[1].1,
            format!(
                "more than one definition ({}); hint: a value set has exactly one of ecl, codes, opencodelists_csv, dmd",
                names.join(", ")
            ),
        ));
    }
    if given.is_empty() && file.references.is_empty() {
        return Err(err(
            0,
            "no definition; hint: add one of ecl, codes, opencodelists_csv, dmd (or references)"
                .into(),
        ));
    }

    let definition = if let Some(e) = file.ecl {
        let at = e.span().start;
        Some(Definition::Ecl {
            text: e.into_inner(),
            // The expression starts after the opening quote.
            pos: Pos::of(text, at + 1),
        })
    } else if let Some(c) = file.codes {
        Some(Definition::Codes(
            c.get_ref().iter().map(code).collect::<Result<_>>()?,
        ))
    } else if let Some(rel) = file.opencodelists_csv {
        let csv = inside(path, "opencodelists_csv", rel.get_ref())
            .map_err(|m| err(rel.span().start, m))?;
        let codes = read_csv(&csv).map_err(|e| match e {
            Error::Io { path, source } => err(
                rel.span().start,
                format!(
                    "cannot read {}: {source}; hint: the path is relative to this file",
                    path.display()
                ),
            ),
            other => other,
        })?;
        Some(Definition::OpenCodelists { codes, path: csv })
    } else if let Some(d) = file.dmd {
        let d = d.into_inner();
        Some(Definition::Dmd {
            vtm: d.vtm.iter().map(code).collect::<Result<_>>()?,
            vmp: d.vmp.iter().map(code).collect::<Result<_>>()?,
        })
    } else {
        None
    };

    let mut references = Vec::new();
    for r in &file.references {
        let at = r.span().start;
        let (rid, rversion) = split_key(r.get_ref());
        if !valid_id(rid) || rversion.is_some_and(|v| !valid_version(v)) {
            return Err(err(
                at,
                format!("reference {:?} is not ID or ID@VERSION", r.get_ref()),
            ));
        }
        if rid == id {
            return Err(err(
                at,
                format!("value set {id} references itself; hint: remove the reference"),
            ));
        }
        references.push(Reference {
            id: rid.to_string(),
            version: rversion.map(str::to_string),
            pos: Pos::of(text, at),
        });
    }

    Ok(ValueSet {
        path: path.to_path_buf(),
        id,
        version,
        title: file.title,
        status: file.status,
        owner: file.owner,
        provenance: file.provenance,
        definition,
        history: file.history,
        allow_empty: file.allow_empty,
        exclude: file.exclude.iter().map(code).collect::<Result<_>>()?,
        references,
    })
}

/// Resolves `rel`, a path written in the `field` of the definition file
/// `file`, inside the file's own folder; the error is the message to place at
/// the field.
///
/// A definition may only name files beside it or below it: an absolute path,
/// a `..` component, or a symbolic link that resolves outside the folder is
/// refused before anything is opened, so a definition can never make phm read
/// (or quote in an error) a file elsewhere on the machine. A path that does not
/// exist is returned as it is, for the reader to report.
pub(crate) fn inside(file: &Path, field: &str, rel: &str) -> Result<PathBuf, String> {
    use std::path::Component;
    let folder = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let hint = "hint: keep the file in the definition's own folder (or below it) and name it relative to the definition, e.g. \"list.csv\"";
    if rel.trim().is_empty() {
        return Err(format!("{field} is empty; {hint}"));
    }
    for part in Path::new(rel).components() {
        match part {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!(
                    "{field} {rel:?} has a `..` component: it must stay inside {}; {hint}",
                    folder.display()
                ));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("{field} {rel:?} is an absolute path; {hint}"));
            }
        }
    }
    let joined = folder.join(rel);
    match (folder.canonicalize(), joined.canonicalize()) {
        (Ok(base), Ok(target)) if target.starts_with(&base) => Ok(joined),
        // Nothing there (or a dangling link): the reader reports it missing.
        (_, Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(joined),
        _ => Err(format!(
            "{field} {rel:?} leads out of {} through a symbolic link, or cannot be resolved; {hint}",
            folder.display()
        )),
    }
}

/// Reads an OpenCodelists CSV: one of [`CSV_HEADERS`], every code an SCTID.
pub fn read_csv(path: &Path) -> Result<Vec<Code>> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let csv_err = |line: u64, message: String| Error::Csv {
        path: path.to_path_buf(),
        line,
        message,
    };
    let list = opencodelists::parse(&text).map_err(|(line, m)| csv_err(line, m))?;
    let header = list.header.join(",");
    if !CSV_HEADERS.contains(&header.as_str()) {
        return Err(csv_err(
            1,
            format!(
                "header {header:?} is not an OpenCodelists download header; hint: expected one of {}",
                CSV_HEADERS.map(|h| format!("{h:?}")).join(", ")
            ),
        ));
    }
    list.rows
        .into_iter()
        .map(|row| {
            let id = sctid::parse(&row.code)
                .map_err(|e| csv_err(row.line, format!("code {:?}: {e}", row.code)))?;
            Ok(Code {
                id,
                line: row.line,
                column: 1,
                term: Some(row.term),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::valueset::testing::{HEAD, tree};

    #[test]
    fn definition_files() {
        // (body after HEAD, Ok(definition kind) or Err(text the error holds))
        let cases: Vec<(&str, Result<&str, &str>)> = vec![
            ("ecl = \"<< 73211009\"", Ok("ecl")),
            ("codes = [73211009, \"111552007\"]", Ok("codes")),
            ("dmd = { vtm = [108537001] }", Ok("dmd")),
            ("opencodelists_csv = \"list.csv\"", Ok("csv")),
            ("opencodelists_csv = \"./lists/list.csv\"", Ok("csv")),
            (
                "opencodelists_csv = \"/etc/passwd\"",
                Err("7:21: opencodelists_csv \"/etc/passwd\" is an absolute path; hint:"),
            ),
            (
                "opencodelists_csv = \"../list.csv\"",
                Err("7:21: opencodelists_csv \"../list.csv\" has a `..` component"),
            ),
            (
                "opencodelists_csv = \"lists/../../DM_COD/list.csv\"",
                Err("has a `..` component"),
            ),
            (
                "opencodelists_csv = \"\"",
                Err("7:21: opencodelists_csv is empty"),
            ),
            ("references = [\"HYP_COD\"]", Ok("references")),
            (
                "ecl = \"*\"\ncolour = \"red\"",
                Err("8:1: unknown field `colour`"),
            ),
            (
                "ecl = \"*\"\ncodes = [73211009]",
                Err("8:9: more than one definition (ecl, codes)"),
            ),
            ("history = \"min\"", Err("1:1: no definition")),
            (
                "history = \"some\"\necl = \"*\"",
                Err("7:11: unknown variant `some`"),
            ),
            ("codes = [73211008]", Err("7:10: 73211008: Verhoeff")),
            ("codes = [1.5]", Err("expected an SCTID")),
            (
                "ecl = \"*\"\nreferences = [\"DM_COD@2\"]",
                Err("DM_COD references itself"),
            ),
            (
                "opencodelists_csv = \"bad.csv\"",
                Err("bad.csv:1: header \"code,term,dmd_id\""),
            ),
            (
                "opencodelists_csv = \"short.csv\"",
                Err("lacks a `code` or `term` column"),
            ),
            ("opencodelists_csv = \"none.csv\"", Err("7:21: cannot read")),
            ("ecl = \"*\"\nstatus = \"draft\"", Err("duplicate key")),
        ];
        let list = "code,term\n73211009,Diabetes mellitus\n";
        let tmp = tree(&[
            ("DM_COD/list.csv", list),
            ("DM_COD/lists/list.csv", list),
            ("DM_COD/bad.csv", "code,term,dmd_id\n73211009,x,1\n"),
            ("DM_COD/short.csv", "code\n73211009\n"),
            ("list.csv", list),
        ]);
        for (body, want) in cases {
            let path = tmp.path().join("DM_COD/1.toml");
            let got = parse(&path, &format!("{HEAD}{body}\n")).map(|s| match s.definition {
                Some(Definition::Ecl { .. }) => "ecl",
                Some(Definition::Codes(_)) => "codes",
                Some(Definition::Dmd { .. }) => "dmd",
                Some(Definition::OpenCodelists { .. }) => "csv",
                None => "references",
            });
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{body}"),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{body}: {e}"),
                (g, w) => panic!("{body}: {g:?} vs {w:?}"),
            }
        }
    }

    /// A symbolic link that leaves the folder is refused, and the file behind
    /// it is neither read nor quoted; one that stays inside is followed.
    #[cfg(unix)]
    #[test]
    fn symlinks_must_stay_inside() {
        let secret = "code,term\n73211009,SECRET CONTENT\n";
        let tmp = tree(&[("outside/secret.csv", secret), ("DM_COD/real.csv", secret)]);
        let dir = tmp.path().join("DM_COD");
        std::os::unix::fs::symlink(tmp.path().join("outside/secret.csv"), dir.join("out.csv"))
            .unwrap();
        std::os::unix::fs::symlink(tmp.path().join("outside"), dir.join("sub")).unwrap();
        std::os::unix::fs::symlink(dir.join("real.csv"), dir.join("in.csv")).unwrap();
        let path = dir.join("1.toml");
        for rel in ["out.csv", "sub/secret.csv"] {
            let text = format!("{HEAD}opencodelists_csv = \"{rel}\"\n");
            let e = parse(&path, &text).unwrap_err().to_string();
            assert!(e.contains("7:21: opencodelists_csv"), "{rel}: {e}");
            assert!(e.contains("leads out of"), "{rel}: {e}");
            assert!(!e.contains("SECRET"), "{rel}: {e}");
        }
        let text = format!("{HEAD}opencodelists_csv = \"in.csv\"\n");
        assert!(parse(&path, &text).is_ok());
    }

    #[test]
    fn path_must_match() {
        let cases = [
            ("DM_COD/1.toml", None),
            (
                "HYP_COD/1.toml",
                Some("1:6: id \"DM_COD\" does not match the folder \"HYP_COD\""),
            ),
            (
                "DM_COD/2.toml",
                Some("2:11: version \"1\" does not match the file name \"2\""),
            ),
        ];
        for (rel, want) in cases {
            let got = parse(Path::new(rel), &format!("{HEAD}ecl = \"*\"\n"));
            match (got, want) {
                (Ok(_), None) => {}
                (Err(e), Some(w)) => assert!(e.to_string().contains(w), "{rel}: {e}"),
                (g, w) => panic!("{rel}: {g:?} vs {w:?}"),
            }
        }
    }
}
