//! `phm demo` and `phm synth` on a folder they cannot or must not write, and
//! the summary a newcomer reads after an ingest with nothing new.

use std::fs;
use std::process::Output;

use crate::common::*;
use crate::scene::Scene;
use crate::{Case, case};

#[rustfmt::skip]
pub const CASES: &[Case] = &[
    case!("synth into an unwritable --out", 2, "hint: --out must be a folder phm can create and write", synth_unwritable),
    case!("demo into an unwritable --dir", 2, "hint: --dir must be a folder phm can create and write", demo_unwritable),
    case!("demo over a landing zone it did not write", 2, "not a landing zone written by phm demo", demo_foreign_landing),
];

/// A path under a regular file: no one can create it, root included.
fn under_a_file(s: &Scene) -> std::path::PathBuf {
    let file = s.work().join("a-file");
    fs::write(&file, "").unwrap();
    file.join("out")
}

fn synth_unwritable(s: &mut Scene) -> Output {
    let out = under_a_file(s);
    phm(&[
        "synth",
        "--out",
        out.to_str().unwrap(),
        "--practices",
        "1",
        "--patients",
        "20",
    ])
}

fn demo_unwritable(s: &mut Scene) -> Output {
    let dir = under_a_file(s);
    phm(&[
        "demo",
        "--dir",
        dir.to_str().unwrap(),
        "--practices",
        "1",
        "--patients",
        "20",
    ])
}

/// A landing zone with no record of the demo and no ground truth: someone's
/// own deliveries. The demo must refuse, and leave every file there.
fn demo_foreign_landing(s: &mut Scene) -> Output {
    let dir = s.work().join("demo");
    fs::create_dir_all(&dir).unwrap();
    copy_dir(&s.landing(), &dir.join("landing"));
    fs::remove_file(dir.join("landing/ground_truth.json")).unwrap();
    let before = files(&dir.join("landing"));
    let out = phm(&[
        "demo",
        "--dir",
        dir.to_str().unwrap(),
        "--practices",
        "1",
        "--patients",
        "20",
    ]);
    assert_eq!(
        files(&dir.join("landing")),
        before,
        "the demo touched a landing zone it did not write"
    );
    out
}

fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        if e.path().is_dir() {
            out.extend(files(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out.sort();
    out
}
