//! Blocks: up to 256 neighbouring records compressed together as one frame's payload.
//!
//! Events are a few hundred bytes of JSON that look much alike, and at a million a second their
//! raw bytes would need more bandwidth than the disk has. LZ4 over a block of neighbours shrinks
//! them several times over. The compression runs on the appending thread, while the single writer
//! only copies finished blocks, so it spreads over every core that captures.
//!
//! A record's offset is `(block position << 8) | index in block`. Offsets stay ordered in log
//! order, one read of one frame finds any record, and no index has to be kept.
//!
//! Payload layout: `[codec: u8][count - 1: u8][raw length: u32 LE][body]`. The raw body is each
//! record as `[length: u32 LE][rkyv bytes]`; the codec says whether the body is stored as is or
//! LZ4-compressed.

use crate::event::Record;
use crate::log::frame::{decode_record, write_frame};
use crate::log::LogError;

/// Most records in one block: the index must fit in the offset's low byte.
pub const MAX_RECORDS: usize = 1 << INDEX_BITS;
/// A block is sealed once its raw body reaches this size. Small enough that reading one record
/// decompresses little; large enough that LZ4 finds the repetition between events.
pub const TARGET_RAW_BYTES: usize = 64 << 10;

const INDEX_BITS: u32 = 8;
const HEADER_LEN: usize = 6;
const RAW: u8 = 0;
const LZ4: u8 = 1;

/// The offset of record `index` of the block whose frame starts at byte `position`.
pub fn offset(position: u64, index: usize) -> u64 {
    (position << INDEX_BITS) | index as u64
}

/// The byte position of the frame holding the record at `offset`.
pub fn position(offset: u64) -> u64 {
    offset >> INDEX_BITS
}

/// The record's index within its block.
pub fn index(offset: u64) -> usize {
    (offset & (MAX_RECORDS as u64 - 1)) as usize
}

/// Collects encoded records until it is full, then seals them into one frame.
#[derive(Debug, Default)]
pub struct BlockBuilder {
    raw: Vec<u8>,
    count: usize,
}

impl BlockBuilder {
    /// Adds one encoded record.
    pub fn push(&mut self, payload: &[u8]) {
        self.raw
            .extend_from_slice(&(payload.len() as u32).to_le_bytes());
        self.raw.extend_from_slice(payload);
        self.count += 1;
    }

    /// Whether the next record belongs in a new block.
    pub fn is_full(&self) -> bool {
        self.count >= MAX_RECORDS || self.raw.len() >= TARGET_RAW_BYTES
    }

    /// Whether nothing was collected since the last seal.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Raw bytes collected since the last seal.
    pub fn raw_len(&self) -> usize {
        self.raw.len()
    }

    /// Compresses what was collected into one frame appended to `out`, and starts over.
    pub fn seal(&mut self, out: &mut Vec<u8>) {
        if self.count == 0 {
            return;
        }
        let mut payload = Vec::with_capacity(
            HEADER_LEN + lz4_flex::block::get_maximum_output_size(self.raw.len()),
        );
        payload.extend_from_slice(&[LZ4, (self.count - 1) as u8]);
        payload.extend_from_slice(&(self.raw.len() as u32).to_le_bytes());
        payload.resize(payload.capacity(), 0);
        match lz4_flex::block::compress_into(&self.raw, &mut payload[HEADER_LEN..]) {
            Ok(n) if n < self.raw.len() => payload.truncate(HEADER_LEN + n),
            // Incompressible (or, impossibly, too big for the bound): store the body as is.
            _ => {
                payload.truncate(HEADER_LEN);
                payload[0] = RAW;
                payload.extend_from_slice(&self.raw);
            }
        }
        write_frame(out, &payload);
        self.raw.clear();
        self.count = 0;
    }
}

/// A block's records, decompressed; each is decoded only when asked for.
#[derive(Debug, Default)]
pub struct DecodedBlock {
    raw: Vec<u8>,
    bounds: Vec<(usize, usize)>,
}

impl DecodedBlock {
    /// Decompresses a frame payload and finds its records.
    pub fn decode(payload: &[u8]) -> Result<DecodedBlock, LogError> {
        let bad = |why: &str| LogError::Decode(format!("bad block: {why}"));
        if payload.len() < HEADER_LEN {
            return Err(bad("shorter than its header"));
        }
        let count = payload[1] as usize + 1;
        let raw_len = u32::from_le_bytes([payload[2], payload[3], payload[4], payload[5]]) as usize;
        if raw_len > super::frame::MAX_PAYLOAD {
            return Err(bad("raw length out of range"));
        }
        let body = &payload[HEADER_LEN..];
        let raw = match payload[0] {
            RAW if body.len() == raw_len => body.to_vec(),
            RAW => return Err(bad("raw length does not match")),
            LZ4 => {
                let mut raw = vec![0; raw_len];
                match lz4_flex::block::decompress_into(body, &mut raw) {
                    Ok(n) if n == raw_len => raw,
                    _ => return Err(bad("LZ4 body does not decompress to its length")),
                }
            }
            _ => return Err(bad("unknown codec")),
        };
        let mut bounds = Vec::with_capacity(count);
        let mut pos = 0;
        while pos < raw.len() {
            let Some(len) = raw.get(pos..pos + 4) else {
                return Err(bad("record length cut short"));
            };
            let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
            let start = pos + 4;
            if start + len > raw.len() {
                return Err(bad("record cut short"));
            }
            bounds.push((start, start + len));
            pos = start + len;
        }
        if bounds.len() != count {
            return Err(bad("record count does not match"));
        }
        Ok(DecodedBlock { raw, bounds })
    }

    /// Records in the block.
    pub fn len(&self) -> usize {
        self.bounds.len()
    }

    /// The encoded bytes of record `index`.
    pub fn payload(&self, index: usize) -> Option<&[u8]> {
        self.bounds.get(index).map(|&(s, e)| &self.raw[s..e])
    }

    /// Record `index`, decoded.
    pub fn record(&self, index: usize) -> Result<Record, LogError> {
        let payload = self
            .payload(index)
            .ok_or_else(|| LogError::Decode(format!("no record {index} in the block")))?;
        decode_record(payload)
    }

    /// Every record, decoded, in order.
    pub fn records(&self) -> Result<Vec<Record>, LogError> {
        (0..self.len()).map(|i| self.record(i)).collect()
    }

    /// Seals the records for which `keep` holds into a new frame appended to `out`.
    pub fn retain_into(&self, keep: impl Fn(usize) -> bool, out: &mut Vec<u8>) {
        let mut builder = BlockBuilder::default();
        for i in (0..self.len()).filter(|&i| keep(i)) {
            if let Some(payload) = self.payload(i) {
                builder.push(payload);
            }
        }
        builder.seal(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::frame::{encode_record, read_frame, Frame};

    fn record(n: u8, props: &str) -> Record {
        Record::Event(crate::event::StoredEvent {
            uuid: [n; 16],
            project: 1,
            event: "$pageview".into(),
            distinct_id: format!("user-{n}"),
            properties: props.into(),
            timestamp_us: i64::from(n),
            received_us: 0,
        })
    }

    fn seal(records: &[Record]) -> Vec<u8> {
        let mut builder = BlockBuilder::default();
        for r in records {
            builder.push(&encode_record(r).unwrap());
        }
        let mut out = Vec::new();
        builder.seal(&mut out);
        out
    }

    fn payload(frame: &[u8]) -> &[u8] {
        match read_frame(frame) {
            Frame::Whole(payload, _) => payload,
            other => panic!("not a whole frame: {other:?}"),
        }
    }

    #[test]
    fn similar_records_compress_and_round_trip() {
        let props = r#"{"$current_url":"https://example.com/pricing","$browser":"Chrome"}"#;
        let records: Vec<Record> = (0..100).map(|n| record(n, props)).collect();
        let frame = seal(&records);
        let raw: usize = records
            .iter()
            .map(|r| encode_record(r).unwrap().len())
            .sum();
        assert!(frame.len() * 3 < raw, "{} bytes for {raw} raw", frame.len());
        let block = DecodedBlock::decode(payload(&frame)).unwrap();
        assert_eq!(block.records().unwrap(), records);
    }

    #[test]
    fn incompressible_records_are_stored_raw() {
        let records = [record(1, "{}")];
        let block = DecodedBlock::decode(payload(&seal(&records))).unwrap();
        assert_eq!(block.records().unwrap(), records);
    }

    #[test]
    fn retain_keeps_the_chosen_records_in_order() {
        let records: Vec<Record> = (0..10).map(|n| record(n, "{}")).collect();
        let block = DecodedBlock::decode(payload(&seal(&records))).unwrap();
        let mut out = Vec::new();
        block.retain_into(|i| i % 3 == 0, &mut out);
        let kept = DecodedBlock::decode(payload(&out))
            .unwrap()
            .records()
            .unwrap();
        assert_eq!(
            kept,
            vec![
                records[0].clone(),
                records[3].clone(),
                records[6].clone(),
                records[9].clone()
            ]
        );
    }

    #[test]
    fn offsets_split_into_position_and_index() {
        let o = offset(123_456, 255);
        assert_eq!((position(o), index(o)), (123_456, 255));
        assert!(offset(10, 255) < offset(11, 0));
    }

    #[test]
    fn damaged_blocks_are_errors_not_panics() {
        let frame = seal(&[record(1, "{}"), record(2, "{}")]);
        let mut body = payload(&frame).to_vec();
        for i in 0..body.len() {
            let saved = body[i];
            body[i] ^= 0x5a;
            let _ = DecodedBlock::decode(&body).and_then(|b| b.records());
            body[i] = saved;
        }
        assert!(DecodedBlock::decode(&[LZ4, 0, 255, 255, 255, 255, 1]).is_err());
        assert!(DecodedBlock::decode(&[9, 0, 0, 0, 0, 0]).is_err());
    }
}
