//! The feeder: turns the log and identity's changes into dataflow rounds.
//!
//! It follows the materializer, which sends every applied batch with the identity it resolved
//! (where each touched distinct id points now, and touched persons' properties). The feeder
//! keeps the current distinct id → person mapping and emits only its changes: a merge becomes a
//! retraction and an insertion, and the dataflow re-keys the person's past events.
//!
//! Events of a distinct id without a person (`$process_person_profile: false`) still count:
//! they map to a synthetic person derived from the distinct id, until a real person claims it.
//!
//! On start (and when the insights' projection widens) the feeder bootstraps: it loads the
//! events up to the materializer's cursor and takes the mapping from the state store in one
//! read transaction, so the two agree. The events come from the checkpoint
//! ([`super::checkpoint`]) as far as it reaches, and from the log after that; as it feeds rounds
//! the feeder extends the checkpoint.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{ReadTransaction, ReadableDatabase, ReadableTable};
use serde_json::{Map, Value};

use crate::event::{ProjectId, Record, StoredEvent};
use crate::identity::persons::{DISTINCT_IDS, PERSONS};
use crate::log::{LogError, LogReader};
use crate::materialize::DISTINCT_ID_CUTOFFS;
use crate::store::{from_json, Store, StoreError, META};

use super::checkpoint::{self, Chunk, ChunkWriter};
use super::engine::{Engine, EngineError};
use super::row::{EventRow, Interner, PropValue, Props, Sym, NO_EVENT};
use super::runtime::{Mapping, PersonKey, PersonProps, Round};

/// The materializer's cursor key in the meta table.
const MATERIALIZER_CURSOR: &str = "cursor.materializer";
/// Events past which a round is sent even while the previous one is still being computed. Large
/// rounds amortise the dataflow's cost per round (replaying each touched person's history).
const ROUND_EVENTS: usize = 200_000;
/// The largest round a bootstrap sends; it waits for the dataflow rather than grow one further.
const BOOTSTRAP_ROUND_EVENTS: usize = 400_000;
/// Bytes of (compressed) log read per bootstrap step: about 40k typical events.
const BOOTSTRAP_BYTES: usize = 4 << 20;
/// Marks synthetic person ids (distinct ids without a person).
const SYNTHETIC: u64 = 1 << 63;
/// Distinct property sets the feeder remembers for sharing. Past it the table starts over:
/// rows keep their sets, new rows just stop sharing with them (high-cardinality properties
/// would otherwise grow the table without bound).
const SHARED_PROPS: usize = 1 << 20;
/// Events past which the feeder closes a checkpoint chunk.
const CHUNK_EVENTS: usize = 250_000;
/// The longest a checkpoint chunk stays open: what a crash makes a restart read from the log.
const CHUNK_AGE: Duration = Duration::from_secs(10);

/// A touched person's current properties; `None` when the person was removed.
pub type PersonState = (ProjectId, u64, Option<Map<String, Value>>);

/// Identity as resolved at the end of one materializer batch.
#[derive(Debug, Default)]
pub struct IdentityChanges {
    /// `(project, distinct id, person id)` for every distinct id the batch touched.
    pub distinct_ids: Vec<(ProjectId, String, Option<u64>)>,
    /// `(project, person id, properties)` for every person the batch touched; `None` = removed.
    pub persons: Vec<PersonState>,
    /// `(project, distinct id, offset)`: events of the distinct id below the offset no longer
    /// count (their person was deleted).
    pub cutoffs: Vec<(ProjectId, String, u64)>,
}

/// One applied materializer batch.
#[derive(Debug)]
pub struct GraphBatch {
    /// The batch's first offset.
    pub start: u64,
    /// The offset after it.
    pub next: u64,
    /// Its records.
    pub records: Vec<(u64, Record)>,
    /// Identity after it.
    pub identity: IdentityChanges,
}

/// Which properties the feeder copies into rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Projection {
    /// Event property keys.
    pub event_keys: Vec<String>,
    /// Person property keys.
    pub person_keys: Vec<String>,
}

impl Projection {
    /// Whether `self` already covers everything `other` reads.
    pub fn covers(&self, other: &Projection) -> bool {
        other.event_keys.iter().all(|k| self.event_keys.contains(k))
            && other
                .person_keys
                .iter()
                .all(|k| self.person_keys.contains(k))
    }

    /// The union of both.
    pub fn union(&self, other: &Projection) -> Projection {
        let mut out = self.clone();
        for k in &other.event_keys {
            if !out.event_keys.contains(k) {
                out.event_keys.push(k.clone());
            }
        }
        for k in &other.person_keys {
            if !out.person_keys.contains(k) {
                out.person_keys.push(k.clone());
            }
        }
        out.event_keys.sort();
        out.person_keys.sort();
        out
    }
}

/// Errors of the feeder.
#[derive(Debug, thiserror::Error)]
pub enum FeederError {
    /// Reading the log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// Reading the state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The dataflow failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The checkpoint writer's thread did not start.
    #[error("starting the insights checkpoint writer: {0}")]
    Checkpoint(#[from] std::io::Error),
}

/// Where a bootstrap found the events it loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bootstrap {
    /// The materializer's cursor: everything below it is loaded.
    pub end: u64,
    /// Events below this offset came from the checkpoint.
    pub checkpoint: u64,
    /// Events read from the log.
    pub log_events: u64,
    /// Bytes of checkpoint loaded.
    pub checkpoint_bytes: u64,
}

/// The key of a distinct id in the dataflow.
pub fn distinct_key(project: ProjectId, distinct_id: &str) -> u64 {
    let mut h = DefaultHasher::new();
    project.hash(&mut h);
    distinct_id.hash(&mut h);
    h.finish()
}

/// Converts log records into rounds, keeping the mapping it has emitted.
pub struct Feeder {
    engine: Arc<Engine>,
    interner: Arc<Interner>,
    event_keys: Vec<(String, Sym)>,
    person_keys: Vec<(String, Sym)>,
    mappings: HashMap<u64, Mapping>,
    cutoffs: HashMap<u64, u64>,
    person_props: HashMap<PersonKey, PersonProps>,
    /// Property sets handed out, so that equal sets share one allocation.
    shared: HashSet<Props>,
    round: Round,
    round_events: usize,
    /// The log offset everything below which has been fed.
    cursor: Arc<AtomicU64>,
    checkpoint: Option<Checkpointing>,
}

/// The feeder's side of the checkpoint.
struct Checkpointing {
    writer: ChunkWriter,
    /// The chunk being filled; `None` until the feeder has loaded the stored ones.
    open: Option<Chunk>,
    opened_at: Instant,
    /// First sightings and tombstones of records not yet flushed: a chunk ends where a round
    /// does, so they join it with their round.
    unflushed_distinct_ids: Vec<(ProjectId, String)>,
    unflushed_cuts: Vec<(u64, u64)>,
}
impl Feeder {
    /// A feeder for `engine` that projects `projection`.
    pub fn new(engine: Arc<Engine>, interner: Arc<Interner>, projection: &Projection) -> Self {
        let intern = |keys: &[String]| -> Vec<(String, Sym)> {
            let mut v: Vec<(String, Sym)> = keys
                .iter()
                .map(|k| (k.clone(), interner.intern(k)))
                .collect();
            v.sort_by_key(|(_, s)| *s);
            v
        };
        // Sorted by name, which is how `project` looks keys up.
        let mut event_keys = intern(&projection.event_keys);
        event_keys.sort();
        Self {
            event_keys,
            person_keys: intern(&projection.person_keys),
            engine,
            interner,
            mappings: HashMap::new(),
            cutoffs: HashMap::new(),
            person_props: HashMap::new(),
            shared: HashSet::new(),
            round: Round::default(),
            round_events: 0,
            cursor: Arc::new(AtomicU64::new(0)),
            checkpoint: None,
        }
    }

    /// Loads from, and extends, the checkpoint in `store`.
    pub fn with_checkpoint(mut self, store: Arc<Store>) -> Result<Self, FeederError> {
        self.checkpoint = Some(Checkpointing {
            writer: ChunkWriter::start(store, self.interner.clone())?,
            open: None,
            opened_at: Instant::now(),
            unflushed_distinct_ids: Vec::new(),
            unflushed_cuts: Vec::new(),
        });
        Ok(self)
    }

    /// The event property keys the feeder projects: at least those it was made with, more if
    /// it adopted a checkpoint that projected more.
    pub fn event_keys(&self) -> Vec<String> {
        self.event_keys.iter().map(|(k, _)| k.clone()).collect()
    }

    /// The offset fed so far, shared so that readers can wait for freshness.
    pub fn cursor(&self) -> Arc<AtomicU64> {
        self.cursor.clone()
    }

    /// Loads everything the materializer has applied: the events up to its cursor (from the
    /// checkpoint as far as it reaches, then the log), and identity as of that cursor.
    pub fn bootstrap(
        &mut self,
        store: &Store,
        reader: &mut LogReader,
    ) -> Result<Bootstrap, FeederError> {
        let txn = store.db().begin_read().map_err(StoreError::from)?;
        let end = match txn.open_table(META) {
            Ok(meta) => meta
                .get(MATERIALIZER_CURSOR)
                .map_err(StoreError::from)?
                .map_or(0, |v| v.value()),
            Err(redb::TableError::TableDoesNotExist(_)) => 0,
            Err(e) => return Err(StoreError::from(e).into()),
        };
        // Identity as of `end`, from the same read transaction, before any event: each
        // distinct id is mapped to its person when first seen. (Mapped at the end instead, a
        // bootstrap's last round re-keyed every event, and the insights installed for the
        // load replayed the whole history in that one round.)
        match txn.open_table(DISTINCT_ID_CUTOFFS) {
            Ok(t) => {
                for entry in t.iter().map_err(StoreError::from)? {
                    let (k, v) = entry.map_err(StoreError::from)?;
                    let (project, did) = k.value();
                    let key = distinct_key(project, did);
                    let cut = self.cutoffs.entry(key).or_default();
                    *cut = (*cut).max(v.value());
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(StoreError::from(e).into()),
        }
        if !self.person_keys.is_empty() {
            if let Ok(persons) = txn.open_table(PERSONS) {
                for entry in persons.iter().map_err(StoreError::from)? {
                    let (k, v) = entry.map_err(StoreError::from)?;
                    let (project, id) = k.value();
                    let person: crate::identity::Person = from_json("person", v.value())?;
                    self.set_person_props(project, id, Some(&person.properties));
                }
            }
        }
        let persons = match txn.open_table(DISTINCT_IDS) {
            Ok(t) => Some(t),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(StoreError::from(e).into()),
        };
        let mut first_seen = |feeder: &mut Self, project: ProjectId, did: &str| {
            let key = distinct_key(project, did);
            if feeder.mappings.contains_key(&key) {
                return Ok::<_, FeederError>(());
            }
            let person = match &persons {
                Some(t) => t
                    .get((project, did))
                    .map_err(StoreError::from)?
                    .map(|v| v.value()),
                None => None,
            };
            feeder.map(key, project, person);
            feeder.checkpoint_first_sighting(project, did);
            Ok(())
        };
        let (mut offset, checkpoint_bytes) = self.load_checkpoint(&txn, end, &mut first_seen)?;
        let loaded = Bootstrap {
            end,
            checkpoint: offset,
            log_events: 0,
            checkpoint_bytes,
        };
        self.open_chunk(offset);
        let mut log_events = 0;
        while offset < end {
            let batch = reader.read(offset, BOOTSTRAP_BYTES)?;
            if batch.records.is_empty() {
                break;
            }
            for (at, record) in &batch.records {
                if *at >= end {
                    break;
                }
                if let Record::Event(e) = record {
                    first_seen(self, e.project, &e.distinct_id)?;
                    log_events += 1;
                }
                self.record(*at, record);
            }
            offset = batch.next.min(end);
            self.flush_if_full(offset)?;
        }
        self.flush(end)?;
        // Loaded means computed: results read after this reflect everything up to `end`.
        self.wait_for_rounds();
        Ok(Bootstrap {
            log_events,
            ..loaded
        })
    }

    /// Feeds the stored checkpoint's chunks that `end` covers. Returns the offset they reach
    /// and their size in bytes.
    fn load_checkpoint(
        &mut self,
        txn: &ReadTransaction,
        end: u64,
        first_seen: &mut impl FnMut(&mut Self, ProjectId, &str) -> Result<(), FeederError>,
    ) -> Result<(u64, u64), FeederError> {
        if self.checkpoint.is_none() {
            return Ok((0, 0));
        }
        let (mut offset, mut bytes_loaded) = (0, 0);
        let mut keys: Option<Vec<String>> = None;
        if let Some(table) = checkpoint::open(txn)? {
            for entry in table.iter().map_err(StoreError::from)? {
                let (start, bytes) = entry.map_err(StoreError::from)?;
                if start.value() != offset {
                    break;
                }
                let interner = self.interner.clone();
                let chunk = match checkpoint::decode(offset, bytes.value(), &interner, |layout| {
                    self.share(layout)
                }) {
                    Ok(chunk) => chunk,
                    Err(e) => {
                        tracing::warn!(error = %e, "the insights checkpoint ends at a chunk that does not decode");
                        break;
                    }
                };
                if chunk.next > end {
                    break;
                }
                match &keys {
                    // The first chunk decides: a checkpoint that projected at least what the
                    // feeder needs is used, and the feeder projects what it did from then on.
                    None => {
                        let ours = self.event_keys();
                        if !ours.iter().all(|k| chunk.event_keys.contains(k)) {
                            break;
                        }
                        self.set_event_keys(&chunk.event_keys);
                        keys = Some(chunk.event_keys.clone());
                    }
                    Some(keys) if *keys != chunk.event_keys => break,
                    Some(_) => {}
                }
                for (project, did) in &chunk.distinct_ids {
                    first_seen(self, *project, did)?;
                }
                self.round_events += chunk.events.len();
                self.round
                    .events
                    .extend(chunk.events.into_iter().map(|(key, row)| (key, row, 1)));
                for (key, at) in chunk.cuts {
                    self.cut(key, at);
                }
                offset = chunk.next;
                bytes_loaded += bytes.value().len() as u64;
                self.flush_if_full(offset)?;
            }
        }
        if let Some(cp) = &self.checkpoint {
            cp.writer.truncate(offset);
        }
        Ok((offset, bytes_loaded))
    }

    fn set_event_keys(&mut self, keys: &[String]) {
        let mut event_keys: Vec<(String, Sym)> = keys
            .iter()
            .map(|k| (k.clone(), self.interner.intern(k)))
            .collect();
        event_keys.sort();
        self.event_keys = event_keys;
    }

    /// Starts filling a checkpoint chunk at `offset`.
    fn open_chunk(&mut self, offset: u64) {
        let event_keys = self.event_keys();
        if let Some(cp) = &mut self.checkpoint {
            cp.open = Some(Chunk {
                start: offset,
                next: offset,
                event_keys,
                ..Chunk::default()
            });
            cp.opened_at = Instant::now();
        }
    }

    /// Notes a distinct id seen for the first time, for the open checkpoint chunk: a chunk
    /// names each distinct id once, where the feeder first saw it. (None is open while the
    /// stored chunks load; they already name theirs.)
    fn checkpoint_first_sighting(&mut self, project: ProjectId, did: &str) {
        if let Some(cp) = self.checkpoint.as_mut().filter(|cp| cp.open.is_some()) {
            cp.unflushed_distinct_ids.push((project, did.to_string()));
        }
    }

    /// Adds the round about to be fed (ending at `offset`) to the open checkpoint chunk, and
    /// closes the chunk if it is full or old enough.
    fn checkpoint_round(&mut self, offset: u64) {
        let Some(cp) = &mut self.checkpoint else {
            return;
        };
        let Some(open) = &mut cp.open else {
            return;
        };
        open.events.extend(
            self.round
                .events
                .iter()
                .map(|(key, row, _)| (*key, row.clone())),
        );
        open.distinct_ids.append(&mut cp.unflushed_distinct_ids);
        open.cuts.append(&mut cp.unflushed_cuts);
        open.next = offset;
        if open.next > open.start
            && (open.events.len() >= CHUNK_EVENTS || cp.opened_at.elapsed() >= CHUNK_AGE)
        {
            let next = Chunk {
                start: offset,
                next: offset,
                event_keys: open.event_keys.clone(),
                ..Chunk::default()
            };
            cp.writer.write(std::mem::replace(open, next));
            cp.opened_at = Instant::now();
        }
    }

    /// Applies one materializer batch.
    pub fn apply(&mut self, batch: &GraphBatch) -> Result<(), FeederError> {
        for (at, record) in &batch.records {
            self.record(*at, record);
        }
        for (project, did, offset) in &batch.identity.cutoffs {
            self.cut(distinct_key(*project, did), *offset);
        }
        for (project, did, person) in &batch.identity.distinct_ids {
            self.map(distinct_key(*project, did), *project, *person);
        }
        if !self.person_keys.is_empty() {
            for (project, id, props) in &batch.identity.persons {
                self.set_person_props(*project, *id, props.as_ref());
            }
        }
        Ok(())
    }

    /// Sends the pending round if it is large enough, for a bootstrap.
    ///
    /// While the dataflow still computes a round, the next one grows rather than queueing
    /// behind it, up to a cap; past the cap the bootstrap waits. Queued rounds would each
    /// replay the persons they touch, and the checkpoint loads faster than the dataflow
    /// computes; the cap bounds what one round's computation holds at once.
    pub fn flush_if_full(&mut self, offset: u64) -> Result<(), FeederError> {
        if self.round_events < ROUND_EVENTS {
            return Ok(());
        }
        if self.engine.rounds_in_flight() > 0 {
            if self.round_events < BOOTSTRAP_ROUND_EVENTS {
                return Ok(());
            }
            self.wait_for_rounds();
        }
        self.flush(offset)
    }

    /// Waits until the dataflow has computed every round fed.
    fn wait_for_rounds(&self) {
        while self.engine.rounds_in_flight() > 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Sends the pending round, marking the dataflow as having reached `offset`.
    pub fn flush(&mut self, offset: u64) -> Result<(), FeederError> {
        self.checkpoint_round(offset);
        let round = std::mem::take(&mut self.round);
        tracing::debug!(events = self.round_events, offset, "feeding a round");
        self.round_events = 0;
        self.engine.feed(round, offset)?;
        self.cursor.store(offset, Ordering::Release);
        Ok(())
    }

    fn record(&mut self, offset: u64, record: &Record) {
        match record {
            Record::Event(e) => {
                let key = distinct_key(e.project, &e.distinct_id);
                let row = self.row(offset, e);
                self.round.events.push((key, row, 1));
                self.round_events += 1;
                if !self.mappings.contains_key(&key) {
                    // A first sighting: map it now so that the round is complete even when
                    // identity arrives with the same batch (it then corrects this).
                    self.map(key, e.project, None);
                    self.checkpoint_first_sighting(e.project, &e.distinct_id);
                }
            }
            Record::EventsDeleted {
                project,
                distinct_ids,
                before_offset,
            } => {
                for did in distinct_ids {
                    let key = distinct_key(*project, did);
                    self.cut(key, *before_offset);
                    if let Some(cp) = &mut self.checkpoint {
                        cp.unflushed_cuts.push((key, *before_offset));
                    }
                }
            }
            // The person's distinct ids arrive unmapped in the batch's identity changes.
            Record::PersonDeleted { .. } => {}
        }
    }

    /// Events of `key` below `offset` stop counting.
    fn cut(&mut self, key: u64, offset: u64) {
        let cut = self.cutoffs.entry(key).or_default();
        *cut = (*cut).max(offset);
        if let Some(m) = self.mappings.get(&key).copied() {
            self.set_mapping(
                key,
                Mapping {
                    min_offset: m.min_offset.max(offset),
                    ..m
                },
            );
        }
    }

    /// The shared copy of a [`Props::layout`].
    fn share(&mut self, layout: Vec<(Sym, PropValue)>) -> Props {
        if let Some(shared) = self.shared.get(layout.as_slice()) {
            return shared.clone();
        }
        if self.shared.len() >= SHARED_PROPS {
            self.shared.clear();
        }
        let props = Props::from_layout(layout);
        self.shared.insert(props.clone());
        props
    }

    fn row(&mut self, offset: u64, e: &StoredEvent) -> EventRow {
        let event = self.interner.intern(&e.event);
        let props = if self.event_keys.is_empty() {
            self.share(Props::layout(event, []))
        } else {
            let values = super::project::project(&e.properties, &self.event_keys, |(k, _)| k);
            let mut props: Vec<(Sym, PropValue)> = values
                .iter()
                .zip(&self.event_keys)
                .filter_map(|(v, (_, sym))| {
                    v.as_ref()
                        .and_then(|v| self.interner.value(v))
                        .map(|v| (*sym, v))
                })
                .collect();
            props.sort_unstable_by_key(|(sym, _)| *sym);
            self.share(Props::layout(event, props))
        };
        EventRow {
            ts_ms: e.timestamp_us.div_euclid(1000),
            offset,
            props,
        }
    }

    fn project_props(&mut self, map: &Map<String, Value>) -> PersonProps {
        let props = self
            .person_keys
            .iter()
            .filter_map(|(k, sym)| {
                map.get(k)
                    .and_then(|v| self.interner.value(v))
                    .map(|v| (*sym, v))
            })
            .collect::<Vec<(Sym, PropValue)>>();
        self.share(Props::layout(NO_EVENT, props))
    }

    fn map(&mut self, key: u64, project: ProjectId, person: Option<u64>) {
        let person = person.unwrap_or(SYNTHETIC | (key >> 1));
        let min_offset = self.cutoffs.get(&key).copied().unwrap_or(0);
        self.set_mapping(
            key,
            Mapping {
                person: (project, person),
                min_offset,
            },
        );
    }

    fn set_mapping(&mut self, key: u64, mapping: Mapping) {
        match self.mappings.insert(key, mapping) {
            Some(old) if old == mapping => return,
            Some(old) => self.round.mappings.push((key, old, -1)),
            None => {}
        }
        self.round.mappings.push((key, mapping, 1));
    }

    fn set_person_props(
        &mut self,
        project: ProjectId,
        id: u64,
        props: Option<&Map<String, Value>>,
    ) {
        let key = (project, id);
        let new = props.map(|p| self.project_props(p));
        let old = match &new {
            Some(n) => self.person_props.insert(key, n.clone()),
            None => self.person_props.remove(&key),
        };
        if old == new {
            return;
        }
        if let Some(old) = old {
            self.round.person_props.push((key, old, -1));
        }
        if let Some(new) = new {
            self.round.person_props.push((key, new, 1));
        }
    }

    /// Follows the materializer's batches until `stop` or `rebuild` is set, or the channel
    /// closes. Batches that end at or before `from` are already loaded (by
    /// [`Feeder::bootstrap`]).
    pub fn run(
        mut self,
        batches: &Receiver<GraphBatch>,
        from: u64,
        stop: &AtomicBool,
        rebuild: &AtomicBool,
    ) {
        // The offset the pending round reaches, once it holds anything.
        let mut pending: Option<u64> = None;
        while !stop.load(Ordering::Relaxed) && !rebuild.load(Ordering::Relaxed) {
            let wait = if pending.is_some() { 2 } else { 50 };
            match batches.recv_timeout(Duration::from_millis(wait)) {
                Ok(batch) => {
                    for batch in std::iter::once(batch).chain(batches.try_iter()) {
                        if batch.next <= from {
                            continue;
                        }
                        if let Err(e) = self.apply(&batch) {
                            tracing::error!(error = %e, "the insights feeder failed a batch");
                        }
                        pending = Some(batch.next);
                        if self.round_events >= ROUND_EVENTS {
                            break;
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            // While the dataflow is still busy with a round, the next one keeps growing: a
            // round costs about the same whatever its size, so under load rounds get larger
            // instead of queueing up behind each other.
            let Some(offset) = pending else { continue };
            if self.round_events < ROUND_EVENTS && self.engine.rounds_in_flight() > 0 {
                continue;
            }
            if let Err(e) = self.flush(offset) {
                tracing::error!(error = %e, "the insights dataflow stopped");
                return;
            }
            pending = None;
        }
    }
}

impl Drop for Feeder {
    /// Stores what the open checkpoint chunk holds of the rounds fed, so that a restart after
    /// a clean stop reads nothing from the log. (Its writer then waits for the write.)
    fn drop(&mut self) {
        if let Some(cp) = &mut self.checkpoint {
            if let Some(open) = cp.open.take().filter(|c| c.next > c.start) {
                cp.writer.write(open);
            }
        }
    }
}
