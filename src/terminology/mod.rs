//! Terminology: SNOMED CT RF2 snapshots, dm+d and the CTV3 map compiled into a
//! versioned release folder, and queries over a compiled release (ECL).
//!
//! ```text
//! <release>/            the release id is the folder name
//!   release.json        editions, effective dates, SHA-256 of every input, row counts
//!   concepts.parquet    id, active, effective_time, module_id, fsn, preferred_term
//!   descriptions.parquet  active descriptions with type and GB acceptability
//!   isa.parquet         (child, parent), active inferred IS-A only
//!   closure.parquet     (descendant, ancestor), transitive, self excluded
//!   history.parquet     (source, target, association) from the historical association refsets
//!   refset_members.parquet  (refset_id, referenced_component_id), active simple refset members
//!   dmd_vtm/vmp/amp.parquet, ctv3_map.parquet
//! ```
//! Invariants of a compiled release: every id passed the Verhoeff check; the
//! IS-A graph is acyclic; for a component present in several inputs only the row
//! with the latest effectiveTime was used. Specs: SNOMED CT Release File
//! Specification (RF2), NHSBSA dm+d data model, ECL 2.x (core subset).

pub mod closure;
pub mod ctv3;
pub mod dmd;
pub mod ecl;
pub mod fixture;
pub mod import;
pub mod opencodelists;
pub mod release;
pub mod rf2;
pub mod sctid;

use std::path::{Path, PathBuf};

pub use release::Release;

/// Well-known SNOMED CT metadata ids used by the importer and the fixture.
pub mod ids {
    pub const ROOT: u64 = 138875005;
    pub const IS_A: u64 = 116680003;
    pub const FSN: u64 = 900000000000003001;
    pub const SYNONYM: u64 = 900000000000013009;
    pub const PREFERRED: u64 = 900000000000548007;
    pub const ACCEPTABLE: u64 = 900000000000549004;
    pub const GB_LANGUAGE: u64 = 900000000000508004;
    pub const SAME_AS: u64 = 900000000000527005;
    pub const REPLACED_BY: u64 = 900000000000526001;
    pub const POSSIBLY_EQUIVALENT_TO: u64 = 900000000000523009;
    pub const WAS_A: u64 = 900000000000528000;
    pub const PARTIALLY_EQUIVALENT_TO: u64 = 1186924009;
    pub const MOVED_TO: u64 = 900000000000524003;
    pub const ALTERNATIVE: u64 = 900000000000530003;
    pub const POSSIBLY_REPLACED_BY: u64 = 1186921001;
    pub const REFERS_TO: u64 = 900000000000531004;
    pub const CLINICAL_FINDING: u64 = 404684003;
    pub const PROCEDURE: u64 = 71388002;
    pub const OBSERVABLE: u64 = 363787002;
    pub const PRODUCT: u64 = 373873005;
    pub const CORE_MODULE: u64 = 900000000000207008;
}

/// The name of a historical association refset, by refset id.
pub fn association_name(refset: u64) -> String {
    match refset {
        ids::SAME_AS => "SAME AS".into(),
        ids::REPLACED_BY => "REPLACED BY".into(),
        ids::POSSIBLY_EQUIVALENT_TO => "POSSIBLY EQUIVALENT TO".into(),
        ids::WAS_A => "WAS A".into(),
        ids::PARTIALLY_EQUIVALENT_TO => "PARTIALLY EQUIVALENT TO".into(),
        ids::MOVED_TO => "MOVED TO".into(),
        ids::ALTERNATIVE => "ALTERNATIVE".into(),
        ids::POSSIBLY_REPLACED_BY => "POSSIBLY REPLACED BY".into(),
        ids::REFERS_TO => "REFERS TO".into(),
        other => format!("association {other}"),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: header is {found:?}, expected {expected:?}; hint: is this the right RF2 file type, or a file of another release format?"
    )]
    Header {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{path}:{line}: {message}")]
    Row {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error(
        "{path}:{line}: {column} {id:?}: {reason}; hint: the file is damaged or was edited by hand (a spreadsheet rounds long ids); take it again from the release"
    )]
    Sctid {
        path: PathBuf,
        line: u64,
        column: &'static str,
        id: String,
        reason: sctid::Invalid,
    },
    #[error(
        "IS-A cycle: {}; hint: a relationship file from another release was mixed in, or a row was edited",
        cycle.iter().map(u64::to_string).collect::<Vec<_>>().join(" IS-A ")
    )]
    Cycle { cycle: Vec<u64> },
    /// A dm+d XML file that is not whole and well-formed, or a record in it
    /// without a field it needs.
    #[error("{path}:{line}: byte {offset}: {message}")]
    Xml {
        path: PathBuf,
        line: usize,
        offset: u64,
        message: String,
    },
    /// An RF2 edition without one of the files a snapshot needs.
    #[error(
        "{folder}: edition {edition} has no {pattern} file (it has {found}); hint: the release is incomplete: unzip the whole release again, and import nothing until every file is there"
    )]
    MissingFile {
        folder: PathBuf,
        edition: String,
        pattern: &'static str,
        found: String,
    },
    /// A usage problem: an input or output path that is missing or wrong, or
    /// inputs that do not fit together.
    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Release { path: PathBuf, message: String },
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Ecl(#[from] ecl::EclError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// SHA-256 of a file, hex, streamed.
pub(crate) fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
