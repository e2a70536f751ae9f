//! Engine unit tests: calendar arithmetic in the query, unit folding, and each
//! kind, population check and rule on tiny hand-written stores.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, NaiveDateTime};
use datafusion::arrow::array::{Array, Date32Array, StringArray};
use datafusion::prelude::{SessionContext, lit};

use super::dates::{date_lit, days, shift, shift_expr};
use super::{CohortRun, RunOptions, read_outcomes, run};
use crate::canonical::tables::{
    EventRow, EventsBuilder, MedicationRow, MedicationsBuilder, PatientRow, PatientsBuilder,
    RegistrationRow, RegistrationsBuilder,
};
use crate::canonical::{CanonicalTable, Provenance, units};
use crate::cohort::Cohort;
use crate::cohort::model::*;
use crate::cohort::outcome::{CriterionOutcome, PersonOutcome, Reason, Status};
use crate::source::manifest::Supplier;
use crate::store::state::{Capability, PracticeState};
use crate::valueset::{Expansion, Row};

pub fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

#[test]
fn month_arithmetic_in_the_query_clamps_to_month_end() {
    let cases = [
        ("2025-03-31", -1, 0, "2025-02-28"),
        ("2024-03-31", -1, 0, "2024-02-29"),
        ("2024-02-29", -12, 0, "2023-02-28"),
        ("2024-02-29", 12, 0, "2025-02-28"),
        ("2025-01-31", 1, 0, "2025-02-28"),
        ("2025-03-31", -12, 1, "2024-04-01"),
        ("2025-03-01", 0, -1, "2025-02-28"),
        ("2024-12-15", 3, 0, "2025-03-15"),
    ];
    let ctx = SessionContext::new();
    for (from, months, days_, want) in cases {
        assert_eq!(shift(d(from), months, days_), Some(d(want)), "rust {from}");
        let df = ctx
            .read_empty()
            .unwrap()
            .select(vec![
                shift_expr(date_lit(d(from)), months, days_).alias("x"),
            ])
            .unwrap();
        let batches = rt().block_on(df.collect()).unwrap();
        let a = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Date32Array>()
            .expect("a date")
            .value(0);
        assert_eq!(
            a,
            days(d(want)),
            "query {from} {months} months {days_} days"
        );
    }
}

#[test]
fn unit_folding_in_the_query_matches_canonical_unit() {
    let mut inputs: Vec<String> = Vec::new();
    for (canon, spellings) in units::spellings() {
        inputs.push(canon.to_string());
        for s in *spellings {
            inputs.push(s.to_string());
            inputs.push(s.to_uppercase());
            inputs.push(format!(" {s} "));
            let spaced: String = s.chars().flat_map(|c| [c, ' ']).collect();
            inputs.push(spaced);
            inputs.push(format!("\t{}", s.to_uppercase()));
            inputs.push(format!("{s}\u{a0}\u{2009}\u{3000}\r\n"));
        }
    }
    inputs.extend(
        [
            "", " ", "furlongs", "mmol", "mg/dl", "Kg ", "mm Hg", "MMOL/MOL",
        ]
        .map(String::from),
    );
    let ctx = SessionContext::new();
    let exprs: Vec<datafusion::prelude::Expr> = inputs
        .iter()
        .enumerate()
        .map(|(i, s)| super::scan::canonical_unit_expr(lit(s.as_str())).alias(format!("u{i}")))
        .collect();
    let df = ctx.read_empty().unwrap().select(exprs).unwrap();
    let batch = &rt().block_on(df.collect()).unwrap()[0];
    for (i, s) in inputs.iter().enumerate() {
        let col = batch.column(i);
        let col =
            datafusion::arrow::compute::cast(col, &datafusion::arrow::datatypes::DataType::Utf8)
                .unwrap();
        let col = col.as_any().downcast_ref::<StringArray>().unwrap();
        let got = (!col.is_null(0)).then(|| col.value(0).to_string());
        assert_eq!(got.as_deref(), units::canonical_unit(s), "unit {s:?}");
    }
}

// ---------------------------------------------------------------------------
// Tiny stores.

#[derive(Clone)]
pub struct Ev {
    pub pk: String,
    pub practice: String,
    pub date: Option<NaiveDate>,
    pub precision: &'static str,
    pub flag: Option<&'static str>,
    pub code: Option<i64>,
    pub value: Option<f64>,
    pub comparator: Option<&'static str>,
    pub unit: Option<&'static str>,
    pub row: String,
    pub medication: bool,
}

pub fn ev(pk: &str, practice: &str, date: &str, code: i64) -> Ev {
    Ev {
        pk: pk.into(),
        practice: practice.into(),
        date: Some(d(date)),
        precision: "YMD",
        flag: None,
        code: Some(code),
        value: None,
        comparator: None,
        unit: None,
        row: String::new(),
        medication: false,
    }
}

impl Ev {
    pub fn val(mut self, v: f64, unit: &'static str) -> Ev {
        self.value = Some(v);
        self.unit = (!unit.is_empty()).then_some(unit);
        self
    }
    pub fn cmp(mut self, c: &'static str) -> Ev {
        self.comparator = Some(c);
        self
    }
    pub fn prec(mut self, p: &'static str) -> Ev {
        self.precision = p;
        self
    }
    pub fn flag(mut self, f: &'static str) -> Ev {
        self.flag = Some(f);
        self
    }
    pub fn row(mut self, r: &str) -> Ev {
        self.row = r.into();
        self
    }
    pub fn med(mut self) -> Ev {
        self.medication = true;
        self
    }
}

pub struct Person {
    pub pk: String,
    pub practice: String,
    pub dob: Option<NaiveDate>,
    pub dod: Option<NaiveDate>,
    pub test: bool,
    /// (start, end, type)
    pub regs: Vec<(Option<NaiveDate>, Option<NaiveDate>, &'static str)>,
}

pub fn person(pk: &str, practice: &str, dob: &str) -> Person {
    Person {
        pk: pk.into(),
        practice: practice.into(),
        dob: Some(d(dob)),
        dod: None,
        test: false,
        regs: vec![(Some(d("2000-01-01")), None, "gms")],
    }
}

#[derive(Default)]
pub struct Tiny {
    pub persons: Vec<Person>,
    pub events: Vec<Ev>,
    /// Practices whose capability lacks these tables.
    pub lacking: BTreeMap<String, Vec<&'static str>>,
    pub extracted: Option<NaiveDate>,
}

fn days_opt(x: Option<NaiveDate>) -> Option<i32> {
    x.map(days)
}

impl Tiny {
    pub fn write(&self, root: &Path) {
        let mut practices: Vec<String> = self.persons.iter().map(|p| p.practice.clone()).collect();
        practices.extend(self.events.iter().map(|e| e.practice.clone()));
        practices.sort();
        practices.dedup();
        let at: NaiveDateTime = self
            .extracted
            .unwrap_or(d("2026-03-31"))
            .and_hms_opt(0, 0, 0)
            .unwrap();
        for ods in &practices {
            fn provenance<'a>(
                ods: &'a str,
                row: &'a str,
                table: &'static str,
                at: NaiveDateTime,
            ) -> Provenance<'a> {
                Provenance {
                    practice: ods,
                    supplier: "emis",
                    source_table: table,
                    source_row_id: row,
                    extract_id: "x1",
                    extracted_at: at,
                }
            }
            let mut pb = PatientsBuilder::default();
            let mut rb = RegistrationsBuilder::default();
            for (i, p) in self
                .persons
                .iter()
                .filter(|p| &p.practice == ods)
                .enumerate()
            {
                let pid = format!("p{i}-{}", p.pk);
                pb.append(
                    &PatientRow {
                        person_key: &p.pk,
                        patient_id: &pid,
                        nhs_number: None,
                        nhs_number_status: "missing",
                        sex: "F",
                        date_of_birth: days_opt(p.dob),
                        date_of_birth_flag: None,
                        date_of_death: days_opt(p.dod),
                        is_test_patient: p.test,
                    },
                    &provenance(ods, &pid, "Patient", at),
                );
                for (j, (s, e, t)) in p.regs.iter().enumerate() {
                    let rid = format!("{pid}-r{j}");
                    rb.append(
                        &RegistrationRow {
                            person_key: &p.pk,
                            patient_id: &pid,
                            registered_at: Some(ods),
                            start_date: days_opt(*s),
                            end_date: days_opt(*e),
                            registration_type: t,
                            status_text: None,
                        },
                        &provenance(ods, &rid, "Registration", at),
                    );
                }
            }
            let mut eb = EventsBuilder::default();
            let mut mb = MedicationsBuilder::default();
            for (i, e) in self
                .events
                .iter()
                .filter(|e| &e.practice == ods)
                .enumerate()
            {
                let row = if e.row.is_empty() {
                    format!("e{i:04}")
                } else {
                    e.row.clone()
                };
                let code = e.code.map(|c| c.to_string()).unwrap_or_default();
                if e.medication {
                    mb.append(
                        &MedicationRow {
                            person_key: &e.pk,
                            patient_id: "x",
                            issue_date: days_opt(e.date),
                            date_precision: e.precision,
                            date_flag: e.flag,
                            code_system: "dmd",
                            source_code: &code,
                            source_term: Some("a drug"),
                            dmd_code: e.code,
                            mapping_kind: if e.code.is_some() {
                                "exact"
                            } else {
                                "unmapped"
                            },
                            dosage: None,
                            quantity: None,
                            quantity_unit: None,
                            course_days: None,
                        },
                        &provenance(ods, &row, "Medication", at),
                    );
                } else {
                    eb.append(
                        &EventRow {
                            person_key: &e.pk,
                            patient_id: "x",
                            event_date: days_opt(e.date),
                            date_precision: e.precision,
                            date_flag: e.flag,
                            recorded_at: None,
                            code_system: "snomed",
                            source_code: &code,
                            source_term: Some("a term"),
                            snomed_concept_id: e.code,
                            mapping_kind: if e.code.is_some() {
                                "exact"
                            } else {
                                "unmapped"
                            },
                            value: e.value,
                            comparator: e.comparator,
                            unit: e.unit,
                            value_flag: None,
                            parent_event_id: None,
                        },
                        &provenance(ods, &row, "Observation", at),
                    );
                }
            }
            let batches = [
                (CanonicalTable::Patients, pb.finish()),
                (CanonicalTable::Registrations, rb.finish()),
                (CanonicalTable::Events, eb.finish()),
                (CanonicalTable::Medications, mb.finish()),
            ];
            let lacking = self.lacking.get(ods).cloned().unwrap_or_default();
            let mut tables = Vec::new();
            for (t, b) in &batches {
                let dir = root
                    .join("canonical")
                    .join(t.name())
                    .join(format!("practice={ods}"));
                std::fs::create_dir_all(&dir).unwrap();
                // Every table has its file, as an ingest writes it.
                crate::store::write_parquet(&dir.join("data.parquet"), b, &[]).unwrap();
                if b.num_rows() > 0 && !lacking.contains(&t.name()) {
                    tables.push(t.name().to_string());
                }
            }
            let pdir = root.join("practices").join(ods);
            std::fs::create_dir_all(&pdir).unwrap();
            PracticeState {
                practice: ods.clone(),
                supplier: Supplier::Emis,
                deliveries: vec![],
                capability: Capability {
                    supplier: Supplier::Emis,
                    schema_version: "1".into(),
                    source_tables: BTreeMap::new(),
                    canonical_tables: tables,
                    code_systems: vec![],
                    latest_extracted_at: at,
                },
                files: Some(crate::store::state::record_files(root, ods).unwrap()),
            }
            .write(&pdir)
            .unwrap();
        }
    }
}

// ---------------------------------------------------------------------------
// Definitions.

pub fn crit(name: &str, kind: Kind, vs: &[&str]) -> Criterion {
    Criterion {
        name: name.into(),
        description: None,
        table: Table::Events,
        valuesets: vs.iter().map(|s| s.to_string()).collect(),
        any_code: false,
        kind,
        window: Window {
            lower: None,
            upper: index_bound(0, 0, true),
        },
        value: None,
    }
}

pub fn index_bound(months: i32, days: i32, inclusive: bool) -> Bound {
    Bound {
        anchor: Anchor::Index,
        months,
        days,
        inclusive,
    }
}

pub fn anchor_bound(name: &str, months: i32, days: i32, inclusive: bool) -> Bound {
    Bound {
        anchor: Anchor::Criterion(name.into()),
        months,
        days,
        inclusive,
    }
}

pub fn rule(name: &str, when: RuleExprT, then: Action) -> Rule {
    Rule {
        name: name.into(),
        description: None,
        when,
        then,
        near_miss: true,
    }
}

pub type RuleExprT = crate::cohort::model::Expr;

pub fn c(name: &str) -> RuleExprT {
    RuleExprT::Criterion(name.into())
}

pub fn not(e: RuleExprT) -> RuleExprT {
    RuleExprT::Not(Box::new(e))
}

/// Value sets: VS1 = {1, 2}, VS2 = {3}, VS3 = {4, 5, 6}, MED = {100, 101}.
pub fn cohort(criteria: Vec<Criterion>, rules: Vec<Rule>, otherwise: Action) -> Cohort {
    let sets: [(&str, &[u64]); 4] = [
        ("VS1", &[1, 2]),
        ("VS2", &[3]),
        ("VS3", &[4, 5, 6]),
        ("MED", &[100, 101]),
    ];
    let mut used: Vec<&str> = criteria
        .iter()
        .flat_map(|c| c.valuesets.iter().map(String::as_str))
        .collect();
    used.sort();
    used.dedup();
    let expansions: BTreeMap<String, Expansion> = sets
        .iter()
        .filter(|(id, _)| used.contains(id))
        .map(|(id, codes)| {
            let rows: Vec<Row> = codes
                .iter()
                .map(|c| Row {
                    code: *c,
                    term: format!("term {c}"),
                    active: true,
                    how_included: "listed".into(),
                })
                .collect();
            let hash = crate::valueset::expand::hash(id, "1", "test", &rows);
            (
                id.to_string(),
                Expansion {
                    id: id.to_string(),
                    version: "1".into(),
                    release_id: "test".into(),
                    rows,
                    hash,
                },
            )
        })
        .collect();
    Cohort {
        def: Definition {
            id: "TEST".into(),
            version: "1".into(),
            title: "test".into(),
            status: "draft".into(),
            owner: "tests".into(),
            description: "test".into(),
            source: None,
            index_date: IndexDate::Parameter,
            valuesets: expansions.keys().map(|k| (k.clone(), "1".into())).collect(),
            population: Population {
                registration_types: vec!["gms".into()],
                registered_for: None,
                age_min: None,
                age_max: None,
            },
            criteria,
            rules,
            otherwise,
            path: PathBuf::from("cohorts/TEST/1.toml"),
        },
        expansions,
    }
}

pub struct Ran {
    pub dir: tempfile::TempDir,
    pub run: CohortRun,
    pub outcomes: Vec<PersonOutcome>,
}

impl Ran {
    pub fn person(&self, pk: &str) -> &PersonOutcome {
        self.outcomes
            .iter()
            .find(|p| p.person_key == pk)
            .unwrap_or_else(|| panic!("{pk} in membership"))
    }
    pub fn crit(&self, pk: &str, name: &str) -> &CriterionOutcome {
        &self.person(pk).criteria[name]
    }
}

/// Runs `cohort` twice, intermediate results held in memory and written to
/// disk, and checks that both runs wrote the same files.
pub fn evaluate(tiny: &Tiny, cohort: Cohort, index: &str) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    tiny.write(&store);
    let opts = |out: &str, work_memory: Option<usize>| RunOptions {
        index_date: d(index),
        out: dir.path().join(out),
        person: None,
        memory_limit: None,
        work_memory,
        release_id: "test".into(),
        session: None,
        explain_plans: false,
    };
    let cohorts = std::slice::from_ref(&cohort);
    let run_ = run(&store, cohorts, &opts("out", None))
        .unwrap()
        .pop()
        .unwrap();
    let on_disk = run(&store, cohorts, &opts("out_disk", Some(0)))
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(run_.included, on_disk.included);
    for name in [
        "membership",
        "explanations",
        "near_misses",
        "attrition",
        "combinations",
    ] {
        let file = format!("{name}.csv");
        assert_eq!(
            std::fs::read_to_string(run_.dir.join(&file)).unwrap(),
            std::fs::read_to_string(on_disk.dir.join(&file)).unwrap(),
            "{file}: intermediate results in memory and on disk disagree"
        );
    }
    let outcomes = read_outcomes(&run_.dir).unwrap();
    Ran {
        dir,
        run: run_,
        outcomes,
    }
}

fn outcome(
    verdict: bool,
    reason: Reason,
    count: u64,
    value: Option<f64>,
    refused: u64,
    evidence: Option<&str>,
) -> CriterionOutcome {
    CriterionOutcome {
        verdict: Some(verdict),
        reason,
        evidence: evidence.map(String::from),
        count,
        value,
        refused,
    }
}

/// An undetermined verdict (docs/cohort-language.md "Undetermined").
fn undetermined(
    reason: Reason,
    count: u64,
    value: Option<f64>,
    refused: u64,
    evidence: Option<&str>,
) -> CriterionOutcome {
    CriterionOutcome {
        verdict: None,
        ..outcome(false, reason, count, value, refused, evidence)
    }
}

const P: &str = "A00001";

fn ev_id(row: &str) -> String {
    format!("{P}/Observation/{row}")
}

// ---------------------------------------------------------------------------
// Population.

#[test]
fn population_checks_in_order() {
    let mut t = Tiny::default();
    let mut add = |p: Person| t.persons.push(p);
    add(person("ok", P, "1980-01-01"));
    let mut x = person("noreg", P, "1980-01-01");
    x.regs.clear();
    add(x);
    let mut x = person("ended_on_index", P, "1980-01-01");
    x.regs = vec![(Some(d("2000-01-01")), Some(d("2025-03-31")), "gms")];
    add(x);
    let mut x = person("ended_after", P, "1980-01-01");
    x.regs = vec![(Some(d("2000-01-01")), Some(d("2025-04-01")), "gms")];
    add(x);
    let mut x = person("starts_later", P, "1980-01-01");
    x.regs = vec![(Some(d("2025-04-01")), None, "gms")];
    add(x);
    let mut x = person("temporary", P, "1980-01-01");
    x.regs = vec![(Some(d("2000-01-01")), None, "temporary")];
    add(x);
    let mut x = person("test", P, "1980-01-01");
    x.test = true;
    add(x);
    let mut x = person("died_on_index", P, "1980-01-01");
    x.dod = Some(d("2025-03-31"));
    add(x);
    let mut x = person("dies_later", P, "1980-01-01");
    x.dod = Some(d("2025-04-01"));
    add(x);
    let mut x = person("new", P, "1980-01-01");
    x.regs = vec![(Some(d("2025-01-01")), None, "gms")];
    add(x);
    let mut x = person("nodob", P, "1980-01-01");
    x.dob = None;
    add(x);
    add(person("young", P, "2008-04-01"));
    add(person("leap_16", P, "2008-02-29"));
    add(person("just_17", P, "2008-02-28"));
    add(person("old", P, "1900-01-01"));
    let mut cohort = cohort(vec![], vec![], Action::Select);
    cohort.def.population.age_min = Some(17);
    cohort.def.population.age_max = Some(100);
    cohort.def.population.registered_for = Some(Period {
        amount: 3,
        unit: PeriodUnit::Months,
    });
    // Index 2025-02-28: someone born 29 February 2008 is still 16.
    let r = evaluate(&t, cohort.clone(), "2025-02-28");
    let status = |pk: &str| r.person(pk).status;
    assert_eq!(status("leap_16"), Status::AgeOutOfRange);
    assert_eq!(status("just_17"), Status::InPopulation);
    let r = evaluate(&t, cohort, "2025-03-31");
    let status = |pk: &str| r.person(pk).status;
    assert_eq!(status("ok"), Status::InPopulation);
    assert_eq!(status("noreg"), Status::NotRegistered);
    assert_eq!(status("ended_on_index"), Status::NotRegistered);
    assert_eq!(status("ended_after"), Status::InPopulation);
    assert_eq!(status("starts_later"), Status::NotRegistered);
    assert_eq!(status("temporary"), Status::NotRegistered);
    assert_eq!(status("test"), Status::TestPatient);
    assert_eq!(status("died_on_index"), Status::Died);
    assert_eq!(status("dies_later"), Status::InPopulation);
    assert_eq!(status("new"), Status::RegistrationTooShort);
    assert_eq!(status("nodob"), Status::AgeUnknown);
    assert_eq!(status("young"), Status::AgeOutOfRange);
    assert_eq!(status("leap_16"), Status::InPopulation);
    assert_eq!(status("old"), Status::AgeOutOfRange);
    assert_eq!(r.person("noreg").practice, None);
    assert_eq!(r.person("ok").practice.as_deref(), Some(P));
    assert_eq!(r.person("ok").included, Some(true));
    assert_eq!(r.person("noreg").included, None);
    assert_eq!(r.outcomes.len(), 15);
}

#[test]
fn registration_at_index_is_the_latest_start_then_greatest_practice() {
    let mut t = Tiny::default();
    // One person with records at three practices (same person key).
    let mut a = person("moved", "A00001", "1980-01-01");
    a.regs = vec![(Some(d("2010-01-01")), None, "gms")];
    let mut b = person("moved", "B00002", "1980-01-01");
    b.regs = vec![(Some(d("2020-01-01")), None, "gms")];
    let mut c2 = person("moved", "C00003", "1980-01-01");
    c2.regs = vec![(Some(d("2015-01-01")), None, "gms")];
    t.persons.extend([a, b, c2]);
    let mut x = person("tie", "A00001", "1980-01-01");
    x.regs = vec![(Some(d("2020-01-01")), None, "gms")];
    let mut y = person("tie", "B00002", "1980-01-01");
    y.regs = vec![(Some(d("2020-01-01")), None, "gms")];
    t.persons.extend([x, y]);
    // Events at the old practice count.
    t.events.push(ev("moved", "A00001", "2012-01-01", 1));
    // Every practice has some events (else it is unavailable for the cohort).
    t.events.push(ev("moved", "B00002", "2012-01-01", 99));
    t.events.push(ev("moved", "C00003", "2012-01-01", 99));
    let cohort = cohort(
        vec![crit("dm", Kind::Exists, &["VS1"])],
        vec![rule("has", c("dm"), Action::Select)],
        Action::Reject,
    );
    let r = evaluate(&t, cohort, "2025-03-31");
    assert_eq!(r.outcomes.len(), 2);
    assert_eq!(r.person("moved").practice.as_deref(), Some("B00002"));
    assert_eq!(r.person("tie").practice.as_deref(), Some("B00002"));
    assert!(r.crit("moved", "dm").verdict == Some(true));
    assert_eq!(
        r.crit("moved", "dm").evidence.as_deref(),
        Some("A00001/Observation/e0000")
    );
}

#[test]
fn unavailable_practices_are_not_evaluated() {
    let mut t = Tiny::default();
    t.persons.push(person("a", "A00001", "1980-01-01"));
    t.persons.push(person("b", "B00002", "1980-01-01"));
    t.events.push(ev("a", "A00001", "2020-01-01", 1));
    t.events.push(ev("b", "B00002", "2020-01-01", 1));
    t.lacking.insert("B00002".into(), vec!["events"]);
    t.extracted = Some(d("2025-01-31"));
    let cohort = cohort(
        vec![crit("dm", Kind::Exists, &["VS1"])],
        vec![rule("has", c("dm"), Action::Select)],
        Action::Reject,
    );
    let r = evaluate(&t, cohort, "2025-03-31");
    assert_eq!(r.person("b").status, Status::Unavailable);
    assert!(r.person("b").criteria.is_empty());
    assert_eq!(r.person("a").included, Some(true));
    assert_eq!(r.run.unavailable, vec!["B00002".to_string()]);
    assert_eq!(
        r.run.per_practice,
        vec![
            ("A00001".to_string(), Some(1)),
            ("B00002".to_string(), None)
        ]
    );
    assert_eq!(r.run.warnings.len(), 2, "{:?}", r.run.warnings);
    assert!(r.run.warnings[0].contains("A00001") && r.run.warnings[0].contains("2025-01-31"));
}

// ---------------------------------------------------------------------------
// Windows and dates.

#[test]
fn windows_partial_dates_and_flags() {
    let mut t = Tiny::default();
    for pk in [
        "y2025",
        "ym2025_03",
        "ym2025_04",
        "flagged",
        "after_index",
        "edge_lo",
        "in_lo",
    ] {
        t.persons.push(person(pk, P, "1980-01-01"));
    }
    t.events.push(ev("y2025", P, "2025-01-01", 1).prec("Y"));
    t.events
        .push(ev("ym2025_03", P, "2025-03-01", 1).prec("YM"));
    t.events
        .push(ev("ym2025_04", P, "2025-04-01", 1).prec("YM"));
    t.events
        .push(ev("flagged", P, "2025-01-01", 1).flag("before_birth"));
    t.events.push(ev("after_index", P, "2025-04-01", 1));
    // after index - 12 months: 2024-03-31 is out, 2024-04-01 in.
    t.events.push(ev("edge_lo", P, "2024-03-31", 1));
    t.events.push(ev("in_lo", P, "2024-04-01", 1));
    let mut recent = crit("recent", Kind::Exists, &["VS1"]);
    recent.window.lower = Some(index_bound(-12, 0, false));
    let mut year = crit("in_year", Kind::Exists, &["VS1"]);
    // A year-precision 2024 event falls entirely inside 2024-01-01 ..= 2024-12-31 only.
    year.window.lower = Some(index_bound(-15, 1, true));
    let cohort = cohort(
        vec![crit("ever", Kind::Exists, &["VS1"]), recent, year],
        vec![],
        Action::Select,
    );
    let r = evaluate(&t, cohort, "2025-03-31");
    let v = |pk: &str, c: &str| r.crit(pk, c).verdict == Some(true);
    assert!(
        !v("y2025", "ever"),
        "a 2025 diagnosis is not on or before 2025-03-31"
    );
    assert!(v("ym2025_03", "ever"));
    assert!(!v("ym2025_04", "ever"));
    assert!(!v("flagged", "ever"));
    assert_eq!(r.crit("flagged", "ever").reason, Reason::NoEvents);
    assert!(!v("after_index", "ever"));
    assert!(!v("edge_lo", "recent"));
    assert!(v("in_lo", "recent"));
    assert!(v("edge_lo", "ever"));
    // lower bound 2024-01-01 inclusive (index - 15 months + 1 day = 2024-01-01).
    assert!(v("ym2025_03", "in_year"));
    assert!(v("edge_lo", "in_year"));
}

#[test]
fn anchored_windows_same_day_and_anchor_missing() {
    let mut t = Tiny::default();
    for pk in ["resolved", "same_day", "rediagnosed", "never"] {
        t.persons.push(person(pk, P, "1980-01-01"));
    }
    t.events.push(ev("resolved", P, "2020-01-01", 1));
    t.events.push(ev("resolved", P, "2021-01-01", 3));
    t.events.push(ev("same_day", P, "2020-01-01", 1));
    t.events.push(ev("same_day", P, "2020-01-01", 3));
    t.events.push(ev("rediagnosed", P, "2020-01-01", 1));
    t.events.push(ev("rediagnosed", P, "2019-01-01", 3));
    let mut res = crit("dm_resolved", Kind::Exists, &["VS2"]);
    res.window.lower = Some(anchor_bound("dm_latest", 0, 0, false));
    let cohort = cohort(
        vec![crit("dm_latest", Kind::Latest, &["VS1"]), res],
        vec![
            rule("diagnosed", not(c("dm_latest")), Action::Reject),
            rule("unresolved", c("dm_resolved"), Action::Reject),
        ],
        Action::Select,
    );
    let r = evaluate(&t, cohort, "2025-03-31");
    assert_eq!(r.person("resolved").included, Some(false));
    assert_eq!(
        r.person("resolved").deciding_rule.as_deref(),
        Some("unresolved")
    );
    assert_eq!(
        r.person("resolved").near_miss_rule.as_deref(),
        Some("unresolved")
    );
    assert_eq!(r.person("same_day").included, Some(true));
    assert_eq!(
        r.person("same_day").deciding_rule.as_deref(),
        Some("otherwise")
    );
    assert_eq!(r.person("rediagnosed").included, Some(true));
    assert_eq!(r.crit("never", "dm_resolved").reason, Reason::AnchorMissing);
    assert_eq!(r.crit("never", "dm_resolved").verdict, Some(false));
    assert_eq!(r.crit("never", "dm_latest").reason, Reason::NoEvents);
    assert_eq!(
        r.person("never").deciding_rule.as_deref(),
        Some("diagnosed")
    );
    // Flipping `diagnosed` alone leads to `otherwise` (select): a near miss.
    assert_eq!(
        r.person("never").near_miss_rule.as_deref(),
        Some("diagnosed")
    );
}

#[test]
fn anchored_month_arithmetic_clamps() {
    let mut t = Tiny::default();
    for pk in ["feb29", "mar01"] {
        t.persons.push(person(pk, P, "1980-01-01"));
        t.events.push(ev(pk, P, "2024-03-31", 1));
    }
    t.events.push(ev("feb29", P, "2024-02-29", 3));
    t.events.push(ev("mar01", P, "2024-03-01", 3));
    let mut w = crit("recent", Kind::Exists, &["VS2"]);
    w.window.lower = Some(anchor_bound("a", -1, 0, false));
    w.window.upper = anchor_bound("a", 0, 0, true);
    let cohort = cohort(
        vec![crit("a", Kind::Latest, &["VS1"]), w],
        vec![],
        Action::Select,
    );
    let r = evaluate(&t, cohort, "2025-03-31");
    assert!(
        !(r.crit("feb29", "recent").verdict == Some(true)),
        "31 Mar 2024 - 1 month = 29 Feb, exclusive"
    );
    assert!(r.crit("mar01", "recent").verdict == Some(true));
}

// ---------------------------------------------------------------------------
// Kinds.

#[test]
fn first_latest_ties_and_evidence() {
    let mut t = Tiny::default();
    t.persons.push(person("p", P, "1980-01-01"));
    t.events.push(ev("p", P, "2020-01-01", 1).row("r2"));
    t.events.push(ev("p", P, "2020-01-01", 2).row("r1"));
    t.events.push(ev("p", P, "2021-01-01", 1).row("r0"));
    t.events.push(ev("p", P, "2021-01-01", 2).row("r9"));
    let cohort = cohort(
        vec![
            crit("first", Kind::First, &["VS1"]),
            crit("latest", Kind::Latest, &["VS1"]),
            crit("any", Kind::Exists, &["VS1"]),
        ],
        vec![],
        Action::Select,
    );
    let r = evaluate(&t, cohort, "2025-03-31");
    assert_eq!(
        r.crit("p", "first"),
        &outcome(true, Reason::Met, 4, None, 0, Some(&ev_id("r1")))
    );
    assert_eq!(
        r.crit("p", "latest"),
        &outcome(true, Reason::Met, 4, None, 0, Some(&ev_id("r9")))
    );
    assert_eq!(
        r.crit("p", "any"),
        &outcome(true, Reason::Met, 4, None, 0, Some(&ev_id("r9")))
    );
}

fn hba1c(op: Cmp, threshold: f64) -> ValueTest {
    ValueTest {
        op,
        threshold,
        unit: "mmol/mol",
    }
}

#[test]
fn latest_with_value_units_and_conversion() {
    let mut t = Tiny::default();
    for pk in ["pct", "mmol", "nounit", "novalue", "old_ok", "spaced"] {
        t.persons.push(person(pk, P, "1980-01-01"));
    }
    t.events
        .push(ev("pct", P, "2025-01-01", 4).val(7.5, "%").row("a"));
    t.events.push(
        ev("mmol", P, "2025-01-01", 4)
            .val(58.0, "mmol/mol")
            .row("b"),
    );
    t.events
        .push(ev("nounit", P, "2024-01-01", 4).val(50.0, "mmol/mol"));
    t.events
        .push(ev("nounit", P, "2025-01-01", 4).val(50.0, "").row("c"));
    t.events.push(ev("novalue", P, "2025-01-01", 4).row("d"));
    t.events
        .push(ev("old_ok", P, "2023-01-01", 4).val(50.0, "furlongs"));
    t.events.push(
        ev("old_ok", P, "2025-01-01", 4)
            .val(50.0, "mmol/mol")
            .row("e"),
    );
    t.events.push(
        ev("spaced", P, "2025-01-01", 4)
            .val(50.0, " MMOL / MOL")
            .row("f"),
    );
    let mut latest = crit("hba1c", Kind::Latest, &["VS3"]);
    latest.value = Some(hba1c(Cmp::Le, 58.0));
    let cohort = cohort(vec![latest], vec![], Action::Select);
    let r = evaluate(&t, cohort, "2025-03-31");
    let o = r.crit("pct", "hba1c");
    assert_eq!(
        (o.verdict, o.reason, o.count),
        (Some(false), Reason::NotMet, 1)
    );
    assert!((o.value.unwrap() - (7.5 - 2.15) * 10.929).abs() < 1e-12);
    assert_eq!(
        r.crit("mmol", "hba1c"),
        &outcome(true, Reason::Met, 1, Some(58.0), 0, Some(&ev_id("b")))
    );
    assert_eq!(
        r.crit("nounit", "hba1c"),
        &undetermined(Reason::UnitRefused, 2, None, 1, Some(&ev_id("c")))
    );
    assert_eq!(
        r.crit("novalue", "hba1c"),
        &undetermined(Reason::NoValue, 1, None, 0, Some(&ev_id("d")))
    );
    assert_eq!(
        r.crit("old_ok", "hba1c"),
        &outcome(true, Reason::Met, 2, Some(50.0), 1, Some(&ev_id("e")))
    );
    assert!(r.crit("spaced", "hba1c").verdict == Some(true));
}

#[test]
fn comparators_are_intervals() {
    let mut t = Tiny::default();
    for pk in ["gt90", "lt5", "ge60", "odd"] {
        t.persons.push(person(pk, P, "1980-01-01"));
    }
    let egfr = "mL/min/1.73m2";
    t.events
        .push(ev("gt90", P, "2025-01-01", 4).val(90.0, egfr).cmp(">"));
    t.events
        .push(ev("lt5", P, "2025-01-01", 4).val(5.0, egfr).cmp("<"));
    t.events
        .push(ev("ge60", P, "2025-01-01", 4).val(60.0, egfr).cmp(">="));
    t.events
        .push(ev("odd", P, "2025-01-01", 4).val(60.0, egfr).cmp("~"));
    let test = |name: &str, op: Cmp, th: f64| {
        let mut c = crit(name, Kind::Exists, &["VS3"]);
        c.value = Some(ValueTest {
            op,
            threshold: th,
            unit: "mL/min/1.73m2",
        });
        c
    };
    let cohort = cohort(
        vec![
            test("ge60", Cmp::Ge, 60.0),
            test("lt60", Cmp::Lt, 60.0),
            test("gt60", Cmp::Gt, 60.0),
            test("le5", Cmp::Le, 5.0),
            {
                let mut l = test("latest_le60", Cmp::Le, 60.0);
                l.kind = Kind::Latest;
                l
            },
        ],
        vec![],
        Action::Select,
    );
    let r = evaluate(&t, cohort, "2025-03-31");
    let v = |pk: &str, c: &str| r.crit(pk, c).verdict == Some(true);
    assert!(v("gt90", "ge60") && v("gt90", "gt60") && !v("gt90", "lt60"));
    assert!(v("lt5", "lt60") && v("lt5", "le5") && !v("lt5", "ge60"));
    assert!(v("ge60", "ge60") && !v("ge60", "gt60"));
    assert_eq!(r.crit("odd", "ge60").refused, 0);
    assert_eq!(r.crit("odd", "ge60").reason, Reason::NotMet);
    assert_eq!(
        r.crit("odd", "latest_le60"),
        &outcome(
            false,
            Reason::NotMet,
            1,
            Some(60.0),
            0,
            Some(&ev_id("e0003"))
        )
    );
    assert!(r.crit("lt5", "latest_le60").verdict == Some(true));
}

#[test]
fn min_max_choose_comparable_values_latest_on_ties() {
    let mut t = Tiny::default();
    for pk in ["p", "refused_only", "novalue_only", "cmp_only"] {
        t.persons.push(person(pk, P, "1980-01-01"));
    }
    t.events
        .push(ev("p", P, "2024-01-01", 4).val(50.0, "mmol/mol").row("a"));
    t.events
        .push(ev("p", P, "2024-06-01", 4).val(50.0, "mmol/mol").row("b"));
    t.events
        .push(ev("p", P, "2024-03-01", 4).val(70.0, "mmol/mol").row("c"));
    t.events.push(
        ev("p", P, "2024-04-01", 4)
            .val(10.0, "mmol/mol")
            .cmp("<")
            .row("d"),
    );
    t.events
        .push(ev("p", P, "2024-05-01", 4).val(99.0, "kg").row("e"));
    t.events
        .push(ev("refused_only", P, "2024-05-01", 4).val(99.0, "kg"));
    t.events.push(ev("novalue_only", P, "2024-05-01", 4));
    t.events.push(
        ev("cmp_only", P, "2024-05-01", 4)
            .val(10.0, "mmol/mol")
            .cmp("<"),
    );
    let mut lo = crit("lowest", Kind::Min, &["VS3"]);
    lo.value = Some(hba1c(Cmp::Le, 50.0));
    let mut hi = crit("highest", Kind::Max, &["VS3"]);
    hi.value = Some(hba1c(Cmp::Ge, 75.0));
    let cohort = cohort(vec![lo, hi], vec![], Action::Select);
    let r = evaluate(&t, cohort, "2025-03-31");
    assert_eq!(
        r.crit("p", "lowest"),
        &outcome(true, Reason::Met, 3, Some(50.0), 1, Some(&ev_id("b")))
    );
    // The refused 99 kg could be the highest: 70 failing `at least 75` is
    // not the last word.
    assert_eq!(
        r.crit("p", "highest"),
        &undetermined(Reason::UnitRefused, 3, Some(70.0), 1, Some(&ev_id("c")))
    );
    assert_eq!(
        r.crit("refused_only", "lowest"),
        &undetermined(Reason::UnitRefused, 0, None, 1, None)
    );
    assert_eq!(
        r.crit("novalue_only", "lowest"),
        &undetermined(Reason::NoValue, 0, None, 0, None)
    );
    assert_eq!(
        r.crit("cmp_only", "lowest"),
        &outcome(false, Reason::NotMet, 0, None, 0, None)
    );
}

#[test]
fn counts_distinct_codes_and_apart() {
    let mut t = Tiny::default();
    for pk in ["p", "none", "one"] {
        t.persons.push(person(pk, P, "1980-01-01"));
    }
    t.events.push(ev("p", P, "2024-01-01", 4).row("a"));
    t.events.push(ev("p", P, "2024-01-10", 4).row("b"));
    t.events.push(ev("p", P, "2024-02-01", 5).row("c"));
    t.events.push(ev("one", P, "2024-02-01", 5).row("c"));
    let count = |name: &str, op: CountOp, n: u64, distinct: bool| {
        crit(
            name,
            Kind::Count {
                op,
                n,
                distinct_codes: distinct,
            },
            &["VS3"],
        )
    };
    let cohort = cohort(
        vec![
            count("three", CountOp::AtLeast, 3, false),
            count("distinct3", CountOp::AtLeast, 3, true),
            count("atmost0", CountOp::AtMost, 0, false),
            count("exactly2d", CountOp::Exactly, 2, true),
            crit("apart30", Kind::Apart { days: 30 }, &["VS3"]),
            crit("apart31", Kind::Apart { days: 31 }, &["VS3"]),
            crit("apart0", Kind::Apart { days: 0 }, &["VS3"]),
        ],
        vec![],
        Action::Select,
    );
    let r = evaluate(&t, cohort, "2025-03-31");
    assert_eq!(
        r.crit("p", "three"),
        &outcome(true, Reason::Met, 3, None, 0, Some(&ev_id("c")))
    );
    assert_eq!(
        r.crit("p", "distinct3"),
        &outcome(false, Reason::NotMet, 2, None, 0, Some(&ev_id("c")))
    );
    assert!(r.crit("p", "exactly2d").verdict == Some(true));
    assert_eq!(
        r.crit("none", "atmost0"),
        &outcome(true, Reason::Met, 0, None, 0, None)
    );
    assert_eq!(r.crit("p", "atmost0").reason, Reason::NotMet);
    assert_eq!(r.crit("none", "three").reason, Reason::NoEvents);
    assert_eq!(
        r.crit("p", "apart31"),
        &outcome(true, Reason::Met, 3, Some(31.0), 0, Some(&ev_id("c")))
    );
    assert!(r.crit("p", "apart30").verdict == Some(true));
    assert_eq!(
        r.crit("one", "apart0"),
        &outcome(
            false,
            Reason::NotMet,
            1,
            Some(0.0),
            0,
            Some("A00001/Observation/c")
        )
    );
    assert_eq!(
        r.crit("none", "apart0"),
        &outcome(false, Reason::NoEvents, 0, None, 0, None)
    );
}

#[test]
fn medications_by_value_set_and_any_code() {
    let mut t = Tiny::default();
    for pk in ["p", "q"] {
        t.persons.push(person(pk, P, "1980-01-01"));
    }
    t.events.push(ev("p", P, "2025-01-01", 100).med().row("m1"));
    t.events.push(ev("p", P, "2025-02-01", 555).med().row("m2"));
    t.events.push(ev("q", P, "2025-02-01", 555).med().row("m3"));
    let mut meds = crit(
        "meds",
        Kind::Count {
            op: CountOp::AtLeast,
            n: 1,
            distinct_codes: false,
        },
        &["MED"],
    );
    meds.table = Table::Medications;
    let mut any = crit(
        "any",
        Kind::Count {
            op: CountOp::AtLeast,
            n: 2,
            distinct_codes: false,
        },
        &[],
    );
    any.table = Table::Medications;
    any.any_code = true;
    any.valuesets.clear();
    any.window.lower = Some(index_bound(-6, 0, false));
    // No event at all matches VS2: an empty slice part.
    t.events.push(ev("q", P, "2024-01-01", 99));
    let none = crit("none", Kind::Exists, &["VS2"]);
    // Older than the any_code window: not in the any_code slice part.
    t.events.push(ev("q", P, "2024-01-01", 556).med().row("m4"));
    let cohort = cohort(vec![meds, any, none], vec![], Action::Select);
    let r = evaluate(&t, cohort, "2025-03-31");
    assert_eq!(r.crit("p", "none").reason, Reason::NoEvents);
    assert_eq!(
        r.crit("p", "meds"),
        &outcome(true, Reason::Met, 1, None, 0, Some("A00001/Medication/m1"))
    );
    assert_eq!(
        r.crit("p", "any"),
        &outcome(true, Reason::Met, 2, None, 0, Some("A00001/Medication/m2"))
    );
    assert_eq!(r.crit("q", "meds").reason, Reason::NoEvents);
    assert_eq!(r.crit("q", "any").count, 1);
}

// ---------------------------------------------------------------------------
// Rules and outputs.

#[test]
fn rules_near_misses_attrition_and_combinations() {
    let mut t = Tiny::default();
    for pk in ["a", "b", "c", "d"] {
        t.persons.push(person(pk, P, "1980-01-01"));
    }
    let mut x = person("e", "B00002", "1980-01-01");
    x.regs.clear();
    t.persons.push(x);
    // a: dm only -> selected. b: dm + resolved -> rejected (near miss on unresolved).
    // c: nothing -> rejected by `diagnosed` (near miss). d: resolved only -> rejected by
    // `diagnosed`; flipping it leaves `unresolved` rejecting: no near miss.
    t.events.push(ev("a", P, "2020-01-01", 1));
    t.events.push(ev("b", P, "2020-01-01", 1));
    t.events.push(ev("b", P, "2021-01-01", 3));
    t.events.push(ev("d", P, "2021-01-01", 3));
    let cohort = cohort(
        vec![
            crit("dm", Kind::Exists, &["VS1"]),
            crit("res", Kind::Exists, &["VS2"]),
        ],
        vec![
            rule("diagnosed", not(c("dm")), Action::Reject),
            rule("unresolved", c("res"), Action::Reject),
        ],
        Action::Select,
    );
    let r = evaluate(&t, cohort, "2025-03-31");
    let p = |pk: &str| {
        let o = r.person(pk);
        (
            o.included,
            o.deciding_rule.clone(),
            o.near_miss_rule.clone(),
        )
    };
    let s = |x: &str| Some(x.to_string());
    assert_eq!(p("a"), (Some(true), s("otherwise"), None));
    assert_eq!(p("b"), (Some(false), s("unresolved"), s("unresolved")));
    assert_eq!(p("c"), (Some(false), s("diagnosed"), s("diagnosed")));
    assert_eq!(p("d"), (Some(false), s("diagnosed"), None));
    assert_eq!(p("e"), (None, None, None));
    assert_eq!(
        (r.run.persons, r.run.in_population, r.run.included),
        (5, 4, 1)
    );

    let attrition = crate::store::read_parquet(&r.run.dir.join("attrition.parquet")).unwrap();
    let csv = std::fs::read_to_string(r.run.dir.join("attrition.csv")).unwrap();
    assert!(
        csv.starts_with(
            "practice,step_order,step,entering,passing,removed,selected,undetermined\n"
        )
    );
    assert!(csv.contains("ALL,1,not_registered,5,4,1,0,0\n"), "{csv}");
    assert!(
        csv.contains("ALL,2,registered_outside_network,4,4,0,0,0\n"),
        "{csv}"
    );
    assert!(csv.contains("ALL,9,diagnosed,4,2,2,0,0\n"), "{csv}");
    assert!(csv.contains("ALL,10,unresolved,2,1,1,0,0\n"), "{csv}");
    assert!(csv.contains("ALL,11,otherwise,1,0,0,1,0\n"), "{csv}");
    assert!(csv.contains("B00002,1,not_registered,1,0,1,0,0\n"), "{csv}");
    // Network, A00001, B00002: 8 population steps, 2 rules, otherwise.
    assert_eq!(attrition.num_rows(), 33);
    let combos = std::fs::read_to_string(r.run.dir.join("combinations.csv")).unwrap();
    assert_eq!(
        combos,
        "practice,mask,persons\nALL,00,1\nALL,01,1\nALL,10,1\nALL,11,1\nA00001,00,1\nA00001,01,1\nA00001,10,1\nA00001,11,1\n"
    );
    let nm = std::fs::read_to_string(r.run.dir.join("near_misses.csv")).unwrap();
    assert_eq!(
        nm,
        "person_key,practice,rule\nb,A00001,unresolved\nc,A00001,diagnosed\n"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.run.dir.join("run.json")).unwrap())
            .unwrap();
    assert_eq!(json["definition"], "TEST@1");
    assert_eq!(json["rows"]["explanations"], 8);
    assert!(json["valuesets"]["VS1"]["hash"].is_string());
    // The work folder is gone.
    assert!(!r.dir.path().join("out/.work").exists());
}

#[test]
fn one_person_runs_match_the_full_run() {
    let mut t = Tiny::default();
    for pk in ["a", "b"] {
        t.persons.push(person(pk, P, "1980-01-01"));
        t.events.push(ev(pk, P, "2020-01-01", 1));
    }
    let cohort = cohort(
        vec![crit("dm", Kind::Latest, &["VS1"])],
        vec![],
        Action::Select,
    );
    let full = evaluate(&t, cohort.clone(), "2025-03-31");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    t.write(&store);
    let opts = RunOptions {
        index_date: d("2025-03-31"),
        out: dir.path().join("out"),
        person: Some("b".into()),
        memory_limit: Some(64 << 20),
        work_memory: None,
        release_id: "test".into(),
        session: None,
        explain_plans: false,
    };
    let one = run(&store, &[cohort], &opts).unwrap().pop().unwrap();
    let outcomes = read_outcomes(&one.dir).unwrap();
    assert_eq!(outcomes, vec![full.person("b").clone()]);
}

#[test]
fn refuses_an_interrupted_commit_and_a_missing_table() {
    let mut t = Tiny::default();
    t.persons.push(person("a", P, "1980-01-01"));
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    t.write(&store);
    let cohort = cohort(
        vec![crit("dm", Kind::Exists, &["VS1"])],
        vec![],
        Action::Select,
    );
    let opts = RunOptions {
        index_date: d("2025-03-31"),
        out: dir.path().join("out"),
        person: None,
        memory_limit: None,
        work_memory: None,
        release_id: "test".into(),
        session: None,
        explain_plans: false,
    };
    std::fs::create_dir_all(store.join(".journal")).unwrap();
    std::fs::write(store.join(".journal/A00001.json"), "{}").unwrap();
    let e = run(&store, std::slice::from_ref(&cohort), &opts).unwrap_err();
    assert!(e.to_string().contains("interrupted"), "{e}");
    std::fs::remove_dir_all(store.join(".journal")).unwrap();

    // An events file written before `row_order` existed (and recorded by
    // its practice's state): refused, not read with null orders.
    let events = store.join("canonical/events");
    let dir = events.join(format!("practice={P}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut old = crate::canonical::tables::EventsBuilder::default().finish();
    old.remove_column(old.schema().index_of("row_order").unwrap());
    crate::store::write_parquet(&dir.join("data.parquet"), &old, &[]).unwrap();
    let pdir = store.join("practices").join(P);
    let mut state = PracticeState::read(&pdir).unwrap().unwrap();
    state.files = Some(crate::store::state::record_files(&store, P).unwrap());
    state.write(&pdir).unwrap();
    let e = run(&store, std::slice::from_ref(&cohort), &opts).unwrap_err();
    assert!(
        e.to_string().contains("without the `row_order` column"),
        "{e}"
    );

    std::fs::remove_dir_all(&events).unwrap();
    let e = run(&store, &[cohort], &opts).unwrap_err();
    assert!(e.to_string().contains("no events table"), "{e}");
}

#[test]
fn undetermined_persons_are_counted_beside_the_included() {
    let mut t = Tiny::default();
    for pk in ["a", "n", "u"] {
        t.persons.push(person(pk, P, "1980-01-01"));
    }
    // a: 50 mmol/mol, met. n: 70, not met. u: 50 with no unit: undetermined,
    // and the only rule selects while otherwise rejects: the person is too.
    t.events
        .push(ev("a", P, "2025-01-01", 4).val(50.0, "mmol/mol"));
    t.events
        .push(ev("n", P, "2025-01-01", 4).val(70.0, "mmol/mol"));
    t.events.push(ev("u", P, "2025-01-01", 4).val(50.0, ""));
    let mut latest = crit("hba1c", Kind::Latest, &["VS3"]);
    latest.value = Some(hba1c(Cmp::Le, 58.0));
    let cohort = cohort(
        vec![latest],
        vec![rule("controlled", c("hba1c"), Action::Select)],
        Action::Reject,
    );
    let def = cohort.def.clone();
    let r = evaluate(&t, cohort, "2025-03-31");
    assert_eq!(r.person("u").included, None);
    assert_eq!(r.person("u").outcome(), Some("undetermined"));
    assert_eq!(r.person("u").deciding_rule.as_deref(), Some("controlled"));
    assert_eq!(
        (r.run.included, r.run.undetermined),
        (1, 1),
        "one included, one undetermined beside it"
    );
    assert_eq!(
        r.run.undetermined_per_practice,
        BTreeMap::from([(P.to_string(), 1)])
    );
    let membership = std::fs::read_to_string(r.run.dir.join("membership.csv")).unwrap();
    assert!(
        membership.starts_with(
            "person_key,practice,status,included,outcome,deciding_rule,near_miss_rule\n"
        ),
        "{membership}"
    );
    assert!(
        membership.contains("u,A00001,in_population,,undetermined,controlled,\n"),
        "{membership}"
    );
    assert!(
        membership.contains("n,A00001,in_population,false,excluded,otherwise,controlled\n"),
        "{membership}"
    );
    let attrition = std::fs::read_to_string(r.run.dir.join("attrition.csv")).unwrap();
    // 8 population steps, then the rule: 3 enter, 1 selected, 1 undetermined,
    // 1 passes on to otherwise, which rejects it.
    assert!(
        attrition.contains("ALL,9,controlled,3,1,0,1,1\n"),
        "{attrition}"
    );
    assert!(
        attrition.contains("ALL,10,otherwise,1,0,1,0,0\n"),
        "{attrition}"
    );
    let combos = std::fs::read_to_string(r.run.dir.join("combinations.csv")).unwrap();
    assert_eq!(
        combos,
        "practice,mask,persons\nALL,0,1\nALL,1,1\nALL,?,1\nA00001,0,1\nA00001,1,1\nA00001,?,1\n"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.run.dir.join("run.json")).unwrap())
            .unwrap();
    assert_eq!(
        (json["included"].clone(), json["undetermined"].clone()),
        (1.into(), 1.into())
    );
    let e = crate::cohort::explain::read(&r.run.dir, "TEST@1", "u")
        .unwrap()
        .unwrap();
    assert_eq!(e.criteria[0].verdict, None);
    let text = crate::cohort::explain::narrative(&def, d("2025-03-31"), &e);
    assert!(
        text.contains(
            "Undetermined — neither included nor excluded: rule 1 (controlled) could not decide"
        ),
        "{text}"
    );
    assert!(text.contains("hba1c [undetermined]"), "{text}");
    assert!(
        text.contains("undetermined: the deciding value's unit is missing"),
        "{text}"
    );
}
