//! What may leave a practice: keyed pseudonyms in place of the store's person
//! key, and disclosure control of every count a network output shows.
//!
//! The store's person key is an unkeyed hash of the NHS number, reversible by
//! hashing every possible number, so it never appears in an output.

pub mod audit;
pub mod context;
pub mod disclosure;
pub mod lineage;
pub mod pseudonym;
pub mod publish;
pub mod reidentify;
