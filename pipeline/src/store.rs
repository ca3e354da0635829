//! The state store: one redb database holding everything derived or configured.
//!
//! redb is crash-safe with a stable file format. Each consumer commits its derived state and its
//! log cursor in the same transaction, so a crash never applies a record twice or skips one.

use std::path::Path;

use redb::{Database, ReadableDatabase, TableDefinition};

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed; usually I/O, so retrying later may help.
    #[error("state store: {0}")]
    Redb(#[from] redb::Error),
    /// A stored value did not parse: a bug or a damaged file.
    #[error("state store holds an unreadable {what}: {detail}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// The parser's complaint.
        detail: String,
    },
    /// Something asked for does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with stored state.
    #[error("{0}")]
    Conflict(String),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Redb(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// Cursors and counters, by name.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The open state store.
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens or creates the database file.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(META)?;
        txn.commit()?;
        Ok(Store { db })
    }

    /// The underlying database, for the modules that own tables in it.
    pub fn db(&self) -> &Database {
        &self.db
    }

    /// Reads a counter or cursor; absent means 0.
    pub fn meta(&self, name: &str) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(META)?;
        Ok(table.get(name)?.map(|v| v.value()).unwrap_or(0))
    }
}

/// Parses a JSON value stored in a table.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        what,
        detail: e.to_string(),
    })
}

/// Serializes a value for a table. Serializing plain data structs cannot fail.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}
