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

mod care_record;
mod prescribing;

use std::path::Path;

use crate::source::emis::tables::{
    ADMIN_ORGANISATION, ADMIN_PATIENT, ADMIN_USER_IN_ROLE, AGREEMENTS_SHARING_ORGANISATION, ALL,
    CODING_CLINICAL_CODE, CODING_DRUG_CODE, PRESCRIBING_DRUG_RECORD, PRESCRIBING_ISSUE_RECORD,
    SCHEMA_VERSION,
};
use crate::source::manifest::{ExtractKind, Manifest, Supplier};
use crate::source::table::TableSpec;
use crate::synth::SynthError;
use crate::synth::codes::{Concept, EMIS_LOCAL, catalogue};
use crate::synth::people::Sex;
use crate::synth::population::PracticePlan;
use crate::synth::record::{PatientRecord, Timeline};
use crate::synth::registrations::RegKind;
use crate::synth::sampling::{Stream, between, pick};
use crate::synth::schedule::{Schedule, Version, day_number};
use crate::synth::truth::DefectKind;
use crate::synth::writer::{Cell, DeliveryFiles, DeliveryHeader, Guid, Rows};

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
pub(super) struct Practice<'a> {
    pub(super) plan: &'a PracticePlan,
    pub(super) schedule: &'a Schedule,
    pub(super) salt: u64,
    pub(super) organisation: Guid,
    pub(super) clinicians: Vec<Guid>,
}

impl Practice<'_> {
    pub(super) fn guid(&self, id: u64) -> Guid {
        Guid::of(self.salt, id)
    }
}

/// The prescribing tables, absent from the deliveries of a practice that shares no
/// prescribing (`Coding_DrugCode` is a look-up and stays).
pub const PRESCRIBING: &[&TableSpec] = &[&PRESCRIBING_DRUG_RECORD, &PRESCRIBING_ISSUE_RECORD];

/// Writes one EMIS practice's deliveries.
pub struct EmisWriter<'a> {
    pub(super) practice: Practice<'a>,
    /// False when the practice shares no prescribing: no [`PRESCRIBING`] table is written.
    prescribing: bool,
    pub(super) out: Vec<DeliveryFiles>,
    /// Coding rows owed to each delivery for late `CodeId`s used in the one before.
    pub(super) late: Vec<Vec<(i64, u16)>>,
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
        prescribing: bool,
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
        let tables: Vec<&'static TableSpec> = ALL
            .iter()
            .copied()
            .filter(|t| prescribing || !PRESCRIBING.iter().any(|p| p.name == t.name))
            .collect();
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
                let name = |spec: &TableSpec| {
                    format!(
                        "{:06}-{:06}_{}_{stamp}_{}.parquet",
                        d.first_pid,
                        d.last_pid,
                        spec.name,
                        agreement.as_str()
                    )
                };
                DeliveryFiles::create(root.join(&header.extract_id), header, &tables, name)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut writer = EmisWriter {
            practice,
            prescribing,
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
                .str("GivenName", pick::<&str>(rng, STAFF_GIVEN))
                .str("Surname", pick::<&str>(rng, STAFF_SURNAMES));
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
        for drug in &cat.formulary.drugs {
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
        if self.prescribing {
            for course in &tl.courses {
                self.drug_record_rows(rec, tl, course, &patient);
            }
            self.issue_rows(rec, tl, &patient);
        }
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
pub(super) fn sparse_delete(
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
        (!person.number.is_multiple_of(3))
            .then(|| person.email())
            .as_deref(),
    );
    r.null("HomePhone")
        .str("MobilePhone", &person.mobile(u64::from(edited)));
    r.null("ExternalUsualGPGuid")
        .null("ExternalUsualGP")
        .null("ExternalUsualGPOrganisation");
    r.i64("ProcessingId", pid).end();
}
