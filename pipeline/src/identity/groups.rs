//! Groups (`$groupidentify`) and their type indexes.

use redb::{ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::event::ProjectId;
use crate::store::{from_json, to_json, Store, StoreError};

pub(crate) const GROUPS: TableDefinition<(u32, &str, &str), &[u8]> = TableDefinition::new("groups");
pub(crate) const GROUP_TYPES: TableDefinition<(u32, &str), u32> =
    TableDefinition::new("group_types");

/// PostHog allows five group types per project (indexes 0–4).
pub const MAX_GROUP_TYPES: u32 = 5;

/// A group: a company, team or other entity events can belong to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// The group type, such as `company`.
    pub group_type: String,
    /// The group's key within its type.
    pub group_key: String,
    /// Group properties.
    pub properties: Map<String, Value>,
    /// When the group was first seen, µs since the epoch.
    pub created_at_us: i64,
}

/// Group tables opened inside one write transaction.
pub struct GroupWriter<'txn> {
    groups: Table<'txn, (u32, &'static str, &'static str), &'static [u8]>,
    types: Table<'txn, (u32, &'static str), u32>,
}

impl<'txn> GroupWriter<'txn> {
    /// Opens the tables in `txn`.
    pub fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            groups: txn.open_table(GROUPS)?,
            types: txn.open_table(GROUP_TYPES)?,
        })
    }

    /// Applies `$group_set` to a group, creating it (and its type) on first sight. A sixth group
    /// type is ignored with a warning, as PostHog does.
    pub fn identify(
        &mut self,
        project: ProjectId,
        group_type: &str,
        group_key: &str,
        set: Option<&Map<String, Value>>,
        timestamp_us: i64,
    ) -> Result<(), StoreError> {
        if self.types.get((project, group_type))?.is_none() {
            let mut count = 0u32;
            for entry in self.types.range((project, "")..)? {
                if entry?.0.value().0 != project {
                    break;
                }
                count += 1;
            }
            if count >= MAX_GROUP_TYPES {
                tracing::warn!(project, group_type, "group type limit reached; ignoring");
                return Ok(());
            }
            self.types.insert((project, group_type), count)?;
        }
        let mut group = match self.groups.get((project, group_type, group_key))? {
            Some(v) => from_json::<Group>("group", v.value())?,
            None => Group {
                group_type: group_type.to_string(),
                group_key: group_key.to_string(),
                properties: Map::new(),
                created_at_us: timestamp_us,
            },
        };
        if let Some(set) = set {
            for (k, v) in set {
                group.properties.insert(k.clone(), v.clone());
            }
        }
        self.groups
            .insert((project, group_type, group_key), to_json(&group).as_slice())?;
        Ok(())
    }
}

/// A group by type and key.
pub fn get_group(
    store: &Store,
    project: ProjectId,
    group_type: &str,
    group_key: &str,
) -> Result<Option<Group>, StoreError> {
    let txn = store.db().begin_read()?;
    let table = match txn.open_table(GROUPS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match table.get((project, group_type, group_key))? {
        Some(v) => Ok(Some(from_json("group", v.value())?)),
        None => Ok(None),
    }
}

/// A project's group types with their indexes.
pub fn group_types(store: &Store, project: ProjectId) -> Result<Vec<(String, u32)>, StoreError> {
    let txn = store.db().begin_read()?;
    let table = match txn.open_table(GROUP_TYPES) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for entry in table.range((project, "")..)? {
        let (k, v) = entry?;
        if k.value().0 != project {
            break;
        }
        out.push((k.value().1.to_string(), v.value()));
    }
    Ok(out)
}
