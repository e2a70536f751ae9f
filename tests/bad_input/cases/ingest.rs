//! `phm ingest` on a damaged landing zone.

use std::fs;
use std::process::Output;
use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use phm::source::manifest::{ExtractKind, Manifest, sha256_file};

use crate::common::*;
use crate::scene::Scene;
use crate::{Case, case};

#[rustfmt::skip]
pub const CASES: &[Case] = &[
    case!("missing manifest", 3, "no manifest.json", missing_manifest),
    case!("hash mismatch", 3, "SHA-256 mismatch: manifest says", hash_mismatch),
    case!("row count mismatch", 3, "row count mismatch", row_count_mismatch),
    case!("truncated Parquet", 3, "not a readable Parquet file", truncated_parquet),
    case!("renamed column", 3, "no column `NhsNumber`", renamed_column),
    case!("wrong column type", 3, "column `RowIdentifier` of SRPatient has type Utf8, expected Int64", wrong_column_type),
    case!("empty delivery", 3, "empty delivery", empty_delivery),
    case!("unknown supplier", 3, "unknown supplier \"vision\"", unknown_supplier),
    case!("delivery older than the store", 3, "is older than", older_than_store),
    case!("missing landing zone", 2, "landing zone not found", missing_landing),
];

/// The `n`th delivery of a practice, in extraction order.
fn delivery(s: &Scene, ods: &str, n: usize) -> std::path::PathBuf {
    deliveries(&s.landing(), ods)[n].clone()
}

fn missing_manifest(s: &mut Scene) -> Output {
    let emis = s.emis();
    fs::remove_file(delivery(s, &emis, 1).join("manifest.json")).unwrap();
    s.damaged(&emis);
    s.ingest()
}

fn hash_mismatch(s: &mut Scene) -> Output {
    let tpp = s.tpp();
    let d = delivery(s, &tpp, 0);
    let path = d.join(&Manifest::read(&d).unwrap().files[0].path);
    let mut bytes = fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&path, bytes).unwrap();
    s.damaged(&tpp);
    s.ingest()
}

fn row_count_mismatch(s: &mut Scene) -> Output {
    let emis = s.emis();
    let d = delivery(s, &emis, 0);
    let mut m = Manifest::read(&d).unwrap();
    m.files[0].rows += 1;
    m.write(&d).unwrap();
    s.damaged(&emis);
    s.ingest()
}

fn truncated_parquet(s: &mut Scene) -> Output {
    let emis = s.emis();
    let d = delivery(s, &emis, 0);
    let mut m = Manifest::read(&d).unwrap();
    let path = d.join(&m.files[0].path);
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    m.files[0].sha256 = sha256_file(&path).unwrap();
    m.write(&d).unwrap();
    s.damaged(&emis);
    s.ingest()
}

fn renamed_column(s: &mut Scene) -> Output {
    let emis = s.emis();
    rewrite_table(&delivery(s, &emis, 0), "Admin_Patient", |b| {
        rename_column(b, "NhsNumber", "NhsNumbr")
    });
    s.damaged(&emis);
    s.ingest()
}

fn wrong_column_type(s: &mut Scene) -> Output {
    let tpp = s.tpp();
    rewrite_table(&delivery(s, &tpp, 0), "SRPatient", |b| {
        let i = b.schema().index_of("RowIdentifier").unwrap();
        let as_text: StringArray = b
            .column(i)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .iter()
            .map(|v| v.map(|v| v.to_string()))
            .collect();
        let mut fields: Vec<Field> = b.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields[i] = Field::new("RowIdentifier", DataType::Utf8, true);
        let mut cols = b.columns().to_vec();
        cols[i] = Arc::new(as_text);
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
    });
    s.damaged(&tpp);
    s.ingest()
}

fn empty_delivery(s: &mut Scene) -> Output {
    let emis = s.emis();
    let d = delivery(s, &emis, 2);
    let mut m = Manifest::read(&d).unwrap();
    m.files.clear();
    m.write(&d).unwrap();
    s.damaged(&emis);
    s.ingest()
}

fn unknown_supplier(s: &mut Scene) -> Output {
    let tpp = s.tpp();
    let d = delivery(s, &tpp, 0);
    let text = fs::read_to_string(d.join("manifest.json"))
        .unwrap()
        .replace("\"tpp\"", "\"vision\"");
    fs::write(d.join("manifest.json"), text).unwrap();
    s.damaged(&tpp);
    s.ingest()
}

/// A delivery that arrives late: extracted before the store's latest.
fn older_than_store(s: &mut Scene) -> Output {
    let emis = s.emis();
    let (landing, store) = (s.landing(), s.store());
    let late = landing.join(&emis).join("late-delivery");
    copy_dir(&delivery(s, &emis, 0), &late);
    let mut m = Manifest::read(&late).unwrap();
    m.extract_id = "late-delivery".into();
    m.kind = ExtractKind::Delta;
    m.write(&late).unwrap();
    ingest(&landing, &store)
}

fn missing_landing(s: &mut Scene) -> Output {
    ingest(&s.work().join("nope"), &s.work().join("store"))
}
