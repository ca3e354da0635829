//! Reading the log by offset, never past the durable end.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::frame::{decode_record, read_frame, Frame, HEADER_LEN};
use super::segment::segment_path;
use super::{LogError, Shared};
use crate::event::Record;

/// Records read from the log, each with its offset.
#[derive(Debug, Default)]
pub struct ReadBatch {
    /// `(offset, record)` pairs in log order.
    pub records: Vec<(u64, Record)>,
    /// The offset to read from next.
    pub next: u64,
}

/// Reads records by offset. Each consumer owns one.
pub struct LogReader {
    shared: Arc<Shared>,
    open: Option<(u64, File)>,
    buf: Vec<u8>,
}

impl LogReader {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            open: None,
            buf: Vec::new(),
        }
    }

    /// The durable end offset.
    pub fn end(&self) -> u64 {
        *self.shared.end.borrow()
    }

    /// The segment holding `offset`: its base and its end (exclusive).
    fn locate(&self, offset: u64, durable_end: u64) -> Option<(u64, u64)> {
        let segments = self.shared.segments.read().ok()?;
        let idx = segments
            .partition_point(|&base| base <= offset)
            .checked_sub(1)?;
        let base = segments[idx];
        let end = segments.get(idx + 1).copied().unwrap_or(durable_end);
        Some((base, end.min(durable_end)))
    }

    fn file(&mut self, base: u64) -> Result<&File, LogError> {
        if self.open.as_ref().map(|(b, _)| *b) != Some(base) {
            let file = File::open(segment_path(&self.shared.dir, base))?;
            self.open = Some((base, file));
        }
        match &self.open {
            Some((_, file)) => Ok(file),
            None => Err(LogError::BadOffset(base)),
        }
    }

    /// Reads whole records starting at `from`, about `max_bytes` worth (at least one record
    /// when one is available). `from` must be a record boundary, such as a previous `next`.
    pub fn read(&mut self, from: u64, max_bytes: usize) -> Result<ReadBatch, LogError> {
        let durable_end = self.end();
        let mut batch = ReadBatch {
            records: Vec::new(),
            next: from,
        };
        let Some((base, seg_end)) = self.locate(from, durable_end) else {
            return Ok(batch);
        };
        if from >= seg_end {
            // `locate` picks the segment whose range holds `from`, so this is the durable end.
            return Ok(batch);
        }
        let want = ((seg_end - from) as usize).min(max_bytes.max(HEADER_LEN));
        self.fill(base, from - base, want)?;
        let mut pos = 0;
        loop {
            match read_frame(&self.buf[pos..]) {
                Frame::Whole(payload, len) => {
                    let record = decode_record(payload)?;
                    batch.records.push((from + pos as u64, record));
                    pos += len;
                }
                Frame::Partial {
                    needed: Some(total),
                } if batch.records.is_empty() => {
                    // One record larger than the read size: fetch exactly it.
                    if from + total as u64 > seg_end {
                        return Err(LogError::BadOffset(from));
                    }
                    self.fill(base, from - base, total)?;
                    pos = 0;
                    continue;
                }
                Frame::Partial { .. } => break,
                Frame::Corrupt => {
                    return Err(LogError::Corrupt {
                        segment: base,
                        offset: from + pos as u64,
                    })
                }
            }
        }
        batch.next = from + pos as u64;
        Ok(batch)
    }

    /// Reads the one record at `offset`: its header, then exactly its payload.
    pub fn read_at(&mut self, offset: u64) -> Result<Record, LogError> {
        let durable_end = self.end();
        let (base, seg_end) = self
            .locate(offset, durable_end)
            .ok_or(LogError::BadOffset(offset))?;
        if offset + HEADER_LEN as u64 > seg_end {
            return Err(LogError::BadOffset(offset));
        }
        self.fill(base, offset - base, HEADER_LEN)?;
        let total = match read_frame(&self.buf) {
            Frame::Partial {
                needed: Some(total),
            } => total,
            Frame::Whole(_, total) => total,
            _ => return Err(LogError::BadOffset(offset)),
        };
        if offset + total as u64 > seg_end {
            return Err(LogError::BadOffset(offset));
        }
        self.fill(base, offset - base, total)?;
        match read_frame(&self.buf) {
            Frame::Whole(payload, _) => decode_record(payload),
            _ => Err(LogError::Corrupt {
                segment: base,
                offset,
            }),
        }
    }

    fn fill(&mut self, base: u64, pos: u64, len: usize) -> Result<(), LogError> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(len, 0);
        let result = self
            .file(base)
            .and_then(|f| Ok(f.read_exact_at(&mut buf, pos)?));
        self.buf = buf;
        result
    }
}
