//! The real code lists the generator draws from: OpenCodelists CSV downloads from
//! `fixtures/codelists/` (see its `PROVENANCE.md`), embedded at compile time, and the
//! small CSV reader they need (quoted terms with commas, LF or CRLF line ends).

/// Named code lists, one per fixture CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum List {
    Diabetes,
    DiabetesResolved,
    Hypertension,
    HypertensionResolved,
    Asthma,
    AsthmaResolved,
    Copd,
    AtrialFibrillation,
    Ckd,
    Chd,
    Stroke,
    Dementia,
    Depression,
    DepressionResolved,
    HeartFailure,
    Epilepsy,
    LearningDisability,
    PeripheralArterialDisease,
    Palliative,
    MildFrailty,
    ModerateFrailty,
    SevereFrailty,
    MedicationReview,
    DiabetesInvite,
    AsthmaReview,
    SystolicBp,
    Hba1cIfcc,
    Hba1c,
    Egfr,
    Cholesterol,
    Sodium,
}

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../../fixtures/codelists/", $name))
    };
}

pub(crate) const LIST_FILES: &[(List, &str)] = &[
    (
        List::Diabetes,
        fixture!("nhsd-primary-care-domain-refsets-dm_cod.csv"),
    ),
    (
        List::DiabetesResolved,
        fixture!("nhsd-primary-care-domain-refsets-dmres_cod.csv"),
    ),
    (
        List::Hypertension,
        fixture!("nhsd-primary-care-domain-refsets-hyp_cod.csv"),
    ),
    (
        List::HypertensionResolved,
        fixture!("nhsd-primary-care-domain-refsets-hypres_cod.csv"),
    ),
    (
        List::Asthma,
        fixture!("nhsd-primary-care-domain-refsets-ast_cod.csv"),
    ),
    (
        List::AsthmaResolved,
        fixture!("nhsd-primary-care-domain-refsets-astres_cod.csv"),
    ),
    (
        List::Copd,
        fixture!("nhsd-primary-care-domain-refsets-copd_cod.csv"),
    ),
    (
        List::AtrialFibrillation,
        fixture!("nhsd-primary-care-domain-refsets-afib_cod.csv"),
    ),
    (
        List::Ckd,
        fixture!("nhsd-primary-care-domain-refsets-ckd_cod.csv"),
    ),
    (
        List::Chd,
        fixture!("nhsd-primary-care-domain-refsets-chd_cod.csv"),
    ),
    (
        List::Stroke,
        fixture!("nhsd-primary-care-domain-refsets-strk_cod.csv"),
    ),
    (
        List::Dementia,
        fixture!("nhsd-primary-care-domain-refsets-dem_cod.csv"),
    ),
    (
        List::Depression,
        fixture!("nhsd-primary-care-domain-refsets-depr_cod.csv"),
    ),
    (
        List::DepressionResolved,
        fixture!("nhsd-primary-care-domain-refsets-depres_cod.csv"),
    ),
    (
        List::HeartFailure,
        fixture!("nhsd-primary-care-domain-refsets-hf_cod.csv"),
    ),
    (
        List::Epilepsy,
        fixture!("nhsd-primary-care-domain-refsets-epil_cod.csv"),
    ),
    (
        List::LearningDisability,
        fixture!("nhsd-primary-care-domain-refsets-ld_cod.csv"),
    ),
    (
        List::PeripheralArterialDisease,
        fixture!("nhsd-primary-care-domain-refsets-pad_cod.csv"),
    ),
    (
        List::Palliative,
        fixture!("nhsd-primary-care-domain-refsets-palcare_cod.csv"),
    ),
    (
        List::MildFrailty,
        fixture!("nhsd-primary-care-domain-refsets-mildfrail_cod.csv"),
    ),
    (
        List::ModerateFrailty,
        fixture!("nhsd-primary-care-domain-refsets-modfrail_cod.csv"),
    ),
    (
        List::SevereFrailty,
        fixture!("nhsd-primary-care-domain-refsets-sevfrail_cod.csv"),
    ),
    (
        List::MedicationReview,
        fixture!("nhsd-primary-care-domain-refsets-medrvw_cod.csv"),
    ),
    (
        List::DiabetesInvite,
        fixture!("nhsd-primary-care-domain-refsets-dminvite_cod.csv"),
    ),
    (
        List::AsthmaReview,
        fixture!("opensafely-asthma-annual-review-qof.csv"),
    ),
    (
        List::SystolicBp,
        fixture!("opensafely-systolic-blood-pressure-qof.csv"),
    ),
    (
        List::Hba1cIfcc,
        fixture!("nhsd-primary-care-domain-refsets-ifcchbam_cod.csv"),
    ),
    (
        List::Hba1c,
        fixture!("opensafely-glycated-haemoglobin-hba1c-tests.csv"),
    ),
    (
        List::Egfr,
        fixture!("user-RachelS99-doac-estimated-glomerular-filtration-rate.csv"),
    ),
    (
        List::Cholesterol,
        fixture!("opensafely-cholesterol-tests.csv"),
    ),
    (
        List::Sodium,
        fixture!("opensafely-sodium-tests-numerical-value.csv"),
    ),
];

pub(crate) const DOAC_FILE: &str =
    fixture!("opensafely-direct-acting-oral-anticoagulants-doac.csv");
pub(crate) const ANTIBACTERIAL_FILE: &str = fixture!("opensafely-antibacterials.csv");
pub(crate) const CHRONIC_FILE: &str = fixture!("selected/ebmdatalab-chronic-repeat-medicines.csv");

/// `(code, term)` rows of an OpenCodelists `code,term` CSV.
pub fn code_term_rows(text: &str) -> Vec<(i64, String)> {
    let rows = parse_csv(text);
    let (header, body) = rows.split_first().expect("codelist has a header");
    let code = column(header, "code");
    let term = column(header, "term");
    body.iter()
        .map(|row| {
            let id = row[code]
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("bad code in row {row:?}"));
            (id, row[term].trim().to_string())
        })
        .collect()
}

/// Index of a header column; the fixtures are fixed, so a missing column is a bug.
fn column(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|h| h.trim() == name)
        .unwrap_or_else(|| panic!("CSV has no column {name:?}"))
}

/// Parses CSV text: fields may be double-quoted (with `""` for a quote and commas or
/// line breaks inside), rows end in LF or CRLF. Blank lines are skipped.
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => quoted = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            _ => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows.retain(|r| !(r.len() == 1 && r[0].trim().is_empty()));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cases() {
        let cases: &[(&str, &[&[&str]])] = &[
            ("code,term\n1,a\n", &[&["code", "term"], &["1", "a"]]),
            (
                "code,term\r\n1,\"b, c\"\r\n",
                &[&["code", "term"], &["1", "b, c"]],
            ),
            (
                "1,\"say \"\"hi\"\"\"\n\n2,x",
                &[&["1", "say \"hi\""], &["2", "x"]],
            ),
            ("1,\"two\r\nlines\"\n", &[&["1", "two\r\nlines"]]),
            ("1,", &[&["1", ""]]),
        ];
        for (text, expected) in cases {
            let parsed = parse_csv(text);
            let expected: Vec<Vec<String>> = expected
                .iter()
                .map(|r| r.iter().map(|s| s.to_string()).collect())
                .collect();
            assert_eq!(parsed, expected, "{text:?}");
        }
    }

    #[test]
    fn every_list_parses() {
        for (list, text) in LIST_FILES {
            assert!(!code_term_rows(text).is_empty(), "{list:?}");
        }
        assert!(code_term_rows(ANTIBACTERIAL_FILE).len() > 3000);
        assert!(code_term_rows(DOAC_FILE).len() > 20);
    }
}
