//! The CTV3 → SNOMED CT map (the NHS Data Migration `ctv3sctmap2` layout, as
//! TPP practices' CTV3 codes are mapped): one row per CTV3 concept and term.
//!
//! Invariants: the header is checked exactly; only current rows (MAPSTATUS 1)
//! are kept; every SNOMED concept id passes the Verhoeff check; a CTV3 code is
//! five characters.

use std::path::Path;

use super::rf2::{Fields, read_tsv};
use super::{Error, Result};

pub const HEADER: &str = "MAPID\tCTV3_CONCEPTID\tCTV3_TERMID\tCTV3_TERMTYPE\tSCT_CONCEPTID\tSCT_DESCID\tMAPSTATUS\tEFFECTIVEDATE\tISASSURED";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapRow {
    pub ctv3_code: String,
    pub ctv3_term_id: String,
    pub snomed_concept_id: u64,
    pub assured: bool,
    pub effective_date: String,
}

pub fn load(path: &Path) -> Result<Vec<MapRow>> {
    let mut out = Vec::new();
    read_tsv(path, HEADER, |line, f| {
        let at = Fields { path, line };
        if f[1].len() != 5 {
            return Err(at.error(format!(
                "CTV3_CONCEPTID {:?} is not 5 characters; hint: CTV3 codes are five characters, dots included",
                f[1]
            )));
        }
        let concept = at.sctid("SCT_CONCEPTID", f[4])?;
        let status = f[6];
        let assured = match f[8] {
            "1" => true,
            "0" => false,
            other => return Err(at.error(format!("ISASSURED {other:?} is not 0 or 1"))),
        };
        if status == "1" {
            out.push(MapRow {
                ctv3_code: f[1].to_string(),
                ctv3_term_id: f[2].to_string(),
                snomed_concept_id: concept,
                assured,
                effective_date: f[7].to_string(),
            });
        } else if status != "0" {
            return Err(at.error(format!("MAPSTATUS {status:?} is not 0 or 1")));
        }
        Ok(())
    })?;
    if out.is_empty() {
        return Err(Error::Input {
            path: path.to_path_buf(),
            message:
                "no current map rows (MAPSTATUS 1); hint: is this the CTV3 to SNOMED CT map file?"
                    .into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases() {
        let ok = "1\tC10..\tY0001\tP\t44054006\t\t1\t20200401\t1";
        let cases = [
            (ok, Ok(1usize)),
            (
                "1\tC10.\tY0001\tP\t44054006\t\t1\t20200401\t1",
                Err("not 5 characters"),
            ),
            (
                "1\tC10..\tY0001\tP\t44054007\t\t1\t20200401\t1",
                Err("Verhoeff"),
            ),
            (
                "1\tC10..\tY0001\tP\t44054006\t\t0\t20200401\t1",
                Err("no current map rows"),
            ),
        ];
        for (row, want) in cases {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("map.txt");
            std::fs::write(&path, format!("{HEADER}\n{row}\n")).unwrap();
            match (load(&path), want) {
                (Ok(rows), Ok(n)) => assert_eq!(rows.len(), n),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{row}: {e}"),
                (got, want) => panic!("{row}: {got:?} vs {want:?}"),
            }
        }
    }
}
