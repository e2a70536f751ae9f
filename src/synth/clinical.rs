//! Builds one patient's [`Timeline`] at one practice from their profile: diagnoses
//! (historical ones with partial dates), consultations with what gets coded in them,
//! annual long-term-condition reviews with their blood tests, NHS Health Checks, and
//! medication (acute antibacterial courses, monthly repeats, DOACs for most AF
//! patients).
//!
//! Invariants the rest of the generator relies on: every event is dated on or after
//! birth, on or before death, within the record's window (historical diagnoses
//! excepted: they are dated at onset and entered on registration); every entry day is
//! on or after its event day and no later than the record's last entry day; every
//! numeric value carries a unit phm recognises. Defects are injected afterwards.

use chrono::Datelike;

use crate::synth::codes::{Catalogue, List, Observable, catalogue};
use crate::synth::conditions::{Condition, Profile, Smoking};
use crate::synth::population::{Person, Sex};
use crate::synth::record::{
    Code, Course, Encounter, Event, Issue, Mode, NONE, PatientRecord, Precision, Shape, Timeline,
    Unit,
};
use crate::synth::sampling::{
    Stream, between, chance, exponential, normal, normal_in, pick, unit, weighted,
};
use crate::synth::schedule::{Fate, date_of, day_number};

const YEAR: f64 = 365.25;

/// Conditions reviewed once a year.
const REVIEWED: &[Condition] = &[
    Condition::Diabetes,
    Condition::Hypertension,
    Condition::Asthma,
    Condition::Copd,
    Condition::AtrialFibrillation,
    Condition::Ckd,
    Condition::Chd,
    Condition::Stroke,
    Condition::HeartFailure,
    Condition::Dementia,
    Condition::Epilepsy,
    Condition::LearningDisability,
    Condition::PeripheralArterialDisease,
];

/// Which tests a blood sample is sent for.
#[derive(Debug, Clone, Copy)]
struct Panel {
    renal: bool,
    lipids: bool,
    hba1c: bool,
    glucose: bool,
}

/// The days a record covers.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// First day events are recorded at this practice (electronic records from 2000).
    start: i32,
    /// Last day an event may be dated.
    end: i32,
    /// Last day an entry may be made.
    entry_cap: i32,
}

/// Fills `timeline` with `record`'s events, encounters and prescriptions. `ids` is
/// the practice's id counter; `clinicians` how many clinicians the practice has.
pub fn build(
    record: &PatientRecord<'_>,
    profile: &Profile,
    clinicians: u8,
    rng: &mut Stream,
    ids: &mut u64,
    timeline: &mut Timeline,
) {
    timeline.clear();
    let history_floor = day_number(chrono::NaiveDate::from_ymd_opt(2000, 1, 1).expect("valid"));
    let window = Window {
        start: record.plan.start.max(history_floor),
        end: record.last_event_day,
        entry_cap: record.last_entry_day,
    };
    let mut b = Builder {
        cat: catalogue(),
        rng,
        ids,
        tl: timeline,
        person: record.person,
        profile,
        clinicians,
        window,
    };
    b.diagnoses();
    if window.end >= window.start {
        b.consultations();
        b.reviews();
        b.health_checks();
        b.repeats();
    }
}

struct Builder<'a> {
    cat: &'static Catalogue,
    rng: &'a mut Stream,
    ids: &'a mut u64,
    tl: &'a mut Timeline,
    person: &'a Person,
    profile: &'a Profile,
    clinicians: u8,
    window: Window,
}

impl Builder<'_> {
    fn next_id(&mut self) -> u64 {
        *self.ids += 1;
        *self.ids
    }

    fn clinician(&mut self) -> u8 {
        between(self.rng, 0, i32::from(self.clinicians) - 1) as u8
    }

    fn minute(&mut self) -> u16 {
        between(self.rng, 8 * 60, 18 * 60 + 30) as u16
    }

    fn age_on(&self, day: i32) -> f64 {
        self.person.age_on(day)
    }

    fn in_window(&self, day: i32) -> bool {
        day >= self.window.start && day <= self.window.end
    }

    /// Entered `lag` days after `day`, but never after the entry cap.
    fn entered(&self, day: i32, lag: i32) -> i32 {
        (day + lag).min(self.window.entry_cap).max(day)
    }

    fn push_event(&mut self, day: i32, entered: i32, code: Code, encounter: u32) -> usize {
        let (minute, clinician) = match self.tl.encounters.get(encounter as usize) {
            Some(e) => (e.minute, e.clinician),
            None => (self.minute(), self.clinician()),
        };
        let precision = if encounter != NONE && chance(self.rng, 0.1) {
            Precision::DayTime
        } else {
            Precision::Day
        };
        let id = self.next_id();
        self.tl.events.push(Event {
            id,
            day,
            entered,
            minute,
            precision,
            code,
            value: None,
            unit: Unit::NONE,
            comparator: None,
            shape: Shape::Single,
            parent: NONE,
            encounter,
            clinician,
            problem: false,
            resolution: NONE,
            fate: Fate::new(0),
            defect: None,
        });
        self.tl.events.len() - 1
    }

    fn coded(&mut self, day: i32, concept: u16, encounter: u32) -> usize {
        self.push_event(day, day, Code::Concept(concept), encounter)
    }

    fn measured(
        &mut self,
        day: i32,
        entered: i32,
        concept: u16,
        value: f64,
        unit: Unit,
        encounter: u32,
    ) -> usize {
        let i = self.push_event(day, entered, Code::Concept(concept), encounter);
        let e = &mut self.tl.events[i];
        e.value = Some(value);
        e.unit = unit;
        i
    }

    fn encounter(&mut self, day: i32, mode: Mode, attended: bool) -> u32 {
        let minute = self.minute();
        let clinician = self.clinician();
        let (id, slot) = (self.next_id(), self.next_id());
        self.tl.encounters.push(Encounter {
            id,
            slot,
            day,
            minute,
            clinician,
            mode,
            attended,
            first: 0,
        });
        (self.tl.encounters.len() - 1) as u32
    }

    // Diagnoses ---------------------------------------------------------------

    /// Diagnoses and resolutions, frailty and palliative-care codes. Ones before the
    /// window are historical: dated at onset, often to the year or month only, and
    /// entered when the record was summarised after registration.
    fn diagnoses(&mut self) {
        for d in self.profile.diagnoses.clone() {
            if d.onset > self.window.end {
                continue;
            }
            let i = self.diagnosis_event(d.onset, d.code);
            self.tl.events[i].problem = true;
            if let Some((day, code)) = d.resolved.filter(|(day, _)| *day <= self.window.end) {
                let r = self.diagnosis_event(day, code);
                self.tl.events[i].resolution = r as u32;
            }
        }
        let extras = [self.profile.frailty, self.profile.palliative];
        for (code, day) in extras.into_iter().flatten() {
            if self.in_window(day) {
                self.coded(day, code, NONE);
            }
        }
    }

    fn diagnosis_event(&mut self, day: i32, concept: u16) -> usize {
        if day >= self.window.start {
            let encounter = self.encounter(day, Mode::Surgery, true);
            return self.coded(day, concept, encounter);
        }
        let precision = match unit(self.rng) {
            x if x < 0.35 => Precision::Year,
            x if x < 0.6 => Precision::YearMonth,
            _ => Precision::Day,
        };
        let padded = pad(day, precision);
        let (day, precision) = if padded >= self.person.dob {
            (padded, precision)
        } else {
            (day, Precision::Day)
        };
        let lag = between(self.rng, 0, 30);
        let entered = self.entered(self.window.start, lag);
        let i = self.push_event(day, entered, Code::Concept(concept), NONE);
        self.tl.events[i].precision = precision;
        i
    }

    // Consultations -----------------------------------------------------------

    /// Contacts with the practice, at a rate that rises with age and long-term
    /// conditions, and what is coded in them.
    fn consultations(&mut self) {
        let mut day = self.window.start;
        loop {
            let rate = contacts_per_year(
                self.age_on(day),
                self.person.sex,
                self.profile.active_count(day),
            ) * self.profile.utilisation;
            day += exponential(self.rng, YEAR / rate).max(1.0) as i32;
            if day > self.window.end {
                break;
            }
            self.consultation(day);
        }
    }

    fn consultation(&mut self, day: i32) {
        let age = self.age_on(day);
        let mode = match unit(self.rng) {
            x if x < 0.3 => Mode::Telephone,
            x if x < 0.3 + if age >= 80.0 { 0.12 } else { 0.01 } => Mode::Home,
            _ => Mode::Surgery,
        };
        let attended = mode == Mode::Telephone || !chance(self.rng, 0.05);
        let enc = self.encounter(day, mode, attended);
        if !attended {
            return;
        }
        let adult = age >= 18.0;
        let hypertensive = self.profile.active_on(Condition::Hypertension, day);
        if mode == Mode::Telephone && chance(self.rng, 0.6) {
            self.coded(
                day,
                self.cat.observable(Observable::TelephoneEncounter),
                enc,
            );
        }
        if adult && chance(self.rng, if hypertensive { 0.6 } else { 0.3 }) {
            self.blood_pressure(day, enc);
        }
        if chance(self.rng, 0.15) {
            self.anthropometry(day, enc);
        }
        if chance(self.rng, 0.12) {
            self.vital(day, enc, Observable::PulseRate);
        }
        if chance(self.rng, 0.1) {
            self.vital(day, enc, Observable::OxygenSaturation);
            self.vital(day, enc, Observable::RespiratoryRate);
        }
        if adult && chance(self.rng, 0.1) {
            self.smoking(day, enc);
        }
        self.problem_heading(day, enc);
        if self.profile.active_on(Condition::Asthma, day) && chance(self.rng, 0.05) {
            let code = *pick(self.rng, self.cat.list(List::Asthma));
            self.coded(day, code, enc);
        }
        let recent_depression = self
            .profile
            .diagnosis(Condition::Depression)
            .is_some_and(|d| d.active_on(day) && day - d.onset < 730);
        if recent_depression && chance(self.rng, 0.3) {
            let code = *pick(self.rng, self.cat.list(List::Depression));
            self.coded(day, code, enc);
        }
        let antibiotic = if age < 5.0 {
            0.12
        } else if age >= 65.0 {
            0.09
        } else {
            0.07
        };
        if chance(self.rng, antibiotic) {
            self.acute_course(day, age);
        }
        let chronic = self.profile.active_count(day) > 0;
        if adult && chance(self.rng, if chronic { 0.35 } else { 0.2 }) {
            let panel = Panel {
                renal: true,
                lipids: chance(self.rng, 0.4),
                hba1c: chance(self.rng, 0.3),
                glucose: chance(self.rng, 0.3),
            };
            let sampled = day + between(self.rng, 1, 10);
            self.bloods(sampled, panel);
        }
    }

    /// Most consultations of someone with an active long-term condition are filed
    /// under it, re-coding the problem (usually with its original code).
    fn problem_heading(&mut self, day: i32, enc: u32) {
        let active: Vec<(Condition, u16)> = self
            .profile
            .diagnoses
            .iter()
            .filter(|d| d.active_on(day))
            .map(|d| (d.condition, d.code))
            .collect();
        if active.is_empty() || !chance(self.rng, 0.6) {
            return;
        }
        let (condition, code) = *pick(self.rng, &active);
        let code = if chance(self.rng, 0.7) {
            code
        } else {
            *pick(self.rng, self.cat.list(condition_list(condition)))
        };
        self.coded(day, code, enc);
    }

    // Long-term condition care -------------------------------------------------

    /// Annual reviews of long-term conditions, with bloods beforehand and interim
    /// checks half-way through the year.
    fn reviews(&mut self) {
        let first_onset = self
            .profile
            .diagnoses
            .iter()
            .filter(|d| REVIEWED.contains(&d.condition))
            .map(|d| d.onset)
            .min();
        let Some(onset) = first_onset else { return };
        let mut day = onset.max(self.window.start) + between(self.rng, 30, 200);
        while day <= self.window.end {
            if REVIEWED.iter().any(|c| self.profile.active_on(*c, day)) {
                self.annual_review(day);
                let interim = day + between(self.rng, 160, 200);
                self.interim_checks(interim);
            }
            day += between(self.rng, 330, 400);
        }
    }

    fn annual_review(&mut self, day: i32) {
        let active = |c| self.profile.active_on(c, day);
        let diabetic = active(Condition::Diabetes);
        let vascular = [
            Condition::Diabetes,
            Condition::Chd,
            Condition::Stroke,
            Condition::Hypertension,
            Condition::Ckd,
        ]
        .iter()
        .any(|c| active(*c));
        let asthmatic = active(Condition::Asthma);
        let on_repeats = self
            .profile
            .diagnoses
            .iter()
            .any(|d| d.repeats > 0 && d.active_on(day));
        let bloods = day - between(self.rng, 7, 14);
        if bloods >= self.window.start {
            let glucose = chance(self.rng, 0.3);
            self.bloods(
                bloods,
                Panel {
                    renal: true,
                    lipids: vascular,
                    hba1c: diabetic,
                    glucose,
                },
            );
        }
        let invite = day - between(self.rng, 21, 35);
        if diabetic && invite >= self.window.start && chance(self.rng, 0.6) {
            let code = *pick(self.rng, self.cat.list(List::DiabetesInvite));
            self.coded(invite, code, NONE);
        }
        let enc = self.encounter(day, Mode::Surgery, true);
        self.blood_pressure(day, enc);
        if chance(self.rng, 0.7) {
            self.anthropometry(day, enc);
        }
        if chance(self.rng, 0.5) {
            self.smoking(day, enc);
        }
        if on_repeats && chance(self.rng, 0.85) {
            let code = *pick(self.rng, self.cat.list(List::MedicationReview));
            self.coded(day, code, enc);
        }
        if asthmatic && chance(self.rng, 0.8) {
            let code = *pick(self.rng, self.cat.list(List::AsthmaReview));
            self.coded(day, code, enc);
        }
    }

    fn interim_checks(&mut self, day: i32) {
        if day > self.window.end {
            return;
        }
        let active = |c| self.profile.active_on(c, day);
        if REVIEWED.iter().any(|c| active(*c)) && chance(self.rng, 0.8) {
            let hba1c = active(Condition::Diabetes);
            let lipids = chance(self.rng, 0.3);
            self.bloods(
                day,
                Panel {
                    renal: true,
                    lipids,
                    hba1c,
                    glucose: false,
                },
            );
        }
        if active(Condition::Hypertension) && chance(self.rng, 0.7) {
            let enc = self.encounter(day, Mode::Surgery, true);
            self.blood_pressure(day, enc);
        }
    }

    /// NHS Health Checks every five years for 40–74-year-olds without a long-term condition.
    fn health_checks(&mut self) {
        let from = (self.person.dob + (40.0 * YEAR) as i32).max(self.window.start);
        let until = (self.person.dob + (75.0 * YEAR) as i32).min(self.window.end);
        let mut day = from + between(self.rng, 0, 1800);
        while day <= until {
            if self.profile.active_count(day) == 0 && chance(self.rng, 0.5) {
                let sampled = day - between(self.rng, 5, 14);
                self.bloods(
                    sampled,
                    Panel {
                        renal: false,
                        lipids: true,
                        hba1c: true,
                        glucose: false,
                    },
                );
                let enc = self.encounter(day, Mode::Surgery, true);
                self.blood_pressure(day, enc);
                self.anthropometry(day, enc);
                self.smoking(day, enc);
            }
            day += between(self.rng, 1700, 1900);
        }
    }

    // Measurements -------------------------------------------------------------

    /// A blood-pressure reading: a parent observation with systolic and diastolic
    /// components (TPP writes only the components).
    fn blood_pressure(&mut self, day: i32, enc: u32) {
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

    fn anthropometry(&mut self, day: i32, enc: u32) {
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

    fn vital(&mut self, day: i32, enc: u32, observable: Observable) {
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

    fn smoking(&mut self, day: i32, enc: u32) {
        let observable = match self.profile.smoking {
            Smoking::Never => Observable::NeverSmoked,
            Smoking::Ex => Observable::ExSmoker,
            Smoking::Current => Observable::Smoker,
        };
        self.coded(day, self.cat.observable(observable), enc);
    }

    /// Laboratory results of a sample taken on `day`, entered one to three days later.
    fn bloods(&mut self, day: i32, panel: Panel) {
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
    fn test_code(&mut self, observable: Observable) -> u16 {
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

    // Medication ---------------------------------------------------------------

    fn acute_course(&mut self, day: i32, age: f64) {
        let cat = self.cat;
        let drug = if age < 12.0 {
            *pick(self.rng, &cat.acute_child)
        } else {
            *pick(self.rng, &cat.acute_adult)
        };
        let days = if chance(self.rng, 0.6) { 5 } else { 7 };
        let d = cat.drug(drug);
        let quantity = if d.unit == "ml" {
            100
        } else {
            u16::from(d.daily) * days
        };
        self.course(drug, day, false, days, quantity, None);
    }

    /// Repeat medicines for long-term conditions, issued every 28 (sometimes 56)
    /// days, and a DOAC for most people with atrial fibrillation.
    fn repeats(&mut self) {
        let cat = self.cat;
        let dec_2011 = day_number(chrono::NaiveDate::from_ymd_opt(2011, 12, 1).expect("valid"));
        for d in self.profile.diagnoses.clone() {
            let until = d
                .resolved
                .map_or(self.window.end, |(day, _)| day.min(self.window.end));
            for _ in 0..d.repeats {
                if !chance(self.rng, 0.9) {
                    continue;
                }
                let drug = *pick(self.rng, &cat.long_term);
                let start = d.onset.max(self.window.start) + between(self.rng, 0, 90);
                self.repeat_course(drug, start, until, 0.35);
            }
            if d.condition == Condition::AtrialFibrillation && chance(self.rng, 0.8) {
                let drug = cat.doacs[weighted(self.rng, &cat.doac_weights)];
                let start = d.onset.max(self.window.start).max(dec_2011) + between(self.rng, 0, 60);
                self.repeat_course(drug, start, until, 0.1);
            }
        }
        self.other_repeats();
    }

    /// Repeat medicines not tied to a coded condition (England averages about twenty
    /// items a person a year, most of them repeats, rising steeply with age): courses
    /// of a few years each, started at random through the window.
    fn other_repeats(&mut self) {
        let age = self.age_on(self.window.end);
        let per_year = match age {
            a if a < 18.0 => 0.05,
            a if a < 40.0 => 0.18,
            a if a < 60.0 => 0.4,
            a if a < 75.0 => 0.8,
            _ => 1.1,
        };
        let mut day = self.window.start;
        loop {
            day += exponential(self.rng, YEAR / per_year) as i32;
            if day > self.window.end {
                break;
            }
            let drug = *pick(self.rng, &self.cat.long_term);
            let until =
                (day + (exponential(self.rng, 4.0).max(0.25) * YEAR) as i32).min(self.window.end);
            self.repeat_course(drug, day, until, 0.0);
        }
    }

    fn repeat_course(&mut self, drug: u16, start: i32, until: i32, stop_chance: f64) {
        if start > until {
            return;
        }
        let stopped = chance(self.rng, stop_chance)
            .then(|| start + (exponential(self.rng, 5.0) * YEAR) as i32 + 28)
            .filter(|day| *day < until);
        let interval = if chance(self.rng, 0.8) { 28 } else { 56 };
        let d = self.cat.drug(drug);
        let quantity = if d.unit == "ml" {
            500
        } else {
            u16::from(d.daily) * interval
        };
        self.course(drug, start, true, interval, quantity, stopped);
        let course = self.tl.courses.len() - 1;
        let last = stopped.unwrap_or(until);
        let mut day = start + i32::from(interval) + between(self.rng, -3, 3);
        while day <= last {
            if !chance(self.rng, 0.04) {
                self.issue(course, day);
            }
            day += i32::from(interval) + between(self.rng, -3, 3);
        }
    }

    /// Adds a course and its first issue, on its start day.
    fn course(
        &mut self,
        drug: u16,
        start: i32,
        repeat: bool,
        days: u16,
        quantity: u16,
        stopped: Option<i32>,
    ) {
        let id = self.next_id();
        let clinician = self.clinician();
        let authorised = if repeat {
            *pick(self.rng, &[6u16, 12, 12, 13])
        } else {
            1
        };
        self.tl.courses.push(Course {
            id,
            drug,
            start,
            stopped,
            repeat,
            quantity,
            days,
            dosage: self.cat.drug(drug).daily,
            clinician,
            first_issue: self.tl.issues.len() as u32,
            issue_count: 0,
            authorised,
            first: 0,
        });
        let course = self.tl.courses.len() - 1;
        self.issue(course, start);
    }

    fn issue(&mut self, course: usize, day: i32) {
        let id = self.next_id();
        let minute = self.minute();
        let clinician = self.tl.courses[course].clinician;
        self.tl.issues.push(Issue {
            id,
            course: course as u32,
            day,
            minute,
            clinician,
            fate: Fate::new(0),
            defect: None,
        });
        self.tl.courses[course].issue_count += 1;
    }
}

/// Practice contacts a year (GP, nurse, pharmacist; face to face or by telephone) by
/// age and sex, times 1 + ¼ per long-term condition.
fn contacts_per_year(age: f64, sex: Sex, conditions: usize) -> f64 {
    let female = sex == Sex::Female;
    let base = match age {
        a if a < 5.0 => 7.0,
        a if a < 16.0 => 3.0,
        a if a < 30.0 => {
            if female {
                5.0
            } else {
                2.5
            }
        }
        a if a < 45.0 => {
            if female {
                5.0
            } else {
                3.0
            }
        }
        a if a < 65.0 => 5.5,
        a if a < 75.0 => 8.0,
        a if a < 85.0 => 11.0,
        _ => 14.0,
    };
    base * (1.0 + 0.25 * conditions as f64)
}

/// The day a partial date is padded to (1 January; 1st of the month).
pub fn pad(day: i32, precision: Precision) -> i32 {
    let date = date_of(day);
    let padded = match precision {
        Precision::Year => date.with_ordinal(1),
        Precision::YearMonth => date.with_day(1),
        _ => Some(date),
    };
    day_number(padded.expect("the 1st exists"))
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The code list a condition is diagnosed with.
fn condition_list(condition: Condition) -> List {
    match condition {
        Condition::Diabetes => List::Diabetes,
        Condition::Hypertension => List::Hypertension,
        Condition::Asthma => List::Asthma,
        Condition::Copd => List::Copd,
        Condition::AtrialFibrillation => List::AtrialFibrillation,
        Condition::Ckd => List::Ckd,
        Condition::Chd => List::Chd,
        Condition::Stroke => List::Stroke,
        Condition::Dementia => List::Dementia,
        Condition::Depression => List::Depression,
        Condition::HeartFailure => List::HeartFailure,
        Condition::Epilepsy => List::Epilepsy,
        Condition::LearningDisability => List::LearningDisability,
        Condition::PeripheralArterialDisease => List::PeripheralArterialDisease,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn padding() {
        let d = |y, m, dd| day_number(NaiveDate::from_ymd_opt(y, m, dd).unwrap());
        let cases = [
            (Precision::Year, d(1999, 5, 17), d(1999, 1, 1)),
            (Precision::YearMonth, d(1999, 5, 17), d(1999, 5, 1)),
            (Precision::Day, d(1999, 5, 17), d(1999, 5, 17)),
        ];
        for (precision, day, expected) in cases {
            assert_eq!(pad(day, precision), expected, "{precision:?}");
        }
    }

    #[test]
    fn contact_rates_rise_with_age_and_conditions() {
        assert!(contacts_per_year(80.0, Sex::Male, 0) > contacts_per_year(40.0, Sex::Male, 0));
        assert!(contacts_per_year(40.0, Sex::Male, 2) > contacts_per_year(40.0, Sex::Male, 0));
    }
}
