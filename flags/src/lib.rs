//! Feature flags, evaluated exactly as PostHog evaluates them.
//!
//! `quill-flags` is a pure library: it parses and validates flag definitions in PostHog's
//! JSON shape, evaluates them for a person or group bit-for-bit like PostHog (same SHA-1
//! bucketing, same operator semantics), and builds the wire shapes of `/flags`, `/decide` and
//! the local-evaluation endpoint. It does no I/O: the server reads persons, groups, cohort
//! membership and hash-key overrides from its stores and hands them over in an
//! [`EvalContext`].
//!
//! ```
//! use std::collections::HashMap;
//! use quill_flags::{EvalContext, Flag, FlagDefinition, FlagSet, Properties};
//! use serde_json::json;
//!
//! let def = FlagDefinition::from_value(&json!({
//!     "id": 1, "key": "pro-beta", "active": true,
//!     "filters": {"groups": [{"properties": [
//!         {"key": "plan", "value": "pro", "operator": "exact", "type": "person"}
//!     ], "rollout_percentage": 100}]}
//! }))?;
//! let set = FlagSet::new(vec![Flag::new(def)?], [], []);
//!
//! let props = json!({"plan": "Pro"});
//! let ctx = EvalContext::new("user-1")
//!     .with_person_properties(Properties::request(props.as_object().unwrap()));
//! let result = set.evaluate("pro-beta", &ctx).unwrap();
//! assert!(result.enabled);
//! assert_eq!(result.reason.code.as_str(), "condition_match");
//! # Ok::<(), quill_flags::ValidationError>(())
//! ```
#![deny(missing_docs)]

pub mod cohort;
pub mod context;
pub mod dates;
pub mod definition;
pub mod engine;
pub mod error;
pub mod filter;
pub mod flag;
pub mod hash;
pub mod local_evaluation;
pub mod operator;
pub mod reason;
pub mod request;
pub mod response;
pub mod semver;
pub mod set;
pub mod value;
pub mod wire;

pub use context::{CohortMembership, EvalContext, Properties};
pub use definition::{
    Condition, Filters, FlagDefinition, Holdout, Multivariate, PropertyFilter, PropertyGroup,
    PropertyGroupEntry, Variant,
};
pub use engine::{FlagEvaluation, FlagValue};
pub use error::{RequestError, ValidationError};
pub use filter::Strictness;
pub use flag::{validate, Flag};
pub use reason::{Reason, ReasonCode};
pub use set::FlagSet;
