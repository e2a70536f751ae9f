//! Codelists in OpenCodelists CSV download format: `code,term` (SNOMED CT),
//! `code,term,dmd_id,dmd_type,bnf_code` and `code,term,id` (dm+d).
//!
//! RFC 4180 CSV: fields may be quoted, quotes doubled inside quotes, commas and
//! line breaks inside quotes; lines end in LF or CRLF. Every row keeps the line
//! it starts on, so later errors can name it. Codes are kept as text here:
//! whether one is a valid SCTID is the caller's question.

use std::path::Path;

use super::{Error, Result, io};

/// One data row: its first line number and the fields by header name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub line: u64,
    pub code: String,
    pub term: String,
    /// `dmd_type` (VMP, AMP, …) where the file has that column.
    pub dmd_type: Option<String>,
}

/// A codelist file's rows.
#[derive(Debug, Clone)]
pub struct Codelist {
    pub header: Vec<String>,
    pub rows: Vec<Row>,
}

pub fn read(path: &Path) -> Result<Codelist> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    parse(&text).map_err(|(line, message)| Error::Row {
        path: path.to_path_buf(),
        line,
        message,
    })
}

/// Parses codelist CSV text; errors are (line, message).
pub fn parse(text: &str) -> std::result::Result<Codelist, (u64, String)> {
    let records = split(text.trim_start_matches('\u{feff}'))?;
    let mut records = records.into_iter();
    let (_, header) = records.next().ok_or((
        1,
        "empty file; hint: expected a header line `code,term`".to_string(),
    ))?;
    let find = |name: &str| header.iter().position(|h| h == name);
    let (Some(code), Some(term)) = (find("code"), find("term")) else {
        return Err((
            1,
            format!(
                "header {:?} lacks a `code` or `term` column; hint: OpenCodelists downloads start `code,term`",
                header.join(",")
            ),
        ));
    };
    let dmd_type = find("dmd_type");
    let mut rows = Vec::new();
    for (line, fields) in records {
        if fields.len() == 1 && fields[0].is_empty() {
            continue;
        }
        if fields.len() != header.len() {
            return Err((
                line,
                format!(
                    "{} fields, expected {} ({}); hint: quote a term that holds a comma",
                    fields.len(),
                    header.len(),
                    header.join(",")
                ),
            ));
        }
        rows.push(Row {
            line,
            code: fields[code].trim().to_string(),
            term: fields[term].clone(),
            dmd_type: dmd_type.map(|i| fields[i].clone()),
        });
    }
    Ok(Codelist { header, rows })
}

/// Splits CSV text into records with their starting line numbers.
#[allow(clippy::type_complexity)]
fn split(text: &str) -> std::result::Result<Vec<(u64, Vec<String>)>, (u64, String)> {
    let mut out = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut line = 1u64;
    let mut start = 1u64;
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                '\r' => {}
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => quoted = true,
            ',' => fields.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                fields.push(std::mem::take(&mut field));
                out.push((start, std::mem::take(&mut fields)));
                line += 1;
                start = line;
                any = false;
            }
            _ => field.push(c),
        }
    }
    if quoted {
        return Err((
            start,
            "a quoted field is not closed; hint: the file is truncated".into(),
        ));
    }
    if any {
        fields.push(field);
        out.push((start, fields));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Expected = Result<Vec<(&'static str, &'static str, u64)>, &'static str>;

    #[test]
    fn cases() {
        let cases: [(&str, Expected); 6] = [
            (
                "code,term\n73211009,Diabetes mellitus\n",
                Ok(vec![("73211009", "Diabetes mellitus", 2)]),
            ),
            (
                "code,term\r\n1,\"a, b\"\r\n2,c\r\n",
                Ok(vec![("1", "a, b", 2), ("2", "c", 3)]),
            ),
            (
                "code,term\n1,\"say \"\"hi\"\"\"\n",
                Ok(vec![("1", "say \"hi\"", 2)]),
            ),
            (
                "code,term\n1,\"two\nlines\"\n2,x",
                Ok(vec![("1", "two\nlines", 2), ("2", "x", 4)]),
            ),
            ("code,label\n1,x\n", Err("lacks a `code` or `term`")),
            ("code,term\n1,x,y\n", Err("3 fields, expected 2")),
        ];
        for (text, want) in cases {
            let got = parse(text).map(|c| {
                c.rows
                    .into_iter()
                    .map(|r| (r.code, r.term, r.line))
                    .collect::<Vec<_>>()
            });
            match (got, want) {
                (Ok(g), Ok(w)) => {
                    let w: Vec<_> = w
                        .into_iter()
                        .map(|(a, b, l)| (a.to_string(), b.to_string(), l))
                        .collect();
                    assert_eq!(g, w, "{text:?}");
                }
                (Err((_, g)), Err(w)) => assert!(g.contains(w), "{text:?}: {g}"),
                (g, w) => panic!("{text:?}: {g:?} vs {w:?}"),
            }
        }
    }
}
