//! The summary `phm ingest` prints is the report's: every quarantined row is
//! counted (registrations and rows without a key included), and a practice
//! with no new delivery shows what the store holds, never zeros.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use common::*;
use datafusion::arrow::array::{Array, Int64Array, RecordBatch, StringArray};

/// The summary's practice rows: ODS → its cells (status, patients, events,
/// medications, quarantined, deleted, reconciles).
fn summary(text: &str) -> BTreeMap<String, Vec<String>> {
    text.lines()
        .skip_while(|l| !l.starts_with("practice supp"))
        .skip(1)
        .take_while(|l| !l.starts_with("persons linked") && !l.starts_with("unchanged:"))
        .map(|l| {
            let c: Vec<String> = l.split_whitespace().map(String::from).collect();
            (c[0].clone(), c[2..].to_vec())
        })
        .collect()
}

/// The report's quarantined rows per practice: every canonical table's, and
/// the rows of the run's deliveries that had no key.
fn report_quarantined(store: &Path) -> BTreeMap<String, u64> {
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("reports/ingest.json")).unwrap()).unwrap();
    report["practices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let canonical: u64 = p["canonical"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["quarantined"].as_u64().unwrap())
                .sum();
            let unkeyed: u64 = p["deliveries"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|d| d["tables"].as_array().unwrap())
                .map(|t| t["quarantined"].as_u64().unwrap())
                .sum();
            (
                p["practice"].as_str().unwrap().to_string(),
                canonical + unkeyed,
            )
        })
        .collect()
}

fn quarantine_rows(store: &Path, ods: &str) -> u64 {
    read_batch(&store.join(format!("quarantine/practice={ods}/data.parquet"))).num_rows() as u64
}

/// Row identifiers of `table` in every delivery of `ods` after the first.
fn later_ids(landing: &Path, ods: &str, table: &str, column: &str) -> BTreeSet<i64> {
    let mut ids = BTreeSet::new();
    for d in &deliveries(landing, ods)[1..] {
        let m = phm::source::manifest::Manifest::read(d).unwrap();
        for f in m.files.iter().filter(|f| f.table == table) {
            let b = read_batch(&d.join(&f.path));
            let c = b.column_by_name(column).unwrap();
            let c = c.as_any().downcast_ref::<Int64Array>().unwrap();
            ids.extend(c.iter().flatten());
        }
    }
    ids
}

/// `batch` with `column` replaced.
fn with_column(batch: &RecordBatch, column: &str, values: Arc<dyn Array>) -> RecordBatch {
    let i = batch.schema().index_of(column).unwrap();
    let mut cols = batch.columns().to_vec();
    cols[i] = values;
    RecordBatch::try_new(batch.schema(), cols).unwrap()
}

#[test]
fn the_summary_counts_every_quarantined_row_and_an_unchanged_practice_is_not_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let landing = tmp.path().join("landing");
    let store = tmp.path().join("store");
    let truth = small_network(&landing, 11);
    let (emis, tpp) = one_of_each(&truth);

    // TPP: five registrations of the bulk, untouched by later deliveries, name
    // a patient the practice does not have: quarantined `orphan_patient`.
    let bulk = deliveries(&landing, &tpp)[0].clone();
    let later = later_ids(&landing, &tpp, "SRPatientRegistration", "RowIdentifier");
    rewrite_table(&bulk, "SRPatientRegistration", |b| {
        let rows = b.column_by_name("RowIdentifier").unwrap();
        let rows = rows.as_any().downcast_ref::<Int64Array>().unwrap();
        let patients = b.column_by_name("IDPatient").unwrap();
        let patients = patients.as_any().downcast_ref::<Int64Array>().unwrap();
        let mut orphaned = 0;
        let new: Int64Array = (0..b.num_rows())
            .map(|i| {
                if orphaned < 5 && patients.is_valid(i) && !later.contains(&rows.value(i)) {
                    orphaned += 1;
                    Some(-1)
                } else {
                    patients.is_valid(i).then(|| patients.value(i))
                }
            })
            .collect();
        assert_eq!(orphaned, 5);
        with_column(&b, "IDPatient", Arc::new(new))
    });
    // EMIS: two observations of the bulk without their key: quarantined
    // `missing_key` when the delivery is merged.
    let bulk = deliveries(&landing, &emis)[0].clone();
    rewrite_table(&bulk, "CareRecord_Observation", |b| {
        let ids = b.column_by_name("ObservationGuid").unwrap();
        let ids = ids.as_any().downcast_ref::<StringArray>().unwrap();
        let new: StringArray = (0..b.num_rows())
            .map(|i| (i >= 2).then(|| ids.value(i)))
            .collect();
        with_column(&b, "ObservationGuid", Arc::new(new))
    });

    let first = ingest(&landing, &store);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let text = stdout(&first);
    let rows = summary(&text);
    let report = report_quarantined(&store);
    // By hand: the rows damaged above, and nothing else (the generator's
    // network leaves nothing in quarantine after all its deliveries).
    let expected: BTreeMap<String, u64> = truth
        .practices
        .iter()
        .map(|p| {
            let n = if p.ods == tpp {
                5
            } else if p.ods == emis {
                2
            } else {
                0
            };
            (p.ods.clone(), n)
        })
        .collect();
    assert_eq!(report, expected, "the report");
    for (ods, n) in &expected {
        assert_eq!(quarantine_rows(&store, ods), *n, "{ods}: quarantine table");
        assert_eq!(rows[ods][0], "ingested", "{text}");
        assert_eq!(rows[ods][4], n.to_string(), "{ods}: summary\n{text}");
    }

    // Nothing new: every practice is unchanged, with what the store holds.
    let second = ingest(&landing, &store);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let again = stdout(&second);
    let unchanged = summary(&again);
    for (ods, row) in &rows {
        let now = &unchanged[ods];
        assert_eq!(now[0], "unchanged", "{again}");
        // patients, events, medications, quarantined: as stored by the first run
        assert_eq!(now[1..5], row[1..5], "{ods}\n{text}\n{again}");
        let p = truth.practices.iter().find(|p| &p.ods == ods).unwrap();
        for (i, table) in ["patients", "events", "medications"].iter().enumerate() {
            let n = p.expected_rows.get(*table).copied().unwrap_or(0);
            // The damaged registrations and observations are not among these
            // tables' rows for TPP; EMIS lost two observations to quarantine.
            let n = if *ods == emis && *table == "events" {
                n - 2
            } else {
                n
            };
            assert_eq!(now[1 + i], n.to_string(), "{ods} {table}\n{again}");
        }
    }
    assert!(
        again.contains("unchanged: every delivery was already in the store"),
        "{again}"
    );
}
