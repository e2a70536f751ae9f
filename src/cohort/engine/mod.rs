//! See ../mod.rs.
