//! The cohort engine over a synthetic network ingested through the real
//! binary: every shipped cohort in one run, checked against the reference
//! evaluator person by person, with the invariants of the output files
//! (explanations for everyone in the base population, attrition that
//! reconciles, byte-identical reruns).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use phm::cohort::engine::{RunOptions, read_outcomes, run};
use phm::cohort::outcome::{Status, differences};
use phm::cohort::{Cohort, bind, file};
use phm::terminology::Release;
use phm::valueset::Catalogue;

fn strings(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let c = cast(b.column_by_name(name).unwrap(), &DataType::Utf8).unwrap();
    let c = c.as_any().downcast_ref::<StringArray>().unwrap();
    (0..c.len())
        .map(|i| (!c.is_null(i)).then(|| c.value(i).to_string()))
        .collect()
}

fn ints(b: &RecordBatch, name: &str) -> Vec<i64> {
    let c = cast(b.column_by_name(name).unwrap(), &DataType::Int64).unwrap();
    let c = c.as_any().downcast_ref::<Int64Array>().unwrap();
    (0..c.len()).map(|i| c.value(i)).collect()
}

/// Attrition: entering = passing + removed + selected on every row, each step
/// passes on what the next one enters, and the network row of each step is the
/// sum of the practices' rows.
fn check_attrition(dir: &Path) {
    let b = common::read_batch(&dir.join("attrition.parquet"));
    let practice = strings(&b, "practice");
    let step = strings(&b, "step");
    let order = ints(&b, "step_order");
    let (entering, passing, removed, selected) = (
        ints(&b, "entering"),
        ints(&b, "passing"),
        ints(&b, "removed"),
        ints(&b, "selected"),
    );
    let mut sums: BTreeMap<(i64, String), [i64; 4]> = BTreeMap::new();
    let mut network: BTreeMap<(i64, String), [i64; 4]> = BTreeMap::new();
    for i in 0..b.num_rows() {
        assert_eq!(
            entering[i],
            passing[i] + removed[i] + selected[i],
            "{dir:?} row {i}"
        );
        if i + 1 < b.num_rows() && practice[i + 1] == practice[i] {
            assert_eq!(passing[i], entering[i + 1], "{dir:?} row {i}");
        }
        let row = [entering[i], passing[i], removed[i], selected[i]];
        let key = (order[i], step[i].clone().unwrap());
        let target = if practice[i].as_deref() == Some("ALL") {
            &mut network
        } else {
            &mut sums
        };
        let e = target.entry(key).or_default();
        for k in 0..4 {
            e[k] += row[k];
        }
    }
    assert!(!network.is_empty());
    assert_eq!(network, sums, "{dir:?}: network = sum of practices");
}

#[test]
fn shipped_cohorts_on_a_synthetic_network() {
    let tmp = tempfile::tempdir().unwrap();
    let (landing, store, release_dir) = (
        tmp.path().join("landing"),
        tmp.path().join("store"),
        tmp.path().join("release"),
    );
    common::small_network(&landing, 11);
    let o = common::import_fixture(&release_dir);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let o = common::ingest(&landing, &store);
    assert!(o.status.success(), "{}", common::stderr(&o));

    let release = Release::open(&release_dir).unwrap();
    let catalogue = Catalogue::load(&[common::repo("valuesets")]).unwrap();
    let cohorts_dir = common::repo("cohorts");
    let cohorts: Vec<Cohort> = file::list(&cohorts_dir)
        .unwrap()
        .into_iter()
        .map(|(id, _)| {
            let def = file::load(&cohorts_dir, &id, &catalogue).unwrap();
            bind(def, &catalogue, &release).unwrap()
        })
        .collect();
    assert!(
        cohorts.iter().any(|c| c.def.id == "DM_REG"),
        "DM_REG is shipped"
    );
    let index = NaiveDate::from_ymd_opt(2026, 3, 31).unwrap();
    let opts = |out: &Path| RunOptions {
        index_date: index,
        out: out.to_path_buf(),
        person: None,
        memory_limit: None,
        work_memory: None,
        release_id: release.id().to_string(),
        session: None,
        explain_plans: false,
    };
    let out = tmp.path().join("out");
    let runs = run(&store, &cohorts, &opts(&out)).unwrap();
    assert_eq!(runs.len(), cohorts.len());

    for (cohort, r) in cohorts.iter().zip(&runs) {
        let key = cohort.def.key();
        let outcomes = read_outcomes(&r.dir).unwrap();
        assert_eq!(outcomes.len() as u64, r.persons, "{key}");
        assert!(r.in_population > 0, "{key}");
        for p in &outcomes {
            if p.status == Status::InPopulation {
                assert_eq!(
                    p.criteria.len(),
                    cohort.def.criteria.len(),
                    "{key} {}",
                    p.person_key
                );
                assert!(p.included.is_some());
            } else {
                assert!(p.criteria.is_empty() && p.included.is_none());
            }
        }
        check_attrition(&r.dir);
        let per_practice: u64 = r.per_practice.iter().filter_map(|(_, n)| *n).sum();
        assert_eq!(per_practice, r.included, "{key}");

        // The reference evaluator is slow in debug builds: three cohorts
        // (diagnosis and resolution, values and units, medications) unless
        // PHM_REFERENCE_ALL is set.
        if std::env::var_os("PHM_REFERENCE_ALL").is_none()
            && !["DM_REG", "DM_HBA1C_58", "AF_NO_DOAC"].contains(&cohort.def.id.as_str())
        {
            continue;
        }
        let reference = phm::cohort::reference::evaluate(&store, cohort, index).unwrap();
        let diff = differences(&outcomes, &reference);
        assert!(
            diff.is_empty(),
            "{key}: engine and reference differ for {} persons, first:\n{}",
            diff.len(),
            diff.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
        );
    }
    let dm = &runs[cohorts.iter().position(|c| c.def.id == "DM_REG").unwrap()];
    assert!(dm.included > 0, "the diabetes register is not empty");

    // A rerun (DM_REG alone) writes byte-identical files.
    let dm_cohort = cohorts.iter().find(|c| c.def.id == "DM_REG").unwrap();
    let again = tmp.path().join("again");
    let rerun = run(&store, std::slice::from_ref(dm_cohort), &opts(&again)).unwrap();
    let a = common::tree_hashes(&dm.dir);
    let b = common::tree_hashes(&rerun[0].dir);
    assert_eq!(a, b, "outputs are byte-identical on a rerun");
    assert!(a.len() == 11, "{a:?}");
    assert!(!out.join(".work").exists());
}
