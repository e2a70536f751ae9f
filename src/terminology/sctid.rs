//! SNOMED CT identifiers: parsing and the Verhoeff check digit.
//!
//! An SCTID is 6–18 decimal digits: an item identifier, an optional 7-digit
//! namespace, a 2-digit partition identifier and a Verhoeff check digit
//! (SNOMED CT Technical Implementation Guide, "SCTID data type"). Every id that
//! enters a compiled release has passed [`parse`]; a release never holds an id
//! whose check digit fails.

/// Verhoeff multiplication table (dihedral group D5).
const D: [[u8; 10]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];

/// Verhoeff permutation table.
const P: [[u8; 10]; 8] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
];

/// Verhoeff inverse table.
const INV: [u8; 10] = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9];

/// True when the digit string (check digit last) passes the Verhoeff check.
pub fn verhoeff_valid(digits: &str) -> bool {
    let mut c = 0u8;
    for (i, ch) in digits.bytes().rev().enumerate() {
        if !ch.is_ascii_digit() {
            return false;
        }
        c = D[c as usize][P[i % 8][(ch - b'0') as usize] as usize];
    }
    !digits.is_empty() && c == 0
}

/// The check digit to append to `body` (digits only).
pub fn verhoeff_digit(body: &str) -> u8 {
    let mut c = 0u8;
    for (i, ch) in body.bytes().rev().enumerate() {
        c = D[c as usize][P[(i + 1) % 8][(ch - b'0') as usize] as usize];
    }
    INV[c as usize]
}

/// Why a string is not an SCTID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    NotDigits,
    Length,
    CheckDigit,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Invalid::NotDigits => "not an SCTID (digits only)",
            Invalid::Length => "not an SCTID (6 to 18 digits, no leading zero)",
            Invalid::CheckDigit => "Verhoeff check digit fails",
        })
    }
}

/// Parses and validates an SCTID.
pub fn parse(s: &str) -> Result<u64, Invalid> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Invalid::NotDigits);
    }
    if !(6..=18).contains(&s.len()) || s.starts_with('0') {
        return Err(Invalid::Length);
    }
    if !verhoeff_valid(s) {
        return Err(Invalid::CheckDigit);
    }
    Ok(s.parse().expect("at most 18 digits fit in u64"))
}

/// Builds a valid SCTID from an item id, a namespace (None: core, short
/// format) and a partition ("00" concept, "01" description, "02"
/// relationship; "10"/"11"/"12" the same in an extension namespace).
pub fn build(item: u64, namespace: Option<u32>, partition: &str) -> u64 {
    let body = match namespace {
        Some(ns) => format!("{item}{ns:07}{partition}"),
        None => format!("{item}{partition}"),
    };
    let digit = verhoeff_digit(&body);
    format!("{body}{digit}").parse().expect("valid digits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_ids() {
        let cases = [
            ("138875005", Ok(138875005)),
            ("404684003", Ok(404684003)),
            ("900000000000003001", Ok(900000000000003001)),
            ("925831000000107", Ok(925831000000107)),
            ("138875004", Err(Invalid::CheckDigit)),
            // Real UK and US-extension ids whose last digit exercises every
            // row of the permutation table (checked against an independent
            // implementation of the published tables).
            ("925791000000100", Ok(925791000000100)),
            ("1005671000000105", Ok(1005671000000105)),
            ("10675591000119109", Ok(10675591000119109)),
            ("925791000000101", Err(Invalid::CheckDigit)),
            ("12345", Err(Invalid::Length)),
            ("0138875005", Err(Invalid::Length)),
            ("13887500x", Err(Invalid::NotDigits)),
            ("", Err(Invalid::NotDigits)),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input), want, "{input}");
        }
    }

    #[test]
    fn built_ids_validate() {
        for item in [1u64, 42, 99999, 123456789] {
            for (ns, part) in [(None, "00"), (Some(9999999), "10"), (Some(1000000), "11")] {
                let id = build(item, ns, part);
                assert!(verhoeff_valid(&id.to_string()), "{id}");
            }
        }
    }
}
