//! One patient's record at one practice, in a supplier-neutral form that the EMIS and
//! TPP writers render into their own tables.
//!
//! Rows are small `Copy` structs holding indices into the code catalogue and numeric
//! ids; strings (GUIDs, terms, dates) are produced only when a row is written. Every
//! row carries a practice-unique `id`, from which EMIS GUIDs and TPP `RowIdentifier`s
//! are derived, so a changed or deleted row keeps its key across deliveries.

use crate::synth::people::Person;
use crate::synth::registrations::RecordPlan;
use crate::synth::schedule::{Fate, Schedule};
use crate::synth::truth::DefectKind;

/// Marks "none" in `u32` index fields.
pub const NONE: u32 = u32::MAX;

/// How much of an event's date is known (EMIS `EffectiveDatePrecision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// Year only; the date is padded to 1 January.
    Year,
    /// Year and month; the date is padded to the 1st.
    YearMonth,
    Day,
    /// Day and time.
    DayTime,
    /// No date (EMIS `U`); only from the `UnknownDatePrecision` defect.
    Unknown,
    /// TPP's 1900-01-01 floor; only from the `FloorDate` defect.
    Floor,
}

impl Precision {
    pub fn emis(self) -> &'static str {
        match self {
            Precision::Year => "Y",
            Precision::YearMonth => "YM",
            Precision::Day | Precision::Floor => "YMD",
            Precision::DayTime => "YMDT",
            Precision::Unknown => "U",
        }
    }
}

/// The code an event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// A catalogued concept.
    Concept(u16),
    /// An EMIS local code (index into `codes::EMIS_LOCAL`).
    EmisLocal(u8),
    /// A TPP Y-code without a map entry (index into `codes::TPP_LOCAL_UNMAPPED`).
    TppLocal(u8),
    /// A concept under an EMIS `CodeId` whose coding row comes one delivery late.
    Late { concept: u16, code_id: i64 },
}

/// A numeric value's unit, as an index into [`UNIT_SPELLINGS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unit(pub u8);

/// Unit spellings as written into the extracts. Entries before
/// [`FIRST_UNKNOWN_UNIT`] are units phm recognises; later ones are the
/// `UnknownUnit` defect's spellings. Index 0 means "no unit".
pub const UNIT_SPELLINGS: &[&str] = &[
    "",
    "mmHg",
    "mm Hg",
    "mmol/mol",
    "%",
    "mL/min/1.73m2",
    "ml/min/1.73m2",
    "mmol/L",
    "mmol/l",
    "umol/L",
    "kg",
    "cm",
    "kg/m2",
    "/min",
    "bpm",
    // Unknown to phm:
    "mg/dL",
    "g/L",
    "mm/Hg",
    "mmols",
    "ratio",
];

pub const FIRST_UNKNOWN_UNIT: u8 = 15;

impl Unit {
    pub const NONE: Unit = Unit(0);

    pub fn spelling(self) -> Option<&'static str> {
        (self.0 != 0).then(|| UNIT_SPELLINGS[usize::from(self.0)])
    }

    /// The unit spelled exactly `s` (a recognised spelling).
    pub fn named(s: &str) -> Unit {
        let i = UNIT_SPELLINGS[..usize::from(FIRST_UNKNOWN_UNIT)]
            .iter()
            .position(|u| *u == s);
        Unit(i.unwrap_or_else(|| panic!("{s:?} is not a listed unit spelling")) as u8)
    }
}

/// The role of an event in a blood-pressure reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Single,
    /// EMIS parent observation of a reading; TPP has no such row.
    BpParent,
    /// Systolic or diastolic component; `parent` points at its [`Shape::BpParent`].
    BpComponent,
}

/// A coded event (EMIS observation, TPP `SRCode` row).
#[derive(Debug, Clone, Copy)]
pub struct Event {
    pub id: u64,
    pub day: i32,
    pub entered: i32,
    /// Minute of the day it was entered.
    pub minute: u16,
    pub precision: Precision,
    pub code: Code,
    pub value: Option<f64>,
    pub unit: Unit,
    /// TPP `NumericComparator` (">" for eGFR above 90).
    pub comparator: Option<&'static str>,
    pub shape: Shape,
    /// Index of the parent event (blood-pressure components), or [`NONE`].
    pub parent: u32,
    /// Index of the encounter it was recorded in, or [`NONE`].
    pub encounter: u32,
    pub clinician: u8,
    /// A diagnosis with an EMIS `CareRecord_Problem`; `resolution` is the index of
    /// the event resolving it, or [`NONE`].
    pub problem: bool,
    pub resolution: u32,
    pub fate: Fate,
    pub defect: Option<DefectKind>,
}

impl Event {
    /// Only standalone, non-problem events are ever edited or deleted in a delta.
    pub fn may_change(&self) -> bool {
        self.shape == Shape::Single && !self.problem
    }
}

/// How an encounter happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Surgery,
    Telephone,
    Home,
}

/// An appointment, and the consultation if the patient attended.
#[derive(Debug, Clone, Copy)]
pub struct Encounter {
    /// Consultation id.
    pub id: u64,
    /// Appointment slot id.
    pub slot: u64,
    pub day: i32,
    pub minute: u16,
    pub clinician: u8,
    pub mode: Mode,
    pub attended: bool,
    pub first: u8,
}

/// A prescription: an acute course or a repeat template (EMIS `Prescribing_DrugRecord`).
#[derive(Debug, Clone, Copy)]
pub struct Course {
    pub id: u64,
    pub drug: u16,
    pub start: i32,
    /// The day it was stopped, if it was.
    pub stopped: Option<i32>,
    pub repeat: bool,
    pub quantity: u16,
    pub days: u16,
    pub dosage: u8,
    pub clinician: u8,
    /// Issues of the course: `issues[first_issue..first_issue + issue_count]`.
    pub first_issue: u32,
    pub issue_count: u32,
    pub authorised: u16,
    pub first: u8,
}

/// One issue of a course (EMIS `Prescribing_IssueRecord`, TPP `SRPrimaryCareMedication`).
#[derive(Debug, Clone, Copy)]
pub struct Issue {
    pub id: u64,
    pub course: u32,
    pub day: i32,
    pub minute: u16,
    pub clinician: u8,
    pub fate: Fate,
    pub defect: Option<DefectKind>,
}

/// Everything recorded about one patient at one practice.
#[derive(Debug, Default)]
pub struct Timeline {
    pub encounters: Vec<Encounter>,
    pub events: Vec<Event>,
    pub courses: Vec<Course>,
    pub issues: Vec<Issue>,
}

impl Timeline {
    pub fn clear(&mut self) {
        self.encounters.clear();
        self.events.clear();
        self.courses.clear();
        self.issues.clear();
    }
}

/// A registration episode as TPP's `SRPatientRegistration` history shows it.
#[derive(Debug, Clone)]
pub struct Episode {
    pub id: u64,
    pub ods: String,
    pub start: i32,
    /// The day it ended, if it has.
    pub end: Option<i32>,
    pub status: &'static str,
}

/// The patient-level facts a writer needs, beyond the person and registration plan.
#[derive(Debug)]
pub struct PatientRecord<'a> {
    /// Practice-unique id: EMIS `PatientGuid`, TPP `IDPatient`.
    pub id: u64,
    /// Position in the practice's list (EMIS `PatientNumber`).
    pub number: u32,
    pub person: &'a Person,
    pub plan: &'a RecordPlan,
    pub first: u8,
    /// Delta carrying the patient delete, if any.
    pub deleted_at: Option<u8>,
    /// Delta carrying an edit of the patient's demographics, if any.
    pub changed_at: Option<u8>,
    pub defect: Option<DefectKind>,
    /// Registration history: earlier episodes first, the episode at this practice last.
    pub episodes: Vec<Episode>,
    /// Last day an event may be dated.
    pub last_event_day: i32,
    /// Last day an entry may be made (later entries would miss a deleted patient's deliveries).
    pub last_entry_day: i32,
}

impl PatientRecord<'_> {
    /// True when delivery `k` may carry rows of this patient other than its delete.
    pub fn live_at(&self, k: u8) -> bool {
        k >= self.first && self.deleted_at.is_none_or(|d| k < d)
    }

    /// The day of death, if any.
    pub fn death(&self) -> Option<i32> {
        self.person.death
    }

    /// The day the registration at this practice ended (EMIS `DateOfDeactivation`).
    pub fn deactivated(&self) -> Option<i32> {
        self.plan.end
    }

    /// True when the patient's state (death, deactivation) known to delivery `k`
    /// differs from what delivery `k - 1` knew.
    pub fn state_changes_at(&self, schedule: &Schedule, k: u8) -> bool {
        k > 0
            && (schedule.knows(self.death(), k) != schedule.knows(self.death(), k - 1)
                || schedule.knows(self.deactivated(), k)
                    != schedule.knows(self.deactivated(), k - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::units::canonical_unit;

    #[test]
    fn unit_spellings_split_into_known_and_unknown() {
        for (i, spelling) in UNIT_SPELLINGS.iter().enumerate().skip(1) {
            let known = canonical_unit(spelling).is_some();
            assert_eq!(known, i < usize::from(FIRST_UNKNOWN_UNIT), "{spelling:?}");
        }
        assert_eq!(Unit::named("mm Hg").spelling(), Some("mm Hg"));
        assert_eq!(Unit::NONE.spelling(), None);
    }
}
