//! The dm+d products the generator prescribes: every product of the DOAC and
//! antibacterial fixtures (so `Coding_DrugCode` can list them all), and the pools
//! drawn from for acute courses, long-term repeats and anticoagulation.
//!
//! The fixtures carry no other dm+d codes, so the repeat medicines of chronic
//! patients are antibacterials used long term (prophylaxis) and DOACs.

use std::collections::{BTreeMap, HashSet};

use crate::synth::codelists::{ANTIBACTERIAL_FILE, DOAC_FILE, code_term_rows};
use crate::synth::codes::stable_id;

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

/// The products and the pools prescriptions are drawn from (indices into `drugs`).
#[derive(Debug)]
pub struct Formulary {
    pub drugs: Vec<Drug>,
    pub acute_adult: Vec<u16>,
    pub acute_child: Vec<u16>,
    pub long_term: Vec<u16>,
    pub doacs: Vec<u16>,
    pub doac_weights: Vec<f64>,
}

impl Formulary {
    pub fn build() -> Formulary {
        let drugs = drug_rows();
        let index = |term: &str| -> u16 {
            drugs
                .iter()
                .position(|d| d.term == term)
                .unwrap_or_else(|| panic!("dm+d fixture has no product {term:?}"))
                as u16
        };
        let pool = |terms: &[&str]| terms.iter().map(|t| index(t)).collect::<Vec<u16>>();
        Formulary {
            acute_adult: pool(ACUTE_ADULT),
            acute_child: pool(ACUTE_CHILD),
            long_term: pool(LONG_TERM),
            doacs: DOACS.iter().map(|(t, _)| index(t)).collect(),
            doac_weights: DOACS.iter().map(|(_, w)| *w).collect(),
            drugs,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn pools_resolve_and_ids_are_distinct() {
        let formulary = Formulary::build();
        assert!(formulary.drugs.len() > 3000);
        assert_eq!(formulary.doacs.len(), formulary.doac_weights.len());
        let ids: HashSet<i64> = formulary.drugs.iter().map(|d| d.code_id).collect();
        assert_eq!(ids.len(), formulary.drugs.len());
        for i in formulary.long_term.iter().chain(&formulary.acute_adult) {
            assert!(matches!(
                formulary.drugs[usize::from(*i)].unit,
                "tablet" | "capsule"
            ));
        }
    }
}
