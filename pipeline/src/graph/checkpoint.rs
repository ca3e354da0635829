//! The insights dataflow's checkpoint: the feeder's input, in narrow form, kept in the state
//! store so that a restart loads it instead of replaying the log.
//!
//! What is saved is the dataflow's input, not its arrangements. Differential's traces have no
//! stable serialized form, and rebuilding them from their input is what a new insight set does
//! anyway. What a restart would otherwise spend is reading the whole log and parsing every
//! event's JSON properties; in narrow form an event is a handful of varints.
//!
//! The checkpoint is a run of chunks, each covering a range of log offsets `[start, next)`
//! that ends where a feeder round ended. A chunk holds:
//! - the event property keys it projected (a chunk projected otherwise is not used);
//! - the rows of its events, with the distinct ids first seen in it;
//! - the distinct ids whose earlier events were deleted (`EventsDeleted` tombstones).
//!
//! Identity (where each distinct id points, persons' properties, deleted persons' cutoffs) is
//! not in chunks: the state store has it as of the materializer's cursor, and the feeder reads
//! it from there whichever way it loaded the events.
//!
//! Chunks are written by their own thread without waiting for a sync: a chunk lost to a crash
//! is just read from the log again. Loading stops at the first chunk that does not follow on
//! from the previous one, does not decode, or reaches past the materializer's cursor; the
//! feeder then reads the log from there and rewrites the chunks after it.

use std::collections::HashMap;
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use integer_encoding::VarInt;
use redb::{ReadOnlyTable, ReadTransaction, TableDefinition};

use crate::event::ProjectId;
use crate::store::{Store, StoreError};

use super::row::{EventRow, Interner, PropValue, Props, Sym};

/// Chunks by the offset they start at.
pub(crate) const CHUNKS: TableDefinition<u64, &[u8]> = TableDefinition::new("insights_checkpoint");

/// The encoding's version; a chunk of another version is not used.
const VERSION: u64 = 2;

/// One chunk of the checkpoint, with rows interned in this process's [`Interner`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chunk {
    /// The first log offset covered.
    pub start: u64,
    /// The offset after the last one covered.
    pub next: u64,
    /// The event property keys the rows were projected with, sorted.
    pub event_keys: Vec<String>,
    /// `(project, distinct id)` of the distinct ids first seen in this chunk.
    pub distinct_ids: Vec<(ProjectId, String)>,
    /// `(distinct key, row)` of every event.
    pub events: Vec<(u64, EventRow)>,
    /// `(distinct key, offset)`: the distinct id's events below the offset were deleted.
    pub cuts: Vec<(u64, u64)>,
}

/// Why a stored chunk cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The bytes do not decode: a damaged file or another version's encoding.
    #[error("insights checkpoint chunk at {start}: {detail}")]
    Corrupt {
        /// The chunk's key.
        start: u64,
        /// What was wrong.
        detail: String,
    },
    /// Reading the state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Encodes a chunk: varints, with strings, numbers and property sets in tables of their own,
/// compressed, behind a checksum.
pub fn encode(chunk: &Chunk, interner: &Interner) -> Vec<u8> {
    let mut tables = Tables::default();
    let mut rows = Writer::default();
    let mut keys: HashMap<u64, u64> = HashMap::new();
    let mut key_list = Vec::new();
    let (mut offset, mut ts) = (chunk.start, 0i64);
    rows.count(chunk.events.len());
    for (key, row) in &chunk.events {
        let next_key = keys.len() as u64;
        let key_index = *keys.entry(*key).or_insert_with(|| {
            key_list.push(*key);
            next_key
        });
        rows.uint(key_index);
        rows.int(row.offset.wrapping_sub(offset) as i64);
        rows.int(row.ts_ms.wrapping_sub(ts));
        rows.uint(tables.props(&row.props, interner));
        (offset, ts) = (row.offset, row.ts_ms);
    }

    let mut out = Writer::default();
    out.uint(VERSION);
    out.uint(chunk.start);
    out.uint(chunk.next);
    out.count(chunk.event_keys.len());
    for k in &chunk.event_keys {
        out.str(k);
    }
    out.count(tables.strings.len());
    for s in &tables.strings {
        out.str(s);
    }
    out.count(tables.numbers.len());
    for n in &tables.numbers {
        out.bytes.extend_from_slice(&n.to_le_bytes());
    }
    out.count(tables.layouts.len());
    for layout in &tables.layouts {
        out.count(layout.len());
        for (key, tag, value) in layout {
            out.uint(*key);
            out.uint(*tag);
            out.uint(*value);
        }
    }
    out.count(chunk.distinct_ids.len());
    for (project, did) in &chunk.distinct_ids {
        out.uint(u64::from(*project));
        out.str(did);
    }
    out.count(key_list.len());
    for key in &key_list {
        out.bytes.extend_from_slice(&key.to_le_bytes());
    }
    out.bytes.extend_from_slice(&rows.bytes);
    out.count(chunk.cuts.len());
    for (key, at) in &chunk.cuts {
        out.bytes.extend_from_slice(&key.to_le_bytes());
        out.uint(*at);
    }
    let mut packed = lz4_flex::compress_prepend_size(&out.bytes);
    let crc = crc32fast::hash(&packed);
    packed.extend_from_slice(&crc.to_le_bytes());
    packed
}

/// Decodes a chunk stored under `start`, interning its strings and sharing its property sets
/// through `share`.
pub fn decode(
    start: u64,
    bytes: &[u8],
    interner: &Interner,
    mut share: impl FnMut(Vec<(Sym, PropValue)>) -> Props,
) -> Result<Chunk, CheckpointError> {
    let corrupt = |detail: &str| CheckpointError::Corrupt {
        start,
        detail: detail.to_string(),
    };
    let (body, crc) = bytes
        .split_last_chunk::<4>()
        .ok_or_else(|| corrupt("shorter than its checksum"))?;
    if crc32fast::hash(body) != u32::from_le_bytes(*crc) {
        return Err(corrupt("checksum mismatch"));
    }
    let plain = lz4_flex::decompress_size_prepended(body).map_err(|e| corrupt(&e.to_string()))?;
    let mut r = Reader {
        bytes: &plain,
        start,
    };
    if r.uint()? != VERSION {
        return Err(corrupt("another version's encoding"));
    }
    let mut chunk = Chunk {
        start: r.uint()?,
        next: r.uint()?,
        ..Chunk::default()
    };
    if chunk.start != start || chunk.next < start {
        return Err(corrupt("its range does not match its key"));
    }
    for _ in 0..r.count()? {
        chunk.event_keys.push(r.str()?.to_string());
    }
    let strings: Vec<Sym> = (0..r.count()?)
        .map(|_| r.str().map(|s| interner.intern(s)))
        .collect::<Result<_, _>>()?;
    let numbers: Vec<PropValue> = (0..r.count()?)
        .map(|_| r.fixed().map(|bits| interner.number(f64::from_bits(bits))))
        .collect::<Result<_, _>>()?;
    let mut layouts = Vec::new();
    for _ in 0..r.count()? {
        let mut layout = Vec::new();
        for _ in 0..r.count()? {
            let key = *index(&strings, r.uint()?).ok_or_else(|| corrupt("unknown key"))?;
            let value = match (r.uint()?, r.uint()?) {
                (TAG_BOOL, b) => PropValue::Bool(b != 0),
                (TAG_NUM, i) => *index(&numbers, i).ok_or_else(|| corrupt("unknown number"))?,
                (TAG_STR, i) => {
                    PropValue::Str(*index(&strings, i).ok_or_else(|| corrupt("unknown string"))?)
                }
                _ => return Err(corrupt("unknown value tag")),
            };
            layout.push((key, value));
        }
        if layout.is_empty() {
            return Err(corrupt("a property set without its event name"));
        }
        // Symbols of this process may sort otherwise than the writer's did.
        layout[1..].sort_unstable_by_key(|(key, _)| *key);
        layouts.push(share(layout));
    }
    for _ in 0..r.count()? {
        let project = ProjectId::try_from(r.uint()?).map_err(|_| corrupt("project id"))?;
        chunk.distinct_ids.push((project, r.str()?.to_string()));
    }
    let keys: Vec<u64> = (0..r.count()?)
        .map(|_| r.fixed())
        .collect::<Result<_, _>>()?;
    let (mut offset, mut ts) = (chunk.start, 0i64);
    for _ in 0..r.count()? {
        let key = *index(&keys, r.uint()?).ok_or_else(|| corrupt("unknown distinct key"))?;
        offset = offset.wrapping_add(r.int()? as u64);
        ts = ts.wrapping_add(r.int()?);
        let props = index(&layouts, r.uint()?)
            .ok_or_else(|| corrupt("unknown property set"))?
            .clone();
        chunk.events.push((
            key,
            EventRow {
                ts_ms: ts,
                offset,
                props,
            },
        ));
    }
    for _ in 0..r.count()? {
        let key = r.fixed()?;
        chunk.cuts.push((key, r.uint()?));
    }
    if !r.bytes.is_empty() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(chunk)
}

fn index<T>(table: &[T], i: u64) -> Option<&T> {
    usize::try_from(i).ok().and_then(|i| table.get(i))
}

const TAG_BOOL: u64 = 0;
const TAG_NUM: u64 = 1;
const TAG_STR: u64 = 2;

/// A chunk's own tables of strings, numbers and property sets: symbols are this process's
/// alone, so a chunk names values by their index in its tables instead.
#[derive(Default)]
struct Tables {
    strings: Vec<Arc<str>>,
    string_index: HashMap<Sym, u64>,
    numbers: Vec<u64>,
    number_index: HashMap<Sym, u64>,
    /// `(key string, value tag, value)` per entry; the first entry's key is the event name.
    layouts: Vec<Vec<(u64, u64, u64)>>,
    layout_index: HashMap<Props, u64>,
}

impl Tables {
    fn props(&mut self, props: &Props, interner: &Interner) -> u64 {
        if let Some(i) = self.layout_index.get(props) {
            return *i;
        }
        let mut layout = vec![(self.string(props.event(), interner), TAG_BOOL, 0)];
        for (key, value) in props.iter() {
            let key = self.string(*key, interner);
            layout.push(match value {
                PropValue::Bool(b) => (key, TAG_BOOL, u64::from(*b)),
                PropValue::Num(sym) => (key, TAG_NUM, self.number(*sym, interner)),
                PropValue::Str(sym) => (key, TAG_STR, self.string(*sym, interner)),
            });
        }
        let i = self.layouts.len() as u64;
        self.layouts.push(layout);
        self.layout_index.insert(props.clone(), i);
        i
    }

    fn string(&mut self, sym: Sym, interner: &Interner) -> u64 {
        let next = self.strings.len() as u64;
        *self.string_index.entry(sym).or_insert_with(|| {
            self.strings.push(interner.resolve(sym));
            next
        })
    }

    fn number(&mut self, sym: Sym, interner: &Interner) -> u64 {
        let next = self.numbers.len() as u64;
        *self.number_index.entry(sym).or_insert_with(|| {
            self.numbers.push(interner.resolve_number(sym).to_bits());
            next
        })
    }
}

#[derive(Default)]
struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    fn uint(&mut self, value: u64) {
        let mut scratch = [0u8; 10];
        let n = value.encode_var(&mut scratch);
        self.bytes.extend_from_slice(&scratch[..n]);
    }

    fn int(&mut self, value: i64) {
        let mut scratch = [0u8; 10];
        let n = value.encode_var(&mut scratch);
        self.bytes.extend_from_slice(&scratch[..n]);
    }

    fn count(&mut self, value: usize) {
        self.uint(value as u64);
    }

    fn str(&mut self, s: &str) {
        self.count(s.len());
        self.bytes.extend_from_slice(s.as_bytes());
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    start: u64,
}

impl<'a> Reader<'a> {
    fn ended(&self) -> CheckpointError {
        CheckpointError::Corrupt {
            start: self.start,
            detail: "ends early".into(),
        }
    }

    fn var<T: VarInt>(&mut self) -> Result<T, CheckpointError> {
        let (value, n) = T::decode_var(self.bytes).ok_or_else(|| self.ended())?;
        self.bytes = &self.bytes[n..];
        Ok(value)
    }

    fn uint(&mut self) -> Result<u64, CheckpointError> {
        self.var()
    }

    fn int(&mut self) -> Result<i64, CheckpointError> {
        self.var()
    }

    fn count(&mut self) -> Result<usize, CheckpointError> {
        let n = self.uint()?;
        // Every counted item takes at least a byte: a larger count is damage, not a reason to
        // reserve memory.
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.bytes.len())
            .ok_or_else(|| self.ended())
    }

    fn fixed(&mut self) -> Result<u64, CheckpointError> {
        let (head, rest) = self
            .bytes
            .split_first_chunk::<8>()
            .ok_or_else(|| self.ended())?;
        self.bytes = rest;
        Ok(u64::from_le_bytes(*head))
    }

    fn str(&mut self) -> Result<&'a str, CheckpointError> {
        let n = self.count()?;
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        std::str::from_utf8(head).map_err(|_| CheckpointError::Corrupt {
            start: self.start,
            detail: "a string is not UTF-8".into(),
        })
    }
}

/// The stored chunks, by the offset they start at, as one read transaction sees them.
pub fn open(
    txn: &ReadTransaction,
) -> Result<Option<ReadOnlyTable<u64, &'static [u8]>>, StoreError> {
    match txn.open_table(CHUNKS) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

enum Job {
    /// Drop every chunk starting at or after the offset: the feeder rewrites from there.
    Truncate(u64),
    Write(Chunk),
}

/// The thread that writes chunks, so that neither encoding nor commits delay a round.
pub struct ChunkWriter {
    jobs: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl ChunkWriter {
    /// Starts the writer over `store`.
    pub fn start(store: Arc<Store>, interner: Arc<Interner>) -> std::io::Result<Self> {
        let (jobs, inbox) = channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("quill-insights-checkpoint".into())
            .spawn(move || {
                let mut unsynced = false;
                for job in inbox {
                    match write(&store, &interner, job) {
                        Ok(()) => unsynced = true,
                        Err(e) => tracing::warn!(error = %e, "cannot write the insights checkpoint; a restart reads more of the log"),
                    }
                }
                // At shutdown, make the last chunks durable: the next start reads none of the
                // log they cover.
                if unsynced {
                    let synced = store.db().begin_write().map(|txn| txn.commit());
                    if !matches!(synced, Ok(Ok(()))) {
                        tracing::warn!("cannot sync the insights checkpoint");
                    }
                }
            })?;
        Ok(Self {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Drops the stored chunks from `offset` on.
    pub fn truncate(&self, offset: u64) {
        self.send(Job::Truncate(offset));
    }

    /// Stores a chunk.
    pub fn write(&self, chunk: Chunk) {
        self.send(Job::Write(chunk));
    }

    fn send(&self, job: Job) {
        if let Some(jobs) = &self.jobs {
            // A writer that has died has logged why; the checkpoint just stops growing.
            let _ = jobs.send(job);
        }
    }
}

impl Drop for ChunkWriter {
    /// Waits for every chunk sent to be written, so that the next feeder reads them.
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn write(store: &Store, interner: &Interner, job: Job) -> Result<(), StoreError> {
    // Encoded before the transaction begins: the materializer waits for the write lock.
    let bytes = match &job {
        Job::Write(chunk) => encode(chunk, interner),
        Job::Truncate(_) => Vec::new(),
    };
    let mut txn = store.db().begin_write()?;
    // Not waiting for a sync: a lost chunk is read from the log again; the materializer's
    // next durable commit makes it durable.
    txn.set_durability(redb::Durability::None)?;
    {
        let mut table = txn.open_table(CHUNKS)?;
        match job {
            Job::Write(chunk) => {
                table.insert(chunk.start, bytes.as_slice())?;
            }
            Job::Truncate(from) => table.retain_in(from.., |_, _| false)?,
        }
    }
    txn.commit()?;
    Ok(())
}
