//! The bad-input suite: one line per case — what is wrong, the exit code phm
//! must give, and a fragment of the message it must print. Cases are grouped
//! by the command they hit; each runs the real binary on a fresh copy of a
//! small synthetic network, the fixture terminology release or a store built
//! from them.
//!
//! After every case the suite also checks that nothing was lost: a practice a
//! case damaged has nothing in the store, and every other practice was
//! ingested.

#[path = "../common/mod.rs"]
mod common;

mod cases;
mod scene;

use scene::{Pristine, Scene};

/// One bad input.
#[derive(Clone, Copy)]
pub struct Case {
    pub name: &'static str,
    /// The exit code phm must give (see the README's table).
    pub exit: u8,
    /// A fragment of what phm must print (stdout or stderr).
    pub says: &'static str,
    /// Builds the bad input in the scene and runs phm on it.
    pub run: fn(&mut Scene) -> std::process::Output,
}

/// A case line: `case!("name", exit, "fragment", setup_fn)`.
#[macro_export]
macro_rules! case {
    ($name:expr, $exit:expr, $says:expr, $run:expr) => {
        $crate::Case {
            name: $name,
            exit: $exit,
            says: $says,
            run: $run,
        }
    };
}

#[test]
fn every_bad_input_gets_its_exit_code_and_message_and_loses_nothing() {
    let pristine = Pristine::build();
    let filter = std::env::var("PHM_BAD_INPUT").ok();
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in cases::all() {
        if filter.as_deref().is_some_and(|f| !case.name.contains(f)) {
            continue;
        }
        ran += 1;
        let mut scene = Scene::new(&pristine);
        let out = (case.run)(&mut scene);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut wrong = Vec::new();
        if out.status.code() != Some(i32::from(case.exit)) {
            wrong.push(format!(
                "exit {:?}, expected {}",
                out.status.code(),
                case.exit
            ));
        }
        if !text.contains(case.says) {
            wrong.push(format!("output lacks {:?}", case.says));
        }
        if text.contains("panicked") {
            wrong.push("phm panicked".into());
        }
        wrong.extend(scene.losses());
        if !wrong.is_empty() {
            failures.push(format!("{}: {}\n{text}", case.name, wrong.join("; ")));
        }
    }
    assert!(ran > 0, "no case matched PHM_BAD_INPUT={filter:?}");
    assert!(
        failures.is_empty(),
        "{} of {ran} bad-input cases failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
