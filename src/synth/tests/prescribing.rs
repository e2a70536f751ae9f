//! Practices whose extracts share no prescribing (`without_prescribing`): no
//! medication table in any of their deliveries, and nothing else in the network
//! moves.

use std::collections::BTreeMap;
use std::path::Path;

use crate::source::manifest::Supplier;
use crate::source::{emis, tpp};
use crate::synth::tests::recount::{deliveries, recount, strings, table_file};
use crate::synth::tests::{config, generate_small, hashes};
use crate::synth::truth::GroundTruth;
use crate::synth::{SynthConfig, SynthError, generate};

const MEDICATION_TABLES: &[&str] = &[
    "Prescribing_DrugRecord",
    "Prescribing_IssueRecord",
    "SRPrimaryCareMedication",
];

fn is_medication_file(relative: &str) -> bool {
    MEDICATION_TABLES.iter().any(|t| {
        relative.contains(&format!("_{t}_")) || relative.ends_with(&format!("/{t}.parquet"))
    })
}

/// Files of the practice `ods` (relative paths starting `ods/`).
fn of_practice<'a>(
    hashes: &'a BTreeMap<String, String>,
    ods: &'a str,
) -> impl Iterator<Item = (&'a String, &'a String)> {
    hashes
        .iter()
        .filter(move |(path, _)| path.starts_with(&format!("{ods}/")))
}

fn check_supplier(supplier: Supplier) {
    let (with, without) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let base = SynthConfig {
        practices: 3,
        patients: 450,
        emis_share: if supplier == Supplier::Emis { 1.0 } else { 0.0 },
        ..config(with.path().to_path_buf())
    };
    let all = generate_small(&base);
    let none = generate_small(&SynthConfig {
        out: without.path().to_path_buf(),
        without_prescribing: 1,
        ..base.clone()
    });
    let last = &none.practices.last().unwrap().ods;
    assert!(all.without_prescribing.is_empty());
    assert_eq!(none.without_prescribing, vec![last.clone()]);
    let truth_file = std::fs::read_to_string(with.path().join("ground_truth.json")).unwrap();
    assert!(
        !truth_file.contains("without_prescribing"),
        "the ground truth of a network with prescribing everywhere is unchanged"
    );

    // Every other practice: the same files, byte for byte, and the same truth.
    let (ha, hb) = (hashes(with.path()), hashes(without.path()));
    for (a, b) in all.practices.iter().zip(&none.practices) {
        if &a.ods == last {
            continue;
        }
        assert_eq!(a, b);
        let (fa, fb): (Vec<_>, Vec<_>) = (
            of_practice(&ha, &a.ods).collect(),
            of_practice(&hb, &a.ods).collect(),
        );
        assert!(fa.len() > 10);
        assert_eq!(fa, fb, "{}", a.ods);
    }
    let other_defects = |t: &GroundTruth| -> Vec<_> {
        t.defects
            .iter()
            .filter(|d| &d.practice != last)
            .cloned()
            .collect()
    };
    assert_eq!(other_defects(&all), other_defects(&none));
    assert_eq!(all.moves, none.moves);

    // The last practice: no medication file or manifest entry in any delivery;
    // every other Parquet file as it would be with prescribing (records are drawn
    // the same way), bar TPP's SRManifest, which lists the files present.
    let (a, b) = (
        all.practices.last().unwrap(),
        none.practices.last().unwrap(),
    );
    assert_eq!(a.deliveries, b.deliveries);
    for (dir, manifest) in deliveries(without.path(), b) {
        for file in &manifest.files {
            assert!(
                !MEDICATION_TABLES.contains(&file.table.as_str()),
                "{dir:?} lists {}",
                file.table
            );
        }
        manifest.verify(&dir).unwrap_or_else(|e| panic!("{e}"));
        if supplier == Supplier::Tpp {
            let srmanifest = table_file(&dir, &manifest, "SRManifest");
            let names = strings(&srmanifest, "FileName");
            assert_eq!(srmanifest.num_rows(), manifest.files.len() - 1);
            assert!(
                (0..srmanifest.num_rows()).all(|i| names.value(i) != "SRPrimaryCareMedication")
            );
        } else {
            assert!(manifest.files.iter().any(|f| f.table == "Coding_DrugCode"));
        }
    }
    let (fa, fb): (BTreeMap<_, _>, BTreeMap<_, _>) = (
        of_practice(&ha, last).collect(),
        of_practice(&hb, last).collect(),
    );
    assert!(fa.keys().any(|p| is_medication_file(p)));
    assert!(!fb.keys().any(|p| is_medication_file(p)), "{fb:?}");
    let expected: BTreeMap<_, _> = fa
        .iter()
        .filter(|(p, _)| {
            !is_medication_file(p)
                && !p.ends_with("manifest.json")
                && !p.ends_with("SRManifest.parquet")
        })
        .map(|(p, h)| (*p, *h))
        .collect();
    for (path, hash) in &expected {
        assert_eq!(fb.get(path), Some(hash), "{path}");
    }
    assert_eq!(
        fb.len(),
        fa.len() - fa.keys().filter(|p| is_medication_file(p)).count()
    );

    // Truth: no medications expected, the rest as with prescribing; no defect on a
    // row that is never written; the files re-count to the truth.
    assert!(a.expected_rows["medications"] > 0);
    assert_eq!(b.expected_rows["medications"], 0);
    for table in ["patients", "registrations", "events"] {
        assert_eq!(a.expected_rows[table], b.expected_rows[table], "{table}");
    }
    let issue_table = match supplier {
        Supplier::Emis => emis::tables::PRESCRIBING_ISSUE_RECORD.name,
        Supplier::Tpp => tpp::tables::SR_PRIMARY_CARE_MEDICATION.name,
    };
    assert!(
        all.defects
            .iter()
            .any(|d| &d.practice == last && d.table == issue_table),
        "the practice has issue defects when it shares prescribing"
    );
    assert!(
        none.defects
            .iter()
            .all(|d| &d.practice != last || d.table != issue_table)
    );
    for p in &none.practices {
        assert_eq!(
            recount(without.path(), p, &none),
            p.expected_rows,
            "{}",
            p.ods
        );
    }
    assert_eq!(none, GroundTruth::read(without.path()).unwrap());
}

#[test]
fn emis_practice_without_prescribing_has_no_medication_tables() {
    check_supplier(Supplier::Emis);
}

#[test]
fn tpp_practice_without_prescribing_has_no_medication_tables() {
    check_supplier(Supplier::Tpp);
}

#[test]
fn every_practice_can_be_without_prescribing_but_no_more() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SynthConfig {
        without_prescribing: 2,
        ..config(dir.path().to_path_buf())
    };
    let truth = generate_small(&cfg);
    assert_eq!(truth.without_prescribing.len(), 2);
    assert!(
        truth
            .practices
            .iter()
            .all(|p| p.expected_rows["medications"] == 0)
    );
    let too_many = SynthConfig {
        without_prescribing: 3,
        out: Path::new("/nonexistent").to_path_buf(),
        ..cfg
    };
    assert!(matches!(
        generate(&too_many),
        Err(SynthError::InvalidConfig(_))
    ));
}
