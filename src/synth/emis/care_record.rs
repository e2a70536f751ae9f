//! EMIS care-record rows: `CareRecord_Observation` (blood pressure as a parent with
//! systolic and diastolic children; laboratory results with reference ranges),
//! `CareRecord_Problem` for diagnoses, `CareRecord_Consultation` and
//! `Appointment_Slot`.

use crate::source::emis::tables::{
    APPOINTMENT_SLOT, CARE_RECORD_CONSULTATION, CARE_RECORD_OBSERVATION, CARE_RECORD_PROBLEM,
};
use crate::synth::codes::{EMIS_LOCAL, catalogue};
use crate::synth::emis::{EmisWriter, Practice, sparse_delete};
use crate::synth::record::{Code, Event, Mode, NONE, PatientRecord, Precision, Timeline};
use crate::synth::schedule::Version;
use crate::synth::truth::DefectKind;
use crate::synth::writer::{ClockTime, Guid, Rows};

/// Laboratory reference ranges EMIS carries on results: (SNOMED, low, high).
const REFERENCE_RANGES: &[(i64, Option<f64>, Option<f64>)] = &[
    (1000661000000107, Some(133.0), Some(146.0)),
    (1000651000000109, Some(3.5), Some(5.3)),
    (1028131000000104, Some(2.5), Some(7.8)),
    (1000731000000107, Some(59.0), Some(104.0)),
    (1011481000000105, Some(60.0), None),
    (1005671000000105, None, Some(5.0)),
    (1005681000000107, Some(1.0), None),
    (999791000000106, Some(20.0), Some(41.0)),
    (1010671000000102, Some(3.0), Some(7.8)),
];

impl EmisWriter<'_> {
    pub(super) fn observation_rows(
        &mut self,
        rec: &PatientRecord<'_>,
        tl: &Timeline,
        i: usize,
        patient: &Guid,
    ) {
        let e = &tl.events[i];
        let p = &self.practice;
        for k in e.fate.first..=p.schedule.last() {
            if !rec.live_at(k) {
                break;
            }
            let versions = e.fate.versions_at(k);
            // EMIS does not promise ProcessingId order within a file.
            let reversed = versions.len() == 2 && e.id.is_multiple_of(2);
            for j in 0..versions.len() {
                let version = versions[if reversed { versions.len() - 1 - j } else { j }];
                let pid = p.schedule.processing_id(k, version, e.id);
                let r = self.out[usize::from(k)].rows(&CARE_RECORD_OBSERVATION);
                if version == Version::Deleted {
                    sparse_delete(r, "ObservationGuid", &p.guid(e.id), Some(patient), p, pid);
                    continue;
                }
                let copies =
                    if version == Version::Original && e.defect == Some(DefectKind::DuplicateRow) {
                        2
                    } else {
                        1
                    };
                for _ in 0..copies {
                    observation_row(r, p, tl, e, patient, version, pid);
                }
                if let (Code::Late { concept, code_id }, Version::Original) = (e.code, version) {
                    self.late[usize::from(k) + 1].push((code_id, concept));
                }
            }
            if e.problem && (k == e.fate.first || resolution_arrives(tl, e, k)) {
                let pid = p.schedule.processing_id(
                    k,
                    if k == e.fate.first {
                        Version::Original
                    } else {
                        Version::Final
                    },
                    e.id,
                );
                problem_row(
                    self.out[usize::from(k)].rows(&CARE_RECORD_PROBLEM),
                    p,
                    tl,
                    e,
                    patient,
                    k,
                    pid,
                );
            }
        }
    }

    pub(super) fn encounter_rows(
        &mut self,
        rec: &PatientRecord<'_>,
        tl: &Timeline,
        patient: &Guid,
    ) {
        let p = &self.practice;
        for enc in &tl.encounters {
            if !rec.live_at(enc.first) {
                continue;
            }
            let k = usize::from(enc.first);
            let pid = p
                .schedule
                .processing_id(enc.first, Version::Original, enc.id);
            let slot = p.guid(enc.slot);
            let clinician = &p.clinicians[usize::from(enc.clinician)];
            let time = ClockTime::of(enc.minute);
            let planned = if enc.mode == Mode::Home { 30 } else { 10 };
            let wait = (enc.id % 17) as i64;
            let r = self.out[k].rows(&APPOINTMENT_SLOT);
            r.str("SlotGuid", slot.as_str())
                .date("AppointmentDate", enc.day)
                .str("AppointmentStartTime", time.as_str());
            r.i64("PlannedDurationInMinutes", planned)
                .str("PatientGuid", patient.as_str());
            if enc.attended {
                r.str(
                    "SendInTime",
                    ClockTime::of(enc.minute + wait as u16).as_str(),
                );
                r.str(
                    "LeftTime",
                    ClockTime::of(enc.minute + wait as u16 + planned as u16).as_str(),
                );
            } else {
                r.null("SendInTime").null("LeftTime");
            }
            r.bool("DidNotAttend", !enc.attended)
                .i64("PatientWaitInMin", wait)
                .i64("AppointmentDelayInMin", wait / 2);
            r.opt_i64(
                "ActualDurationInMinutes",
                enc.attended.then_some(planned + wait % 5),
            );
            r.str("OrganisationGuid", p.organisation.as_str());
            let session = Guid::of(
                p.salt ^ 0x5E55_1011,
                (i64::from(enc.day) as u64) << 8 | u64::from(enc.clinician),
            );
            r.str("SessionGuid", session.as_str())
                .null("DnaReasonCodeId")
                .bool("Deleted", false);
            r.i64("ProcessingId", pid).end();
            if !enc.attended {
                continue;
            }
            let source = match enc.mode {
                Mode::Surgery => "Surgery consultation",
                Mode::Telephone => "Telephone call to a patient",
                Mode::Home => "Home visit",
            };
            let r = self.out[k].rows(&CARE_RECORD_CONSULTATION);
            r.str("ConsultationGuid", p.guid(enc.id).as_str())
                .str("PatientGuid", patient.as_str());
            r.str("OrganisationGuid", p.organisation.as_str())
                .date("EffectiveDate", enc.day);
            r.str("EffectiveDatePrecision", "YMD")
                .date("EnteredDate", enc.day)
                .str("EnteredTime", time.as_str());
            r.str("ClinicianUserInRoleGuid", clinician.as_str())
                .str("EnteredByUserInRoleGuid", clinician.as_str());
            r.opt_str(
                "AppointmentSlotGuid",
                (enc.mode != Mode::Home).then_some(slot.as_str()),
            );
            r.str("ConsultationSourceTerm", source)
                .null("ConsultationSourceCodeId")
                .bool("Complete", true);
            r.bool("Deleted", false)
                .bool("IsConfidential", false)
                .i64("ProcessingId", pid)
                .end();
        }
    }
}

fn observation_row(
    r: &mut Rows,
    p: &Practice<'_>,
    tl: &Timeline,
    e: &Event,
    patient: &Guid,
    version: Version,
    pid: i64,
) {
    let cat = catalogue();
    let code_id = match e.code {
        Code::Concept(c) => cat.concept(c).code_id,
        Code::EmisLocal(i) => EMIS_LOCAL[usize::from(i)].code_id,
        Code::Late { code_id, .. } => code_id,
        Code::TppLocal(_) => unreachable!("TPP codes never reach an EMIS practice"),
    };
    let text = match version {
        Version::Intermediate => Some("Amended"),
        Version::Final => Some("Amended: entered in error, corrected"),
        _ if e.comparator == Some(">") => Some(">90"),
        _ => None,
    };
    let range = match e.code {
        Code::Concept(c) if e.value.is_some() => REFERENCE_RANGES
            .iter()
            .find(|(s, _, _)| *s == cat.concept(c).snomed)
            .map(|(_, lo, hi)| (*lo, *hi)),
        _ => None,
    };
    let clinician = &p.clinicians[usize::from(e.clinician)];
    let kind = if e.problem {
        "Problem"
    } else if e.value.is_some() {
        "Value"
    } else {
        "Observation"
    };
    r.str("ObservationGuid", p.guid(e.id).as_str())
        .str("PatientGuid", patient.as_str());
    r.str("OrganisationGuid", p.organisation.as_str());
    r.opt_date(
        "EffectiveDate",
        (e.precision != Precision::Unknown).then_some(e.day),
    );
    r.str("EffectiveDatePrecision", e.precision.emis())
        .date("EnteredDate", e.entered);
    r.str("EnteredTime", ClockTime::of(e.minute).as_str());
    r.str("ClinicianUserInRoleGuid", clinician.as_str())
        .str("EnteredByUserInRoleGuid", clinician.as_str());
    let parent = (e.parent != NONE).then(|| p.guid(tl.events[e.parent as usize].id));
    r.opt_str("ParentObservationGuid", parent.as_ref().map(Guid::as_str))
        .i64("CodeId", code_id);
    r.null("ProblemGuid").opt_str("AssociatedText", text);
    let consultation =
        (e.encounter != NONE).then(|| p.guid(tl.encounters[e.encounter as usize].id));
    r.opt_str("ConsultationGuid", consultation.as_ref().map(Guid::as_str));
    r.opt_f64("Value", e.value)
        .opt_str("NumericUnit", e.unit.spelling())
        .str("ObservationType", kind);
    r.opt_f64("NumericRangeLow", range.and_then(|(lo, _)| lo))
        .opt_f64("NumericRangeHigh", range.and_then(|(_, hi)| hi));
    r.null("DocumentGuid")
        .bool("Deleted", false)
        .bool("IsConfidential", false)
        .i64("ProcessingId", pid)
        .end();
}

/// True when the event resolving problem `e` is first delivered in delivery `k`
/// (after the problem itself).
fn resolution_arrives(tl: &Timeline, e: &Event, k: u8) -> bool {
    e.resolution != NONE && tl.events[e.resolution as usize].fate.first == k && k > e.fate.first
}

fn problem_row(
    r: &mut Rows,
    p: &Practice<'_>,
    tl: &Timeline,
    e: &Event,
    patient: &Guid,
    k: u8,
    pid: i64,
) {
    let resolved = (e.resolution != NONE)
        .then(|| &tl.events[e.resolution as usize])
        .filter(|res| res.fate.first <= k);
    r.str("ObservationGuid", p.guid(e.id).as_str())
        .str("PatientGuid", patient.as_str());
    r.str("OrganisationGuid", p.organisation.as_str())
        .null("ParentProblemObservationGuid")
        .bool("Deleted", false);
    r.null("Comment")
        .opt_date("EndDate", resolved.map(|res| res.day));
    r.opt_str("EndDatePrecision", resolved.map(|res| res.precision.emis()))
        .null("ExpectedDuration");
    r.null("LastReviewDate")
        .null("LastReviewDatePrecision")
        .null("LastReviewUserInRoleGuid");
    r.null("ParentProblemRelationship").str(
        "ProblemStatusDescription",
        if resolved.is_some() { "Past" } else { "Active" },
    );
    r.str("SignificanceDescription", "Significant Problem")
        .i64("ProcessingId", pid)
        .end();
}
