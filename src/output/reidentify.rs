//! Re-identification: from pseudonyms back to the people, for a practice's
//! own clinicians (direct care), through an audited command only.
//!
//! A pseudonym is resolved only for a patient of the named practice who is
//! registered there on the practice's latest extract date: a practice sees
//! its own patients, never another's. Everything else is refused. The
//! practice's patients are streamed through a DataFusion plan and each row's
//! pseudonym computed as it passes; only the matches are kept.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, BooleanArray, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::JoinType;
use datafusion::functions::expr_fn::{btrim, upper};
use datafusion::prelude::*;
use futures::StreamExt;

use super::pseudonym::Key;
use crate::nhs_number::{self, NhsNumber};
use crate::store::state::PracticeState;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{practice}: no such practice in the store at {store}; hint: name a practice the store holds (its folders under practices/)"
    )]
    NoPractice { practice: String, store: PathBuf },
    #[error(
        "{path}: cannot read the store: {message}; hint: check the store with `phm cohort run`, or rebuild it by ingesting into a new store"
    )]
    Read { path: PathBuf, message: String },
}

/// What one pseudonym resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// A patient registered at the practice. `nhs_number` is `None` for an
    /// unlinkable pseudonym's record without a verified number.
    Patient {
        patient_id: String,
        nhs_number: Option<NhsNumber>,
    },
    /// A patient of the practice's extract, not registered there on the date.
    NotRegistered,
    /// No patient of the practice has this pseudonym under this key.
    Unknown,
}

/// Resolves `pseudonyms` among the patients of `practice` under `key`.
pub async fn reidentify(
    store_root: &Path,
    practice: &str,
    key: &Key,
    pseudonyms: &[String],
) -> Result<Vec<(String, Resolved)>, Error> {
    let state = PracticeState::read(&store_root.join("practices").join(practice))
        .ok()
        .flatten()
        .ok_or_else(|| Error::NoPractice {
            practice: practice.to_string(),
            store: store_root.to_path_buf(),
        })?;
    let on = state.capability.latest_extracted_at.date();
    let wanted: BTreeSet<&str> = pseudonyms.iter().map(String::as_str).collect();
    let mut found: Vec<(String, Resolved)> = Vec::new();

    let file = |table: &str| {
        store_root
            .join("canonical")
            .join(table)
            .join(format!("practice={practice}"))
            .join("data.parquet")
    };
    let patients_path = file("patients");
    let read_err = |e: datafusion::error::DataFusionError| Error::Read {
        path: patients_path.clone(),
        message: e.to_string(),
    };
    let ctx = SessionContext::new();
    let patients = ctx
        .read_parquet(
            patients_path.to_string_lossy().as_ref(),
            ParquetReadOptions::default(),
        )
        .await
        .map_err(read_err)?
        .select_columns(&["patient_id", "nhs_number", "nhs_number_status"])
        .map_err(read_err)?;
    let registered = registered_on(&ctx, &file("registrations"), practice, on)
        .await
        .map_err(read_err)?;
    let joined = patients
        .join(
            registered,
            JoinType::Left,
            &["patient_id"],
            &["r_patient_id"],
            None,
        )
        .and_then(|df| {
            let text = |c: &str| cast(col(c), DataType::Utf8).alias(c);
            df.select(vec![
                text("patient_id"),
                text("nhs_number"),
                text("nhs_number_status"),
                col("r_patient_id").is_not_null().alias("registered"),
            ])
        })
        .map_err(read_err)?;
    let mut stream = joined.execute_stream().await.map_err(read_err)?;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(read_err)?;
        let text = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .expect("string column")
        };
        let (ids, numbers, status) = (
            text("patient_id"),
            text("nhs_number"),
            text("nhs_number_status"),
        );
        let registered = batch
            .column_by_name("registered")
            .and_then(|c| c.as_any().downcast_ref::<BooleanArray>())
            .expect("boolean column");
        for i in 0..batch.num_rows() {
            let verified = (status.is_valid(i) && status.value(i) == "verified")
                .then(|| numbers.is_valid(i).then(|| numbers.value(i)))
                .flatten();
            let pseudonym = key.of_record(practice, ids.value(i), verified);
            if !wanted.contains(pseudonym.as_str()) {
                continue;
            }
            let resolved = if registered.value(i) {
                Resolved::Patient {
                    patient_id: ids.value(i).to_string(),
                    nhs_number: verified.and_then(nhs_number::normalise).map(NhsNumber::new),
                }
            } else {
                Resolved::NotRegistered
            };
            found.push((pseudonym, resolved));
        }
    }
    Ok(pseudonyms
        .iter()
        .map(|p| {
            let resolved = found
                .iter()
                .find(|(q, _)| q == p)
                .map_or(Resolved::Unknown, |(_, r)| r.clone());
            (p.clone(), resolved)
        })
        .collect())
}

/// Source patient ids (`r_patient_id`) with a registration at `practice` open
/// on `on`. A row names its organisation in `registered_at`; an empty one is
/// about the delivering practice (`docs/cohort-language.md`).
async fn registered_on(
    ctx: &SessionContext,
    path: &Path,
    practice: &str,
    on: NaiveDate,
) -> datafusion::error::Result<DataFrame> {
    let day = lit(datafusion::scalar::ScalarValue::Date32(Some(
        crate::source::columns::date_to_day(on),
    )));
    let org = upper(btrim(vec![col("registered_at")]));
    ctx.read_parquet(
        path.to_string_lossy().as_ref(),
        ParquetReadOptions::default(),
    )
    .await?
    .filter(
        col("registered_at")
            .is_null()
            .or(org.clone().eq(lit("")))
            .or(org.eq(lit(practice.to_uppercase()))),
    )?
    .filter(col("start_date").lt_eq(day.clone()))?
    .filter(col("end_date").is_null().or(col("end_date").gt(day)))?
    .select(vec![col("patient_id").alias("r_patient_id")])?
    .distinct()
}

/// The store person key and practice of the record whose pseudonym under
/// `key` is `pseudonym`, streamed through the store's patients.
pub async fn person_of(
    store_root: &Path,
    key: &Key,
    pseudonym: &str,
) -> Result<Option<(String, String)>, Error> {
    let dir = store_root.join("canonical").join("patients");
    let read_err = |e: datafusion::error::DataFusionError| Error::Read {
        path: dir.clone(),
        message: e.to_string(),
    };
    let ctx = SessionContext::new();
    let text = |c: &str| cast(col(c), DataType::Utf8).alias(c);
    let df = ctx
        .read_parquet(format!("{}/", dir.display()), ParquetReadOptions::default())
        .await
        .and_then(|df| {
            df.select(vec![
                text("person_key"),
                text("practice"),
                text("patient_id"),
                text("nhs_number"),
                text("nhs_number_status"),
            ])
        })
        .map_err(read_err)?;
    let mut stream = df.execute_stream().await.map_err(read_err)?;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(read_err)?;
        let s = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .expect("string column")
        };
        let (person, practice, ids, numbers, status) = (
            s("person_key"),
            s("practice"),
            s("patient_id"),
            s("nhs_number"),
            s("nhs_number_status"),
        );
        for i in 0..batch.num_rows() {
            let verified =
                (status.value(i) == "verified" && numbers.is_valid(i)).then(|| numbers.value(i));
            if key.of_record(practice.value(i), ids.value(i), verified) == pseudonym {
                return Ok(Some((
                    person.value(i).to_string(),
                    practice.value(i).to_string(),
                )));
            }
        }
    }
    Ok(None)
}
