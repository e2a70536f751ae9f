//! TPP SystmOne adapter: SRPatient, SRPatientRegistration, SRCode and
//! SRPrimaryCareMedication into canonical patients, registrations, events and
//! medications (EXTRACTS.md, "TPP SystmOne SRK extract").

mod events;
mod medications;
mod patients;
pub mod tables;

use std::collections::BTreeSet;

use crate::ingest::quarantine::QuarantineBuilder;
use crate::source::derive::{Derived, States, state_of};

pub fn derive(practice: &str, states: &States) -> Derived {
    let mut quarantine = QuarantineBuilder::new(practice, "tpp");
    let sr_patient = &state_of(states, &tables::SR_PATIENT);
    let (patients, index) = patients::derive_patients(practice, sr_patient);
    let sr_registration = &state_of(states, &tables::SR_PATIENT_REGISTRATION);
    let registrations =
        patients::derive_registrations(practice, sr_registration, &index, &mut quarantine);
    let map = &state_of(states, &tables::SR_CTV3_TO_SNOMED);
    let sr_code = &state_of(states, &tables::SR_CODE);
    let (events, mut code_systems) =
        events::derive(practice, sr_code, map, &index, &mut quarantine);
    let sr_medication = &state_of(states, &tables::SR_PRIMARY_CARE_MEDICATION);
    let medications = medications::derive(practice, sr_medication, &index, &mut quarantine);
    if medications.loaded() > 0 {
        code_systems.insert("dmd");
    }
    let code_systems: BTreeSet<&'static str> = code_systems;
    Derived {
        tables: vec![patients, registrations, events, medications],
        quarantine,
        code_systems,
    }
}
