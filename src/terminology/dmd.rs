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
    read_files(&locate(dir)?)
}

/// The VTM, VMP and AMP files in `dir` (not recursive; exactly one of each),
/// found without reading them.
pub fn locate(dir: &Path) -> Result<[PathBuf; 3]> {
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
    Ok([find("f_vtm2_")?, find("f_vmp2_")?, find("f_amp2_")?])
}

/// Reads the files [`locate`] found, each to its end.
pub fn read_files(files: &[PathBuf; 3]) -> Result<Dmd> {
    let [vtm_path, vmp_path, amp_path] = files.clone();
    Ok(Dmd {
        vtms: read(&vtm_path, "VTM", vtm)?,
        vmps: read(&vmp_path, "VMP", vmp)?,
        amps: read(&amp_path, "AMP", amp)?,
        files: vec![vtm_path, vmp_path, amp_path],
    })
}

/// Reads one dm+d file to its end: the whole file must be well-formed UTF-8
/// XML (see [`records`]) before any of its records is used.
fn read<T>(
    path: &Path,
    record: &str,
    convert: fn(&Record) -> Result<T, XmlError>,
) -> Result<Vec<T>> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let xml_error = |e: XmlError| Error::Xml {
        path: path.to_path_buf(),
        line: e.at.line,
        offset: e.at.offset,
        message: e.message,
    };
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let offset = e.valid_up_to();
        xml_error(XmlError {
            at: At {
                offset: offset as u64,
                line: 1 + bytes[..offset].iter().filter(|&&b| b == b'\n').count(),
            },
            message: "not UTF-8; hint: the file is damaged or truncated: take it again from the dm+d release".into(),
        })
    })?;
    records(text, record)
        .and_then(|r| r.iter().map(convert).collect::<Result<Vec<_>, XmlError>>())
        .map_err(xml_error)
}

/// Where in an XML file something is: byte offset (0-based) and line (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    pub offset: u64,
    pub line: usize,
}

/// A malformed or incomplete dm+d file, or a record without a field it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlError {
    pub at: At,
    pub message: String,
}

impl std::fmt::Display for XmlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}, byte {}: {}",
            self.at.line, self.at.offset, self.message
        )
    }
}

/// One record element's child fields, with where it starts.
#[derive(Debug)]
pub struct Record {
    pub at: At,
    pub fields: HashMap<String, String>,
}

const TRUNCATED: &str =
    "hint: the file is damaged or truncated: take it again from the dm+d release";

/// Every `<record>` element's direct children as name → text.
///
/// The whole document is checked, not only the records: exactly one root
/// element, every element closed (quick-xml checks that end tags match their
/// start tags), nothing but whitespace, comments and processing instructions
/// after the root. A file cut off anywhere is therefore an error naming the
/// byte where it ends, never a shorter list of records.
pub fn records(xml: &str, record: &str) -> Result<Vec<Record>, XmlError> {
    let mut reader = Reader::from_str(xml);
    // Line numbers by counting newlines incrementally (positions only grow).
    let mut counted = (0usize, 1usize);
    let mut at = move |pos: u64| {
        let pos = (pos as usize).min(xml.len());
        if pos >= counted.0 {
            counted.1 += xml.as_bytes()[counted.0..pos]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            counted.0 = pos;
        }
        At {
            offset: pos as u64,
            line: counted.1,
        }
    };
    let error = |at: At, message: String| XmlError { at, message };
    let mut out = Vec::new();
    // Open elements: name and where each starts.
    let mut open: Vec<(String, At)> = Vec::new();
    let mut root: Option<String> = None;
    let mut current: Option<Record> = None;
    let mut field: Option<String> = None;
    let mut text = String::new();
    loop {
        let pos = reader.buffer_position();
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(e) => {
                let here = at(reader.error_position());
                return Err(error(here, format!("malformed XML: {e}; {TRUNCATED}")));
            }
        };
        let here = at(pos);
        let after_root = |name: &str| {
            error(
                here,
                format!(
                    "{name} after the end of the root element <{}>; {TRUNCATED}",
                    root.as_deref().unwrap_or_default()
                ),
            )
        };
        match event {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if open.is_empty() && root.is_some() {
                    return Err(after_root(&format!("element <{name}>")));
                }
                if current.is_none() && name == record {
                    current = Some(Record {
                        at: here,
                        fields: HashMap::new(),
                    });
                } else if current.is_some() && field.is_none() {
                    field = Some(name.clone());
                    text.clear();
                }
                open.push((name, here));
            }
            Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if open.is_empty() {
                    if root.is_some() {
                        return Err(after_root(&format!("element <{name}/>")));
                    }
                    root = Some(name);
                } else if let (Some(rec), None) = (current.as_mut(), &field) {
                    rec.fields.insert(name, String::new());
                }
            }
            Event::Text(t) if open.is_empty() => {
                let t = t.decode().map_err(|e| error(here, e.to_string()))?;
                if !t.trim().is_empty() {
                    return Err(if root.is_some() {
                        after_root("text")
                    } else {
                        error(here, format!("text before the root element; {TRUNCATED}"))
                    });
                }
            }
            Event::CData(_) | Event::GeneralRef(_) if open.is_empty() => {
                return Err(after_root("text"));
            }
            Event::Text(t) if field.is_some() => {
                text.push_str(&t.decode().map_err(|e| error(here, e.to_string()))?);
            }
            Event::CData(t) if field.is_some() => {
                text.push_str(&t.decode().map_err(|e| error(here, e.to_string()))?);
            }
            Event::GeneralRef(r) if field.is_some() => {
                let name = r.decode().map_err(|e| error(here, e.to_string()))?;
                if let Some(c) = r
                    .resolve_char_ref()
                    .map_err(|e| error(here, e.to_string()))?
                {
                    text.push(c);
                } else if let Some(s) = quick_xml::escape::resolve_predefined_entity(&name) {
                    text.push_str(s);
                } else {
                    return Err(error(here, format!("unknown entity &{name};")));
                }
            }
            Event::End(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                // quick-xml has already refused an end tag that does not match.
                open.pop();
                if open.is_empty() {
                    root = Some(name.clone());
                }
                if field.as_deref() == Some(name.as_str()) {
                    let rec = current.as_mut().expect("a field is inside a record");
                    rec.fields.insert(name, text.trim().to_string());
                    field = None;
                } else if field.is_none() && name == record {
                    out.extend(current.take());
                }
            }
            Event::Eof => {
                if let Some((name, start)) = open.last() {
                    return Err(error(
                        here,
                        format!(
                            "the file ends inside <{name}> (opened at line {}, byte {}); {TRUNCATED}",
                            start.line, start.offset
                        ),
                    ));
                }
                if root.is_none() {
                    return Err(error(here, format!("no root element; {TRUNCATED}")));
                }
                break;
            }
            _ => {}
        }
    }
    Ok(out)
}

fn required<'a>(rec: &'a Record, kind: &str, name: &str) -> Result<&'a str, XmlError> {
    rec.fields
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| XmlError {
            at: rec.at,
            message: format!("{kind} without {name}"),
        })
}

fn id(rec: &Record, name: &str, value: &str) -> Result<u64, XmlError> {
    sctid::parse(value).map_err(|e| XmlError {
        at: rec.at,
        message: format!("{name} {value:?}: {e}"),
    })
}

fn optional_id(rec: &Record, name: &str) -> Result<Option<u64>, XmlError> {
    match rec.fields.get(name).filter(|v| !v.is_empty()) {
        Some(v) => id(rec, name, v).map(Some),
        None => Ok(None),
    }
}

fn invalid(rec: &Record) -> Result<bool, XmlError> {
    match rec.fields.get("INVALID").map(String::as_str) {
        None | Some("0") => Ok(false),
        Some("1") => Ok(true),
        Some(other) => Err(XmlError {
            at: rec.at,
            message: format!("INVALID {other:?} is not 1"),
        }),
    }
}

fn vtm(rec: &Record) -> Result<Vtm, XmlError> {
    Ok(Vtm {
        vtmid: id(rec, "VTMID", required(rec, "VTM", "VTMID")?)?,
        name: required(rec, "VTM", "NM")?.to_string(),
        invalid: invalid(rec)?,
    })
}

fn vmp(rec: &Record) -> Result<Vmp, XmlError> {
    Ok(Vmp {
        vpid: id(rec, "VPID", required(rec, "VMP", "VPID")?)?,
        vtmid: optional_id(rec, "VTMID")?,
        name: required(rec, "VMP", "NM")?.to_string(),
        invalid: invalid(rec)?,
        vpid_prev: optional_id(rec, "VPIDPREV")?,
        vpid_date: rec.fields.get("VPIDDT").filter(|v| !v.is_empty()).cloned(),
    })
}

fn amp(rec: &Record) -> Result<Amp, XmlError> {
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
                (Err(g), Err(w)) => assert!(g.message.contains(w), "{xml}: {g}"),
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
        assert_eq!(
            recs[0].at,
            At {
                line: 3,
                offset: 30
            }
        );
        let v = vmp(&recs[0]).unwrap();
        assert_eq!(v.vpid_prev, Some(20555811000001101));
        assert_eq!(v.vpid_date.as_deref(), Some("2016-05-10"));
        assert_eq!(v.vtmid, Some(108537001));
    }

    #[test]
    fn amp_requires_vpid() {
        let doc = "<ACTUAL_MEDICINAL_PRODUCTS><AMPS><AMP><APID>21677511000001105</APID><NM>Eliquis</NM></AMP></AMPS></ACTUAL_MEDICINAL_PRODUCTS>";
        let recs = records(doc, "AMP").unwrap();
        assert!(
            amp(&recs[0])
                .unwrap_err()
                .message
                .contains("AMP without VPID")
        );
    }

    #[test]
    fn malformed_xml_names_line() {
        let err = records("<A>\n<VTM><VTMID>1</VTM>", "VTM").unwrap_err();
        assert!(err.to_string().starts_with("line 2, byte "), "{err}");
    }

    /// A document that is not whole is an error at the byte where it goes
    /// wrong, never fewer records. Offsets counted by hand on the text.
    #[test]
    fn incomplete_documents() {
        let whole =
            "<?xml version=\"1.0\"?>\n<VTMS><VTM><VTMID>108537001</VTMID><NM>A</NM></VTM></VTMS>\n";
        assert_eq!(records(whole, "VTM").unwrap().len(), 1);
        let cases = [
            // Cut after the record: the root is never closed (opened at byte 22).
            (
                &whole[..73],
                73,
                "ends inside <VTMS> (opened at line 2, byte 22)",
            ),
            // Cut inside a field's text.
            (
                &whole[..62],
                62,
                "ends inside <NM> (opened at line 2, byte 57)",
            ),
            // Cut inside a tag.
            (&whole[..70], 67, "malformed XML"),
            ("", 0, "no root element"),
            ("<?xml version=\"1.0\"?>\n", 22, "no root element"),
            (
                "<VTMS></VTMS>\ngarbage",
                13,
                "text after the end of the root element <VTMS>",
            ),
            (
                "<VTMS></VTMS><VTMS></VTMS>",
                13,
                "element <VTMS> after the end",
            ),
            ("<VTMS></VTMS><X/>", 13, "element <X/> after the end"),
            ("x<VTMS></VTMS>", 0, "text before the root element"),
            ("<VTMS><VTM></VTMS>", 11, "malformed XML"),
        ];
        for (xml, offset, want) in cases {
            let err = records(xml, "VTM").unwrap_err();
            assert!(err.message.contains(want), "{xml:?}: {err}");
            assert_eq!(err.at.offset, offset, "{xml:?}: {err}");
        }
        // Whitespace, comments and processing instructions may follow the root.
        let tail = "<VTMS></VTMS>\r\n<!-- end -->\n<?pi x?>\n";
        assert!(records(tail, "VTM").unwrap().is_empty());
    }
}
