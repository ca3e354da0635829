//! Identity: persons, distinct-id mappings and groups, derived from the log in log order.
//!
//! The rules follow PostHog's person processing:
//! - every event (unless `$process_person_profile` is false) makes sure its distinct id has a
//!   person, then applies `$set_once`, `$set` and `$unset`;
//! - `$identify` (`$anon_distinct_id`) and `$create_alias` (`alias`) link two ids. When both ids
//!   already have different persons, the other person is merged in only if it is not yet
//!   identified; `$merge_dangerously` merges regardless;
//! - `$groupidentify` sets group properties.
//!
//! Everything here is a pure function of the log prefix applied so far, so `quill replay`
//! arrives at identical persons, ids and uuids included.

mod apply;
mod groups;
pub(crate) mod persons;

pub use apply::{apply_event, identity_properties};
pub use groups::{get_group, group_types, Group, GroupWriter, MAX_GROUP_TYPES};
pub use persons::{person_uuid, Person, PersonCache, PersonReader, PersonWriter, Touched};

/// Drops every identity table, for replay.
pub(crate) fn delete_tables(txn: &redb::WriteTransaction) -> Result<(), crate::store::StoreError> {
    txn.delete_table(persons::DISTINCT_IDS)?;
    txn.delete_table(persons::PERSONS)?;
    txn.delete_table(persons::PERSON_UUIDS)?;
    txn.delete_table(persons::COUNTERS)?;
    txn.delete_table(groups::GROUPS)?;
    txn.delete_table(groups::GROUP_TYPES)?;
    Ok(())
}

/// Distinct ids that SDKs and broken integrations send for "unknown user". PostHog refuses to
/// merge on them, because doing so would fuse every anonymous visitor into one person.
pub fn is_illegal_merge_id(id: &str) -> bool {
    const CASE_INSENSITIVE: &[&str] = &[
        "anonymous",
        "guest",
        "distinctid",
        "distinct_id",
        "id",
        "not_authenticated",
        "email",
        "undefined",
        "true",
        "false",
    ];
    const EXACT: &[&str] = &["[object Object]", "NaN", "None", "none", "null", "0", ""];
    let trimmed = id.trim();
    EXACT.contains(&trimmed)
        || CASE_INSENSITIVE
            .iter()
            .any(|bad| bad.eq_ignore_ascii_case(trimmed))
}

/// A digest of every person of every project (ids, uuids, distinct ids, properties, flags), for
/// checking that two stores (say, before and after `quill replay`) hold identical persons.
pub fn digest(store: &crate::store::Store) -> Result<(u64, String), crate::store::StoreError> {
    use redb::{ReadableDatabase, ReadableTable};
    use std::hash::{Hash, Hasher};
    let txn = store.db().begin_read()?;
    let table = match txn.open_table(persons::PERSONS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok((0, "0".repeat(16))),
        Err(e) => return Err(e.into()),
    };
    // SipHash with fixed keys: stable across runs of the same build.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut count = 0;
    for entry in table.iter()? {
        let (key, value) = entry?;
        key.value().hash(&mut hasher);
        value.value().hash(&mut hasher);
        count += 1;
    }
    Ok((count, format!("{:016x}", hasher.finish())))
}
