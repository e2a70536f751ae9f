//! ECL evaluated against the imported fixture release.

use std::path::Path;

use phm::terminology::{Release, ecl, import};

fn fixture_release(tmp: &Path) -> Release {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("terminology/fixture");
    let inputs = import::Inputs {
        rf2: vec![fixture.join("rf2")],
        dmd: Some(fixture.join("dmd")),
        ctv3_map: Some(fixture.join("ctv3/SRCtv3ToSnomed.txt")),
    };
    let out = tmp.join("fixture-20260506");
    import::import(&inputs, &out).unwrap();
    Release::open(&out).unwrap()
}

fn eval(release: &Release, text: &str) -> Result<Vec<u64>, String> {
    let parsed = ecl::parse(text).map_err(|e| e.to_string())?;
    ecl::evaluate(&parsed, release, text)
        .map(|s| s.into_iter().collect())
        .map_err(|e| e.to_string())
}

#[test]
fn ecl_cases() {
    let tmp = tempfile::tempdir().unwrap();
    let release = fixture_release(tmp.path());
    // The DM_COD refset (a synthetic id) found by its preferred term.
    let dm_refset = *release
        .concepts
        .iter()
        .find(|(_, c)| c.term.as_deref() == Some("DM_COD simple reference set"))
        .unwrap()
        .0;
    let dm_members = eval(&release, &format!("^ {dm_refset}")).unwrap();
    assert_eq!(
        dm_members.len(),
        86,
        "every one of the 86 DM_COD rows in the codelist CSV"
    );
    assert!(dm_members.contains(&73211009));

    let cases: Vec<(String, Result<usize, &str>)> = vec![
        ("73211009 |Diabetes mellitus|".into(), Ok(1)),
        ("<! 138875005".into(), Ok(5)),
        ("<< 363787002 MINUS < 363787002".into(), Ok(1)),
        (format!("^ {dm_refset} AND << 404684003"), Ok(86)),
        (format!("^ {dm_refset} MINUS 73211009"), Ok(85)),
        (
            format!("(^ {dm_refset} OR 404684003) AND < 138875005"),
            Ok(87),
        ),
        ("> 73211009".into(), Ok(3)),
        ("284449005".into(), Ok(1)),
        ("<< 284449005".into(), Ok(1)),
        (
            "<< 100000000".into(),
            Err("column 4: concept 100000000 is not in release fixture-20260506"),
        ),
        ("^ 404684003".into(), Err("is not a simple refset")),
    ];
    for (text, want) in cases {
        match (eval(&release, &text), want) {
            (Ok(got), Ok(n)) => assert_eq!(got.len(), n, "{text}: {got:?}"),
            (Err(e), Err(w)) => assert!(e.contains(w), "{text}: {e}"),
            (got, want) => panic!("{text}: {got:?} vs {want:?}"),
        }
    }
}
