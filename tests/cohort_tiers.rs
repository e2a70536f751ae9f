//! `phm cohort run` with a pseudonym key: the network tier may leave the
//! practices (pseudonyms, age bands, disclosure-controlled counts, no
//! identifier), the practice tier holds each practice's own explanations,
//! and the manifest and the audit log record the run.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use datafusion::arrow::array::{Array, BooleanArray, RecordBatch, StringArray};
use phm::output::pseudonym::Key;

const KEY: &[u8] = b"forty bytes of key material for the test";

fn strings<'a>(b: &'a RecordBatch, c: &str) -> &'a StringArray {
    b.column_by_name(c)
        .unwrap_or_else(|| panic!("no column {c}"))
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap_or_else(|| panic!("{c} is not Utf8"))
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Text of every file: CSV and JSON as they are, Parquet through its rows.
fn text_of(path: &Path) -> String {
    if path.extension().is_some_and(|e| e == "parquet") {
        let b = read_batch(path);
        let mut out = String::new();
        for c in b.columns() {
            let s = datafusion::arrow::util::display::ArrayFormatter::try_new(
                c.as_ref(),
                &Default::default(),
            )
            .unwrap();
            for i in 0..c.len() {
                out.push_str(&s.value(i).to_string());
                out.push('\n');
            }
        }
        out
    } else {
        fs::read_to_string(path).unwrap()
    }
}

/// A keyed run; `keep` also keeps the engine's identifiable folders, which
/// the checks below compare the tiers against.
fn run(store: &Path, release: &Path, out: &Path, key: &Path, keep: bool) -> std::process::Output {
    let mut args = vec![
        "cohort",
        "run",
        "DM_REG",
        "CKD_3_5",
        "--store",
        store.to_str().unwrap(),
        "--release",
        release.to_str().unwrap(),
        "--index-date",
        "2026-03-31",
        "--out",
        out.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
        "--purpose",
        "network diabetes audit",
    ];
    if keep {
        args.push("--keep-identifiable");
    }
    phm(&args)
}

#[test]
fn network_and_practice_tiers() {
    let work = tempfile::tempdir().unwrap();
    let (landing, store, release, out) = (
        work.path().join("landing"),
        work.path().join("store"),
        work.path().join("release"),
        work.path().join("out"),
    );
    network(&landing, 51, 600);
    assert!(import_fixture(&release).status.success());
    assert_eq!(ingest(&landing, &store).status.code(), Some(0));
    let key_path = work.path().join("network.key");
    fs::write(&key_path, KEY).unwrap();
    let key = Key::new(KEY, "test").unwrap();

    let o = run(&store, &release, &out, &key_path, true);
    assert!(matches!(o.status.code(), Some(0 | 3)), "{}", stderr(&o));
    assert!(stdout(&o).contains("shareable:"), "{}", stdout(&o));

    // Identifiers of the store: person keys, NHS numbers, dates of birth,
    // source row ids of events.
    let mut nhs_of: BTreeMap<(String, String), String> = BTreeMap::new(); // (person, practice) -> nhs
    let mut identifiers = BTreeSet::new();
    for part in fs::read_dir(store.join("canonical/patients")).unwrap() {
        let b = read_batch(&part.unwrap().path().join("data.parquet"));
        let (keys, numbers, status, practice) = (
            strings(&b, "person_key"),
            strings(&b, "nhs_number"),
            strings(&b, "nhs_number_status"),
            strings(&b, "practice"),
        );
        for i in 0..b.num_rows() {
            identifiers.insert(keys.value(i).to_string());
            if numbers.is_valid(i) && numbers.value(i).len() >= 10 {
                identifiers.insert(numbers.value(i).to_string());
            }
            if status.value(i) == "verified" {
                nhs_of.insert(
                    (keys.value(i).to_string(), practice.value(i).to_string()),
                    numbers.value(i).to_string(),
                );
            }
        }
    }

    for cohort in ["DM_REG", "CKD_3_5"] {
        let engine_dir = fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&format!("{cohort}@"))
            })
            .unwrap();
        let cohort_key = engine_dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let engine = read_batch(&engine_dir.join("membership.parquet"));
        let network_dir = out.join("network").join(&cohort_key);
        let membership = read_batch(&network_dir.join("membership.parquet"));
        let names: Vec<String> = membership
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(
            names,
            [
                "pseudonym",
                "age_band",
                "sex",
                "practice",
                "status",
                "outcome",
                "included",
                "deciding_rule",
                "near_miss_rule"
            ]
        );

        // One row per person registered on the index date, with the
        // pseudonym the key gives their verified NHS number.
        let (e_keys, e_practice, e_status) = (
            strings(&engine, "person_key"),
            strings(&engine, "practice"),
            strings(&engine, "status"),
        );
        let e_included = engine
            .column_by_name("included")
            .unwrap()
            .as_any()
            .downcast_ref::<BooleanArray>()
            .unwrap();
        let registered: Vec<usize> = (0..engine.num_rows())
            .filter(|i| e_practice.is_valid(*i))
            .collect();
        assert_eq!(membership.num_rows(), registered.len(), "{cohort}");
        let published: BTreeMap<String, (String, String)> = (0..membership.num_rows())
            .map(|i| {
                (
                    strings(&membership, "pseudonym").value(i).to_string(),
                    (
                        strings(&membership, "practice").value(i).to_string(),
                        strings(&membership, "status").value(i).to_string(),
                    ),
                )
            })
            .collect();
        let mut checked = 0;
        let mut truth: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for &i in &registered {
            let practice = e_practice.value(i).to_string();
            let t = truth.entry(practice.clone()).or_default();
            t.0 += u64::from(e_status.value(i) == "in_population");
            t.1 += u64::from(e_included.is_valid(i) && e_included.value(i));
            if let Some(nhs) = nhs_of.get(&(e_keys.value(i).to_string(), practice.clone())) {
                let p = key.linkable(nhs);
                assert_eq!(
                    published.get(&p),
                    Some(&(practice.clone(), e_status.value(i).to_string())),
                    "{cohort}: pseudonym of a verified person"
                );
                checked += 1;
            }
        }
        assert!(checked > 50, "{cohort}: {checked} verified persons checked");

        // Counts: each practice's included count is suppressed (1-7) or
        // rounded to 5; the network total from the unrounded sum.
        let counts = read_batch(&network_dir.join("counts.parquet"));
        let (practice, included, population) = (
            strings(&counts, "practice"),
            strings(&counts, "included"),
            strings(&counts, "in_population"),
        );
        let round = |n: u64| (n + 2) / 5 * 5;
        let mut shown = 0;
        for r in 0..counts.num_rows() {
            let p = practice.value(r);
            let (pop, inc) = if p == "ALL" {
                truth.values().fold((0, 0), |a, t| (a.0 + t.0, a.1 + t.1))
            } else {
                truth[p]
            };
            for (cell, n) in [(included.value(r), inc), (population.value(r), pop)] {
                match n {
                    1..=7 => assert_eq!(cell, "suppressed", "{cohort} {p}"),
                    _ if cell == "suppressed" => {} // secondary suppression
                    _ => {
                        assert_eq!(cell, round(n).to_string(), "{cohort} {p}");
                        shown += 1;
                    }
                }
            }
        }
        assert!(shown > 0);

        // The practice tier: each practice's own explanations only.
        for (p, _) in &truth {
            let dir = out.join("practice").join(p).join(&cohort_key);
            let expl = read_batch(&dir.join("explanations.parquet"));
            assert!(expl.schema().field_with_name("person_key").is_err());
            let practices = strings(&expl, "practice");
            assert!((0..expl.num_rows()).all(|i| practices.value(i) == p));
            assert!(dir.join("explanations.csv").exists());
        }
    }

    // No identifier in the network tier; no person key or NHS number in the
    // practice tier or the manifest.
    for f in files(&out.join("network")) {
        let text = text_of(&f);
        for id in &identifiers {
            assert!(
                !text.contains(id.as_str()),
                "{}: holds an identifier",
                f.display()
            );
        }
        assert!(!text.contains("ev_source_row_id"), "{}", f.display());
    }
    for f in files(&out.join("practice"))
        .into_iter()
        .chain([out.join("manifest.json")])
    {
        let text = text_of(&f);
        for id in &identifiers {
            assert!(
                !text.contains(id.as_str()),
                "{}: holds an identifier",
                f.display()
            );
        }
    }

    // The manifest lists every output with its hash, and the key by its id.
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["key_id"], key.id().to_string());
    assert_eq!(manifest["disclosure"]["threshold"], 7);
    let listed: BTreeMap<String, String> = manifest["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut on_disk = BTreeMap::new();
    for tier in ["network", "practice"] {
        for f in files(&out.join(tier)) {
            on_disk.insert(
                f.strip_prefix(&out).unwrap().to_string_lossy().into_owned(),
                phm::source::manifest::sha256_file(&f).unwrap(),
            );
        }
    }
    assert_eq!(listed, on_disk);
    assert!(
        !fs::read_to_string(out.join("manifest.json"))
            .unwrap()
            .contains("forty bytes")
    );
    let audit = phm::output::audit::read(&store).unwrap();
    assert_eq!(audit.last().unwrap().action, "cohort run");
    assert_eq!(
        audit.last().unwrap().purpose.as_deref(),
        Some("network diabetes audit")
    );

    // A clinician asks why a person is (not) in DM_REG by pseudonym: the
    // narrative names them by it, and the request is audited.
    let (&(ref person, ref practice), nhs) = nhs_of.iter().next().map(|(k, v)| (k, v)).unwrap();
    let pseudonym = key.linkable(nhs);
    let o = phm(&[
        "cohort",
        "explain",
        "DM_REG",
        "--patient",
        &pseudonym,
        "--store",
        store.to_str().unwrap(),
        "--release",
        release.to_str().unwrap(),
        "--index-date",
        "2026-03-31",
        "--key-file",
        key_path.to_str().unwrap(),
        "--purpose",
        "query from the practice",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains(&pseudonym), "{}", stdout(&o));
    assert!(!stdout(&o).contains(person.as_str()), "{}", stdout(&o));
    let audit = phm::output::audit::read(&store).unwrap();
    let last = audit.last().unwrap();
    assert_eq!(
        (last.action.as_str(), last.practice.as_deref()),
        ("cohort explain", Some(practice.as_str()))
    );

    // The same inputs give the same run id and the same pseudonymised files;
    // another key gives other pseudonyms.
    let again = work.path().join("again");
    assert!(matches!(
        run(&store, &release, &again, &key_path, false)
            .status
            .code(),
        Some(0 | 3)
    ));
    let m2: serde_json::Value =
        serde_json::from_slice(&fs::read(again.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["run_id"], m2["run_id"]);
    assert_eq!(manifest["outputs"], m2["outputs"]);
    // Without --keep-identifiable, a keyed run leaves only the two tiers,
    // the manifest and the marker: no folder naming persons by store key.
    let mut top: Vec<String> = fs::read_dir(&again)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["manifest.json", "network", "practice", "run.json"]);
    // Asking such a run by store person key is refused with the way forward.
    let o = phm(&[
        "cohort",
        "explain",
        "DM_REG",
        "--patient",
        person.as_str(),
        "--run",
        again.to_str().unwrap(),
        "--release",
        release.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("did not keep its identifiable per-cohort folders")
            && stderr(&o).contains("--key-file"),
        "{}",
        stderr(&o)
    );
    let other_key = work.path().join("other.key");
    fs::write(&other_key, b"another forty bytes of key material here").unwrap();
    let other = work.path().join("other");
    assert!(matches!(
        run(&store, &release, &other, &other_key, false)
            .status
            .code(),
        Some(0 | 3)
    ));
    let pseudonyms = |run: &Path| -> BTreeSet<String> {
        files(&run.join("network"))
            .iter()
            .filter(|f| f.ends_with("membership.parquet"))
            .flat_map(|f| {
                let b = read_batch(f);
                let s = strings(&b, "pseudonym");
                (0..s.len())
                    .map(|i| s.value(i).to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let (a, b) = (pseudonyms(&out), pseudonyms(&other));
    assert!(!a.is_empty());
    assert!(a.is_disjoint(&b), "two keys gave shared pseudonyms");
}
