//! The dm+d products the generator prescribes: every product of the DOAC,
//! antibacterial and chronic-medicine fixtures (so `Coding_DrugCode` can list
//! them all), and the pools drawn from for acute courses, the repeat medicines
//! of each long-term condition, other long-term repeats and anticoagulation.
//!
//! The chronic-medicine fixture is a selection of real VMPs (statins, ACE
//! inhibitors, ARBs, calcium channel blockers, beta blockers, thiazides, oral
//! antidiabetics, PPIs, inhalers). It has no antidepressants, antiepileptics or
//! dementia medicines, so those conditions draw from the general pool.

use std::collections::{BTreeMap, HashSet};

use crate::synth::codelists::{ANTIBACTERIAL_FILE, CHRONIC_FILE, DOAC_FILE, code_term_rows};
use crate::synth::codes::stable_id;
use crate::synth::conditions::Condition;

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

/// Antibacterials prescribed long term (prophylaxis).
const PROPHYLAXIS: &[&str] = &[
    "Nitrofurantoin 50mg tablets",
    "Trimethoprim 100mg tablets",
    "Doxycycline 100mg capsules",
    "Lymecycline 408mg capsules",
    "Azithromycin 250mg tablets",
    "Phenoxymethylpenicillin 250mg tablets",
    "Rifaximin 550mg tablets",
    "Methenamine hippurate 1g tablets",
];

/// Repeat medicines for each long-term condition (dm+d VMP terms). A condition
/// not listed draws from [`GENERAL`].
const FOR_CONDITION: &[(Condition, &[&str])] = &[
    (
        Condition::Diabetes,
        &[
            "Metformin 500mg tablets",
            "Metformin 850mg tablets",
            "Metformin 500mg modified-release tablets",
            "Gliclazide 80mg tablets",
            "Gliclazide 30mg modified-release tablets",
            "Sitagliptin 100mg tablets",
            "Linagliptin 5mg tablets",
            "Dapagliflozin 10mg tablets",
            "Empagliflozin 10mg tablets",
            "Atorvastatin 20mg tablets",
        ],
    ),
    (
        Condition::Hypertension,
        &[
            "Amlodipine 5mg tablets",
            "Amlodipine 10mg tablets",
            "Felodipine 5mg modified-release tablets",
            "Lercanidipine 10mg tablets",
            "Ramipril 2.5mg capsules",
            "Ramipril 5mg capsules",
            "Ramipril 10mg capsules",
            "Lisinopril 10mg tablets",
            "Lisinopril 20mg tablets",
            "Perindopril erbumine 4mg tablets",
            "Enalapril 10mg tablets",
            "Losartan 50mg tablets",
            "Losartan 100mg tablets",
            "Candesartan 8mg tablets",
            "Candesartan 16mg tablets",
            "Irbesartan 150mg tablets",
            "Bendroflumethiazide 2.5mg tablets",
            "Indapamide 2.5mg tablets",
            "Indapamide 1.5mg modified-release tablets",
            "Atenolol 50mg tablets",
        ],
    ),
    (
        Condition::Asthma,
        &[
            "Salbutamol 100micrograms/dose inhaler CFC free",
            "Salbutamol 100micrograms/dose breath actuated inhaler CFC free",
            "Beclometasone 100micrograms/dose inhaler CFC free",
            "Budesonide 200micrograms/dose dry powder inhaler",
            "Fluticasone 125micrograms/dose inhaler CFC free",
            "Beclometasone 100micrograms/dose / Formoterol 6micrograms/dose inhaler CFC free",
            "Budesonide 200micrograms/dose / Formoterol 6micrograms/dose dry powder inhaler",
        ],
    ),
    (
        Condition::Copd,
        &[
            "Salbutamol 100micrograms/dose inhaler CFC free",
            "Salbutamol 100micrograms/dose breath actuated inhaler CFC free",
            "Beclometasone 100micrograms/dose / Formoterol 6micrograms/dose inhaler CFC free",
            "Budesonide 200micrograms/dose / Formoterol 6micrograms/dose dry powder inhaler",
            "Fluticasone 125micrograms/dose / Salmeterol 25micrograms/dose inhaler CFC free",
        ],
    ),
    (
        Condition::AtrialFibrillation,
        &[
            "Bisoprolol 1.25mg tablets",
            "Bisoprolol 2.5mg tablets",
            "Bisoprolol 5mg tablets",
            "Bisoprolol 10mg tablets",
        ],
    ),
    (
        Condition::Ckd,
        &[
            "Ramipril 2.5mg capsules",
            "Ramipril 5mg capsules",
            "Losartan 50mg tablets",
            "Candesartan 8mg tablets",
            "Atorvastatin 20mg tablets",
        ],
    ),
    (
        Condition::Chd,
        &[
            "Atorvastatin 40mg tablets",
            "Atorvastatin 80mg tablets",
            "Rosuvastatin 10mg tablets",
            "Bisoprolol 2.5mg tablets",
            "Bisoprolol 5mg tablets",
            "Ramipril 2.5mg capsules",
            "Ramipril 5mg capsules",
        ],
    ),
    (
        Condition::Stroke,
        &[
            "Atorvastatin 20mg tablets",
            "Atorvastatin 40mg tablets",
            "Atorvastatin 80mg tablets",
            "Simvastatin 40mg tablets",
            "Amlodipine 5mg tablets",
            "Ramipril 5mg capsules",
        ],
    ),
    (
        Condition::HeartFailure,
        &[
            "Bisoprolol 1.25mg tablets",
            "Bisoprolol 2.5mg tablets",
            "Bisoprolol 5mg tablets",
            "Ramipril 2.5mg capsules",
            "Ramipril 5mg capsules",
            "Candesartan 8mg tablets",
            "Candesartan 16mg tablets",
            "Dapagliflozin 10mg tablets",
            "Empagliflozin 10mg tablets",
        ],
    ),
    (
        Condition::PeripheralArterialDisease,
        &[
            "Atorvastatin 80mg tablets",
            "Simvastatin 40mg tablets",
            "Rosuvastatin 10mg tablets",
        ],
    ),
];

/// Repeat medicines not tied to a condition the generator codes: PPIs,
/// primary-prevention statins and a few others.
const GENERAL: &[&str] = &[
    "Omeprazole 10mg gastro-resistant capsules",
    "Omeprazole 20mg gastro-resistant capsules",
    "Lansoprazole 15mg gastro-resistant capsules",
    "Lansoprazole 30mg gastro-resistant capsules",
    "Esomeprazole 20mg gastro-resistant tablets",
    "Pantoprazole 40mg gastro-resistant tablets",
    "Atorvastatin 10mg tablets",
    "Atorvastatin 20mg tablets",
    "Simvastatin 20mg tablets",
    "Simvastatin 40mg tablets",
    "Pravastatin 40mg tablets",
    "Propranolol 40mg tablets",
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
    /// Antibacterials taken long term.
    pub prophylaxis: Vec<u16>,
    /// Repeat medicines of each condition that has its own.
    pub for_condition: Vec<(Condition, Vec<u16>)>,
    /// Other long-term repeats.
    pub general: Vec<u16>,
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
            prophylaxis: pool(PROPHYLAXIS),
            for_condition: FOR_CONDITION
                .iter()
                .map(|(c, terms)| (*c, pool(terms)))
                .collect(),
            general: pool(GENERAL),
            doacs: DOACS.iter().map(|(t, _)| index(t)).collect(),
            doac_weights: DOACS.iter().map(|(_, w)| *w).collect(),
            drugs,
        }
    }

    /// The pool a condition's repeat medicines are drawn from.
    pub fn repeats_for(&self, condition: Condition) -> &[u16] {
        self.for_condition
            .iter()
            .find(|(c, _)| *c == condition)
            .map_or(&self.general, |(_, pool)| pool)
    }
}

/// The dm+d products of the DOAC, antibacterial and chronic-medicine fixtures,
/// sorted by dm+d id.
fn drug_rows() -> Vec<Drug> {
    let mut products: BTreeMap<i64, String> = BTreeMap::new();
    for text in [DOAC_FILE, ANTIBACTERIAL_FILE, CHRONIC_FILE] {
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
            ("inhaler", _) if self.term.starts_with("Salbutamol") => "Two puffs when required",
            ("inhaler", _) => "Two puffs twice a day",
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
    let unit = if lower.contains("inhaler") {
        "inhaler"
    } else if lower.contains("capsule") {
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
        || lower.starts_with("metformin 500mg tablets")
        || lower.starts_with("metformin 850mg")
        || lower.starts_with("gliclazide 80mg")
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
            ("Metformin 500mg tablets", ("tablet", 2)),
            ("Metformin 500mg modified-release tablets", ("tablet", 1)),
            ("Ramipril 5mg capsules", ("capsule", 1)),
            (
                "Budesonide 200micrograms/dose dry powder inhaler",
                ("inhaler", 1),
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
        for i in formulary.prophylaxis.iter().chain(&formulary.acute_adult) {
            assert!(matches!(
                formulary.drugs[usize::from(*i)].unit,
                "tablet" | "capsule"
            ));
        }
        // Every condition's pool and the general pool are the chronic
        // fixture's oral solid doses and inhalers.
        let chronic: HashSet<i64> = code_term_rows(CHRONIC_FILE).iter().map(|r| r.0).collect();
        let pools = formulary.for_condition.iter().map(|(_, p)| p);
        for i in pools.chain([&formulary.general]).flatten() {
            let d = &formulary.drugs[usize::from(*i)];
            assert!(chronic.contains(&d.dmd), "{} is not in the fixture", d.term);
            assert!(
                matches!(d.unit, "tablet" | "capsule" | "inhaler"),
                "{}",
                d.term
            );
        }
        // Conditions without a pool of their own fall back to the general one.
        assert_eq!(
            formulary.repeats_for(Condition::Dementia),
            formulary.general.as_slice()
        );
        assert_ne!(
            formulary.repeats_for(Condition::Diabetes),
            formulary.general.as_slice()
        );
    }
}
