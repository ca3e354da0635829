//! Segment files: naming, listing, scanning, recovery, and the uuid sidecar.
//!
//! A segment is named after the global byte offset of its first record (`{offset:020}.log`), so
//! the log's offsets are plain byte positions and finding a record's segment is a binary search.
//! When a segment is sealed, the dedup keys of its events are written beside it (`.ids`), so
//! that start-up need not re-read sealed segments to rebuild the dedup set.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::event::Record;
use crate::log::block::DecodedBlock;
use crate::log::frame::{read_frame, Frame};
use crate::log::{DedupKey, LogError};

/// The path of the segment starting at `base`.
pub fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

fn ids_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.ids"))
}

/// Names the on-disk format, so that a log written by another version is refused rather than
/// taken for a torn tail and truncated.
const FORMAT: &str = "quill-log 2: lz4 blocks\n";

/// Records the format of a new log.
pub fn write_format(dir: &Path) -> Result<(), LogError> {
    let mut file = fs::File::create(dir.join("FORMAT"))?;
    file.write_all(FORMAT.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// Fails unless the log in `dir` is in this version's format.
pub fn check_format(dir: &Path) -> Result<(), LogError> {
    match fs::read_to_string(dir.join("FORMAT")) {
        Ok(found) if found == FORMAT => Ok(()),
        Ok(found) => Err(LogError::Format(format!(
            "the event log in {} is in format {:?}; this Quill reads {:?}",
            dir.display(),
            found.trim(),
            FORMAT.trim()
        ))),
        Err(_) => Err(LogError::Format(format!(
            "the event log in {} was written by an older Quill (no FORMAT file); \
             replay it with that version or start from an empty data directory",
            dir.display()
        ))),
    }
}

/// The bases of the segments in `dir`, ascending.
pub fn list_segments(dir: &Path) -> Result<Vec<u64>, LogError> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".log") {
            if let Ok(base) = stem.parse::<u64>() {
                bases.push(base);
            }
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// The result of scanning one segment.
pub struct Scan {
    /// Bytes of valid frames from the start of the segment.
    pub valid_len: u64,
    /// The file's length; more than `valid_len` means a torn or corrupt tail.
    pub file_len: u64,
    /// Dedup keys of the events in the valid part.
    pub keys: Vec<DedupKey>,
}

/// Reads a segment and finds the end of its valid prefix.
pub fn scan(path: &Path) -> Result<Scan, LogError> {
    let bytes = fs::read(path)?;
    let mut pos = 0usize;
    let mut keys = Vec::new();
    while pos < bytes.len() {
        match read_frame(&bytes[pos..]) {
            Frame::Whole(payload, len) => {
                // A frame whose checksum holds but whose block does not decode was written by
                // a different format version or is damaged; either way the valid log ends here.
                let Ok(records) = DecodedBlock::decode(payload).and_then(|b| b.records()) else {
                    break;
                };
                keys.extend(records.iter().filter_map(|r| match r {
                    Record::Event(e) => Some(DedupKey::new(e.project, e.uuid)),
                    _ => None,
                }));
                pos += len;
            }
            Frame::Partial { .. } | Frame::Corrupt => break,
        }
    }
    Ok(Scan {
        valid_len: pos as u64,
        file_len: bytes.len() as u64,
        keys,
    })
}

/// Truncates a torn tail away and makes the truncation durable.
pub fn truncate(path: &Path, len: u64) -> Result<(), LogError> {
    let file = fs::OpenOptions::new().write(true).open(path)?;
    file.set_len(len)?;
    file.sync_all()?;
    Ok(())
}

/// Writes the sealed segment's dedup keys beside it, atomically (temp file + rename).
pub fn write_ids(dir: &Path, base: u64, keys: &[DedupKey]) -> Result<(), LogError> {
    let mut bytes = Vec::with_capacity(keys.len() * DedupKey::LEN);
    for key in keys {
        key.write_to(&mut bytes);
    }
    let tmp = dir.join(format!("{base:020}.ids.tmp"));
    let mut file = fs::File::create(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, ids_path(dir, base))?;
    Ok(())
}

/// Loads a sealed segment's dedup keys: from its sidecar when that is intact, else by scanning.
pub fn load_ids(dir: &Path, base: u64) -> Result<Vec<DedupKey>, LogError> {
    if let Ok(bytes) = fs::read(ids_path(dir, base)) {
        if bytes.len() % DedupKey::LEN == 0 {
            return Ok(bytes
                .chunks_exact(DedupKey::LEN)
                .map(DedupKey::read_from)
                .collect());
        }
        tracing::warn!(
            base,
            "uuid sidecar has a partial entry; rescanning the segment"
        );
    }
    let scanned = scan(&segment_path(dir, base))?;
    if scanned.valid_len != scanned.file_len {
        return Err(LogError::Corrupt {
            segment: base,
            offset: base + scanned.valid_len,
        });
    }
    Ok(scanned.keys)
}

/// Makes a directory entry (a new or renamed file) durable.
pub fn sync_dir(dir: &Path) -> Result<(), LogError> {
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}
