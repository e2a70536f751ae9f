//! Shared by the integration tests: a small synthetic network, the real binary,
//! and tools to damage a delivery the way real deliveries get damaged.
#![allow(dead_code)]

pub mod browser;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use chrono::NaiveDate;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use phm::source::manifest::{Manifest, sha256_file};
use phm::synth::truth::GroundTruth;
use phm::synth::{SynthConfig, generate};

/// A small mixed network: 3 practices (EMIS and TPP), 2 deltas.
pub fn small_network(dir: &Path, seed: u64) -> GroundTruth {
    network(dir, seed, 900)
}

/// A mixed network of 3 practices (EMIS and TPP), 2 deltas, `patients` in all.
pub fn network(dir: &Path, seed: u64, patients: usize) -> GroundTruth {
    network_of(dir, seed, 3, patients)
}

/// A network of `practices` practices, EMIS and TPP when there are two or
/// more, with 2 deltas each and `patients` in all.
pub fn network_of(dir: &Path, seed: u64, practices: usize, patients: usize) -> GroundTruth {
    let config = SynthConfig {
        out: dir.to_path_buf(),
        practices,
        patients,
        seed,
        emis_share: 0.5,
        deltas: 2,
        as_of: NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
        defect_rates: SynthConfig::default_defect_rates(),
        without_prescribing: 0,
    };
    generate(&config).expect("synthetic network generates")
}

/// `phm dq` on a store, with `extra` arguments.
pub fn dq(store: &Path, release: &Path, out: &Path, as_of: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "dq",
        "--store",
        store.to_str().unwrap(),
        "--release",
        release.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--as-of",
        as_of,
    ];
    args.extend_from_slice(extra);
    phm(&args)
}

/// Runs the real binary from the repository root.
pub fn phm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phm"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("PHM_LOG")
        .output()
        .expect("phm runs")
}

/// The real binary, started in the background with its output discarded.
pub fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_phm"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("PHM_LOG")
        // One practice at a time: when the first has committed, the others
        // have not.
        .env("RAYON_NUM_THREADS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("phm starts")
}

/// A path inside the repository.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `phm terminology import` of the checked-in fixture release into `out`.
pub fn import_fixture(out: &Path) -> Output {
    let fixture = repo("terminology/fixture");
    phm(&[
        "terminology",
        "import",
        "--rf2",
        fixture.join("rf2").to_str().unwrap(),
        "--dmd",
        fixture.join("dmd").to_str().unwrap(),
        "--ctv3-map",
        fixture.join("ctv3/SRCtv3ToSnomed.txt").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
}

pub fn ingest(landing: &Path, store: &Path) -> Output {
    phm(&[
        "ingest",
        "--landing",
        landing.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ])
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// SHA-256 of every file under `dir` (relative path → hash), for "nothing changed" checks.
pub fn tree_hashes(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(
                    path.strip_prefix(dir).unwrap().to_path_buf(),
                    sha256_file(&path).unwrap(),
                );
            }
        }
    }
    out
}

/// Delivery folders of a practice, in extraction order.
pub fn deliveries(landing: &Path, ods: &str) -> Vec<PathBuf> {
    let mut out: Vec<(chrono::NaiveDateTime, PathBuf)> = fs::read_dir(landing.join(ods))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| (Manifest::read(&p).unwrap().extracted_at, p))
        .collect();
    out.sort();
    out.into_iter().map(|(_, p)| p).collect()
}

pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            fs::copy(&path, &target).unwrap();
        }
    }
}

pub fn read_batch(path: &Path) -> RecordBatch {
    let builder = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(path).unwrap()).unwrap();
    let schema = builder.schema().clone();
    let batches: Vec<RecordBatch> = builder.build().unwrap().map(Result::unwrap).collect();
    datafusion::arrow::compute::concat_batches(&schema, &batches).unwrap()
}

pub fn write_batch(path: &Path, batch: &RecordBatch) {
    let mut w =
        ArrowWriter::try_new(fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

/// Rewrites the file of `table` in a delivery with `f` applied, and fixes the
/// manifest's hash and row count so only the change under test is wrong.
pub fn rewrite_table(delivery: &Path, table: &str, f: impl FnOnce(RecordBatch) -> RecordBatch) {
    let mut manifest = Manifest::read(delivery).unwrap();
    let file = manifest
        .files
        .iter_mut()
        .find(|f| f.table == table)
        .expect("table in delivery");
    let path = delivery.join(&file.path);
    let batch = f(read_batch(&path));
    write_batch(&path, &batch);
    file.rows = batch.num_rows() as u64;
    file.sha256 = sha256_file(&path).unwrap();
    manifest.write(delivery).unwrap();
}

/// `batch` with column `from` renamed to `to`.
pub fn rename_column(batch: RecordBatch, from: &str, to: &str) -> RecordBatch {
    let fields: Vec<_> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| {
            if f.name() == from {
                f.as_ref().clone().with_name(to)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    RecordBatch::try_new(
        std::sync::Arc::new(Schema::new(fields)),
        batch.columns().to_vec(),
    )
    .unwrap()
}

/// The practices of the ground truth by supplier: (first EMIS ODS, first TPP ODS).
pub fn one_of_each(truth: &GroundTruth) -> (String, String) {
    let emis = truth
        .practices
        .iter()
        .find(|p| p.supplier.as_str() == "emis")
        .unwrap()
        .ods
        .clone();
    let tpp = truth
        .practices
        .iter()
        .find(|p| p.supplier.as_str() == "tpp")
        .unwrap()
        .ods
        .clone();
    (emis, tpp)
}

/// The rows of a Parquet file as text, one string per row, sorted: two files
/// are equal as multisets of rows when their `ParquetRows` are equal. The
/// rows hold patient identifiers: compare them, never print them.
#[derive(PartialEq, Eq)]
pub struct ParquetRows {
    pub columns: Vec<String>,
    pub rows: Vec<String>,
}

pub fn parquet_rows(path: &Path) -> ParquetRows {
    let batch = read_batch(path);
    let options = FormatOptions::default().with_null("\u{0}");
    let formatters: Vec<ArrayFormatter> = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
        .collect();
    let mut rows: Vec<String> = (0..batch.num_rows())
        .map(|i| {
            formatters
                .iter()
                .map(|f| f.value(i).to_string())
                .collect::<Vec<_>>()
                .join("\u{1f}")
        })
        .collect();
    rows.sort_unstable();
    ParquetRows {
        columns: batch
            .schema()
            .fields()
            .iter()
            .map(|f| format!("{}: {}", f.name(), f.data_type()))
            .collect(),
        rows,
    }
}
