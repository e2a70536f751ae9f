//! Units of measure phm recognises on numeric observations, and documented conversions.
//!
//! A unit is compared after trimming, case-folding and removing spaces, so the
//! EMIS variants "mmHg" and "mm Hg" are one unit. A numeric value whose unit is
//! missing or not listed here is loaded unchanged and flagged; it is never
//! compared against a threshold in another unit.

/// Canonical spelling of every recognised unit, with the spellings that mean it.
const UNITS: &[(&str, &[&str])] = &[
    ("mmHg", &["mmhg"]),
    ("mmol/mol", &["mmol/mol"]),
    ("%", &["%", "percent"]),
    (
        "mL/min/1.73m2",
        &[
            "ml/min/1.73m2",
            "ml/min/1.73m^2",
            "ml/min/1.73sqm",
            "ml/min",
        ],
    ),
    ("mmol/L", &["mmol/l"]),
    ("umol/L", &["umol/l", "µmol/l", "micromol/l"]),
    ("kg", &["kg", "kilogram", "kilograms"]),
    ("cm", &["cm"]),
    ("kg/m2", &["kg/m2", "kg/m^2"]),
    ("/min", &["/min", "bpm", "beats/min"]),
];

fn fold(unit: &str) -> String {
    unit.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The canonical spelling of `unit`, or `None` when phm does not know it.
pub fn canonical_unit(unit: &str) -> Option<&'static str> {
    let folded = fold(unit);
    UNITS
        .iter()
        .find(|(_, spellings)| spellings.contains(&folded.as_str()))
        .map(|(canonical, _)| *canonical)
}

/// Every recognised unit as (canonical spelling, folded spellings that mean it):
/// the table a query engine folds units with (`lower`, whitespace removed).
pub fn spellings() -> &'static [(&'static str, &'static [&'static str])] {
    UNITS
}

/// The spellings the synthetic generator uses for each measurement's unit.
pub fn known_units() -> impl Iterator<Item = &'static str> {
    UNITS.iter().map(|(canonical, _)| *canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_spellings() {
        let cases = [
            ("mmHg", Some("mmHg")),
            ("mm Hg", Some("mmHg")),
            (" MMOL/MOL ", Some("mmol/mol")),
            ("%", Some("%")),
            ("mL/min/1.73m2", Some("mL/min/1.73m2")),
            ("mmol/L", Some("mmol/L")),
            ("furlongs", None),
            ("", None),
        ];
        for (input, expected) in cases {
            assert_eq!(canonical_unit(input), expected, "{input:?}");
        }
    }
}
