//! Canonical table schemas and the builders adapters fill them with.

use std::sync::Arc;

use chrono::NaiveDateTime;
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The canonical tables, in the order ingest writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CanonicalTable {
    Patients,
    Registrations,
    Events,
    Medications,
}

impl CanonicalTable {
    pub const ALL: [CanonicalTable; 4] = [
        CanonicalTable::Patients,
        CanonicalTable::Registrations,
        CanonicalTable::Events,
        CanonicalTable::Medications,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CanonicalTable::Patients => "patients",
            CanonicalTable::Registrations => "registrations",
            CanonicalTable::Events => "events",
            CanonicalTable::Medications => "medications",
        }
    }

    /// Columns of the table, provenance last. `practice` is the partition column and
    /// is also stored in the file so a file read on its own is self-describing.
    pub fn schema(self) -> SchemaRef {
        use DataType::*;
        let own: &[(&str, DataType)] = match self {
            CanonicalTable::Patients => &[
                ("person_key", Utf8),
                ("patient_id", Utf8),
                ("nhs_number", Utf8),
                ("nhs_number_status", Utf8),
                ("sex", Utf8),
                ("date_of_birth", Date32),
                ("date_of_birth_flag", Utf8),
                ("date_of_death", Date32),
                ("is_test_patient", Boolean),
            ],
            CanonicalTable::Registrations => &[
                ("person_key", Utf8),
                ("patient_id", Utf8),
                ("registered_at", Utf8),
                ("start_date", Date32),
                ("end_date", Date32),
                ("registration_type", Utf8),
                ("status_text", Utf8),
            ],
            CanonicalTable::Events => &[
                ("person_key", Utf8),
                ("patient_id", Utf8),
                ("event_date", Date32),
                ("date_precision", Utf8),
                ("date_flag", Utf8),
                ("recorded_at", Utf8),
                ("code_system", Utf8),
                ("source_code", Utf8),
                ("source_term", Utf8),
                ("snomed_concept_id", Int64),
                ("mapping_kind", Utf8),
                ("value", Float64),
                ("comparator", Utf8),
                ("unit", Utf8),
                ("value_flag", Utf8),
                ("parent_event_id", Utf8),
            ],
            CanonicalTable::Medications => &[
                ("person_key", Utf8),
                ("patient_id", Utf8),
                ("issue_date", Date32),
                ("date_precision", Utf8),
                ("date_flag", Utf8),
                ("code_system", Utf8),
                ("source_code", Utf8),
                ("source_term", Utf8),
                ("dmd_code", Int64),
                ("mapping_kind", Utf8),
                ("dosage", Utf8),
                ("quantity", Float64),
                ("quantity_unit", Utf8),
                ("course_days", Int64),
            ],
        };
        let mut fields: Vec<Field> = own
            .iter()
            .map(|(n, t)| Field::new(*n, t.clone(), true))
            .collect();
        fields.extend(provenance_fields());
        if self.has_row_order() {
            fields.push(Field::new(ROW_ORDER, DataType::Int64, false));
        }
        Arc::new(Schema::new(fields))
    }

    /// Whether the table ends with [`ROW_ORDER`].
    pub fn has_row_order(self) -> bool {
        matches!(self, CanonicalTable::Events | CanonicalTable::Medications)
    }

    /// Sort order of the stored files: later queries join events to value sets on
    /// the concept, so clustering on it lets row-group statistics skip data.
    pub fn sort_columns(self) -> &'static [&'static str] {
        match self {
            CanonicalTable::Patients => &["person_key", "patient_id"],
            CanonicalTable::Registrations => &["person_key", "start_date"],
            CanonicalTable::Events => &["snomed_concept_id", "person_key", "event_date"],
            CanonicalTable::Medications => &["dmd_code", "person_key", "issue_date"],
        }
    }
}

/// The last column of events and medications: the row's rank among the rows
/// of the same person in its practice's file, ordered by (`source_row_id`,
/// `source_table`), derived by the store as it writes the file
/// ([`with_row_order`]). Cohorts break same-day ties by (date, practice,
/// `source_row_id`, `source_table`) within a person: this small integer stands
/// for the last two, so evaluation never decodes the row ids.
pub const ROW_ORDER: &str = "row_order";

/// `batch` with its [`ROW_ORDER`] column (re)derived from `person_key`,
/// `source_row_id` and `source_table`; a batch without that column is
/// returned as it is.
pub fn with_row_order(
    batch: &RecordBatch,
) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    use datafusion::arrow::array::{Array, StringArray};
    use datafusion::arrow::compute::{SortColumn, lexsort_to_indices};
    let Ok(at) = batch.schema().index_of(ROW_ORDER) else {
        return Ok(batch.clone());
    };
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .expect("events and medications carry person and provenance")
            .clone()
    };
    let key = |name: &str| SortColumn {
        values: column(name),
        options: None,
    };
    let sorted = lexsort_to_indices(
        &[key("person_key"), key("source_row_id"), key("source_table")],
        None,
    )?;
    let person = column("person_key");
    let person = person
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("person_key is text");
    let same = |a: usize, b: usize| {
        person.is_null(a) == person.is_null(b)
            && (person.is_null(a) || person.value(a) == person.value(b))
    };
    let mut rank = vec![0i64; batch.num_rows()];
    let (mut r, mut previous) = (0i64, None);
    for i in sorted.values().iter().map(|i| *i as usize) {
        r = match previous {
            Some(p) if same(p, i) => r + 1,
            _ => 0,
        };
        rank[i] = r;
        previous = Some(i);
    }
    let mut columns = batch.columns().to_vec();
    columns[at] = Arc::new(datafusion::arrow::array::Int64Array::from(rank));
    RecordBatch::try_new(batch.schema(), columns)
}

fn provenance_fields() -> Vec<Field> {
    vec![
        Field::new("practice", DataType::Utf8, false),
        Field::new("supplier", DataType::Utf8, false),
        Field::new("source_table", DataType::Utf8, false),
        Field::new("source_row_id", DataType::Utf8, false),
        Field::new("extract_id", DataType::Utf8, false),
        Field::new(
            "extracted_at",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
    ]
}

/// Where a canonical row came from.
#[derive(Debug, Clone, Copy)]
pub struct Provenance<'a> {
    pub practice: &'a str,
    pub supplier: &'a str,
    pub source_table: &'a str,
    pub source_row_id: &'a str,
    pub extract_id: &'a str,
    pub extracted_at: NaiveDateTime,
}

#[derive(Default)]
struct ProvenanceBuilder {
    practice: StringBuilder,
    supplier: StringBuilder,
    source_table: StringBuilder,
    source_row_id: StringBuilder,
    extract_id: StringBuilder,
    extracted_at: TimestampMicrosecondBuilder,
}

impl ProvenanceBuilder {
    fn append(&mut self, p: &Provenance<'_>) {
        self.practice.append_value(p.practice);
        self.supplier.append_value(p.supplier);
        self.source_table.append_value(p.source_table);
        self.source_row_id.append_value(p.source_row_id);
        self.extract_id.append_value(p.extract_id);
        self.extracted_at
            .append_value(p.extracted_at.and_utc().timestamp_micros());
    }

    fn finish(mut self, columns: &mut Vec<ArrayRef>) {
        columns.push(Arc::new(self.practice.finish()));
        columns.push(Arc::new(self.supplier.finish()));
        columns.push(Arc::new(self.source_table.finish()));
        columns.push(Arc::new(self.source_row_id.finish()));
        columns.push(Arc::new(self.extract_id.finish()));
        columns.push(Arc::new(self.extracted_at.finish()));
    }
}

/// A builder's batch. Events and medications get a zero [`ROW_ORDER`]: it
/// depends on every row of the practice's file, so the store derives it as
/// it writes the file ([`with_row_order`]).
fn batch(table: CanonicalTable, mut columns: Vec<ArrayRef>) -> RecordBatch {
    if table.has_row_order() {
        let rows = columns.first().map_or(0, |c| c.len());
        columns.push(Arc::new(datafusion::arrow::array::Int64Array::from(
            vec![0i64; rows],
        )));
    }
    RecordBatch::try_new(table.schema(), columns)
        .expect("canonical builders produce the canonical schema")
}

pub type Date = Option<i32>;

/// One canonical patient.
pub struct PatientRow<'a> {
    pub person_key: &'a str,
    pub patient_id: &'a str,
    pub nhs_number: Option<&'a str>,
    pub nhs_number_status: &'a str,
    pub sex: &'a str,
    pub date_of_birth: Date,
    /// Why the source's date of birth was not kept (`future`), else `None`.
    pub date_of_birth_flag: Option<&'a str>,
    pub date_of_death: Date,
    pub is_test_patient: bool,
}

#[derive(Default)]
pub struct PatientsBuilder {
    person_key: StringBuilder,
    patient_id: StringBuilder,
    nhs_number: StringBuilder,
    nhs_number_status: StringBuilder,
    sex: StringBuilder,
    date_of_birth: Date32Builder,
    date_of_birth_flag: StringBuilder,
    date_of_death: Date32Builder,
    is_test_patient: BooleanBuilder,
    provenance: ProvenanceBuilder,
}

impl PatientsBuilder {
    pub fn append(&mut self, row: &PatientRow<'_>, p: &Provenance<'_>) {
        self.person_key.append_value(row.person_key);
        self.patient_id.append_value(row.patient_id);
        self.nhs_number.append_option(row.nhs_number);
        self.nhs_number_status.append_value(row.nhs_number_status);
        self.sex.append_value(row.sex);
        self.date_of_birth.append_option(row.date_of_birth);
        self.date_of_birth_flag
            .append_option(row.date_of_birth_flag);
        self.date_of_death.append_option(row.date_of_death);
        self.is_test_patient.append_value(row.is_test_patient);
        self.provenance.append(p);
    }

    pub fn finish(mut self) -> RecordBatch {
        let mut c: Vec<ArrayRef> = vec![
            Arc::new(self.person_key.finish()),
            Arc::new(self.patient_id.finish()),
            Arc::new(self.nhs_number.finish()),
            Arc::new(self.nhs_number_status.finish()),
            Arc::new(self.sex.finish()),
            Arc::new(self.date_of_birth.finish()),
            Arc::new(self.date_of_birth_flag.finish()),
            Arc::new(self.date_of_death.finish()),
            Arc::new(self.is_test_patient.finish()),
        ];
        self.provenance.finish(&mut c);
        batch(CanonicalTable::Patients, c)
    }
}

/// One canonical registration episode.
pub struct RegistrationRow<'a> {
    pub person_key: &'a str,
    pub patient_id: &'a str,
    pub registered_at: Option<&'a str>,
    pub start_date: Date,
    pub end_date: Date,
    pub registration_type: &'a str,
    pub status_text: Option<&'a str>,
}

#[derive(Default)]
pub struct RegistrationsBuilder {
    person_key: StringBuilder,
    patient_id: StringBuilder,
    registered_at: StringBuilder,
    start_date: Date32Builder,
    end_date: Date32Builder,
    registration_type: StringBuilder,
    status_text: StringBuilder,
    provenance: ProvenanceBuilder,
}

impl RegistrationsBuilder {
    pub fn append(&mut self, row: &RegistrationRow<'_>, p: &Provenance<'_>) {
        self.person_key.append_value(row.person_key);
        self.patient_id.append_value(row.patient_id);
        self.registered_at.append_option(row.registered_at);
        self.start_date.append_option(row.start_date);
        self.end_date.append_option(row.end_date);
        self.registration_type.append_value(row.registration_type);
        self.status_text.append_option(row.status_text);
        self.provenance.append(p);
    }

    pub fn finish(mut self) -> RecordBatch {
        let mut c: Vec<ArrayRef> = vec![
            Arc::new(self.person_key.finish()),
            Arc::new(self.patient_id.finish()),
            Arc::new(self.registered_at.finish()),
            Arc::new(self.start_date.finish()),
            Arc::new(self.end_date.finish()),
            Arc::new(self.registration_type.finish()),
            Arc::new(self.status_text.finish()),
        ];
        self.provenance.finish(&mut c);
        batch(CanonicalTable::Registrations, c)
    }
}

/// One canonical coded event (observation, diagnosis, measurement).
pub struct EventRow<'a> {
    pub person_key: &'a str,
    pub patient_id: &'a str,
    pub event_date: Date,
    pub date_precision: &'a str,
    pub date_flag: Option<&'a str>,
    pub recorded_at: Option<&'a str>,
    pub code_system: &'a str,
    pub source_code: &'a str,
    pub source_term: Option<&'a str>,
    pub snomed_concept_id: Option<i64>,
    pub mapping_kind: &'a str,
    pub value: Option<f64>,
    pub comparator: Option<&'a str>,
    pub unit: Option<&'a str>,
    pub value_flag: Option<&'a str>,
    pub parent_event_id: Option<&'a str>,
}

#[derive(Default)]
pub struct EventsBuilder {
    person_key: StringBuilder,
    patient_id: StringBuilder,
    event_date: Date32Builder,
    date_precision: StringBuilder,
    date_flag: StringBuilder,
    recorded_at: StringBuilder,
    code_system: StringBuilder,
    source_code: StringBuilder,
    source_term: StringBuilder,
    snomed_concept_id: Int64Builder,
    mapping_kind: StringBuilder,
    value: Float64Builder,
    comparator: StringBuilder,
    unit: StringBuilder,
    value_flag: StringBuilder,
    parent_event_id: StringBuilder,
    provenance: ProvenanceBuilder,
}

impl EventsBuilder {
    pub fn append(&mut self, row: &EventRow<'_>, p: &Provenance<'_>) {
        self.person_key.append_value(row.person_key);
        self.patient_id.append_value(row.patient_id);
        self.event_date.append_option(row.event_date);
        self.date_precision.append_value(row.date_precision);
        self.date_flag.append_option(row.date_flag);
        self.recorded_at.append_option(row.recorded_at);
        self.code_system.append_value(row.code_system);
        self.source_code.append_value(row.source_code);
        self.source_term.append_option(row.source_term);
        self.snomed_concept_id.append_option(row.snomed_concept_id);
        self.mapping_kind.append_value(row.mapping_kind);
        self.value.append_option(row.value);
        self.comparator.append_option(row.comparator);
        self.unit.append_option(row.unit);
        self.value_flag.append_option(row.value_flag);
        self.parent_event_id.append_option(row.parent_event_id);
        self.provenance.append(p);
    }

    pub fn finish(mut self) -> RecordBatch {
        let mut c: Vec<ArrayRef> = vec![
            Arc::new(self.person_key.finish()),
            Arc::new(self.patient_id.finish()),
            Arc::new(self.event_date.finish()),
            Arc::new(self.date_precision.finish()),
            Arc::new(self.date_flag.finish()),
            Arc::new(self.recorded_at.finish()),
            Arc::new(self.code_system.finish()),
            Arc::new(self.source_code.finish()),
            Arc::new(self.source_term.finish()),
            Arc::new(self.snomed_concept_id.finish()),
            Arc::new(self.mapping_kind.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.comparator.finish()),
            Arc::new(self.unit.finish()),
            Arc::new(self.value_flag.finish()),
            Arc::new(self.parent_event_id.finish()),
        ];
        self.provenance.finish(&mut c);
        batch(CanonicalTable::Events, c)
    }
}

/// One canonical medication issue.
pub struct MedicationRow<'a> {
    pub person_key: &'a str,
    pub patient_id: &'a str,
    pub issue_date: Date,
    pub date_precision: &'a str,
    pub date_flag: Option<&'a str>,
    pub code_system: &'a str,
    pub source_code: &'a str,
    pub source_term: Option<&'a str>,
    pub dmd_code: Option<i64>,
    pub mapping_kind: &'a str,
    pub dosage: Option<&'a str>,
    pub quantity: Option<f64>,
    pub quantity_unit: Option<&'a str>,
    pub course_days: Option<i64>,
}

#[derive(Default)]
pub struct MedicationsBuilder {
    person_key: StringBuilder,
    patient_id: StringBuilder,
    issue_date: Date32Builder,
    date_precision: StringBuilder,
    date_flag: StringBuilder,
    code_system: StringBuilder,
    source_code: StringBuilder,
    source_term: StringBuilder,
    dmd_code: Int64Builder,
    mapping_kind: StringBuilder,
    dosage: StringBuilder,
    quantity: Float64Builder,
    quantity_unit: StringBuilder,
    course_days: Int64Builder,
    provenance: ProvenanceBuilder,
}

impl MedicationsBuilder {
    pub fn append(&mut self, row: &MedicationRow<'_>, p: &Provenance<'_>) {
        self.person_key.append_value(row.person_key);
        self.patient_id.append_value(row.patient_id);
        self.issue_date.append_option(row.issue_date);
        self.date_precision.append_value(row.date_precision);
        self.date_flag.append_option(row.date_flag);
        self.code_system.append_value(row.code_system);
        self.source_code.append_value(row.source_code);
        self.source_term.append_option(row.source_term);
        self.dmd_code.append_option(row.dmd_code);
        self.mapping_kind.append_value(row.mapping_kind);
        self.dosage.append_option(row.dosage);
        self.quantity.append_option(row.quantity);
        self.quantity_unit.append_option(row.quantity_unit);
        self.course_days.append_option(row.course_days);
        self.provenance.append(p);
    }

    pub fn finish(mut self) -> RecordBatch {
        let mut c: Vec<ArrayRef> = vec![
            Arc::new(self.person_key.finish()),
            Arc::new(self.patient_id.finish()),
            Arc::new(self.issue_date.finish()),
            Arc::new(self.date_precision.finish()),
            Arc::new(self.date_flag.finish()),
            Arc::new(self.code_system.finish()),
            Arc::new(self.source_code.finish()),
            Arc::new(self.source_term.finish()),
            Arc::new(self.dmd_code.finish()),
            Arc::new(self.mapping_kind.finish()),
            Arc::new(self.dosage.finish()),
            Arc::new(self.quantity.finish()),
            Arc::new(self.quantity_unit.finish()),
            Arc::new(self.course_days.finish()),
        ];
        self.provenance.finish(&mut c);
        batch(CanonicalTable::Medications, c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, Int64Array};

    fn prov<'a>(table: &'a str, row: &'a str) -> Provenance<'a> {
        Provenance {
            practice: "A00001",
            supplier: "emis",
            source_table: table,
            source_row_id: row,
            extract_id: "x",
            extracted_at: NaiveDateTime::default(),
        }
    }

    fn issue(person: &str) -> MedicationRow<'_> {
        MedicationRow {
            person_key: person,
            patient_id: person,
            issue_date: None,
            date_precision: "YMD",
            date_flag: None,
            code_system: "dmd",
            source_code: "1",
            source_term: None,
            dmd_code: Some(1),
            mapping_kind: "exact",
            dosage: None,
            quantity: None,
            quantity_unit: None,
            course_days: None,
        }
    }

    #[test]
    fn row_order_ranks_each_persons_rows_by_source_row_then_table() {
        let mut b = MedicationsBuilder::default();
        // (person, source table, source row id), in no particular order.
        let rows = [
            ("P2", "T", "b"),
            ("P1", "T", "c"),
            ("P1", "S", "a"),
            ("P2", "T", "a"),
            ("P1", "T", "a"),
        ];
        for (person, table, row) in rows {
            b.append(&issue(person), &prov(table, row));
        }
        let batch = with_row_order(&b.finish()).unwrap();
        // P1: (a, S) < (a, T) < (c, T); P2: a < b.
        assert_eq!(row_orders(&batch), vec![1, 2, 0, 0, 1]);

        // Re-derived after rows change, e.g. when the store writes a merge.
        let kept = batch.slice(1, 4);
        let again = with_row_order(&kept).unwrap();
        assert_eq!(row_orders(&again), vec![2, 0, 0, 1]);

        // The store derives it as it writes, whatever the batch carried.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.parquet");
        crate::store::write_parquet(&path, &two_issues_as_built(), &[]).unwrap();
        let stored = crate::store::read_parquet(&path).unwrap();
        assert_eq!(row_orders(&stored), vec![1, 0]);
    }

    /// One person's two issues, rows "b" then "a", as a builder leaves them.
    fn two_issues_as_built() -> RecordBatch {
        let mut b = MedicationsBuilder::default();
        for row in ["b", "a"] {
            b.append(&issue("P1"), &prov("T", row));
        }
        let batch = b.finish();
        assert_eq!(row_orders(&batch), vec![0, 0]);
        batch
    }

    /// The batch's `row_order` values, in row order.
    fn row_orders(batch: &RecordBatch) -> Vec<i64> {
        batch
            .column_by_name(ROW_ORDER)
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .values()
            .to_vec()
    }
}
