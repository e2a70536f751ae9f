//! TPP SystmOne adapter: SRPatient, SRPatientRegistration, SRCode and
//! SRPrimaryCareMedication into canonical patients, registrations, events and
//! medications (EXTRACTS.md, "TPP SystmOne SRK extract").

mod events;
mod medications;
mod patients;
pub mod tables;

use std::collections::BTreeSet;

use datafusion::arrow::array::RecordBatch;

use crate::ingest::quarantine::QuarantineBuilder;
use crate::source::derive::Derived;
use crate::source::emis::States;
use crate::source::read::state_schema;
use crate::source::table::TableSpec;

fn state<'a>(
    states: &'a States,
    spec: &'static TableSpec,
    empty: &'a mut Option<RecordBatch>,
) -> &'a RecordBatch {
    match states.get(spec.name) {
        Some(b) => b,
        None => empty.insert(RecordBatch::new_empty(state_schema(spec))),
    }
}

pub fn derive(practice: &str, states: &States) -> Derived {
    let mut quarantine = QuarantineBuilder::new(practice, "tpp");
    let (mut e1, mut e2, mut e3, mut e4, mut e5) = (None, None, None, None, None);
    let sr_patient = state(states, &tables::SR_PATIENT, &mut e1);
    let (patients, index) = patients::derive_patients(practice, sr_patient);
    let sr_registration = state(states, &tables::SR_PATIENT_REGISTRATION, &mut e2);
    let registrations =
        patients::derive_registrations(practice, sr_registration, &index, &mut quarantine);
    let map = state(states, &tables::SR_CTV3_TO_SNOMED, &mut e3);
    let sr_code = state(states, &tables::SR_CODE, &mut e4);
    let (events, mut code_systems) =
        events::derive(practice, sr_code, map, &index, &mut quarantine);
    let sr_medication = state(states, &tables::SR_PRIMARY_CARE_MEDICATION, &mut e5);
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
