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

use crate::synth::codelists::List;
use crate::synth::codes::{Catalogue, Observable, catalogue};
use crate::synth::conditions::{Condition, Profile};
use crate::synth::measurements::Panel;
use crate::synth::people::{Person, Sex};
use crate::synth::record::{
    Code, Encounter, Event, Mode, NONE, PatientRecord, Precision, Shape, Timeline, Unit,
};
use crate::synth::sampling::{Stream, between, chance, exponential, pick, unit};
use crate::synth::schedule::{Fate, date_of, day_number};

pub(super) const YEAR: f64 = 365.25;

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

/// The days a record covers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    /// First day events are recorded at this practice (electronic records from 2000).
    pub(super) start: i32,
    /// Last day an event may be dated.
    pub(super) end: i32,
    /// Last day an entry may be made.
    pub(super) entry_cap: i32,
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

/// Builds one timeline; its methods are spread over this module (diagnoses,
/// consultations, reviews), [`crate::synth::measurements`] and
/// [`crate::synth::medication`].
pub(super) struct Builder<'a> {
    pub(super) cat: &'static Catalogue,
    pub(super) rng: &'a mut Stream,
    ids: &'a mut u64,
    pub(super) tl: &'a mut Timeline,
    pub(super) person: &'a Person,
    pub(super) profile: &'a Profile,
    clinicians: u8,
    pub(super) window: Window,
}

impl Builder<'_> {
    pub(super) fn next_id(&mut self) -> u64 {
        *self.ids += 1;
        *self.ids
    }

    pub(super) fn clinician(&mut self) -> u8 {
        between(self.rng, 0, i32::from(self.clinicians) - 1) as u8
    }

    pub(super) fn minute(&mut self) -> u16 {
        between(self.rng, 8 * 60, 18 * 60 + 30) as u16
    }

    pub(super) fn age_on(&self, day: i32) -> f64 {
        self.person.age_on(day)
    }

    pub(super) fn in_window(&self, day: i32) -> bool {
        day >= self.window.start && day <= self.window.end
    }

    /// Entered `lag` days after `day`, but never after the entry cap.
    pub(super) fn entered(&self, day: i32, lag: i32) -> i32 {
        (day + lag).min(self.window.entry_cap).max(day)
    }

    pub(super) fn push_event(
        &mut self,
        day: i32,
        entered: i32,
        code: Code,
        encounter: u32,
    ) -> usize {
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

    pub(super) fn coded(&mut self, day: i32, concept: u16, encounter: u32) -> usize {
        self.push_event(day, day, Code::Concept(concept), encounter)
    }

    pub(super) fn measured(
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

    pub(super) fn encounter(&mut self, day: i32, mode: Mode, attended: bool) -> u32 {
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
}

/// Practice contacts a year (GP, nurse, pharmacist; face to face or by telephone) by
/// age and sex, times 1 + ¼ per long-term condition.
fn contacts_per_year(age: f64, sex: Sex, conditions: usize) -> f64 {
    // (upper age, female, male)
    const RATES: &[(f64, f64, f64)] = &[
        (5.0, 7.5, 7.5),
        (16.0, 3.3, 3.3),
        (30.0, 5.5, 2.8),
        (45.0, 5.5, 3.3),
        (65.0, 6.0, 6.0),
        (75.0, 8.8, 8.8),
        (85.0, 12.0, 12.0),
        (f64::INFINITY, 15.0, 15.0),
    ];
    let (_, female, male) = RATES
        .iter()
        .find(|(upper, _, _)| age < *upper)
        .expect("open-ended last band");
    let base = if sex == Sex::Female { female } else { male };
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
