//! Inactive codes replaced by their active successors, when ingest is given a
//! terminology release (`phm ingest --release DIR`).
//!
//! A SNOMED CT concept that is inactive in the release and has exactly one
//! SAME AS or REPLACED BY association to an active concept is mapped to that
//! concept, with `mapping_kind = history_substituted`. A dm+d product code that
//! is a VMP's previous code (VPIDPREV) is mapped to the current VPID the same
//! way. The source code is always kept. An inactive concept with no single
//! active successor keeps its own id and mapping kind; cohorts see it through a
//! value set's history policy.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, Int64Array, RecordBatch, StringArray};

use crate::terminology::Release;

/// Source concept → the concept it is substituted by.
#[derive(Debug, Default, Clone)]
pub struct Substitutions {
    pub release_id: String,
    concepts: HashMap<i64, i64>,
    products: HashMap<i64, i64>,
}

impl Substitutions {
    pub fn from_release(release: &Release) -> Self {
        let mut concepts = HashMap::new();
        for (id, associations) in &release.history {
            if release.is_active(*id) != Some(false) {
                continue;
            }
            let targets: Vec<u64> = associations
                .iter()
                .filter(|a| matches!(a.association.as_str(), "SAME AS" | "REPLACED BY"))
                .filter(|a| release.is_active(a.target) == Some(true))
                .map(|a| a.target)
                .collect();
            if let [target] = targets[..] {
                concepts.insert(*id as i64, target as i64);
            }
        }
        let products = release
            .vpid_prev
            .iter()
            .map(|(current, previous)| (*previous as i64, *current as i64))
            .collect();
        Substitutions {
            release_id: release.id().to_string(),
            concepts,
            products,
        }
    }

    #[cfg(test)]
    fn of(concepts: &[(i64, i64)], products: &[(i64, i64)]) -> Self {
        Substitutions {
            release_id: "test".into(),
            concepts: concepts.iter().copied().collect(),
            products: products.iter().copied().collect(),
        }
    }

    /// Events: rewrites `snomed_concept_id` and `mapping_kind`; returns the batch
    /// and how many rows were substituted.
    pub fn apply_to_events(&self, batch: &RecordBatch) -> (RecordBatch, u64) {
        substitute(batch, "snomed_concept_id", &self.concepts)
    }

    /// Medications: the same for `dmd_code` with dm+d previous codes.
    pub fn apply_to_medications(&self, batch: &RecordBatch) -> (RecordBatch, u64) {
        substitute(batch, "dmd_code", &self.products)
    }
}

fn substitute(
    batch: &RecordBatch,
    code_column: &str,
    map: &HashMap<i64, i64>,
) -> (RecordBatch, u64) {
    let schema = batch.schema();
    let (ci, ki) = (
        schema.index_of(code_column).expect("canonical code column"),
        schema
            .index_of("mapping_kind")
            .expect("canonical mapping_kind column"),
    );
    let codes = batch
        .column(ci)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("code is int64");
    let kinds = batch
        .column(ki)
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("mapping_kind is text");
    let mut substituted = 0u64;
    let mut new_codes = Vec::with_capacity(batch.num_rows());
    let mut new_kinds = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let code = codes.is_valid(i).then(|| codes.value(i));
        let kind = kinds.is_valid(i).then(|| kinds.value(i));
        match code.and_then(|c| map.get(&c)) {
            Some(target) => {
                substituted += 1;
                new_codes.push(Some(*target));
                new_kinds.push(Some("history_substituted"));
            }
            None => {
                new_codes.push(code);
                new_kinds.push(kind);
            }
        }
    }
    if substituted == 0 {
        return (batch.clone(), 0);
    }
    let mut columns = batch.columns().to_vec();
    columns[ci] = Arc::new(Int64Array::from(new_codes));
    columns[ki] = Arc::new(StringArray::from(new_kinds));
    (
        RecordBatch::try_new(schema, columns).expect("same schema"),
        substituted,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::Provenance;
    use crate::canonical::tables::{EventRow, EventsBuilder};

    fn events(codes: &[(Option<i64>, &str)]) -> RecordBatch {
        let mut b = EventsBuilder::default();
        let at = chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        for (code, kind) in codes {
            b.append(
                &EventRow {
                    person_key: "k",
                    patient_id: "p",
                    event_date: Some(0),
                    date_precision: "YMD",
                    date_flag: None,
                    recorded_at: None,
                    code_system: "snomed",
                    source_code: "x",
                    source_term: None,
                    snomed_concept_id: *code,
                    mapping_kind: kind,
                    value: None,
                    comparator: None,
                    unit: None,
                    value_flag: None,
                    parent_event_id: None,
                },
                &Provenance {
                    practice: "A",
                    supplier: "tpp",
                    source_table: "SRCode",
                    source_row_id: "1",
                    extract_id: "e",
                    extracted_at: at,
                },
            );
        }
        b.finish()
    }

    #[test]
    fn inactive_concepts_are_substituted_and_source_codes_kept() {
        let subs = Substitutions::of(&[(284449005, 73211009)], &[]);
        let batch = events(&[
            (Some(284449005), "exact"),
            (Some(44054006), "exact"),
            (None, "unmapped"),
            (Some(284449005), "ctv3_map"),
        ]);
        let (out, n) = subs.apply_to_events(&batch);
        assert_eq!(n, 2);
        let codes = out
            .column_by_name("snomed_concept_id")
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let kinds = out
            .column_by_name("mapping_kind")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let got: Vec<(Option<i64>, &str)> = (0..out.num_rows())
            .map(|i| (codes.is_valid(i).then(|| codes.value(i)), kinds.value(i)))
            .collect();
        assert_eq!(
            got,
            [
                (Some(73211009), "history_substituted"),
                (Some(44054006), "exact"),
                (None, "unmapped"),
                (Some(73211009), "history_substituted"),
            ]
        );
        let source = out
            .column_by_name("source_code")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert!(
            source.iter().all(|s| s == Some("x")),
            "source codes are kept"
        );
    }

    #[test]
    fn nothing_to_substitute_returns_the_batch_unchanged() {
        let subs = Substitutions::of(&[], &[]);
        let batch = events(&[(Some(1), "exact")]);
        let (out, n) = subs.apply_to_events(&batch);
        assert_eq!((n, out), (0, batch));
    }
}
