//! The catalogue: every value set definition under one or more folders,
//! indexed by id and version, and version lookup (`ID` = latest, `ID@VERSION`).
//!
//! Layout: `<dir>/<ID>/<version>.toml`; other files (a README, a generator
//! script) are ignored. The same id+version found twice is accepted only when
//! both files have the same content (line endings aside): a published version
//! is immutable. Versions order as numbers when both are all digits (dates such
//! as 20250627), else as text.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::definition::{ValueSet, parse, split_key};
use super::{Error, Result, io};

/// Versions compare as numbers when both are all digits, else as text.
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if digits(a) && digits(b) {
        let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
        a.len().cmp(&b.len()).then_with(|| a.cmp(b))
    } else {
        a.cmp(b)
    }
}

/// Every value set under one or more folders, by id then version.
#[derive(Debug, Default)]
pub struct Catalogue {
    sets: BTreeMap<String, Vec<ValueSet>>,
}

impl Catalogue {
    /// Reads `<dir>/<ID>/<version>.toml` for each dir. The same id+version in
    /// two places is accepted only with the same content.
    pub fn load(dirs: &[PathBuf]) -> Result<Catalogue> {
        let mut texts: BTreeMap<(String, String), (PathBuf, String)> = BTreeMap::new();
        let mut catalogue = Catalogue::default();
        for dir in dirs {
            for folder in sorted_entries(dir)? {
                if !folder.is_dir() {
                    continue;
                }
                for path in sorted_entries(&folder)? {
                    if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                        continue;
                    }
                    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
                    let set = parse(&path, &text)?;
                    let key = (set.id.clone(), set.version.clone());
                    let normalised = text.replace("\r\n", "\n");
                    if let Some((first, seen)) = texts.get(&key) {
                        if *seen != normalised {
                            return Err(Error::Duplicate {
                                id: set.id,
                                version: set.version,
                                first: first.clone(),
                                second: path,
                            });
                        }
                        continue;
                    }
                    texts.insert(key, (path, normalised));
                    catalogue.sets.entry(set.id.clone()).or_default().push(set);
                }
            }
        }
        for versions in catalogue.sets.values_mut() {
            versions.sort_by(|a, b| version_cmp(&a.version, &b.version));
        }
        Ok(catalogue)
    }

    /// All value sets, sorted by id then version.
    pub fn iter(&self) -> impl Iterator<Item = &ValueSet> {
        self.sets.values().flatten()
    }

    /// `ID` (the latest version) or `ID@VERSION`.
    pub fn get(&self, key: &str) -> Result<&ValueSet> {
        let (id, version) = split_key(key);
        self.resolve(id, version)
    }

    pub fn resolve(&self, id: &str, version: Option<&str>) -> Result<&ValueSet> {
        let not_found = |hint: String| Error::NotFound {
            wanted: match version {
                Some(v) => format!("{id}@{v}"),
                None => id.to_string(),
            },
            hint,
        };
        let Some(versions) = self.sets.get(id) else {
            return Err(not_found(
                "`phm valueset list` shows the ids; is --dir the valuesets folder?".into(),
            ));
        };
        match version {
            None => Ok(versions.last().expect("an id has at least one version")),
            Some(v) => versions.iter().find(|s| s.version == v).ok_or_else(|| {
                not_found(format!(
                    "versions of {id}: {}",
                    versions
                        .iter()
                        .map(|s| s.version.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }),
        }
    }
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        out.push(entry.map_err(io(dir))?.path());
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::valueset::testing::{HEAD, tree};

    #[test]
    fn catalogue_versions_and_duplicates() {
        let v = |version: &str, ecl: &str| {
            HEAD.replace("version = \"1\"", &format!("version = \"{version}\""))
                + &format!("ecl = \"{ecl}\"\n")
        };
        let (a, b, c) = (v("9", "*"), v("10", "*"), v("10", "< 138875005"));
        let one = tree(&[
            ("DM_COD/9.toml", &a),
            ("DM_COD/10.toml", &b),
            ("README.md", "x"),
        ]);
        let same = tree(&[("DM_COD/10.toml", &b)]);
        let other = tree(&[("DM_COD/10.toml", &c)]);

        let cat = Catalogue::load(&[one.path().into(), same.path().into()]).unwrap();
        let keys: Vec<_> = cat.iter().map(ValueSet::key).collect();
        assert_eq!(keys, ["DM_COD@9", "DM_COD@10"]);
        assert_eq!(cat.get("DM_COD").unwrap().version, "10");
        assert_eq!(cat.get("DM_COD@9").unwrap().version, "9");
        let e = cat.get("DM_COD@11").unwrap_err().to_string();
        assert!(e.contains("versions of DM_COD: 9, 10"), "{e}");
        assert!(cat.get("AST_COD").is_err());

        let e = Catalogue::load(&[one.path().into(), other.path().into()]).unwrap_err();
        assert!(e.to_string().contains("DM_COD@10 is defined twice"), "{e}");
    }

    #[test]
    fn version_order() {
        let cases = [
            ("20200812", "20250627", Ordering::Less),
            ("9", "10", Ordering::Less),
            ("010", "9", Ordering::Greater),
            ("2020-10-05", "2020-9-01", Ordering::Less),
            ("abc", "abc", Ordering::Equal),
        ];
        for (a, b, want) in cases {
            assert_eq!(version_cmp(a, b), want, "{a} {b}");
        }
    }
}
