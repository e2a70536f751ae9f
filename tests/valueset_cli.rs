//! `phm valueset list|expand|diff` run as the real binary against the imported
//! fixture release, with expected counts and differences computed here from the
//! codelist CSVs independently of phm's own readers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

use phm::terminology::{Release, import};
use phm::valueset::{Catalogue, expand};

mod common;
use common::{phm, repo};

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Imports the checked-in fixture into `tmp`; returns the release folder.
fn fixture_release(tmp: &Path) -> PathBuf {
    let fixture = repo("terminology/fixture");
    let inputs = import::Inputs {
        rf2: vec![fixture.join("rf2")],
        dmd: Some(fixture.join("dmd")),
        ctv3_map: Some(fixture.join("ctv3/SRCtv3ToSnomed.txt")),
    };
    let out = tmp.join("fixture-20260506");
    import::import(&inputs, &out).unwrap();
    out
}

/// The records of a CSV file: a minimal RFC 4180 reader (quoted fields may
/// hold commas, doubled quotes and line breaks).
fn csv_records(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let (mut records, mut fields, mut field) = (Vec::new(), Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => fields.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                fields.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut fields));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !fields.is_empty() {
        fields.push(field);
        records.push(fields);
    }
    assert_eq!(records[0][..2], ["code", "term"], "{}", path.display());
    records
}

/// code → term of an OpenCodelists CSV.
fn csv_codes(path: &Path) -> BTreeMap<u64, String> {
    csv_records(path)[1..]
        .iter()
        .map(|r| (r[0].parse().unwrap(), r[1].clone()))
        .collect()
}

/// Data rows of a CSV file (records after the header).
fn data_rows(path: &Path) -> usize {
    csv_records(path).len() - 1
}

#[test]
fn list_shows_every_file_sorted() {
    let mut want = Vec::new();
    for dir in std::fs::read_dir(repo("valuesets")).unwrap() {
        let dir = dir.unwrap().path();
        if dir.is_dir() {
            for file in std::fs::read_dir(&dir).unwrap() {
                let file = file.unwrap().path();
                if file.extension().is_none_or(|e| e != "toml") {
                    continue; // the codelist CSVs beside the definitions
                }
                let id = dir.file_name().unwrap().to_str().unwrap().to_string();
                let version = file.file_stem().unwrap().to_str().unwrap().to_string();
                want.push((id, version));
            }
        }
    }
    want.sort();
    // Versions of one id sort by date here: every id with several has dated versions.
    let out = stdout(&phm(&["valueset", "list"]));
    let got: Vec<(String, String)> = out
        .lines()
        .skip(1)
        .map(|l| {
            let mut w = l.split_whitespace();
            (w.next().unwrap().into(), w.next().unwrap().into())
        })
        .collect();
    assert_eq!(got, want);
    assert!(out.contains("DM_COD                   20250627     approved"));
    assert!(out.contains("DOAC                     2020-10-05   reviewed"));
}

/// Each value set folder holds a copy of its OpenCodelists CSV (a definition
/// may not name a file outside its folder); every copy must be byte for byte
/// the codelist in `fixtures/codelists/` it was taken from.
#[test]
fn codelist_copies_match_the_fixture_codelists() {
    let mut copies = 0;
    for dir in std::fs::read_dir(repo("valuesets")).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_none_or(|e| e != "csv") {
                continue;
            }
            let name = file.file_name().unwrap().to_str().unwrap();
            let source = [
                repo("fixtures/codelists").join(name),
                repo("fixtures/codelists/older-versions").join(name),
            ]
            .into_iter()
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("{}: no codelist of that name", file.display()));
            assert!(
                std::fs::read(&file).unwrap() == std::fs::read(&source).unwrap(),
                "{} differs from {}; run python3 valuesets/generate.py",
                file.display(),
                source.display()
            );
            copies += 1;
        }
    }
    assert_eq!(
        copies, 43,
        "one CSV per shipped OpenCodelists value set version"
    );
}

#[test]
fn expand_and_diff_against_the_fixture_release() {
    let tmp = tempfile::tempdir().unwrap();
    let release = fixture_release(tmp.path());
    let release = release.to_str().unwrap();
    let current = repo("fixtures/codelists/nhsd-primary-care-domain-refsets-dm_cod.csv");
    let older = repo(
        "fixtures/codelists/older-versions/nhsd-primary-care-domain-refsets-dm_cod@20200812.csv",
    );

    // Table on stdout: a header, one line per code, the summary with the hash.
    let out = stdout(&phm(&[
        "valueset",
        "expand",
        "DM_COD@20250627",
        "--release",
        release,
    ]));
    let rows = out
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .count();
    assert_eq!(rows, data_rows(&current));
    let summary = out.lines().last().unwrap();
    assert!(
        summary.starts_with(&format!(
            "DM_COD@20250627 against release fixture-20260506: {rows} codes, sha256 "
        )),
        "{summary}"
    );
    let hash = summary.rsplit(' ').next().unwrap().to_string();
    assert_eq!(hash.len(), 64);

    // The latest version by default; CSV output; the same hash.
    let csv = tmp.path().join("dm.csv");
    let out = stdout(&phm(&[
        "valueset",
        "expand",
        "DM_COD",
        "--release",
        release,
        "--out",
        csv.to_str().unwrap(),
    ]));
    assert!(out.contains(&hash), "{out}");
    let written = std::fs::read_to_string(&csv).unwrap();
    assert!(written.starts_with("code,term,active,how_included\n"));
    assert_eq!(written.lines().count(), rows + 1);

    // Another version, another hash.
    let out = stdout(&phm(&[
        "valueset",
        "expand",
        "DM_COD@20200812",
        "--release",
        release,
    ]));
    assert!(!out.contains(&hash));

    // diff = the set differences of the two CSVs, with or without the release.
    let (a, b) = (csv_codes(&older), csv_codes(&current));
    let added: BTreeSet<u64> = b.keys().filter(|c| !a.contains_key(c)).copied().collect();
    let removed: BTreeSet<u64> = a.keys().filter(|c| !b.contains_key(c)).copied().collect();
    assert!(!added.is_empty() && !removed.is_empty());
    for extra in [&["--release", release][..], &[][..]] {
        let mut args = vec!["valueset", "diff", "DM_COD@20200812", "DM_COD@20250627"];
        args.extend_from_slice(extra);
        let out = stdout(&phm(&args));
        let codes = |sign: &str| -> Vec<u64> {
            out.lines()
                .filter_map(|l| l.strip_prefix(sign))
                .map(|l| l.split('\t').next().unwrap().parse().unwrap())
                .collect()
        };
        let (got_added, got_removed) = (codes("+\t"), codes("-\t"));
        assert_eq!(got_added, added.iter().copied().collect::<Vec<_>>());
        assert_eq!(got_removed, removed.iter().copied().collect::<Vec<_>>());
        let first = out.lines().next().unwrap();
        assert!(
            first.contains(&format!("{} added, {} removed", added.len(), removed.len())),
            "{first}"
        );
    }
}

#[test]
fn every_shipped_value_set_expands_non_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let release = Release::open(&fixture_release(tmp.path())).unwrap();
    let catalogue = Catalogue::load(&[repo("valuesets")]).unwrap();
    let mut seen = 0;
    for dir in std::fs::read_dir(repo("valuesets")).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_none_or(|e| e != "toml") {
                continue; // the codelist CSVs beside the definitions
            }
            let key = format!(
                "{}@{}",
                dir.file_name().unwrap().to_str().unwrap(),
                file.file_stem().unwrap().to_str().unwrap()
            );
            let set = catalogue.get(&key).unwrap();
            let expansion = expand(&catalogue, set, &release).unwrap();
            assert!(!expansion.rows.is_empty(), "{key}");
            seen += 1;
        }
    }
    assert_eq!(seen, catalogue.iter().count());
    assert!(seen >= 43, "{seen}");
}

#[test]
fn errors_have_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vs");
    std::fs::create_dir_all(dir.join("BAD")).unwrap();
    std::fs::write(
        dir.join("BAD/1.toml"),
        "id = \"BAD\"\nversion = \"1\"\ntitle = \"t\"\nstatus = \"draft\"\nowner = \"o\"\nprovenance = \"p\"\ncodes = [73211009]\nnotes = \"x\"\n",
    )
    .unwrap();
    let dir = dir.to_str().unwrap();
    let cases: [(&[&str], u8, &str); 4] = [
        (
            &["valueset", "list", "--dir", dir],
            2,
            "BAD/1.toml:8:1: unknown field `notes`",
        ),
        (
            &["valueset", "expand", "NOPE", "--release", "missing"],
            2,
            "value set NOPE not found",
        ),
        (
            &["valueset", "expand", "DM_COD", "--release", "missing"],
            2,
            "missing: not a compiled release",
        ),
        (
            &["valueset", "diff", "DM_COD@20200812", "DM_COD@1"],
            2,
            "versions of DM_COD: 20200812, 20210127, 20250627",
        ),
    ];
    for (args, code, message) in cases {
        let o = phm(args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code as i32), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

/// Concept id → active, from one RF2 concept file.
fn concept_activity(path: &Path) -> BTreeMap<String, bool> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), f[2] == "1")
        })
        .collect()
}

#[test]
fn one_version_diffed_across_two_releases() {
    let tmp = tempfile::tempdir().unwrap();
    let full = fixture_release(tmp.path());
    let rf2 = repo("terminology/fixture/rf2");
    let int_dir = rf2.join("SnomedCT_InternationalRF2_PRODUCTION_20250701T120000Z");
    let int_only = tmp.path().join("int-20250701");
    let o = phm(&[
        "terminology",
        "import",
        "--rf2",
        int_dir.to_str().unwrap(),
        "--out",
        int_only.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sets = tmp.path().join("valuesets");
    std::fs::create_dir_all(sets.join("FINDINGS")).unwrap();
    std::fs::write(
        sets.join("FINDINGS/1.toml"),
        "id = \"FINDINGS\"\nversion = \"1\"\ntitle = \"Clinical findings\"\nstatus = \"draft\"\nowner = \"test\"\nprovenance = \"test\"\necl = \"<< 404684003 |Clinical finding|\"\n",
    )
    .unwrap();
    let out = phm(&[
        "valueset",
        "diff",
        "FINDINGS@1",
        "--dir",
        sets.to_str().unwrap(),
        "--release",
        int_only.to_str().unwrap(),
        "--release",
        full.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    let removed: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("-\t"))
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    let added = text.lines().filter(|l| l.starts_with("+\t")).count();

    // Removed: exactly the concepts active in the International file and made
    // inactive by the UK edition.
    let int = concept_activity(
        &int_dir.join("Snapshot/Terminology/sct2_Concept_Snapshot_INT_20250701.txt"),
    );
    let uk = concept_activity(
        &rf2.join("SnomedCT_UKClinicalRF2_PRODUCTION_20260506T000001Z/Snapshot/Terminology/sct2_Concept_UKCLSnapshot_GB1000000_20260506.txt"),
    );
    let inactivated: BTreeSet<String> = uk
        .iter()
        .filter(|(id, active)| !**active && int.get(*id) == Some(&true))
        .map(|(id, _)| id.clone())
        .collect();
    assert!(!inactivated.is_empty());
    assert_eq!(removed, inactivated);
    assert!(added > 0, "the UK edition adds findings");
    assert!(
        text.contains("(release int-20250701 -> fixture-20260506)"),
        "{text}"
    );
}
