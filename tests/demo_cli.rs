//! `phm demo`, the README's first command, on a small network: it builds the
//! release, synthesises, ingests, runs every shipped cohort, shows the
//! practice without prescribing as unavailable (not zero), and a rerun reuses
//! what is there and prints the same table.

mod common;

#[test]
fn demo_runs_end_to_end_and_reruns_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let args = [
        "demo",
        "--dir",
        dir.to_str().unwrap(),
        "--practices",
        "3",
        "--patients",
        "900",
    ];
    let first = common::phm(&args);
    assert_eq!(first.status.code(), Some(0), "{}", common::stderr(&first));
    let text = common::stdout(&first);

    let cohorts: Vec<String> = std::fs::read_dir(common::repo("cohorts"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let header = text
        .lines()
        .find(|l| l.starts_with("practice"))
        .unwrap_or_else(|| panic!("no table in\n{text}"));
    for id in &cohorts {
        assert!(
            header.split_whitespace().any(|h| h == id),
            "{id} missing from {header}"
        );
        assert!(
            dir.join(format!("out/{id}@2025.1/membership.parquet"))
                .is_file(),
            "{id}"
        );
    }
    // Three practice rows and the network row; the last practice delivered no
    // prescribing, so the medication cohorts say unavailable for it.
    let rows: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("practice"))
        .skip(1)
        .take(4)
        .collect();
    assert_eq!(rows.len(), 4, "{text}");
    assert!(rows[3].starts_with("network"), "{text}");
    let unavailable: Vec<&&str> = rows.iter().filter(|r| r.contains("unavailable")).collect();
    assert_eq!(unavailable.len(), 1, "{text}");
    let column = |name: &str| header.split_whitespace().position(|h| h == name).unwrap();
    let cells: Vec<&str> = unavailable[0].split_whitespace().collect();
    assert_eq!(cells[column("AF_NO_DOAC")], "unavailable", "{text}");
    assert_eq!(cells[column("MEDRVW_DUE")], "unavailable", "{text}");
    assert_ne!(cells[column("DM_REG")], "unavailable", "{text}");
    assert!(text.contains("unknown, not zero"), "{text}");
    assert!(
        text.contains("Example explanation:\nDM_REG@2025.1"),
        "{text}"
    );
    assert!(text.contains("Included"), "{text}");

    // A rerun reuses the release and landing zone; ingest is a no-op.
    let second = common::phm(&args);
    assert_eq!(second.status.code(), Some(0), "{}", common::stderr(&second));
    let err = common::stderr(&second);
    assert!(
        !err.contains("synthesising") && !err.contains("building the fixture"),
        "{err}"
    );
    assert_eq!(common::stdout(&second), text);
}
