//! `phm terminology import` on damaged or missing inputs, and `phm valueset
//! expand` on definitions whose paths lead out of their folder.
//!
//! Import cases damage a copy of `terminology/fixture` in the scene and check,
//! beyond the exit code and message, that no release folder was written; value
//! set cases check that nothing of the file outside the folder is printed.
//! Every name starts `term/`: `PHM_BAD_INPUT=term/` runs just these.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::*;
use crate::scene::Scene;
use crate::{Case, case};

#[rustfmt::skip]
pub const CASES: &[Case] = &[
    case!("term/truncated dm+d XML", 3, "f_amp2_3060526.xml:", truncated_dmd),
    case!("term/truncated dm+d XML says where", 3, "the file ends inside <", truncated_dmd),
    case!("term/dm+d XML with trailing garbage", 3, "text after the end of the root element <ACTUAL_MEDICINAL_PRODUCTS>", dmd_trailing_garbage),
    case!("term/missing RF2 description file", 3, "edition INT 20250701 has no sct2_Description_*Snapshot*.txt file", missing_description),
    case!("term/missing RF2 language refset file", 3, "edition GB1000000 20260506 has no der2_cRefset_Language*Snapshot*.txt file", missing_language),
    case!("term/missing RF2 association file", 3, "edition INT 20250701 has no der2_cRefset_Association*Snapshot*.txt file", missing_association),
    case!("term/RF2 row cut short", 3, "sct2_Description_UKCLSnapshot-en_GB1000000_20260506.txt:8503: byte ", rf2_row_cut_short),
    case!("term/RF2 row cut short, field count", 3, "3 fields, expected 9", rf2_row_cut_short),
    case!("term/RF2 last line without line end", 3, "the last line has no line end", rf2_no_final_line_end),
    case!("term/CTV3 map row cut short", 3, "fields, expected 9", ctv3_cut_short),
    case!("term/missing --rf2 folder", 2, "--rf2: no such folder; hint:", missing_rf2),
    case!("term/missing --dmd folder", 2, "--dmd: no such folder; hint:", missing_dmd),
    case!("term/missing --ctv3-map file", 2, "--ctv3-map: no such file; hint:", missing_ctv3_map),
    case!("term/value set path absolute", 2, "1.toml:7:21: opencodelists_csv \"/etc/passwd\" is an absolute path; hint:", valueset_absolute),
    case!("term/value set path with ..", 2, "opencodelists_csv \"../../outside/list.csv\" has a `..` component", valueset_dotdot),
    case!("term/value set symlink leaving the folder", 2, "opencodelists_csv \"list.csv\" leads out of", valueset_symlink),
];

/// A copy of the fixture terminology inputs in the scene.
fn inputs(s: &Scene) -> PathBuf {
    let dir = s.work().join("fixture");
    if !dir.exists() {
        copy_dir(&repo("terminology/fixture"), &dir);
    }
    dir
}

fn rf2_file(inputs: &Path, edition: &str, rel: &str) -> PathBuf {
    let folder = match edition {
        "INT" => "SnomedCT_InternationalRF2_PRODUCTION_20250701T120000Z",
        _ => "SnomedCT_UKClinicalRF2_PRODUCTION_20260506T000001Z",
    };
    inputs.join("rf2").join(folder).join("Snapshot").join(rel)
}

/// Imports `inputs` with (possibly missing) `rf2`, `dmd` and `ctv3` paths and
/// checks that no release was written, whatever the outcome.
fn import_paths(s: &Scene, rf2: &Path, dmd: &Path, ctv3: &Path) -> Output {
    let out = s.work().join("release-out");
    let o = phm(&[
        "terminology",
        "import",
        "--rf2",
        rf2.to_str().unwrap(),
        "--dmd",
        dmd.to_str().unwrap(),
        "--ctv3-map",
        ctv3.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    if out.exists() {
        return refused(o, "a release was written");
    }
    o
}

/// `o` turned into a failed case (exit 101, with why), without stopping the
/// suite: a check beyond the exit code and message did not hold.
fn refused(mut o: Output, why: &str) -> Output {
    use std::os::unix::process::ExitStatusExt;
    o.status = std::process::ExitStatus::from_raw(101 << 8);
    o.stderr
        .extend_from_slice(format!("\n[bad-input check] {why}\n").as_bytes());
    o
}

fn import(s: &Scene) -> Output {
    let i = inputs(s);
    import_paths(
        s,
        &i.join("rf2"),
        &i.join("dmd"),
        &i.join("ctv3/SRCtv3ToSnomed.txt"),
    )
}

fn truncated_dmd(s: &mut Scene) -> Output {
    let path = inputs(s).join("dmd/f_amp2_3060526.xml");
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    import(s)
}

fn dmd_trailing_garbage(s: &mut Scene) -> Output {
    let path = inputs(s).join("dmd/f_amp2_3060526.xml");
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(b"garbage\r\n");
    fs::write(&path, bytes).unwrap();
    import(s)
}

fn missing_description(s: &mut Scene) -> Output {
    let i = inputs(s);
    fs::remove_file(rf2_file(
        &i,
        "INT",
        "Terminology/sct2_Description_Snapshot-en_INT_20250701.txt",
    ))
    .unwrap();
    import(s)
}

fn missing_language(s: &mut Scene) -> Output {
    let i = inputs(s);
    fs::remove_file(rf2_file(
        &i,
        "UK",
        "Refset/Language/der2_cRefset_LanguageUKCLSnapshot-en_GB1000000_20260506.txt",
    ))
    .unwrap();
    import(s)
}

fn missing_association(s: &mut Scene) -> Output {
    let i = inputs(s);
    fs::remove_file(rf2_file(
        &i,
        "INT",
        "Refset/Content/der2_cRefset_AssociationSnapshot_INT_20250701.txt",
    ))
    .unwrap();
    import(s)
}

/// The UK description file cut in its last row (line 8503), after the third
/// field, keeping the line end: a download that stopped mid-row and was
/// "repaired" by an editor adding the final newline.
fn rf2_row_cut_short(s: &mut Scene) -> Output {
    let i = inputs(s);
    let path = rf2_file(
        &i,
        "UK",
        "Terminology/sct2_Description_UKCLSnapshot-en_GB1000000_20260506.txt",
    );
    let text = fs::read_to_string(&path).unwrap();
    let last = text.trim_end().rfind('\n').unwrap() + 1;
    let fields: Vec<&str> = text[last..].split('\t').collect();
    assert_eq!(text.lines().count(), 8503);
    let cut = format!("{}{}\r\n", &text[..last], fields[..3].join("\t"));
    fs::write(&path, cut).unwrap();
    import(s)
}

/// The same file cut inside its last row's final field: the field count is
/// right, only the missing line end shows the file is incomplete.
fn rf2_no_final_line_end(s: &mut Scene) -> Output {
    let i = inputs(s);
    let path = rf2_file(
        &i,
        "UK",
        "Terminology/sct2_Description_UKCLSnapshot-en_GB1000000_20260506.txt",
    );
    let text = fs::read_to_string(&path).unwrap();
    // "...\t900000000000448009\r\n" → "...\t90000000000044"
    fs::write(&path, &text[..text.len() - 6]).unwrap();
    import(s)
}

fn ctv3_cut_short(s: &mut Scene) -> Output {
    let path = inputs(s).join("ctv3/SRCtv3ToSnomed.txt");
    let text = fs::read_to_string(&path).unwrap();
    let last = text.trim_end().rfind('\n').unwrap() + 1;
    let row: Vec<&str> = text[last..].split('\t').collect();
    fs::write(
        &path,
        format!("{}{}\r\n", &text[..last], row[..5].join("\t")),
    )
    .unwrap();
    import(s)
}

fn missing_rf2(s: &mut Scene) -> Output {
    let i = inputs(s);
    import_paths(
        s,
        &s.work().join("no-rf2"),
        &i.join("dmd"),
        &i.join("ctv3/SRCtv3ToSnomed.txt"),
    )
}

fn missing_dmd(s: &mut Scene) -> Output {
    let i = inputs(s);
    import_paths(
        s,
        &i.join("rf2"),
        &s.work().join("no-dmd"),
        &i.join("ctv3/SRCtv3ToSnomed.txt"),
    )
}

fn missing_ctv3_map(s: &mut Scene) -> Output {
    let i = inputs(s);
    import_paths(
        s,
        &i.join("rf2"),
        &i.join("dmd"),
        &i.join("ctv3/no-map.txt"),
    )
}

/// A value set `X_COD` version 1 in the scene's own value set folder, defined
/// by `opencodelists_csv = rel`; expands it against the fixture release and
/// checks that nothing of the file outside the folder was printed.
fn expand_csv(s: &Scene, rel: &str) -> Output {
    let outside = s.work().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(
        outside.join("list.csv"),
        "code,term\n73211009,OUTSIDE-CONTENT\n",
    )
    .unwrap();
    let dir = s.work().join("valuesets");
    fs::create_dir_all(dir.join("X_COD")).unwrap();
    fs::write(
        dir.join("X_COD/1.toml"),
        format!(
            "id = \"X_COD\"\nversion = \"1\"\ntitle = \"t\"\nstatus = \"draft\"\nowner = \"o\"\nprovenance = \"p\"\nopencodelists_csv = \"{rel}\"\n"
        ),
    )
    .unwrap();
    let release = s.release();
    let o = phm(&[
        "valueset",
        "expand",
        "X_COD",
        "--release",
        release.to_str().unwrap(),
        "--dir",
        dir.to_str().unwrap(),
    ]);
    let text = format!("{}{}", stdout(&o), stderr(&o));
    if text.contains("OUTSIDE-CONTENT") || text.contains("root:") {
        return refused(
            o,
            "content of a file outside the value set folder was printed",
        );
    }
    o
}

fn valueset_absolute(s: &mut Scene) -> Output {
    expand_csv(s, "/etc/passwd")
}

fn valueset_dotdot(s: &mut Scene) -> Output {
    // valuesets/X_COD/../../outside/list.csv is work/outside/list.csv.
    expand_csv(s, "../../outside/list.csv")
}

fn valueset_symlink(s: &mut Scene) -> Output {
    let link = s.work().join("valuesets/X_COD/list.csv");
    fs::create_dir_all(link.parent().unwrap()).unwrap();
    fs::create_dir_all(s.work().join("outside")).unwrap();
    std::os::unix::fs::symlink(s.work().join("outside/list.csv"), &link).unwrap();
    expand_csv(s, "list.csv")
}
