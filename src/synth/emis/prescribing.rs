//! EMIS prescribing rows: `Prescribing_DrugRecord` (one per course, sent again when
//! its issue count or cancellation changes) and `Prescribing_IssueRecord`.

use crate::source::emis::tables::{PRESCRIBING_DRUG_RECORD, PRESCRIBING_ISSUE_RECORD};
use crate::synth::codes::catalogue;
use crate::synth::emis::{EmisWriter, sparse_delete};
use crate::synth::record::{Course, PatientRecord, Timeline};
use crate::synth::sampling::splitmix64;
use crate::synth::schedule::Version;
use crate::synth::truth::DefectKind;
use crate::synth::writer::{ClockTime, Guid};

impl EmisWriter<'_> {
    pub(super) fn drug_record_rows(
        &mut self,
        rec: &PatientRecord<'_>,
        tl: &Timeline,
        course: &Course,
        patient: &Guid,
    ) {
        let p = &self.practice;
        let issues = &tl.issues
            [course.first_issue as usize..(course.first_issue + course.issue_count) as usize];
        let issued_by = |k: u8| issues.partition_point(|i| i.day < p.schedule.get(k).day) as i64;
        for k in course.first..=p.schedule.last() {
            if !rec.live_at(k) {
                break;
            }
            let changed = k > course.first
                && (issued_by(k) != issued_by(k - 1)
                    || p.schedule.knows(course.stopped, k)
                        != p.schedule.knows(course.stopped, k - 1));
            if k != course.first && !changed {
                continue;
            }
            let version = if k == course.first {
                Version::Original
            } else {
                Version::Final
            };
            let pid = p.schedule.processing_id(k, version, course.id);
            let drug = catalogue().drug(course.drug);
            let stopped = course.stopped.filter(|d| p.schedule.knows(Some(*d), k));
            let kind = match course.repeat {
                false => "Acute",
                true if course.id.is_multiple_of(10) => "Repeat Dispensing",
                true => "Repeat",
            };
            let clinician = &p.clinicians[usize::from(course.clinician)];
            let r = self.out[usize::from(k)].rows(&PRESCRIBING_DRUG_RECORD);
            r.str("DrugRecordGuid", p.guid(course.id).as_str())
                .str("PatientGuid", patient.as_str());
            r.str("OrganisationGuid", p.organisation.as_str())
                .date("EffectiveDate", course.start);
            r.str("EffectiveDatePrecision", "YMD")
                .date("EnteredDate", course.start)
                .str("EnteredTime", "09:30:00");
            r.str("ClinicianUserInRoleGuid", clinician.as_str())
                .str("EnteredByUserInRoleGuid", clinician.as_str());
            r.i64("CodeId", drug.code_id)
                .str("Dosage", drug.dosage())
                .f64("Quantity", f64::from(course.quantity));
            r.str("QuantityUnit", drug.unit)
                .null("ProblemObservationGuid")
                .str("PrescriptionType", kind);
            // Acute records are inactive without a cancellation date (an EMIS quirk).
            r.bool("IsActive", course.repeat && stopped.is_none())
                .opt_date("CancellationDate", stopped);
            r.i64("NumberOfIssues", issued_by(k))
                .i64("NumberOfIssuesAuthorised", i64::from(course.authorised));
            r.bool("IsConfidential", false)
                .bool("Deleted", false)
                .i64("ProcessingId", pid)
                .end();
        }
    }

    pub(super) fn issue_rows(&mut self, rec: &PatientRecord<'_>, tl: &Timeline, patient: &Guid) {
        let p = &self.practice;
        for issue in &tl.issues {
            for k in issue.fate.first..=p.schedule.last() {
                if !rec.live_at(k) {
                    break;
                }
                for &version in issue.fate.versions_at(k) {
                    let pid = p.schedule.processing_id(k, version, issue.id);
                    let r = self.out[usize::from(k)].rows(&PRESCRIBING_ISSUE_RECORD);
                    if version == Version::Deleted {
                        sparse_delete(
                            r,
                            "IssueRecordGuid",
                            &p.guid(issue.id),
                            Some(patient),
                            p,
                            pid,
                        );
                        continue;
                    }
                    let course = &tl.courses[issue.course as usize];
                    let drug = catalogue().drug(course.drug);
                    let copies = if version == Version::Original
                        && issue.defect == Some(DefectKind::DuplicateRow)
                    {
                        2
                    } else {
                        1
                    };
                    for _ in 0..copies {
                        let clinician = &p.clinicians[usize::from(issue.clinician)];
                        r.str("IssueRecordGuid", p.guid(issue.id).as_str())
                            .str("PatientGuid", patient.as_str());
                        r.str("OrganisationGuid", p.organisation.as_str())
                            .str("DrugRecordGuid", p.guid(course.id).as_str());
                        r.date("EffectiveDate", issue.day)
                            .str("EffectiveDatePrecision", "YMD")
                            .date("EnteredDate", issue.day);
                        r.str("EnteredTime", ClockTime::of(issue.minute).as_str());
                        r.str("ClinicianUserInRoleGuid", clinician.as_str())
                            .str("EnteredByUserInRoleGuid", clinician.as_str());
                        r.i64("CodeId", drug.code_id);
                        r.str(
                            "Dosage",
                            if version == Version::Final {
                                "As directed"
                            } else {
                                drug.dosage()
                            },
                        );
                        r.f64("Quantity", f64::from(course.quantity))
                            .str("QuantityUnit", drug.unit);
                        r.null("ProblemObservationGuid")
                            .i64("CourseDurationInDays", i64::from(course.days));
                        r.f64("EstimatedNhsCost", cost(drug.dmd, course.quantity))
                            .bool("IsConfidential", false);
                        r.bool("Deleted", false).i64("ProcessingId", pid).end();
                    }
                }
            }
        }
    }
}

/// An estimated NHS cost for `quantity` of a product, a stable function of its code.
fn cost(dmd: i64, quantity: u16) -> f64 {
    let per_unit = (splitmix64(dmd as u64) % 300) as f64 / 100.0 + 0.02;
    (per_unit * f64::from(quantity) * 100.0).round() / 100.0
}
