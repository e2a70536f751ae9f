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
//! CodeIds without SNOMED, TPP Y-codes without a map entry) live here too. The code
//! lists themselves are in [`crate::synth::codelists`], dm+d products in
//! [`crate::synth::drugs`].

use std::collections::{BTreeMap, HashSet};
use std::sync::OnceLock;

use crate::synth::codelists::{LIST_FILES, List, code_term_rows};
use crate::synth::drugs::{Drug, Formulary};
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

/// A supplier-local code with no national equivalent.
#[derive(Debug, Clone, Copy)]
pub struct LocalCode {
    pub code: &'static str,
    pub term: &'static str,
    /// EMIS `CodeId` (EMIS local codes only).
    pub code_id: i64,
}

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

/// Everything the generator codes with.
pub struct Catalogue {
    pub concepts: Vec<Concept>,
    lists: BTreeMap<List, Vec<u16>>,
    observables: Vec<u16>,
    pub formulary: Formulary,
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
        &self.formulary.drugs[usize::from(index)]
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

        Catalogue {
            concepts,
            lists,
            observables,
            formulary: Formulary::build(),
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
pub(crate) fn stable_id(code: i64, base: i64, used: &mut HashSet<i64>) -> i64 {
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
    let mut h = splitmix64(snomed as u64 ^ 0xC73C_7300 ^ (attempt << 40));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_consistent() {
        let cat = catalogue();
        assert!(cat.concepts.len() > 1000);
        assert!(cat.formulary.drugs.len() > 3000);
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
}
