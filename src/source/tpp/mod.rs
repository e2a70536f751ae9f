//! TPP SystmOne adapter: SRPatient, SRPatientRegistration, SRCode and
//! SRPrimaryCareMedication into canonical patients, registrations, events and
//! medications (EXTRACTS.md, "TPP SystmOne SRK extract").

mod events;
mod medications;
mod patients;
pub mod tables;

use std::collections::BTreeSet;

use crate::ingest::quarantine::QuarantineBuilder;
use crate::source::derive::{CanonicalSink, Derivation, StateSource};
use crate::store::StoreError;

/// Derives the canonical tables of a TPP practice from its source state into
/// `out`; SRCode and medications are read a batch at a time.
pub fn derive(
    practice: &str,
    state: &dyn StateSource,
    out: &mut dyn CanonicalSink,
) -> Result<Derivation, StoreError> {
    let mut quarantine = QuarantineBuilder::new(practice, "tpp");
    let sr_patient = &state.whole(&tables::SR_PATIENT)?;
    let (patients, index) = patients::derive_patients(practice, sr_patient);
    out.push(patients)?;
    let sr_registration = &state.whole(&tables::SR_PATIENT_REGISTRATION)?;
    out.push(patients::derive_registrations(
        practice,
        sr_registration,
        &index,
        &mut quarantine,
    ))?;
    let map = &state.whole(&tables::SR_CTV3_TO_SNOMED)?;
    let mut code_systems = BTreeSet::new();
    state.batches(&tables::SR_CODE, &mut |sr_code| {
        let (events, systems) = events::derive(practice, &sr_code, map, &index, &mut quarantine);
        code_systems.extend(systems);
        out.push(events)
    })?;
    let mut medications_loaded = 0;
    state.batches(&tables::SR_PRIMARY_CARE_MEDICATION, &mut |sr_medication| {
        let medications = medications::derive(practice, &sr_medication, &index, &mut quarantine);
        medications_loaded += medications.loaded();
        out.push(medications)
    })?;
    if medications_loaded > 0 {
        code_systems.insert("dmd");
    }
    Ok(Derivation {
        quarantine,
        code_systems,
    })
}
