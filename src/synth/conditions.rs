//! Long-term conditions and the per-person clinical profile.
//!
//! Each condition has an age-banded probability of ever being diagnosed, chosen so
//! that prevalence in a population with England's age structure comes out close to
//! QOF registers (2023/24, rounded): diabetes ~7% of adults, hypertension ~14%,
//! asthma ~6.5%, COPD ~2%, AF ~2%, CKD 3–5 ~4% of adults, CHD ~3%, stroke/TIA ~1.8%,
//! dementia ~0.8%, depression ~13% of adults, heart failure ~1%. Some diagnoses are
//! later resolved (DMRES_COD, HYPRES_COD, ASTRES_COD, DEPRES_COD).
//!
//! A profile depends only on the person (its stream is keyed by the person number),
//! so a person registered at two practices has the same conditions at both.

use crate::synth::codelists::List;
use crate::synth::codes::catalogue;
use crate::synth::people::{Person, Sex};
use crate::synth::sampling::{Purpose, Stream, between, chance, normal_in, pick, stream, unit};
use crate::synth::schedule::day_number;

const YEAR: f64 = 365.25;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Condition {
    Diabetes,
    Hypertension,
    Asthma,
    Copd,
    AtrialFibrillation,
    Ckd,
    Chd,
    Stroke,
    Dementia,
    Depression,
    HeartFailure,
    Epilepsy,
    LearningDisability,
    PeripheralArterialDisease,
}

/// Age bands of [`Spec::ever`]: 0–16, 17–39, 40–59, 60–74, 75–84, 85+.
const BAND_LOWER: [f64; 6] = [0.0, 17.0, 40.0, 60.0, 75.0, 85.0];

struct Spec {
    condition: Condition,
    codes: List,
    resolved: Option<List>,
    /// Codes most diagnoses use, if present in the list (the rest draw uniformly).
    preferred: &'static [i64],
    min_age: f64,
    /// Probability of ever being diagnosed, by age band (age at death or as-of date).
    ever: [f64; 6],
    /// Share of diagnoses later resolved.
    resolve: f64,
    /// Onset at most this many years before the reference date.
    span: f64,
    /// Repeat medicines a diagnosed patient usually takes for it.
    repeats: u8,
}

const SPECS: &[Spec] = &[
    Spec {
        condition: Condition::Diabetes,
        codes: List::Diabetes,
        resolved: Some(List::DiabetesResolved),
        preferred: &[44054006],
        min_age: 1.0,
        ever: [0.002, 0.015, 0.065, 0.15, 0.19, 0.17],
        resolve: 0.04,
        span: 25.0,
        repeats: 3,
    },
    Spec {
        condition: Condition::Hypertension,
        codes: List::Hypertension,
        resolved: Some(List::HypertensionResolved),
        preferred: &[38341003, 59621000],
        min_age: 18.0,
        ever: [0.0, 0.025, 0.14, 0.36, 0.52, 0.58],
        resolve: 0.04,
        span: 30.0,
        repeats: 2,
    },
    Spec {
        condition: Condition::Asthma,
        codes: List::Asthma,
        resolved: Some(List::AsthmaResolved),
        preferred: &[195967001],
        min_age: 3.0,
        ever: [0.055, 0.075, 0.075, 0.08, 0.08, 0.07],
        resolve: 0.12,
        span: 40.0,
        repeats: 2,
    },
    Spec {
        condition: Condition::Copd,
        codes: List::Copd,
        resolved: None,
        preferred: &[13645005],
        min_age: 35.0,
        ever: [0.0, 0.0, 0.015, 0.055, 0.085, 0.08],
        resolve: 0.0,
        span: 20.0,
        repeats: 2,
    },
    Spec {
        condition: Condition::AtrialFibrillation,
        codes: List::AtrialFibrillation,
        resolved: None,
        preferred: &[49436004],
        min_age: 25.0,
        ever: [0.0, 0.001, 0.007, 0.04, 0.11, 0.2],
        resolve: 0.0,
        span: 15.0,
        repeats: 1,
    },
    Spec {
        condition: Condition::Ckd,
        codes: List::Ckd,
        resolved: None,
        preferred: &[433144002, 700378005, 700379002],
        min_age: 18.0,
        ever: [0.0, 0.002, 0.015, 0.065, 0.18, 0.33],
        resolve: 0.0,
        span: 12.0,
        repeats: 1,
    },
    Spec {
        condition: Condition::Chd,
        codes: List::Chd,
        resolved: None,
        preferred: &[53741008, 22298006],
        min_age: 30.0,
        ever: [0.0, 0.001, 0.015, 0.075, 0.13, 0.17],
        resolve: 0.0,
        span: 25.0,
        repeats: 3,
    },
    Spec {
        condition: Condition::Stroke,
        codes: List::Stroke,
        resolved: None,
        preferred: &[230690007],
        min_age: 18.0,
        ever: [0.0, 0.002, 0.01, 0.04, 0.09, 0.13],
        resolve: 0.0,
        span: 20.0,
        repeats: 2,
    },
    Spec {
        condition: Condition::Dementia,
        codes: List::Dementia,
        resolved: None,
        preferred: &[52448006],
        min_age: 55.0,
        ever: [0.0, 0.0, 0.0, 0.008, 0.05, 0.17],
        resolve: 0.0,
        span: 8.0,
        repeats: 1,
    },
    Spec {
        condition: Condition::Depression,
        codes: List::Depression,
        resolved: Some(List::DepressionResolved),
        preferred: &[35489007],
        min_age: 16.0,
        ever: [0.0, 0.17, 0.19, 0.15, 0.12, 0.11],
        resolve: 0.25,
        span: 20.0,
        repeats: 1,
    },
    Spec {
        condition: Condition::HeartFailure,
        codes: List::HeartFailure,
        resolved: None,
        preferred: &[84114007],
        min_age: 30.0,
        ever: [0.0, 0.0, 0.003, 0.02, 0.06, 0.12],
        resolve: 0.0,
        span: 10.0,
        repeats: 2,
    },
    Spec {
        condition: Condition::Epilepsy,
        codes: List::Epilepsy,
        resolved: None,
        preferred: &[84757009],
        min_age: 1.0,
        ever: [0.005, 0.009, 0.009, 0.009, 0.009, 0.009],
        resolve: 0.0,
        span: 40.0,
        repeats: 1,
    },
    Spec {
        condition: Condition::LearningDisability,
        codes: List::LearningDisability,
        resolved: None,
        preferred: &[],
        min_age: 3.0,
        ever: [0.005, 0.005, 0.005, 0.005, 0.005, 0.005],
        resolve: 0.0,
        span: 60.0,
        repeats: 0,
    },
    Spec {
        condition: Condition::PeripheralArterialDisease,
        codes: List::PeripheralArterialDisease,
        resolved: None,
        preferred: &[],
        min_age: 40.0,
        ever: [0.0, 0.0, 0.003, 0.015, 0.03, 0.04],
        resolve: 0.0,
        span: 15.0,
        repeats: 1,
    },
];

/// A diagnosis of one condition.
#[derive(Debug, Clone, Copy)]
pub struct Diagnosis {
    pub condition: Condition,
    pub onset: i32,
    /// Concept coded at diagnosis.
    pub code: u16,
    pub resolved: Option<(i32, u16)>,
    /// Repeat medicines prescribed for it.
    pub repeats: u8,
}

impl Diagnosis {
    /// True when diagnosed and not resolved on `day`.
    pub fn active_on(&self, day: i32) -> bool {
        self.onset <= day && self.resolved.is_none_or(|(r, _)| r > day)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Smoking {
    Never,
    Ex,
    Current,
}

/// A person's conditions and physiological baselines.
#[derive(Debug, Clone)]
pub struct Profile {
    pub diagnoses: Vec<Diagnosis>,
    /// Frailty (MILDFRAIL/MODFRAIL/SEVFRAIL_COD concept) and the day it was assessed.
    pub frailty: Option<(u16, i32)>,
    /// Palliative care coded on this day (people who died).
    pub palliative: Option<(u16, i32)>,
    pub smoking: Smoking,
    /// Contacts with the practice relative to others of the same age (mean 1).
    pub utilisation: f64,
    pub systolic: f64,
    pub diastolic: f64,
    pub hba1c: f64,
    pub egfr: f64,
    /// eGFR recovered to ≥ 60 from this day (a few CKD patients).
    pub egfr_recovered: Option<i32>,
    pub cholesterol: f64,
    pub weight: f64,
    pub height: f64,
}

impl Profile {
    /// The profile of `person`, judged at the earlier of death and `as_of`.
    pub fn draw(seed: u64, person: &Person, as_of: i32) -> Profile {
        let mut rng = stream(seed, Purpose::Profile, u64::from(person.number), 0);
        let reference = person.death.unwrap_or(as_of).min(as_of - 1);
        let age = person.age_on(reference);
        let band = BAND_LOWER
            .iter()
            .rposition(|lower| age >= *lower)
            .unwrap_or(0);
        let diagnoses: Vec<Diagnosis> = SPECS
            .iter()
            .filter_map(|spec| {
                let diagnosed = age >= spec.min_age && chance(&mut rng, spec.ever[band]);
                diagnosed.then(|| diagnose(&mut rng, spec, person, reference, age))
            })
            .collect();
        let has = |c: Condition| diagnoses.iter().any(|d| d.condition == c);
        let adult = age >= 18.0;
        let male = person.sex == Sex::Male;
        let cat = catalogue();

        let frailty = (age >= 65.0)
            .then(|| frailty(&mut rng, person, reference))
            .flatten();
        let palliative = person
            .death
            .filter(|_| age >= 60.0 && chance(&mut rng, 0.4))
            .map(|death| {
                let day = (death - between(&mut rng, 14, 365)).max(person.dob + 1);
                (*pick(&mut rng, cat.list(List::Palliative)), day)
            });
        let smoking = match unit(&mut rng) {
            x if !adult || x < 0.55 => Smoking::Never,
            x if x < 0.86 => Smoking::Ex,
            _ => Smoking::Current,
        };
        let ckd = has(Condition::Ckd);
        let egfr = if ckd {
            normal_in(&mut rng, 42.0, 9.0, 12.0, 59.0)
        } else {
            normal_in(
                &mut rng,
                100.0 - 0.6 * (age - 30.0).max(0.0),
                10.0,
                61.0,
                125.0,
            )
        };
        let egfr_recovered = (ckd && chance(&mut rng, 0.08))
            .then(|| {
                diagnoses
                    .iter()
                    .find(|d| d.condition == Condition::Ckd)
                    .map(|d| d.onset)
            })
            .flatten()
            .map(|onset| between(&mut rng, onset + 180, (reference - 30).max(onset + 180)));
        let vascular = has(Condition::Chd) || has(Condition::Stroke) || has(Condition::Diabetes);
        Profile {
            frailty,
            palliative,
            smoking,
            utilisation: normal_in(&mut rng, 1.0, 0.35, 0.3, 2.5),
            systolic: normal_in(
                &mut rng,
                122.0 + 0.35 * (age - 40.0).max(0.0),
                11.0,
                95.0,
                170.0,
            ) + if has(Condition::Hypertension) {
                12.0
            } else {
                0.0
            },
            diastolic: normal_in(&mut rng, 77.0, 7.0, 55.0, 100.0),
            hba1c: if has(Condition::Diabetes) {
                normal_in(&mut rng, 58.0, 11.0, 40.0, 110.0)
            } else {
                normal_in(
                    &mut rng,
                    36.0 + 0.05 * (age - 40.0).max(0.0),
                    3.0,
                    28.0,
                    46.0,
                )
            },
            egfr,
            egfr_recovered,
            cholesterol: if vascular {
                normal_in(&mut rng, 4.3, 0.8, 2.5, 7.5)
            } else {
                normal_in(&mut rng, 5.2, 0.9, 3.0, 9.0)
            },
            weight: if male {
                normal_in(&mut rng, 85.0, 14.0, 48.0, 170.0)
            } else {
                normal_in(&mut rng, 72.0, 15.0, 40.0, 160.0)
            },
            height: if male {
                normal_in(&mut rng, 176.0, 7.0, 150.0, 205.0)
            } else {
                normal_in(&mut rng, 163.0, 6.5, 140.0, 190.0)
            },
            diagnoses,
        }
    }

    pub fn diagnosis(&self, condition: Condition) -> Option<&Diagnosis> {
        self.diagnoses.iter().find(|d| d.condition == condition)
    }

    /// True when `condition` is diagnosed and unresolved on `day`.
    pub fn active_on(&self, condition: Condition, day: i32) -> bool {
        self.diagnosis(condition).is_some_and(|d| d.active_on(day))
    }

    /// Long-term conditions active on `day`.
    pub fn active_count(&self, day: i32) -> usize {
        self.diagnoses.iter().filter(|d| d.active_on(day)).count()
    }
}

fn diagnose(rng: &mut Stream, spec: &Spec, person: &Person, reference: i32, age: f64) -> Diagnosis {
    let cat = catalogue();
    let years_before = unit(rng) * spec.span.min(age - spec.min_age);
    let earliest = person.dob + (spec.min_age * YEAR) as i32;
    let onset = (reference - (years_before * YEAR) as i32)
        .max(earliest)
        .min(reference);
    let codes = cat.list(spec.codes);
    let onset_age = person.age_on(onset);
    let code = if spec.condition == Condition::Diabetes {
        let snomed = if onset_age < 30.0 && chance(rng, 0.8) {
            46635009
        } else {
            44054006
        };
        if chance(rng, 0.75) {
            cat.find(snomed)
        } else {
            None
        }
    } else if !spec.preferred.is_empty() && chance(rng, 0.7) {
        cat.find(*pick(rng, spec.preferred))
    } else {
        None
    }
    .unwrap_or_else(|| *pick(rng, codes));
    let resolved = spec
        .resolved
        .filter(|_| chance(rng, spec.resolve) && reference - onset > 400)
        .map(|list| {
            (
                between(rng, onset + 365, reference),
                *pick(rng, cat.list(list)),
            )
        });
    Diagnosis {
        condition: spec.condition,
        onset,
        code,
        resolved,
        repeats: spec.repeats,
    }
}

fn frailty(rng: &mut Stream, person: &Person, reference: i32) -> Option<(u16, i32)> {
    let cat = catalogue();
    let list = match unit(rng) {
        x if x < 0.04 => List::SevereFrailty,
        x if x < 0.13 => List::ModerateFrailty,
        x if x < 0.31 => List::MildFrailty,
        _ => return None,
    };
    let earliest = (person.dob + (65.0 * YEAR) as i32)
        .max(day_number(chrono::NaiveDate::from_ymd_opt(2017, 4, 1)?));
    (earliest < reference).then(|| {
        (
            *pick(rng, cat.list(list)),
            between(rng, earliest, reference),
        )
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Current prevalence among living people of a pyramid-shaped population.
    pub(crate) fn prevalence(
        people: &[(Person, Profile)],
        as_of: i32,
        condition: Condition,
        min_age: f64,
    ) -> f64 {
        let eligible: Vec<&(Person, Profile)> = people
            .iter()
            .filter(|(p, _)| p.death.is_none() && p.age_on(as_of) >= min_age)
            .collect();
        let with = eligible
            .iter()
            .filter(|(_, profile)| profile.active_on(condition, as_of - 1))
            .count();
        with as f64 / eligible.len() as f64
    }

    #[test]
    fn every_spec_has_its_codes() {
        let cat = catalogue();
        for spec in SPECS {
            assert!(!cat.list(spec.codes).is_empty());
            for code in spec.preferred {
                assert!(
                    cat.list(spec.codes)
                        .contains(&cat.find(*code).expect("catalogued")),
                    "{code}"
                );
            }
        }
    }

    #[test]
    fn prevalence_is_close_to_english_primary_care() {
        let as_of = day_number(chrono::NaiveDate::from_ymd_opt(2026, 3, 31).unwrap());
        let cfg = crate::synth::SynthConfig {
            patients: 6000,
            practices: 1,
            ..crate::synth::tests::config(std::path::PathBuf::new())
        };
        let network = crate::synth::population::Network::plan(&cfg);
        let people: Vec<(Person, Profile)> = network
            .persons
            .iter()
            .map(|p| (p.clone(), Profile::draw(cfg.seed, p, as_of)))
            .collect();
        // (condition, minimum age, expected current prevalence)
        let cases = [
            (Condition::Diabetes, 17.0, 0.072),
            (Condition::Hypertension, 0.0, 0.14),
            (Condition::Asthma, 0.0, 0.064),
            (Condition::Copd, 0.0, 0.02),
            (Condition::AtrialFibrillation, 0.0, 0.02),
            (Condition::Ckd, 18.0, 0.042),
            (Condition::Chd, 0.0, 0.028),
            (Condition::Depression, 18.0, 0.13),
        ];
        for (condition, min_age, expected) in cases {
            let observed = prevalence(&people, as_of, condition, min_age);
            let tolerance = 0.3 * expected + 0.004;
            assert!(
                (observed - expected).abs() <= tolerance,
                "{condition:?}: observed {observed:.4}, expected {expected:.4} ± {tolerance:.4}"
            );
        }
    }
}
