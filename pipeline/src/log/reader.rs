//! Reading the log by offset, never past the durable end.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::block::{self, DecodedBlock};
use super::frame::{read_frame, Frame, HEADER_LEN};
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
    /// The block `read_at` last decompressed, by its byte position.
    cached: Option<(u64, DecodedBlock)>,
}

impl LogReader {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            open: None,
            buf: Vec::new(),
            cached: None,
        }
    }

    /// The durable end offset.
    pub fn end(&self) -> u64 {
        *self.shared.end.borrow()
    }

    /// The segment holding byte `position`: its base and its end (exclusive), in bytes.
    fn locate(&self, position: u64, durable_end: u64) -> Option<(u64, u64)> {
        let segments = self.shared.segments.read().ok()?;
        let idx = segments
            .partition_point(|&base| base <= position)
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

    /// Reads whole records starting at `from`, about `max_bytes` of log worth (at least one
    /// block when one is available). `from` is a record's offset, such as a previous `next`.
    pub fn read(&mut self, from: u64, max_bytes: usize) -> Result<ReadBatch, LogError> {
        let durable_end = block::position(self.end());
        let start = block::position(from);
        let mut batch = ReadBatch {
            records: Vec::new(),
            next: from,
        };
        let Some((base, seg_end)) = self.locate(start, durable_end) else {
            return Ok(batch);
        };
        if start >= seg_end {
            // `locate` picks the segment whose range holds `start`, so this is the durable end.
            return Ok(batch);
        }
        let want = ((seg_end - start) as usize).min(max_bytes.max(HEADER_LEN));
        self.fill(base, start - base, want)?;
        let mut pos = 0;
        loop {
            match read_frame(&self.buf[pos..]) {
                Frame::Whole(payload, len) => {
                    let at = start + pos as u64;
                    let decoded = DecodedBlock::decode(payload)?;
                    for index in 0..decoded.len() {
                        let offset = block::offset(at, index);
                        if offset >= from {
                            batch.records.push((offset, decoded.record(index)?));
                        }
                    }
                    pos += len;
                }
                Frame::Partial {
                    needed: Some(total),
                } if pos == 0 => {
                    // One block larger than the read size: fetch exactly it.
                    if start + total as u64 > seg_end {
                        return Err(LogError::BadOffset(from));
                    }
                    self.fill(base, start - base, total)?;
                    continue;
                }
                Frame::Partial { .. } => break,
                Frame::Corrupt => {
                    return Err(LogError::Corrupt {
                        segment: base,
                        offset: start + pos as u64,
                    })
                }
            }
        }
        batch.next = block::offset(start + pos as u64, 0);
        Ok(batch)
    }

    /// Reads the one record at `offset`. Its block stays decompressed, so reading its
    /// neighbours next costs no more I/O.
    pub fn read_at(&mut self, offset: u64) -> Result<Record, LogError> {
        let at = block::position(offset);
        if self.cached.as_ref().map(|(p, _)| *p) != Some(at) {
            let decoded = self.read_block(at).map_err(|e| match e {
                LogError::BadOffset(_) => LogError::BadOffset(offset),
                e => e,
            })?;
            self.cached = Some((at, decoded));
        }
        match &self.cached {
            Some((_, decoded)) if block::index(offset) < decoded.len() => {
                decoded.record(block::index(offset))
            }
            _ => Err(LogError::BadOffset(offset)),
        }
    }

    /// Reads and decompresses the block whose frame starts at byte `at`.
    fn read_block(&mut self, at: u64) -> Result<DecodedBlock, LogError> {
        let durable_end = block::position(self.end());
        let (base, seg_end) = self
            .locate(at, durable_end)
            .ok_or(LogError::BadOffset(at))?;
        if at + HEADER_LEN as u64 > seg_end {
            return Err(LogError::BadOffset(at));
        }
        self.fill(base, at - base, HEADER_LEN)?;
        let total = match read_frame(&self.buf) {
            Frame::Partial {
                needed: Some(total),
            } => total,
            Frame::Whole(_, total) => total,
            _ => return Err(LogError::BadOffset(at)),
        };
        if at + total as u64 > seg_end {
            return Err(LogError::BadOffset(at));
        }
        self.fill(base, at - base, total)?;
        match read_frame(&self.buf) {
            Frame::Whole(payload, _) => DecodedBlock::decode(payload),
            _ => Err(LogError::Corrupt {
                segment: base,
                offset: at,
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
