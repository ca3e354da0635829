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

/// redb's own default.
const DEFAULT_CACHE_BYTES: usize = 1 << 30;

/// Cursors and counters, by name.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The open state store.
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens or creates the database file, with redb's default page cache (up to 1 GiB).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// Opens or creates the database file, keeping at most `cache_bytes` of its pages in memory.
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Store, StoreError> {
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)?;
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

/// How long a follower's applied batches may stay in memory-only commits before one is made
/// durable. A crash then costs their re-application from the log, never a skip or a double
/// application: each follower commits its cursor with its state.
const SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// Commits for a log follower: durable at most every [`SYNC_INTERVAL`], because an fsync per
/// batch caps a follower at the disk's sync rate when batches are small.
#[derive(Debug)]
pub struct LazySync {
    synced_at: std::time::Instant,
    unsynced: bool,
}

impl Default for LazySync {
    fn default() -> Self {
        Self {
            synced_at: std::time::Instant::now(),
            unsynced: false,
        }
    }
}

impl LazySync {
    /// Commits `txn`, durably when the last durable commit is old enough.
    pub fn commit(&mut self, mut txn: redb::WriteTransaction) -> Result<(), StoreError> {
        let durable = self.synced_at.elapsed() >= SYNC_INTERVAL;
        if !durable {
            txn.set_durability(redb::Durability::None)?;
        }
        txn.commit()?;
        self.note(durable);
        Ok(())
    }

    /// Makes every commit so far durable.
    pub fn sync(&mut self, store: &Store) -> Result<(), StoreError> {
        if self.unsynced {
            store.db().begin_write()?.commit()?;
            self.note(true);
        }
        Ok(())
    }

    /// Whether an idle follower should sync now.
    pub fn due(&self) -> bool {
        self.unsynced && self.synced_at.elapsed() >= SYNC_INTERVAL
    }

    fn note(&mut self, durable: bool) {
        if durable {
            self.synced_at = std::time::Instant::now();
        }
        self.unsynced = !durable;
    }
}
