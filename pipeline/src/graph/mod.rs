//! The incremental-insights runtime: a timely/differential dataflow fed from the log.
//!
//! [`row`] is the narrow event form the dataflow keeps; [`operator`] is the seam that insight
//! kinds implement (they live in the `quill-operators` crate).

pub mod operator;
pub mod row;

pub use operator::{evaluate, Aggregator, BuildContext, Contribution, InsightOperator, PersonView};
pub use row::{EventRow, Interner, PropValue, Sym};
