//! Writes one member practice's deliveries: for each patient record, builds the
//! clinical timeline, decides what later deliveries change or delete, injects
//! defects, renders the rows with the practice's supplier writer, and keeps the
//! ground truth (expected rows after all deliveries, defects, deleted patients,
//! records of people who moved).
//!
//! Each record draws from its own streams (clinical content, fates, defects), keyed
//! by practice and record, so practices can be written in parallel and a change of
//! defect rates leaves the clinical content untouched.

use std::collections::BTreeMap;

use crate::source::manifest::{Manifest, Supplier};
use crate::synth::SynthConfig;
use crate::synth::SynthError;
use crate::synth::clinical;
use crate::synth::conditions::Profile;
use crate::synth::defects::{
    Context, Injected, Picker, RowKind, first_late_code, inject, patient_defect,
};
use crate::synth::emis::EmisWriter;
use crate::synth::people::Sex;
use crate::synth::population::{Network, PracticePlan};
use crate::synth::record::{Episode, PatientRecord, Shape, Timeline};
use crate::synth::registrations::{Leaving, MoveSide, RecordPlan, RegKind};
use crate::synth::sampling::{Purpose, Stream, chance, index, key, stream};
use crate::synth::schedule::{Schedule, assign_fates, day_number};
use crate::synth::tpp::{TppWriter, registration_status};
use crate::synth::truth::{Defect, DefectKind, PracticeTruth};

/// Share of records, per practice, deleted by a delta (at least one when there are deltas).
const PATIENT_DELETE_SHARE: f64 = 0.001;
/// Probability, per later delta, that a patient's demographics are edited.
const DEMOGRAPHIC_EDIT_PER_DELTA: f64 = 0.003;
/// First practice-local id handed to patient records (lower ids are practice-level).
const FIRST_RECORD_ID: u64 = 1000;

/// One record of a person registered at two member practices.
#[derive(Debug, Clone)]
pub struct MoverRecord {
    pub mover: u32,
    pub side: MoveSide,
    pub ods: String,
    pub patient_id: String,
    /// Carries a valid NHS number (no NHS-number defect).
    pub linkable: bool,
}

/// What writing one practice produced.
#[derive(Debug)]
pub struct PracticeOutput {
    pub truth: PracticeTruth,
    pub defects: Vec<Defect>,
    pub movers: Vec<MoverRecord>,
    pub manifests: Vec<Manifest>,
}

enum Writer<'a> {
    Emis(EmisWriter<'a>),
    Tpp(TppWriter<'a>),
}

impl Writer<'_> {
    fn record(&mut self, rec: &PatientRecord<'_>, tl: &Timeline) -> Result<(), SynthError> {
        match self {
            Writer::Emis(w) => w.record(rec, tl),
            Writer::Tpp(w) => w.record(rec, tl),
        }
    }

    fn row_id(&self, id: u64) -> String {
        match self {
            Writer::Emis(w) => w.row_id(id),
            Writer::Tpp(w) => w.row_id(id),
        }
    }

    fn finish(self) -> Result<Vec<Manifest>, SynthError> {
        match self {
            Writer::Emis(w) => w.finish(),
            Writer::Tpp(w) => w.finish(),
        }
    }
}

/// Source table of each kind of defective row.
fn defect_table(supplier: Supplier, row: RowKind) -> &'static str {
    match (supplier, row) {
        (Supplier::Emis, RowKind::Patient) => "Admin_Patient",
        (Supplier::Emis, RowKind::Event) => "CareRecord_Observation",
        (Supplier::Emis, RowKind::Issue) => "Prescribing_IssueRecord",
        (Supplier::Tpp, RowKind::Patient) => "SRPatient",
        (Supplier::Tpp, RowKind::Event) => "SRCode",
        (Supplier::Tpp, RowKind::Issue) => "SRPrimaryCareMedication",
    }
}

/// Live rows per canonical table once every delivery is applied.
#[derive(Debug, Default)]
struct Expected {
    /// False when the practice's deliveries carry no medication tables.
    prescribing: bool,
    patients: u64,
    registrations: u64,
    events: u64,
    medications: u64,
}

impl Expected {
    fn add(&mut self, supplier: Supplier, rec: &PatientRecord<'_>, tl: &Timeline) {
        if rec.deleted_at.is_some() {
            return; // a deleted patient takes all their rows with them
        }
        let emis = supplier == Supplier::Emis;
        self.patients += 1;
        // EMIS: the latest registration, on the patient row; TPP: the history table.
        self.registrations += if emis { 1 } else { rec.episodes.len() as u64 };
        self.events += tl
            .events
            .iter()
            .filter(|e| e.fate.survives() && (emis || e.shape != Shape::BpParent))
            .count() as u64;
        if self.prescribing {
            self.medications += tl.issues.iter().filter(|i| i.fate.survives()).count() as u64;
        }
    }

    fn into_map(self) -> BTreeMap<String, u64> {
        BTreeMap::from([
            ("patients".to_string(), self.patients),
            ("registrations".to_string(), self.registrations),
            ("events".to_string(), self.events),
            ("medications".to_string(), self.medications),
        ])
    }
}

/// Writes practice `index` of the network.
pub fn write_practice(
    cfg: &SynthConfig,
    network: &Network,
    schedule: &Schedule,
    index: usize,
) -> Result<PracticeOutput, SynthError> {
    let plan = &network.practices[index];
    let root = cfg.out.join(&plan.ods);
    // The last `without_prescribing` practices share no prescribing: their records
    // are drawn as for any other practice, but no medication table is written.
    let prescribing = index < network.practices.len() - cfg.without_prescribing;
    let mut rng = stream(cfg.seed, Purpose::Practice, index as u64, 0);
    let clinicians = (4 + plan.records.len() / 1500).min(20) as u8;
    let mut writer = match plan.supplier {
        Supplier::Emis => {
            let salt = key(cfg.seed, Purpose::Identifiers, index as u64, 0);
            Writer::Emis(EmisWriter::open(
                plan,
                schedule,
                &root,
                salt,
                clinicians,
                prescribing,
                &mut rng,
            )?)
        }
        Supplier::Tpp => Writer::Tpp(TppWriter::open(plan, schedule, &root, prescribing)?),
    };
    let deletions = choose_deletions(plan, schedule, &mut rng);
    let picker = Picker::new(&cfg.defect_rates);
    let as_of = day_number(cfg.as_of);

    let mut ids = FIRST_RECORD_ID;
    let mut next_late_code = first_late_code(index);
    let mut timeline = Timeline::default();
    let mut injected: Vec<Injected> = Vec::new();
    let mut expected = Expected {
        prescribing,
        ..Expected::default()
    };
    let mut movers = Vec::new();
    let mut deleted_patients = Vec::new();
    for (number, plan_record) in plan.records.iter().enumerate() {
        let streams = |purpose| stream(cfg.seed, purpose, index as u64, number as u64);
        let (mut clinical_rng, mut fate_rng, mut defect_rng) = (
            streams(Purpose::Clinical),
            streams(Purpose::Fates),
            streams(Purpose::Defects),
        );
        let mut rec = patient_record(
            network,
            plan,
            schedule,
            plan_record,
            number as u32,
            deletions[number],
            &mut ids,
        );
        rec.changed_at = demographic_edit(&mut fate_rng, &rec, schedule);
        if rec.deleted_at.is_none() {
            rec.defect = patient_defect(&picker, &mut defect_rng, plan_record.mover.is_some());
        }

        let profile = Profile::draw(cfg.seed, rec.person, as_of);
        clinical::build(
            &rec,
            &profile,
            clinicians,
            &mut clinical_rng,
            &mut ids,
            &mut timeline,
        );
        assign_fates(
            &mut timeline,
            schedule,
            &mut fate_rng,
            rec.deleted_at.is_none(),
        );
        if rec.deleted_at.is_none() {
            let mut ctx = Context {
                supplier: plan.supplier,
                schedule,
                dob: rec.person.dob,
                death: rec.person.death,
                next_late_code: &mut next_late_code,
            };
            inject(
                &mut timeline,
                &mut ctx,
                &picker,
                &mut defect_rng,
                &mut injected,
            );
        }
        if let Some(kind) = rec.defect {
            injected.push(Injected {
                kind,
                row: RowKind::Patient,
                id: rec.id,
                delivery: rec.first,
            });
        }
        expected.add(plan.supplier, &rec, &timeline);
        writer.record(&rec, &timeline)?;

        if rec.deleted_at.is_some() {
            deleted_patients.push(writer.row_id(rec.id));
        }
        if let Some(link) = plan_record.mover {
            let nhs_defect = matches!(
                rec.defect,
                Some(DefectKind::InvalidNhsNumber | DefectKind::MissingNhsNumber)
            );
            movers.push(MoverRecord {
                mover: link.mover,
                side: link.side,
                ods: plan.ods.clone(),
                patient_id: writer.row_id(rec.id),
                linkable: !nhs_defect,
            });
        }
    }

    let defects = injected
        .iter()
        // Defects injected into issues that are never written are not in the files.
        .filter(|d| prescribing || d.row != RowKind::Issue)
        .map(|d| Defect {
            kind: d.kind,
            practice: plan.ods.clone(),
            table: defect_table(plan.supplier, d.row).to_string(),
            row_id: writer.row_id(d.id),
            extract_id: extract_id(plan.supplier, schedule, d.delivery),
        })
        .collect();
    let manifests = writer.finish()?;
    let truth = PracticeTruth {
        ods: plan.ods.clone(),
        supplier: plan.supplier,
        deliveries: (0..schedule.count() as u8)
            .map(|k| extract_id(plan.supplier, schedule, k))
            .collect(),
        expected_rows: expected.into_map(),
        expected_quarantine: BTreeMap::new(),
        deleted_patients,
    };
    tracing::info!(practice = %plan.ods, supplier = %plan.supplier, records = plan.records.len(), "practice written");
    Ok(PracticeOutput {
        truth,
        defects,
        movers,
        manifests,
    })
}

fn extract_id(supplier: Supplier, schedule: &Schedule, k: u8) -> String {
    match supplier {
        Supplier::Emis => schedule.emis_extract_id(k),
        Supplier::Tpp => schedule.tpp_extract_id(k),
    }
}

/// The record's patient-level facts; ids for the patient and its registration
/// episodes come from `ids`.
pub(crate) fn patient_record<'a>(
    network: &'a Network,
    plan: &PracticePlan,
    schedule: &Schedule,
    record: &'a RecordPlan,
    number: u32,
    deleted_at: Option<u8>,
    ids: &mut u64,
) -> PatientRecord<'a> {
    let mut next_id = || {
        *ids += 1;
        *ids
    };
    let id = next_id();
    let mut episodes = Vec::with_capacity(2);
    if let Some(prior) = record.prior {
        let ods = network.prior_ods(prior.org).to_string();
        episodes.push(Episode {
            id: next_id(),
            ods,
            start: prior.start,
            end: Some(prior.end),
            status: "GMS",
        });
    }
    let person = &network.persons[record.person as usize];
    let temporary = record.kind == RegKind::Temporary;
    let child_bearing =
        person.sex == Sex::Female && (15.0..50.0).contains(&person.age_on(record.start));
    let status = registration_status(
        temporary,
        record.end.map(|e| e - record.start),
        child_bearing,
        id,
    );
    episodes.push(Episode {
        id: next_id(),
        ods: plan.ods.clone(),
        start: record.start,
        end: record.end,
        status,
    });

    let mut last_entry_day = schedule.last_entry_day();
    let mut last_event_day = last_entry_day;
    if let Some(end) = record.end {
        last_event_day = last_event_day.min(if record.leaving == Leaving::Died {
            end
        } else {
            end - 1
        });
    }
    if let Some(k) = deleted_at {
        // Nothing may arrive for the patient in the delta that deletes them.
        last_entry_day = schedule.get(k - 1).day - 1;
        last_event_day = last_event_day.min(last_entry_day - 5);
    }
    PatientRecord {
        id,
        number,
        person,
        plan: record,
        first: schedule.delivery_of(record.start),
        deleted_at,
        changed_at: None,
        defect: None,
        episodes,
        last_event_day,
        last_entry_day,
    }
}

/// A delta editing the patient's demographics, if any.
fn demographic_edit(rng: &mut Stream, rec: &PatientRecord<'_>, schedule: &Schedule) -> Option<u8> {
    let later = schedule.last().saturating_sub(rec.first);
    if rec.deleted_at.is_some()
        || later == 0
        || !chance(rng, DEMOGRAPHIC_EDIT_PER_DELTA * f64::from(later))
    {
        return None;
    }
    Some(rec.first + 1 + index(rng, usize::from(later)) as u8)
}

/// Patients a delta deletes (EMIS patient delete, TPP `SRPatient` removal): at least
/// one per practice when there are deltas, preferring records that ended long before
/// the bulk (EMIS's "rolling deletes"); never a person registered at two practices.
fn choose_deletions(plan: &PracticePlan, schedule: &Schedule, rng: &mut Stream) -> Vec<Option<u8>> {
    let mut deletions = vec![None; plan.records.len()];
    let deltas = usize::from(schedule.last());
    if deltas == 0 {
        return deletions;
    }
    let bulk_day = schedule.get(0).day;
    let candidates: Vec<usize> = (0..plan.records.len())
        .filter(|i| {
            let r = &plan.records[*i];
            r.mover.is_none() && r.kind == RegKind::Regular && r.start < bulk_day - 30
        })
        .collect();
    let long_ended: Vec<usize> = candidates
        .iter()
        .copied()
        .filter(|i| plan.records[*i].end.is_some_and(|e| e < bulk_day - 300))
        .collect();
    let count = ((plan.records.len() as f64 * PATIENT_DELETE_SHARE).round() as usize).max(1);
    let mut pool = if long_ended.len() >= count {
        long_ended
    } else {
        candidates
    };
    for chosen in 0..count.min(pool.len()) {
        let j = chosen + index(rng, pool.len() - chosen);
        pool.swap(chosen, j);
        deletions[pool[chosen]] = Some(1 + index(rng, deltas) as u8);
    }
    deletions
}
