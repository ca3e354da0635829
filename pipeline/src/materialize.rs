//! The materializer: the log consumer that keeps persons and groups, and hands each applied
//! batch, with the identity it resolved, to the insights feeder.
//!
//! It applies each batch of records and its cursor in one redb transaction, so after a crash it
//! resumes exactly where its last commit ended: nothing applied twice, nothing skipped. The
//! events index has its own follower ([`crate::indexer`]), so that index writes never delay
//! identity and the insights behind it.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::event::Record;
use crate::follow::{follow, Follower};
use crate::graph::feeder::{GraphBatch, IdentityChanges};
use crate::identity::{self, GroupWriter, PersonCache, PersonWriter};
use crate::log::{LogError, LogReader};
use crate::store::{LazySync, Store, StoreError, META};

const CURSOR: &str = "cursor.materializer";
/// `(project, distinct id)` → the first log offset whose events still count for that distinct
/// id, written when its person is deleted.
pub const DISTINCT_ID_CUTOFFS: redb::TableDefinition<(u32, &str), u64> =
    redb::TableDefinition::new("distinct_id_cutoffs");
/// Bytes of (compressed) log one transaction covers at most: about 20k typical events.
const BATCH_BYTES: usize = 2 << 20;

/// Errors of the materializer.
#[derive(Debug, thiserror::Error)]
pub enum MaterializeError {
    /// Reading the log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// Writing state failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Keeps derived state up to date with the log.
pub struct Materializer {
    store: Arc<Store>,
    reader: LogReader,
    cursor: u64,
    observer: Option<std::sync::mpsc::Sender<GraphBatch>>,
    sync: LazySync,
    /// Persons as of the last commit; dropped whenever a step fails.
    persons: PersonCache,
}

impl Materializer {
    /// Resumes from the stored cursor.
    pub fn new(store: Arc<Store>, reader: LogReader) -> Result<Self, MaterializeError> {
        let cursor = store.meta(CURSOR)?;
        Ok(Self {
            store,
            reader,
            cursor,
            observer: None,
            sync: LazySync::default(),
            persons: PersonCache::default(),
        })
    }

    /// Sends every applied batch, with the identity it resolved, to the insights feeder.
    pub fn with_observer(mut self, observer: std::sync::mpsc::Sender<GraphBatch>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The log offset everything below which has been applied.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Applies the next batch, if the log has one. Returns how many records were applied.
    pub fn step(&mut self) -> Result<usize, MaterializeError> {
        let batch = self.reader.read(self.cursor, BATCH_BYTES)?;
        if batch.records.is_empty() {
            return Ok(0);
        }
        let started = std::time::Instant::now();
        let txn = self.store.db().begin_write().map_err(StoreError::from)?;
        let identity;
        let cache;
        let misses;
        {
            let mut persons = PersonWriter::open_cached(&txn, std::mem::take(&mut self.persons))?;
            let mut groups = GroupWriter::open(&txn)?;
            let mut cutoffs = txn
                .open_table(DISTINCT_ID_CUTOFFS)
                .map_err(StoreError::from)?;
            let mut cut = Vec::new();
            for (offset, record) in &batch.records {
                match record {
                    Record::Event(event) => {
                        let props = identity::identity_properties(&event.properties);
                        identity::apply_event(&mut persons, &mut groups, event, &props)?;
                    }
                    Record::PersonDeleted {
                        project,
                        person_uuid,
                    } => {
                        let uuid = uuid::Uuid::from_bytes(*person_uuid);
                        if let Some(id) = persons.id_for_uuid(*project, uuid)? {
                            if let Some(person) = persons.load(*project, id)? {
                                persons.remove(&person)?;
                                // The person's events leave every insight, even if the same
                                // distinct ids come back later as a new person.
                                for did in &person.distinct_ids {
                                    cutoffs
                                        .insert((*project, did.as_str()), *offset + 1)
                                        .map_err(StoreError::from)?;
                                    cut.push((*project, did.clone(), *offset + 1));
                                }
                            }
                        }
                    }
                    // The insights feeder reads tombstones from the batch; the index has its own
                    // follower.
                    Record::EventsDeleted { .. } => {}
                }
            }
            identity = match self.observer {
                Some(_) => {
                    let mut changes = resolve_identity(&mut persons, &batch.records)?;
                    changes.cutoffs = cut;
                    Some(changes)
                }
                None => None,
            };
            let mut meta = txn.open_table(META).map_err(StoreError::from)?;
            meta.insert(CURSOR, batch.next).map_err(StoreError::from)?;
            misses = persons.take_misses();
            cache = persons.into_cache();
        }
        self.sync.commit(txn)?;
        self.persons = cache;
        let applied = batch.records.len();
        tracing::debug!(
            records = applied,
            next = batch.next,
            person_lookups = misses,
            ms = started.elapsed().as_millis() as u64,
            "materialized a batch"
        );
        if let (Some(observer), Some(identity)) = (&self.observer, identity) {
            let sent = observer.send(GraphBatch {
                start: self.cursor,
                next: batch.next,
                records: batch.records,
                identity,
            });
            if sent.is_err() {
                tracing::warn!("the insights feeder has stopped; no longer sending it batches");
                self.observer = None;
            }
        }
        self.cursor = batch.next;
        Ok(applied)
    }

    /// Makes every applied batch durable.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.sync.sync(&self.store)
    }

    /// Applies everything up to the log's current durable end, durably.
    pub fn catch_up(&mut self) -> Result<u64, MaterializeError> {
        while self.cursor < self.reader.end() {
            if self.step()? == 0 {
                break;
            }
        }
        self.sync()?;
        Ok(self.cursor)
    }

    /// Follows the log until `stop` is set, publishing the cursor after every batch.
    pub fn run(self, progress: watch::Sender<u64>, stop: Arc<AtomicBool>) {
        follow(self, progress, &stop);
    }

    /// Forgets all derived state so that the next run rebuilds it from offset 0.
    pub fn reset(store: &Store) -> Result<(), StoreError> {
        let txn = store.db().begin_write()?;
        identity::delete_tables(&txn)?;
        txn.delete_table(DISTINCT_ID_CUTOFFS)?;
        {
            let mut meta = txn.open_table(META)?;
            meta.remove(CURSOR)?;
        }
        txn.commit()?;
        Ok(())
    }
}

/// After a batch: where every distinct id the batch touched now points, and the current
/// properties of every person it touched. Read inside the batch's transaction, so exact.
fn resolve_identity(
    persons: &mut PersonWriter<'_>,
    records: &[(u64, Record)],
) -> Result<IdentityChanges, StoreError> {
    let touched = persons.take_touched();
    let mut dids: std::collections::BTreeSet<(u32, String)> =
        touched.unmapped.into_iter().collect();
    for (_, record) in records {
        if let Record::Event(e) = record {
            dids.insert((e.project, e.distinct_id.clone()));
        }
    }
    let mut changes = IdentityChanges::default();
    for (project, id) in touched.persons {
        let person = persons.load(project, id)?;
        if let Some(p) = &person {
            dids.extend(p.distinct_ids.iter().map(|d| (project, d.clone())));
        }
        changes
            .persons
            .push((project, id, person.map(|p| p.properties)));
    }
    for (project, did) in dids {
        let person = persons.person_id(project, &did)?;
        changes.distinct_ids.push((project, did, person));
    }
    Ok(changes)
}

impl Follower for Materializer {
    const NAME: &'static str = "materializer";
    const IDLE: Duration = Duration::from_millis(2);
    type Error = MaterializeError;

    fn step(&mut self) -> Result<usize, MaterializeError> {
        Materializer::step(self)
    }

    fn cursor(&self) -> u64 {
        self.cursor
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        Materializer::sync(self)
    }

    fn sync_due(&self) -> bool {
        self.sync.due()
    }
}
