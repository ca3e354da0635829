//! The indexer: the log follower that keeps the events index.
//!
//! It is its own follower, with its own cursor, so that the materializer (identity, which the
//! insights feed waits on) never waits for index writes. Its transactions are large: each one
//! rewrites every B-tree page it touches, and a person-keyed index touches pages all over the
//! tree, so more events per transaction means fewer page copies per event.
//!
//! Each batch and the cursor commit together, so after a crash it resumes exactly where its
//! last commit ended.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::event::Record;
use crate::events_index::{self, IndexWriter};
use crate::follow::{follow, Follower};
use crate::log::{byte_position, LogError, LogReader};
use crate::store::{LazySync, Store, StoreError, META};

const CURSOR: &str = "cursor.events_index";
/// Bytes of (compressed) log one transaction covers at most: about 150k typical events.
const BATCH_BYTES: usize = 16 << 20;
/// While following, the indexer waits for this much new log (about 10k events) or for
/// [`MAX_DELAY`], whichever comes first: a few hundred events per transaction would rewrite
/// nearly as many pages as ten thousand.
const MIN_BATCH_BYTES: u64 = 1 << 20;
const MAX_DELAY: Duration = Duration::from_millis(250);

/// Errors of the indexer.
#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    /// Reading the log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// Writing the index failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Keeps the events index up to date with the log.
pub struct Indexer {
    store: Arc<Store>,
    reader: LogReader,
    cursor: u64,
    sync: LazySync,
    stepped_at: Instant,
}

impl Indexer {
    /// Resumes from the stored cursor.
    pub fn new(store: Arc<Store>, reader: LogReader) -> Result<Self, IndexerError> {
        let cursor = store.meta(CURSOR)?;
        Ok(Self {
            store,
            reader,
            cursor,
            sync: LazySync::default(),
            stepped_at: Instant::now(),
        })
    }

    /// The log offset everything below which is indexed.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Indexes the next batch, if the log has one. Returns how many records it covered.
    pub fn step(&mut self) -> Result<usize, IndexerError> {
        let batch = self.reader.read(self.cursor, BATCH_BYTES)?;
        if batch.records.is_empty() {
            return Ok(0);
        }
        let txn = self.store.db().begin_write().map_err(StoreError::from)?;
        {
            let mut index = IndexWriter::open(&txn)?;
            for (offset, record) in &batch.records {
                match record {
                    Record::Event(event) => index.add(*offset, event),
                    Record::EventsDeleted {
                        project,
                        distinct_ids,
                        before_offset,
                    } => {
                        let removed = index.delete(*project, distinct_ids, *before_offset)?;
                        tracing::info!(project, removed, "applied an events tombstone");
                    }
                    // A deleted person's events are dropped by the tombstone that follows it.
                    Record::PersonDeleted { .. } => {}
                }
            }
            index.finish()?;
            let mut meta = txn.open_table(META).map_err(StoreError::from)?;
            meta.insert(CURSOR, batch.next).map_err(StoreError::from)?;
        }
        self.sync.commit(txn)?;
        self.cursor = batch.next;
        Ok(batch.records.len())
    }

    /// Indexes everything up to the log's current durable end, durably.
    pub fn catch_up(&mut self) -> Result<u64, IndexerError> {
        while self.cursor < self.reader.end() {
            if self.step()? == 0 {
                break;
            }
        }
        self.sync.sync(&self.store)?;
        Ok(self.cursor)
    }

    /// Follows the log until `stop` is set, publishing the cursor after every batch.
    pub fn run(self, progress: watch::Sender<u64>, stop: Arc<AtomicBool>) {
        follow(self, progress, &stop);
    }

    /// Forgets the index so that the next run rebuilds it from offset 0.
    pub fn reset(store: &Store) -> Result<(), StoreError> {
        let txn = store.db().begin_write()?;
        events_index::delete_tables(&txn)?;
        {
            let mut meta = txn.open_table(META)?;
            meta.remove(CURSOR)?;
        }
        txn.commit()?;
        Ok(())
    }
}

impl Follower for Indexer {
    const NAME: &'static str = "indexer";
    // Longer than the materializer's: nothing waits on the index but reads of the events list,
    // which wait for it explicitly.
    const IDLE: Duration = Duration::from_millis(10);
    type Error = IndexerError;

    fn step(&mut self) -> Result<usize, IndexerError> {
        self.stepped_at = Instant::now();
        Indexer::step(self)
    }

    fn cursor(&self) -> u64 {
        self.cursor
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.sync.sync(&self.store)
    }

    fn sync_due(&self) -> bool {
        self.sync.due()
    }

    fn ready(&mut self) -> bool {
        let backlog = byte_position(self.reader.end()).saturating_sub(byte_position(self.cursor));
        backlog == 0 || backlog >= MIN_BATCH_BYTES || self.stepped_at.elapsed() >= MAX_DELAY
    }
}
