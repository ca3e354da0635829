//! What the query kinds share: date ranges and intervals ([`dates`]), property filters
//! ([`filters`]), series matching ([`series`]) and breakdowns ([`breakdown`]).
//!
//! Everything here is parsed once, at build time, from PostHog's query JSON into validated
//! types; errors are [`crate::QueryError`]s naming the field.

pub mod breakdown;
pub mod dates;
pub mod filters;
pub mod series;

pub use breakdown::{Breakdown, BREAKDOWN_NULL, BREAKDOWN_OTHER};
pub use dates::{Bounds, DateRange, Interval};
pub use filters::{Filters, Scope};
pub use series::{global_filters, parse_series, EventsNode};
