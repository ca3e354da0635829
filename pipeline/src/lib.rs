//! Quill's core: the event model, the durable event log, the state store, identity and persons.
//!
//! Everything Quill knows starts as a [`Record`](event::Record) in the [`log`]. Consumers tail
//! the log with their own cursors and derive state from it; the [`materialize`] consumer keeps
//! persons ([`identity`]) and the [`events_index`].
//!
//! # Examples
//!
//! ```
//! use quill_pipeline::event::{Record, StoredEvent};
//! use quill_pipeline::log::{AppendBatch, Log, LogOptions};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let log = Log::open(dir.path(), LogOptions::default()).unwrap();
//! let mut batch = AppendBatch::new();
//! batch.push(&Record::Event(StoredEvent {
//!     uuid: [1; 16], project: 1, event: "$pageview".into(), distinct_id: "u1".into(),
//!     properties: "{}".into(), timestamp_us: 0, received_us: 0,
//! })).unwrap();
//! let appended = log.append_blocking(batch).unwrap();
//! assert_eq!(appended.stored, 1);
//! assert_eq!(log.reader().read(0, 1 << 20).unwrap().records.len(), 1);
//! ```
#![deny(missing_docs)]

pub mod data_dir;
pub mod definitions;
pub mod event;
pub mod events_index;
pub mod follow;
pub mod graph;
pub mod identity;
pub mod indexer;
pub mod log;
pub mod materialize;
pub mod projects;
pub mod store;
pub mod transform;
