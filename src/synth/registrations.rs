//! Registrations at member practices: when each record starts and ends (temporary
//! residents, deductions, deaths), earlier registrations elsewhere, and the two
//! records of a person who moves between member practices (the practice left
//! deregisters them on the day they move; the one joined starts then).

use crate::synth::people::{Person, YEAR};
use crate::synth::sampling::{Stream, between, chance, exponential, index};

/// Share of records that are temporary residents.
const TEMPORARY_SHARE: f64 = 0.01;
/// Share of regular records deducted (left the area) in the last eight years.
const DEDUCTED_SHARE: f64 = 0.07;
/// Practices outside the network that appear in TPP registration histories.
pub(crate) const ELSEWHERE_PRACTICES: usize = 12;
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegKind {
    Regular,
    Temporary,
}

/// Why a registration ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaving {
    Stays,
    Deducted,
    Died,
    /// Moved to another member practice.
    Moved,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveSide {
    From,
    To,
}

/// Links the two records of a person who moved between member practices.
#[derive(Debug, Clone, Copy)]
pub struct MoverLink {
    pub mover: u32,
    pub side: MoveSide,
    /// The other practice's index.
    pub other: u16,
}

/// Where an earlier registration was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriorOrg {
    /// A practice outside the network (index into `Network::elsewhere`).
    Elsewhere(u16),
    /// A member practice (index into `Network::practices`).
    Member(u16),
}

/// The registration before this one.
#[derive(Debug, Clone, Copy)]
pub struct Prior {
    pub org: PriorOrg,
    pub start: i32,
    pub end: i32,
}

/// One registration at a member practice: one patient record in its extracts.
#[derive(Debug, Clone)]
pub struct RecordPlan {
    pub person: u32,
    pub kind: RegKind,
    pub start: i32,
    /// The day the registration ended, if it has.
    pub end: Option<i32>,
    pub leaving: Leaving,
    pub mover: Option<MoverLink>,
    pub prior: Option<Prior>,
}

/// A registration start for someone not registered since birth: on average eleven
/// years ago, never before birth.
fn usual_start(rng: &mut Stream, person: &Person, as_of: i32) -> i32 {
    let years = exponential(rng, 11.0);
    (as_of - (years * YEAR) as i32)
        .max(person.dob + 14)
        .min(as_of - 2)
}

pub(crate) fn native_record(rng: &mut Stream, person: &Person, as_of: i32) -> RecordPlan {
    let mut plan = RecordPlan {
        person: person.number,
        kind: RegKind::Regular,
        start: 0,
        end: None,
        leaving: Leaving::Stays,
        mover: None,
        prior: None,
    };
    let age = person.age_on(as_of);
    if chance(rng, TEMPORARY_SHARE) {
        plan.kind = RegKind::Temporary;
        plan.start = between(rng, as_of - (3.0 * YEAR) as i32, as_of - 2).max(person.dob + 14);
        let end = plan.start + between(rng, 1, 90);
        if end < as_of - 1 {
            plan.end = Some(end);
            plan.leaving = Leaving::Deducted;
        }
    } else {
        let born_here = age < 1.0 || chance(rng, if age < 16.0 { 0.5 } else { 0.08 });
        plan.start = if born_here {
            (person.dob + between(rng, 7, 60)).min(as_of - 2)
        } else {
            usual_start(rng, person, as_of)
        };
        if chance(rng, DEDUCTED_SHARE) && plan.start + 60 < as_of - 2 {
            let earliest = (plan.start + 60).max(as_of - (8.0 * YEAR) as i32);
            plan.end = Some(between(rng, earliest, as_of - 2));
            plan.leaving = Leaving::Deducted;
        }
        if !born_here && chance(rng, 0.35) && plan.start - person.dob > 400 {
            let start = (plan.start - between(rng, 365, 3650)).max(person.dob + 7);
            let end = plan.start - between(rng, 0, 30);
            if end > start {
                plan.prior = Some(Prior {
                    org: PriorOrg::Elsewhere(index(rng, ELSEWHERE_PRACTICES) as u16),
                    start,
                    end,
                });
            }
        }
    }
    if let Some(death) = person.death {
        if death <= plan.start {
            plan.start = (death - between(rng, 60, 3650)).max(person.dob + 1);
            plan.prior = None;
        }
        if plan.end.is_none_or(|end| death < end) {
            plan.end = Some(death);
            plan.leaving = Leaving::Died;
        }
    }
    plan
}

/// The record left and the record joined by a person moving between member practices.
pub(crate) fn mover_records(
    rng: &mut Stream,
    person: &mut Person,
    as_of: i32,
    mover: u32,
    from: usize,
    to: usize,
) -> (RecordPlan, RecordPlan) {
    let start = usual_start(rng, person, as_of).min(as_of - 120);
    let moved = between(
        rng,
        (start + 90).max(as_of - (6.0 * YEAR) as i32),
        as_of - 20,
    );
    if person.death.is_some_and(|d| d <= moved + 60) {
        person.death = None;
    }
    let left = RecordPlan {
        person: person.number,
        kind: RegKind::Regular,
        start,
        end: Some(moved),
        leaving: Leaving::Moved,
        mover: Some(MoverLink {
            mover,
            side: MoveSide::From,
            other: to as u16,
        }),
        prior: None,
    };
    let joined = RecordPlan {
        person: person.number,
        kind: RegKind::Regular,
        start: (moved + between(rng, 0, 14)).min(as_of - 2),
        end: person.death,
        leaving: if person.death.is_some() {
            Leaving::Died
        } else {
            Leaving::Stays
        },
        mover: Some(MoverLink {
            mover,
            side: MoveSide::To,
            other: from as u16,
        }),
        prior: Some(Prior {
            org: PriorOrg::Member(from as u16),
            start,
            end: moved,
        }),
    };
    (left, joined)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::sampling::{Purpose, stream};
    use crate::synth::schedule::day_number;

    #[test]
    fn registrations_fit_within_lives() {
        let as_of = day_number(chrono::NaiveDate::from_ymd_opt(2026, 3, 31).unwrap());
        for number in 0..5000 {
            let mover = number % 10 == 0;
            let mut person = Person::draw(
                9,
                number,
                as_of,
                9_990_000_018,
                if mover { 2.0 } else { 0.08 },
            );
            let mut rng = stream(9, Purpose::Registration, u64::from(number), 0);
            let plans = if mover {
                let (a, b) = mover_records(&mut rng, &mut person, as_of, 0, 0, 1);
                vec![a, b]
            } else {
                vec![native_record(&mut rng, &person, as_of)]
            };
            for plan in plans {
                assert!(
                    plan.start >= person.dob && plan.start <= as_of - 2,
                    "{plan:?} {person:?}"
                );
                if let Some(end) = plan.end {
                    assert!(end > plan.start && end < as_of, "{plan:?}");
                }
                if let Some(death) = person.death {
                    assert!(plan.end.is_some_and(|e| e <= death), "{plan:?} {person:?}");
                }
                if let Some(prior) = plan.prior {
                    assert!(
                        prior.start >= person.dob
                            && prior.start < prior.end
                            && prior.end <= plan.start
                    );
                }
            }
        }
    }
}
