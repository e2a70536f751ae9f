//! The delivery schedule: one bulk, then weekly deltas, the last extracted at the
//! configured as-of date at 02:00 (EXTRACTS.md: "Each extract carries only changed
//! rows").
//!
//! A row belongs to the first delivery extracted after the day it was entered. Its
//! [`Fate`] says which later deliveries change it (EMIS: same key, higher
//! `ProcessingId`, sometimes twice in one file; TPP: same `RowIdentifier`) or delete
//! it (EMIS `Deleted=true`, TPP sparse `RemovedData=1`).
//!
//! EMIS `ProcessingId`s increase across deliveries: the bulk spans
//! [`BULK_RUNS`] processing runs, each delta [`DELTA_RUNS`] (one a day).

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime};

use crate::synth::record::Timeline;
use crate::synth::sampling::{Stream, chance, index};

/// Processing runs (distinct `ProcessingId`s) the bulk spans.
pub const BULK_RUNS: i64 = 42;
/// Processing runs each delta spans.
pub const DELTA_RUNS: i64 = 7;
/// Days between deliveries.
pub const DELIVERY_INTERVAL_DAYS: i32 = 7;

/// Marks "no such delivery" in a [`Fate`].
pub const NEVER: u8 = u8::MAX;

/// Probability, per later delta, that a row delivered earlier is changed.
const CHANGE_PER_DELTA: f64 = 0.0005;
/// Probability, per later delta, that a row delivered earlier is deleted.
const DELETE_PER_DELTA: f64 = 0.0003;
/// Probability that a row first delivered in a delta is edited within the same week,
/// so the delta carries it twice.
const EDITED_SAME_WEEK: f64 = 0.02;
/// Share of changes that arrive as two versions in one file.
const CHANGED_TWICE: f64 = 0.3;

/// Days since 1970-01-01 (Arrow `date32`).
pub fn day_number(date: NaiveDate) -> i32 {
    date.num_days_from_ce() - 719_163
}

/// The date of a day number.
pub fn date_of(day: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(day + 719_163).expect("day in chrono's range")
}

/// Microseconds since the epoch at `minute` past midnight of `day` (TPP date-times).
pub fn micros(day: i32, minute: u16) -> i64 {
    (i64::from(day) * 1440 + i64::from(minute)) * 60_000_000
}

/// One delivery.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub index: u8,
    /// The day it was extracted; rows entered before this day are in it or earlier.
    pub day: i32,
    pub extracted_at: NaiveDateTime,
    /// EMIS `ProcessingId` range of the delivery.
    pub first_pid: i64,
    pub last_pid: i64,
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub deliveries: Vec<Delivery>,
}

impl Schedule {
    /// A bulk and `deltas` deltas, the last extracted on `as_of` at 02:00.
    pub fn new(as_of: NaiveDate, deltas: usize) -> Schedule {
        let last = day_number(as_of);
        let deliveries = (0..=deltas)
            .map(|k| {
                let day = last - DELIVERY_INTERVAL_DAYS * (deltas - k) as i32;
                let (first_pid, last_pid) = if k == 0 {
                    (1, BULK_RUNS)
                } else {
                    let first = BULK_RUNS + DELTA_RUNS * (k as i64 - 1) + 1;
                    (first, first + DELTA_RUNS - 1)
                };
                Delivery {
                    index: k as u8,
                    day,
                    extracted_at: date_of(day)
                        .and_time(NaiveTime::from_hms_opt(2, 0, 0).expect("valid")),
                    first_pid,
                    last_pid,
                }
            })
            .collect();
        Schedule { deliveries }
    }

    pub fn count(&self) -> usize {
        self.deliveries.len()
    }

    /// Index of the last delivery.
    pub fn last(&self) -> u8 {
        (self.deliveries.len() - 1) as u8
    }

    pub fn get(&self, k: u8) -> &Delivery {
        &self.deliveries[usize::from(k)]
    }

    /// The last day anything can be entered and still be delivered.
    pub fn last_entry_day(&self) -> i32 {
        self.get(self.last()).day - 1
    }

    /// The delivery carrying a row entered on `entered` (which must be before the
    /// last delivery's day).
    pub fn delivery_of(&self, entered: i32) -> u8 {
        let k = self.deliveries.partition_point(|d| d.day <= entered);
        assert!(
            k < self.deliveries.len(),
            "entry on day {entered} is after the last delivery"
        );
        k as u8
    }

    /// True when something that happened on `day` is known to delivery `k`.
    pub fn knows(&self, day: Option<i32>, k: u8) -> bool {
        day.is_some_and(|d| d < self.get(k).day)
    }

    /// EMIS extract id: `yyyyMMddHHmmss_<first>-<last ProcessingId>`; sorts in delivery order.
    pub fn emis_extract_id(&self, k: u8) -> String {
        let d = self.get(k);
        format!(
            "{}_{:06}-{:06}",
            d.extracted_at.format("%Y%m%d%H%M%S"),
            d.first_pid,
            d.last_pid
        )
    }

    /// TPP batch folder name: `yyyyMMdd_HHmm`.
    pub fn tpp_extract_id(&self, k: u8) -> String {
        self.get(k).extracted_at.format("%Y%m%d_%H%M").to_string()
    }

    /// The EMIS `ProcessingId` of a row version carried by delivery `k`.
    pub fn processing_id(&self, k: u8, version: Version, id: u64) -> i64 {
        let d = self.get(k);
        let runs = d.last_pid - d.first_pid + 1;
        match version {
            Version::Original => d.first_pid + (id % (runs - 2) as u64) as i64,
            Version::Intermediate => d.last_pid - 1,
            Version::Final | Version::Deleted => d.last_pid,
        }
    }
}

/// A version of a row as one delivery carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// As first entered.
    Original,
    /// An edit later superseded within the same file.
    Intermediate,
    /// The row as finally edited.
    Final,
    /// A delete marker.
    Deleted,
}

/// Where a row is delivered and what later deliveries do to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fate {
    pub first: u8,
    /// Delivery carrying the edited row, or [`NEVER`].
    pub change: u8,
    /// The edit arrives as two versions in one file.
    pub twice: bool,
    /// Delivery carrying the delete, or [`NEVER`].
    pub delete: u8,
}

impl Fate {
    pub fn new(first: u8) -> Fate {
        Fate {
            first,
            change: NEVER,
            twice: false,
            delete: NEVER,
        }
    }

    pub fn is_plain(&self) -> bool {
        self.change == NEVER && self.delete == NEVER
    }

    /// True when the row survives every delivery.
    pub fn survives(&self) -> bool {
        self.delete == NEVER
    }

    /// The versions delivery `k` carries, in order of increasing `ProcessingId`.
    pub fn versions_at(&self, k: u8) -> &'static [Version] {
        use Version::*;
        if k == self.delete {
            &[Deleted]
        } else if k == self.first && k == self.change {
            &[Original, Final]
        } else if k == self.first {
            &[Original]
        } else if k == self.change && self.twice {
            &[Intermediate, Final]
        } else if k == self.change {
            &[Final]
        } else {
            &[]
        }
    }

    /// The row's state once delivery `k` is applied: `None` before it arrives or after
    /// its delete.
    pub fn state_at(&self, k: u8) -> Option<Version> {
        if k < self.first || (self.delete != NEVER && k >= self.delete) {
            None
        } else if self.change != NEVER && k >= self.change {
            Some(Version::Final)
        } else {
            Some(Version::Original)
        }
    }
}

/// Draws a fate for a row first delivered in `first`, of a schedule whose last
/// delivery is `last`. Rows that must stay unchanged pass `mutable = false`.
pub fn draw_fate(rng: &mut Stream, first: u8, last: u8, mutable: bool) -> Fate {
    let mut fate = Fate::new(first);
    if !mutable || last == 0 {
        return fate;
    }
    let later = u32::from(last - first);
    if first > 0 && chance(rng, EDITED_SAME_WEEK) {
        fate.change = first;
        fate.twice = true;
    } else if later > 0 {
        let r = crate::synth::sampling::unit(rng);
        let pick = |rng: &mut Stream| first + 1 + index(rng, later as usize) as u8;
        if r < CHANGE_PER_DELTA * f64::from(later) {
            fate.change = pick(rng);
            fate.twice = chance(rng, CHANGED_TWICE);
        } else if r < (CHANGE_PER_DELTA + DELETE_PER_DELTA) * f64::from(later) {
            fate.delete = pick(rng);
        }
    }
    fate
}

/// Assigns first deliveries and fates to every row of a timeline. Only standalone
/// events (not blood-pressure components, not problem-linked diagnoses) and
/// medication issues may change or be deleted; `mutable = false` freezes them all.
pub fn assign_fates(timeline: &mut Timeline, schedule: &Schedule, rng: &mut Stream, mutable: bool) {
    let last = schedule.last();
    for e in &mut timeline.encounters {
        e.first = schedule.delivery_of(e.day);
    }
    for e in &mut timeline.events {
        let first = schedule.delivery_of(e.entered);
        e.fate = draw_fate(rng, first, last, mutable && e.may_change());
    }
    for i in &mut timeline.issues {
        let first = schedule.delivery_of(i.day);
        i.fate = draw_fate(rng, first, last, mutable);
    }
    for c in &mut timeline.courses {
        c.first = schedule.delivery_of(c.start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Schedule {
        Schedule::new(NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(), 2)
    }

    #[test]
    fn deliveries_are_weekly_and_ids_sort() {
        let s = schedule();
        let ids: Vec<String> = (0..3).map(|k| s.emis_extract_id(k)).collect();
        assert_eq!(ids[0], "20260317020000_000001-000042");
        assert_eq!(ids[1], "20260324020000_000043-000049");
        assert_eq!(ids[2], "20260331020000_000050-000056");
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(s.tpp_extract_id(2), "20260331_0200");
    }

    #[test]
    fn delivery_of_entry_day() {
        let s = schedule();
        let bulk_day = s.get(0).day;
        let cases = [
            (bulk_day - 1000, 0),
            (bulk_day - 1, 0),
            (bulk_day, 1),
            (bulk_day + 6, 1),
            (bulk_day + 7, 2),
        ];
        for (entered, k) in cases {
            assert_eq!(s.delivery_of(entered), k, "{entered}");
        }
    }

    #[test]
    fn processing_ids_increase_with_versions() {
        let s = schedule();
        for k in 0..3 {
            let d = s.get(k);
            for id in 0..20 {
                let original = s.processing_id(k, Version::Original, id);
                assert!(
                    original >= d.first_pid
                        && original < s.processing_id(k, Version::Intermediate, id)
                );
            }
            assert!(
                s.processing_id(k, Version::Intermediate, 0)
                    < s.processing_id(k, Version::Final, 0)
            );
            assert_eq!(s.processing_id(k, Version::Final, 0), d.last_pid);
        }
    }

    #[test]
    fn versions_carried_per_delivery() {
        use Version::*;
        let f = |first, change, twice, delete| Fate {
            first,
            change,
            twice,
            delete,
        };
        let cases: &[(Fate, [&[Version]; 3])] = &[
            (Fate::new(0), [&[Original], &[], &[]]),
            (f(0, 2, false, NEVER), [&[Original], &[], &[Final]]),
            (
                f(0, 1, true, NEVER),
                [&[Original], &[Intermediate, Final], &[]],
            ),
            (f(1, 1, true, NEVER), [&[], &[Original, Final], &[]]),
            (f(0, NEVER, false, 2), [&[Original], &[], &[Deleted]]),
        ];
        for (fate, expected) in cases {
            for k in 0..3u8 {
                assert_eq!(
                    fate.versions_at(k),
                    expected[usize::from(k)],
                    "{fate:?} at {k}"
                );
            }
        }
        let changed = f(0, 2, false, NEVER);
        assert_eq!(changed.state_at(1), Some(Original));
        assert_eq!(changed.state_at(2), Some(Final));
        assert_eq!(f(0, NEVER, false, 1).state_at(1), None);
    }
}
