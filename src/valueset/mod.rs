//! Value sets: versioned definitions (`valuesets/<ID>/<version>.toml`) expanded
//! against a compiled terminology release into a pinned, hashed list of codes.
//!
//! Stages: [`definition`] reads and validates one TOML file into a
//! [`ValueSet`] (serde `deny_unknown_fields`; errors name the file, line and
//! column; OpenCodelists CSVs are read and checked here); [`catalogue`] gathers
//! the files into a [`Catalogue`]; [`expand()`] evaluates one value set against a
//! [`Release`](crate::terminology::Release) into an [`Expansion`]: rows (code,
//! term, active, how included) sorted by code and a SHA-256 over the rows, the
//! value set id/version and the release id.
//!
//! Invariants: a definition that names a concept the release does not hold is
//! an error, never an empty set; an empty expansion is an error unless the file
//! says `allow_empty = true`; an id+version has exactly one definition; a value
//! set never (transitively) references itself. Spec: DESIGN.md "Value sets";
//! ECL core subset as in [`crate::terminology::ecl`].

pub mod catalogue;
pub mod definition;
pub mod expand;

use std::path::{Path, PathBuf};

pub use catalogue::Catalogue;
pub use definition::{Definition, History, Status, ValueSet};
pub use expand::{Diff, Expansion, Row, diff, expand};

/// Where in a definition file something is (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    /// The line and column of byte offset `at` in `text`.
    pub fn of(text: &str, at: usize) -> Pos {
        let before = &text[..at.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let start = before.rfind('\n').map_or(0, |i| i + 1);
        Pos {
            line,
            column: before[start..].chars().count() + 1,
        }
    }
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A malformed definition file: TOML syntax, an unknown field, a missing or
    /// doubled definition, an id or version that disagrees with the path.
    #[error("{path}:{pos}: {message}")]
    Definition {
        path: PathBuf,
        pos: Pos,
        message: String,
    },
    #[error(
        "{id}@{version} is defined twice with different content: {first} and {second}; hint: a published version is immutable: give the changed one a new version"
    )]
    Duplicate {
        id: String,
        version: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("value set {wanted} not found; hint: {hint}")]
    NotFound { wanted: String, hint: String },
    #[error("value set references form a cycle: {}; hint: remove one of the references", chain.join(" -> "))]
    Cycle { chain: Vec<String> },
    #[error("{path}:{line}: {message}")]
    Csv {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error(
        "{path}:{line}:{column}: concept {code} is not in release {release}; hint: check the code, or expand against the release the value set was written for"
    )]
    UnknownConcept {
        path: PathBuf,
        line: u64,
        column: usize,
        code: u64,
        release: String,
    },
    #[error(
        "{path}: {id}@{version} expands to no codes against release {release}; hint: set `allow_empty = true` if that is intended"
    )]
    Empty {
        path: PathBuf,
        id: String,
        version: String,
        release: String,
    },
    #[error("{path}:{pos}: {source}")]
    Ecl {
        path: PathBuf,
        pos: Pos,
        source: crate::terminology::ecl::EclError,
    },
    #[error(
        "{path}:{pos}: {message}; hint: without --release only listed codes (`codes`, `opencodelists_csv`) can be compared"
    )]
    NeedsRelease {
        path: PathBuf,
        pos: Pos,
        message: String,
    },
    #[error("{0}")]
    Release(#[from] crate::terminology::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::Pos;

    #[test]
    fn positions() {
        let cases = [
            ("abc", 0, (1, 1)),
            ("abc", 2, (1, 3)),
            ("a\nbc", 2, (2, 1)),
            ("a\nbc\nd", 6, (3, 2)),
            ("é\nx", 3, (2, 1)),
            ("ab", 99, (1, 3)),
        ];
        for (text, at, (line, column)) in cases {
            assert_eq!(Pos::of(text, at), Pos { line, column }, "{text:?} {at}");
        }
    }
}

/// Fixtures shared by the value-set unit tests.
#[cfg(test)]
pub(crate) mod testing {
    /// The metadata lines every test value set starts with.
    pub const HEAD: &str = "id = \"DM_COD\"\nversion = \"1\"\ntitle = \"t\"\nstatus = \"draft\"\nowner = \"o\"\nprovenance = \"p\"\n";

    /// Writes `files` (path, text) under a temporary folder.
    pub fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        for (rel, text) in files {
            let path = tmp.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        tmp
    }
}
