//! `phm synth` through the real binary: deterministic output, refused configurations.

mod common;

use common::*;

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let work = tempfile::tempdir().unwrap();
    let run = |name: &str, seed: &str| {
        let out = work.path().join(name);
        let o = phm(&[
            "synth",
            "--out",
            out.to_str().unwrap(),
            "--practices",
            "2",
            "--patients",
            "200",
            "--seed",
            seed,
            "--deltas",
            "1",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(stdout(&o).contains("defects injected"), "{}", stdout(&o));
        tree_hashes(&out)
    };
    let (a, b, c) = (run("a", "5"), run("b", "5"), run("c", "6"));
    assert!(
        a.len() > 10,
        "a network has deliveries, files and a ground truth"
    );
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn an_impossible_configuration_is_a_usage_error() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("net");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--practices", "3", "--patients", "5"],
            "at least 10 per practice",
        ),
        (
            &["--emis-share", "1.5"],
            "--emis-share 1.5 must be between 0 and 1",
        ),
    ];
    for (args, message) in cases {
        let mut all = vec!["synth", "--out", out.to_str().unwrap()];
        all.extend_from_slice(args);
        let o = phm(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(message), "{args:?}: {}", stderr(&o));
        assert!(!out.exists(), "{args:?}: nothing written");
    }
}
