//! The clinical and drug codes the generator draws from, and their supplier-local forms.
//!
//! SNOMED CT and dm+d identifiers come from the real OpenCodelists CSVs in
//! `fixtures/codelists/` (embedded at compile time), plus a short list of common
//! observables (blood-pressure components, anthropometry, laboratory tests, smoking
//! status) that the fixtures do not cover. From each concept the catalogue derives:
//! - an EMIS `CodeId`: an EMIS-wide integer, a stable function of the SNOMED id;
//! - a TPP CTV3 code. No CTV3 → SNOMED map is available, so these codes are
//!   **synthetic**: deterministic 5-character, dot-padded codes shaped like CTV3
//!   (never starting with "Y", which marks local codes). They are consistent within
//!   a generated network (the `SRCtv3ToSnomed` reference table lists them) and mean
//!   nothing outside it.
//!
//! Supplier-local codes used only by the `UnmappedLocalCode` defect (EMIS local
//! CodeIds without SNOMED, TPP Y-codes without a map entry) live here too.

use std::collections::{BTreeMap, HashSet};
use std::sync::OnceLock;

use crate::synth::sampling::splitmix64;

/// A SNOMED CT concept as the generator uses it.
#[derive(Debug)]
pub struct Concept {
    pub snomed: i64,
    /// `snomed` in decimal, as TPP's `SNOMEDCode` carries it.
    pub snomed_text: String,
    pub term: String,
    /// Synthetic CTV3 code (see the module docs); "Y…" for TPP-local entries.
    pub ctv3: String,
    /// EMIS `CodeId`.
    pub code_id: i64,
}

/// A dm+d product (VMP or AMP).
#[derive(Debug)]
pub struct Drug {
    pub dmd: i64,
    pub term: String,
    /// EMIS `CodeId` in `Coding_DrugCode`.
    pub code_id: i64,
    /// Unit a quantity of this product is counted in ("tablet", "ml", …).
    pub unit: &'static str,
    /// Doses a day for the usual regimen.
    pub daily: u8,
}

/// A supplier-local code with no national equivalent.
#[derive(Debug, Clone, Copy)]
pub struct LocalCode {
    pub code: &'static str,
    pub term: &'static str,
    /// EMIS `CodeId` (EMIS local codes only).
    pub code_id: i64,
}

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

const LIST_FILES: &[(List, &str)] = &[
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

const DOAC_FILE: &str = fixture!("opensafely-direct-acting-oral-anticoagulants-doac.csv");
const ANTIBACTERIAL_FILE: &str = fixture!("opensafely-antibacterials.csv");

/// Concepts the fixtures do not carry, with their SNOMED CT ids and preferred terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observable {
    BloodPressure,
    SystolicBp,
    DiastolicBp,
    Weight,
    Height,
    Bmi,
    PulseRate,
    RespiratoryRate,
    OxygenSaturation,
    Sodium,
    Potassium,
    Urea,
    Creatinine,
    Cholesterol,
    Hdl,
    Ldl,
    NonHdl,
    Triglycerides,
    Glucose,
    Calcium,
    CorrectedCalcium,
    Hba1cIfcc,
    Hba1cDcct,
    Egfr,
    Smoker,
    ExSmoker,
    NeverSmoked,
    TelephoneEncounter,
}

const OBSERVABLES: &[(Observable, i64, &str)] = &[
    (Observable::BloodPressure, 75367002, "Blood pressure"),
    (Observable::SystolicBp, 271649006, "Systolic blood pressure"),
    (
        Observable::DiastolicBp,
        271650006,
        "Diastolic blood pressure",
    ),
    (Observable::Weight, 27113001, "Body weight"),
    (Observable::Height, 50373000, "Body height"),
    (Observable::Bmi, 60621009, "Body mass index"),
    (Observable::PulseRate, 78564009, "Pulse rate"),
    (Observable::RespiratoryRate, 86290005, "Respiratory rate"),
    (
        Observable::OxygenSaturation,
        431314004,
        "Peripheral oxygen saturation",
    ),
    (Observable::Sodium, 1000661000000107, "Serum sodium level"),
    (
        Observable::Potassium,
        1000651000000109,
        "Serum potassium level",
    ),
    (Observable::Urea, 1028131000000104, "Serum urea level"),
    (
        Observable::Creatinine,
        1000731000000107,
        "Serum creatinine level",
    ),
    (
        Observable::Cholesterol,
        1005671000000105,
        "Serum cholesterol level",
    ),
    (
        Observable::Hdl,
        1005681000000107,
        "Serum high density lipoprotein cholesterol level",
    ),
    (
        Observable::Ldl,
        1022191000000100,
        "Serum low density lipoprotein cholesterol level",
    ),
    (
        Observable::NonHdl,
        1006191000000106,
        "Serum non high density lipoprotein cholesterol level",
    ),
    (
        Observable::Triglycerides,
        1005691000000109,
        "Serum triglycerides level",
    ),
    (
        Observable::Glucose,
        1010671000000102,
        "Plasma glucose level",
    ),
    (Observable::Calcium, 1000691000000101, "Serum calcium level"),
    (
        Observable::CorrectedCalcium,
        935051000000108,
        "Corrected serum calcium level",
    ),
    (
        Observable::Hba1cIfcc,
        999791000000106,
        "Haemoglobin A1c level - International Federation of Clinical Chemistry and Laboratory Medicine standardised",
    ),
    (
        Observable::Hba1cDcct,
        313835008,
        "Hemoglobin A1c measurement aligned to the Diabetes Control and Complications Trial",
    ),
    (
        Observable::Egfr,
        1011481000000105,
        "Estimated glomerular filtration rate using creatinine Chronic Kidney Disease Epidemiology Collaboration equation per 1.73 square metres",
    ),
    (Observable::Smoker, 77176002, "Smoker"),
    (Observable::ExSmoker, 8517006, "Ex-smoker"),
    (Observable::NeverSmoked, 266919005, "Never smoked tobacco"),
    (
        Observable::TelephoneEncounter,
        185317003,
        "Telephone encounter",
    ),
];

/// Observables TPP practices record under local Y-codes (mapped in `SRCtv3ToSnomed`).
const TPP_LOCAL_MAPPED: &[(Observable, &str)] = &[
    (Observable::TelephoneEncounter, "Y1f3a"),
    (Observable::Smoker, "Y20b7"),
    (Observable::ExSmoker, "Y20b8"),
];

/// EMIS local codes (no SNOMED CT concept), used by the `UnmappedLocalCode` defect.
pub const EMIS_LOCAL: &[LocalCode] = &[
    LocalCode {
        code: "EMISNQRE1",
        term: "Record reviewed by practice",
        code_id: 900_001,
    },
    LocalCode {
        code: "EMISNQTE7",
        term: "Text message sent to patient",
        code_id: 900_002,
    },
    LocalCode {
        code: "ESCTPA12",
        term: "Patient access registration",
        code_id: 900_003,
    },
    LocalCode {
        code: "EMISNQDI3",
        term: "Did not attend practice review",
        code_id: 900_004,
    },
];

/// TPP local Y-codes with no map entry, used by the `UnmappedLocalCode` defect.
pub const TPP_LOCAL_UNMAPPED: &[LocalCode] = &[
    LocalCode {
        code: "Y0a41",
        term: "Template: long term conditions review",
        code_id: 0,
    },
    LocalCode {
        code: "Y3c19",
        term: "Practice audit marker",
        code_id: 0,
    },
    LocalCode {
        code: "Y77e2",
        term: "Online consultation submitted",
        code_id: 0,
    },
];

/// First EMIS `CodeId` handed out for codes whose coding row arrives late.
pub const LATE_CODE_ID_BASE: i64 = 950_000_000;

/// Oral antibacterials for acute courses in adults (dm+d VMP terms).
const ACUTE_ADULT: &[&str] = &[
    "Amoxicillin 500mg capsules",
    "Phenoxymethylpenicillin 250mg tablets",
    "Flucloxacillin 500mg capsules",
    "Clarithromycin 500mg tablets",
    "Doxycycline 100mg capsules",
    "Nitrofurantoin 100mg modified-release capsules",
    "Trimethoprim 200mg tablets",
    "Co-amoxiclav 500mg/125mg tablets",
    "Cefalexin 500mg capsules",
    "Metronidazole 400mg tablets",
];

/// Liquid antibacterials for children.
const ACUTE_CHILD: &[&str] = &[
    "Amoxicillin 250mg/5ml oral suspension",
    "Phenoxymethylpenicillin 250mg/5ml oral solution",
    "Cefalexin 250mg/5ml oral suspension",
    "Clarithromycin 250mg/5ml oral suspension",
];

/// Antibacterials prescribed long term (prophylaxis): the repeat medicines of chronic
/// patients, since the fixtures carry no other dm+d codes.
const LONG_TERM: &[&str] = &[
    "Nitrofurantoin 50mg tablets",
    "Trimethoprim 100mg tablets",
    "Doxycycline 100mg capsules",
    "Lymecycline 408mg capsules",
    "Azithromycin 250mg tablets",
    "Phenoxymethylpenicillin 250mg tablets",
    "Rifaximin 550mg tablets",
    "Methenamine hippurate 1g tablets",
];

/// DOACs (VMPs and branded AMPs) with their share of new prescriptions.
const DOACS: &[(&str, f64)] = &[
    ("Apixaban 5mg tablets", 0.34),
    ("Apixaban 2.5mg tablets", 0.08),
    (
        "Eliquis 5mg tablets (Bristol-Myers Squibb Pharmaceuticals Ltd)",
        0.04,
    ),
    ("Edoxaban 60mg tablets", 0.18),
    ("Edoxaban 30mg tablets", 0.04),
    ("Rivaroxaban 20mg tablets", 0.18),
    ("Rivaroxaban 15mg tablets", 0.04),
    ("Xarelto 20mg tablets (Bayer Plc)", 0.03),
    ("Dabigatran etexilate 150mg capsules", 0.05),
    ("Dabigatran etexilate 110mg capsules", 0.02),
];

/// Everything the generator codes with.
pub struct Catalogue {
    pub concepts: Vec<Concept>,
    lists: BTreeMap<List, Vec<u16>>,
    observables: Vec<u16>,
    pub drugs: Vec<Drug>,
    pub acute_adult: Vec<u16>,
    pub acute_child: Vec<u16>,
    pub long_term: Vec<u16>,
    pub doacs: Vec<u16>,
    pub doac_weights: Vec<f64>,
}

/// The catalogue, built once from the embedded fixtures.
pub fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(Catalogue::build)
}

impl Catalogue {
    pub fn concept(&self, index: u16) -> &Concept {
        &self.concepts[usize::from(index)]
    }

    pub fn list(&self, list: List) -> &[u16] {
        &self.lists[&list]
    }

    pub fn observable(&self, observable: Observable) -> u16 {
        let position = OBSERVABLES
            .iter()
            .position(|(o, _, _)| *o == observable)
            .expect("listed");
        self.observables[position]
    }

    pub fn find(&self, snomed: i64) -> Option<u16> {
        self.concepts
            .binary_search_by_key(&snomed, |c| c.snomed)
            .ok()
            .map(|i| i as u16)
    }

    pub fn drug(&self, index: u16) -> &Drug {
        &self.drugs[usize::from(index)]
    }

    fn build() -> Catalogue {
        let mut terms: BTreeMap<i64, String> = BTreeMap::new();
        let mut members: Vec<(List, Vec<i64>)> = Vec::new();
        for (list, text) in LIST_FILES {
            let rows = code_term_rows(text);
            members.push((*list, rows.iter().map(|(code, _)| *code).collect()));
            for (code, term) in rows {
                terms.entry(code).or_insert(term);
            }
        }
        for (_, code, term) in OBSERVABLES {
            terms.insert(*code, (*term).to_string());
        }

        let mut taken = HashSet::new();
        let mut used_ids = HashSet::new();
        let concepts: Vec<Concept> = terms
            .into_iter()
            .map(|(snomed, term)| {
                let local = TPP_LOCAL_MAPPED
                    .iter()
                    .find(|(o, _)| observable_code(*o) == snomed);
                let ctv3 = match local {
                    Some((_, y)) => (*y).to_string(),
                    None => unique_ctv3(snomed, &mut taken),
                };
                Concept {
                    snomed,
                    snomed_text: snomed.to_string(),
                    term,
                    ctv3,
                    code_id: stable_id(snomed, 1_000_000, &mut used_ids),
                }
            })
            .collect();
        assert!(
            concepts.len() < usize::from(u16::MAX),
            "concept indices fit in u16"
        );

        let index_of = |snomed: i64| -> u16 {
            concepts
                .binary_search_by_key(&snomed, |c| c.snomed)
                .expect("catalogued") as u16
        };
        let lists = members
            .into_iter()
            .map(|(list, codes)| (list, codes.into_iter().map(index_of).collect()))
            .collect();
        let observables = OBSERVABLES
            .iter()
            .map(|(_, code, _)| index_of(*code))
            .collect();

        let drugs = drug_rows();
        let drug_index = |term: &str| -> u16 {
            drugs
                .iter()
                .position(|d| d.term == term)
                .unwrap_or_else(|| panic!("dm+d fixture has no product {term:?}"))
                as u16
        };
        let pool = |terms: &[&str]| terms.iter().map(|t| drug_index(t)).collect::<Vec<u16>>();
        Catalogue {
            acute_adult: pool(ACUTE_ADULT),
            acute_child: pool(ACUTE_CHILD),
            long_term: pool(LONG_TERM),
            doacs: DOACS.iter().map(|(t, _)| drug_index(t)).collect(),
            doac_weights: DOACS.iter().map(|(_, w)| *w).collect(),
            concepts,
            lists,
            observables,
            drugs,
        }
    }
}

fn observable_code(observable: Observable) -> i64 {
    OBSERVABLES
        .iter()
        .find(|(o, _, _)| *o == observable)
        .map(|(_, c, _)| *c)
        .expect("listed")
}

/// A CodeId in `[base, base + 9e8)`, a stable function of `code` (probing on collision).
fn stable_id(code: i64, base: i64, used: &mut HashSet<i64>) -> i64 {
    let mut attempt = 0u64;
    loop {
        let id = base + (splitmix64(code as u64 ^ (attempt << 52)) % 900_000_000) as i64;
        if used.insert(id) {
            return id;
        }
        attempt += 1;
    }
}

/// CTV3 codes use these characters; "Y" is reserved for local codes, and I, O and l
/// are left out as real CTV3 avoids them.
const CTV3_ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXZabcdefghijkmnopqrstuvwxyz";

fn unique_ctv3(snomed: i64, taken: &mut HashSet<String>) -> String {
    let mut attempt = 0u64;
    loop {
        let code = synthetic_ctv3(snomed, attempt);
        if taken.insert(code.clone()) {
            return code;
        }
        attempt += 1;
    }
}

/// A synthetic 5-character CTV3-shaped code: 3, 4 or 5 significant characters,
/// dot-padded ("C10..", "G30A.", "XaIkY").
fn synthetic_ctv3(snomed: i64, attempt: u64) -> String {
    let mut h = splitmix64(snomed as u64 ^ 0xC7_3C_7300 ^ (attempt << 40));
    let significant = match h % 10 {
        0 | 1 => 3,
        2 | 3 => 4,
        _ => 5,
    };
    (0..5)
        .map(|i| {
            if i < significant {
                h = splitmix64(h);
                CTV3_ALPHABET[(h % CTV3_ALPHABET.len() as u64) as usize] as char
            } else {
                '.'
            }
        })
        .collect()
}

/// `(code, term)` rows of an OpenCodelists `code,term` CSV.
fn code_term_rows(text: &str) -> Vec<(i64, String)> {
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

/// The dm+d products of the DOAC and antibacterial fixtures, sorted by dm+d id.
fn drug_rows() -> Vec<Drug> {
    let mut products: BTreeMap<i64, String> = BTreeMap::new();
    for text in [DOAC_FILE, ANTIBACTERIAL_FILE] {
        for (code, term) in code_term_rows(text) {
            products.entry(code).or_insert(term);
        }
    }
    let mut used = HashSet::new();
    products
        .into_iter()
        .map(|(dmd, term)| {
            let (unit, daily) = regimen(&term);
            Drug {
                dmd,
                code_id: stable_id(dmd, 2_000_000_000, &mut used),
                term,
                unit,
                daily,
            }
        })
        .collect()
}

impl Drug {
    /// Dosage instructions for the usual regimen.
    pub fn dosage(&self) -> &'static str {
        match (self.unit, self.daily) {
            ("ml", _) => "5ml three times a day",
            (_, 1) => "Take one daily",
            (_, 2) => "Take one twice a day",
            (_, 3) => "Take one three times a day",
            _ => "As directed",
        }
    }
}

/// Quantity unit and usual doses a day, from the product's term.
fn regimen(term: &str) -> (&'static str, u8) {
    let lower = term.to_ascii_lowercase();
    let unit = if lower.contains("capsule") {
        "capsule"
    } else if lower.contains("tablet") {
        "tablet"
    } else if lower.contains("oral") || lower.contains("syrup") {
        "ml"
    } else if lower.contains("injection") || lower.contains("infusion") {
        "vial"
    } else {
        "dose"
    };
    let daily = if lower.contains("apixaban")
        || lower.contains("eliquis")
        || lower.contains("dabigatran")
    {
        2
    } else if lower.contains("amoxicillin")
        || lower.contains("flucloxacillin")
        || lower.contains("cefalexin")
    {
        3
    } else if lower.contains("clarithromycin")
        || lower.contains("co-amoxiclav")
        || lower.contains("trimethoprim 200")
    {
        2
    } else {
        1
    };
    (unit, daily)
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
    fn catalogue_is_consistent() {
        let cat = catalogue();
        assert!(cat.concepts.len() > 1000);
        assert!(cat.drugs.len() > 3000);
        let mut ctv3 = HashSet::new();
        let mut ids = HashSet::new();
        for c in &cat.concepts {
            assert_eq!(c.ctv3.len(), 5, "{c:?}");
            assert!(ctv3.insert(c.ctv3.clone()), "duplicate CTV3 {c:?}");
            assert!(ids.insert(c.code_id), "duplicate CodeId {c:?}");
            assert!(c.code_id < LATE_CODE_ID_BASE);
        }
        let quoted = cat.find(38341003).map(|i| cat.concept(i).term.as_str());
        assert_eq!(quoted, Some("Hypertensive disorder, systemic arterial"));
        for list in [
            List::Diabetes,
            List::SystolicBp,
            List::MedicationReview,
            List::Egfr,
        ] {
            assert!(!cat.list(list).is_empty(), "{list:?}");
        }
        for local in TPP_LOCAL_UNMAPPED {
            assert!(!ctv3.contains(local.code), "{local:?} must stay unmapped");
        }
        for local in EMIS_LOCAL {
            assert!(
                !ids.contains(&local.code_id),
                "{local:?} collides with a national CodeId"
            );
        }
    }

    #[test]
    fn regimens() {
        let cases = [
            ("Apixaban 5mg tablets", ("tablet", 2)),
            ("Amoxicillin 250mg/5ml oral suspension", ("ml", 3)),
            ("Doxycycline 100mg capsules", ("capsule", 1)),
            (
                "Benzylpenicillin 600mg powder for solution for injection vials",
                ("vial", 1),
            ),
        ];
        for (term, expected) in cases {
            assert_eq!(regimen(term), expected, "{term}");
        }
    }
}
