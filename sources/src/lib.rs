//! Quill's sources: where events come from.
//!
//! - [`capture`]: PostHog's HTTP capture API, which the PostHog SDKs send to unchanged.
//!
//! A source decodes, validates and normalizes input into [`Event`](quill_pipeline::event::Event)s,
//! runs the transformation chain, and appends the survivors to the log before it acknowledges.
#![deny(missing_docs)]

pub mod capture;
