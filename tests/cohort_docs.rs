//! The examples in `docs/cohort-language.md` are real definitions: the
//! complete one parses, and every rule fragment uses keys the reader accepts.

use std::path::Path;

use phm::cohort::file;
use phm::valueset::Catalogue;

fn toml_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```toml") => current = Some(String::new()),
            (Some(_), l) if l.starts_with("```") => blocks.push(current.take().unwrap()),
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn the_reference_example_is_a_valid_definition() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/cohort-language.md")).unwrap();
    let catalogue = Catalogue::load(&[root.join("valuesets")]).unwrap();
    let blocks = toml_blocks(&doc);
    let full: Vec<&String> = blocks.iter().filter(|b| b.starts_with("id = ")).collect();
    assert!(!full.is_empty(), "the doc opens with a complete definition");
    for block in full {
        let def = file::parse(Path::new("docs/cohort-language.md"), block, &catalogue)
            .unwrap_or_else(|e| panic!("{e}\n{block}"));
        assert_eq!(def.id, "DM_REG");
        // It is the shipped definition's logic.
        let shipped = file::load(&root.join("cohorts"), "DM_REG@2025.1", &catalogue).unwrap();
        assert_eq!(def.criteria.len(), shipped.criteria.len());
        assert_eq!(def.rules.len(), shipped.rules.len());
        assert_eq!(def.valuesets, shipped.valuesets);
    }
}
