//! `phm cohort run` with a key puts each cohort in context: the data-quality
//! checks that bear on it (network `quality`), the persons whose verdict
//! rests on unmapped codes (`unmapped_dependent` in counts), and each
//! practice's fix-at-source worklist naming the cohorts a row affects.
//!
//! Expected figures come from the generator's injected defects (ground
//! truth), located in the store's canonical tables, the value sets as
//! `phm valueset expand` lists them and the engine's membership: never from
//! the files under test.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use datafusion::arrow::array::{Array, AsArray, BooleanArray, Int64Array, RecordBatch};
use phm::synth::truth::{DefectKind, GroundTruth};

const KEY: &[u8] = b"forty bytes of key material for the test";

/// The cohorts run, with the value sets their criteria read.
const COHORTS: &[(&str, &[&str])] = &[
    ("DM_REG@2025.1", &["DM_COD@20250627", "DMRES_COD@20250627"]),
    (
        "DM_HBA1C_58@2025.1",
        &[
            "DM_COD@20250627",
            "DMRES_COD@20250627",
            "HBA1C_TESTS@2ab11f20",
        ],
    ),
    ("CKD_3_5@2025.1", &["DOAC_EGFR@02a07963"]),
];

/// The check that finds a defect kind's rows exactly (as tests/dq.rs shows:
/// the check's numerator is the injected count), for the kinds compared.
fn check_of(kind: DefectKind) -> Option<&'static str> {
    use DefectKind::*;
    Some(match kind {
        InvalidNhsNumber => "patients.nhs_number_invalid",
        MissingNhsNumber => "patients.nhs_number_missing",
        EventBeforeBirth => "events.before_birth",
        EventAfterDeath => "events.after_death",
        FutureDated => "events.future",
        MissingUnit => "measurements.missing_unit",
        UnknownUnit => "measurements.unknown_unit",
        PlaceholderZero => "measurements.placeholder_value",
        UnmappedLocalCode => "codes.events_unmapped",
        FloorDate => "events.floor_date",
        UnknownDatePrecision => "events.unknown_date",
        _ => return None,
    })
}

fn text(b: &RecordBatch, c: &str, i: usize) -> Option<String> {
    let a = b
        .column_by_name(c)
        .unwrap_or_else(|| panic!("no column {c}"));
    let a =
        datafusion::arrow::compute::cast(a, &datafusion::arrow::datatypes::DataType::Utf8).unwrap();
    let a = a.as_string::<i32>();
    a.is_valid(i).then(|| a.value(i).to_string())
}

/// Every row of a canonical table, as (practice, source_table, source_row_id)
/// → (person key, concept).
fn canonical(
    store: &Path,
    table: &str,
) -> BTreeMap<(String, String, String), (String, Option<i64>)> {
    let mut out = BTreeMap::new();
    for part in fs::read_dir(store.join("canonical").join(table)).unwrap() {
        let b = read_batch(&part.unwrap().path().join("data.parquet"));
        let concept = b
            .column_by_name("snomed_concept_id")
            .map(|c| c.as_any().downcast_ref::<Int64Array>().unwrap().clone());
        for i in 0..b.num_rows() {
            let location = (
                text(&b, "practice", i).unwrap(),
                text(&b, "source_table", i).unwrap(),
                text(&b, "source_row_id", i).unwrap(),
            );
            let c = concept
                .as_ref()
                .and_then(|c| c.is_valid(i).then(|| c.value(i)));
            let previous = out.insert(location.clone(), (text(&b, "person_key", i).unwrap(), c));
            assert!(
                previous.is_none() || table == "patients",
                "{location:?} twice"
            );
        }
    }
    out
}

fn codes(release: &Path, work: &Path, valuesets: &[&str]) -> BTreeSet<i64> {
    let mut out = BTreeSet::new();
    for vs in valuesets {
        let csv = work.join(format!("{vs}.csv"));
        let o = phm(&[
            "valueset",
            "expand",
            vs,
            "--release",
            release.to_str().unwrap(),
            "--out",
            csv.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        for line in fs::read_to_string(&csv).unwrap().lines().skip(1) {
            out.insert(line.split(',').next().unwrap().parse().unwrap());
        }
    }
    out
}

/// A person's registration at the index date: (practice, in population, included).
type Member = (String, bool, bool);

fn membership(out: &Path, cohort: &str) -> BTreeMap<String, Member> {
    let b = read_batch(&out.join(cohort).join("membership.parquet"));
    let included = b
        .column_by_name("included")
        .unwrap()
        .as_any()
        .downcast_ref::<BooleanArray>()
        .unwrap();
    (0..b.num_rows())
        .filter_map(|i| {
            let practice = text(&b, "practice", i)?;
            Some((
                text(&b, "person_key", i).unwrap(),
                (
                    practice,
                    text(&b, "status", i).as_deref() == Some("in_population"),
                    included.is_valid(i) && included.value(i),
                ),
            ))
        })
        .collect()
}

fn run(store: &Path, release: &Path, out: &Path, key: &Path, exact: bool) {
    let mut args = vec![
        "cohort",
        "run",
        "--store",
        store.to_str().unwrap(),
        "--release",
        release.to_str().unwrap(),
        "--index-date",
        "2026-03-31",
        "--out",
        out.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
        // The engine's membership is the reference the figures are derived from.
        "--keep-identifiable",
    ];
    args.extend(COHORTS.iter().map(|(k, _)| *k));
    if exact {
        args.push("--no-disclosure-control");
    }
    let o = phm(&args);
    assert!(matches!(o.status.code(), Some(0 | 3)), "{}", stderr(&o));
}

/// What the files should say, derived from the ground truth.
#[derive(Default)]
struct Expected {
    /// (cohort, practice, check) → (rows, persons).
    quality: BTreeMap<(String, String, String), (u64, BTreeSet<String>)>,
    /// (cohort, practice) → persons.
    unmapped: BTreeMap<(String, String), BTreeSet<String>>,
    /// (practice, check, source table, source row id) → cohorts.
    worklist: BTreeMap<(String, String, String, String), BTreeSet<String>>,
}

fn expected(
    truth: &GroundTruth,
    store: &Path,
    release: &Path,
    out: &Path,
    work: &Path,
) -> Expected {
    let events = canonical(store, "events");
    let patients = canonical(store, "patients");
    let mut e = Expected::default();
    for (cohort, valuesets) in COHORTS {
        let codes = codes(release, work, valuesets);
        let members = membership(out, cohort);
        let left_out = |person: &str, practice: &str| {
            members
                .get(person)
                .is_some_and(|(p, pop, inc)| p == practice && *pop && !*inc)
        };
        let mut seen = BTreeSet::new();
        for d in &truth.defects {
            let Some(check) = check_of(d.kind) else {
                continue;
            };
            let location = (d.practice.clone(), d.table.clone(), d.row_id.clone());
            if !seen.insert((check, location.clone())) {
                continue;
            }
            let (person, bears) = if check.starts_with("patients.") {
                let (person, _) = &patients[&location];
                let in_population = members
                    .get(person)
                    .is_some_and(|(p, pop, _)| *p == d.practice && *pop);
                (person, in_population)
            } else {
                let (person, concept) = &events[&location];
                let bears = match concept {
                    Some(c) => codes.contains(c),
                    None => left_out(person, &d.practice),
                };
                if check == "codes.events_unmapped" && left_out(person, &d.practice) {
                    e.unmapped
                        .entry((cohort.to_string(), d.practice.clone()))
                        .or_default()
                        .insert(person.clone());
                }
                (person, bears)
            };
            if !bears {
                continue;
            }
            let q = e
                .quality
                .entry((cohort.to_string(), d.practice.clone(), check.to_string()))
                .or_default();
            q.0 += 1;
            if members.get(person).is_some_and(|(p, ..)| *p == d.practice) {
                q.1.insert(person.clone());
            }
            e.worklist
                .entry((
                    d.practice.clone(),
                    check.to_string(),
                    d.table.clone(),
                    d.row_id.clone(),
                ))
                .or_default()
                .insert(cohort.to_string());
        }
    }
    e
}

fn rows_of(path: &Path) -> Vec<BTreeMap<String, Option<String>>> {
    let b = read_batch(path);
    (0..b.num_rows())
        .map(|i| {
            b.schema()
                .fields()
                .iter()
                .map(|f| (f.name().clone(), text(&b, f.name(), i)))
                .collect()
        })
        .collect()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn checks_unmapped_verdicts_and_worklists_bear_on_the_right_cohorts() {
    let work = tempfile::tempdir().unwrap();
    let (landing, store, release) = (
        work.path().join("landing"),
        work.path().join("store"),
        work.path().join("release"),
    );
    let truth = network(&landing, 51, 600);
    assert!(import_fixture(&release).status.success());
    assert_eq!(ingest(&landing, &store).status.code(), Some(0));
    let key = work.path().join("network.key");
    fs::write(&key, KEY).unwrap();
    let (exact, controlled) = (work.path().join("exact"), work.path().join("controlled"));
    run(&store, &release, &exact, &key, true);
    run(&store, &release, &controlled, &key, false);
    let e = expected(&truth, &store, &release, &exact, work.path());
    let compared: BTreeSet<&str> = truth
        .defects
        .iter()
        .filter_map(|d| check_of(d.kind))
        .collect();

    // The test exercises what it claims: HbA1c rows with a unit defect bear
    // on DM_HBA1C_58 and not on DM_REG (which reads no HbA1c); some rows
    // bear on a cohort through an unmapped code.
    let of = |cohort: &str, check: &str| {
        e.quality
            .iter()
            .filter(|((c, _, k), _)| c == cohort && k == check)
            .map(|(_, (n, _))| *n)
            .sum::<u64>()
    };
    let units = ["measurements.missing_unit", "measurements.unknown_unit"];
    assert!(
        units
            .iter()
            .map(|c| of("DM_HBA1C_58@2025.1", c))
            .sum::<u64>()
            > 0
    );
    assert_eq!(units.iter().map(|c| of("DM_REG@2025.1", c)).sum::<u64>(), 0);
    assert!(units.iter().map(|c| of("CKD_3_5@2025.1", c)).sum::<u64>() > 0);
    assert!(!e.unmapped.is_empty());

    for (cohort, _) in COHORTS {
        let network = exact.join("network").join(cohort);
        // quality: exactly the expected (practice, check) figures for the
        // checks compared, and the network row their sum.
        let mut got: BTreeMap<(String, String), (String, String)> = BTreeMap::new();
        for r in rows_of(&network.join("quality.parquet")) {
            assert_eq!(
                r.keys().map(String::as_str).collect::<Vec<_>>(),
                ["check_id", "persons", "practice", "rows"]
            );
            let v = |k: &str| r[k].clone().unwrap();
            got.insert((v("practice"), v("check_id")), (v("rows"), v("persons")));
        }
        let mut totals: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for ((c, practice, check), (rows, persons)) in &e.quality {
            if c != cohort {
                continue;
            }
            assert_eq!(
                got.get(&(practice.clone(), check.clone())),
                Some(&(rows.to_string(), persons.len().to_string())),
                "{cohort} {practice} {check}"
            );
            let t = totals.entry(check).or_default();
            t.0 += rows;
            t.1 += persons.len() as u64;
        }
        for ((practice, check), cell) in &got {
            if !compared.contains(check.as_str()) {
                continue;
            }
            if practice == "ALL" {
                let (r, p) = totals[check.as_str()];
                assert_eq!(
                    cell,
                    &(r.to_string(), p.to_string()),
                    "{cohort} ALL {check}"
                );
            } else {
                assert!(
                    e.quality
                        .contains_key(&(cohort.to_string(), practice.clone(), check.clone())),
                    "{cohort} {practice} {check}: a row bearing on nothing"
                );
            }
        }
        // unmapped_dependent per practice and for the network.
        let counts = rows_of(&network.join("counts.parquet"));
        let mut all = 0;
        for r in &counts {
            let practice = r["practice"].clone().unwrap();
            let cell = r["unmapped_dependent"].clone().unwrap();
            if practice == "ALL" {
                assert_eq!(cell, all.to_string(), "{cohort} ALL");
            } else if cell != "unavailable" {
                let n = e
                    .unmapped
                    .get(&(cohort.to_string(), practice.clone()))
                    .map_or(0, BTreeSet::len);
                assert_eq!(cell, n.to_string(), "{cohort} {practice}");
                all += n;
            }
        }

        // Under disclosure control: small figures are suppressed, never 0;
        // the rest rounded or suppressed alongside.
        let controlled = controlled.join("network").join(cohort);
        let exact_rows: BTreeMap<(String, String), (String, String)> = got;
        let mut suppressed = 0;
        for r in rows_of(&controlled.join("quality.parquet")) {
            let v = |k: &str| r[k].clone().unwrap();
            let (rows, persons) = &exact_rows[&(v("practice"), v("check_id"))];
            for (shown, n) in [(v("rows"), rows), (v("persons"), persons)] {
                let n: u64 = n.parse().unwrap();
                match n {
                    0 => assert_eq!(shown, "0"),
                    1..=7 => {
                        assert_eq!(shown, "suppressed");
                        suppressed += 1;
                    }
                    _ if shown == "suppressed" => {}
                    _ => assert_eq!(shown, ((n + 2) / 5 * 5).to_string()),
                }
            }
        }
        assert!(suppressed > 0, "{cohort}: nothing small to suppress");
        for r in rows_of(&controlled.join("counts.parquet")) {
            let practice = r["practice"].clone().unwrap();
            let cell = r["unmapped_dependent"].clone().unwrap();
            let n = if practice == "ALL" {
                e.unmapped
                    .iter()
                    .filter(|((c, _), _)| c == cohort)
                    .map(|(_, p)| p.len())
                    .sum()
            } else {
                e.unmapped
                    .get(&(cohort.to_string(), practice.clone()))
                    .map_or(0, BTreeSet::len)
            };
            if (1..=7).contains(&n) {
                assert_eq!(cell, "suppressed", "{cohort} {practice}");
            }
        }
    }

    // The worklist of each practice: the rows of the compared checks that
    // bear on some cohort, each naming exactly those cohorts, sorted.
    let manifest = fs::read_to_string(exact.join("manifest.json")).unwrap();
    for p in &truth.practices {
        let path = exact.join("practice").join(&p.ods).join("worklist.parquet");
        let rows = rows_of(&path);
        assert!(
            exact
                .join("practice")
                .join(&p.ods)
                .join("worklist.csv")
                .exists()
        );
        for suffix in ["worklist.parquet", "worklist.csv"] {
            assert!(manifest.contains(&format!("practice/{}/{suffix}", p.ods)));
        }
        let mut got = BTreeMap::new();
        for r in &rows {
            assert_eq!(
                r.keys().map(String::as_str).collect::<BTreeSet<_>>(),
                BTreeSet::from([
                    "source_system",
                    "source_table",
                    "source_row_id",
                    "extract_id",
                    "check_id",
                    "problem",
                    "cohorts"
                ])
            );
            let v = |k: &str| r[k].clone().unwrap();
            assert_eq!(v("source_system"), p.supplier.as_str());
            assert_eq!(
                Some(v("problem").as_str()),
                phm::quality::checks::find(&v("check_id")).map(|c| c.description)
            );
            if compared.contains(v("check_id").as_str()) {
                let previous = got.insert(
                    (
                        p.ods.clone(),
                        v("check_id"),
                        v("source_table"),
                        v("source_row_id"),
                    ),
                    v("cohorts"),
                );
                assert!(previous.is_none(), "one row per (source row, check)");
            }
        }
        let want: BTreeMap<_, _> = e
            .worklist
            .iter()
            .filter(|((practice, ..), _)| *practice == p.ods)
            .map(|(k, cohorts)| {
                (
                    k.clone(),
                    cohorts.iter().cloned().collect::<Vec<_>>().join(";"),
                )
            })
            .collect();
        assert_eq!(got, want, "{}", p.ods);
    }
    assert!(manifest.contains("quality.parquet"));

    // No person key or NHS number in any new file.
    let mut identifiers = BTreeSet::new();
    for part in fs::read_dir(store.join("canonical/patients")).unwrap() {
        let b = read_batch(&part.unwrap().path().join("data.parquet"));
        for i in 0..b.num_rows() {
            identifiers.insert(text(&b, "person_key", i).unwrap());
            if let Some(n) = text(&b, "nhs_number", i).filter(|n| n.len() >= 10) {
                identifiers.insert(n);
            }
        }
    }
    for run in [&exact, &controlled] {
        for f in files(run).into_iter().filter(|f| {
            f.to_string_lossy().contains("worklist") || f.to_string_lossy().contains("quality")
        }) {
            let text = fs::read_to_string(f.with_extension("csv")).unwrap();
            for id in &identifiers {
                assert!(
                    !text.contains(id.as_str()),
                    "{}: holds an identifier",
                    f.display()
                );
            }
        }
    }
}
