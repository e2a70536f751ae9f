//! Prescriptions in a patient's timeline: acute antibacterial courses from
//! consultations, repeat medicines for long-term conditions (drawn from each
//! condition's own pool) and for age-related needs (issued every 28 or 56 days
//! until stopped), and a DOAC for most people with atrial fibrillation (from
//! December 2011).

use crate::synth::clinical::{Builder, YEAR};
use crate::synth::conditions::Condition;
use crate::synth::record::{Course, Issue};
use crate::synth::sampling::{between, chance, exponential, pick, weighted};
use crate::synth::schedule::{Fate, day_number};

impl Builder<'_> {
    pub(super) fn acute_course(&mut self, day: i32, age: f64) {
        let cat = self.cat;
        let drug = if age < 12.0 {
            *pick(self.rng, &cat.formulary.acute_child)
        } else {
            *pick(self.rng, &cat.formulary.acute_adult)
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
    pub(super) fn repeats(&mut self) {
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
                let drug = *pick(self.rng, cat.formulary.repeats_for(d.condition));
                let start = d.onset.max(self.window.start) + between(self.rng, 0, 90);
                self.repeat_course(drug, start, until, 0.35);
            }
            if d.condition == Condition::AtrialFibrillation && chance(self.rng, 0.8) {
                let drug = cat.formulary.doacs[weighted(self.rng, &cat.formulary.doac_weights)];
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
            // Most are PPIs, statins and the like; a few are antibacterial prophylaxis.
            let pool = if chance(self.rng, 0.1) {
                &self.cat.formulary.prophylaxis
            } else {
                &self.cat.formulary.general
            };
            let drug = *pick(self.rng, pool);
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
        } else if d.unit == "inhaler" {
            1
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
