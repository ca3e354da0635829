//! The event model.
//!
//! Capture produces an [`Event`]: a validated, normalized event whose properties are still a JSON
//! map, so that transformations can edit them. What the log stores is a [`Record`]; its event form,
//! [`StoredEvent`], keeps the properties as JSON text so that the log format does not depend on
//! any JSON library's in-memory layout.

use serde_json::{Map, Value};
use uuid::Uuid;

/// A project's numeric id. Every event, person and definition belongs to exactly one project.
pub type ProjectId = u32;

/// A validated event, as capture and transformations see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unique per project; SDK retries resend the same uuid.
    pub uuid: Uuid,
    /// The project the event's token resolved to.
    pub project: ProjectId,
    /// The event name, such as `$pageview`.
    pub event: String,
    /// The normalized distinct id (never empty, at most 200 characters).
    pub distinct_id: String,
    /// Event properties, including `$set`, `$set_once` and `$unset` when present.
    pub properties: Map<String, Value>,
    /// When the event happened, after server-side clock-skew correction, in µs since the epoch.
    pub timestamp_us: i64,
    /// When Quill received the event, in µs since the epoch.
    pub received_us: i64,
}

impl Event {
    /// The form the log stores. Consumes the event so that no string is copied twice.
    pub fn into_stored(self) -> StoredEvent {
        // Serializing a map of JSON values cannot fail: keys are strings, numbers are finite.
        let properties = serde_json::to_string(&self.properties).unwrap_or_else(|_| "{}".into());
        StoredEvent {
            uuid: *self.uuid.as_bytes(),
            project: self.project,
            event: self.event,
            distinct_id: self.distinct_id,
            properties,
            timestamp_us: self.timestamp_us,
            received_us: self.received_us,
        }
    }
}

pub use stored::{ArchivedRecord, ArchivedStoredEvent, Record, StoredEvent};

// rkyv's derives generate archived twins without docs, so the lint is relaxed for this module
// only; the types themselves are documented.
#[allow(missing_docs)]
mod stored {
    use super::ProjectId;
    use serde_json::{Map, Value};
    use uuid::Uuid;

    /// An event as the log stores it.
    #[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
    pub struct StoredEvent {
        /// The event's uuid bytes.
        pub uuid: [u8; 16],
        /// The owning project.
        pub project: ProjectId,
        /// The event name.
        pub event: String,
        /// The normalized distinct id.
        pub distinct_id: String,
        /// The properties object as JSON text.
        pub properties: String,
        /// Event time in µs since the epoch.
        pub timestamp_us: i64,
        /// Receive time in µs since the epoch.
        pub received_us: i64,
    }

    impl StoredEvent {
        /// The uuid as a [`Uuid`].
        pub fn uuid(&self) -> Uuid {
            Uuid::from_bytes(self.uuid)
        }

        /// Parses the properties text. The log only holds text that capture serialized from a map,
        /// so a parse failure means a corrupted record and yields an empty map.
        pub fn properties_map(&self) -> Map<String, Value> {
            match serde_json::from_str::<Value>(&self.properties) {
                Ok(Value::Object(map)) => map,
                _ => Map::new(),
            }
        }
    }

    /// One entry of the event log.
    #[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
    pub enum Record {
        /// An accepted event.
        Event(StoredEvent),
        /// A person was deleted. Its distinct ids become free; later events create a new person.
        PersonDeleted {
            /// The owning project.
            project: ProjectId,
            /// The deleted person's uuid bytes.
            person_uuid: [u8; 16],
        },
        /// A tombstone: every event of these distinct ids stored before `before_offset` is deleted.
        /// Consumers must honour it; replay applies it in log order, so the result is the same.
        EventsDeleted {
            /// The owning project.
            project: ProjectId,
            /// Whose events are deleted.
            distinct_ids: Vec<String>,
            /// Events at log offsets below this one are deleted.
            before_offset: u64,
        },
    }

    impl Record {
        /// The project this record belongs to.
        pub fn project(&self) -> ProjectId {
            match self {
                Record::Event(e) => e.project,
                Record::PersonDeleted { project, .. } | Record::EventsDeleted { project, .. } => {
                    *project
                }
            }
        }
    }
}

/// Microseconds since the epoch, now.
pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Formats µs since the epoch as PostHog does in API responses (`2024-01-01T00:00:00.000Z`).
pub fn format_timestamp(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}
