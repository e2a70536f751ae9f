//! `phm terminology fixture` and `phm terminology import`, run as the real binary.

use std::path::{Path, PathBuf};

use phm::terminology::Release;
use phm::terminology::rf2::Kind;

mod common;
use common::{import_fixture, phm, repo};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn checked_in_fixture_matches_the_generator() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("fixture");
    let o = phm(&["terminology", "fixture", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut generated = Vec::new();
    files(&out, &mut generated);
    assert_eq!(generated.len(), 16);
    for path in generated {
        let rel = path.strip_prefix(&out).unwrap();
        let checked_in = repo("terminology/fixture").join(rel);
        let (a, b) = (
            std::fs::read(&path).unwrap(),
            std::fs::read(&checked_in).unwrap_or_default(),
        );
        assert!(
            a == b,
            "{} differs from the generator; run `phm terminology fixture`",
            rel.display()
        );
    }
}

#[test]
fn imports_the_fixture() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("fixture-20260506");
    let o = import_fixture(&out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let release = Release::open(&out).unwrap();
    let m = &release.manifest;
    assert_eq!(m.release_id, "fixture-20260506");
    assert_eq!(m.inputs.len(), 15, "11 RF2 files, 3 dm+d files, 1 CTV3 map");
    assert!(m.inputs.iter().all(|i| i.sha256.len() == 64));
    // Rows per input file, counted here from the files: data lines for the
    // tab-separated files, record elements for dm+d; each printed in the summary.
    let summary = String::from_utf8_lossy(&o.stdout);
    for input in &m.inputs {
        let text = std::fs::read_to_string(&input.path).unwrap();
        let want = match input.kind.as_str() {
            "Dmd" => ["<VTM>", "<VMP>", "<AMP>"]
                .iter()
                .map(|tag| text.matches(tag).count())
                .sum::<usize>() as u64,
            _ => text.lines().skip(1).filter(|l| !l.is_empty()).count() as u64,
        };
        assert_eq!(input.rows, want, "{}", input.path);
        let line = format!("{:<16} {:>10} rows  {}", input.kind, want, input.path);
        assert!(summary.contains(&line), "{line:?} not in\n{summary}");
    }
    let editions: Vec<(&str, &str)> = m
        .editions
        .iter()
        .map(|e| (e.namespace.as_str(), e.date.as_str()))
        .collect();
    assert_eq!(editions, [("GB1000000", "20260506"), ("INT", "20250701")]);
    // Expected counts come from the input files themselves, not from the importer.
    let rows = |t: &str| m.rows[t];
    let rf2 = repo("terminology/fixture/rf2");
    assert_eq!(rows("concepts"), latest_rows(&rf2, "sct2_Concept_", false));
    assert_eq!(
        rows("refset_members"),
        latest_rows(&rf2, "der2_Refset_Simple", true)
    );
    assert_eq!(
        rows("history"),
        latest_rows(&rf2, "der2_cRefset_Association", true)
    );
    let dmd = |file: &str, tag: &str| {
        let text = std::fs::read_to_string(repo("terminology/fixture/dmd").join(file)).unwrap();
        text.matches(&format!("<{tag}>")).count() as u64
    };
    assert_eq!(rows("dmd_vtm"), dmd("f_vtm2_3060526.xml", "VTM"));
    assert_eq!(rows("dmd_vmp"), dmd("f_vmp2_3060526.xml", "VMP"));
    assert_eq!(rows("dmd_amp"), dmd("f_amp2_3060526.xml", "AMP"));
    let map = std::fs::read_to_string(repo("terminology/fixture/ctv3/SRCtv3ToSnomed.txt")).unwrap();
    assert_eq!(
        rows("ctv3_map"),
        map.lines().skip(1).filter(|l| !l.trim().is_empty()).count() as u64
    );
    assert_eq!(rows("descriptions"), 2 * rows("concepts"));

    // Diabetes mellitus (73211009) sits under the DM_COD grouping, under clinical finding.
    assert!(release.ancestors[&73211009].contains(&404684003));
    assert!(release.ancestors[&73211009].contains(&138875005));
    assert_eq!(release.term(73211009), Some("Diabetes mellitus"));
    // Active in INT 20200131, inactive in the UK edition 20260506: the later row wins,
    // and the INT IS-A row is superseded by its inactive UK version.
    assert_eq!(release.is_active(284449005), Some(false));
    assert!(!release.ancestors.contains_key(&284449005));
    assert_eq!(release.history[&284449005][0].association, "REPLACED BY");
    // dm+d: an antibacterial VMP with its previous code.
    assert_eq!(release.vpid_prev.get(&36040111000001105), Some(&134560000));
    assert_eq!(release.history[&134560000][0].association, "SAME AS");
}

/// Components in RF2 files whose name starts with `prefix`, counting each id once
/// at its latest effectiveTime (and only if active, when asked).
fn latest_rows(dir: &Path, prefix: &str, active_only: bool) -> u64 {
    let mut all = Vec::new();
    files(dir, &mut all);
    let mut latest: std::collections::HashMap<String, (String, bool)> = Default::default();
    for path in all
        .iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
    {
        let text = std::fs::read_to_string(path).unwrap();
        for line in text.lines().skip(1).filter(|l| !l.is_empty()) {
            let f: Vec<&str> = line.split('\t').collect();
            let newer = latest.get(f[0]).is_none_or(|(t, _)| f[1] >= t.as_str());
            if newer {
                latest.insert(f[0].to_string(), (f[1].to_string(), f[2] == "1"));
            }
        }
    }
    latest
        .values()
        .filter(|(_, active)| *active || !active_only)
        .count() as u64
}

#[test]
fn refuses_to_overwrite_a_release() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("r1");
    std::fs::create_dir(&out).unwrap();
    let o = import_fixture(&out);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists; hint:"));
}

const CONCEPT_HEADER: &str = "id\teffectiveTime\tactive\tmoduleId\tdefinitionStatusId";
const REL_HEADER: &str = "id\teffectiveTime\tactive\tmoduleId\tsourceId\tdestinationId\trelationshipGroup\ttypeId\tcharacteristicTypeId\tmodifierId";

fn rf2_error(concepts: &str, relationships: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rf2/Snapshot/Terminology");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("sct2_Concept_Snapshot_INT_20250701.txt"), concepts).unwrap();
    std::fs::write(
        dir.join("sct2_Relationship_Snapshot_INT_20250701.txt"),
        relationships,
    )
    .unwrap();
    // The other files a snapshot needs, with no rows.
    for (name, kind) in [
        (
            "sct2_Description_Snapshot-en_INT_20250701.txt",
            Kind::Description,
        ),
        (
            "der2_cRefset_LanguageSnapshot-en_INT_20250701.txt",
            Kind::Language,
        ),
        (
            "der2_cRefset_AssociationSnapshot_INT_20250701.txt",
            Kind::Association,
        ),
    ] {
        std::fs::write(dir.join(name), format!("{}\r\n", kind.header())).unwrap();
    }
    let o = phm(&[
        "terminology",
        "import",
        "--rf2",
        tmp.path().join("rf2").to_str().unwrap(),
        "--out",
        tmp.path().join("out").to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!tmp.path().join("out").exists());
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn concept(id: u64) -> String {
    format!("{id}\t20020131\t1\t900000000000207008\t900000000000074008\n")
}

fn isa(id: &str, child: u64, parent: u64) -> String {
    format!(
        "{id}\t20020131\t1\t900000000000207008\t{child}\t{parent}\t0\t116680003\t900000000000011006\t900000000000451002\n"
    )
}

#[test]
fn rf2_errors_name_where() {
    let concepts = format!(
        "{CONCEPT_HEADER}\n{}{}{}",
        concept(138875005),
        concept(404684003),
        concept(73211009)
    );
    // Wrong header: the file and the expected header are named.
    let err = rf2_error("id\teffectiveTime\n", &format!("{REL_HEADER}\n"));
    assert!(
        err.contains("sct2_Concept_Snapshot_INT_20250701.txt: header is"),
        "{err}"
    );
    assert!(err.contains("definitionStatusId"), "{err}");
    // A bad check digit: file, line and id.
    let rels = format!(
        "{REL_HEADER}\n{}{}",
        isa("100022", 404684003, 138875005),
        isa("100022", 73211009, 404684004)
    );
    let err = rf2_error(&concepts, &rels);
    assert!(
        err.contains(
            "sct2_Relationship_Snapshot_INT_20250701.txt:3: destinationId \"404684004\": Verhoeff"
        ),
        "{err}"
    );
    // A cycle is named.
    let rels = format!(
        "{REL_HEADER}\n{}{}{}",
        isa("100022", 404684003, 138875005),
        isa("101021", 73211009, 404684003),
        isa("102025", 404684003, 73211009)
    );
    let err = rf2_error(&concepts, &rels);
    assert!(err.contains("IS-A cycle: "), "{err}");
    assert!(
        err.contains("73211009") && err.contains("404684003"),
        "{err}"
    );
}
