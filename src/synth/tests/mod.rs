//! End-to-end tests of the generator on small networks: determinism, delivery
//! layout and manifests, delta contents, and the ground truth's expected rows against
//! an independent re-count of the written files ([`recount`]); defects in [`defects`];
//! practices without prescribing in [`prescribing`].

mod defects;
mod prescribing;
mod recount;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crate::source::manifest::{ExtractKind, Supplier, sha256_file};
use crate::source::table::TableSpec;
use crate::source::{emis, tpp};
use crate::synth::tests::recount::{
    cell, deliveries, ints, is_delete, read, recount, strings, table_file, text,
};
use crate::synth::truth::{DefectKind, GroundTruth};
use crate::synth::{SynthConfig, SynthError, generate};

/// A small two-practice network configuration writing to `out`.
pub(crate) fn config(out: PathBuf) -> SynthConfig {
    SynthConfig {
        out,
        practices: 2,
        patients: 300,
        seed: 20260331,
        emis_share: 0.5,
        deltas: 2,
        as_of: chrono::NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
        defect_rates: SynthConfig::default_defect_rates(),
        without_prescribing: 0,
    }
}

pub(crate) fn generate_small(cfg: &SynthConfig) -> GroundTruth {
    generate(cfg).unwrap_or_else(|e| panic!("generation failed: {e}"))
}

/// Every file under `root`, relative path → SHA-256.
fn hashes(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(relative, sha256_file(&path).unwrap());
            }
        }
    }
    out
}

#[test]
fn same_config_gives_identical_bytes() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg = SynthConfig {
        practices: 3,
        ..config(a.path().to_path_buf())
    };
    let truth_a = generate_small(&cfg);
    // Again on a single thread: the output must not depend on scheduling.
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let truth_b = one_thread.install(|| {
        generate_small(&SynthConfig {
            out: b.path().to_path_buf(),
            ..cfg.clone()
        })
    });
    assert_eq!(truth_a, truth_b);
    let (ha, hb) = (hashes(a.path()), hashes(b.path()));
    assert!(ha.len() > 30);
    assert_eq!(ha, hb);

    let c = tempfile::tempdir().unwrap();
    generate_small(&SynthConfig {
        seed: 7,
        ..config(c.path().to_path_buf())
    });
    assert_ne!(
        hashes(c.path()).get("ground_truth.json"),
        ha.get("ground_truth.json")
    );
}

#[test]
fn network_shape_manifests_and_recount() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SynthConfig {
        practices: 3,
        patients: 450,
        ..config(dir.path().to_path_buf())
    };
    let truth = generate_small(&cfg);
    assert_eq!(truth, GroundTruth::read(dir.path()).unwrap());
    let suppliers: BTreeSet<Supplier> = truth.practices.iter().map(|p| p.supplier).collect();
    assert_eq!(suppliers.len(), 2, "both suppliers appear");
    assert!(
        !truth.moves.is_empty(),
        "some people moved between member practices"
    );

    for practice in &truth.practices {
        assert_eq!(practice.deliveries.len(), cfg.deltas + 1);
        assert!(
            practice.deliveries.windows(2).all(|w| w[0] < w[1]),
            "extract ids sort in delivery order"
        );
        assert!(
            !practice.deleted_patients.is_empty(),
            "each practice deletes a patient in a delta"
        );
        for (k, (dir, manifest)) in deliveries(dir.path(), practice).into_iter().enumerate() {
            manifest.verify(&dir).unwrap_or_else(|e| panic!("{e}"));
            let (tables, version): (&[&TableSpec], &str) = match practice.supplier {
                Supplier::Emis => (emis::tables::ALL, emis::tables::SCHEMA_VERSION),
                Supplier::Tpp => (tpp::tables::ALL, tpp::tables::SCHEMA_VERSION),
            };
            assert_eq!(manifest.schema_version, version);
            assert_eq!(manifest.practice, practice.ods);
            let listed: Vec<&str> = manifest.files.iter().map(|f| f.table.as_str()).collect();
            let expected: Vec<&str> = tables.iter().map(|t| t.name).collect();
            assert_eq!(listed, expected);
            for file in &manifest.files {
                let spec = tables.iter().find(|t| t.name == file.table).unwrap();
                assert_eq!(
                    read(&dir.join(&file.path)).schema(),
                    spec.schema(),
                    "{}",
                    file.path
                );
                if practice.supplier == Supplier::Emis {
                    assert!(
                        file.path.contains(&format!("_{}_", file.table)),
                        "{}",
                        file.path
                    );
                    assert!(
                        file.path
                            .starts_with(manifest.extract_id.split('_').nth(1).unwrap()),
                        "{}",
                        file.path
                    );
                }
            }
            assert_eq!(manifest.kind == ExtractKind::Full, k == 0);
        }
        assert_eq!(
            recount(dir.path(), practice, &truth),
            practice.expected_rows,
            "{}",
            practice.ods
        );
        assert!(practice.expected_quarantine.is_empty());
    }
    let events: u64 = truth
        .practices
        .iter()
        .map(|p| p.expected_rows["events"])
        .sum();
    let medications: u64 = truth
        .practices
        .iter()
        .map(|p| p.expected_rows["medications"])
        .sum();
    let per_patient = (events + medications) as f64 / cfg.patients as f64;
    assert!(
        (250.0..=900.0).contains(&per_patient),
        "{per_patient:.0} event and medication rows per patient"
    );
}

#[test]
fn tpp_batches_have_a_srmanifest_and_an_srcode_rebulk() {
    let dir = tempfile::tempdir().unwrap();
    let truth = generate_small(&SynthConfig {
        emis_share: 0.0,
        practices: 1,
        patients: 150,
        ..config(dir.path().to_path_buf())
    });
    let practice = &truth.practices[0];
    let mut rebulks = 0;
    for (k, (dir, manifest)) in deliveries(dir.path(), practice).into_iter().enumerate() {
        let srmanifest = table_file(&dir, &manifest, "SRManifest");
        let names = strings(&srmanifest, "FileName");
        let delta = strings(&srmanifest, "IsDelta");
        let reference = strings(&srmanifest, "IsReference");
        assert_eq!(srmanifest.num_rows(), manifest.files.len() - 1);
        for i in 0..srmanifest.num_rows() {
            let is_reference = matches!(names.value(i), "SRCtv3ToSnomed" | "SRMapping");
            assert_eq!(reference.value(i) == "Y", is_reference);
            if k == 0 || is_reference {
                assert_eq!(delta.value(i), "N");
            }
            if k > 0 && names.value(i) == "SRCode" && delta.value(i) == "N" {
                rebulks += 1;
            }
        }
        let codes = table_file(&dir, &manifest, "SRCode");
        let snomed = strings(&codes, "SNOMEDCode");
        let missing = (0..codes.num_rows())
            .filter(|i| matches!(text(snomed, *i), Some("" | "-1")))
            .count();
        if codes.num_rows() > 1000 {
            let share = missing as f64 / codes.num_rows() as f64;
            assert!(
                (0.05..0.2).contains(&share),
                "{share:.3} of SRCode rows lack a SNOMED code"
            );
        }
    }
    assert_eq!(rebulks, 1);
}

#[test]
fn invalid_configurations_are_refused() {
    let base = config(PathBuf::from("/nonexistent"));
    let cases = [
        SynthConfig {
            practices: 0,
            ..base.clone()
        },
        SynthConfig {
            patients: 5,
            ..base.clone()
        },
        SynthConfig {
            emis_share: 1.5,
            ..base.clone()
        },
        SynthConfig {
            deltas: 1000,
            ..base.clone()
        },
        SynthConfig {
            defect_rates: BTreeMap::from([(DefectKind::FloorDate, 2.0)]),
            ..base.clone()
        },
    ];
    for cfg in cases {
        assert!(
            matches!(generate(&cfg), Err(SynthError::InvalidConfig(_))),
            "{cfg:?}"
        );
    }
}

#[test]
fn deltas_carry_edits_twice_sent_rows_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SynthConfig {
        practices: 2,
        patients: 500,
        ..config(dir.path().to_path_buf())
    };
    let truth = generate_small(&cfg);
    for practice in &truth.practices {
        let (patient_spec, event_spec, medication_spec, key): (
            &TableSpec,
            &TableSpec,
            &TableSpec,
            &str,
        ) = match practice.supplier {
            Supplier::Emis => (
                &emis::tables::ADMIN_PATIENT,
                &emis::tables::CARE_RECORD_OBSERVATION,
                &emis::tables::PRESCRIBING_ISSUE_RECORD,
                "ObservationGuid",
            ),
            Supplier::Tpp => (
                &tpp::tables::SR_PATIENT,
                &tpp::tables::SR_CODE,
                &tpp::tables::SR_PRIMARY_CARE_MEDICATION,
                "RowIdentifier",
            ),
        };
        let (mut event_deletes, mut medication_deletes, mut edits, mut twice, mut out_of_order) =
            (0, 0, 0, 0, 0);
        let mut earlier_events = BTreeSet::new();
        for (k, (dir, manifest)) in deliveries(dir.path(), practice).into_iter().enumerate() {
            let events = table_file(&dir, &manifest, event_spec.name);
            let mut seen: HashMap<String, Vec<usize>> = HashMap::new();
            for i in 0..events.num_rows() {
                let id = cell(&events, key, i).unwrap();
                if is_delete(event_spec, &events, i) {
                    event_deletes += 1;
                    if practice.supplier == Supplier::Tpp {
                        assert!(
                            cell(&events, "CTV3Code", i).is_none(),
                            "removals are sparse"
                        );
                    }
                } else if k > 0 && earlier_events.contains(&id) {
                    edits += 1;
                }
                seen.entry(id).or_default().push(i);
            }
            for rows in seen.values().filter(|rows| rows.len() == 2 && k > 0) {
                twice += 1;
                if practice.supplier == Supplier::Emis {
                    let pid = ints(&events, "ProcessingId");
                    out_of_order += usize::from(pid.value(rows[0]) > pid.value(rows[1]));
                }
            }
            let medications = table_file(&dir, &manifest, medication_spec.name);
            medication_deletes += (0..medications.num_rows())
                .filter(|i| is_delete(medication_spec, &medications, *i))
                .count();
            // A patient delete arrives without deletes of the patient's other rows.
            let patients = table_file(&dir, &manifest, patient_spec.name);
            for i in (0..patients.num_rows()).filter(|i| is_delete(patient_spec, &patients, *i)) {
                let patient = cell(&patients, patient_spec.key[0], i).unwrap();
                assert!(practice.deleted_patients.contains(&patient));
                let column = event_spec.patient.unwrap();
                assert!(
                    (0..events.num_rows())
                        .all(|j| cell(&events, column, j).as_deref() != Some(&patient))
                );
            }
            earlier_events.extend(seen.into_keys());
        }
        assert!(
            event_deletes > 0 && medication_deletes > 0,
            "{}: deletes",
            practice.ods
        );
        assert!(
            edits > 0 && twice > 0,
            "{}: edits {edits}, sent twice {twice}",
            practice.ods
        );
        if practice.supplier == Supplier::Emis {
            assert!(
                out_of_order > 0,
                "EMIS files are not always in ProcessingId order"
            );
        }
    }
}

#[test]
fn rows_per_patient_are_near_five_hundred_and_rise_with_age() {
    use crate::synth::conditions::Profile;
    use crate::synth::population::Network;
    use crate::synth::record::Timeline;
    use crate::synth::sampling::{Purpose, stream};
    use crate::synth::schedule::{Schedule, day_number};

    let cfg = SynthConfig {
        practices: 1,
        patients: 2000,
        ..config(PathBuf::new())
    };
    let network = Network::plan(&cfg);
    let schedule = Schedule::new(cfg.as_of, cfg.deltas);
    let as_of = day_number(cfg.as_of);
    let plan = &network.practices[0];
    let (mut timeline, mut ids) = (Timeline::default(), 0);
    // age band (decade) → (records, event and medication rows)
    let mut bands: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for (number, record) in plan.records.iter().enumerate() {
        let rec = crate::synth::practice::patient_record(
            &network,
            plan,
            &schedule,
            record,
            number as u32,
            None,
            &mut ids,
        );
        let profile = Profile::draw(cfg.seed, rec.person, as_of);
        let mut rng = stream(cfg.seed, Purpose::Clinical, 0, number as u64);
        crate::synth::clinical::build(&rec, &profile, 6, &mut rng, &mut ids, &mut timeline);
        let band = bands
            .entry((rec.person.age_on(as_of) / 10.0) as u32 * 10)
            .or_default();
        band.0 += 1;
        band.1 += (timeline.events.len() + timeline.issues.len()) as u64;
    }
    let mean = |bands: &[(u64, u64)]| {
        let (n, rows) = bands
            .iter()
            .fold((0, 0), |(n, r), (bn, br)| (n + bn, r + br));
        rows as f64 / n as f64
    };
    let all: Vec<(u64, u64)> = bands.values().copied().collect();
    let young: Vec<(u64, u64)> = bands.range(20..40).map(|(_, v)| *v).collect();
    let old: Vec<(u64, u64)> = bands.range(70..).map(|(_, v)| *v).collect();
    assert!(
        (400.0..=650.0).contains(&mean(&all)),
        "{:.0} rows per patient",
        mean(&all)
    );
    assert!(
        mean(&old) > 3.0 * mean(&young),
        "{:.0} vs {:.0}",
        mean(&old),
        mean(&young)
    );
}
