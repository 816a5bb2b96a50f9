//! Pure gate functions: each decides on the state handed to it and does no I/O.
//!
//! The pipeline runs them in order (binding → idempotency → spam loop) and acts on the
//! `Err(Denial)` of the first that refuses.

pub mod binding;
pub mod freeze;
pub mod idempotency;
pub mod meta;
pub mod spam;
