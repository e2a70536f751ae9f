//! Injecting data-quality defects at the configured rates, and recording each one.
//!
//! A rate is the fraction of *eligible* rows that get the defect; a row gets at most
//! one defect (one uniform draw per row, walked through the eligible kinds'
//! rates). Eligibility, per kind:
//! - patient rows: `InvalidNhsNumber`, `MissingNhsNumber`, `DummyPatient` (not for
//!   people registered at two practices);
//! - standalone events: the date kinds (`EventBeforeBirth`, `EventAfterDeath` for the
//!   dead, `FutureDated`, EMIS `UnknownDatePrecision`, TPP `FloorDate`),
//!   `UnmappedLocalCode` (non-numeric events), EMIS `LateCodingRow` (not in the last
//!   delivery), `DuplicateRow`, and the value kinds below;
//! - numeric events, including blood-pressure components: `MissingUnit`,
//!   `UnknownUnit`, TPP `PlaceholderZero`;
//! - medication issues: `DuplicateRow`.
//!
//! Rows a delta later edits or deletes, and every row of a patient a delta deletes,
//! are never defective, so each recorded defect is still visible after all
//! deliveries are applied.

use std::collections::BTreeMap;

use crate::source::manifest::Supplier;
use crate::synth::codes::{EMIS_LOCAL, LATE_CODE_ID_BASE, TPP_LOCAL_UNMAPPED};
use crate::synth::record::{
    Code, Event, FIRST_UNKNOWN_UNIT, Precision, Shape, Timeline, UNIT_SPELLINGS, Unit,
};
use crate::synth::sampling::{Stream, between, index, unit};
use crate::synth::schedule::{Schedule, day_number};
use crate::synth::truth::DefectKind;

/// Every defect kind, in the order rows are offered to them.
pub const ALL_KINDS: [DefectKind; 14] = [
    DefectKind::InvalidNhsNumber,
    DefectKind::MissingNhsNumber,
    DefectKind::DummyPatient,
    DefectKind::EventBeforeBirth,
    DefectKind::EventAfterDeath,
    DefectKind::FutureDated,
    DefectKind::MissingUnit,
    DefectKind::UnknownUnit,
    DefectKind::PlaceholderZero,
    DefectKind::UnmappedLocalCode,
    DefectKind::LateCodingRow,
    DefectKind::DuplicateRow,
    DefectKind::FloorDate,
    DefectKind::UnknownDatePrecision,
];

/// Draws which defect, if any, a row gets.
#[derive(Debug, Clone)]
pub struct Picker {
    rates: BTreeMap<DefectKind, f64>,
}

impl Picker {
    pub fn new(rates: &BTreeMap<DefectKind, f64>) -> Picker {
        Picker {
            rates: rates.clone(),
        }
    }

    fn rate(&self, kind: DefectKind) -> f64 {
        self.rates.get(&kind).copied().unwrap_or(0.0)
    }

    /// One draw, walked through the eligible kinds' rates in order.
    pub fn pick(&self, rng: &mut Stream, eligible: &[DefectKind]) -> Option<DefectKind> {
        let mut x = unit(rng);
        for kind in eligible {
            let rate = self.rate(*kind);
            if x < rate {
                return Some(*kind);
            }
            x -= rate;
        }
        None
    }
}

/// Which kind of row a defect is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    Patient,
    Event,
    Issue,
}

/// One injected defect, before it is named in supplier terms.
#[derive(Debug, Clone, Copy)]
pub struct Injected {
    pub kind: DefectKind,
    pub row: RowKind,
    pub id: u64,
    pub delivery: u8,
}

/// What defect injection needs to know about the patient and the practice.
pub struct Context<'a> {
    pub supplier: Supplier,
    pub schedule: &'a Schedule,
    pub dob: i32,
    pub death: Option<i32>,
    /// Next late `CodeId` (EMIS), advanced as late codes are handed out.
    pub next_late_code: &'a mut i64,
}

/// The first late `CodeId` of a practice.
pub fn first_late_code(practice: usize) -> i64 {
    LATE_CODE_ID_BASE + practice as i64 * 1_000_000
}

/// The patient-level defect of a patient row, if any.
pub fn patient_defect(picker: &Picker, rng: &mut Stream, mover: bool) -> Option<DefectKind> {
    let kinds: &[DefectKind] = if mover {
        &[DefectKind::InvalidNhsNumber, DefectKind::MissingNhsNumber]
    } else {
        &[
            DefectKind::InvalidNhsNumber,
            DefectKind::MissingNhsNumber,
            DefectKind::DummyPatient,
        ]
    };
    picker.pick(rng, kinds)
}

/// Injects event and issue defects into a timeline whose fates are assigned, and
/// appends what it injected to `log`.
pub fn inject(
    timeline: &mut Timeline,
    ctx: &mut Context<'_>,
    picker: &Picker,
    rng: &mut Stream,
    log: &mut Vec<Injected>,
) {
    let mut eligible = Vec::with_capacity(ALL_KINDS.len());
    for event in &mut timeline.events {
        if !event.fate.is_plain() {
            continue;
        }
        eligible.clear();
        event_kinds(event, ctx, &mut eligible);
        if let Some(kind) = picker.pick(rng, &eligible) {
            apply(event, kind, ctx, rng);
            log.push(Injected {
                kind,
                row: RowKind::Event,
                id: event.id,
                delivery: event.fate.first,
            });
        }
    }
    for issue in &mut timeline.issues {
        if issue.fate.is_plain() && picker.pick(rng, &[DefectKind::DuplicateRow]).is_some() {
            issue.defect = Some(DefectKind::DuplicateRow);
            log.push(Injected {
                kind: DefectKind::DuplicateRow,
                row: RowKind::Issue,
                id: issue.id,
                delivery: issue.fate.first,
            });
        }
    }
}

fn event_kinds(event: &Event, ctx: &Context<'_>, out: &mut Vec<DefectKind>) {
    use DefectKind::*;
    let emis = ctx.supplier == Supplier::Emis;
    let numeric = event.value.is_some();
    match event.shape {
        Shape::BpParent => return,
        Shape::BpComponent => {}
        Shape::Single => {
            out.extend([EventBeforeBirth, FutureDated, DuplicateRow]);
            if room_after_death(event, ctx).is_some() {
                out.push(EventAfterDeath);
            }
            if !numeric {
                out.push(UnmappedLocalCode);
            }
            if emis {
                out.push(UnknownDatePrecision);
                if event.fate.first < ctx.schedule.last() && matches!(event.code, Code::Concept(_))
                {
                    out.push(LateCodingRow);
                }
            } else {
                out.push(FloorDate);
            }
        }
    }
    if numeric {
        out.extend([MissingUnit, UnknownUnit]);
        if !emis {
            out.push(PlaceholderZero);
        }
    }
}

/// Days available after death and before the event's delivery was extracted.
fn room_after_death(event: &Event, ctx: &Context<'_>) -> Option<i32> {
    let death = ctx.death?;
    let room = ctx.schedule.get(event.fate.first).day - 1 - death;
    (room >= 1).then_some(room)
}

fn apply(event: &mut Event, kind: DefectKind, ctx: &mut Context<'_>, rng: &mut Stream) {
    use DefectKind::*;
    event.defect = Some(kind);
    match kind {
        EventBeforeBirth => {
            event.day = ctx.dob - between(rng, 1, 730);
            event.precision = Precision::Day;
        }
        EventAfterDeath => {
            let room = room_after_death(event, ctx).expect("eligible only with room");
            event.day = ctx.death.expect("dead") + between(rng, 1, room);
            event.precision = Precision::Day;
        }
        FutureDated => {
            event.day = ctx.schedule.get(ctx.schedule.last()).day + between(rng, 30, 400);
            event.precision = Precision::Day;
        }
        UnknownDatePrecision => event.precision = Precision::Unknown,
        FloorDate => {
            event.day = day_number(chrono::NaiveDate::from_ymd_opt(1900, 1, 1).expect("valid"));
            event.precision = Precision::Floor;
        }
        MissingUnit => event.unit = Unit::NONE,
        UnknownUnit => {
            let unknown = UNIT_SPELLINGS.len() - usize::from(FIRST_UNKNOWN_UNIT);
            event.unit = Unit(FIRST_UNKNOWN_UNIT + index(rng, unknown) as u8);
        }
        PlaceholderZero => {
            event.value = Some(if unit(rng) < 0.5 { 0.0 } else { -1.0 });
            event.comparator = None;
        }
        UnmappedLocalCode => {
            event.code = match ctx.supplier {
                Supplier::Emis => Code::EmisLocal(index(rng, EMIS_LOCAL.len()) as u8),
                Supplier::Tpp => Code::TppLocal(index(rng, TPP_LOCAL_UNMAPPED.len()) as u8),
            };
        }
        LateCodingRow => {
            let Code::Concept(concept) = event.code else {
                unreachable!("eligible only for catalogued codes")
            };
            event.code = Code::Late {
                concept,
                code_id: *ctx.next_late_code,
            };
            *ctx.next_late_code += 1;
        }
        DuplicateRow => {}
        InvalidNhsNumber | MissingNhsNumber | DummyPatient => unreachable!("patient-level kinds"),
    }
}

/// An NHS number that fails Modulus 11: the valid one with another check digit.
pub fn invalid_nhs_number(valid: u64, salt: u64) -> String {
    let check = valid % 10;
    let other = (check + 1 + salt % 9) % 10;
    format!("{:010}", valid - check + other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nhs_number::is_valid;
    use crate::synth::sampling::{Purpose, stream};

    #[test]
    fn invalid_numbers_fail_modulus_11() {
        for (valid, salt) in [
            (9_990_000_018u64, 0u64),
            (9_990_000_018, 8),
            (9_434_765_919, 3),
        ] {
            let bad = invalid_nhs_number(valid, salt);
            assert_eq!(bad.len(), 10);
            assert!(!is_valid(&bad), "{bad}");
            assert_eq!(&bad[..9], &format!("{valid:010}")[..9]);
        }
    }

    #[test]
    fn picker_respects_rates_and_order() {
        let rates = BTreeMap::from([
            (DefectKind::MissingUnit, 0.2),
            (DefectKind::UnknownUnit, 0.3),
        ]);
        let picker = Picker::new(&rates);
        let mut rng = stream(5, Purpose::Defects, 0, 0);
        let kinds = [
            DefectKind::MissingUnit,
            DefectKind::UnknownUnit,
            DefectKind::DuplicateRow,
        ];
        let mut counts = BTreeMap::new();
        let n = 20_000;
        for _ in 0..n {
            *counts.entry(picker.pick(&mut rng, &kinds)).or_insert(0) += 1;
        }
        let share = |k| f64::from(counts.get(&k).copied().unwrap_or(0)) / f64::from(n);
        assert!((share(Some(DefectKind::MissingUnit)) - 0.2).abs() < 0.02);
        assert!((share(Some(DefectKind::UnknownUnit)) - 0.3).abs() < 0.02);
        assert_eq!(share(Some(DefectKind::DuplicateRow)), 0.0);
        assert!(
            Picker::new(&BTreeMap::new())
                .pick(&mut rng, &kinds)
                .is_none()
        );
    }
}
