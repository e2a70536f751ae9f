//! The merge as a DataFusion plan (`source::merge_plan`) and the bucketed
//! file merge ingest runs (`source::merge_files`) against the reference merge
//! (`source::merge`): table-driven cases, one per rule, with expected
//! states and counts written out by hand, and property tests over generated
//! states and deltas (keys null, empty or padded; versions negative, null or
//! tied; deletes; exact duplicates; content changes) for an EMIS patient-like
//! table, an EMIS child-like table with a two-column key, and a TPP-like table.
//! The file merge is run with one bucket and with many, and its delivery
//! arrives in two batches.
//!
//! Deterministic (a fixed seed, no persistence files); `PROPTEST_CASES=2000`
//! for a longer hunt.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use chrono::NaiveDate;
use datafusion::arrow::array::{
    Array, BooleanArray, Int8Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::util::display::array_value_to_string;
use phm::source::merge::{MergeCounts, merge};
use phm::source::merge_plan::{Merger, PlanOutcome, read_state};
use phm::source::read::{Origin, with_origin};
use phm::source::table::{DeleteMarker, TableSpec, Ty::*};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

static EMIS_PATIENT: TableSpec = TableSpec {
    name: "EmisPatientLike",
    columns: &[
        ("PatientGuid", Str),
        ("Value", Str),
        ("Deleted", Bool),
        ("ProcessingId", I64),
    ],
    key: &["PatientGuid"],
    version: Some("ProcessingId"),
    delete: DeleteMarker::EmisDeleted,
    patient: Some("PatientGuid"),
};

static EMIS_CHILD: TableSpec = TableSpec {
    name: "EmisChildLike",
    columns: &[
        ("PatientGuid", Str),
        ("RecordGuid", Str),
        ("Value", Str),
        ("Deleted", Bool),
        ("ProcessingId", I64),
    ],
    key: &["PatientGuid", "RecordGuid"],
    version: Some("ProcessingId"),
    delete: DeleteMarker::EmisDeleted,
    patient: Some("PatientGuid"),
};

static TPP_LIKE: TableSpec = TableSpec {
    name: "TppLike",
    columns: &[("RowIdentifier", I64), ("Value", Str), ("RemovedData", I8)],
    key: &["RowIdentifier"],
    version: None,
    delete: DeleteMarker::TppRemovedData,
    patient: None,
};

/// One generated or hand-written row; which fields a spec uses depends on it.
#[derive(Debug, Clone)]
struct Row {
    patient: Option<String>,
    key: Option<String>,
    value: Option<String>,
    delete: bool,
    /// EMIS `ProcessingId`; ignored for TPP.
    version: Option<i64>,
}

fn origin(extract: &'static str, day: u32) -> Origin<'static> {
    Origin {
        supplier: "test",
        schema_version: "0",
        extract_id: extract,
        extracted_at: NaiveDate::from_ymd_opt(2026, 1, day)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap(),
        file_label: extract,
    }
}

fn batch(spec: &'static TableSpec, rows: &[Row], origin: &Origin<'_>) -> RecordBatch {
    let s = |f: fn(&Row) -> Option<String>| {
        Arc::new(rows.iter().map(f).collect::<StringArray>()) as Arc<dyn Array>
    };
    let deleted = Arc::new(
        rows.iter()
            .map(|r| Some(r.delete))
            .collect::<BooleanArray>(),
    );
    let version = Arc::new(rows.iter().map(|r| r.version).collect::<Int64Array>());
    let columns: Vec<Arc<dyn Array>> = match spec.name {
        "EmisPatientLike" => vec![
            s(|r| r.key.clone()),
            s(|r| r.value.clone()),
            deleted,
            version,
        ],
        "EmisChildLike" => vec![
            s(|r| r.patient.clone()),
            s(|r| r.key.clone()),
            s(|r| r.value.clone()),
            deleted,
            version,
        ],
        _ => vec![
            Arc::new(
                rows.iter()
                    .map(|r| r.key.as_ref().map(|k| k.trim().parse::<i64>().unwrap()))
                    .collect::<Int64Array>(),
            ),
            s(|r| r.value.clone()),
            Arc::new(
                rows.iter()
                    .map(|r| Some(i8::from(r.delete)))
                    .collect::<Int8Array>(),
            ),
        ],
    };
    let data = RecordBatch::try_new(spec.schema(), columns).unwrap();
    with_origin(data, spec, origin)
}

/// Every row as one line of all its columns (nulls as `∅`), sorted.
fn lines(batch: &RecordBatch) -> Vec<String> {
    let mut out: Vec<String> = (0..batch.num_rows())
        .map(|i| {
            batch
                .columns()
                .iter()
                .map(|c| {
                    if c.is_null(i) {
                        "∅".to_string()
                    } else {
                        array_value_to_string(c, i).unwrap()
                    }
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    out.sort();
    out
}

fn merger() -> &'static Merger {
    static MERGER: OnceLock<(tempfile::TempDir, Merger)> = OnceLock::new();
    let (_, m) = MERGER.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let m = Merger::new(&dir.path().join("spill"), 64 << 20).unwrap();
        (dir, m)
    });
    m
}

/// Runs the plan: the state (if any) written to Parquet first, as the store holds it.
fn plan(
    spec: &'static TableSpec,
    state: Option<&RecordBatch>,
    delta: &RecordBatch,
) -> (RecordBatch, PlanOutcome) {
    let dir = tempfile::tempdir().unwrap();
    let state_path = dir.path().join("state.parquet");
    if let Some(s) = state {
        phm::store::write_parquet(&state_path, s, &[]).unwrap();
    }
    let out = dir.path().join("new.parquet");
    let outcome = merger()
        .merge(spec, state.map(|_| state_path.as_path()), delta, &out)
        .unwrap();
    (read_state(spec, &out).unwrap(), outcome)
}

/// The plan and the reference agree on the new state and everything reported.
fn assert_same(
    spec: &'static TableSpec,
    state: Option<&RecordBatch>,
    delta: &RecordBatch,
) -> PlanOutcome {
    let reference = merge(spec, state, delta);
    let (new_state, outcome) = plan(spec, state, delta);
    assert_eq!(lines(&new_state), lines(&reference.state), "new state");
    assert_eq!(outcome.state_rows, reference.state.num_rows() as u64);
    assert_eq!(outcome.counts, reference.counts, "counts");
    assert_eq!(outcome.missing_key, reference.missing_key, "missing key");
    assert_eq!(
        outcome.invalid_version, reference.invalid_version,
        "invalid version"
    );
    assert_eq!(
        outcome.removed_patients, reference.removed_patients,
        "removed patients"
    );
    outcome
}

fn emis(key: Option<&str>, value: &str, delete: bool, version: Option<i64>) -> Row {
    Row {
        patient: Some("p".to_string()),
        key: key.map(str::to_string),
        value: Some(value.to_string()),
        delete,
        version,
    }
}

fn tpp(id: i64, value: Option<&str>) -> Row {
    Row {
        patient: None,
        key: Some(id.to_string()),
        value: value.map(str::to_string),
        delete: value.is_none(),
        version: None,
    }
}

/// The new state as sorted `key=value` (key: the last key column).
fn contents(spec: &TableSpec, batch: &RecordBatch) -> Vec<String> {
    let key = batch
        .column(spec.column_index(spec.key.last().unwrap()).unwrap())
        .clone();
    let value = batch.column(spec.column_index("Value").unwrap()).clone();
    let mut out: Vec<String> = (0..batch.num_rows())
        .map(|i| {
            format!(
                "{}={}",
                array_value_to_string(&key, i).unwrap(),
                array_value_to_string(&value, i).unwrap()
            )
        })
        .collect();
    out.sort();
    out
}

/// (applied, superseded, duplicate, deleted, quarantined, deleted_not_found)
fn counts(c: [u64; 6], rows_in: u64) -> MergeCounts {
    MergeCounts {
        rows_in,
        applied: c[0],
        superseded: c[1],
        duplicate: c[2],
        deleted: c[3],
        quarantined: c[4],
        deleted_not_found: c[5],
    }
}

/// (rule, delta rows, expected state, expected counts, removed patients)
type EmisCase = (
    &'static str,
    Vec<Row>,
    Vec<&'static str>,
    [u64; 6],
    Vec<&'static str>,
);
/// (rule, delta rows, expected state, expected counts)
type TppCase = (&'static str, Vec<Row>, Vec<&'static str>, [u64; 6]);

#[test]
fn emis_rules() {
    let state = batch(
        &EMIS_PATIENT,
        &[
            emis(Some("a"), "a1", false, Some(10)),
            emis(Some("b"), "b1", false, Some(10)),
        ],
        &origin("bulk", 1),
    );
    // (rule, delta rows, expected state, [applied, superseded, duplicate, deleted, quarantined, not found], removed)
    let cases: Vec<EmisCase> = vec![
        (
            "a higher version replaces",
            vec![emis(Some("a"), "a2", false, Some(11))],
            vec!["a=a2", "b=b1"],
            [1, 0, 0, 0, 0, 0],
            vec![],
        ),
        (
            "an equal version replaces",
            vec![emis(Some("a"), "a2", false, Some(10))],
            vec!["a=a2", "b=b1"],
            [1, 0, 0, 0, 0, 0],
            vec![],
        ),
        (
            "a lower version is stale",
            vec![emis(Some("a"), "a0", false, Some(9))],
            vec!["a=a1", "b=b1"],
            [0, 1, 0, 0, 0, 0],
            vec![],
        ),
        (
            "version order, not file order",
            vec![
                emis(Some("a"), "a3", false, Some(13)),
                emis(Some("a"), "a2", false, Some(12)),
            ],
            vec!["a=a3", "b=b1"],
            [1, 1, 0, 0, 0, 0],
            vec![],
        ),
        (
            "tied versions keep file order",
            vec![
                emis(Some("a"), "a3", false, Some(12)),
                emis(Some("a"), "a2", false, Some(12)),
            ],
            vec!["a=a2", "b=b1"],
            [1, 1, 0, 0, 0, 0],
            vec![],
        ),
        (
            "a delete removes",
            vec![emis(Some("b"), "", true, Some(11))],
            vec!["a=a1"],
            [0, 0, 0, 1, 0, 0],
            vec!["b"],
        ),
        (
            "a stale delete is superseded",
            vec![emis(Some("b"), "", true, Some(9))],
            vec!["a=a1", "b=b1"],
            [0, 1, 0, 0, 0, 0],
            vec![],
        ),
        (
            "a delete of an absent key is not found",
            vec![emis(Some("z"), "", true, Some(11))],
            vec!["a=a1", "b=b1"],
            [0, 0, 0, 1, 0, 1],
            vec![],
        ),
        (
            "a second delete is not found",
            vec![
                emis(Some("b"), "", true, Some(11)),
                emis(Some("b"), "", true, Some(12)),
            ],
            vec!["a=a1"],
            [0, 0, 0, 2, 0, 1],
            vec!["b"],
        ),
        (
            "delete then re-insert",
            vec![
                emis(Some("b"), "", true, Some(11)),
                emis(Some("b"), "b2", false, Some(12)),
            ],
            vec!["a=a1", "b=b2"],
            [1, 0, 0, 1, 0, 0],
            vec!["b"],
        ),
        (
            "insert then delete",
            vec![
                emis(Some("e"), "e1", false, Some(11)),
                emis(Some("e"), "", true, Some(12)),
            ],
            vec!["a=a1", "b=b1"],
            [0, 1, 0, 1, 0, 0],
            vec!["e"],
        ),
        (
            "an exact duplicate",
            vec![
                emis(Some("d"), "d1", false, Some(11)),
                emis(Some("d"), "d1", false, Some(11)),
            ],
            vec!["a=a1", "b=b1", "d=d1"],
            [1, 0, 1, 0, 0, 0],
            vec![],
        ),
        (
            "a duplicate of the state's row is applied",
            vec![emis(Some("a"), "a1", false, Some(10))],
            vec!["a=a1", "b=b1"],
            [1, 0, 0, 0, 0, 0],
            vec![],
        ),
        (
            "a changed value is no duplicate",
            vec![
                emis(Some("d"), "d1", false, Some(11)),
                emis(Some("d"), "d2", false, Some(11)),
            ],
            vec!["a=a1", "b=b1", "d=d2"],
            [1, 1, 0, 0, 0, 0],
            vec![],
        ),
        (
            "a duplicate after a stale row",
            vec![
                emis(Some("a"), "x", false, Some(5)),
                emis(Some("a"), "x", false, Some(5)),
            ],
            vec!["a=a1", "b=b1"],
            [0, 2, 0, 0, 0, 0],
            vec![],
        ),
        (
            "duplicates of duplicates",
            vec![
                emis(Some("d"), "d1", false, Some(11)),
                emis(Some("d"), "d1", false, Some(11)),
                emis(Some("d"), "d1", false, Some(11)),
                emis(Some("d"), "d2", false, Some(12)),
            ],
            vec!["a=a1", "b=b1", "d=d2"],
            [1, 1, 2, 0, 0, 0],
            vec![],
        ),
        (
            "a padded key is the same key",
            vec![emis(Some(" a "), "a2", false, Some(11))],
            vec![" a =a2", "b=b1"],
            [1, 0, 0, 0, 0, 0],
            vec![],
        ),
        (
            "a missing, empty or blank key is quarantined",
            vec![
                emis(None, "x", false, Some(11)),
                emis(Some(""), "y", false, Some(11)),
                emis(Some("  "), "z", false, Some(11)),
            ],
            vec!["a=a1", "b=b1"],
            [0, 0, 0, 0, 3, 0],
            vec![],
        ),
        (
            "a negative or missing version is quarantined",
            vec![
                emis(Some("a"), "a9", false, Some(-1)),
                emis(Some("b"), "", true, None),
            ],
            vec!["a=a1", "b=b1"],
            [0, 0, 0, 0, 2, 0],
            vec![],
        ),
    ];
    for (rule, delta, expected, c, removed) in cases {
        let delta = batch(&EMIS_PATIENT, &delta, &origin("delta", 2));
        let outcome = assert_same(&EMIS_PATIENT, Some(&state), &delta);
        let (new_state, _) = plan(&EMIS_PATIENT, Some(&state), &delta);
        assert_eq!(contents(&EMIS_PATIENT, &new_state), expected, "{rule}");
        assert_eq!(outcome.counts, counts(c, delta.num_rows() as u64), "{rule}");
        assert_eq!(outcome.removed_patients, removed, "{rule}");
        assert!(outcome.counts.reconciles(), "{rule}");
    }
}

#[test]
fn quarantined_rows_are_named_by_index() {
    let delta = batch(
        &EMIS_PATIENT,
        &[
            emis(Some("a"), "a", false, Some(1)),
            emis(None, "x", false, Some(1)),
            emis(Some("b"), "b", false, Some(-2)),
            emis(Some(" "), "y", false, None),
            emis(Some("c"), "c", false, None),
        ],
        &origin("delta", 2),
    );
    let outcome = assert_same(&EMIS_PATIENT, None, &delta);
    assert_eq!(outcome.missing_key, vec![1, 3]);
    assert_eq!(outcome.invalid_version, vec![2, 4]);
}

#[test]
fn tpp_rules() {
    let state = batch(
        &TPP_LIKE,
        &[tpp(1, Some("v1")), tpp(2, Some("w1"))],
        &origin("bulk", 1),
    );
    let cases: Vec<TppCase> = vec![
        (
            "a later delivery wins",
            vec![tpp(1, Some("v2"))],
            vec!["1=v2", "2=w1"],
            [1, 0, 0, 0, 0, 0],
        ),
        (
            "a later row in the file wins",
            vec![tpp(3, Some("x1")), tpp(3, Some("x2"))],
            vec!["1=v1", "2=w1", "3=x2"],
            [1, 1, 0, 0, 0, 0],
        ),
        (
            "RemovedData=1 deletes",
            vec![tpp(2, None)],
            vec!["1=v1"],
            [0, 0, 0, 1, 0, 0],
        ),
        (
            "a re-bulk upserts every row",
            vec![tpp(1, Some("v1")), tpp(2, Some("w1"))],
            vec!["1=v1", "2=w1"],
            [2, 0, 0, 0, 0, 0],
        ),
        (
            "an exact duplicate in one file",
            vec![tpp(4, Some("y")), tpp(4, Some("y"))],
            vec!["1=v1", "2=w1", "4=y"],
            [1, 0, 1, 0, 0, 0],
        ),
        (
            "a delete of an unknown row",
            vec![tpp(9, None)],
            vec!["1=v1", "2=w1"],
            [0, 0, 0, 1, 0, 1],
        ),
    ];
    for (rule, delta, expected, c) in cases {
        let delta = batch(&TPP_LIKE, &delta, &origin("delta", 2));
        let outcome = assert_same(&TPP_LIKE, Some(&state), &delta);
        let (new_state, _) = plan(&TPP_LIKE, Some(&state), &delta);
        assert_eq!(contents(&TPP_LIKE, &new_state), expected, "{rule}");
        assert_eq!(outcome.counts, counts(c, delta.num_rows() as u64), "{rule}");
    }
}

#[test]
fn an_empty_result_is_an_empty_state_file() {
    let delta = batch(&TPP_LIKE, &[tpp(9, None)], &origin("delta", 2));
    let (new_state, outcome) = plan(&TPP_LIKE, None, &delta);
    assert_eq!(new_state.num_rows(), 0);
    assert_eq!(outcome.state_rows, 0);
}

/// Runs the file merge with a budget giving `buckets`-ish buckets (1: all in
/// memory, or the state streamed past a delivery held whole when the
/// delivery is the smaller), and checks it against the reference: the same new state (as a
/// multiset: buckets reorder rows), counts, quarantined rows and removed
/// patients.
fn assert_file_merge_same(
    spec: &'static TableSpec,
    state: Option<&RecordBatch>,
    delta: &RecordBatch,
    budget: usize,
    drop_patients: &HashSet<String>,
) {
    use phm::source::merge::remove_patients;
    use phm::source::merge_files::merge_file;
    let mut reference = merge(spec, state, delta);
    let (kept, removed_with_patient) = remove_patients(spec, &reference.state, drop_patients);
    reference.state = kept;
    let dir = tempfile::tempdir().unwrap();
    let state_path = dir.path().join("state.parquet");
    if let Some(s) = state {
        phm::store::write_parquet(&state_path, s, &[]).unwrap();
    }
    let half = delta.num_rows() / 2;
    let parts = vec![
        Ok(delta.slice(0, half)),
        Ok(delta.slice(half, delta.num_rows() - half)),
    ];
    let out = dir.path().join("new.parquet");
    let outcome = merge_file(
        spec,
        state.map(|_| state_path.as_path()),
        parts.into_iter(),
        delta.num_rows() as u64,
        &out,
        dir.path(),
        budget,
        drop_patients,
    )
    .unwrap();
    let new_state = if outcome.unchanged {
        assert!(!out.exists(), "an unchanged state is not rewritten");
        read_state(spec, &state_path).unwrap()
    } else {
        read_state(spec, &out).unwrap()
    };
    assert_eq!(lines(&new_state), lines(&reference.state), "new state");
    assert_eq!(outcome.state_rows, reference.state.num_rows() as u64);
    assert_eq!(outcome.counts, reference.counts, "counts");
    assert_eq!(
        outcome.removed_with_patient, removed_with_patient,
        "removed with patient"
    );
    // Quarantined rows named by their row in the delivery file.
    let source_rows = |indices: fn(&phm::source::merge_files::Rejected) -> &Vec<u32>| {
        let mut rows: Vec<i64> = outcome
            .rejected
            .iter()
            .flat_map(|r| {
                let col = r
                    .rows
                    .column_by_name("_phm_source_row")
                    .unwrap()
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .clone();
                indices(r).iter().map(move |i| col.value(*i as usize))
            })
            .collect();
        rows.sort();
        rows
    };
    let as_rows = |v: &[u32]| v.iter().map(|i| *i as i64).collect::<Vec<_>>();
    assert_eq!(
        source_rows(|r| &r.missing_key),
        as_rows(&reference.missing_key),
        "missing key"
    );
    assert_eq!(
        source_rows(|r| &r.invalid_version),
        as_rows(&reference.invalid_version),
        "invalid version"
    );
    let mut removed = outcome.removed_patients.clone();
    removed.sort();
    let mut expected = reference.removed_patients.clone();
    expected.sort();
    assert_eq!(removed, expected, "removed patients");
    // Nothing of the buckets is left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("buckets-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Budgets for the file merge: everything in one bucket, and a few hundred
/// bytes, which splits these small tables into many buckets.
const BUDGETS: [usize; 2] = [1 << 30, 300];

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(64),
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(20261204),
        ..ProptestConfig::default()
    }
}

/// Keys collide often; some are missing, empty, blank or padded.
fn key() -> impl Strategy<Value = Option<String>> {
    prop::sample::select(vec![
        Some("1"),
        Some("2"),
        Some("3"),
        Some(" 2"),
        Some("4 "),
        Some(""),
        Some("  "),
        None,
    ])
    .prop_map(|k| k.map(str::to_string))
}

fn row(tpp: bool) -> impl Strategy<Value = Row> {
    (
        prop::sample::select(vec![Some("p"), Some("q"), Some(""), None]),
        key(),
        prop::sample::select(vec![Some("x"), Some("y"), None]),
        prop::bool::weighted(0.25),
        prop::sample::select(vec![None, Some(-1), Some(0), Some(1), Some(2), Some(3)]),
    )
        .prop_map(move |(patient, key, value, delete, version)| Row {
            patient: patient.map(str::to_string),
            // TPP row ids are numbers: blank ones count as missing.
            key: if tpp {
                key.filter(|k| !k.trim().is_empty())
            } else {
                key
            },
            value: value.map(str::to_string),
            delete,
            version,
        })
}

fn rows(tpp: bool) -> impl Strategy<Value = Vec<Row>> {
    prop::collection::vec(row(tpp), 0..14)
}

/// A state as ingest holds one: the reference's merge of a bulk.
fn state_from(spec: &'static TableSpec, bulk: &[Row]) -> Option<RecordBatch> {
    if bulk.is_empty() {
        return None;
    }
    Some(merge(spec, None, &batch(spec, bulk, &origin("bulk", 1))).state)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn emis_patient_plan_matches_reference(bulk in rows(false), delta in rows(false)) {
        let state = state_from(&EMIS_PATIENT, &bulk);
        assert_same(&EMIS_PATIENT, state.as_ref(), &batch(&EMIS_PATIENT, &delta, &origin("delta", 2)));
    }

    #[test]
    fn emis_child_plan_matches_reference(bulk in rows(false), delta in rows(false)) {
        let state = state_from(&EMIS_CHILD, &bulk);
        assert_same(&EMIS_CHILD, state.as_ref(), &batch(&EMIS_CHILD, &delta, &origin("delta", 2)));
    }

    #[test]
    fn tpp_plan_matches_reference(bulk in rows(true), delta in rows(true)) {
        let state = state_from(&TPP_LIKE, &bulk);
        assert_same(&TPP_LIKE, state.as_ref(), &batch(&TPP_LIKE, &delta, &origin("delta", 2)));
    }

    #[test]
    fn file_merge_matches_reference(bulk in rows(false), delta in rows(false), tpp_bulk in rows(true), tpp_delta in rows(true)) {
        let none = HashSet::new();
        let removed: HashSet<String> = HashSet::from(["p".to_string()]);
        for budget in BUDGETS {
            for spec in [&EMIS_PATIENT, &EMIS_CHILD] {
                let state = state_from(spec, &bulk);
                assert_file_merge_same(spec, state.as_ref(), &batch(spec, &delta, &origin("delta", 2)), budget, &none);
            }
            // A child table merged after its patient table left patient "p" out.
            let state = state_from(&EMIS_CHILD, &bulk);
            assert_file_merge_same(&EMIS_CHILD, state.as_ref(), &batch(&EMIS_CHILD, &delta, &origin("delta", 2)), budget, &removed);
            let state = state_from(&TPP_LIKE, &tpp_bulk);
            assert_file_merge_same(&TPP_LIKE, state.as_ref(), &batch(&TPP_LIKE, &tpp_delta, &origin("delta", 2)), budget, &none);
        }
    }
}
