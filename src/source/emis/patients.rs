//! Admin_Patient → canonical patients and registrations.
//!
//! EMIS quirks handled here:
//! - `PatientTypeDescription` has leading spaces; " Dummy" (or a `DummyType`)
//!   marks a test patient, " Temporary" a temporary resident.
//! - Admin_Patient holds only the latest registration
//!   (`DateOfRegistration` … `DateOfDeactivation`): one registration row each.

use std::collections::BTreeMap;

use datafusion::arrow::array::RecordBatch;

use super::tables::ADMIN_PATIENT;
use crate::canonical::tables::{
    PatientRow, PatientsBuilder, RegistrationRow, RegistrationsBuilder,
};
use crate::canonical::{CanonicalTable, Provenance};
use crate::ingest::quarantine::QuarantineBuilder;
use crate::source::columns::{Columns, date, text};
use crate::source::derive::{DerivedTable, PatientFacts, PatientIndex, birth_date, person_key};

fn registration_type(description: Option<&str>) -> &'static str {
    match description.map(str::to_ascii_lowercase).as_deref() {
        Some("regular") | Some("gms") => "gms",
        Some(d) if d.starts_with("temporary") => "temporary",
        Some("private") => "private",
        Some("dummy") => "test",
        _ => "other",
    }
}

fn is_dummy(description: Option<&str>, dummy_type: Option<&str>) -> bool {
    description.is_some_and(|d| d.eq_ignore_ascii_case("dummy"))
        || dummy_type
            .is_some_and(|t| !matches!(t.to_ascii_lowercase().as_str(), "0" | "false" | "none"))
}

fn sex(raw: Option<&str>) -> &'static str {
    match raw {
        Some("M" | "m") => "M",
        Some("F" | "f") => "F",
        Some("I" | "i") => "I",
        _ => "U",
    }
}

pub(super) fn derive(
    practice: &str,
    admin: &RecordBatch,
    _quarantine: &mut QuarantineBuilder,
) -> (DerivedTable, DerivedTable, PatientIndex) {
    let c = Columns::new(admin);
    let origin = c.origin();
    let (guid, nhs, sex_col, dob_col, dod) = (
        c.str("PatientGuid"),
        c.str("NhsNumber"),
        c.str("Sex"),
        c.date("DateOfBirth"),
        c.date("DateOfDeath"),
    );
    let (desc, dummy, reg, dereg) = (
        c.str("PatientTypeDescription"),
        c.str("DummyType"),
        c.date("DateOfRegistration"),
        c.date("DateOfDeactivation"),
    );

    let mut patients = PatientsBuilder::default();
    let mut registrations = RegistrationsBuilder::default();
    let mut index = PatientIndex::with_capacity(admin.num_rows());
    for i in 0..admin.num_rows() {
        // Merge guarantees the key (PatientGuid) is present on every state row.
        let id = text(guid, i).unwrap_or_default();
        let nhs_number = text(nhs, i);
        let (key, status) = person_key(practice, id, nhs_number);
        let description = text(desc, i);
        let (dob, dob_flag) = birth_date(date(dob_col, i), origin.extracted_day(i));
        let provenance = Provenance {
            practice,
            supplier: "emis",
            source_table: ADMIN_PATIENT.name,
            source_row_id: id,
            extract_id: origin.extract_id.value(i),
            extracted_at: origin.extracted_at(i),
        };
        patients.append(
            &PatientRow {
                person_key: &key,
                patient_id: id,
                nhs_number,
                nhs_number_status: status.as_str(),
                sex: sex(text(sex_col, i)),
                date_of_birth: dob,
                date_of_birth_flag: dob_flag,
                date_of_death: date(dod, i),
                is_test_patient: is_dummy(description, text(dummy, i)),
            },
            &provenance,
        );
        registrations.append(
            &RegistrationRow {
                person_key: &key,
                patient_id: id,
                registered_at: Some(practice),
                start_date: date(reg, i),
                end_date: date(dereg, i),
                registration_type: registration_type(description),
                status_text: description,
            },
            &provenance,
        );
        index.insert(
            id.to_string(),
            PatientFacts {
                person_key: key,
                date_of_birth: dob,
                date_of_death: date(dod, i),
            },
        );
    }
    let rows = admin.num_rows() as u64;
    let table = |table, batch| DerivedTable {
        table,
        source_table: ADMIN_PATIENT.name,
        batch,
        source_rows: rows,
        quarantined: BTreeMap::new(),
    };
    (
        table(CanonicalTable::Patients, patients.finish()),
        table(CanonicalTable::Registrations, registrations.finish()),
        index,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patient_type_descriptions() {
        // Values arrive with leading spaces; `text` trims them before these rules.
        let cases = [
            (Some("Regular"), "gms"),
            (Some("Temporary"), "temporary"),
            (Some("Private"), "private"),
            (Some("Dummy"), "test"),
            (Some("Other"), "other"),
            (None, "other"),
        ];
        for (description, expected) in cases {
            assert_eq!(registration_type(description), expected, "{description:?}");
        }
    }

    #[test]
    fn dummy_patients() {
        let cases = [
            (Some("Dummy"), None, true),
            (Some("Regular"), Some("Test"), true),
            (Some("Regular"), Some("false"), false),
            (Some("Regular"), None, false),
        ];
        for (description, dummy_type, expected) in cases {
            assert_eq!(
                is_dummy(description, dummy_type),
                expected,
                "{description:?} {dummy_type:?}"
            );
        }
    }
}
