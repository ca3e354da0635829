//! # quill-transforms: the transformation stage
//!
//! Hog transformations in front of the event log. A hog function of type `transformation` is a
//! Hog program that receives the captured `event` (PostHog's shape) and its resolved `inputs`,
//! and returns the new event, or `null` to drop it. Enabled functions run in `execution_order`,
//! each seeing the previous one's output, as [`quill_pipeline::transform::Transform`] stages.
//!
//! - [`function`]: the definition users send, validated and compiled ([`FunctionSpec`]).
//! - [`inputs`]: input values that are Hog templates (`"{event.properties.email}"`).
//! - [`filters`]: which events a function applies to.
//! - [`transformation`]: [`HogTransformation`], one compiled function as a pipeline stage.
//! - [`watcher`]: degrades, then disables, functions that keep running over their time budget.
//! - [`logs`]: each function's recent log entries.
//! - [`host`]: host functions for transformations (`geoipLookup`, `cleanNullValues`, ...).
//! - [`templates`]: the built-in templates, written in Hog.
//! - [`registry`]: definitions in the state store, and the live chain rebuilt on every change.
//!
//! ```
//! use quill_pipeline::transform::{Outcome, Transform};
//! use quill_transforms::{FunctionSpec, HogTransformation, Runtime};
//! use serde_json::json;
//!
//! let spec = FunctionSpec::from_json(&json!({
//!     "type": "transformation",
//!     "name": "tag",
//!     "hog": "let e := event; e.properties.tagged := inputs.tag; return e",
//!     "inputs": {"tag": {"value": "{event.event}!"}},
//! })).unwrap();
//! let stage = HogTransformation::new(1, 1, spec.compile().unwrap(), Runtime::default());
//! let event = quill_pipeline::event::Event {
//!     uuid: Default::default(), project: 1, event: "$pageview".into(),
//!     distinct_id: "u1".into(), properties: Default::default(),
//!     timestamp_us: 0, received_us: 0,
//! };
//! match stage.apply(event) {
//!     Outcome::Keep(e) => assert_eq!(e.properties["tagged"], json!("$pageview!")),
//!     Outcome::Drop => unreachable!(),
//! }
//! ```
#![deny(missing_docs)]

pub mod filters;
pub mod function;
pub mod host;
pub mod inputs;
mod iso;
pub mod logs;
pub mod registry;
mod returned;
pub mod templates;
pub mod transformation;
pub mod watcher;

pub use function::{CompiledFunction, FunctionSpec, SpecError};
pub use registry::{HogFunctions, RegistryError};
pub use transformation::{HogTransformation, Runtime};
