//! Supplier adapters: EMIS Web and TPP SystmOne extracts into the canonical model.
//!
//! Nothing downstream of this module knows which supplier a row came from except
//! through the provenance columns the adapters write.

pub mod columns;
pub mod derive;
pub mod emis;
pub mod manifest;
pub mod merge;
pub mod merge_files;
pub mod merge_plan;
pub mod read;
pub mod table;
pub mod tpp;
