//! Tiny canonical stores for cohort tests, written from readable rows with the
//! canonical builders, one `state.json` per practice; the fixture terminology
//! release and value-set catalogue; and runners for the engine and the
//! reference evaluator over the same store.
//!
//! Include with `#[path = "cohort_support/mod.rs"] mod cohort_support;`.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chrono::{NaiveDate, NaiveDateTime};
use phm::canonical::tables::{
    CanonicalTable, EventRow, EventsBuilder, MedicationRow, MedicationsBuilder, PatientRow,
    PatientsBuilder, Provenance, RegistrationRow, RegistrationsBuilder,
};
use phm::canonical::units::canonical_unit;
use phm::cohort::Cohort;
use phm::cohort::outcome::PersonOutcome;
use phm::source::manifest::Supplier;
use phm::store::state::{Capability, PracticeState};
use phm::store::write_parquet;
use phm::terminology::{Release, import};
use phm::valueset::Catalogue;

/// The practice rows go to when a table gives none.
pub const PRACTICE: &str = "A81001";
pub const SOURCE_PATIENTS: &str = "Admin_Patient";
pub const SOURCE_EVENTS: &str = "CareRecord_Observation";
pub const SOURCE_MEDICATIONS: &str = "Prescribing_IssueRecord";

pub fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .unwrap_or_else(|e| panic!("{s:?} is not a YYYY-MM-DD date: {e}"))
}

#[derive(Debug, Clone)]
pub struct Patient {
    pub practice: String,
    pub person: String,
    pub dob: Option<NaiveDate>,
    pub dod: Option<NaiveDate>,
    pub test: bool,
}

#[derive(Debug, Clone)]
pub struct Registration {
    pub practice: String,
    pub person: String,
    pub start: Option<NaiveDate>,
    pub end: Option<NaiveDate>,
    /// Canonical `registration_type`: gms, temporary, private, test, other.
    pub kind: String,
    /// `registered_at` as written (`None`: null): the organisation the row
    /// says the patient was registered at; usually `practice`.
    pub at: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub practice: String,
    pub person: String,
    /// `source_row_id`, unique in a store.
    pub row: String,
    pub date: Option<NaiveDate>,
    /// Y, YM, YMD, YMDT or U.
    pub precision: String,
    pub flag: Option<String>,
    pub concept: Option<i64>,
    /// `exact` unless given (`unmapped` when there is no concept).
    pub mapping: String,
    pub value: Option<f64>,
    pub comparator: Option<String>,
    pub unit: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Medication {
    pub practice: String,
    pub person: String,
    pub row: String,
    pub date: Option<NaiveDate>,
    pub precision: String,
    pub flag: Option<String>,
    pub dmd: Option<i64>,
    pub mapping: String,
}

impl Event {
    /// A mapped, fully dated event without a value.
    pub fn new(practice: &str, person: &str, row: &str, date: NaiveDate, concept: i64) -> Event {
        Event {
            practice: practice.into(),
            person: person.into(),
            row: row.into(),
            date: Some(date),
            precision: "YMD".into(),
            flag: None,
            concept: Some(concept),
            mapping: "exact".into(),
            value: None,
            comparator: None,
            unit: None,
        }
    }
}

/// The rows of a store and, per practice, an optional capability override
/// (the canonical tables its profile lists; default: the tables that got rows).
#[derive(Debug, Clone, Default)]
pub struct StoreRows {
    pub patients: Vec<Patient>,
    pub registrations: Vec<Registration>,
    pub events: Vec<Event>,
    pub medications: Vec<Medication>,
    pub capability: BTreeMap<String, Vec<String>>,
}

fn days(d: Option<NaiveDate>) -> Option<i32> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    d.map(|d| (d - epoch).num_days() as i32)
}

fn extracted_at() -> NaiveDateTime {
    date("2026-06-30").and_hms_opt(6, 0, 0).unwrap()
}

impl StoreRows {
    /// Every practice named by a row or an override.
    pub fn practices(&self) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self.capability.keys().cloned().collect();
        out.extend(self.patients.iter().map(|r| r.practice.clone()));
        out.extend(self.registrations.iter().map(|r| r.practice.clone()));
        out.extend(self.events.iter().map(|r| r.practice.clone()));
        out.extend(self.medications.iter().map(|r| r.practice.clone()));
        out
    }

    /// Writes `store/canonical/<table>/practice=<P>/data.parquet` for every
    /// table and practice (empty files included, as ingest does) and
    /// `store/practices/<P>/state.json`.
    pub fn write(&self, store: &Path) {
        for practice in self.practices() {
            let p = practice.as_str();
            let mut with_rows = Vec::new();

            let mut b = PatientsBuilder::default();
            let mut n = 0;
            for r in self.patients.iter().filter(|r| r.practice == p) {
                let id = format!("{}@{}", r.person, p);
                b.append(
                    &PatientRow {
                        person_key: &r.person,
                        patient_id: &id,
                        nhs_number: None,
                        nhs_number_status: "verified",
                        sex: "U",
                        date_of_birth: days(r.dob),
                        date_of_birth_flag: None,
                        date_of_death: days(r.dod),
                        is_test_patient: r.test,
                    },
                    &prov_of(p, SOURCE_PATIENTS, &id),
                );
                n += 1;
            }
            write_table(
                store,
                CanonicalTable::Patients,
                p,
                b.finish(),
                n,
                &mut with_rows,
            );

            let mut b = RegistrationsBuilder::default();
            let mut n = 0;
            for (i, r) in self
                .registrations
                .iter()
                .filter(|r| r.practice == p)
                .enumerate()
            {
                let id = format!("{}@{}", r.person, p);
                let row = format!("{id}#{i}");
                b.append(
                    &RegistrationRow {
                        person_key: &r.person,
                        patient_id: &id,
                        registered_at: r.at.as_deref(),
                        start_date: days(r.start),
                        end_date: days(r.end),
                        registration_type: &r.kind,
                        status_text: None,
                    },
                    &prov_of(p, SOURCE_PATIENTS, &row),
                );
                n += 1;
            }
            write_table(
                store,
                CanonicalTable::Registrations,
                p,
                b.finish(),
                n,
                &mut with_rows,
            );

            let mut b = EventsBuilder::default();
            let mut n = 0;
            for r in self.events.iter().filter(|r| r.practice == p) {
                let id = format!("{}@{}", r.person, p);
                let code = r.concept.map(|c| c.to_string()).unwrap_or("LOCAL1".into());
                let value_flag = r.value.and(match r.unit.as_deref().map(str::trim) {
                    None | Some("") => Some("missing_unit"),
                    Some(u) if canonical_unit(u).is_none() => Some("unknown_unit"),
                    Some(_) => None,
                });
                b.append(
                    &EventRow {
                        person_key: &r.person,
                        patient_id: &id,
                        event_date: days(r.date),
                        date_precision: &r.precision,
                        date_flag: r.flag.as_deref(),
                        recorded_at: None,
                        code_system: "snomed",
                        source_code: &code,
                        source_term: Some("spec event"),
                        snomed_concept_id: r.concept,
                        mapping_kind: &r.mapping,
                        value: r.value,
                        comparator: r.comparator.as_deref(),
                        unit: r.unit.as_deref(),
                        value_flag,
                        parent_event_id: None,
                    },
                    &prov_of(p, SOURCE_EVENTS, &r.row),
                );
                n += 1;
            }
            write_table(
                store,
                CanonicalTable::Events,
                p,
                b.finish(),
                n,
                &mut with_rows,
            );

            let mut b = MedicationsBuilder::default();
            let mut n = 0;
            for r in self.medications.iter().filter(|r| r.practice == p) {
                let id = format!("{}@{}", r.person, p);
                let code = r.dmd.map(|c| c.to_string()).unwrap_or("LOCALDRUG".into());
                b.append(
                    &MedicationRow {
                        person_key: &r.person,
                        patient_id: &id,
                        issue_date: days(r.date),
                        date_precision: &r.precision,
                        date_flag: r.flag.as_deref(),
                        code_system: "dmd",
                        source_code: &code,
                        source_term: Some("spec issue"),
                        dmd_code: r.dmd,
                        mapping_kind: &r.mapping,
                        dosage: None,
                        quantity: Some(28.0),
                        quantity_unit: Some("tablet"),
                        course_days: Some(28),
                    },
                    &prov_of(p, SOURCE_MEDICATIONS, &r.row),
                );
                n += 1;
            }
            write_table(
                store,
                CanonicalTable::Medications,
                p,
                b.finish(),
                n,
                &mut with_rows,
            );

            let canonical_tables = self.capability.get(p).cloned().unwrap_or(with_rows);
            let dir = store.join("practices").join(p);
            std::fs::create_dir_all(&dir).unwrap();
            PracticeState {
                practice: p.to_string(),
                supplier: Supplier::Emis,
                deliveries: Vec::new(),
                capability: Capability {
                    supplier: Supplier::Emis,
                    schema_version: "spec".into(),
                    source_tables: BTreeMap::new(),
                    canonical_tables,
                    code_systems: vec!["dmd".into(), "emis_code_id".into(), "snomed".into()],
                    latest_extracted_at: extracted_at(),
                },
                files: Some(phm::store::state::record_files(store, p).unwrap()),
            }
            .write(&dir)
            .unwrap();
        }
    }
}

fn prov_of<'a>(practice: &'a str, source_table: &'a str, row: &'a str) -> Provenance<'a> {
    Provenance {
        practice,
        supplier: "emis",
        source_table,
        source_row_id: row,
        extract_id: "spec-1",
        extracted_at: extracted_at(),
    }
}

fn write_table(
    store: &Path,
    table: CanonicalTable,
    practice: &str,
    batch: datafusion::arrow::array::RecordBatch,
    rows: usize,
    with_rows: &mut Vec<String>,
) {
    let dir = store
        .join("canonical")
        .join(table.name())
        .join(format!("practice={practice}"));
    std::fs::create_dir_all(&dir).unwrap();
    write_parquet(&dir.join("data.parquet"), &batch, table.sort_columns()).unwrap();
    if rows > 0 {
        with_rows.push(table.name().to_string());
    }
}

// ---------------------------------------------------------------- ASCII tables

/// A pipe-separated table: a header line, then one row per line; blank lines
/// and lines starting with `#` are skipped; an empty cell is null, and so are
/// cells missing at the end of a row.
pub fn parse_table(text: &str) -> Vec<BTreeMap<String, Option<String>>> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let cells = |l: &str| -> Vec<String> { l.split('|').map(|c| c.trim().to_string()).collect() };
    let names = cells(header);
    lines
        .map(|l| {
            let mut values = cells(l);
            assert!(
                values.len() <= names.len(),
                "row {l:?} has {} cells, the header {}",
                values.len(),
                names.len()
            );
            values.resize(names.len(), String::new());
            names
                .iter()
                .cloned()
                .zip(values.into_iter().map(|v| (!v.is_empty()).then_some(v)))
                .collect()
        })
        .collect()
}

struct Cells<'a> {
    row: &'a BTreeMap<String, Option<String>>,
    allowed: &'a [&'a str],
}

impl Cells<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        debug_assert!(self.allowed.contains(&name));
        self.row.get(name).and_then(|v| v.as_deref())
    }
    fn check(&self, table: &str) {
        for k in self.row.keys() {
            assert!(
                self.allowed.contains(&k.as_str()),
                "{table}: unknown column {k:?} (columns: {})",
                self.allowed.join(", ")
            );
        }
    }
    fn practice(&self) -> String {
        self.get("practice").unwrap_or(PRACTICE).to_string()
    }
    fn required(&self, name: &str, table: &str) -> String {
        self.get(name)
            .unwrap_or_else(|| panic!("{table}: {name} is required in {:?}", self.row))
            .to_string()
    }
    fn date(&self, name: &str) -> Option<NaiveDate> {
        self.get(name).map(date)
    }
    fn int(&self, name: &str) -> Option<i64> {
        self.get(name)
            .map(|v| v.parse().unwrap_or_else(|e| panic!("{name} {v:?}: {e}")))
    }
}

const PATIENT_COLUMNS: &[&str] = &["person", "practice", "dob", "dod", "test"];
const REGISTRATION_COLUMNS: &[&str] = &["person", "practice", "start", "end", "type", "at"];
const EVENT_COLUMNS: &[&str] = &[
    "row",
    "person",
    "practice",
    "date",
    "precision",
    "flag",
    "concept",
    "mapping",
    "value",
    "comparator",
    "unit",
];
const MEDICATION_COLUMNS: &[&str] = &[
    "row",
    "person",
    "practice",
    "date",
    "precision",
    "flag",
    "dmd",
    "mapping",
];

impl StoreRows {
    /// Rows from ASCII tables (see the column lists above; `practice` defaults
    /// to [`PRACTICE`], `type` to gms, a registration's `at` (`registered_at`)
    /// to its `practice` (`(null)` writes a null, `(empty)` an empty string), `precision` to YMD (U without a date),
    /// `flag` to `unknown_date` without a date, `mapping` to exact (unmapped
    /// without a code), `test` is `yes` or empty).
    pub fn from_tables(
        patients: &str,
        registrations: &str,
        events: &str,
        medications: &str,
    ) -> StoreRows {
        let mut out = StoreRows::default();
        for row in parse_table(patients) {
            let c = Cells {
                row: &row,
                allowed: PATIENT_COLUMNS,
            };
            c.check("patients");
            out.patients.push(Patient {
                practice: c.practice(),
                person: c.required("person", "patients"),
                dob: c.date("dob"),
                dod: c.date("dod"),
                test: match c.get("test") {
                    None | Some("no") => false,
                    Some("yes") => true,
                    Some(v) => panic!("patients: test is yes or empty, not {v:?}"),
                },
            });
        }
        for row in parse_table(registrations) {
            let c = Cells {
                row: &row,
                allowed: REGISTRATION_COLUMNS,
            };
            c.check("registrations");
            out.registrations.push(Registration {
                practice: c.practice(),
                person: c.required("person", "registrations"),
                start: c.date("start"),
                end: c.date("end"),
                kind: c.get("type").unwrap_or("gms").to_string(),
                at: match c.get("at") {
                    None => Some(c.practice()),
                    Some("(null)") => None,
                    Some("(empty)") => Some(String::new()),
                    Some(at) => Some(at.to_string()),
                },
            });
        }
        let undated = |c: &Cells<'_>| -> (Option<NaiveDate>, String, Option<String>) {
            let d = c.date("date");
            let precision = c
                .get("precision")
                .unwrap_or(if d.is_some() { "YMD" } else { "U" })
                .to_string();
            let flag = c
                .get("flag")
                .map(str::to_string)
                .or_else(|| d.is_none().then(|| "unknown_date".to_string()));
            (d, precision, flag)
        };
        for row in parse_table(events) {
            let c = Cells {
                row: &row,
                allowed: EVENT_COLUMNS,
            };
            c.check("events");
            let (date, precision, flag) = undated(&c);
            let concept = c.int("concept");
            out.events.push(Event {
                practice: c.practice(),
                person: c.required("person", "events"),
                row: c.required("row", "events"),
                date,
                precision,
                flag,
                concept,
                mapping: c
                    .get("mapping")
                    .unwrap_or(if concept.is_some() {
                        "exact"
                    } else {
                        "unmapped"
                    })
                    .to_string(),
                value: c.get("value").map(|v| {
                    v.parse()
                        .unwrap_or_else(|e| panic!("events: value {v:?}: {e}"))
                }),
                comparator: c.get("comparator").map(str::to_string),
                unit: c.get("unit").map(str::to_string),
            });
        }
        for row in parse_table(medications) {
            let c = Cells {
                row: &row,
                allowed: MEDICATION_COLUMNS,
            };
            c.check("medications");
            let (date, precision, flag) = undated(&c);
            let dmd = c.int("dmd");
            out.medications.push(Medication {
                practice: c.practice(),
                person: c.required("person", "medications"),
                row: c.required("row", "medications"),
                date,
                precision,
                flag,
                dmd,
                mapping: c
                    .get("mapping")
                    .unwrap_or(if dmd.is_some() { "exact" } else { "unmapped" })
                    .to_string(),
            });
        }
        out
    }

    /// The evidence id (`practice/source_table/source_row_id`) of an event or
    /// medication row by its row id.
    pub fn evidence_id(&self, row: &str) -> Option<String> {
        self.events
            .iter()
            .find(|e| e.row == row)
            .map(|e| format!("{}/{SOURCE_EVENTS}/{row}", e.practice))
            .or_else(|| {
                self.medications
                    .iter()
                    .find(|m| m.row == row)
                    .map(|m| format!("{}/{SOURCE_MEDICATIONS}/{row}", m.practice))
            })
    }
}

// ---------------------------------------------------------------- terminology

/// The repository's path for `rel`.
pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub struct Terminology {
    pub release: Release,
    pub catalogue: Catalogue,
}

/// Every version of every shipped cohort (`cohorts/`), bound to the fixture
/// release.
pub fn shipped() -> Vec<Cohort> {
    use phm::cohort::{bind, file};
    let t = terminology();
    let dir = repo("cohorts");
    let mut out = Vec::new();
    for (id, versions) in file::list(&dir).unwrap() {
        for version in versions {
            let key = format!("{id}@{version}");
            let def = file::load(&dir, &key, &t.catalogue)
                .unwrap_or_else(|e| panic!("shipped cohort {key}: {e}"));
            out.push(bind(def, &t.catalogue, &t.release).unwrap());
        }
    }
    out
}

/// The fixture release (imported once per test binary into a temporary
/// folder) and the repository's value-set catalogue.
pub fn terminology() -> &'static Terminology {
    static T: OnceLock<Terminology> = OnceLock::new();
    T.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let fixture = repo("terminology/fixture");
        let out = tmp.path().join("fixture");
        import::import(&phm::terminology::fixture::inputs(&fixture), &out).unwrap();
        let release = Release::open(&out).unwrap();
        // The release is fully read into memory; the folder can go.
        drop(tmp);
        Terminology {
            release,
            catalogue: Catalogue::load(&[repo("valuesets")]).unwrap(),
        }
    })
}

// ---------------------------------------------------------------- runners

/// The reference evaluator's outcomes for each cohort.
pub fn reference(store: &Path, cohorts: &[Cohort], index: NaiveDate) -> Vec<Vec<PersonOutcome>> {
    cohorts
        .iter()
        .map(|c| {
            phm::cohort::reference::evaluate(store, c, index)
                .unwrap_or_else(|e| panic!("reference evaluator on {}: {e}", c.def.key()))
        })
        .collect()
}

/// The engine's outcomes for each cohort, all cohorts in one run, read back
/// from the run's output files under `out`.
pub fn engine(
    store: &Path,
    cohorts: &[Cohort],
    index: NaiveDate,
    out: &Path,
) -> Vec<Vec<PersonOutcome>> {
    engine_with(store, cohorts, index, out, None)
}

/// As [`engine`], with the memory budget for intermediate results in bytes
/// (`Some(0)`: every one is written to disk).
pub fn engine_with(
    store: &Path,
    cohorts: &[Cohort],
    index: NaiveDate,
    out: &Path,
    work_memory: Option<usize>,
) -> Vec<Vec<PersonOutcome>> {
    use phm::cohort::engine::{RunOptions, read_outcomes, run};
    let opts = RunOptions {
        index_date: index,
        out: out.to_path_buf(),
        person: None,
        memory_limit: None,
        work_memory,
        release_id: "fixture".into(),
        session: None,
        explain_plans: false,
    };
    run(store, cohorts, &opts).unwrap_or_else(|e| panic!("engine run: {e}"));
    cohorts
        .iter()
        .map(|c| {
            let dir = opts.out.join(c.def.key());
            let mut outcomes = read_outcomes(&dir)
                .unwrap_or_else(|e| panic!("engine outcomes of {}: {e}", c.def.key()));
            outcomes.sort_by(|a, b| a.person_key.cmp(&b.person_key));
            outcomes
        })
        .collect()
}
