//! NHS numbers: Modulus 11 validation and a type that never prints itself.
//!
//! The check digit algorithm is the NHS Data Dictionary's: weights 10..2 over the
//! first nine digits, `11 - (sum mod 11)`, 11 → 0, 10 → invalid.

use std::fmt;

/// Check digit for the first nine digits, or `None` when the number cannot be valid.
pub fn check_digit(first_nine: &[u8; 9]) -> Option<u8> {
    let sum: u32 = first_nine
        .iter()
        .enumerate()
        .map(|(i, d)| u32::from(*d) * (10 - i as u32))
        .sum();
    match 11 - (sum % 11) {
        11 => Some(0),
        10 => None,
        d => Some(d as u8),
    }
}

/// True when `s` is ten ASCII digits (spaces allowed between groups) with a valid check digit.
pub fn is_valid(s: &str) -> bool {
    normalise(s).is_some()
}

/// Ten digits with separators removed, if the number passes Modulus 11.
pub fn normalise(s: &str) -> Option<String> {
    let digits: Vec<u8> = s.bytes().filter(|b| *b != b' ' && *b != b'-').collect();
    if digits.len() != 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let d: Vec<u8> = digits.iter().map(|b| b - b'0').collect();
    let first: [u8; 9] = d[..9].try_into().ok()?;
    (check_digit(&first)? == d[9]).then(|| String::from_utf8(digits).unwrap_or_default())
}

/// Numbers that pass Modulus 11 (or look as if they might) but stand for "no
/// number": systems and data-entry staff use them to fill a mandatory field.
/// They never link records, so thousands of records carrying `0000000000`
/// can never become one person.
///
/// Recognised: ten identical digits (`0000000000` … `9999999999`) and the
/// digit runs `0123456789`, `1234567890`, `9876543210`, `0987654321`.
/// The NHS test range (`999…`) is not among them: it is reserved for test
/// systems, and a test patient is marked by the supplier's test flag.
pub fn is_placeholder(s: &str) -> bool {
    const RUNS: [&str; 4] = ["0123456789", "1234567890", "9876543210", "0987654321"];
    let digits: String = s.chars().filter(|c| *c != ' ' && *c != '-').collect();
    if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let first = digits.as_bytes()[0];
    digits.bytes().all(|b| b == first) || RUNS.contains(&digits.as_str())
}

/// How a record's NHS number stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NhsNumberStatus {
    /// Ten digits with a valid check digit: links records across practices.
    Verified,
    /// Present but fails Modulus 11 or is not ten digits.
    Invalid,
    /// A placeholder for "no number" ([`is_placeholder`]): never linked.
    Placeholder,
    Missing,
}

impl NhsNumberStatus {
    pub fn of(raw: Option<&str>) -> NhsNumberStatus {
        match raw.map(str::trim) {
            None | Some("") => NhsNumberStatus::Missing,
            Some(s) if is_placeholder(s) => NhsNumberStatus::Placeholder,
            Some(s) if is_valid(s) => NhsNumberStatus::Verified,
            Some(_) => NhsNumberStatus::Invalid,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NhsNumberStatus::Verified => "verified",
            NhsNumberStatus::Invalid => "invalid",
            NhsNumberStatus::Placeholder => "placeholder",
            NhsNumberStatus::Missing => "missing",
        }
    }
}

/// An NHS number held in memory. `Debug` and `Display` redact it so it cannot
/// reach a log by accident; use [`NhsNumber::expose`] where the digits are needed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NhsNumber(String);

impl NhsNumber {
    pub fn new(digits: String) -> Self {
        NhsNumber(digits)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NhsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NhsNumber(<redacted>)")
    }
}

impl fmt::Display for NhsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted NHS number>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modulus_11_cases() {
        // (input, valid) — 943 476 5919 is the NHS Data Dictionary's worked example.
        let cases = [
            ("9434765919", true),
            ("943 476 5919", true),
            ("9434765918", false),
            ("9990000018", true),
            ("999000001", false),
            ("99900000181", false),
            ("99900000A8", false),
            ("", false),
        ];
        for (input, valid) in cases {
            assert_eq!(is_valid(input), valid, "{input:?}");
        }
    }

    #[test]
    fn placeholders_are_never_verified() {
        // (input, status): 0000000000, 1111111111, 9999999999, 0123456789 and
        // 9876543210 all pass Modulus 11 (worked by hand: the weighted sums are
        // 0, 54, 486, 156 and 330, giving check digits 0, 1, 9, 9 and 0).
        let cases = [
            ("0000000000", NhsNumberStatus::Placeholder),
            ("000 000 0000", NhsNumberStatus::Placeholder),
            ("1111111111", NhsNumberStatus::Placeholder),
            ("9999999999", NhsNumberStatus::Placeholder),
            ("0123456789", NhsNumberStatus::Placeholder),
            ("9876543210", NhsNumberStatus::Placeholder),
            ("1234567890", NhsNumberStatus::Placeholder),
            ("9434765919", NhsNumberStatus::Verified),
            ("9990000018", NhsNumberStatus::Verified),
            ("1111111112", NhsNumberStatus::Invalid),
            ("", NhsNumberStatus::Missing),
        ];
        for (input, status) in cases {
            assert_eq!(NhsNumberStatus::of(Some(input)), status, "{input:?}");
        }
        for modulus_11_passes in [
            "0000000000",
            "1111111111",
            "9999999999",
            "0123456789",
            "9876543210",
        ] {
            assert!(is_valid(modulus_11_passes), "{modulus_11_passes}");
        }
    }

    #[test]
    fn check_digit_ten_is_never_valid() {
        // 1000000010: weights give sum 10*1 + 2*1 = 12 → 11 - 1 = 10 → no valid check digit.
        assert_eq!(check_digit(&[1, 0, 0, 0, 0, 0, 0, 0, 1]), None);
    }

    #[test]
    fn status_of_raw_values() {
        let cases = [
            (None, NhsNumberStatus::Missing),
            (Some("  "), NhsNumberStatus::Missing),
            (Some("9434765919"), NhsNumberStatus::Verified),
            (Some("9434765910"), NhsNumberStatus::Invalid),
        ];
        for (raw, status) in cases {
            assert_eq!(NhsNumberStatus::of(raw), status, "{raw:?}");
        }
    }

    #[test]
    fn debug_and_display_redact() {
        let n = NhsNumber::new("9434765919".into());
        assert!(!format!("{n:?}").contains("943"));
        assert!(!format!("{n}").contains("943"));
    }
}
