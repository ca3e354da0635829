//! The single writer: recovery on open, then group commit until shutdown.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use super::block::{self, DecodedBlock};
use super::frame::{read_frame, Frame};
use super::segment::{self, segment_path};
use super::{Appended, Command, DedupKey, LogError, LogOptions, Shared};

/// What recovery found on disk.
pub(super) struct Recovered {
    pub segments: Vec<u64>,
    pub end: u64,
    active_len: u64,
    seen: HashSet<DedupKey>,
    active_keys: Vec<DedupKey>,
}

/// Loads the dedup set and repairs the active segment's tail.
pub(super) fn recover(dir: &Path) -> Result<Recovered, LogError> {
    let mut segments = segment::list_segments(dir)?;
    if segments.is_empty() {
        segment::write_format(dir)?;
        File::create(segment_path(dir, 0))?;
        segment::sync_dir(dir)?;
        segments.push(0);
    } else {
        segment::check_format(dir)?;
    }
    let mut seen = HashSet::new();
    let (sealed, active) = segments.split_at(segments.len() - 1);
    for &base in sealed {
        seen.extend(segment::load_ids(dir, base)?);
    }
    let active_base = active[0];
    let path = segment_path(dir, active_base);
    let scan = segment::scan(&path)?;
    if scan.valid_len < scan.file_len {
        tracing::warn!(
            segment = active_base,
            valid = scan.valid_len,
            dropped = scan.file_len - scan.valid_len,
            "truncating a torn tail left by a crash"
        );
        segment::truncate(&path, scan.valid_len)?;
    }
    seen.extend(scan.keys.iter().copied());
    Ok(Recovered {
        end: active_base + scan.valid_len,
        active_len: scan.valid_len,
        segments: segments.clone(),
        seen,
        active_keys: scan.keys,
    })
}

struct Writer {
    shared: Arc<Shared>,
    options: LogOptions,
    file: File,
    base: u64,
    len: u64,
    seen: HashSet<DedupKey>,
    active_keys: Vec<DedupKey>,
    buf: Vec<u8>,
}

pub(super) fn spawn(
    shared: Arc<Shared>,
    recovered: Recovered,
    options: LogOptions,
    rx: mpsc::Receiver<Command>,
) -> Result<JoinHandle<()>, LogError> {
    let base = *recovered.segments.last().unwrap_or(&0);
    let file = OpenOptions::new()
        .append(true)
        .open(segment_path(&shared.dir, base))?;
    let writer = Writer {
        shared,
        options,
        file,
        base,
        len: recovered.active_len,
        seen: recovered.seen,
        active_keys: recovered.active_keys,
        buf: Vec::with_capacity(1 << 20),
    };
    Ok(std::thread::Builder::new()
        .name("quill-log-writer".into())
        .spawn(move || writer.run(rx))?)
}

type Pending = Vec<(
    super::AppendBatch,
    oneshot::Sender<Result<Appended, LogError>>,
)>;

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut shutting_down = false;
        while !shutting_down {
            let Some(first) = rx.blocking_recv() else {
                break;
            };
            let mut pending: Pending = Vec::new();
            let mut bytes = 0;
            let mut next = Some(first);
            while let Some(command) = next.take() {
                match command {
                    Command::Append(batch, reply) => {
                        bytes += batch.byte_len();
                        pending.push((batch, reply));
                    }
                    Command::Shutdown => {
                        shutting_down = true;
                        break;
                    }
                }
                if bytes < self.options.max_group_bytes {
                    next = rx.try_recv().ok();
                }
            }
            if !pending.is_empty() {
                self.commit(pending);
            }
        }
        if let Err(e) = self.file.sync_all() {
            tracing::error!(error = %e, "final log sync failed");
        }
        tracing::debug!(end = self.base + self.len, "log writer stopped");
    }

    /// Writes a group, syncs once, and answers every caller in it.
    fn commit(&mut self, pending: Pending) {
        self.buf.clear();
        let mut added: Vec<DedupKey> = Vec::new();
        let mut outcomes = Vec::with_capacity(pending.len());
        for (batch, _) in &pending {
            let (mut stored, mut duplicates) = (0, 0);
            for (frame, keys) in batch.sealed_blocks() {
                let fresh: Vec<bool> = keys
                    .iter()
                    .map(|key| match key {
                        Some(key) if self.seen.insert(*key) => {
                            added.push(*key);
                            true
                        }
                        Some(_) => false,
                        None => true,
                    })
                    .collect();
                let kept = fresh.iter().filter(|&&f| f).count();
                stored += kept;
                duplicates += keys.len() - kept;
                if kept == keys.len() {
                    self.buf.extend_from_slice(frame);
                } else if kept > 0 {
                    // Retries are rare, so only then is a block opened and sealed again.
                    let block = match read_frame(frame) {
                        Frame::Whole(payload, _) => DecodedBlock::decode(payload).ok(),
                        _ => None,
                    };
                    match block {
                        Some(block) => block.retain_into(|i| fresh[i], &mut self.buf),
                        None => {
                            // Cannot happen for a block sealed in memory; if it does, storing a
                            // duplicate beats losing the fresh events beside it.
                            tracing::error!("could not reopen a block to drop duplicates");
                            self.buf.extend_from_slice(frame);
                        }
                    }
                }
            }
            outcomes.push((stored, duplicates));
        }
        let result = self.write_group(&added);
        if result.is_err() {
            for key in &added {
                self.seen.remove(key);
            }
        }
        let end = block::offset(self.base + self.len, 0);
        for ((_, reply), (stored, duplicates)) in pending.into_iter().zip(outcomes) {
            let answer = match &result {
                Ok(()) => Ok(Appended {
                    stored,
                    duplicates,
                    end_offset: end,
                }),
                Err(e) => Err(LogError::Io(std::io::Error::other(e.to_string()))),
            };
            // A caller that went away (client disconnected) still had its events stored.
            let _ = reply.send(answer);
        }
    }

    fn write_group(&mut self, added: &[DedupKey]) -> Result<(), LogError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.len > 0 && self.len + self.buf.len() as u64 > self.options.segment_bytes {
            self.roll()?;
        }
        let before = self.len;
        let written = self
            .file
            .write_all(&self.buf)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            tracing::error!(error = %e, "log append failed; rolling back the group");
            // Best effort: leave no partial group behind for readers or recovery to find.
            let _ = self.file.set_len(before);
            return Err(e.into());
        }
        self.len += self.buf.len() as u64;
        self.active_keys.extend_from_slice(added);
        self.shared
            .end
            .send_replace(block::offset(self.base + self.len, 0));
        Ok(())
    }

    /// Seals the active segment and starts a new one at the current end.
    fn roll(&mut self) -> Result<(), LogError> {
        let dir = self.shared.dir.clone();
        segment::write_ids(&dir, self.base, &self.active_keys)?;
        let base = self.base + self.len;
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(segment_path(&dir, base))?;
        segment::sync_dir(&dir)?;
        self.file = file;
        self.base = base;
        self.len = 0;
        self.active_keys.clear();
        if let Ok(mut segments) = self.shared.segments.write() {
            segments.push(base);
        }
        tracing::info!(segment = base, "started a new log segment");
        Ok(())
    }
}
