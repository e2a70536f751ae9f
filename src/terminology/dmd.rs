//! dm+d (NHSBSA XML release): virtual therapeutic moieties (`f_vtm2_*.xml`),
//! virtual medicinal products (`f_vmp2_*.xml`) and actual medicinal products
//! (`f_amp2_*.xml`).
//!
//! Only the fields the value sets need are kept: ids, names, the invalid flag
//! (present in the XML only when true), parent links (VMP→VTM, AMP→VMP) and the
//! previous VMP code (VPIDPREV, with its date VPIDDT). Every id is an SCTID and
//! passes the Verhoeff check. Elements other than the record elements and their
//! child fields are skipped, so the other sections of the files do no harm.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use quick_xml::Reader;
use quick_xml::events::Event;

use super::{Error, Result, io, sctid};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vtm {
    pub vtmid: u64,
    pub name: String,
    pub invalid: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vmp {
    pub vpid: u64,
    pub vtmid: Option<u64>,
    pub name: String,
    pub invalid: bool,
    pub vpid_prev: Option<u64>,
    /// VPIDDT: the date the VPID changed (YYYY-MM-DD as in the file).
    pub vpid_date: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amp {
    pub apid: u64,
    pub vpid: u64,
    pub name: String,
    pub invalid: bool,
}

#[derive(Debug, Default)]
pub struct Dmd {
    pub vtms: Vec<Vtm>,
    pub vmps: Vec<Vmp>,
    pub amps: Vec<Amp>,
    pub files: Vec<PathBuf>,
}

/// Reads the VTM, VMP and AMP files in `dir` (not recursive; one of each).
pub fn load(dir: &Path) -> Result<Dmd> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let find = |prefix: &str| -> Result<PathBuf> {
        let hits: Vec<&PathBuf> = files
            .iter()
            .filter(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                name.starts_with(prefix) && name.ends_with(".xml")
            })
            .collect();
        match hits.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::Input {
                path: dir.to_path_buf(),
                message: format!(
                    "no {prefix}*.xml; hint: --dmd takes the folder of the unzipped dm+d XML release"
                ),
            }),
            _ => Err(Error::Input {
                path: dir.to_path_buf(),
                message: format!(
                    "{} files match {prefix}*.xml; hint: keep one release per folder",
                    hits.len()
                ),
            }),
        }
    };
    let (vtm_path, vmp_path, amp_path) = (find("f_vtm2_")?, find("f_vmp2_")?, find("f_amp2_")?);
    let vtms = records(
        &std::fs::read_to_string(&vtm_path).map_err(io(&vtm_path))?,
        "VTM",
    )
    .and_then(|r| r.iter().map(vtm).collect::<Result<Vec<_>, String>>())
    .map_err(|m| input(&vtm_path, m))?;
    let vmps = records(
        &std::fs::read_to_string(&vmp_path).map_err(io(&vmp_path))?,
        "VMP",
    )
    .and_then(|r| r.iter().map(vmp).collect::<Result<Vec<_>, String>>())
    .map_err(|m| input(&vmp_path, m))?;
    let amps = records(
        &std::fs::read_to_string(&amp_path).map_err(io(&amp_path))?,
        "AMP",
    )
    .and_then(|r| r.iter().map(amp).collect::<Result<Vec<_>, String>>())
    .map_err(|m| input(&amp_path, m))?;
    Ok(Dmd {
        vtms,
        vmps,
        amps,
        files: vec![vtm_path, vmp_path, amp_path],
    })
}

fn input(path: &Path, message: String) -> Error {
    Error::Input {
        path: path.to_path_buf(),
        message,
    }
}

/// One record element's child fields, with the line it starts on.
#[derive(Debug)]
pub struct Record {
    pub line: usize,
    pub fields: HashMap<String, String>,
}

/// Every `<record>` element's direct children as name → text.
pub fn records(xml: &str, record: &str) -> Result<Vec<Record>, String> {
    let mut reader = Reader::from_str(xml);
    // Line numbers by counting newlines incrementally (positions only grow).
    let mut counted = (0usize, 1usize);
    let mut line_at = move |pos: u64| {
        let pos = (pos as usize).min(xml.len());
        if pos >= counted.0 {
            counted.1 += xml.as_bytes()[counted.0..pos]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            counted.0 = pos;
        }
        counted.1
    };
    let mut out = Vec::new();
    let mut current: Option<Record> = None;
    let mut field: Option<String> = None;
    let mut text = String::new();
    loop {
        let pos = reader.buffer_position();
        let event = reader.read_event().map_err(|e| {
            format!(
                "line {}: malformed XML: {e}",
                line_at(reader.error_position())
            )
        })?;
        match event {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if current.is_none() && name == record {
                    current = Some(Record {
                        line: line_at(pos),
                        fields: HashMap::new(),
                    });
                } else if current.is_some() && field.is_none() {
                    field = Some(name);
                    text.clear();
                }
            }
            Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if let (Some(rec), None) = (current.as_mut(), &field) {
                    rec.fields.insert(name, String::new());
                }
            }
            Event::Text(t) if field.is_some() => {
                text.push_str(&t.decode().map_err(|e| e.to_string())?);
            }
            Event::CData(t) if field.is_some() => {
                text.push_str(&t.decode().map_err(|e| e.to_string())?);
            }
            Event::GeneralRef(r) if field.is_some() => {
                let name = r.decode().map_err(|e| e.to_string())?;
                if let Some(c) = r.resolve_char_ref().map_err(|e| e.to_string())? {
                    text.push(c);
                } else if let Some(s) = quick_xml::escape::resolve_predefined_entity(&name) {
                    text.push_str(s);
                } else {
                    return Err(format!("line {}: unknown entity &{name};", line_at(pos)));
                }
            }
            Event::End(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if field.as_deref() == Some(name.as_str()) {
                    let rec = current.as_mut().expect("a field is inside a record");
                    rec.fields.insert(name, text.trim().to_string());
                    field = None;
                } else if field.is_none() && name == record {
                    out.extend(current.take());
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

fn required<'a>(rec: &'a Record, kind: &str, name: &str) -> Result<&'a str, String> {
    rec.fields
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("line {}: {kind} without {name}", rec.line))
}

fn id(rec: &Record, name: &str, value: &str) -> Result<u64, String> {
    sctid::parse(value).map_err(|e| format!("line {}: {name} {value:?}: {e}", rec.line))
}

fn optional_id(rec: &Record, name: &str) -> Result<Option<u64>, String> {
    match rec.fields.get(name).filter(|v| !v.is_empty()) {
        Some(v) => id(rec, name, v).map(Some),
        None => Ok(None),
    }
}

fn invalid(rec: &Record) -> Result<bool, String> {
    match rec.fields.get("INVALID").map(String::as_str) {
        None | Some("0") => Ok(false),
        Some("1") => Ok(true),
        Some(other) => Err(format!("line {}: INVALID {other:?} is not 1", rec.line)),
    }
}

fn vtm(rec: &Record) -> Result<Vtm, String> {
    Ok(Vtm {
        vtmid: id(rec, "VTMID", required(rec, "VTM", "VTMID")?)?,
        name: required(rec, "VTM", "NM")?.to_string(),
        invalid: invalid(rec)?,
    })
}

fn vmp(rec: &Record) -> Result<Vmp, String> {
    Ok(Vmp {
        vpid: id(rec, "VPID", required(rec, "VMP", "VPID")?)?,
        vtmid: optional_id(rec, "VTMID")?,
        name: required(rec, "VMP", "NM")?.to_string(),
        invalid: invalid(rec)?,
        vpid_prev: optional_id(rec, "VPIDPREV")?,
        vpid_date: rec.fields.get("VPIDDT").filter(|v| !v.is_empty()).cloned(),
    })
}

fn amp(rec: &Record) -> Result<Amp, String> {
    Ok(Amp {
        apid: id(rec, "APID", required(rec, "AMP", "APID")?)?,
        vpid: id(rec, "VPID", required(rec, "AMP", "VPID")?)?,
        name: required(rec, "AMP", "NM")?.to_string(),
        invalid: invalid(rec)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vtm_cases() {
        let cases: [(&str, Result<Vtm, &str>); 4] = [
            (
                "<VTM><VTMID>108537001</VTMID><NM>Apixaban</NM></VTM>",
                Ok(Vtm {
                    vtmid: 108537001,
                    name: "Apixaban".into(),
                    invalid: false,
                }),
            ),
            (
                "<VTM><VTMID>108537001</VTMID><INVALID>1</INVALID><NM>A &amp; B</NM></VTM>",
                Ok(Vtm {
                    vtmid: 108537001,
                    name: "A & B".into(),
                    invalid: true,
                }),
            ),
            (
                "<VTM><VTMID>108537002</VTMID><NM>X</NM></VTM>",
                Err("Verhoeff"),
            ),
            ("<VTM><NM>X</NM></VTM>", Err("VTM without VTMID")),
        ];
        for (xml, want) in cases {
            let doc = format!(
                "<?xml version=\"1.0\"?>\n<VIRTUAL_THERAPEUTIC_MOIETIES>{xml}</VIRTUAL_THERAPEUTIC_MOIETIES>"
            );
            let got = records(&doc, "VTM").and_then(|r| vtm(&r[0]));
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{xml}"),
                (Err(g), Err(w)) => assert!(g.contains(w), "{xml}: {g}"),
                (g, w) => panic!("{xml}: got {g:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn vmp_with_previous_code_and_other_sections() {
        let doc = "<VIRTUAL_MED_PRODUCTS>\n<VMPS>\n<VMP><VPID>703666002</VPID><VPIDDT>2016-05-10</VPIDDT>\
                   <VPIDPREV>20555811000001101</VPIDPREV><VTMID>108537001</VTMID><NM>Drug 5mg tablets</NM></VMP>\n\
                   </VMPS>\n<VIRTUAL_PRODUCT_INGREDIENT><VPI><VPID>703666002</VPID><ISID>1</ISID></VPI>\
                   </VIRTUAL_PRODUCT_INGREDIENT></VIRTUAL_MED_PRODUCTS>";
        let recs = records(doc, "VMP").unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].line, 3);
        let v = vmp(&recs[0]).unwrap();
        assert_eq!(v.vpid_prev, Some(20555811000001101));
        assert_eq!(v.vpid_date.as_deref(), Some("2016-05-10"));
        assert_eq!(v.vtmid, Some(108537001));
    }

    #[test]
    fn amp_requires_vpid() {
        let doc = "<ACTUAL_MEDICINAL_PRODUCTS><AMPS><AMP><APID>21677511000001105</APID><NM>Eliquis</NM></AMP></AMPS></ACTUAL_MEDICINAL_PRODUCTS>";
        let recs = records(doc, "AMP").unwrap();
        assert!(amp(&recs[0]).unwrap_err().contains("AMP without VPID"));
    }

    #[test]
    fn malformed_xml_names_line() {
        let err = records("<A>\n<VTM><VTMID>1</VTM>", "VTM").unwrap_err();
        assert!(err.starts_with("line 2"), "{err}");
    }
}
