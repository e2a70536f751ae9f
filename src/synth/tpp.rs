//! Renders patient records as TPP SystmOne SRK batches (EXTRACTS.md, "TPP SystmOne
//! SRK extract"; tables as in [`crate::source::tpp::tables`]).
//!
//! TPP quirks reproduced here: one batch folder `yyyyMMdd_HHmm` per delivery with
//! `SRCode.parquet` etc. and an `SRManifest` saying which files are delta, bulk or
//! reference; every row keyed on a network-unique `RowIdentifier`, a later row
//! replacing an earlier one; deletes as sparse rows (`RowIdentifier`,
//! `IDOrganisationVisibleTo`, `RemovedData=1`), a removed `SRPatient` meaning all of
//! that patient's data is gone; `SRCode` re-bulked inside one delta batch; CTV3 and
//! SNOMED codes on every coded row, with about one row in ten missing its SNOMED code
//! (empty or "-1") so the `SRCtv3ToSnomed` map is needed; `NumericValue` never null;
//! registration history including registrations elsewhere; 9999-12-31 as "no end".

use std::path::Path;

use crate::source::manifest::{ExtractKind, Manifest, Supplier};
use crate::source::table::TableSpec;
use crate::source::tpp::tables::{
    ALL, SCHEMA_VERSION, SR_APPOINTMENT, SR_CODE, SR_CTV3_TO_SNOMED, SR_MANIFEST, SR_MAPPING,
    SR_PATIENT, SR_PATIENT_REGISTRATION, SR_PRIMARY_CARE_MEDICATION,
};
use crate::synth::SynthError;
use crate::synth::codes::{TPP_LOCAL_UNMAPPED, catalogue};
use crate::synth::people::Sex;
use crate::synth::population::PracticePlan;
use crate::synth::record::{
    Code, Encounter, Event, Issue, Mode, NONE, PatientRecord, Shape, Timeline,
};
use crate::synth::sampling::splitmix64;
use crate::synth::schedule::{Schedule, Version, day_number, micros};
use crate::synth::truth::DefectKind;
use crate::synth::writer::{Cell, DeliveryFiles, DeliveryHeader};

/// `AppointmentStatus` values, listed in `SRMapping`.
const APPOINTMENT_STATUS: &[(i64, &str)] = &[
    (1, "Booked"),
    (2, "Arrived"),
    (3, "Did Not Attend"),
    (4, "Finished"),
    (5, "Cancelled by Patient"),
    (6, "Cancelled by Unit"),
    (7, "In Progress"),
    (8, "Waiting"),
];
const MAPPING_GROUP_APPOINTMENT_STATUS: i64 = 5;
const DID_NOT_ATTEND: i64 = 3;
const FINISHED: i64 = 4;
/// Community services whose entries show up in practice extracts.
const COMMUNITY_ORGANISATION: &str = "RY6";

/// The prescribing tables, absent from the batches of a practice that shares no
/// prescribing.
pub const PRESCRIBING: &[&TableSpec] = &[&SR_PRIMARY_CARE_MEDICATION];

/// Writes one TPP practice's batches.
pub struct TppWriter<'a> {
    plan: &'a PracticePlan,
    schedule: &'a Schedule,
    /// Added to practice-local ids to make `RowIdentifier`s unique across the network.
    base: i64,
    /// The delta batch in which `SRCode` is re-bulked.
    rebulk: Option<u8>,
    /// ODS code of the community pharmacy most patients nominate.
    pharmacy: String,
    /// False when the practice shares no prescribing: no [`PRESCRIBING`] table is written.
    prescribing: bool,
    out: Vec<DeliveryFiles>,
}

impl<'a> TppWriter<'a> {
    /// Creates the batch folders and writes the reference tables into each.
    pub fn open(
        plan: &'a PracticePlan,
        schedule: &'a Schedule,
        root: &Path,
        prescribing: bool,
    ) -> Result<TppWriter<'a>, SynthError> {
        let tables: Vec<&'static TableSpec> = ALL
            .iter()
            .copied()
            .filter(|t| prescribing || !PRESCRIBING.iter().any(|p| p.name == t.name))
            .collect();
        let out = (0..schedule.count() as u8)
            .map(|k| {
                let header = DeliveryHeader {
                    practice: plan.ods.clone(),
                    supplier: Supplier::Tpp,
                    schema_version: SCHEMA_VERSION,
                    extract_id: schedule.tpp_extract_id(k),
                    kind: if k == 0 {
                        ExtractKind::Full
                    } else {
                        ExtractKind::Delta
                    },
                    extracted_at: schedule.get(k).extracted_at,
                };
                let name = |spec: &TableSpec| format!("{}.parquet", spec.name);
                DeliveryFiles::create(root.join(&header.extract_id), header, &tables, name)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let deltas = schedule.count() - 1;
        let rebulk = (deltas >= 1).then(|| deltas.div_ceil(2) as u8);
        let mut writer = TppWriter {
            plan,
            schedule,
            base: (plan.index as i64 + 1) * 10_000_000_000,
            rebulk,
            pharmacy: format!(
                "F{}{:02}",
                &plan.ods[..1],
                splitmix64(plan.index as u64) % 100
            ),
            prescribing,
            out,
        };
        writer.reference_rows();
        Ok(writer)
    }

    fn reference_rows(&mut self) {
        let cat = catalogue();
        for delivery in &mut self.out {
            for (id, text) in APPOINTMENT_STATUS {
                let r = delivery.rows(&SR_MAPPING);
                r.i64("RowIdentifier", *id)
                    .i64("IdMappingGroup", MAPPING_GROUP_APPOINTMENT_STATUS)
                    .str("Mapping", text);
                r.end();
            }
            for (i, concept) in cat.concepts.iter().enumerate() {
                let r = delivery.rows(&SR_CTV3_TO_SNOMED);
                r.i64("RowIdentifier", 1_000_000 + i as i64)
                    .str("IDOrganisationVisibleTo", &self.plan.ods);
                r.str("Ctv3Code", &concept.ctv3)
                    .str("SnomedCode", &concept.snomed_text)
                    .i8("RemovedData", 0)
                    .end();
            }
        }
    }

    fn row_identifier(&self, id: u64) -> i64 {
        self.base + id as i64
    }

    /// The source row id of a patient, event or issue (`RowIdentifier` in decimal).
    pub fn row_id(&self, id: u64) -> String {
        self.row_identifier(id).to_string()
    }

    /// Writes every row of one patient's record to the batches that carry it.
    pub fn record(&mut self, rec: &PatientRecord<'_>, tl: &Timeline) -> Result<(), SynthError> {
        self.patient_rows(rec);
        self.registration_rows(rec);
        for e in &tl.events {
            if e.shape != Shape::BpParent {
                self.code_rows(rec, tl, e);
            }
        }
        if self.prescribing {
            for issue in &tl.issues {
                self.medication_rows(rec, tl, issue);
            }
        }
        for enc in &tl.encounters {
            if rec.live_at(enc.first) {
                self.appointment_row(rec, enc);
            }
        }
        self.out
            .iter_mut()
            .try_for_each(DeliveryFiles::flush_if_full)
    }

    fn removal(&mut self, k: u8, spec: &'static TableSpec, id: u64) {
        let row_identifier = self.row_identifier(id);
        let r = self.out[usize::from(k)].rows(spec);
        r.i64("RowIdentifier", row_identifier)
            .str("IDOrganisationVisibleTo", &self.plan.ods);
        r.rest_with(|column| (column == "RemovedData").then_some(Cell::I8(1)))
            .end();
    }

    fn patient_rows(&mut self, rec: &PatientRecord<'_>) {
        for k in rec.first..=self.schedule.last() {
            if rec.deleted_at == Some(k) {
                self.removal(k, &SR_PATIENT, rec.id);
                break;
            }
            let death_known = |k: u8| self.schedule.knows(rec.death(), k);
            let changed = k > rec.first
                && (death_known(k) != death_known(k - 1) || rec.changed_at == Some(k));
            if k == rec.first || changed {
                self.patient_row(rec, k);
            }
        }
    }

    fn patient_row(&mut self, rec: &PatientRecord<'_>, k: u8) {
        let person = rec.person;
        let nhs = match rec.defect {
            Some(DefectKind::InvalidNhsNumber) => {
                crate::synth::defects::invalid_nhs_number(person.nhs, rec.id)
            }
            Some(DefectKind::MissingNhsNumber) => String::new(),
            _ => person.nhs_text(),
        };
        let death = person.death.filter(|d| self.schedule.knows(Some(*d), k));
        let email = match rec.changed_at {
            Some(c) if k >= c => person.email().replace("@", ".home@"),
            _ => person.email(),
        };
        let id = self.row_identifier(rec.id);
        let r = self.out[usize::from(k)].rows(&SR_PATIENT);
        r.i64("RowIdentifier", id)
            .str("IDOrganisationVisibleTo", &self.plan.ods);
        r.opt_str("Title", person.title(self.schedule.get(k).day))
            .str("FirstName", person.given);
        r.str("MiddleNames", person.middle.unwrap_or(""))
            .str("Surname", person.surname)
            .str("PreviousSurname", "");
        r.str("NHSNumber", &nhs)
            .ts("DateBirth", micros(person.dob, 0))
            .opt_ts("DateDeath", death.map(|d| micros(d, 0)));
        r.str("BirthPlace", "")
            .str("Gender", if person.sex == Sex::Female { "f" } else { "m" });
        r.str("SpeaksEnglish", "Y").str("EmailAddress", &email);
        r.bool("TestPatient", rec.defect == Some(DefectKind::DummyPatient))
            .str("SSRef", "");
        r.bool("SpineMatched", true).i8("RemovedData", 0).end();
    }

    /// Registration history: earlier episodes once, with the patient's first batch;
    /// the episode at this practice again when its end becomes known.
    fn registration_rows(&mut self, rec: &PatientRecord<'_>) {
        let open_end = micros(
            day_number(chrono::NaiveDate::from_ymd_opt(9999, 12, 31).expect("valid")),
            0,
        );
        let current = rec.episodes.len() - 1;
        for k in rec.first..=self.schedule.last() {
            if !rec.live_at(k) {
                break;
            }
            for (i, episode) in rec.episodes.iter().enumerate() {
                let known = |k: u8| i < current || self.schedule.knows(episode.end, k);
                if !(k == rec.first || (i == current && known(k) != known(k - 1))) {
                    continue;
                }
                let end = episode
                    .end
                    .filter(|_| known(k))
                    .map_or(open_end, |d| micros(d, 0));
                let (id, patient) = (self.row_identifier(episode.id), self.row_identifier(rec.id));
                let staff = self.staff(0); // registrations are entered by reception
                let r = self.out[usize::from(k)].rows(&SR_PATIENT_REGISTRATION);
                r.i64("RowIdentifier", id)
                    .str("IDOrganisationVisibleTo", &self.plan.ods);
                r.ts("DateEventRecorded", micros(episode.start, 9 * 60))
                    .i64("IDProfileEnteredBy", staff);
                r.ts("DateRegistration", micros(episode.start, 0))
                    .ts("DateDeRegistration", end);
                r.str("RegistrationStatus", episode.status)
                    .str("PreferredPharmacy", &self.pharmacy);
                r.i64("IDPatient", patient)
                    .str("IDOrganisation", &episode.ods);
                r.str("IDOrganisationRegisteredAt", &self.plan.ods)
                    .i8("RemovedData", 0)
                    .end();
            }
        }
    }

    fn staff(&self, clinician: u8) -> i64 {
        self.base + 10 + i64::from(clinician % 8)
    }

    fn code_rows(&mut self, rec: &PatientRecord<'_>, tl: &Timeline, e: &Event) {
        for k in e.fate.first..=self.schedule.last() {
            if !rec.live_at(k) {
                break;
            }
            if Some(k) == self.rebulk {
                // The re-bulked SRCode holds every current row once; this batch's
                // deletes still arrive as removal rows.
                if let Some(version) = e.fate.state_at(k) {
                    let copies = if e.fate.first == k && e.defect == Some(DefectKind::DuplicateRow)
                    {
                        2
                    } else {
                        1
                    };
                    for _ in 0..copies {
                        self.code_row(rec, tl, e, k, version);
                    }
                } else if e.fate.delete == k {
                    self.removal(k, &SR_CODE, e.id);
                }
                continue;
            }
            for &version in e.fate.versions_at(k) {
                if version == Version::Deleted {
                    self.removal(k, &SR_CODE, e.id);
                    continue;
                }
                let copies =
                    if version == Version::Original && e.defect == Some(DefectKind::DuplicateRow) {
                        2
                    } else {
                        1
                    };
                for _ in 0..copies {
                    self.code_row(rec, tl, e, k, version);
                }
            }
        }
    }

    fn code_row(
        &mut self,
        rec: &PatientRecord<'_>,
        tl: &Timeline,
        e: &Event,
        k: u8,
        version: Version,
    ) {
        let cat = catalogue();
        let h = splitmix64(e.id);
        let (ctv3, term, snomed) = match e.code {
            Code::Concept(c) => {
                let concept = cat.concept(c);
                let snomed = match h % 20 {
                    0 => "",
                    1 => "-1",
                    _ => concept.snomed_text.as_str(),
                };
                (concept.ctv3.as_str(), concept.term.as_str(), snomed)
            }
            Code::TppLocal(i) => {
                let local = &TPP_LOCAL_UNMAPPED[usize::from(i)];
                (local.code, local.term, "")
            }
            Code::EmisLocal(_) | Code::Late { .. } => {
                unreachable!("EMIS codes never reach a TPP practice")
            }
        };
        let done_at = if h % 33 == 7 {
            COMMUNITY_ORGANISATION
        } else {
            self.plan.ods.as_str()
        };
        let episode = match version {
            Version::Intermediate => "New",
            Version::Final => "Ongoing",
            _ if e.problem => "First",
            _ => "",
        };
        let staff = self.staff(if version == Version::Final {
            e.clinician + 1
        } else {
            e.clinician
        });
        let encounter = (e.encounter != NONE).then(|| tl.encounters[e.encounter as usize]);
        let id = self.row_identifier(e.id);
        let patient = self.row_identifier(rec.id);
        let event_id = encounter.map_or(-1, |enc| self.row_identifier(enc.id));
        let appointment_id = encounter.map_or(-1, |enc| self.row_identifier(enc.slot));
        let r = self.out[usize::from(k)].rows(&SR_CODE);
        r.i64("RowIdentifier", id)
            .str("IDOrganisationVisibleTo", &self.plan.ods);
        r.ts("DateEventRecorded", micros(e.entered, e.minute))
            .ts("DateEvent", micros(e.day, 0));
        r.i64("IDProfileEnteredBy", staff)
            .i64("IDDoneBy", staff)
            .str("TextualEventDoneBy", "");
        r.str("IDOrganisationDoneAt", done_at)
            .str("CTV3Code", ctv3)
            .str("CTV3Text", term);
        r.str("SNOMEDCode", snomed).str(
            "SNOMEDText",
            if snomed.is_empty() || snomed == "-1" {
                ""
            } else {
                term
            },
        );
        // NumericValue is never null: 0 when the row carries no value.
        r.str("NumericComparator", e.comparator.unwrap_or(""))
            .bool("IsNumeric", e.value.is_some());
        r.f64("NumericValue", e.value.unwrap_or(0.0))
            .str("NumericUnit", e.unit.spelling().unwrap_or(""));
        r.str("EpisodeType", episode)
            .i64("IDTemplate", -1)
            .i64("IDQuestionnaire", -1)
            .i64("IDEvent", event_id);
        r.i64("IDPatient", patient)
            .i64("IDReferralIn", -1)
            .i64("IDAppointment", appointment_id)
            .i64("IDVisit", -1);
        r.str("IDOrganisation", done_at)
            .str("IDOrganisationRegisteredAt", &self.plan.ods)
            .i8("RemovedData", 0)
            .end();
    }

    fn medication_rows(&mut self, rec: &PatientRecord<'_>, tl: &Timeline, issue: &Issue) {
        for k in issue.fate.first..=self.schedule.last() {
            if !rec.live_at(k) {
                break;
            }
            for &version in issue.fate.versions_at(k) {
                if version == Version::Deleted {
                    self.removal(k, &SR_PRIMARY_CARE_MEDICATION, issue.id);
                    continue;
                }
                let copies = if version == Version::Original
                    && issue.defect == Some(DefectKind::DuplicateRow)
                {
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    self.medication_row(rec, tl, issue, k, version);
                }
            }
        }
    }

    fn medication_row(
        &mut self,
        rec: &PatientRecord<'_>,
        tl: &Timeline,
        issue: &Issue,
        k: u8,
        version: Version,
    ) {
        let course = &tl.courses[issue.course as usize];
        let drug = catalogue().drug(course.drug);
        let staff = self.staff(issue.clinician);
        let (id, patient) = (self.row_identifier(issue.id), self.row_identifier(rec.id));
        let template = if course.repeat {
            self.row_identifier(course.id)
        } else {
            -1
        };
        let r = self.out[usize::from(k)].rows(&SR_PRIMARY_CARE_MEDICATION);
        r.i64("RowIdentifier", id)
            .str("IDOrganisationVisibleTo", &self.plan.ods);
        r.ts("DateEventRecorded", micros(issue.day, issue.minute))
            .ts("DateEvent", micros(issue.day, 0));
        r.i64("IDProfileEnteredBy", staff)
            .i64("IDDoneBy", staff)
            .str("TextualEventDoneBy", "");
        r.str("IDOrganisationDoneAt", &self.plan.ods)
            .i64("IDMultiLexProduct", -1)
            .i64("IDMultiLexPack", -1);
        r.i64("IDMultiLexDMD", drug.dmd)
            .str("NameOfMedication", &drug.term);
        // DateMedicationEnd is the expected end, never updated.
        r.ts("DateMedicationStart", micros(issue.day, 0)).ts(
            "DateMedicationEnd",
            micros(issue.day + i32::from(course.days), 0),
        );
        r.str(
            "MedicationDosage",
            if version == Version::Final {
                "As directed"
            } else {
                drug.dosage()
            },
        );
        r.str(
            "MedicationQuantity",
            &format!("{} {}", course.quantity, drug.unit),
        )
        .bool("IsSupervised", false);
        r.str("SupervisedDose", "")
            .str("UnsupervisedDose", "")
            .bool("IsRepeatMedication", course.repeat);
        r.bool("IsOtherMedication", false)
            .bool("IsDentalMedication", false)
            .bool("IsHospitalMedication", false);
        r.i64("IDRepeatTemplate", template)
            .i64("IDReferralIn", -1)
            .i64("IDEvent", -1)
            .i64("IDPatient", patient);
        r.str("IDOrganisation", &self.plan.ods)
            .str("IDOrganisationRegisteredAt", &self.plan.ods)
            .i8("RemovedData", 0);
        r.end();
    }

    fn appointment_row(&mut self, rec: &PatientRecord<'_>, enc: &Encounter) {
        let planned = if enc.mode == Mode::Home { 30 } else { 10 };
        let wait = (enc.id % 17) as u16;
        let staff = self.staff(enc.clinician);
        let (id, patient) = (self.row_identifier(enc.slot), self.row_identifier(rec.id));
        let booked = micros(enc.day - (enc.id % 14) as i32, 9 * 60);
        let r = self.out[usize::from(enc.first)].rows(&SR_APPOINTMENT);
        r.i64("RowIdentifier", id)
            .str("IDOrganisationVisibleTo", &self.plan.ods);
        r.ts("DateStart", micros(enc.day, enc.minute))
            .ts("DateEnd", micros(enc.day, enc.minute + planned));
        r.i64(
            "AppointmentStatus",
            if enc.attended {
                FINISHED
            } else {
                DID_NOT_ATTEND
            },
        );
        r.ts("DateAppointmentBooked", booked);
        r.opt_ts(
            "DatePatientArrival",
            enc.attended.then(|| micros(enc.day, enc.minute)),
        );
        r.opt_ts(
            "DatePatientSeen",
            enc.attended.then(|| micros(enc.day, enc.minute + wait)),
        );
        r.bool("FollowUpAppointment", enc.id.is_multiple_of(5))
            .bool("TelephoneAppointment", enc.mode == Mode::Telephone);
        r.i64("IDClinician", staff).i64("IDProfileClinician", staff);
        r.str(
            "RotaName",
            if enc.clinician < 3 {
                "GP Session"
            } else {
                "Nurse Clinic"
            },
        )
        .str("RotaType", "Normal");
        r.str("RotaLocation", &self.plan.name)
            .str("RotaCode", "")
            .i64("IDRotaOwner", staff);
        r.i64("IDProfileRotaOwner", staff)
            .bool("AllowsOverbooking", false)
            .str("BookingContactNumber", "");
        r.null("DateAppointmentCancelled")
            .i64("IDRota", staff * 10 + i64::from(enc.day.rem_euclid(7)));
        r.i64("IDReferralIn", -1)
            .i64("IDPatient", patient)
            .str("IDOrganisation", &self.plan.ods);
        r.str("IDOrganisationRegisteredAt", &self.plan.ods)
            .i8("RemovedData", 0)
            .end();
    }

    /// Writes each batch's `SRManifest`, closes every file and writes the manifests.
    pub fn finish(mut self) -> Result<Vec<Manifest>, SynthError> {
        let floor = micros(
            day_number(chrono::NaiveDate::from_ymd_opt(1900, 1, 1).expect("valid")),
            0,
        );
        for k in 0..self.out.len() {
            let to = self
                .schedule
                .get(k as u8)
                .extracted_at
                .and_utc()
                .timestamp_micros();
            let from = if k == 0 {
                floor
            } else {
                self.schedule
                    .get(k as u8 - 1)
                    .extracted_at
                    .and_utc()
                    .timestamp_micros()
            };
            let names: Vec<&'static str> =
                self.out[k].files().iter().map(|f| f.spec().name).collect();
            for name in names.into_iter().filter(|n| *n != SR_MANIFEST.name) {
                let reference = name == SR_CTV3_TO_SNOMED.name || name == SR_MAPPING.name;
                let bulk =
                    k == 0 || reference || (name == SR_CODE.name && Some(k as u8) == self.rebulk);
                let r = self.out[k].rows(&SR_MANIFEST);
                r.str("FileName", name)
                    .str("IsDelta", if bulk { "N" } else { "Y" });
                r.str("IsReference", if reference { "Y" } else { "N" })
                    .ts("DateExtractFrom", from)
                    .ts("DateExtractTo", to);
                r.end();
            }
        }
        self.out.into_iter().map(DeliveryFiles::finish).collect()
    }
}

/// The registration status text of an episode at a member practice; contraceptive
/// services are only registered for women of child-bearing age.
pub fn registration_status(
    temporary: bool,
    days: Option<i32>,
    contraception: bool,
    salt: u64,
) -> &'static str {
    match (temporary, splitmix64(salt) % 20) {
        (true, _) if days.is_some_and(|d| d < 16) => "Temporary Resident < 16 days",
        (true, _) => "Temporary",
        (false, 0..=2) if contraception => "GMS,Contraception",
        (false, 3) => "Standard",
        _ => "GMS",
    }
}
