//! The incremental-insights runtime: a timely/differential dataflow fed from the log.
//!
//! - [`row`]: the narrow event form the dataflow keeps;
//! - [`operator`]: the seam that insight kinds implement (they live in `quill-operators`);
//! - [`runtime`]: the dataflow itself (inputs, the shared by-person arrangement, insight sets);
//! - [`replay`]: the per-person pass of the insights that need whole histories;
//! - [`distinct`]: the person counts of the event-local insights;
//! - [`backlog`]: how far the event-local pass may map ahead of that distinct;
//! - [`packed`]: per-person state packed as varints;
//! - [`engine`]: the live insight set, its collector and the published results;
//! - [`feeder`]: the log and identity's changes, turned into rounds;
//! - [`checkpoint`]: the feeder's input, stored so that a restart need not replay the log.

mod backlog;
pub mod checkpoint;
mod distinct;
pub mod engine;
mod event_local;
pub mod feeder;
mod memory;
pub mod operator;
pub mod packed;
mod profile;
mod project;
mod replay;
pub mod row;
pub mod runtime;
mod sliced;

#[cfg(test)]
mod checkpoint_tests;
#[cfg(test)]
mod tests;

pub use backlog::set_backlog_limit;
pub use engine::{Engine, EngineError, Published};
pub use operator::{
    evaluate, Aggregator, BuildContext, Cell, Combine, Contribution, InsightOperator, Memo,
    PersonView,
};
pub use row::{EventRow, Interner, PropValue, Props, Sym};
pub use runtime::{Mapping, PersonKey, PersonProps, Round, Time};
pub use sliced::set_replay_slice;
