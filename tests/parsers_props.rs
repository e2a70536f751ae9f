//! Property tests for the parsers that take outside text: RF2 rows, ECL, value
//! set TOML and cohort TOML.
//!
//! On arbitrary input, and on valid inputs with random damage (a span deleted,
//! text inserted), each parser returns a value or an error and never panics.
//! Where the form can be written back, generated valid input round-trips: RF2
//! concept rows written as a file read back to the same concepts, and an ECL
//! expression printed and parsed again is the same expression (columns aside).
//!
//! Deterministic (a fixed seed, no persistence files) and small by default, so
//! the test runs in seconds in debug; `PROPTEST_CASES=5000` for a longer hunt.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use phm::terminology::ecl::{self, Binary, Ecl, Focus, Op};
use phm::terminology::rf2::{Kind, Rf2File, Snapshot};
use phm::terminology::sctid;
use phm::valueset::{Catalogue, definition};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(128),
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(20260506),
        ..ProptestConfig::default()
    }
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `text` with the characters in `at..at + len` replaced by `insert` (both
/// ends taken modulo the length, on character boundaries).
fn damage(text: &str, at: usize, len: usize, insert: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let start = at % (chars.len() + 1);
    let end = (start + len).min(chars.len());
    chars[..start]
        .iter()
        .chain(insert.chars().collect::<Vec<_>>().iter())
        .chain(chars[end..].iter())
        .collect()
}

/// Text that looks enough like the formats to get past their first checks.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("\t".to_string()),
        Just("\n".to_string()),
        Just("\r\n".to_string()),
        Just("\"".to_string()),
        Just("=".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("{".to_string()),
        Just("..".to_string()),
        Just("/".to_string()),
        "[0-9]{1,20}",
        "[a-z_]{1,12}",
        "\\PC{0,8}",
    ]
}

// ---------------------------------------------------------------- RF2 ------

fn rf2_load(kind: Kind, text: &str) -> Result<Snapshot, phm::terminology::Error> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sct2_Concept_Snapshot_INT_20250701.txt");
    std::fs::write(&path, text).unwrap();
    Snapshot::load(&[Rf2File {
        kind,
        path,
        namespace: "INT".into(),
        date: "20250701".into(),
    }])
}

const KINDS: [Kind; 6] = [
    Kind::Concept,
    Kind::Description,
    Kind::Relationship,
    Kind::SimpleRefset,
    Kind::Association,
    Kind::Language,
];

/// One RF2 row of `kind` made of valid-looking fields.
fn rf2_row(kind: Kind) -> impl Strategy<Value = String> {
    let columns = kind.header().split('\t').count();
    prop::collection::vec(
        prop_oneof![
            Just("900000000000207008".to_string()),
            Just("138875005".to_string()),
            Just("20250701".to_string()),
            Just("1".to_string()),
            Just("0".to_string()),
            Just(String::new()),
            "[0-9]{1,19}",
            "\\PC{0,6}",
        ],
        columns - 1..=columns + 1,
    )
    .prop_map(|f| f.join("\t"))
}

proptest! {
    #![proptest_config(config())]

    /// Any bytes after a correct header: an error or rows, never a panic.
    #[test]
    fn rf2_any_bytes(kind in 0usize..6, body in prop::collection::vec(any::<u8>(), 0..300)) {
        let kind = KINDS[kind];
        let mut text = format!("{}\r\n", kind.header()).into_bytes();
        text.extend(body);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        std::fs::write(&path, text).unwrap();
        let _ = Snapshot::load(&[Rf2File { kind, path, namespace: "INT".into(), date: "20250701".into() }]);
    }

    /// Rows of plausible fields, damaged or not: no panic.
    #[test]
    fn rf2_rows_never_panic(
        (kind, rows) in (0usize..6).prop_flat_map(|k| (Just(KINDS[k]), prop::collection::vec(rf2_row(KINDS[k]), 0..8))),
        at in any::<usize>(), len in 0usize..12, insert in fragment(),
    ) {
        let mut text = format!("{}\r\n", kind.header());
        for row in &rows {
            text.push_str(row);
            text.push_str("\r\n");
        }
        let _ = rf2_load(kind, &damage(&text, at, len, &insert));
    }

    /// Concept rows written as RF2 read back as the same concepts; a file cut
    /// anywhere short of its end is an error, never fewer concepts.
    #[test]
    fn rf2_concepts_round_trip(
        concepts in prop::collection::vec((1u64..10_000_000, 20020131u32..20260506, any::<bool>()), 1..20),
        cut in any::<usize>(),
    ) {
        let mut want = HashMap::new();
        let mut text = format!("{}\r\n", Kind::Concept.header());
        for (i, (item, effective, active)) in concepts.iter().enumerate() {
            // Distinct ids: the index is part of the item identifier.
            let id = sctid::build(item * 100 + i as u64, None, "00");
            text.push_str(&format!(
                "{id}\t{effective}\t{}\t900000000000207008\t900000000000074008\r\n",
                u8::from(*active)
            ));
            want.insert(id, (*effective, *active));
        }
        let snap = rf2_load(Kind::Concept, &text).unwrap();
        let got: HashMap<u64, (u32, bool)> = snap
            .concepts
            .iter()
            .map(|(id, c)| (*id, (c.effective, c.active)))
            .collect();
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(snap.concepts.values().filter(|c| c.module == 900000000000207008).count(), want.len());

        // Cut after the header line, before the last byte, anywhere but at a
        // line end (a file cut exactly between rows reads as a shorter whole
        // file: RF2 carries no row count to tell): must be refused.
        let header = Kind::Concept.header().len() + 2;
        let at = header + cut % (text.len() - header);
        let cut_text = &text[..at];
        if at > header && !cut_text.ends_with('\n') {
            prop_assert!(rf2_load(Kind::Concept, cut_text).is_err(), "{:?}", cut_text);
        }
    }
}

// ---------------------------------------------------------------- ECL ------

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::SelfOnly),
        Just(Op::Descendants),
        Just(Op::DescendantsOrSelf),
        Just(Op::Children),
        Just(Op::Ancestors),
        Just(Op::AncestorsOrSelf),
        Just(Op::Parents),
    ]
}

fn leaf() -> impl Strategy<Value = Ecl> {
    let focus = prop_oneof![
        (1000u64..100_000_000).prop_map(|item| Focus::Concept {
            id: sctid::build(item, None, "00"),
            column: 0
        }),
        Just(Focus::Any),
    ];
    (op(), any::<bool>(), focus).prop_map(|(op, member_of, focus)| Ecl::Sub {
        op,
        member_of,
        focus,
    })
}

/// Expressions of the shape the parser builds: a left-folded chain of one
/// operator whose operands are sub-expressions, nested through parentheses.
fn expression() -> impl Strategy<Value = Ecl> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        let sub = prop_oneof![
            leaf(),
            (op(), any::<bool>(), inner).prop_map(|(op, member_of, e)| Ecl::Sub {
                op,
                member_of,
                focus: Focus::Nested(Box::new(e)),
            }),
        ];
        let binary = prop_oneof![Just(Binary::And), Just(Binary::Or), Just(Binary::Minus)];
        (binary, prop::collection::vec(sub, 1..4)).prop_map(|(b, subs)| {
            let mut subs = subs.into_iter();
            let first = subs.next().expect("at least one");
            subs.fold(first, |l, r| Ecl::Binary(b, Box::new(l), Box::new(r)))
        })
    })
}

fn print(e: &Ecl) -> String {
    match e {
        Ecl::Sub {
            op,
            member_of,
            focus,
        } => {
            let op = match op {
                Op::SelfOnly => "",
                Op::Descendants => "< ",
                Op::DescendantsOrSelf => "<< ",
                Op::Children => "<! ",
                Op::Ancestors => "> ",
                Op::AncestorsOrSelf => ">> ",
                Op::Parents => ">! ",
            };
            let member = if *member_of { "^ " } else { "" };
            let focus = match focus {
                Focus::Concept { id, .. } => format!("{id} |a term|"),
                Focus::Any => "*".to_string(),
                Focus::Nested(e) => format!("( {} )", print(e)),
            };
            format!("{op}{member}{focus}")
        }
        Ecl::Binary(b, l, r) => {
            let b = match b {
                Binary::And => "AND",
                Binary::Or => "or",
                Binary::Minus => "MINUS",
            };
            format!("{} {b} /* c */ {}", print(l), print(r))
        }
    }
}

/// The expression with every column set to 0.
fn without_columns(e: &Ecl) -> Ecl {
    match e {
        Ecl::Sub {
            op,
            member_of,
            focus,
        } => Ecl::Sub {
            op: *op,
            member_of: *member_of,
            focus: match focus {
                Focus::Concept { id, .. } => Focus::Concept { id: *id, column: 0 },
                Focus::Any => Focus::Any,
                Focus::Nested(e) => Focus::Nested(Box::new(without_columns(e))),
            },
        },
        Ecl::Binary(b, l, r) => Ecl::Binary(
            *b,
            Box::new(without_columns(l)),
            Box::new(without_columns(r)),
        ),
    }
}

fn ecl_token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("<<".to_string()),
        Just("<".to_string()),
        Just("<!".to_string()),
        Just(">".to_string()),
        Just(">>".to_string()),
        Just(">!".to_string()),
        Just("^".to_string()),
        Just("*".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just("AND".to_string()),
        Just("or".to_string()),
        Just("MINUS".to_string()),
        Just(",".to_string()),
        Just("73211009".to_string()),
        Just("|t".to_string()),
        Just("/*".to_string()),
        Just("*/".to_string()),
        Just(" ".to_string()),
        "[0-9]{1,22}",
        "\\PC{0,3}",
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn ecl_any_text(text in "\\PC{0,60}") {
        let _ = ecl::parse(&text);
    }

    #[test]
    fn ecl_token_soup(tokens in prop::collection::vec(ecl_token(), 0..30)) {
        let _ = ecl::parse(&tokens.join(" "));
        let _ = ecl::parse(&tokens.concat());
    }

    #[test]
    fn ecl_print_parse_round_trip(e in expression()) {
        let text = print(&e);
        let parsed = ecl::parse(&text).map_err(|err| TestCaseError::fail(format!("{text}: {err}")))?;
        prop_assert_eq!(without_columns(&parsed), e, "{}", text);
    }
}

// ------------------------------------------------------- definition TOML ---

const VALUE_SETS: [&str; 6] = [
    "ecl = \"<< 73211009 |Diabetes mellitus| MINUS << 46635009\"\nhistory = \"min\"\n",
    "codes = [73211009, \"44054006\"]\nexclude = [46635009]\nallow_empty = true\n",
    "opencodelists_csv = \"list.csv\"\n",
    "dmd = { vtm = [108537001], vmp = [\"703666002\"] }\n",
    "references = [\"HYP_COD\", \"AST_COD@1\"]\n",
    "[dmd]\nvtm = [108537001]\n",
];

const HEAD: &str = "id = \"DM_COD\"\nversion = \"1\"\ntitle = \"t\"\nstatus = \"draft\"\nowner = \"o\"\nprovenance = \"p\"\n";

/// A value set folder with a CSV beside the definition and one outside it.
fn value_set_folder() -> &'static (tempfile::TempDir, PathBuf) {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    DIR.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("DM_COD")).unwrap();
        let csv = "code,term\n73211009,Diabetes mellitus\n";
        std::fs::write(tmp.path().join("DM_COD/list.csv"), csv).unwrap();
        std::fs::write(tmp.path().join("outside.csv"), csv).unwrap();
        let path = tmp.path().join("DM_COD/1.toml");
        (tmp, path)
    })
}

/// The shipped cohort definitions and the shipped value set catalogue.
fn cohorts() -> &'static (Vec<String>, Catalogue) {
    static COHORTS: OnceLock<(Vec<String>, Catalogue)> = OnceLock::new();
    COHORTS.get_or_init(|| {
        let mut texts = Vec::new();
        for dir in std::fs::read_dir(repo("cohorts")).unwrap() {
            let dir = dir.unwrap().path();
            if dir.is_dir() {
                for file in std::fs::read_dir(&dir).unwrap() {
                    let file = file.unwrap().path();
                    if file.extension().is_some_and(|e| e == "toml") {
                        texts.push(std::fs::read_to_string(file).unwrap());
                    }
                }
            }
        }
        texts.sort();
        assert!(!texts.is_empty());
        (texts, Catalogue::load(&[repo("valuesets")]).unwrap())
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn value_set_toml_any_text(text in "\\PC{0,200}") {
        let (_, path) = value_set_folder();
        let _ = definition::parse(path, &text);
    }

    /// Shipped-style value sets, damaged: an error or a value set, no panic;
    /// never one that reads the CSV outside its folder.
    #[test]
    fn value_set_toml_damaged(
        which in 0usize..6, at in any::<usize>(), len in 0usize..16, insert in fragment(),
    ) {
        let (_, path) = value_set_folder();
        let text = damage(&format!("{HEAD}{}", VALUE_SETS[which]), at, len, &insert);
        if let Ok(set) = definition::parse(path, &text)
            && let Some(definition::Definition::OpenCodelists { path: csv, .. }) = &set.definition
        {
            prop_assert!(csv.starts_with(path.parent().unwrap()), "{:?}", csv);
        }
    }

    #[test]
    fn cohort_toml_damaged(
        which in any::<usize>(), at in any::<usize>(), len in 0usize..24, insert in fragment(),
    ) {
        let (texts, catalogue) = cohorts();
        let text = damage(&texts[which % texts.len()], at, len, &insert);
        let _ = phm::cohort::file::parse(Path::new("cohorts/X/1.toml"), &text, catalogue);
    }

    #[test]
    fn cohort_toml_any_text(text in "\\PC{0,200}") {
        let (_, catalogue) = cohorts();
        let _ = phm::cohort::file::parse(Path::new("cohorts/X/1.toml"), &text, catalogue);
    }
}
