//! The event log: segmented, append-only, checksummed, durable before acknowledgement.
//!
//! One writer thread owns the active segment and does group commit: it takes every append that
//! is waiting, writes them together, calls `fdatasync` once, and only then answers each caller.
//! Records are stored in LZ4-compressed blocks of up to 256, one block per frame. A record's
//! offset is its block's global byte position shifted left by 8, plus its index in the block
//! (see [`block`]); offsets grow in log order.
//!
//! Events are deduplicated per project by uuid inside the writer, so that an SDK retry of an
//! acknowledged batch is acknowledged again without being stored twice.
//!
//! Readers ([`LogReader`]) never see bytes past the durable end, so a consumer can never act on
//! an event that a crash could still take away.

mod block;
mod frame;
mod reader;
mod segment;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot, watch};

pub use frame::{decode_record, encode_record};
pub use reader::{LogReader, ReadBatch};

use crate::event::{ProjectId, Record};

/// Errors of the event log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Disk I/O failed. Retryable: the caller was not acknowledged and nothing partial is visible.
    #[error("log I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// A record could not be serialized.
    #[error("could not encode a record: {0}")]
    Encode(String),
    /// A stored record could not be read back.
    #[error("could not decode a record: {0}")]
    Decode(String),
    /// A sealed segment is damaged: recovery only repairs the tail of the active segment.
    #[error("segment {segment} is corrupt at offset {offset}")]
    Corrupt {
        /// The damaged segment's base offset.
        segment: u64,
        /// Where the damage starts.
        offset: u64,
    },
    /// An offset that is not a record boundary, or is past the end.
    #[error("offset {0} is not the start of a stored record")]
    BadOffset(u64),
    /// The directory holds a log written in another format.
    #[error("{0}")]
    Format(String),
    /// The log was shut down.
    #[error("the log is closed")]
    Closed,
}

impl LogError {
    /// Whether retrying the same operation later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, LogError::Io(_) | LogError::Closed)
    }
}

/// The byte position in the log of the block holding the record at `offset`: what a
/// difference of offsets means in bytes of log.
pub fn byte_position(offset: u64) -> u64 {
    block::position(offset)
}

/// Identifies an event for deduplication: its project and uuid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DedupKey {
    project: ProjectId,
    uuid: [u8; 16],
}

impl DedupKey {
    const LEN: usize = 20;

    /// The key of an event.
    pub fn new(project: ProjectId, uuid: [u8; 16]) -> Self {
        Self { project, uuid }
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.project.to_le_bytes());
        out.extend_from_slice(&self.uuid);
    }

    fn read_from(bytes: &[u8]) -> Self {
        let mut project = [0u8; 4];
        project.copy_from_slice(&bytes[..4]);
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&bytes[4..Self::LEN]);
        Self {
            project: u32::from_le_bytes(project),
            uuid,
        }
    }
}

/// Records encoded and compressed by the caller (so that work runs on the caller's thread),
/// ready to append.
#[derive(Debug, Default)]
pub struct AppendBatch {
    /// Sealed block frames, back to back.
    frames: Vec<u8>,
    /// Where each sealed block's frame ends in `frames`, and how many records precede its end.
    blocks: Vec<(usize, usize)>,
    /// The dedup key of every record, sealed or not, in order.
    keys: Vec<Option<DedupKey>>,
    open: block::BlockBuilder,
}

impl AppendBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Encodes and adds one record.
    pub fn push(&mut self, record: &Record) -> Result<(), LogError> {
        let payload = encode_record(record)?;
        self.open.push(&payload);
        self.keys.push(match record {
            Record::Event(e) => Some(DedupKey::new(e.project, e.uuid)),
            _ => None,
        });
        if self.open.is_full() {
            self.seal();
        }
        Ok(())
    }

    /// Compresses the records not yet in a block.
    fn seal(&mut self) {
        if !self.open.is_empty() {
            self.open.seal(&mut self.frames);
            self.blocks.push((self.frames.len(), self.keys.len()));
        }
    }

    /// Moves every record of `other` to the end of this batch.
    pub fn extend(&mut self, mut other: AppendBatch) {
        self.seal();
        other.seal();
        let (bytes, records) = (self.frames.len(), self.keys.len());
        self.frames.extend_from_slice(&other.frames);
        self.keys.extend(other.keys);
        self.blocks.extend(
            other
                .blocks
                .into_iter()
                .map(|(end, count)| (end + bytes, count + records)),
        );
    }

    /// How many records the batch holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Size in bytes: compressed for sealed blocks, raw for the rest.
    pub fn byte_len(&self) -> usize {
        self.frames.len() + self.open.raw_len()
    }

    /// Each sealed block: its frame and the keys of its records.
    fn sealed_blocks(&self) -> impl Iterator<Item = (&[u8], &[Option<DedupKey>])> {
        let mut start = (0, 0);
        self.blocks.iter().map(move |&(end, count)| {
            let block = (&self.frames[start.0..end], &self.keys[start.1..count]);
            start = (end, count);
            block
        })
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Records written.
    pub stored: usize,
    /// Events skipped because their uuid was already stored for their project.
    pub duplicates: usize,
    /// The durable end of the log after this append; every stored record lies below it.
    pub end_offset: u64,
}

/// A queued append; [`AppendTicket::wait`] returns once it is durable.
pub struct AppendTicket(oneshot::Receiver<Result<Appended, LogError>>);

impl AppendTicket {
    /// Waits until the append is durable (or failed). Call outside any async runtime.
    pub fn wait(self) -> Result<Appended, LogError> {
        self.0.blocking_recv().map_err(|_| LogError::Closed)?
    }
}

/// Tuning for the log.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// A segment is sealed once it reaches this size.
    pub segment_bytes: u64,
    /// Most bytes one group commit gathers before it writes.
    pub max_group_bytes: usize,
    /// Appends that may wait for the writer before callers are slowed down.
    pub queue_depth: usize,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 128 << 20,
            max_group_bytes: 16 << 20,
            queue_depth: 4096,
        }
    }
}

struct Shared {
    dir: PathBuf,
    /// Segment bases, ascending; the last one is active.
    segments: RwLock<Vec<u64>>,
    /// The durable end offset.
    end: watch::Sender<u64>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

enum Command {
    Append(AppendBatch, oneshot::Sender<Result<Appended, LogError>>),
    Shutdown,
}

/// A handle on an open log. Cloning it is cheap; all clones share one writer.
#[derive(Clone)]
pub struct Log {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Command>,
}

impl Log {
    /// Opens (or creates) the log in `dir`, truncating a torn tail, and starts the writer.
    pub fn open(dir: &Path, options: LogOptions) -> Result<Log, LogError> {
        std::fs::create_dir_all(dir)?;
        let recovered = writer::recover(dir)?;
        let (end, _) = watch::channel(block::offset(recovered.end, 0));
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            segments: RwLock::new(recovered.segments.clone()),
            end,
            writer: Mutex::new(None),
        });
        let (tx, rx) = mpsc::channel(options.queue_depth);
        let handle = writer::spawn(shared.clone(), recovered, options, rx)?;
        if let Ok(mut slot) = shared.writer.lock() {
            *slot = Some(handle);
        }
        Ok(Log { shared, tx })
    }

    /// Appends a batch and waits until it is durable.
    pub async fn append(&self, mut batch: AppendBatch) -> Result<Appended, LogError> {
        batch.seal();
        let (reply, done) = oneshot::channel();
        self.tx
            .send(Command::Append(batch, reply))
            .await
            .map_err(|_| LogError::Closed)?;
        done.await.map_err(|_| LogError::Closed)?
    }

    /// Appends from a thread outside any async runtime.
    pub fn append_blocking(&self, mut batch: AppendBatch) -> Result<Appended, LogError> {
        batch.seal();
        let (reply, done) = oneshot::channel();
        self.tx
            .blocking_send(Command::Append(batch, reply))
            .map_err(|_| LogError::Closed)?;
        done.blocking_recv().map_err(|_| LogError::Closed)?
    }

    /// Queues a batch without waiting, for a producer that keeps several appends in flight.
    /// Blocks only while the writer's queue is full. Call outside any async runtime.
    pub fn submit_blocking(&self, mut batch: AppendBatch) -> Result<AppendTicket, LogError> {
        batch.seal();
        let (reply, done) = oneshot::channel();
        self.tx
            .blocking_send(Command::Append(batch, reply))
            .map_err(|_| LogError::Closed)?;
        Ok(AppendTicket(done))
    }

    /// The durable end offset.
    pub fn end(&self) -> u64 {
        *self.shared.end.borrow()
    }

    /// Watches the durable end offset.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.end.subscribe()
    }

    /// A reader positioned nowhere yet; reads take explicit offsets.
    pub fn reader(&self) -> LogReader {
        LogReader::new(self.shared.clone())
    }

    /// Bytes the log occupies on disk.
    pub fn disk_bytes(&self) -> u64 {
        std::fs::read_dir(&self.shared.dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Finishes every append already queued, syncs, and stops the writer. Later appends fail
    /// with [`LogError::Closed`].
    pub fn shutdown(&self) {
        // A full queue still drains: the writer takes the shutdown after what is ahead of it.
        if self.tx.blocking_send(Command::Shutdown).is_err() {
            return;
        }
        let handle = self.shared.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            if handle.join().is_err() {
                tracing::error!("log writer thread panicked during shutdown");
            }
        }
    }
}

#[cfg(test)]
mod tests;
