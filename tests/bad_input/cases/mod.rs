//! The cases, one module per command they hit.

mod ingest;
mod reidentify;
mod terminology;

pub fn all() -> Vec<crate::Case> {
    [ingest::CASES, reidentify::CASES, terminology::CASES].concat()
}
