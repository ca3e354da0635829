//! Versioned JSON definitions (feature flags today; insights and hog functions later), and the
//! hash-key overrides of experience-continuity flags.
//!
//! A definition is a JSON document keyed by `(project, kind, id)`. Ids are assigned per project
//! and kind, from 1. Every change (create, update, delete) bumps the definition's `version` and
//! the `(project, kind)` revision, so a cache knows when to rebuild. Deletion is soft, as in
//! PostHog: the document stays with `deleted: true` and keeps its id.
//!
//! The store checks shape-free invariants only: uniqueness of one top-level field among live
//! definitions (a flag's `key`), inside the same write transaction as the change. Validating
//! the document is the caller's job, before it reaches the store.
//!
//! # Examples
//!
//! ```
//! use quill_pipeline::{definitions, store::Store};
//! use serde_json::json;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(&dir.path().join("state.redb")).unwrap();
//! let made = definitions::create(&store, 1, "flag", json!({"key": "a"}), Some("key")).unwrap();
//! assert_eq!((made.id, made.version), (1, 1));
//! let dup = definitions::create(&store, 1, "flag", json!({"key": "a"}), Some("key"));
//! assert!(dup.is_err());
//! definitions::delete(&store, 1, "flag", made.id).unwrap();
//! assert_eq!(definitions::list(&store, 1, "flag", false).unwrap().len(), 0);
//! assert_eq!(definitions::revision(&store, 1, "flag").unwrap(), 2);
//! ```

use std::collections::HashMap;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::{now_us, ProjectId};
use crate::store::{from_json, to_json, Store, StoreError};

const DEFINITIONS: TableDefinition<(u32, &str, u64), &[u8]> = TableDefinition::new("definitions");
/// `(project, kind)` → last id assigned.
const LAST_IDS: TableDefinition<(u32, &str), u64> = TableDefinition::new("definition_ids");
/// `(project, kind)` → revision, bumped on every change.
const REVISIONS: TableDefinition<(u32, &str), u64> = TableDefinition::new("definition_revisions");
/// `(project, subject, flag key)` → hash key.
const HASH_KEY_OVERRIDES: TableDefinition<(u32, &str, &str), &str> =
    TableDefinition::new("flag_hash_key_overrides");

/// A stored definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    /// Id within the project and kind, from 1.
    pub id: u64,
    /// Bumped on every change, from 1.
    pub version: u64,
    /// Soft-deleted.
    pub deleted: bool,
    /// Creation time, µs since the epoch.
    pub created_at_us: i64,
    /// Last change, µs since the epoch.
    pub updated_at_us: i64,
    /// The document as given.
    pub body: Value,
}

/// Creates a definition with the next id. With `unique`, no live definition of the kind may
/// have the same value in that top-level field ([`StoreError::Conflict`] otherwise).
pub fn create(
    store: &Store,
    project: ProjectId,
    kind: &str,
    body: Value,
    unique: Option<&str>,
) -> Result<Definition, StoreError> {
    let txn = store.db().begin_write()?;
    let made = {
        let mut defs = txn.open_table(DEFINITIONS)?;
        let mut ids = txn.open_table(LAST_IDS)?;
        if let Some(field) = unique {
            check_unique(&defs, project, kind, field, &body, None)?;
        }
        let id = ids.get((project, kind))?.map(|v| v.value()).unwrap_or(0) + 1;
        ids.insert((project, kind), id)?;
        let now = now_us();
        let def = Definition {
            id,
            version: 1,
            deleted: false,
            created_at_us: now,
            updated_at_us: now,
            body,
        };
        defs.insert((project, kind, id), to_json(&def).as_slice())?;
        bump_revision(&txn, project, kind)?;
        def
    };
    txn.commit()?;
    Ok(made)
}

/// One definition, deleted or not.
pub fn get(
    store: &Store,
    project: ProjectId,
    kind: &str,
    id: u64,
) -> Result<Option<Definition>, StoreError> {
    let txn = store.db().begin_read()?;
    let table = match txn.open_table(DEFINITIONS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match table.get((project, kind, id))? {
        Some(v) => Ok(Some(from_json("definition", v.value())?)),
        None => Ok(None),
    }
}

/// A project's definitions of a kind, by id.
pub fn list(
    store: &Store,
    project: ProjectId,
    kind: &str,
    include_deleted: bool,
) -> Result<Vec<Definition>, StoreError> {
    let txn = store.db().begin_read()?;
    let table = match txn.open_table(DEFINITIONS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for entry in table.range((project, kind, 0)..=(project, kind, u64::MAX))? {
        let def: Definition = from_json("definition", entry?.1.value())?;
        if include_deleted || !def.deleted {
            out.push(def);
        }
    }
    Ok(out)
}

/// Replaces a live definition's body with `change(old body)`, in one transaction, and bumps
/// its version. [`StoreError::NotFound`] for a missing or deleted one.
pub fn update<E: From<StoreError>>(
    store: &Store,
    project: ProjectId,
    kind: &str,
    id: u64,
    unique: Option<&str>,
    change: impl FnOnce(&Value) -> Result<Value, E>,
) -> Result<Definition, E> {
    let txn = store.db().begin_write().map_err(StoreError::from)?;
    let updated = {
        let mut defs = txn.open_table(DEFINITIONS).map_err(StoreError::from)?;
        let mut def = live(&defs, project, kind, id)?;
        def.body = change(&def.body)?;
        if let Some(field) = unique {
            check_unique(&defs, project, kind, field, &def.body, Some(id))?;
        }
        def.version += 1;
        def.updated_at_us = now_us();
        defs.insert((project, kind, id), to_json(&def).as_slice())
            .map_err(StoreError::from)?;
        bump_revision(&txn, project, kind)?;
        def
    };
    txn.commit().map_err(StoreError::from)?;
    Ok(updated)
}

/// Soft-deletes a live definition.
pub fn delete(
    store: &Store,
    project: ProjectId,
    kind: &str,
    id: u64,
) -> Result<Definition, StoreError> {
    let txn = store.db().begin_write()?;
    let deleted = {
        let mut defs = txn.open_table(DEFINITIONS)?;
        let mut def = live(&defs, project, kind, id)?;
        def.deleted = true;
        def.version += 1;
        def.updated_at_us = now_us();
        defs.insert((project, kind, id), to_json(&def).as_slice())?;
        bump_revision(&txn, project, kind)?;
        def
    };
    txn.commit()?;
    Ok(deleted)
}

/// The `(project, kind)` revision: 0 before any change, then bumped by every change.
pub fn revision(store: &Store, project: ProjectId, kind: &str) -> Result<u64, StoreError> {
    let txn = store.db().begin_read()?;
    let table = match txn.open_table(REVISIONS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    Ok(table.get((project, kind))?.map(|v| v.value()).unwrap_or(0))
}

/// Every project that has definitions of a kind.
pub fn projects_with(store: &Store, kind: &str) -> Result<Vec<ProjectId>, StoreError> {
    let txn = store.db().begin_read()?;
    let table = match txn.open_table(REVISIONS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (k, _) = entry?;
        if k.value().1 == kind {
            out.push(k.value().0);
        }
    }
    Ok(out)
}

/// Stored hash-key overrides of `subject` (a person or distinct id, as the caller names it):
/// flag key → hash key.
pub fn hash_key_overrides(
    store: &Store,
    project: ProjectId,
    subject: &str,
) -> Result<HashMap<String, String>, StoreError> {
    let txn = store.db().begin_read()?;
    let table = match txn.open_table(HASH_KEY_OVERRIDES) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(HashMap::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = HashMap::new();
    for entry in table.range((project, subject, "")..)? {
        let (k, v) = entry?;
        let (p, s, flag) = k.value();
        if p != project || s != subject {
            break;
        }
        out.insert(flag.to_string(), v.value().to_string());
    }
    Ok(out)
}

/// Records hash-key overrides of `subject`; an existing override is kept, as PostHog does.
pub fn write_hash_key_overrides(
    store: &Store,
    project: ProjectId,
    subject: &str,
    overrides: &[(&str, &str)],
) -> Result<(), StoreError> {
    if overrides.is_empty() {
        return Ok(());
    }
    let txn = store.db().begin_write()?;
    {
        let mut table = txn.open_table(HASH_KEY_OVERRIDES)?;
        for (flag, hash_key) in overrides {
            if table.get((project, subject, *flag))?.is_none() {
                table.insert((project, subject, *flag), *hash_key)?;
            }
        }
    }
    txn.commit()?;
    Ok(())
}

fn live(
    defs: &impl ReadableTable<(u32, &'static str, u64), &'static [u8]>,
    project: ProjectId,
    kind: &str,
    id: u64,
) -> Result<Definition, StoreError> {
    let def: Option<Definition> = match defs.get((project, kind, id))? {
        Some(v) => Some(from_json("definition", v.value())?),
        None => None,
    };
    def.filter(|d| !d.deleted)
        .ok_or_else(|| StoreError::NotFound(format!("{kind} {id}")))
}

fn check_unique(
    defs: &impl ReadableTable<(u32, &'static str, u64), &'static [u8]>,
    project: ProjectId,
    kind: &str,
    field: &str,
    body: &Value,
    except: Option<u64>,
) -> Result<(), StoreError> {
    let Some(wanted) = body.get(field) else {
        return Ok(());
    };
    for entry in defs.range((project, kind, 0)..=(project, kind, u64::MAX))? {
        let def: Definition = from_json("definition", entry?.1.value())?;
        if !def.deleted && Some(def.id) != except && def.body.get(field) == Some(wanted) {
            return Err(StoreError::Conflict(format!(
                "a {kind} with {field} {wanted} already exists (id {})",
                def.id
            )));
        }
    }
    Ok(())
}

fn bump_revision(
    txn: &redb::WriteTransaction,
    project: ProjectId,
    kind: &str,
) -> Result<(), StoreError> {
    let mut revs = txn.open_table(REVISIONS)?;
    let next = revs.get((project, kind))?.map(|v| v.value()).unwrap_or(0) + 1;
    revs.insert((project, kind), next)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        (dir, store)
    }

    #[test]
    fn ids_are_per_project_and_versions_bump() {
        let (_d, s) = store();
        assert_eq!(
            create(&s, 1, "flag", json!({"key": "a"}), None).unwrap().id,
            1
        );
        assert_eq!(
            create(&s, 2, "flag", json!({"key": "a"}), None).unwrap().id,
            1
        );
        assert_eq!(
            create(&s, 1, "flag", json!({"key": "b"}), None).unwrap().id,
            2
        );
        let u = update::<StoreError>(&s, 1, "flag", 2, Some("key"), |_| Ok(json!({"key": "c"})))
            .unwrap();
        assert_eq!(u.version, 2);
        let clash =
            update::<StoreError>(&s, 1, "flag", 2, Some("key"), |_| Ok(json!({"key": "a"})));
        assert!(matches!(clash, Err(StoreError::Conflict(_))));
        assert_eq!(get(&s, 1, "flag", 2).unwrap().unwrap().body["key"], "c");
        assert_eq!(revision(&s, 1, "flag").unwrap(), 3);
        assert_eq!(projects_with(&s, "flag").unwrap(), vec![1, 2]);
    }

    #[test]
    fn deleted_definitions_free_their_key_and_are_not_updatable() {
        let (_d, s) = store();
        let a = create(&s, 1, "flag", json!({"key": "a"}), Some("key")).unwrap();
        delete(&s, 1, "flag", a.id).unwrap();
        assert!(delete(&s, 1, "flag", a.id).is_err());
        assert!(create(&s, 1, "flag", json!({"key": "a"}), Some("key")).is_ok());
        assert_eq!(list(&s, 1, "flag", true).unwrap().len(), 2);
        let gone = update::<StoreError>(&s, 1, "flag", a.id, None, |b| Ok(b.clone()));
        assert!(matches!(gone, Err(StoreError::NotFound(_))));
    }

    #[test]
    fn hash_key_overrides_keep_the_first_value() {
        let (_d, s) = store();
        write_hash_key_overrides(&s, 1, "p:7", &[("f", "anon-1"), ("g", "anon-1")]).unwrap();
        write_hash_key_overrides(&s, 1, "p:7", &[("f", "anon-2")]).unwrap();
        write_hash_key_overrides(&s, 1, "p:70", &[("f", "other")]).unwrap();
        let got = hash_key_overrides(&s, 1, "p:7").unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got["f"], "anon-1");
        assert!(hash_key_overrides(&s, 2, "p:7").unwrap().is_empty());
    }
}
