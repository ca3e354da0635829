//! The events index: which log offsets hold a project's events, by time and by distinct id.
//!
//! It stores no event data, only `(project, timestamp, offset)` keys and the event name, so the
//! read API finds events here and reads them from the log.

use redb::{
    ReadOnlyTable, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction,
};

use crate::event::{ProjectId, StoredEvent};
use crate::store::{Store, StoreError};

pub(crate) const BY_TIME: TableDefinition<(u32, i64, u64), &str> =
    TableDefinition::new("events_by_time");
/// Keyed by a hash of the distinct id: fixed-width keys compare several times faster than
/// string keys, and this table takes an insert per event. Two distinct ids sharing a hash
/// (odds about 1 in 2^64 per pair) would list each other's events; readers check the id.
pub(crate) const BY_DISTINCT_ID: TableDefinition<DidKey, &str> =
    TableDefinition::new("events_by_distinct_id_hash");
/// `(project, distinct id hash, timestamp µs, offset)`.
type DidKey = (u32, u64, i64, u64);
/// The string-keyed table of earlier versions, dropped on reset.
const BY_DISTINCT_ID_V1: &str = "events_by_distinct_id";

/// The stable 64-bit hash (FNV-1a) of a distinct id that keys [`BY_DISTINCT_ID`]. It is
/// persisted, so it must never change.
pub fn distinct_id_hash(distinct_id: &str) -> u64 {
    distinct_id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Drops the index tables, for replay.
pub(crate) fn delete_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.delete_table(BY_TIME)?;
    txn.delete_table(BY_DISTINCT_ID)?;
    txn.delete_table(redb::TableDefinition::<(u32, &str, i64, u64), &str>::new(
        BY_DISTINCT_ID_V1,
    ))?;
    Ok(())
}

/// Index tables opened inside one write transaction.
///
/// Additions are held until [`IndexWriter::finish`] (or a deletion) and then inserted in key
/// order: events arrive in log order, which is random in both indexes' key orders, and sorted
/// inserts walk each B-tree's pages once instead of once per event.
pub struct IndexWriter<'txn, 'a> {
    by_time: Table<'txn, (u32, i64, u64), &'static str>,
    by_did: Table<'txn, DidKey, &'static str>,
    pending: Vec<(u64, &'a StoredEvent)>,
}

impl<'txn, 'a> IndexWriter<'txn, 'a> {
    /// Opens the tables in `txn`.
    pub fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            by_time: txn.open_table(BY_TIME)?,
            by_did: txn.open_table(BY_DISTINCT_ID)?,
            pending: Vec::new(),
        })
    }

    /// Indexes the event stored at `offset` (written by the next flush).
    pub fn add(&mut self, offset: u64, event: &'a StoredEvent) {
        self.pending.push((offset, event));
    }

    /// Writes every pending addition.
    pub fn finish(mut self) -> Result<(), StoreError> {
        self.flush()
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        let pending = &mut self.pending;
        pending.sort_unstable_by_key(|(offset, e)| (e.project, e.timestamp_us, *offset));
        for (offset, e) in pending.iter() {
            self.by_time
                .insert((e.project, e.timestamp_us, *offset), e.event.as_str())?;
        }
        let mut keyed: Vec<(DidKey, &str)> = pending
            .drain(..)
            .map(|(offset, e)| {
                let key = (
                    e.project,
                    distinct_id_hash(&e.distinct_id),
                    e.timestamp_us,
                    offset,
                );
                (key, e.event.as_str())
            })
            .collect();
        keyed.sort_unstable_by_key(|(key, _)| *key);
        for (key, name) in keyed {
            self.by_did.insert(key, name)?;
        }
        Ok(())
    }

    /// Applies a tombstone: drops every event of `distinct_ids` stored below `before_offset`.
    pub fn delete(
        &mut self,
        project: ProjectId,
        distinct_ids: &[String],
        before_offset: u64,
    ) -> Result<usize, StoreError> {
        self.flush()?;
        let mut removed = 0;
        for did in distinct_ids {
            let mut doomed = Vec::new();
            let hash = distinct_id_hash(did);
            for entry in self
                .by_did
                .range((project, hash, i64::MIN, 0)..=(project, hash, i64::MAX, u64::MAX))?
            {
                let (key, _) = entry?;
                let (_, _, ts, offset) = key.value();
                if offset < before_offset {
                    doomed.push((ts, offset));
                }
            }
            for (ts, offset) in doomed {
                self.by_did.remove((project, hash, ts, offset))?;
                self.by_time.remove((project, ts, offset))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// What to look for. Time bounds are µs since the epoch; `after` is inclusive, `before` exclusive.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// The project.
    pub project: ProjectId,
    /// Only events of these distinct ids (a person's ids), when set.
    pub distinct_ids: Option<Vec<String>>,
    /// Only events with this name.
    pub event: Option<String>,
    /// Only events at or after this time.
    pub after: Option<i64>,
    /// Only events before this time.
    pub before: Option<i64>,
    /// Continue below this `(timestamp, offset)` key: the last one a previous page returned.
    pub cursor: Option<(i64, u64)>,
    /// Most events to return.
    pub limit: usize,
}

/// One hit: where the event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hit {
    /// Event time, µs.
    pub timestamp_us: i64,
    /// Log offset of the record.
    pub offset: u64,
}

/// Finds events newest first. Returns up to `limit + 1` hits, so the caller knows whether there
/// is a next page.
pub fn query(store: &Store, q: &EventQuery) -> Result<Vec<Hit>, StoreError> {
    let txn = store.db().begin_read()?;
    let upper = upper_bound(q);
    let lower = q.after.unwrap_or(i64::MIN);
    let want = q.limit + 1;
    let name_ok = |name: &str| q.event.as_deref().is_none_or(|e| e == name);
    let mut hits = Vec::new();
    match &q.distinct_ids {
        None => {
            let table: ReadOnlyTable<(u32, i64, u64), &str> = match txn.open_table(BY_TIME) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(hits),
                Err(e) => return Err(e.into()),
            };
            for entry in table
                .range((q.project, lower, 0)..(q.project, upper.0, upper.1))?
                .rev()
            {
                let (key, name) = entry?;
                if name_ok(name.value()) {
                    let (_, timestamp_us, offset) = key.value();
                    hits.push(Hit {
                        timestamp_us,
                        offset,
                    });
                    if hits.len() >= want {
                        break;
                    }
                }
            }
        }
        Some(dids) => {
            let table = match txn.open_table(BY_DISTINCT_ID) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(hits),
                Err(e) => return Err(e.into()),
            };
            for did in dids {
                let mut taken = 0;
                let hash = distinct_id_hash(did);
                let range = (q.project, hash, lower, 0)..(q.project, hash, upper.0, upper.1);
                for entry in table.range(range)?.rev() {
                    let (key, name) = entry?;
                    if name_ok(name.value()) {
                        let (_, _, timestamp_us, offset) = key.value();
                        hits.push(Hit {
                            timestamp_us,
                            offset,
                        });
                        taken += 1;
                        if taken >= want {
                            break;
                        }
                    }
                }
            }
            hits.sort_unstable_by(|a, b| b.cmp(a));
            hits.truncate(want);
        }
    }
    Ok(hits)
}

/// The exclusive `(timestamp, offset)` upper bound from `before` and the page cursor.
fn upper_bound(q: &EventQuery) -> (i64, u64) {
    let before = q.before.map(|b| (b, 0)).unwrap_or((i64::MAX, u64::MAX));
    match q.cursor {
        Some(cursor) if cursor < before => cursor,
        _ => before,
    }
}
