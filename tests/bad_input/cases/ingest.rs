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
    case!("manifest path into another practice", 3, "goes up with `..`", path_into_other_practice),
    case!("manifest path absolute", 3, "is absolute", path_absolute),
    case!("manifest path through a symlink", 3, "through a symlink", path_through_symlink),
    case!("file listed twice", 3, "is listed twice", file_listed_twice),
    case!("file outside any delivery", 3, "outside any delivery", loose_file),
    case!("same extract in two folders", 3, "is also in", extract_twice),
    case!("TPP files under an EMIS manifest", 3, "(it is a TPP table)", tpp_under_emis),
    case!("unknown table name", 3, "which is not a table of emis extracts", unknown_table),
    case!("bulk without patients", 3, "a full extract without Admin_Patient", bulk_without_patients),
    case!("bulk without registrations", 3, "a full extract without SRPatientRegistration", bulk_without_registrations),
    case!("delta of unread tables only", 3, "holds no table phm reads", delta_loads_nothing),
    case!("memory limit too small", 2, "too little for the query engine", memory_limit_too_small),
    case!("memory limit not a size", 2, "is not a memory size", memory_limit_not_a_size),
    case!("spill folder not writable", 2, "the spill folder cannot be written", spill_dir_not_writable),
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
        let mut fields: Vec<Field> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
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

/// The manifest of `d` after `f`, written back.
fn edit_manifest(d: &std::path::Path, f: impl FnOnce(&mut Manifest)) {
    let mut m = Manifest::read(d).unwrap();
    f(&mut m);
    m.write(d).unwrap();
}

/// The EMIS bulk names, with its true hash and count, another practice's
/// patient file.
fn path_into_other_practice(s: &mut Scene) -> Output {
    let (emis, tpp) = (s.emis(), s.tpp());
    let theirs = delivery(s, &tpp, 0);
    let file = Manifest::read(&theirs)
        .unwrap()
        .files
        .into_iter()
        .find(|f| f.table == "SRPatient")
        .unwrap();
    let rel = format!(
        "../../{tpp}/{}/{}",
        theirs.file_name().unwrap().to_string_lossy(),
        file.path
    );
    edit_manifest(&delivery(s, &emis, 0), |m| {
        let mine = m
            .files
            .iter_mut()
            .find(|f| f.table == "Admin_Patient")
            .unwrap();
        mine.path = rel;
        mine.rows = file.rows;
        mine.sha256 = file.sha256.clone();
    });
    s.damaged(&emis);
    s.ingest()
}

fn path_absolute(s: &mut Scene) -> Output {
    let emis = s.emis();
    let d = delivery(s, &emis, 0);
    let absolute = d.join(&Manifest::read(&d).unwrap().files[0].path);
    edit_manifest(&d, |m| {
        m.files[0].path = absolute.to_string_lossy().into_owned()
    });
    s.damaged(&emis);
    s.ingest()
}

fn path_through_symlink(s: &mut Scene) -> Output {
    let tpp = s.tpp();
    let d = delivery(s, &tpp, 0);
    let m = Manifest::read(&d).unwrap();
    let real = d.join(&m.files[0].path);
    let outside = s.work().join("elsewhere.parquet");
    fs::rename(&real, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &real).unwrap();
    s.damaged(&tpp);
    s.ingest()
}

fn file_listed_twice(s: &mut Scene) -> Output {
    let emis = s.emis();
    edit_manifest(&delivery(s, &emis, 0), |m| {
        let again = m.files[0].clone();
        m.files.push(again);
    });
    s.damaged(&emis);
    s.ingest()
}

fn loose_file(s: &mut Scene) -> Output {
    let emis = s.emis();
    let d = delivery(s, &emis, 1);
    let m = Manifest::read(&d).unwrap();
    fs::copy(
        d.join(&m.files[0].path),
        s.landing().join(&emis).join("stray.parquet"),
    )
    .unwrap();
    s.damaged(&emis);
    s.ingest()
}

fn extract_twice(s: &mut Scene) -> Output {
    let tpp = s.tpp();
    let d = delivery(s, &tpp, 1);
    copy_dir(&d, &s.landing().join(&tpp).join("copy-of-the-first-delta"));
    s.damaged(&tpp);
    s.ingest()
}

/// A TPP bulk's files and manifest, relabelled as the EMIS practice's bulk.
fn tpp_under_emis(s: &mut Scene) -> Output {
    let (emis, tpp) = (s.emis(), s.tpp());
    let bulk = delivery(s, &emis, 0);
    fs::remove_dir_all(&bulk).unwrap();
    copy_dir(&delivery(s, &tpp, 0), &bulk);
    edit_manifest(&bulk, |m| {
        m.practice = emis.clone();
        m.supplier = phm::source::manifest::Supplier::Emis;
        m.schema_version = "5.4".into();
    });
    s.damaged(&emis);
    s.ingest()
}

fn unknown_table(s: &mut Scene) -> Output {
    let emis = s.emis();
    edit_manifest(&delivery(s, &emis, 0), |m| {
        let f = m
            .files
            .iter_mut()
            .find(|f| f.table == "CareRecord_Observation")
            .unwrap();
        f.table = "CareRecord_Observations".into();
    });
    s.damaged(&emis);
    s.ingest()
}

fn bulk_without_patients(s: &mut Scene) -> Output {
    let emis = s.emis();
    edit_manifest(&delivery(s, &emis, 0), |m| {
        m.files.retain(|f| f.table != "Admin_Patient")
    });
    s.damaged(&emis);
    s.ingest()
}

fn bulk_without_registrations(s: &mut Scene) -> Output {
    let tpp = s.tpp();
    edit_manifest(&delivery(s, &tpp, 0), |m| {
        m.files.retain(|f| f.table != "SRPatientRegistration")
    });
    s.damaged(&tpp);
    s.ingest()
}

/// A delta whose every file is labelled as a TPP table phm does not read.
fn delta_loads_nothing(s: &mut Scene) -> Output {
    let tpp = s.tpp();
    edit_manifest(&delivery(s, &tpp, 1), |m| {
        for f in &mut m.files {
            f.table = "SREvent".into();
        }
    });
    s.damaged(&tpp);
    s.ingest()
}

/// `phm ingest` of the scene's landing zone into a new store, with `extra` arguments.
fn ingest_with(s: &mut Scene, extra: &[&str]) -> Output {
    let store = s.work().join("new-store");
    let landing = s.landing();
    let mut args = vec![
        "ingest",
        "--landing",
        landing.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    phm(&args)
}

fn memory_limit_too_small(s: &mut Scene) -> Output {
    ingest_with(s, &["--memory-limit", "16MiB"])
}

fn memory_limit_not_a_size(s: &mut Scene) -> Output {
    ingest_with(s, &["--memory-limit", "lots"])
}

fn spill_dir_not_writable(s: &mut Scene) -> Output {
    // A file where the folder should be: nothing can be created under it.
    let blocker = s.work().join("spill-blocker");
    fs::write(&blocker, b"not a folder").unwrap();
    let spill = blocker.join("spill");
    ingest_with(s, &["--spill-dir", spill.to_str().unwrap()])
}
