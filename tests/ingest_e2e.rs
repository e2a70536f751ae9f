//! synth → ingest on a small mixed network, checked against the generator's
//! ground truth: counts reconcile, every injected defect is quarantined or
//! flagged as documented, deltas reach the state the generator says, moved
//! patients with a verified NHS number are linked, and re-ingesting changes nothing.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use common::*;
use datafusion::arrow::array::{Array, BooleanArray, RecordBatch, StringArray};
use phm::synth::truth::{DefectKind, GroundTruth};

fn strings<'a>(b: &'a RecordBatch, name: &str) -> &'a StringArray {
    b.column_by_name(name)
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap()
}

fn value(a: &StringArray, i: usize) -> String {
    if a.is_null(i) {
        "∅".into()
    } else {
        a.value(i).to_string()
    }
}

/// Canonical table of one practice (empty batch if the file is absent).
fn canonical(store: &Path, table: &str, ods: &str) -> Option<RecordBatch> {
    let path = store
        .join("canonical")
        .join(table)
        .join(format!("practice={ods}"))
        .join("data.parquet");
    path.exists().then(|| read_batch(&path))
}

fn quarantine(store: &Path, ods: &str) -> RecordBatch {
    read_batch(
        &store
            .join("quarantine")
            .join(format!("practice={ods}"))
            .join("data.parquet"),
    )
}

/// (practice, source row id) → the named columns' values, for one canonical table.
fn index(
    store: &Path,
    truth: &GroundTruth,
    table: &str,
    columns: &[&str],
) -> HashMap<(String, String), Vec<String>> {
    let mut out = HashMap::new();
    for p in &truth.practices {
        let Some(b) = canonical(store, table, &p.ods) else {
            continue;
        };
        let ids = strings(&b, "source_row_id");
        for i in 0..b.num_rows() {
            let values = columns
                .iter()
                .map(|c| {
                    match b
                        .column_by_name(c)
                        .unwrap()
                        .as_any()
                        .downcast_ref::<BooleanArray>()
                    {
                        Some(flag) => flag.value(i).to_string(),
                        None => value(strings(&b, c), i),
                    }
                })
                .collect();
            let previous = out.insert((p.ods.clone(), ids.value(i).to_string()), values);
            assert!(
                previous.is_none(),
                "{table}: row {} of {} loaded twice",
                ids.value(i),
                p.ods
            );
        }
    }
    out
}

fn canonical_of(source_table: &str) -> &'static str {
    match source_table {
        "Admin_Patient" | "SRPatient" => "patients",
        "CareRecord_Observation" | "SRCode" => "events",
        "Prescribing_IssueRecord" | "SRPrimaryCareMedication" => "medications",
        other => panic!("defect on unexpected table {other}"),
    }
}

/// The (column, value) a defect must leave on its canonical row.
fn expected_flag(kind: DefectKind) -> Option<(&'static str, &'static str)> {
    use DefectKind::*;
    Some(match kind {
        InvalidNhsNumber => ("nhs_number_status", "invalid"),
        MissingNhsNumber => ("nhs_number_status", "missing"),
        DummyPatient => ("is_test_patient", "true"),
        EventBeforeBirth => ("date_flag", "before_birth"),
        EventAfterDeath => ("date_flag", "after_death"),
        FutureDated => ("date_flag", "future"),
        MissingUnit => ("value_flag", "missing_unit"),
        UnknownUnit => ("value_flag", "unknown_unit"),
        PlaceholderZero => ("value_flag", "placeholder_value"),
        UnmappedLocalCode => ("mapping_kind", "unmapped"),
        FloorDate => ("date_flag", "floor_date"),
        UnknownDatePrecision => ("date_flag", "unknown_date"),
        LateCodingRow | DuplicateRow => return None,
    })
}

#[test]
fn synth_then_ingest_matches_the_ground_truth() {
    let work = tempfile::tempdir().unwrap();
    let generated = work.path().join("generated");
    let landing = work.path().join("landing");
    let store = work.path().join("store");
    let truth = small_network(&generated, 7);
    assert!(
        truth
            .practices
            .iter()
            .any(|p| p.supplier.as_str() == "emis")
    );
    assert!(truth.practices.iter().any(|p| p.supplier.as_str() == "tpp"));

    // Deliveries land one at a time, as they would night by night.
    let rounds = truth
        .practices
        .iter()
        .map(|p| p.deliveries.len())
        .max()
        .unwrap();
    for round in 0..rounds {
        for p in &truth.practices {
            if let Some(d) = deliveries(&generated, &p.ods).get(round) {
                copy_dir(d, &landing.join(&p.ods).join(d.file_name().unwrap()));
            }
        }
        let out = ingest(&landing, &store);
        assert_eq!(
            out.status.code(),
            Some(0),
            "round {round}: {}\n{}",
            stdout(&out),
            stderr(&out)
        );

        // A row whose CodeId arrives in a later delivery waits in quarantine.
        for p in &truth.practices {
            let Some(extract) = p.deliveries.get(round) else {
                continue;
            };
            let q = quarantine(&store, &p.ods);
            let (ids, reasons) = (strings(&q, "source_row_id"), strings(&q, "reason"));
            let waiting: Vec<String> = (0..q.num_rows())
                .filter(|i| reasons.value(*i) == "unknown_code_id")
                .map(|i| ids.value(i).to_string())
                .collect();
            for d in truth.defects.iter().filter(|d| {
                d.kind == DefectKind::LateCodingRow
                    && &d.extract_id == extract
                    && d.practice == p.ods
            }) {
                assert!(
                    waiting.contains(&d.row_id),
                    "round {round}: late-coded row {} not quarantined",
                    d.row_id
                );
            }
        }
    }

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("reports/ingest.json")).unwrap()).unwrap();
    for p in &truth.practices {
        // Deltas reach the state the generator computed.
        for (table, expected) in &p.expected_rows {
            let rows = canonical(&store, table, &p.ods).map_or(0, |b| b.num_rows() as u64);
            assert_eq!(rows, *expected, "{} {table}", p.ods);
        }
        let q = quarantine(&store, &p.ods);
        let reasons = strings(&q, "reason");
        let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
        for i in 0..q.num_rows() {
            *by_reason.entry(reasons.value(i).to_string()).or_default() += 1;
        }
        assert_eq!(by_reason, p.expected_quarantine, "{} quarantine", p.ods);
        // Deleted patients are gone with all their rows.
        for table in ["patients", "events", "medications", "registrations"] {
            if let Some(b) = canonical(&store, table, &p.ods) {
                let ids = strings(&b, "patient_id");
                for i in 0..b.num_rows() {
                    assert!(
                        !p.deleted_patients.contains(&ids.value(i).to_string()),
                        "{} {table}: deleted patient still present",
                        p.ods
                    );
                }
            }
        }
    }

    // Every injected defect is flagged as documented.
    let patients = index(
        &store,
        &truth,
        "patients",
        &["nhs_number_status", "is_test_patient"],
    );
    let events = index(
        &store,
        &truth,
        "events",
        &["date_flag", "value_flag", "mapping_kind"],
    );
    let medications = index(
        &store,
        &truth,
        "medications",
        &["date_flag", "mapping_kind"],
    );
    let mut checked: BTreeMap<DefectKind, usize> = BTreeMap::new();
    for d in &truth.defects {
        let (table, columns): (_, &[&str]) = match canonical_of(&d.table) {
            "patients" => (&patients, &["nhs_number_status", "is_test_patient"]),
            "events" => (&events, &["date_flag", "value_flag", "mapping_kind"]),
            _ => (&medications, &["date_flag", "mapping_kind"]),
        };
        let row = table.get(&(d.practice.clone(), d.row_id.clone()));
        let row = row.unwrap_or_else(|| {
            panic!(
                "{:?} row {} of {} {} is not in the store",
                d.kind, d.row_id, d.practice, d.table
            )
        });
        if let Some((column, value)) = expected_flag(d.kind) {
            let i = columns
                .iter()
                .position(|c| *c == column)
                .unwrap_or_else(|| panic!("{:?}: {column} not on {}", d.kind, d.table));
            assert_eq!(
                row[i], value,
                "{:?} row {} of {}",
                d.kind, d.row_id, d.practice
            );
        }
        *checked.entry(d.kind).or_default() += 1;
    }
    for kind in truth.defect_rates.keys() {
        assert!(
            checked.get(kind).copied().unwrap_or(0) > 0,
            "no {kind:?} defect was injected, so none was checked"
        );
    }

    // Exact duplicates were counted as such in the delivery that carried them.
    for p in report["practices"].as_array().unwrap() {
        let ods = p["practice"].as_str().unwrap();
        for delivery in p["deliveries"].as_array().unwrap() {
            let extract = delivery["extract_id"].as_str().unwrap();
            for t in delivery["tables"].as_array().unwrap() {
                assert_eq!(t["reconciles"], true, "{ods} {extract} {}", t["table"]);
                let injected = truth
                    .defects
                    .iter()
                    .filter(|d| {
                        d.kind == DefectKind::DuplicateRow
                            && d.practice == ods
                            && d.extract_id == extract
                            && d.table == t["table"].as_str().unwrap()
                    })
                    .count() as u64;
                assert!(
                    t["duplicate"].as_u64().unwrap() >= injected,
                    "{ods} {extract} {}",
                    t["table"]
                );
            }
        }
        for c in p["canonical"].as_array().unwrap() {
            assert_eq!(c["reconciles"], true, "{ods} {}", c["table"]);
        }
    }

    // Moves: one person key for a verified NHS number at two practices, two otherwise.
    let keys: HashMap<(String, String), String> = truth
        .practices
        .iter()
        .flat_map(|p| {
            let b = canonical(&store, "patients", &p.ods).unwrap();
            let (ids, keys) = (
                strings(&b, "patient_id").clone(),
                strings(&b, "person_key").clone(),
            );
            (0..b.num_rows())
                .map(move |i| {
                    (
                        (p.ods.clone(), ids.value(i).to_string()),
                        keys.value(i).to_string(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        truth.moves.iter().any(|m| m.linkable),
        "the network has linkable moves"
    );
    let mut linkable = 0;
    for m in &truth.moves {
        let (Some(from), Some(to)) = (keys.get(&m.from), keys.get(&m.to)) else {
            continue;
        };
        assert_eq!(from == to, m.linkable, "move {:?} → {:?}", m.from, m.to);
        linkable += usize::from(m.linkable);
    }
    assert_eq!(
        report["persons"]["linked_across_practices"]
            .as_u64()
            .unwrap() as usize,
        linkable
    );

    // Ingesting the same deliveries again changes nothing.
    let before = tree_hashes(&store.join("canonical"));
    let out = ingest(&landing, &store);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out).matches(" unchanged ").count(),
        truth.practices.len(),
        "{}",
        stdout(&out)
    );
    assert_eq!(before, tree_hashes(&store.join("canonical")));
}

#[test]
fn logs_never_carry_nhs_numbers() {
    let work = tempfile::tempdir().unwrap();
    let landing = work.path().join("landing");
    let store = work.path().join("store");
    small_network(&landing, 8);
    let out = phm(&[
        "-vv",
        "--log-format",
        "json",
        "ingest",
        "--landing",
        landing.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let logs = stderr(&out);
    assert!(logs.lines().count() > 0, "verbose run logs something");
    for line in logs.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    let numbers = regex_free_nhs_numbers(&store);
    assert!(!numbers.is_empty());
    for n in numbers {
        assert!(
            !logs.contains(&n) && !stdout(&out).contains(&n),
            "an NHS number reached the logs"
        );
    }
}

/// Every NHS number in the store's patients tables.
fn regex_free_nhs_numbers(store: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(store.join("canonical/patients")).unwrap() {
        let b = read_batch(&entry.unwrap().path().join("data.parquet"));
        let n = strings(&b, "nhs_number");
        out.extend(
            (0..b.num_rows())
                .filter(|i| n.is_valid(*i))
                .map(|i| n.value(i).to_string()),
        );
    }
    out
}

/// VPIDPREV → VPID pairs, read straight from the fixture's dm+d XML.
fn previous_vpids() -> HashMap<String, String> {
    let xml = std::fs::read_to_string(repo("terminology/fixture/dmd/f_vmp2_3060526.xml")).unwrap();
    let tag = |block: &str, name: &str| {
        let open = format!("<{name}>");
        let start = block.find(&open)? + open.len();
        Some(block[start..start + block[start..].find('<')?].to_string())
    };
    xml.split("<VMP>")
        .skip(1)
        .filter_map(|block| Some((tag(block, "VPIDPREV")?, tag(block, "VPID")?)))
        .collect()
}

#[test]
fn a_release_maps_previous_dmd_codes_to_current_ones() {
    let work = tempfile::tempdir().unwrap();
    let (landing, store, release) = (
        work.path().join("landing"),
        work.path().join("store"),
        work.path().join("fixture-20260506"),
    );
    let truth = small_network(&landing, 9);
    let imported = import_fixture(&release);
    assert!(imported.status.success(), "{}", stderr(&imported));
    let out = phm(&[
        "ingest",
        "--landing",
        landing.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--release",
        release.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // TPP rows carry the dm+d code itself, so source and mapped code can be compared.
    let previous = previous_vpids();
    let (mut substituted, mut kept) = (0, 0);
    for p in truth
        .practices
        .iter()
        .filter(|p| p.supplier.as_str() == "tpp")
    {
        let b = canonical(&store, "medications", &p.ods).unwrap();
        let (source, kind) = (strings(&b, "source_code"), strings(&b, "mapping_kind"));
        let dmd = b
            .column_by_name("dmd_code")
            .unwrap()
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .unwrap();
        for i in 0..b.num_rows() {
            match previous.get(source.value(i)) {
                Some(current) => {
                    assert_eq!(kind.value(i), "history_substituted", "{}", source.value(i));
                    assert_eq!(&dmd.value(i).to_string(), current);
                    substituted += 1;
                }
                None if dmd.is_valid(i) => {
                    assert_ne!(kind.value(i), "history_substituted");
                    assert_eq!(dmd.value(i).to_string(), source.value(i));
                    kept += 1;
                }
                None => {}
            }
        }
    }
    assert!(
        substituted > 0 && kept > 0,
        "both kinds occur ({substituted}, {kept})"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("reports/ingest.json")).unwrap()).unwrap();
    assert_eq!(report["terminology_release"], "fixture-20260506");
}

/// The generator and the fixture release agree: every concept an ingested event
/// maps to is a fixture concept, and every CTV3 pair a TPP delivery carries is
/// in the fixture's CTV3 map.
#[test]
fn synthetic_codes_are_in_the_fixture_release() {
    let work = tempfile::tempdir().unwrap();
    let (landing, store) = (work.path().join("landing"), work.path().join("store"));
    let truth = small_network(&landing, 10);
    assert_eq!(ingest(&landing, &store).status.code(), Some(0));
    let fixture = repo("terminology/fixture");

    let mut concept_files = Vec::new();
    let mut stack = vec![fixture.join("rf2")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("sct2_Concept_")
            {
                concept_files.push(path);
            }
        }
    }
    let concepts: std::collections::HashSet<String> = concept_files
        .iter()
        .flat_map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            text.lines()
                .skip(1)
                .map(|l| l.split('\t').next().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let map: std::collections::HashSet<(String, String)> =
        std::fs::read_to_string(fixture.join("ctv3/SRCtv3ToSnomed.txt"))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f[1].to_string(), f[4].to_string())
            })
            .collect();

    for p in &truth.practices {
        let b = canonical(&store, "events", &p.ods).unwrap();
        let ids = b
            .column_by_name("snomed_concept_id")
            .unwrap()
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .unwrap();
        for id in ids.iter().flatten() {
            assert!(
                concepts.contains(&id.to_string()),
                "{}: concept {id} not in the fixture release",
                p.ods
            );
        }
        if p.supplier.as_str() == "tpp" {
            for d in deliveries(&landing, &p.ods) {
                let m = read_batch(&d.join("SRCtv3ToSnomed.parquet"));
                let (ctv3, sct) = (strings(&m, "Ctv3Code"), strings(&m, "SnomedCode"));
                for i in (0..m.num_rows()).filter(|i| ctv3.is_valid(*i) && sct.is_valid(*i)) {
                    let pair = (ctv3.value(i).to_string(), sct.value(i).to_string());
                    assert!(
                        map.contains(&pair),
                        "{}: {pair:?} not in the fixture CTV3 map",
                        p.ods
                    );
                }
            }
        }
    }
}
