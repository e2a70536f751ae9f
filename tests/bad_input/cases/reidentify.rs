//! `phm reidentify` with bad keys, practices and pseudonyms.

use std::fs;
use std::process::Output;

use crate::common::phm;
use crate::scene::Scene;
use crate::{Case, case};

#[rustfmt::skip]
pub const CASES: &[Case] = &[
    case!("reidentify: key file missing", 2, "pseudonym key file not found", key_missing),
    case!("reidentify: key file empty", 2, "the pseudonym key is empty", key_empty),
    case!("reidentify: key shorter than 32 bytes", 2, "shorter than 32", key_short),
    case!("reidentify: no key given", 2, "a pseudonym key is needed", no_key),
    case!("reidentify: practice not in the store", 2, "no such practice in the store", unknown_practice),
    case!("reidentify: pseudonym of no patient", 3, "refused: no patient of", unknown_pseudonym),
    case!("reidentify: empty purpose", 2, "--purpose is empty", empty_purpose),
];

fn reidentify(s: &Scene, practice: &str, key: Option<&str>, purpose: &str) -> Output {
    let store = s.store();
    let mut args = vec![
        "reidentify",
        "--store",
        store.to_str().unwrap(),
        "--practice",
        practice,
        "--purpose",
        purpose,
    ];
    let key_path;
    if let Some(k) = key {
        key_path = s.work().join("key");
        if k != "<absent>" {
            fs::write(&key_path, k).unwrap();
        }
        args.extend(["--key-file", key_path.to_str().unwrap()]);
    }
    args.push("P00000000000000000000000000000000");
    phm(&args)
}

const GOOD_KEY: &str = "a key of forty bytes, for the tests only\n";

fn key_missing(s: &mut Scene) -> Output {
    reidentify(s, &s.emis(), Some("<absent>"), "recall")
}

fn key_empty(s: &mut Scene) -> Output {
    reidentify(s, &s.emis(), Some("\n"), "recall")
}

fn key_short(s: &mut Scene) -> Output {
    reidentify(s, &s.emis(), Some("too short"), "recall")
}

fn no_key(s: &mut Scene) -> Output {
    reidentify(s, &s.emis(), None, "recall")
}

fn unknown_practice(s: &mut Scene) -> Output {
    reidentify(s, "Z99999", Some(GOOD_KEY), "recall")
}

fn unknown_pseudonym(s: &mut Scene) -> Output {
    reidentify(s, &s.tpp(), Some(GOOD_KEY), "recall")
}

fn empty_purpose(s: &mut Scene) -> Output {
    reidentify(s, &s.emis(), Some(GOOD_KEY), " ")
}
