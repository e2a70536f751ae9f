//! Applying a delivery's rows to a table's current state, the same way for every
//! supplier table, driven by its [`TableSpec`].
//!
//! Semantics (EXTRACTS.md):
//! - EMIS: per key, the row with the highest `ProcessingId` wins; rows of one
//!   delivery are applied in `ProcessingId` order; `Deleted=true` removes the key.
//!   A row older than the state's row for its key is *superseded* (stale).
//! - TPP: per `RowIdentifier`, the later row wins (later delivery, later in the
//!   file); `RemovedData=1` removes; a re-bulk simply upserts every row again.
//!
//! Every input row gets exactly one outcome, so
//! `rows_in = applied + superseded + duplicate + deleted + quarantined`.

use std::collections::{HashMap, HashSet};

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int8Array, Int64Array, RecordBatch, StringArray, UInt32Array,
};
use datafusion::arrow::compute::{concat_batches, filter_record_batch, take_record_batch};
use serde::Serialize;

use crate::source::table::{DeleteMarker, TableSpec};

/// What happened to the rows of one table in one delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MergeCounts {
    pub rows_in: u64,
    /// Inserted or replaced a row of the state.
    pub applied: u64,
    /// Replaced later in the same delivery, or older than the state's row for its key.
    pub superseded: u64,
    /// An exact copy of an earlier row of the same delivery.
    pub duplicate: u64,
    /// Delete markers applied.
    pub deleted: u64,
    /// Rows that could not be keyed (missing key) or ordered (missing or
    /// negative version); they are quarantined.
    pub quarantined: u64,
    /// Of `deleted`: markers for keys the state did not hold (informational).
    pub deleted_not_found: u64,
}

impl MergeCounts {
    pub fn reconciles(&self) -> bool {
        self.rows_in
            == self.applied + self.superseded + self.duplicate + self.deleted + self.quarantined
    }
}

pub struct MergeOutcome {
    pub state: RecordBatch,
    pub counts: MergeCounts,
    /// Indices (into the delivery's batch) of rows without a usable key.
    pub missing_key: Vec<u32>,
    /// Indices of rows whose version (`ProcessingId`) is missing or below zero.
    pub invalid_version: Vec<u32>,
    /// For the patient table: ids of patients removed by this delivery.
    pub removed_patients: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Applied,
    Superseded,
    Duplicate,
    Deleted,
    MissingKey,
    InvalidVersion,
}

#[derive(Clone, Copy)]
enum Slot {
    State(usize),
    Delta(usize),
    Deleted,
}

/// The key of each row as one string, `None` when any key column is null or empty.
pub fn row_keys(spec: &TableSpec, batch: &RecordBatch) -> Vec<Option<String>> {
    let columns: Vec<&ArrayRef> = spec
        .key
        .iter()
        .map(|k| batch.column(spec.column_index(k).expect("key is a column")))
        .collect();
    (0..batch.num_rows())
        .map(|row| {
            let mut key = String::new();
            for (i, col) in columns.iter().enumerate() {
                if i > 0 {
                    key.push('\u{1f}');
                }
                if col.is_null(row) {
                    return None;
                }
                if let Some(s) = col.as_any().downcast_ref::<StringArray>() {
                    let v = s.value(row).trim();
                    if v.is_empty() {
                        return None;
                    }
                    key.push_str(v);
                } else if let Some(n) = col.as_any().downcast_ref::<Int64Array>() {
                    key.push_str(&n.value(row).to_string());
                }
            }
            Some(key)
        })
        .collect()
}

fn is_delete(spec: &TableSpec, batch: &RecordBatch) -> Vec<bool> {
    let n = batch.num_rows();
    match spec.delete {
        DeleteMarker::None => vec![false; n],
        DeleteMarker::EmisDeleted => {
            let col = batch.column(spec.column_index("Deleted").expect("EMIS delete column"));
            let b = col
                .as_any()
                .downcast_ref::<BooleanArray>()
                .expect("Deleted is boolean");
            (0..n).map(|i| b.is_valid(i) && b.value(i)).collect()
        }
        DeleteMarker::TppRemovedData => {
            let col = batch.column(spec.column_index("RemovedData").expect("TPP delete column"));
            let r = col
                .as_any()
                .downcast_ref::<Int8Array>()
                .expect("RemovedData is int8");
            (0..n).map(|i| r.is_valid(i) && r.value(i) == 1).collect()
        }
    }
}

fn versions(spec: &TableSpec, batch: &RecordBatch) -> Option<Vec<i64>> {
    let col = batch.column(
        spec.column_index(spec.version?)
            .expect("version is a column"),
    );
    let v = col
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("version column is int64");
    Some(
        (0..batch.num_rows())
            .map(|i| if v.is_valid(i) { v.value(i) } else { i64::MIN })
            .collect(),
    )
}

fn rows_with(outcome: &[Outcome], which: Outcome) -> Vec<u32> {
    outcome
        .iter()
        .enumerate()
        .filter(|(_, o)| **o == which)
        .map(|(i, _)| i as u32)
        .collect()
}

/// True when rows `a` and `b` of `batch` hold the same source values (provenance
/// columns aside). Only rows sharing a key are ever compared, so this stays rare.
fn same_content(spec: &TableSpec, batch: &RecordBatch, a: usize, b: usize) -> bool {
    batch.columns()[..spec.columns.len()]
        .iter()
        .all(|col| col.slice(a, 1).as_ref() == col.slice(b, 1).as_ref())
}

/// Applies `delta` (one file's rows, in the state schema) to `state`.
pub fn merge(spec: &TableSpec, state: Option<&RecordBatch>, delta: &RecordBatch) -> MergeOutcome {
    let state_rows = state.map_or(0, RecordBatch::num_rows);
    let mut slots: HashMap<String, (Slot, i64)> =
        HashMap::with_capacity(state_rows + delta.num_rows());
    if let Some(state) = state {
        let versions = versions(spec, state);
        for (i, key) in row_keys(spec, state).into_iter().enumerate() {
            let v = versions.as_ref().map_or(i64::MIN, |v| v[i]);
            slots.insert(key.expect("state rows are keyed"), (Slot::State(i), v));
        }
    }

    let keys = row_keys(spec, delta);
    let deletes = is_delete(spec, delta);
    let delta_versions = versions(spec, delta);
    let mut order: Vec<usize> = (0..delta.num_rows()).collect();
    if let Some(v) = &delta_versions {
        order.sort_by_key(|i| v[*i]); // stable: ties keep file order
    }

    let mut outcome = vec![Outcome::Applied; delta.num_rows()];
    let mut counts = MergeCounts {
        rows_in: delta.num_rows() as u64,
        ..Default::default()
    };
    let mut removed_keys = Vec::new();
    for j in order {
        let Some(key) = &keys[j] else {
            outcome[j] = Outcome::MissingKey;
            continue;
        };
        let v = delta_versions.as_ref().map_or(i64::MIN, |v| v[j]);
        // A version below zero (or none) cannot be ordered against the
        // state: applying it, or calling it stale, would be a guess.
        if delta_versions.is_some() && v < 0 {
            outcome[j] = Outcome::InvalidVersion;
            continue;
        }
        let current = slots.get(key).copied();
        if let (Some(_), Some((_, cur_v))) = (spec.version, current)
            && v < cur_v
        {
            outcome[j] = Outcome::Superseded;
            continue;
        }
        if let Some((Slot::Delta(k), _)) = current {
            if !deletes[j] && same_content(spec, delta, k, j) {
                outcome[j] = Outcome::Duplicate;
                continue;
            }
            outcome[k] = Outcome::Superseded;
        }
        if deletes[j] {
            outcome[j] = Outcome::Deleted;
            if matches!(current, None | Some((Slot::Deleted, _))) {
                counts.deleted_not_found += 1;
            } else {
                removed_keys.push(key.clone());
            }
            slots.insert(key.clone(), (Slot::Deleted, v));
        } else {
            outcome[j] = Outcome::Applied;
            slots.insert(key.clone(), (Slot::Delta(j), v));
        }
    }

    for o in &outcome {
        match o {
            Outcome::Applied => counts.applied += 1,
            Outcome::Superseded => counts.superseded += 1,
            Outcome::Duplicate => counts.duplicate += 1,
            Outcome::Deleted => counts.deleted += 1,
            Outcome::MissingKey | Outcome::InvalidVersion => counts.quarantined += 1,
        }
    }

    let mut keep_state = vec![false; state_rows];
    let mut keep_delta = Vec::new();
    for (slot, _) in slots.values() {
        match slot {
            Slot::State(i) => keep_state[*i] = true,
            Slot::Delta(j) => keep_delta.push(*j as u32),
            Slot::Deleted => {}
        }
    }
    keep_delta.sort_unstable();
    let mut indices: Vec<u32> = (0..state_rows as u32)
        .filter(|i| keep_state[*i as usize])
        .collect();
    indices.extend(keep_delta.iter().map(|j| j + state_rows as u32));
    let combined = match state {
        Some(s) => {
            concat_batches(&delta.schema(), [s, delta]).expect("state and delta share a schema")
        }
        None => delta.clone(),
    };
    let new_state =
        take_record_batch(&combined, &UInt32Array::from(indices)).expect("indices in range");

    let patient_table = spec.patient.is_some_and(|p| spec.key == [p]);
    MergeOutcome {
        state: new_state,
        counts,
        missing_key: rows_with(&outcome, Outcome::MissingKey),
        invalid_version: rows_with(&outcome, Outcome::InvalidVersion),
        removed_patients: if patient_table {
            removed_keys
        } else {
            Vec::new()
        },
    }
}

/// Removes the rows of `patients` from a child table's state; returns the new state
/// and how many rows went.
pub fn remove_patients(
    spec: &TableSpec,
    state: &RecordBatch,
    patients: &HashSet<String>,
) -> (RecordBatch, u64) {
    let Some(column) = spec.patient else {
        return (state.clone(), 0);
    };
    if patients.is_empty() {
        return (state.clone(), 0);
    }
    let col = state.column(spec.column_index(column).expect("patient column"));
    let keep: BooleanArray = (0..state.num_rows())
        .map(|i| Some(!patient_id(col, i).is_some_and(|p| patients.contains(&p))))
        .collect();
    let kept = filter_record_batch(state, &keep).expect("mask matches batch");
    let removed = (state.num_rows() - kept.num_rows()) as u64;
    (kept, removed)
}

/// A patient reference as the string used for patient keys (GUID or decimal id).
pub fn patient_id(col: &ArrayRef, row: usize) -> Option<String> {
    if col.is_null(row) {
        return None;
    }
    if let Some(s) = col.as_any().downcast_ref::<StringArray>() {
        let v = s.value(row).trim();
        return (!v.is_empty()).then(|| v.to_string());
    }
    col.as_any()
        .downcast_ref::<Int64Array>()
        .map(|n| n.value(row).to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::NaiveDate;
    use datafusion::arrow::array::{BooleanArray, Int8Array, Int64Array, StringArray};

    use super::*;
    use crate::source::read::{Origin, with_origin};
    use crate::source::table::Ty::*;

    const EMIS_LIKE: TableSpec = TableSpec {
        name: "EmisLike",
        columns: &[
            ("Key", Str),
            ("Value", Str),
            ("Deleted", Bool),
            ("ProcessingId", I64),
        ],
        key: &["Key"],
        version: Some("ProcessingId"),
        delete: DeleteMarker::EmisDeleted,
        patient: None,
    };

    const TPP_LIKE: TableSpec = TableSpec {
        name: "TppLike",
        columns: &[("RowIdentifier", I64), ("Value", Str), ("RemovedData", I8)],
        key: &["RowIdentifier"],
        version: None,
        delete: DeleteMarker::TppRemovedData,
        patient: None,
    };

    fn origin() -> Origin<'static> {
        Origin {
            supplier: "test",
            schema_version: "0",
            extract_id: "x",
            extracted_at: NaiveDate::from_ymd_opt(2026, 1, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap(),
            file_label: "f",
        }
    }

    /// EMIS-like rows: (key, value, deleted, processing id).
    fn emis(rows: &[(Option<&str>, &str, bool, i64)]) -> RecordBatch {
        let data = RecordBatch::try_new(
            EMIS_LIKE.schema(),
            vec![
                Arc::new(rows.iter().map(|r| r.0).collect::<StringArray>()),
                Arc::new(rows.iter().map(|r| Some(r.1)).collect::<StringArray>()),
                Arc::new(rows.iter().map(|r| Some(r.2)).collect::<BooleanArray>()),
                Arc::new(rows.iter().map(|r| Some(r.3)).collect::<Int64Array>()),
            ],
        )
        .unwrap();
        with_origin(data, &EMIS_LIKE, &origin())
    }

    /// TPP-like rows: (row id, value or None for a sparse delete).
    fn tpp(rows: &[(i64, Option<&str>)]) -> RecordBatch {
        let data = RecordBatch::try_new(
            TPP_LIKE.schema(),
            vec![
                Arc::new(rows.iter().map(|r| Some(r.0)).collect::<Int64Array>()),
                Arc::new(rows.iter().map(|r| r.1).collect::<StringArray>()),
                Arc::new(
                    rows.iter()
                        .map(|r| Some(if r.1.is_none() { 1 } else { 0 }))
                        .collect::<Int8Array>(),
                ),
            ],
        )
        .unwrap();
        with_origin(data, &TPP_LIKE, &origin())
    }

    /// The state as sorted "key=value" strings.
    fn contents(spec: &TableSpec, batch: &RecordBatch) -> Vec<String> {
        let keys = row_keys(spec, batch);
        let values = batch
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let mut out: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{}={}", k.as_deref().unwrap(), values.value(i)))
            .collect();
        out.sort();
        out
    }

    fn counts(
        rows_in: u64,
        applied: u64,
        superseded: u64,
        duplicate: u64,
        deleted: u64,
        quarantined: u64,
    ) -> MergeCounts {
        MergeCounts {
            rows_in,
            applied,
            superseded,
            duplicate,
            deleted,
            quarantined,
            deleted_not_found: 0,
        }
    }

    #[test]
    fn emis_delta_semantics() {
        let state = emis(&[
            (Some("a"), "a1", false, 10),
            (Some("b"), "b1", false, 10),
            (Some("c"), "c1", false, 10),
        ]);
        // (case, delta rows, expected state, expected counts)
        let cases: Vec<(&str, RecordBatch, Vec<&str>, MergeCounts)> = vec![
            (
                "higher ProcessingId replaces",
                emis(&[(Some("a"), "a2", false, 11)]),
                vec!["a=a2", "b=b1", "c=c1"],
                counts(1, 1, 0, 0, 0, 0),
            ),
            (
                "lower ProcessingId is stale",
                emis(&[(Some("a"), "a0", false, 9)]),
                vec!["a=a1", "b=b1", "c=c1"],
                counts(1, 0, 1, 0, 0, 0),
            ),
            (
                "same key twice in one file: applied in ProcessingId order, not file order",
                emis(&[(Some("a"), "a3", false, 13), (Some("a"), "a2", false, 12)]),
                vec!["a=a3", "b=b1", "c=c1"],
                counts(2, 1, 1, 0, 0, 0),
            ),
            (
                "Deleted removes",
                emis(&[(Some("b"), "", true, 11)]),
                vec!["a=a1", "c=c1"],
                counts(1, 0, 0, 0, 1, 0),
            ),
            (
                "a ProcessingId below zero is quarantined, neither applied nor stale",
                emis(&[(Some("a"), "a9", false, -1), (Some("d"), "d1", false, -5)]),
                vec!["a=a1", "b=b1", "c=c1"],
                counts(2, 0, 0, 0, 0, 2),
            ),
            (
                "a delete with a ProcessingId below zero removes nothing",
                emis(&[(Some("b"), "", true, -1)]),
                vec!["a=a1", "b=b1", "c=c1"],
                counts(1, 0, 0, 0, 0, 1),
            ),
            (
                "stale delete is ignored",
                emis(&[(Some("b"), "", true, 9)]),
                vec!["a=a1", "b=b1", "c=c1"],
                counts(1, 0, 1, 0, 0, 0),
            ),
            (
                "exact duplicate row",
                emis(&[(Some("d"), "d1", false, 11), (Some("d"), "d1", false, 11)]),
                vec!["a=a1", "b=b1", "c=c1", "d=d1"],
                counts(2, 1, 0, 1, 0, 0),
            ),
            (
                "missing key is quarantined",
                emis(&[(None, "x", false, 11), (Some(" "), "y", false, 11)]),
                vec!["a=a1", "b=b1", "c=c1"],
                counts(2, 0, 0, 0, 0, 2),
            ),
            (
                "insert then delete in one file",
                emis(&[(Some("e"), "e1", false, 11), (Some("e"), "", true, 12)]),
                vec!["a=a1", "b=b1", "c=c1"],
                counts(2, 0, 1, 0, 1, 0),
            ),
        ];
        for (case, delta, expected, expected_counts) in cases {
            let out = merge(&EMIS_LIKE, Some(&state), &delta);
            assert_eq!(contents(&EMIS_LIKE, &out.state), expected, "{case}");
            assert_eq!(out.counts, expected_counts, "{case}");
            assert!(out.counts.reconciles(), "{case}");
        }
    }

    #[test]
    fn tpp_delta_semantics() {
        let state = tpp(&[(1, Some("v1")), (2, Some("w1"))]);
        let cases: Vec<(&str, RecordBatch, Vec<&str>, MergeCounts)> = vec![
            (
                "later delivery wins",
                tpp(&[(1, Some("v2"))]),
                vec!["1=v2", "2=w1"],
                counts(1, 1, 0, 0, 0, 0),
            ),
            (
                "later row in the file wins",
                tpp(&[(3, Some("x1")), (3, Some("x2"))]),
                vec!["1=v1", "2=w1", "3=x2"],
                counts(2, 1, 1, 0, 0, 0),
            ),
            (
                "sparse RemovedData=1 deletes",
                tpp(&[(2, None)]),
                vec!["1=v1"],
                counts(1, 0, 0, 0, 1, 0),
            ),
            (
                "re-bulk of the same rows de-duplicates on RowIdentifier",
                tpp(&[(1, Some("v1")), (2, Some("w1"))]),
                vec!["1=v1", "2=w1"],
                counts(2, 2, 0, 0, 0, 0),
            ),
        ];
        for (case, delta, expected, expected_counts) in cases {
            let out = merge(&TPP_LIKE, Some(&state), &delta);
            assert_eq!(contents(&TPP_LIKE, &out.state), expected, "{case}");
            assert_eq!(out.counts, expected_counts, "{case}");
        }
    }

    #[test]
    fn merging_the_same_delivery_twice_changes_nothing() {
        let bulk = emis(&[(Some("a"), "a1", false, 10), (Some("b"), "b1", false, 10)]);
        let delta = emis(&[(Some("a"), "a2", false, 11), (Some("b"), "", true, 11)]);
        let once = merge(
            &EMIS_LIKE,
            Some(&merge(&EMIS_LIKE, None, &bulk).state),
            &delta,
        )
        .state;
        let twice = merge(&EMIS_LIKE, Some(&once), &delta).state;
        assert_eq!(contents(&EMIS_LIKE, &once), contents(&EMIS_LIKE, &twice));
        assert_eq!(contents(&EMIS_LIKE, &once), vec!["a=a2"]);
    }

    #[test]
    fn delete_of_unknown_key_is_counted() {
        let out = merge(&TPP_LIKE, None, &tpp(&[(9, None)]));
        assert_eq!(out.counts.deleted, 1);
        assert_eq!(out.counts.deleted_not_found, 1);
        assert_eq!(out.state.num_rows(), 0);
    }
}
