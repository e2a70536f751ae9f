//! SRPatient → canonical patients; SRPatientRegistration → registrations.
//!
//! TPP quirks handled here:
//! - `SRPatient.RowIdentifier` is the patient id other tables call `IDPatient`.
//! - `DateDeath`/`DateDeRegistration` 9999-12-31 mean "none"; 1900-01-01 is the
//!   floor for undated registrations (read as unknown).
//! - `RegistrationStatus` is free text, possibly comma-separated
//!   ("GMS,Contraception"); the registration history includes other practices
//!   (`IDOrganisation`).

use std::collections::BTreeMap;

use datafusion::arrow::array::RecordBatch;

use super::tables::{SR_PATIENT, SR_PATIENT_REGISTRATION};
use crate::canonical::tables::{
    PatientRow, PatientsBuilder, RegistrationRow, RegistrationsBuilder,
};
use crate::canonical::{CanonicalTable, Provenance};
use crate::ingest::quarantine::{QuarantineBuilder, Reason};
use crate::source::columns::{Columns, FLOOR_DAYS, flag, int, open_end, text, ts_day};
use crate::source::derive::{
    DerivedTable, PatientFacts, PatientIndex, birth_date, count, person_key,
};

fn gender(raw: Option<&str>) -> &'static str {
    match raw.map(str::to_ascii_lowercase).as_deref() {
        Some("m") => "M",
        Some("f") => "F",
        Some("i") => "I",
        _ => "U",
    }
}

/// The registration type from TPP's free-text status; temporary wins over GMS
/// when both appear, because a temporary resident is not on the practice list.
fn registration_type(status: Option<&str>) -> &'static str {
    let tokens: Vec<String> = status
        .unwrap_or_default()
        .split(',')
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    if tokens.iter().any(|t| t.starts_with("temporary")) {
        "temporary"
    } else if tokens.iter().any(|t| t == "gms" || t == "standard") {
        "gms"
    } else if tokens.iter().any(|t| t == "private") {
        "private"
    } else {
        "other"
    }
}

fn undated_floor(day: Option<i32>) -> Option<i32> {
    day.filter(|d| *d != FLOOR_DAYS)
}

pub(super) fn derive_patients(
    practice: &str,
    sr_patient: &RecordBatch,
) -> (DerivedTable, PatientIndex) {
    let c = Columns::new(sr_patient);
    let origin = c.origin();
    let (row_id, nhs, gender_col) = (c.i64("RowIdentifier"), c.str("NHSNumber"), c.str("Gender"));
    let (birth, death, test) = (c.ts("DateBirth"), c.ts("DateDeath"), c.bool("TestPatient"));
    let mut patients = PatientsBuilder::default();
    let mut index = PatientIndex::with_capacity(sr_patient.num_rows());
    for i in 0..sr_patient.num_rows() {
        let id = int(row_id, i).unwrap_or_default().to_string();
        let nhs_number = text(nhs, i);
        let (key, status) = person_key(practice, &id, nhs_number);
        let (dob, dob_flag) = birth_date(undated_floor(ts_day(birth, i)), origin.extracted_day(i));
        let dod = open_end(ts_day(death, i));
        patients.append(
            &PatientRow {
                person_key: &key,
                patient_id: &id,
                nhs_number,
                nhs_number_status: status.as_str(),
                sex: gender(text(gender_col, i)),
                date_of_birth: dob,
                date_of_birth_flag: dob_flag,
                date_of_death: dod,
                is_test_patient: flag(test, i),
            },
            &Provenance {
                practice,
                supplier: "tpp",
                source_table: SR_PATIENT.name,
                source_row_id: &id,
                extract_id: origin.extract_id.value(i),
                extracted_at: origin.extracted_at(i),
            },
        );
        index.insert(
            id,
            PatientFacts {
                person_key: key,
                date_of_birth: dob,
                date_of_death: dod,
            },
        );
    }
    let table = DerivedTable {
        table: CanonicalTable::Patients,
        source_table: SR_PATIENT.name,
        batch: patients.finish(),
        source_rows: sr_patient.num_rows() as u64,
        quarantined: BTreeMap::new(),
    };
    (table, index)
}

pub(super) fn derive_registrations(
    practice: &str,
    sr_registration: &RecordBatch,
    patients: &PatientIndex,
    quarantine: &mut QuarantineBuilder,
) -> DerivedTable {
    let c = Columns::new(sr_registration);
    let origin = c.origin();
    let (row_id, patient, org) = (
        c.i64("RowIdentifier"),
        c.i64("IDPatient"),
        c.str("IDOrganisation"),
    );
    let (start, end, status) = (
        c.ts("DateRegistration"),
        c.ts("DateDeRegistration"),
        c.str("RegistrationStatus"),
    );
    let mut registrations = RegistrationsBuilder::default();
    let mut quarantined = BTreeMap::new();
    for i in 0..sr_registration.num_rows() {
        let id = int(row_id, i).unwrap_or_default().to_string();
        let patient_id = int(patient, i).map(|p| p.to_string()).unwrap_or_default();
        let Some(facts) = patients.get(&patient_id) else {
            quarantine.push(
                &SR_PATIENT_REGISTRATION,
                &c,
                i,
                Some(&id),
                Reason::OrphanPatient,
                format!("IDPatient {patient_id} is not in SRPatient"),
            );
            count(&mut quarantined, Reason::OrphanPatient);
            continue;
        };
        let status_text = text(status, i);
        registrations.append(
            &RegistrationRow {
                person_key: &facts.person_key,
                patient_id: &patient_id,
                registered_at: text(org, i),
                start_date: undated_floor(ts_day(start, i)),
                end_date: open_end(ts_day(end, i)),
                registration_type: registration_type(status_text),
                status_text,
            },
            &Provenance {
                practice,
                supplier: "tpp",
                source_table: SR_PATIENT_REGISTRATION.name,
                source_row_id: &id,
                extract_id: origin.extract_id.value(i),
                extracted_at: origin.extracted_at(i),
            },
        );
    }
    DerivedTable {
        table: CanonicalTable::Registrations,
        source_table: SR_PATIENT_REGISTRATION.name,
        batch: registrations.finish(),
        source_rows: sr_registration.num_rows() as u64,
        quarantined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_statuses() {
        let cases = [
            (Some("GMS"), "gms"),
            (Some("GMS,Contraception"), "gms"),
            (Some("Standard"), "gms"),
            (Some("Temporary Resident < 16 days"), "temporary"),
            (Some("GMS,Temporary"), "temporary"),
            (Some("Private"), "private"),
            (Some("Applied"), "other"),
            (Some("Emergency"), "other"),
            (None, "other"),
        ];
        for (status, expected) in cases {
            assert_eq!(registration_type(status), expected, "{status:?}");
        }
    }

    #[test]
    fn genders() {
        let cases = [
            (Some("m"), "M"),
            (Some("F"), "F"),
            (Some("i"), "I"),
            (Some("u"), "U"),
            (None, "U"),
        ];
        for (raw, expected) in cases {
            assert_eq!(gender(raw), expected, "{raw:?}");
        }
    }
}
