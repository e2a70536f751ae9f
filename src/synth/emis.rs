//! Renders patient records as EMIS Web deliveries (EXTRACTS.md, "EMIS Web extract";
//! tables as in [`crate::source::emis::tables`]).
//!
//! EMIS quirks reproduced here: files named
//! `<ProcIdStart>-<ProcIdEnd>_<Schema>_<Table>_<yyyyMMddHHmmss>_<SharingAgreementGuid>.parquet`;
//! each delivery carries only changed rows, a change being the same key with a higher
//! `ProcessingId` (sometimes two versions in one file, not always in `ProcessingId`
//! order) and a delete a `Deleted=true` row; a patient delete arrives without deletes
//! of the patient's other rows; `Admin_Patient` holds only the latest registration;
//! rows carry local `CodeId`s resolved through `Coding_ClinicalCode` /
//! `Coding_DrugCode`; blood pressure is a parent observation with systolic and
//! diastolic children; `PatientTypeDescription` has leading spaces; partial dates
//! carry a precision and are padded to the 1st.

use std::path::Path;

use crate::source::emis::tables::{
    ADMIN_ORGANISATION, ADMIN_PATIENT, ADMIN_USER_IN_ROLE, AGREEMENTS_SHARING_ORGANISATION, ALL,
    APPOINTMENT_SLOT, CARE_RECORD_CONSULTATION, CARE_RECORD_OBSERVATION, CARE_RECORD_PROBLEM,
    CODING_CLINICAL_CODE, CODING_DRUG_CODE, PRESCRIBING_DRUG_RECORD, PRESCRIBING_ISSUE_RECORD,
    SCHEMA_VERSION,
};
use crate::source::manifest::{ExtractKind, Manifest, Supplier};
use crate::synth::SynthError;
use crate::synth::codes::{Concept, EMIS_LOCAL, catalogue};
use crate::synth::population::{PracticePlan, RegKind, Sex};
use crate::synth::record::{Code, Course, Event, Mode, NONE, PatientRecord, Precision, Timeline};
use crate::synth::sampling::{Stream, between, pick, splitmix64};
use crate::synth::schedule::{Schedule, Version, day_number};
use crate::synth::truth::DefectKind;
use crate::synth::writer::{Cell, ClockTime, DeliveryFiles, DeliveryHeader, Guid, Rows};

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

const STAFF: &[(&str, &str, &str)] = &[
    ("Dr", "R0260", "General Medical Practitioner"),
    ("Dr", "R0260", "General Medical Practitioner"),
    ("Dr", "R0260", "General Medical Practitioner"),
    ("Mrs", "R0690", "Practice Nurse"),
    ("Ms", "R1290", "Clinical Pharmacist"),
    ("Dr", "R0260", "General Medical Practitioner"),
    ("Mr", "R0700", "Health Care Assistant"),
];
const STAFF_GIVEN: &[&str] = &[
    "Sarah", "James", "Aisha", "Tom", "Helen", "Rajesh", "Claire", "Gareth", "Nadia", "Ben",
];
const STAFF_SURNAMES: &[&str] = &[
    "Ahmed", "Barker", "Chaudhry", "Dawson", "Ellis", "Fraser", "Gill", "Holmes", "Iqbal",
    "Jenkins",
];

/// Practice-level GUIDs and look-ups shared by every row.
struct Practice<'a> {
    plan: &'a PracticePlan,
    schedule: &'a Schedule,
    salt: u64,
    organisation: Guid,
    clinicians: Vec<Guid>,
}

impl Practice<'_> {
    fn guid(&self, id: u64) -> Guid {
        Guid::of(self.salt, id)
    }
}

/// Writes one EMIS practice's deliveries.
pub struct EmisWriter<'a> {
    practice: Practice<'a>,
    out: Vec<DeliveryFiles>,
    /// Coding rows owed to each delivery for late `CodeId`s used in the one before.
    late: Vec<Vec<(i64, u16)>>,
}

impl<'a> EmisWriter<'a> {
    /// Creates the delivery folders and writes the practice-level rows (organisation,
    /// staff, sharing agreement, coding tables).
    pub fn open(
        plan: &'a PracticePlan,
        schedule: &'a Schedule,
        root: &Path,
        salt: u64,
        clinicians: u8,
        rng: &mut Stream,
    ) -> Result<EmisWriter<'a>, SynthError> {
        let practice = Practice {
            plan,
            schedule,
            salt,
            organisation: Guid::of(salt, 1),
            clinicians: (0..u64::from(clinicians))
                .map(|i| Guid::of(salt, 10 + i))
                .collect(),
        };
        let agreement = Guid::of(salt, 2);
        let out = (0..schedule.count() as u8)
            .map(|k| {
                let d = schedule.get(k);
                let stamp = d.extracted_at.format("%Y%m%d%H%M%S").to_string();
                let header = DeliveryHeader {
                    practice: plan.ods.clone(),
                    supplier: Supplier::Emis,
                    schema_version: SCHEMA_VERSION,
                    extract_id: schedule.emis_extract_id(k),
                    kind: if k == 0 {
                        ExtractKind::Full
                    } else {
                        ExtractKind::Delta
                    },
                    extracted_at: d.extracted_at,
                };
                let name = |spec: &crate::source::table::TableSpec| {
                    format!(
                        "{:06}-{:06}_{}_{stamp}_{}.parquet",
                        d.first_pid,
                        d.last_pid,
                        spec.name,
                        agreement.as_str()
                    )
                };
                DeliveryFiles::create(root.join(&header.extract_id), header, ALL, name)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut writer = EmisWriter {
            practice,
            out,
            late: vec![Vec::new(); schedule.count()],
        };
        writer.practice_rows(rng);
        Ok(writer)
    }

    fn practice_rows(&mut self, rng: &mut Stream) {
        let p = &self.practice;
        let bulk_day = p.schedule.get(0).day;
        for k in 0..self.out.len() {
            let r = self.out[k].rows(&AGREEMENTS_SHARING_ORGANISATION);
            r.str("OrganisationGuid", p.organisation.as_str())
                .bool("IsActivated", true);
            r.date("LastModifiedDate", bulk_day - 90)
                .bool("Disabled", false)
                .bool("Deleted", false)
                .end();
        }
        let bulk = &mut self.out[0];
        let r = bulk.rows(&ADMIN_ORGANISATION);
        r.str("OrganisationGuid", p.organisation.as_str())
            .str("CDB", &format!("{}", 20_000 + p.salt % 60_000));
        r.str("OrganisationName", &p.plan.name)
            .str("ODSCode", &p.plan.ods)
            .null("ParentOrganisationGuid");
        r.str("CCGOrganisationGuid", Guid::of(p.salt, 4).as_str())
            .str("OrganisationType", "General Practice");
        r.date(
            "OpenDate",
            day_number(chrono::NaiveDate::from_ymd_opt(1974, 4, 1).expect("valid")),
        );
        r.null("CloseDate")
            .str("MainLocationGuid", Guid::of(p.salt, 3).as_str())
            .i64("ProcessingId", 1)
            .end();

        for (i, guid) in p.clinicians.iter().enumerate() {
            let (title, code, role) = STAFF[i % STAFF.len()];
            let r = bulk.rows(&ADMIN_USER_IN_ROLE);
            r.str("UserInRoleGuid", guid.as_str())
                .str("OrganisationGuid", p.organisation.as_str());
            r.str("Title", title)
                .str("GivenName", *pick(rng, STAFF_GIVEN))
                .str("Surname", *pick(rng, STAFF_SURNAMES));
            r.str("JobCategoryCode", code).str("JobCategoryName", role);
            r.date("ContractStartDate", bulk_day - between(rng, 200, 9000))
                .null("ContractEndDate");
            r.i64("ProcessingId", 1).end();
        }

        let cat = catalogue();
        for concept in &cat.concepts {
            clinical_code_row(
                bulk.rows(&CODING_CLINICAL_CODE),
                concept,
                concept.code_id,
                1,
            );
        }
        for local in EMIS_LOCAL {
            let r = bulk.rows(&CODING_CLINICAL_CODE);
            r.i64("CodeId", local.code_id)
                .str("Term", local.term)
                .str("ReadTermId", local.code);
            r.null("SnomedCTConceptId")
                .null("SnomedCTDescriptionId")
                .null("NationalCode")
                .null("NationalCodeCategory");
            r.null("NationalDescription")
                .str("EmisCodeCategoryDescription", "Administration");
            r.i64("ProcessingId", 1).null("ParentCodeId").end();
        }
        for drug in &cat.drugs {
            let r = bulk.rows(&CODING_DRUG_CODE);
            r.i64("CodeId", drug.code_id)
                .str("Term", &drug.term)
                .i64("DmdProductCodeId", drug.dmd)
                .i64("ProcessingId", 1);
            r.end();
        }
    }

    /// Writes every row of one patient's record to the deliveries that carry it.
    pub fn record(&mut self, rec: &PatientRecord<'_>, tl: &Timeline) -> Result<(), SynthError> {
        let patient = self.practice.guid(rec.id);
        self.patient_rows(rec, &patient);
        for i in 0..tl.events.len() {
            self.observation_rows(rec, tl, i, &patient);
        }
        self.encounter_rows(rec, tl, &patient);
        for course in &tl.courses {
            self.drug_record_rows(rec, tl, course, &patient);
        }
        self.issue_rows(rec, tl, &patient);
        self.out
            .iter_mut()
            .try_for_each(DeliveryFiles::flush_if_full)
    }

    fn patient_rows(&mut self, rec: &PatientRecord<'_>, patient: &Guid) {
        let p = &self.practice;
        for k in rec.first..=p.schedule.last() {
            let r = self.out[usize::from(k)].rows(&ADMIN_PATIENT);
            if rec.deleted_at == Some(k) {
                let pid = p.schedule.processing_id(k, Version::Deleted, rec.id);
                sparse_delete(r, "PatientGuid", patient, None, p, pid);
                break;
            }
            let version = if k == rec.first {
                Version::Original
            } else if rec.state_changes_at(p.schedule, k) || rec.changed_at == Some(k) {
                Version::Final
            } else {
                continue;
            };
            patient_row(
                r,
                p,
                rec,
                patient,
                k,
                p.schedule.processing_id(k, version, rec.id),
            );
        }
    }

    fn observation_rows(
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
            let reversed = versions.len() == 2 && e.id % 2 == 0;
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

    fn encounter_rows(&mut self, rec: &PatientRecord<'_>, tl: &Timeline, patient: &Guid) {
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

    fn drug_record_rows(
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
                true if course.id % 10 == 0 => "Repeat Dispensing",
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

    fn issue_rows(&mut self, rec: &PatientRecord<'_>, tl: &Timeline, patient: &Guid) {
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

    /// Writes the coding rows of late `CodeId`s, closes every file and writes the
    /// manifests, bulk first.
    pub fn finish(mut self) -> Result<Vec<Manifest>, SynthError> {
        let cat = catalogue();
        for (k, late) in self.late.iter().enumerate() {
            for (code_id, concept) in late {
                let pid = self.practice.schedule.get(k as u8).first_pid;
                clinical_code_row(
                    self.out[k].rows(&CODING_CLINICAL_CODE),
                    cat.concept(*concept),
                    *code_id,
                    pid,
                );
            }
        }
        self.out.into_iter().map(DeliveryFiles::finish).collect()
    }

    /// The source row id of a patient, observation or issue (its GUID).
    pub fn row_id(&self, id: u64) -> String {
        self.practice.guid(id).as_str().to_string()
    }
}

fn clinical_code_row(r: &mut Rows, concept: &Concept, code_id: i64, pid: i64) {
    let read = format!("{}00", concept.ctv3);
    r.i64("CodeId", code_id)
        .str("Term", &concept.term)
        .str("ReadTermId", &read)
        .i64("SnomedCTConceptId", concept.snomed);
    r.null("SnomedCTDescriptionId")
        .str("NationalCode", &concept.ctv3)
        .null("NationalCodeCategory");
    r.str("NationalDescription", &concept.term)
        .str("EmisCodeCategoryDescription", "Clinical");
    r.i64("ProcessingId", pid).null("ParentCodeId").end();
}

/// A delete row: the key (and patient), the organisation, `Deleted=true` and the
/// `ProcessingId`; everything else null.
fn sparse_delete(
    r: &mut Rows,
    key: &str,
    guid: &Guid,
    patient: Option<&Guid>,
    p: &Practice<'_>,
    pid: i64,
) {
    r.str(key, guid.as_str());
    if let Some(patient) = patient {
        r.str("PatientGuid", patient.as_str());
    }
    r.str("OrganisationGuid", p.organisation.as_str());
    r.rest_with(|column| match column {
        "Deleted" => Some(Cell::Bool(true)),
        "ProcessingId" => Some(Cell::I64(pid)),
        _ => None,
    })
    .end();
}

fn patient_row(
    r: &mut Rows,
    p: &Practice<'_>,
    rec: &PatientRecord<'_>,
    patient: &Guid,
    k: u8,
    pid: i64,
) {
    let person = rec.person;
    let known = |day: Option<i32>| day.filter(|d| p.schedule.knows(Some(*d), k));
    let edited = rec.changed_at.is_some_and(|c| k >= c);
    let nhs = match rec.defect {
        Some(DefectKind::InvalidNhsNumber) => Some(crate::synth::defects::invalid_nhs_number(
            person.nhs, rec.id,
        )),
        Some(DefectKind::MissingNhsNumber) => None,
        _ => Some(person.nhs_text()),
    };
    let dummy = rec.defect == Some(DefectKind::DummyPatient);
    let kind = match (dummy, rec.plan.kind) {
        (true, _) => " Dummy",
        (false, RegKind::Temporary) => " Temporary",
        (false, RegKind::Regular) => " Regular",
    };
    let usual_gp = &p.clinicians[(rec.id % p.clinicians.len().min(3) as u64) as usize];
    r.str("PatientGuid", patient.as_str())
        .str("OrganisationGuid", p.organisation.as_str());
    r.str("UsualGpUserInRoleGuid", usual_gp.as_str())
        .str("Sex", if person.sex == Sex::Female { "F" } else { "M" });
    r.date("DateOfBirth", person.dob)
        .opt_date("DateOfDeath", known(person.death));
    r.opt_str("Title", person.title(p.schedule.get(k).day))
        .str("GivenName", person.given);
    r.opt_str("MiddleNames", person.middle)
        .str("Surname", person.surname)
        .date("DateOfRegistration", rec.plan.start);
    r.opt_str("NhsNumber", nhs.as_deref())
        .str("PatientNumber", &(1000 + rec.number).to_string());
    r.str("PatientTypeDescription", kind)
        .opt_str("DummyType", dummy.then_some("Dummy"));
    r.null("HouseNameFlatNumber")
        .str("NumberAndStreet", &person.street_address())
        .null("Village");
    r.str("Town", p.plan.town)
        .str("County", p.plan.county)
        .str("Postcode", &person.postcode(p.plan.districts));
    r.null("ResidentialInstituteCode")
        .null("NHSNumberStatus")
        .null("CarerName")
        .null("CarerRelation");
    r.str(
        "PersonGuid",
        Guid::of(p.salt ^ 0xFE50_4E00, rec.id).as_str(),
    );
    r.opt_date("DateOfDeactivation", known(rec.deactivated()))
        .bool("Deleted", false);
    r.bool("SpineSensitive", false)
        .bool("IsConfidential", false);
    r.opt_str(
        "EmailAddress",
        (person.number % 3 != 0).then(|| person.email()).as_deref(),
    );
    r.null("HomePhone")
        .str("MobilePhone", &person.mobile(u64::from(edited)));
    r.null("ExternalUsualGPGuid")
        .null("ExternalUsualGP")
        .null("ExternalUsualGPOrganisation");
    r.i64("ProcessingId", pid).end();
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

/// An estimated NHS cost for `quantity` of a product, a stable function of its code.
fn cost(dmd: i64, quantity: u16) -> f64 {
    let per_unit = (splitmix64(dmd as u64) % 300) as f64 / 100.0 + 0.02;
    (per_unit * f64::from(quantity) * 100.0).round() / 100.0
}
