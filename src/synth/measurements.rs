//! Measurements recorded in a patient's timeline: blood-pressure readings (a parent
//! with systolic and diastolic components), anthropometry, vital signs, smoking
//! status and laboratory panels (renal and bone profile, lipids, glucose, HbA1c).
//!
//! Values are drawn around the person's baselines ([`crate::synth::conditions::Profile`])
//! and always carry a unit phm recognises; eGFR above 90 is reported as "> 90", and
//! diabetic HbA1c before mid-2011 is sometimes in the legacy DCCT % unit.

use crate::synth::clinical::Builder;
use crate::synth::codelists::List;
use crate::synth::codes::Observable;
use crate::synth::conditions::{Condition, Smoking};
use crate::synth::record::{NONE, Shape, Unit};
use crate::synth::sampling::{between, chance, normal, normal_in, pick};
use crate::synth::schedule::day_number;

/// Which tests a blood sample is sent for.
#[derive(Debug, Clone, Copy)]
pub(super) struct Panel {
    pub(super) renal: bool,
    pub(super) lipids: bool,
    pub(super) hba1c: bool,
    pub(super) glucose: bool,
}

impl Builder<'_> {
    /// A blood-pressure reading: a parent observation with systolic and diastolic
    /// components (TPP writes only the components).
    pub(super) fn blood_pressure(&mut self, day: i32, enc: u32) {
        let cat = self.cat;
        let systolic = (self.profile.systolic + normal(self.rng, 0.0, 8.0))
            .round()
            .clamp(80.0, 230.0);
        let diastolic = (self.profile.diastolic + normal(self.rng, 0.0, 6.0))
            .round()
            .clamp(40.0, systolic - 15.0);
        let unit = if chance(self.rng, 0.75) {
            Unit::named("mmHg")
        } else {
            Unit::named("mm Hg")
        };
        let systolic_code = if chance(self.rng, 0.85) {
            cat.observable(Observable::SystolicBp)
        } else {
            *pick(self.rng, cat.list(List::SystolicBp))
        };
        let parent = self.coded(day, cat.observable(Observable::BloodPressure), enc);
        self.tl.events[parent].shape = Shape::BpParent;
        for (code, value) in [
            (systolic_code, systolic),
            (cat.observable(Observable::DiastolicBp), diastolic),
        ] {
            let i = self.measured(day, day, code, value, unit, enc);
            let precision = self.tl.events[parent].precision;
            let e = &mut self.tl.events[i];
            e.shape = Shape::BpComponent;
            e.parent = parent as u32;
            e.precision = precision;
        }
    }

    pub(super) fn anthropometry(&mut self, day: i32, enc: u32) {
        let age = self.age_on(day);
        let (weight, height) = if age >= 16.0 {
            (
                self.profile.weight + normal(self.rng, 0.0, 2.0),
                self.profile.height,
            )
        } else {
            (
                3.5 + 3.0 * age + normal(self.rng, 0.0, 1.0),
                50.0 + 6.5 * age.min(16.0),
            )
        };
        let weight = round1(weight.max(2.0));
        let weight_code = self.cat.observable(Observable::Weight);
        self.measured(day, day, weight_code, weight, Unit::named("kg"), enc);
        if chance(self.rng, 0.15) {
            let code = self.cat.observable(Observable::Height);
            self.measured(day, day, code, height.round(), Unit::named("cm"), enc);
        }
        if age >= 16.0 && chance(self.rng, 0.8) {
            let bmi = round1(weight / (height / 100.0).powi(2));
            let code = self.cat.observable(Observable::Bmi);
            self.measured(day, day, code, bmi, Unit::named("kg/m2"), enc);
        }
    }

    pub(super) fn vital(&mut self, day: i32, enc: u32, observable: Observable) {
        let (value, unit) = match observable {
            Observable::PulseRate => {
                let unit = if chance(self.rng, 0.8) { "/min" } else { "bpm" };
                (normal_in(self.rng, 74.0, 10.0, 40.0, 150.0).round(), unit)
            }
            Observable::RespiratoryRate => {
                (normal_in(self.rng, 16.0, 2.0, 8.0, 40.0).round(), "/min")
            }
            _ => (normal_in(self.rng, 97.0, 1.5, 85.0, 100.0).round(), "%"),
        };
        let code = self.cat.observable(observable);
        self.measured(day, day, code, value, Unit::named(unit), enc);
    }

    pub(super) fn smoking(&mut self, day: i32, enc: u32) {
        let observable = match self.profile.smoking {
            Smoking::Never => Observable::NeverSmoked,
            Smoking::Ex => Observable::ExSmoker,
            Smoking::Current => Observable::Smoker,
        };
        self.coded(day, self.cat.observable(observable), enc);
    }

    /// Laboratory results of a sample taken on `day`, entered one to three days later.
    pub(super) fn bloods(&mut self, day: i32, panel: Panel) {
        if !self.in_window(day) {
            return;
        }
        let lag = between(self.rng, 1, 3);
        let entered = self.entered(day, lag);
        let mmol = if chance(self.rng, 0.75) {
            Unit::named("mmol/L")
        } else {
            Unit::named("mmol/l")
        };
        let ckd = self.profile.active_on(Condition::Ckd, day);
        let diabetic = self.profile.active_on(Condition::Diabetes, day);
        let mut results: Vec<(Observable, f64, Unit)> = Vec::with_capacity(10);
        if panel.renal {
            let egfr = match self.profile.egfr_recovered {
                Some(from) if day >= from => normal(self.rng, 66.0, 4.0),
                _ => self.profile.egfr + normal(self.rng, 0.0, 4.0),
            };
            let egfr = egfr.clamp(5.0, 130.0).round();
            results.push((
                Observable::Sodium,
                round1(normal(self.rng, 139.0, 2.5)),
                mmol,
            ));
            results.push((
                Observable::Potassium,
                round1(normal_in(self.rng, 4.3, 0.4, 2.8, 6.5)),
                mmol,
            ));
            results.push((
                Observable::Urea,
                round1(normal_in(
                    self.rng,
                    if ckd { 9.0 } else { 5.5 },
                    1.5,
                    1.5,
                    30.0,
                )),
                mmol,
            ));
            results.push((
                Observable::Creatinine,
                (80.0 * 90.0 / egfr.max(8.0)).round(),
                Unit::named("umol/L"),
            ));
            let unit = if chance(self.rng, 0.8) {
                "mL/min/1.73m2"
            } else {
                "ml/min/1.73m2"
            };
            results.push((Observable::Egfr, egfr, Unit::named(unit)));
            let calcium = round2(normal_in(self.rng, 2.35, 0.08, 1.9, 3.0));
            results.push((Observable::Calcium, calcium, mmol));
            results.push((
                Observable::CorrectedCalcium,
                round2(calcium + normal(self.rng, 0.0, 0.04)),
                mmol,
            ));
        }
        if panel.lipids {
            let total = round1(self.profile.cholesterol + normal(self.rng, 0.0, 0.3));
            results.push((Observable::Cholesterol, total.max(1.5), mmol));
            let hdl = round1(normal_in(self.rng, 1.4, 0.3, 0.5, 3.0));
            results.push((Observable::Hdl, hdl, mmol));
            results.push((Observable::Ldl, round1((total * 0.6).max(0.5)), mmol));
            results.push((Observable::NonHdl, round1((total - hdl).max(0.5)), mmol));
            results.push((
                Observable::Triglycerides,
                round1(normal_in(self.rng, 1.6, 0.6, 0.4, 8.0)),
                mmol,
            ));
        }
        if panel.glucose {
            let glucose = if diabetic {
                normal_in(self.rng, 8.5, 2.0, 3.5, 25.0)
            } else {
                normal_in(self.rng, 5.2, 0.6, 3.5, 7.5)
            };
            results.push((Observable::Glucose, round1(glucose), mmol));
        }
        if panel.hba1c {
            let mmol_mol = (self.profile.hba1c
                + normal(self.rng, 0.0, if diabetic { 6.0 } else { 2.0 }))
            .clamp(20.0, 150.0);
            let legacy = diabetic
                && day < day_number(chrono::NaiveDate::from_ymd_opt(2011, 6, 1).expect("valid"));
            if legacy && chance(self.rng, 0.5) {
                results.push((
                    Observable::Hba1cDcct,
                    round1(mmol_mol / 10.929 + 2.15),
                    Unit::named("%"),
                ));
            } else {
                results.push((
                    Observable::Hba1cIfcc,
                    mmol_mol.round(),
                    Unit::named("mmol/mol"),
                ));
            }
        }
        for (observable, value, unit) in results {
            let concept = self.test_code(observable);
            let i = self.measured(day, entered, concept, value, unit, NONE);
            if observable == Observable::Egfr && value > 90.0 {
                self.tl.events[i].value = Some(90.0);
                self.tl.events[i].comparator = Some(">");
            }
        }
    }

    /// The code a laboratory reports a test under: mostly the usual one, sometimes
    /// another from the test's code list.
    pub(super) fn test_code(&mut self, observable: Observable) -> u16 {
        let alternatives: &[i64] = match observable {
            Observable::Egfr => &[1020291000000106, 857971000000104, 963621000000102],
            Observable::Cholesterol => &[1017161000000104, 850981000000101],
            Observable::Hba1cIfcc => &[1049321000000109],
            _ => &[],
        };
        if !alternatives.is_empty() && chance(self.rng, 0.25) {
            let snomed = *pick(self.rng, alternatives);
            return self
                .cat
                .find(snomed)
                .expect("alternative test codes are catalogued");
        }
        self.cat.observable(observable)
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
