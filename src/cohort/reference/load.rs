//! The canonical store read into plain rows: every `practice=*/data.parquet`
//! of each table, and every practice's `state.json`. Nothing is filtered here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use datafusion::arrow::array::{
    Array, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};

use crate::cohort::{Error, Result};
use crate::store::{PracticeState, read_parquet};

#[derive(Debug, Clone)]
pub struct Patient {
    pub person_key: String,
    pub patient_id: String,
    pub practice: String,
    pub date_of_birth: Option<NaiveDate>,
    pub date_of_death: Option<NaiveDate>,
    pub is_test_patient: bool,
}

#[derive(Debug, Clone)]
pub struct Registration {
    pub person_key: String,
    /// The practice whose extract carried the row.
    pub practice: String,
    /// The organisation the row says the patient was registered at, as stored.
    pub registered_at: Option<String>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub registration_type: String,
}

/// An event or a medication issue: what a criterion looks at.
#[derive(Debug, Clone)]
pub struct Record {
    pub person_key: String,
    pub date: Option<NaiveDate>,
    pub precision: String,
    pub date_flag: Option<String>,
    /// `snomed_concept_id` (events) or `dmd_code` (medications).
    pub code: Option<i64>,
    pub mapping_kind: String,
    /// Events only.
    pub value: Option<f64>,
    pub comparator: Option<String>,
    pub unit: Option<String>,
    pub practice: String,
    pub source_table: String,
    pub source_row_id: String,
}

/// Everything the evaluator reads from a store.
#[derive(Debug, Default)]
pub struct Data {
    pub patients: Vec<Patient>,
    pub registrations: Vec<Registration>,
    pub events: Vec<Record>,
    pub medications: Vec<Record>,
    /// Practice → canonical tables its capability profile lists.
    pub capability: BTreeMap<String, Vec<String>>,
}

impl Data {
    /// The rows split by person key, each with the whole capability map.
    pub fn by_person(self) -> BTreeMap<String, Data> {
        let mut out: BTreeMap<String, Data> = BTreeMap::new();
        let capability = self.capability;
        fn entry<'a>(
            out: &'a mut BTreeMap<String, Data>,
            capability: &BTreeMap<String, Vec<String>>,
            key: &str,
        ) -> &'a mut Data {
            out.entry(key.to_string()).or_insert_with(|| Data {
                capability: capability.clone(),
                ..Data::default()
            })
        }
        for p in self.patients {
            entry(&mut out, &capability, &p.person_key).patients.push(p);
        }
        for r in self.registrations {
            entry(&mut out, &capability, &r.person_key)
                .registrations
                .push(r);
        }
        for e in self.events {
            entry(&mut out, &capability, &e.person_key).events.push(e);
        }
        for m in self.medications {
            entry(&mut out, &capability, &m.person_key)
                .medications
                .push(m);
        }
        out
    }
}

pub fn read(store: &Path) -> Result<Data> {
    let mut data = Data::default();
    for batch in batches(store, "patients")? {
        let c = Columns(&batch);
        for i in 0..batch.num_rows() {
            data.patients.push(Patient {
                person_key: c.text("person_key", i)?.unwrap_or_default(),
                patient_id: c.text("patient_id", i)?.unwrap_or_default(),
                practice: c.text("practice", i)?.unwrap_or_default(),
                date_of_birth: c.date("date_of_birth", i)?,
                date_of_death: c.date("date_of_death", i)?,
                is_test_patient: c.boolean("is_test_patient", i)?.unwrap_or(false),
            });
        }
    }
    for batch in batches(store, "registrations")? {
        let c = Columns(&batch);
        for i in 0..batch.num_rows() {
            data.registrations.push(Registration {
                person_key: c.text("person_key", i)?.unwrap_or_default(),
                practice: c.text("practice", i)?.unwrap_or_default(),
                registered_at: c.text("registered_at", i)?,
                start_date: c.date("start_date", i)?,
                end_date: c.date("end_date", i)?,
                registration_type: c.text("registration_type", i)?.unwrap_or_default(),
            });
        }
    }
    for (table, date, code, out) in [
        (
            "events",
            "event_date",
            "snomed_concept_id",
            &mut data.events,
        ),
        (
            "medications",
            "issue_date",
            "dmd_code",
            &mut data.medications,
        ),
    ] {
        for batch in batches(store, table)? {
            let c = Columns(&batch);
            let events = table == "events";
            for i in 0..batch.num_rows() {
                out.push(Record {
                    person_key: c.text("person_key", i)?.unwrap_or_default(),
                    date: c.date(date, i)?,
                    precision: c.text("date_precision", i)?.unwrap_or_default(),
                    date_flag: c.text("date_flag", i)?,
                    code: c.int(code, i)?,
                    mapping_kind: c.text("mapping_kind", i)?.unwrap_or_default(),
                    value: if events { c.float("value", i)? } else { None },
                    comparator: if events {
                        c.text("comparator", i)?
                    } else {
                        None
                    },
                    unit: if events { c.text("unit", i)? } else { None },
                    practice: c.text("practice", i)?.unwrap_or_default(),
                    source_table: c.text("source_table", i)?.unwrap_or_default(),
                    source_row_id: c.text("source_row_id", i)?.unwrap_or_default(),
                });
            }
        }
    }
    let practices = store.join("practices");
    for dir in sorted_dirs(&practices)? {
        let state = PracticeState::read(&dir).map_err(|e| Error::Store(e.to_string()))?;
        if let Some(state) = state {
            data.capability
                .insert(state.practice.clone(), state.capability.canonical_tables);
        }
    }
    Ok(data)
}

fn sorted_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })? {
        let path = entry
            .map_err(|source| Error::Io {
                path: dir.to_path_buf(),
                source,
            })?
            .path();
        if path.is_dir() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Every `canonical/<table>/practice=*/data.parquet` (none when the table was never written).
fn batches(store: &Path, table: &str) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for dir in sorted_dirs(&store.join("canonical").join(table))? {
        let is_partition = dir
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("practice="));
        let file = dir.join("data.parquet");
        if is_partition && file.is_file() {
            out.push(read_parquet(&file).map_err(|e| Error::Store(e.to_string()))?);
        }
    }
    Ok(out)
}

struct Columns<'a>(&'a RecordBatch);

impl Columns<'_> {
    fn column<T: 'static>(&self, name: &str) -> Result<&T> {
        self.0
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<T>())
            .ok_or_else(|| Error::Store(format!("canonical column {name:?} missing or mistyped")))
    }

    fn text(&self, name: &str, i: usize) -> Result<Option<String>> {
        let a = self.column::<StringArray>(name)?;
        Ok(a.is_valid(i).then(|| a.value(i).to_string()))
    }

    fn date(&self, name: &str, i: usize) -> Result<Option<NaiveDate>> {
        let a = self.column::<Date32Array>(name)?;
        Ok(a.is_valid(i).then(|| {
            NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(a.value(i) as i64)
        }))
    }

    fn int(&self, name: &str, i: usize) -> Result<Option<i64>> {
        let a = self.column::<Int64Array>(name)?;
        Ok(a.is_valid(i).then(|| a.value(i)))
    }

    fn float(&self, name: &str, i: usize) -> Result<Option<f64>> {
        let a = self.column::<Float64Array>(name)?;
        Ok(a.is_valid(i).then(|| a.value(i)))
    }

    fn boolean(&self, name: &str, i: usize) -> Result<Option<bool>> {
        let a = self.column::<BooleanArray>(name)?;
        Ok(a.is_valid(i).then(|| a.value(i)))
    }
}
