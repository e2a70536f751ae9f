//! Property test: random definitions from the cohort grammar over random small
//! populations; the DataFusion engine and the reference evaluator must agree
//! person by person (`outcome::differences` empty).
//!
//! Definitions are built directly as model structs with hand-made expansions
//! over a small code universe; populations (at most 15 persons, two practices)
//! cluster their dates around month ends, 29 February and the window edges,
//! with partial dates, flags, odd units, missing values and comparators, and
//! same-day events with different values (so undetermined verdicts — refused
//! or missing deciding values, same-day ties that disagree — come up often:
//! `PHM_PROPS_STATS=1` counts them); registration rows
//! name the delivering practice, the other one, an organisation outside the
//! store, or nothing as `registered_at`. Deterministic: a fixed seed, a
//! modest number of cases, no persistence files.
//!
//! For a longer hunt: `PHM_PROPS_CASES=2000 PHM_PROPS_SEED=42`;
//! `PHM_PROPS_STATS=1` prints how often each status and reason came up.

#[path = "cohort_support/mod.rs"]
mod cohort_support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{Months, NaiveDate};
use cohort_support::{Event, Medication, Patient, Registration, StoreRows};
use phm::cohort::Cohort;
use phm::cohort::model::{
    Action, Anchor, Bound, Cmp, CountOp, Criterion, Definition, Expr, IndexDate, Kind, Period,
    PeriodUnit, Population, Rule, Table, ValueTest, Window,
};
use phm::cohort::outcome::differences;
use phm::valueset::{Expansion, Row};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

const PRACTICES: [&str; 2] = ["A81001", "B82002"];

/// Event value sets (id, codes) and the medication one; 9999 is in none.
const EVENT_SETS: [(&str, &[u64]); 3] = [
    ("SET_A", &[1001, 1002]),
    ("SET_B", &[1002, 1003]),
    ("SET_V", &[2001, 2002]),
];
const EVENT_CODES: [i64; 6] = [1001, 1002, 1003, 2001, 2002, 9999];
const MED_SET: (&str, &[u64]) = ("SET_M", &[5001, 5002]);
const MED_CODES: [Option<i64>; 4] = [Some(5001), Some(5002), Some(5003), None];

const INDEX_DATES: [(i32, u32, u32); 6] = [
    (2024, 2, 29),
    (2025, 2, 28),
    (2025, 3, 1),
    (2025, 3, 31),
    (2024, 3, 31),
    (2025, 5, 31),
];

/// Event dates as (months, days) from the index date: the edges of the
/// windows below, month ends and a few far-away dates.
const EVENT_OFFSETS: [(i32, i32); 22] = [
    (0, 0),
    (0, -1),
    (0, 1),
    (-1, 0),
    (-1, -1),
    (-1, 1),
    (-3, 0),
    (-3, 1),
    (-6, 0),
    (-12, 0),
    (-12, 1),
    (-12, -1),
    (-24, 0),
    (-60, 0),
    (1, 0),
    (0, -29),
    (0, -30),
    (0, -31),
    (0, -89),
    (0, -90),
    (0, -91),
    (-13, -2),
];

/// Window bound offsets as (months, days).
const BOUND_OFFSETS: [(i32, i32); 9] = [
    (0, 0),
    (-12, 0),
    (-6, 0),
    (-1, 0),
    (0, -30),
    (-24, 0),
    (1, 0),
    (0, 1),
    (0, 90),
];

/// Values by unit (the generated index is taken modulo the list): mostly the
/// thresholds themselves and few others, so equality and ties come up often.
fn value_for(unit: Option<&str>, i: usize) -> f64 {
    let values: &[f64] = match unit.and_then(phm::canonical::units::canonical_unit) {
        Some("mmol/mol") => &[48.0, 58.0, 40.0, 59.0],
        Some("%") => &[6.5, 7.5, 7.4],
        Some("mL/min/1.73m2") => &[45.0, 60.0, 90.0, 30.0],
        _ => &[48.0, 60.0, 7.5],
    };
    values[i % values.len()]
}
const UNITS: [Option<&str>; 9] = [
    Some("mmol/mol"),
    Some("%"),
    Some("mL/min/1.73m2"),
    None,
    Some("furlongs"),
    Some(""),
    Some("MMOL/MOL"),
    Some("percent"),
    Some("mmol/L"),
];
/// Thresholds with their unit; none equals a converted value exactly.
const TESTS: [(f64, &str); 6] = [
    (48.0, "mmol/mol"),
    (58.0, "mmol/mol"),
    (6.5, "%"),
    (7.5, "%"),
    (45.0, "mL/min/1.73m2"),
    (60.0, "mL/min/1.73m2"),
];

#[derive(Debug, Clone)]
struct RawBound {
    /// `None`: the index date; `Some(k)`: the k-th (mod) earlier criterion that chooses an event.
    anchor: Option<usize>,
    offset: usize,
    inclusive: bool,
}

#[derive(Debug, Clone)]
struct RawCriterion {
    medications: bool,
    any_code: bool,
    sets: (bool, bool, bool),
    kind: u8,
    n: u64,
    distinct: bool,
    days: u32,
    lower: Option<RawBound>,
    upper: Option<RawBound>,
    value: Option<(u8, usize)>,
}

#[derive(Debug, Clone)]
enum RawExpr {
    Leaf(usize),
    Not(Box<RawExpr>),
    And(Box<RawExpr>, Box<RawExpr>),
    Or(Box<RawExpr>, Box<RawExpr>),
}

#[derive(Debug, Clone)]
struct RawDefinition {
    registration_temporary: bool,
    registered_for: Option<u8>,
    age: (Option<u32>, Option<u32>),
    criteria: Vec<RawCriterion>,
    rules: Vec<(RawExpr, bool)>,
    otherwise_select: bool,
}

#[derive(Debug, Clone)]
struct RawEvent {
    practice: usize,
    offset: Option<usize>,
    precision: u8,
    flag: bool,
    concept: usize,
    unmapped: bool,
    value: Option<usize>,
    unit: usize,
    comparator: u8,
    /// A second event on the same day, same code and practice, with its own
    /// (value, unit) indices: same-day ties whose values differ.
    twin: Option<(usize, usize)>,
}

#[derive(Debug, Clone)]
struct RawMedication {
    practice: usize,
    offset: Option<usize>,
    precision: u8,
    code: usize,
}

#[derive(Debug, Clone)]
struct RawRegistration {
    practice: usize,
    start: Option<u8>,
    end: Option<u8>,
    temporary: bool,
    /// `registered_at`: 0 the delivering practice, 1 the other practice of
    /// `PRACTICES` (in the store or not), 2 an organisation never in the
    /// store, 3 null, 4 empty, 5 the delivering practice in lower case with spaces.
    at: u8,
}

#[derive(Debug, Clone)]
struct RawPerson {
    /// 1: A only, 2: B only, 3: both.
    practices: u8,
    dob: u8,
    dod: Option<u8>,
    test: bool,
    registrations: Vec<RawRegistration>,
    events: Vec<RawEvent>,
    medications: Vec<RawMedication>,
}

#[derive(Debug, Clone)]
struct Scenario {
    index: usize,
    definition: RawDefinition,
    persons: Vec<RawPerson>,
    /// 0: full capability; 1: B lacks medications; 2: B lacks events.
    capability: u8,
    /// Whether the engine writes its intermediate results to disk rather than
    /// holding them in memory.
    slice_on_disk: bool,
}

fn bound() -> impl Strategy<Value = RawBound> {
    (
        prop::option::weighted(0.35, 0usize..4),
        0..BOUND_OFFSETS.len(),
        any::<bool>(),
    )
        .prop_map(|(anchor, offset, inclusive)| RawBound {
            anchor,
            offset,
            inclusive,
        })
}

fn criterion() -> impl Strategy<Value = RawCriterion> {
    (
        prop::bool::weighted(0.25),
        any::<bool>(),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        0u8..7,
        0u64..4,
        any::<bool>(),
        prop::sample::select(vec![0u32, 1, 30, 31, 90, 365]),
        prop::option::weighted(0.6, bound()),
        prop::option::weighted(0.3, bound()),
        prop::option::weighted(0.5, (0u8..4, 0..TESTS.len())),
    )
        .prop_map(
            |(medications, any_code, sets, kind, n, distinct, days, lower, upper, value)| {
                RawCriterion {
                    medications,
                    any_code,
                    sets,
                    kind,
                    n,
                    distinct,
                    days,
                    lower,
                    upper,
                    value,
                }
            },
        )
}

fn expr() -> impl Strategy<Value = RawExpr> {
    (0usize..6)
        .prop_map(RawExpr::Leaf)
        .prop_recursive(2, 6, 2, |inner| {
            prop_oneof![
                inner.clone().prop_map(|e| RawExpr::Not(Box::new(e))),
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| RawExpr::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner).prop_map(|(a, b)| RawExpr::Or(Box::new(a), Box::new(b))),
            ]
        })
}

fn definition() -> impl Strategy<Value = RawDefinition> {
    (
        prop::bool::weighted(0.3),
        prop::option::weighted(0.3, 0u8..3),
        (
            prop::option::weighted(0.4, prop::sample::select(vec![16u32, 17, 17, 18])),
            prop::option::weighted(0.2, prop::sample::select(vec![17u32, 65, 80])),
        ),
        prop::collection::vec(criterion(), 1..6),
        prop::collection::vec((expr(), any::<bool>()), 1..4),
        any::<bool>(),
    )
        .prop_map(
            |(registration_temporary, registered_for, age, criteria, rules, otherwise_select)| {
                RawDefinition {
                    registration_temporary,
                    registered_for,
                    age,
                    criteria,
                    rules,
                    otherwise_select,
                }
            },
        )
}

fn person() -> impl Strategy<Value = RawPerson> {
    let registration = (
        0usize..2,
        prop::option::weighted(0.95, prop::sample::select(vec![0u8, 1, 2, 3, 4, 4, 4, 5])),
        prop::option::weighted(0.2, 0u8..4),
        prop::bool::weighted(0.1),
        prop::sample::select(vec![0u8, 0, 0, 0, 0, 1, 1, 2, 2, 3, 4, 5]),
    )
        .prop_map(|(practice, start, end, temporary, at)| RawRegistration {
            practice,
            start,
            end,
            temporary,
            at,
        });
    let event = (
        0usize..2,
        prop::option::weighted(0.9, 0..EVENT_OFFSETS.len()),
        0u8..10,
        prop::bool::weighted(0.08),
        0..EVENT_CODES.len(),
        prop::bool::weighted(0.05),
        prop::option::weighted(0.6, 0usize..12),
        prop::sample::select(vec![0usize, 0, 1, 2, 2, 3, 4, 5, 6, 7, 8]),
        prop::sample::select(vec![0u8, 0, 0, 0, 0, 1, 2]),
        prop::option::weighted(
            0.3,
            (
                0usize..12,
                prop::sample::select(vec![0usize, 1, 2, 2, 2, 3, 4]),
            ),
        ),
    )
        .prop_map(
            |(
                practice,
                offset,
                precision,
                flag,
                concept,
                unmapped,
                value,
                unit,
                comparator,
                twin,
            )| {
                RawEvent {
                    practice,
                    offset,
                    precision,
                    flag,
                    concept,
                    unmapped,
                    value,
                    unit,
                    comparator,
                    twin,
                }
            },
        );
    let medication = (
        0usize..2,
        prop::option::weighted(0.9, 0..EVENT_OFFSETS.len()),
        0u8..10,
        0..MED_CODES.len(),
    )
        .prop_map(|(practice, offset, precision, code)| RawMedication {
            practice,
            offset,
            precision,
            code,
        });
    (
        prop::sample::select(vec![1u8, 1, 2, 2, 3]),
        prop::sample::select(vec![0u8, 1, 2, 2, 3, 4, 5]),
        prop::option::weighted(0.15, 0u8..3),
        prop::bool::weighted(0.07),
        prop::collection::vec(registration, 1..3),
        prop::collection::vec(event, 0..10),
        prop::collection::vec(medication, 0..4),
    )
        .prop_map(
            |(practices, dob, dod, test, registrations, events, medications)| RawPerson {
                practices,
                dob,
                dod,
                test,
                registrations,
                events,
                medications,
            },
        )
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        0..INDEX_DATES.len(),
        definition(),
        prop::collection::vec(person(), 1..16),
        prop::sample::select(vec![0u8, 0, 0, 1, 2]),
        any::<bool>(),
    )
        .prop_map(
            |(index, definition, persons, capability, slice_on_disk)| Scenario {
                index,
                definition,
                persons,
                capability,
                slice_on_disk,
            },
        )
}

// ---------------------------------------------------------------- building

fn shift(date: NaiveDate, (months, days): (i32, i32)) -> NaiveDate {
    let d = if months >= 0 {
        date.checked_add_months(Months::new(months as u32))
    } else {
        date.checked_sub_months(Months::new(months.unsigned_abs()))
    }
    .unwrap();
    d + chrono::Duration::days(days as i64)
}

fn approx_days((months, days): (i32, i32)) -> i64 {
    months as i64 * 30 + days as i64
}

fn name(i: usize) -> String {
    format!("c{i}")
}

fn build_expr(e: &RawExpr, n: usize) -> Expr {
    match e {
        RawExpr::Leaf(i) => Expr::Criterion(name(i % n)),
        RawExpr::Not(e) => Expr::Not(Box::new(build_expr(e, n))),
        RawExpr::And(a, b) => Expr::And(vec![build_expr(a, n), build_expr(b, n)]),
        RawExpr::Or(a, b) => Expr::Or(vec![build_expr(a, n), build_expr(b, n)]),
    }
}

/// A valid definition and its expansions from the raw choices.
fn build_cohort(raw: &RawDefinition) -> Cohort {
    let mut criteria: Vec<Criterion> = Vec::new();
    for (i, rc) in raw.criteria.iter().enumerate() {
        let anchors: Vec<String> = criteria
            .iter()
            .filter(|c| c.kind.chooses_event())
            .map(|c| c.name.clone())
            .collect();
        let make_bound = |b: &RawBound| -> Bound {
            let (months, days) = BOUND_OFFSETS[b.offset];
            let anchor = match b.anchor {
                Some(k) if !anchors.is_empty() => {
                    Anchor::Criterion(anchors[k % anchors.len()].clone())
                }
                _ => Anchor::Index,
            };
            Bound {
                anchor,
                months,
                days,
                inclusive: b.inclusive,
            }
        };
        let upper = rc.upper.as_ref().map(make_bound).unwrap_or(Bound {
            anchor: Anchor::Index,
            months: 0,
            days: 0,
            inclusive: true,
        });
        let mut lower = rc.lower.as_ref().map(make_bound);
        // A window that can hold no date whatever its anchor is invalid: keep
        // the lower bound only when it is clearly before the upper one.
        if let Some(l) = &lower
            && l.anchor == upper.anchor
        {
            let (lo, up) = (
                approx_days((l.months, l.days)),
                approx_days((upper.months, upper.days)),
            );
            let same = (l.months, l.days) == (upper.months, upper.days);
            let ok = if same {
                l.inclusive && upper.inclusive
            } else {
                lo + 3 < up
            };
            if !ok {
                lower = None;
            }
        }
        let table = if rc.medications {
            Table::Medications
        } else {
            Table::Events
        };
        let mut kind = match rc.kind {
            0 => Kind::Exists,
            1 => Kind::Count {
                op: [CountOp::AtLeast, CountOp::AtMost, CountOp::Exactly][(rc.n % 3) as usize],
                n: rc.n,
                distinct_codes: rc.distinct,
            },
            2 => Kind::First,
            3 => Kind::Latest,
            4 => Kind::Min,
            5 => Kind::Max,
            _ => Kind::Apart { days: rc.days },
        };
        let value_test = |(op, t): (u8, usize)| ValueTest {
            op: [Cmp::Lt, Cmp::Le, Cmp::Gt, Cmp::Ge][op as usize % 4],
            threshold: TESTS[t].0,
            unit: TESTS[t].1,
        };
        let mut value = rc.value.map(value_test);
        if table == Table::Medications {
            value = None;
            if matches!(kind, Kind::Min | Kind::Max) {
                kind = Kind::Latest;
            }
        } else if matches!(kind, Kind::Min | Kind::Max) && value.is_none() {
            value = Some(value_test((rc.n as u8, rc.days as usize % TESTS.len())));
        }
        let (valuesets, any_code) = if table == Table::Medications {
            if rc.any_code {
                (Vec::new(), true)
            } else {
                (vec![MED_SET.0.to_string()], false)
            }
        } else {
            let mut ids = Vec::new();
            for (on, (id, _)) in [rc.sets.0, rc.sets.1, rc.sets.2]
                .into_iter()
                .zip(EVENT_SETS)
            {
                if on {
                    ids.push(id.to_string());
                }
            }
            if ids.is_empty() {
                ids.push(EVENT_SETS[i % 3].0.to_string());
            }
            (ids, false)
        };
        criteria.push(Criterion {
            name: name(i),
            description: None,
            table,
            valuesets,
            any_code,
            kind,
            window: Window { lower, upper },
            value,
        });
    }
    let n = criteria.len();
    let mut rules: Vec<Rule> = Vec::new();
    for (i, (e, select)) in raw.rules.iter().enumerate() {
        let when = build_expr(e, n);
        // A rule repeating an earlier rule's condition is invalid.
        if rules.iter().any(|r| r.when == when) {
            continue;
        }
        rules.push(Rule {
            name: format!("r{i}"),
            description: None,
            when,
            then: if *select {
                Action::Select
            } else {
                Action::Reject
            },
            // Every other rule names no near miss (`near_miss = false`).
            near_miss: i % 2 == 0,
        });
    }
    let mut valuesets = BTreeMap::new();
    let mut expansions = BTreeMap::new();
    for c in &criteria {
        for id in &c.valuesets {
            let codes = EVENT_SETS
                .iter()
                .chain([&MED_SET])
                .find(|(s, _)| s == id)
                .unwrap()
                .1;
            valuesets.insert(id.clone(), "1".to_string());
            expansions.insert(
                id.clone(),
                Expansion {
                    id: id.clone(),
                    version: "1".into(),
                    release_id: "fixture".into(),
                    rows: codes
                        .iter()
                        .map(|&code| Row {
                            code,
                            term: format!("concept {code}"),
                            active: true,
                            how_included: "listed".into(),
                        })
                        .collect(),
                    hash: format!("hash-{id}"),
                },
            );
        }
    }
    let registered_for = raw.registered_for.map(|r| match r {
        0 => Period {
            amount: 3,
            unit: PeriodUnit::Months,
        },
        1 => Period {
            amount: 1,
            unit: PeriodUnit::Years,
        },
        _ => Period {
            amount: 90,
            unit: PeriodUnit::Days,
        },
    });
    let (age_min, age_max) = match raw.age {
        (Some(lo), Some(hi)) if lo > hi => (Some(hi), Some(lo)),
        other => other,
    };
    let def = Definition {
        id: "PROP".into(),
        version: "1".into(),
        title: "Random cohort".into(),
        status: "draft".into(),
        owner: "props".into(),
        description: "Generated".into(),
        source: None,
        index_date: IndexDate::Parameter,
        valuesets,
        population: Population {
            registration_types: if raw.registration_temporary {
                vec!["gms".into(), "temporary".into()]
            } else {
                vec!["gms".into()]
            },
            registered_for,
            age_min,
            age_max,
        },
        criteria,
        rules,
        otherwise: if raw.otherwise_select {
            Action::Select
        } else {
            Action::Reject
        },
        path: PathBuf::from("cohorts/PROP/1.toml"),
    };
    Cohort { def, expansions }
}

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

/// Rows of a store from the raw persons (row ids are `e<n>`/`m<n>` over the
/// whole store, so text order differs from numeric order past e9).
fn build_rows(s: &Scenario, index: NaiveDate) -> StoreRows {
    let mut rows = StoreRows::default();
    let (mut e, mut m) = (0, 0);
    let precision = |p: u8| match p {
        0 => "Y",
        1 => "YM",
        _ => "YMD",
    };
    for (i, p) in s.persons.iter().enumerate() {
        let key = format!("p{i:02}");
        let practices: Vec<&str> = match p.practices {
            1 => vec![PRACTICES[0]],
            2 => vec![PRACTICES[1]],
            _ => vec![PRACTICES[0], PRACTICES[1]],
        };
        let dob = match p.dob {
            0 => Some(shift(index, (-17 * 12, 0))),
            1 => Some(shift(index, (-17 * 12, 1))),
            2 => Some(d(2008, 2, 29)),
            3 => Some(d(1960, 1, 1)),
            4 => Some(shift(index, (-80 * 12, 0))),
            _ => None,
        };
        let dod = p.dod.map(|x| shift(index, (0, [0, -1, 1][x as usize])));
        for (j, practice) in practices.iter().enumerate() {
            rows.patients.push(Patient {
                practice: practice.to_string(),
                person: key.clone(),
                dob,
                dod,
                test: p.test && j == 0,
            });
        }
        for r in &p.registrations {
            let practice = practices[r.practice % practices.len()];
            let other = if practice == PRACTICES[0] {
                PRACTICES[1]
            } else {
                PRACTICES[0]
            };
            rows.registrations.push(Registration {
                practice: practice.to_string(),
                at: match r.at {
                    0 => Some(practice.to_string()),
                    1 => Some(other.to_string()),
                    2 => Some("Z99999".to_string()),
                    3 => None,
                    4 => Some(String::new()),
                    _ => Some(format!(" {} ", practice.to_lowercase())),
                },
                person: key.clone(),
                start: r.start.map(|x| {
                    shift(
                        index,
                        [(0, 0), (0, 1), (-3, 0), (-3, 1), (-60, 0), (0, -90)][x as usize],
                    )
                }),
                end: r
                    .end
                    .map(|x| shift(index, [(0, 0), (0, 1), (-12, 0), (0, -1)][x as usize])),
                kind: if r.temporary { "temporary" } else { "gms" }.into(),
            });
        }
        for ev in &p.events {
            e += 1;
            let date = ev.offset.map(|o| shift(index, EVENT_OFFSETS[o]));
            let concept = Some(EVENT_CODES[ev.concept]);
            rows.events.push(Event {
                practice: practices[ev.practice % practices.len()].to_string(),
                person: key.clone(),
                row: format!("e{e}"),
                date,
                precision: if date.is_some() {
                    precision(ev.precision)
                } else {
                    "U"
                }
                .into(),
                flag: match (date, ev.flag) {
                    (None, _) => Some("unknown_date".into()),
                    (Some(_), true) => Some("future".into()),
                    (Some(_), false) => None,
                },
                concept,
                mapping: if ev.unmapped { "unmapped" } else { "exact" }.into(),
                value: ev.value.map(|v| value_for(UNITS[ev.unit], v)),
                comparator: ev
                    .value
                    .and([None, Some(">"), Some("<")][ev.comparator as usize % 3])
                    .map(str::to_string),
                unit: ev.value.and(UNITS[ev.unit]).map(str::to_string),
            });
            if let Some((v, u)) = ev.twin {
                e += 1;
                let first = rows.events.last().expect("just pushed").clone();
                rows.events.push(Event {
                    row: format!("e{e}"),
                    value: Some(value_for(UNITS[u], v)),
                    comparator: None,
                    unit: UNITS[u].map(str::to_string),
                    ..first
                });
            }
        }
        for med in &p.medications {
            m += 1;
            let date = med.offset.map(|o| shift(index, EVENT_OFFSETS[o]));
            let dmd = MED_CODES[med.code];
            rows.medications.push(Medication {
                practice: practices[med.practice % practices.len()].to_string(),
                person: key.clone(),
                row: format!("m{m}"),
                date,
                precision: if date.is_some() {
                    precision(med.precision)
                } else {
                    "U"
                }
                .into(),
                flag: date.is_none().then(|| "unknown_date".into()),
                dmd,
                mapping: if dmd.is_some() { "exact" } else { "unmapped" }.into(),
            });
        }
    }
    match s.capability {
        1 => {
            rows.capability.insert(
                PRACTICES[1].into(),
                vec!["patients".into(), "registrations".into(), "events".into()],
            );
        }
        2 => {
            rows.capability.insert(
                PRACTICES[1].into(),
                vec![
                    "patients".into(),
                    "registrations".into(),
                    "medications".into(),
                ],
            );
        }
        _ => {}
    }
    rows
}

fn check(s: &Scenario) -> Result<(), TestCaseError> {
    let (y, mo, day) = INDEX_DATES[s.index];
    let index = d(y, mo, day);
    let cohort = build_cohort(&s.definition);
    let rows = build_rows(s, index);
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    rows.write(&store);
    let reference = cohort_support::reference(&store, std::slice::from_ref(&cohort), index)
        .pop()
        .unwrap();
    let engine = cohort_support::engine_with(
        &store,
        std::slice::from_ref(&cohort),
        index,
        &tmp.path().join("out"),
        s.slice_on_disk.then_some(0),
    )
    .pop()
    .unwrap();
    if std::env::var_os("PHM_PROPS_STATS").is_some() {
        let mut stats = STATS.lock().unwrap();
        for p in &reference {
            *stats
                .entry(format!("status {}", p.status.name()))
                .or_default() += 1;
            if let Some(rule) = &p.deciding_rule {
                let rule = if rule == "otherwise" {
                    "otherwise"
                } else {
                    "a rule"
                };
                *stats.entry(format!("decided by {rule}")).or_default() += 1;
            }
            if p.near_miss_rule.is_some() {
                *stats.entry("near miss".into()).or_default() += 1;
            }
            if p.outcome() == Some("undetermined") {
                *stats.entry("person undetermined".into()).or_default() += 1;
            }
            for (name, c) in &p.criteria {
                let kind = cohort.def.criterion(name).unwrap().kind;
                let kind = format!("{kind:?}");
                let kind = kind.split([' ', '{']).next().unwrap();
                *stats
                    .entry(format!("{kind} {}", c.reason.name()))
                    .or_default() += 1;
                if c.refused > 0 {
                    *stats.entry("refused > 0".into()).or_default() += 1;
                }
                if c.verdict.is_none() {
                    *stats
                        .entry(format!("{kind} undetermined {}", c.reason.name()))
                        .or_default() += 1;
                }
            }
        }
    }
    let diffs = differences(&engine, &reference);
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(TestCaseError::fail(format!(
            "engine (left) and reference (right) disagree at index {index}:\n{}\n\ndefinition: {:#?}\n\nrows: {:#?}",
            diffs.join("\n"),
            cohort.def,
            rows
        )))
    }
}

static STATS: std::sync::Mutex<BTreeMap<String, u64>> = std::sync::Mutex::new(BTreeMap::new());

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn engine_agrees_with_reference() {
    let config = Config {
        cases: env_number("PHM_PROPS_CASES", 48) as u32,
        failure_persistence: None,
        max_shrink_iters: 256,
        rng_algorithm: RngAlgorithm::ChaCha,
        ..Config::default()
    };
    let seed = env_number("PHM_PROPS_SEED", 7).to_le_bytes();
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 4].concat());
    let mut runner = TestRunner::new_with_rng(config, rng);
    let result = runner.run(&scenario(), |s| check(&s));
    if std::env::var_os("PHM_PROPS_STATS").is_some() {
        for (k, n) in STATS.lock().unwrap().iter() {
            eprintln!("{n:6}  {k}");
        }
    }
    if let Err(e) = result {
        panic!("{e}");
    }
}
