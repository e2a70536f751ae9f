//! The delivery manifest (`manifest.json`), the contract between a landing zone
//! and ingest (DESIGN.md, "Extract manifest").
//!
//! A manifest is validated before any data is read: every listed file must exist,
//! hash to the stated SHA-256 and hold the stated number of rows.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const MANIFEST_FILE: &str = "manifest.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Supplier {
    Emis,
    Tpp,
}

impl Supplier {
    pub fn as_str(self) -> &'static str {
        match self {
            Supplier::Emis => "emis",
            Supplier::Tpp => "tpp",
        }
    }
}

impl std::fmt::Display for Supplier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExtractKind {
    /// A bulk: the practice's whole record. Replaces the practice's state.
    Full,
    /// Changed rows only, applied on top of the state.
    Delta,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    pub table: String,
    /// Relative to the delivery folder.
    pub path: String,
    pub rows: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub practice: String,
    pub supplier: Supplier,
    pub schema_version: String,
    pub extract_id: String,
    pub kind: ExtractKind,
    /// UTC, ISO 8601 without offset (`2026-03-31T02:00:00`).
    pub extracted_at: NaiveDateTime,
    pub files: Vec<ManifestFile>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(
        "{path}: no manifest.json in the delivery; hint: a delivery is only ingested with its manifest; ask the practice's supplier feed to re-send it"
    )]
    Missing { path: PathBuf },
    #[error(
        "{path}: manifest is not valid JSON for the manifest contract: {message}; hint: fix or re-send the manifest; nothing from this delivery was read"
    )]
    Malformed { path: PathBuf, message: String },
    #[error(
        "{path}: unknown supplier {supplier:?}; phm reads \"emis\" and \"tpp\" extracts; hint: this delivery is not from a supported clinical system; remove it from the landing zone"
    )]
    UnknownSupplier { path: PathBuf, supplier: String },
    #[error(
        "{path}: manifest lists no files (empty delivery); hint: an empty delivery is refused rather than read as 'no patients'; re-send the delivery"
    )]
    Empty { path: PathBuf },
    #[error(
        "{path}: file listed in the manifest is missing; hint: the delivery is incomplete; wait for the transfer to finish or re-send it"
    )]
    FileMissing { path: PathBuf },
    #[error(
        "{path}: SHA-256 mismatch: manifest says {expected}, file has {actual}; hint: the file was altered or truncated in transit; re-send the delivery"
    )]
    HashMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error(
        "{path}: row count mismatch: manifest says {expected}, file has {actual}; hint: the file does not match its manifest; re-send the delivery"
    )]
    RowCountMismatch {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error(
        "{path}: not a readable Parquet file: {message}; hint: the file is truncated or not Parquet; re-send the delivery"
    )]
    NotParquet { path: PathBuf, message: String },
    #[error(
        "{manifest}: file {path:?} of table {table} {why}; hint: a manifest may only name files inside its own delivery folder; nothing from this delivery was read; ask for the delivery to be re-sent with its own files"
    )]
    PathOutside {
        manifest: PathBuf,
        table: String,
        path: String,
        why: crate::confine::Escape,
    },
    #[error(
        "{manifest}: {path:?} is listed twice (tables {first} and {second}); hint: each file of a delivery is one table's rows; fix the manifest and re-send the delivery"
    )]
    PathTwice {
        manifest: PathBuf,
        path: String,
        first: String,
        second: String,
    },
    #[error("{path}: i/o error: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Manifest {
    pub fn read(delivery_dir: &Path) -> Result<Manifest, ManifestError> {
        let path = delivery_dir.join(MANIFEST_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ManifestError::Missing {
                    path: delivery_dir.to_path_buf(),
                });
            }
            Err(source) => return Err(ManifestError::Io { path, source }),
        };
        Manifest::parse(&bytes, path)
    }

    /// A manifest from the bytes of the file at `path` (named in errors).
    pub fn parse(bytes: &[u8], path: PathBuf) -> Result<Manifest, ManifestError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Malformed {
                path: path.clone(),
                message: e.to_string(),
            })?;
        if let Some(supplier) = value.get("supplier").and_then(|s| s.as_str())
            && !matches!(supplier, "emis" | "tpp")
        {
            return Err(ManifestError::UnknownSupplier {
                path,
                supplier: supplier.to_string(),
            });
        }
        let manifest: Manifest =
            serde_json::from_value(value).map_err(|e| ManifestError::Malformed {
                path: path.clone(),
                message: e.to_string(),
            })?;
        if manifest.files.is_empty() {
            return Err(ManifestError::Empty { path });
        }
        Ok(manifest)
    }

    pub fn write(&self, delivery_dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(delivery_dir.join(MANIFEST_FILE), json)
    }

    /// Where `file` of this manifest lies: inside `delivery_dir`, or an error
    /// ([`crate::confine`]).
    pub fn path_of(
        &self,
        delivery_dir: &Path,
        file: &ManifestFile,
    ) -> Result<PathBuf, ManifestError> {
        crate::confine::inside(delivery_dir, &file.path).map_err(|why| ManifestError::PathOutside {
            manifest: delivery_dir.join(MANIFEST_FILE),
            table: file.table.clone(),
            path: file.path.clone(),
            why,
        })
    }

    /// Checks that every file lies inside the delivery and is listed once,
    /// then each file's existence, SHA-256 and row count (from the Parquet
    /// footer).
    pub fn verify(&self, delivery_dir: &Path) -> Result<(), ManifestError> {
        let mut seen: std::collections::HashMap<PathBuf, &str> = std::collections::HashMap::new();
        for file in &self.files {
            self.path_of(delivery_dir, file)?;
            let normal: PathBuf = Path::new(&file.path).components().collect();
            if let Some(first) = seen.insert(normal, &file.table) {
                return Err(ManifestError::PathTwice {
                    manifest: delivery_dir.join(MANIFEST_FILE),
                    path: file.path.clone(),
                    first: first.to_string(),
                    second: file.table.clone(),
                });
            }
        }
        for file in &self.files {
            let path = self.path_of(delivery_dir, file)?;
            if !path.is_file() {
                return Err(ManifestError::FileMissing { path });
            }
            let actual = sha256_file(&path).map_err(|source| ManifestError::Io {
                path: path.clone(),
                source,
            })?;
            if !actual.eq_ignore_ascii_case(&file.sha256) {
                return Err(ManifestError::HashMismatch {
                    path,
                    expected: file.sha256.clone(),
                    actual,
                });
            }
            let rows = parquet_row_count(&path).map_err(|message| ManifestError::NotParquet {
                path: path.clone(),
                message,
            })?;
            if rows != file.rows {
                return Err(ManifestError::RowCountMismatch {
                    path,
                    expected: file.rows,
                    actual: rows,
                });
            }
        }
        Ok(())
    }
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Row count from the Parquet footer, without reading data pages.
pub fn parquet_row_count(path: &Path) -> Result<u64, String> {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let file = File::open(path).map_err(|e| e.to_string())?;
    let reader = SerializedFileReader::new(file).map_err(|e| e.to_string())?;
    Ok(reader.metadata().file_metadata().num_rows() as u64)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn file() -> impl Strategy<Value = ManifestFile> {
        (
            "[A-Za-z_]{1,24}",
            "[ -~]{1,40}",
            any::<u64>(),
            "[0-9a-f]{64}",
        )
            .prop_map(|(table, path, rows, sha256)| ManifestFile {
                table,
                path,
                rows,
                sha256,
            })
    }

    fn manifest() -> impl Strategy<Value = Manifest> {
        (
            "[A-Z][0-9]{5}",
            prop_oneof![Just(Supplier::Emis), Just(Supplier::Tpp)],
            "[ -~]{0,8}",
            "[ -~]{1,30}",
            prop_oneof![Just(ExtractKind::Full), Just(ExtractKind::Delta)],
            0i64..4_000_000_000,
            prop::collection::vec(file(), 1..5),
        )
            .prop_map(
                |(practice, supplier, schema_version, extract_id, kind, secs, files)| Manifest {
                    practice,
                    supplier,
                    schema_version,
                    extract_id,
                    kind,
                    extracted_at: chrono::DateTime::from_timestamp(secs, 0)
                        .expect("in range")
                        .naive_utc(),
                    files,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_bytes_parse_or_error_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = Manifest::parse(&bytes, PathBuf::from("manifest.json"));
        }

        #[test]
        fn any_json_text_parses_or_errors_without_panic(text in "\\{[ -~]{0,200}\\}") {
            let _ = Manifest::parse(text.as_bytes(), PathBuf::from("manifest.json"));
        }

        #[test]
        fn a_written_manifest_reads_back_equal(m in manifest()) {
            let json = serde_json::to_vec_pretty(&m).unwrap();
            let back = Manifest::parse(&json, PathBuf::from("manifest.json")).unwrap();
            prop_assert_eq!(back, m);
        }
    }
}
