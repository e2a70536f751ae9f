//! `phm dq` given a bad config, a missing store or a practice the store lacks:
//! usage errors (exit 2), refused before anything is read or written.

use std::fs;
use std::path::PathBuf;
use std::process::Output;

use crate::common::*;
use crate::scene::Scene;
use crate::{Case, case};

#[rustfmt::skip]
pub const CASES: &[Case] = &[
    case!("dq config with an unknown check id", 2, "dq.toml:4:9: unknown check `events.futur`", unknown_check),
    case!("dq config threshold above 100", 2, "dq.toml:2:13: check `events.future`: threshold 150 is outside 0–100 (percent)", threshold_above_100),
    case!("dq config threshold below 0", 2, "check `patients.test_patient`: threshold -1 is outside 0–100", threshold_below_0),
    case!("dq store that does not exist", 2, "store not found", missing_store),
    case!("dq practice not in the store", 2, "practice Z99999 is not in the store", unknown_practice),
    case!("dq --out is a file", 2, "phm cannot write the data-quality report here", out_is_a_file),
];

/// Runs `phm dq` on the scene's store with `extra` arguments.
fn dq(s: &Scene, store: PathBuf, extra: &[&str]) -> Output {
    let (release, out) = (s.release(), s.work().join("dq"));
    let mut args = vec![
        "dq",
        "--store",
        store.to_str().unwrap(),
        "--release",
        release.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--as-of",
        "2026-03-31",
    ];
    args.extend_from_slice(extra);
    let output = phm(&args);
    assert!(!out.join("dq.json").exists(), "a refused run wrote dq.json");
    output
}

fn with_config(s: &Scene, text: &str) -> Output {
    let path = s.work().join("dq.toml");
    fs::write(&path, text).unwrap();
    dq(s, s.store(), &["--config", path.to_str().unwrap()])
}

fn unknown_check(s: &mut Scene) -> Output {
    with_config(
        s,
        "practices = []\n\n# a typo\n[checks.\"events.futur\"]\nthreshold = 1\n",
    )
}

fn threshold_above_100(s: &mut Scene) -> Output {
    with_config(s, "[checks.\"events.future\"]\nthreshold = 150\n")
}

fn threshold_below_0(s: &mut Scene) -> Output {
    with_config(s, "[checks.\"patients.test_patient\"]\nthreshold = -1\n")
}

fn missing_store(s: &mut Scene) -> Output {
    dq(s, s.work().join("no-such-store"), &[])
}

fn unknown_practice(s: &mut Scene) -> Output {
    dq(s, s.store(), &["--practice", "Z99999"])
}

fn out_is_a_file(s: &mut Scene) -> Output {
    fs::write(
        s.work().join("dq"),
        b"a file where the report folder would go",
    )
    .unwrap();
    dq(s, s.store(), &[])
}
