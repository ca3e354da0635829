//! Record framing: `[len: u32 LE][crc32: u32 LE][payload]`.
//!
//! The checksum covers the payload only; the length is checked for sanity. A frame that is cut
//! short or whose checksum fails marks the end of the valid log: recovery truncates there.

use crate::event::Record;
use crate::log::LogError;

/// Bytes of framing before each payload.
pub const HEADER_LEN: usize = 8;
/// Largest payload the log accepts. Capture bounds events at 1 MB, so this is generous.
pub const MAX_PAYLOAD: usize = 64 << 20;

/// Appends one framed payload to `out`.
pub fn write_frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// What [`read_frame`] found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole, valid frame: its payload and its total length including the header.
    Whole(&'a [u8], usize),
    /// The buffer ends inside the frame; `needed` is the frame's total length if known.
    Partial { needed: Option<usize> },
    /// The header or checksum is invalid.
    Corrupt,
}

/// Reads the frame at the start of `buf`.
pub fn read_frame(buf: &[u8]) -> Frame<'_> {
    if buf.len() < HEADER_LEN {
        return Frame::Partial { needed: None };
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if len > MAX_PAYLOAD {
        return Frame::Corrupt;
    }
    let total = HEADER_LEN + len;
    if buf.len() < total {
        return Frame::Partial {
            needed: Some(total),
        };
    }
    let payload = &buf[HEADER_LEN..total];
    if crc32fast::hash(payload) != crc {
        return Frame::Corrupt;
    }
    Frame::Whole(payload, total)
}

/// Serializes a record into its payload bytes (rkyv).
pub fn encode_record(record: &Record) -> Result<Vec<u8>, LogError> {
    rkyv::to_bytes::<rkyv::rancor::Error>(record)
        .map(|bytes| bytes.into_vec())
        .map_err(|e| LogError::Encode(e.to_string()))
}

/// Validates and deserializes a payload.
pub fn decode_record(payload: &[u8]) -> Result<Record, LogError> {
    rkyv::from_bytes::<Record, rkyv::rancor::Error>(payload)
        .map_err(|e| LogError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::StoredEvent;

    fn sample() -> Record {
        Record::Event(StoredEvent {
            uuid: [7; 16],
            project: 3,
            event: "$pageview".into(),
            distinct_id: "user-1".into(),
            properties: r#"{"$current_url":"https://x.test/"}"#.into(),
            timestamp_us: 1_700_000_000_000_000,
            received_us: 1_700_000_000_000_001,
        })
    }

    #[test]
    fn round_trips_a_record() {
        let payload = encode_record(&sample()).unwrap();
        let mut buf = Vec::new();
        write_frame(&mut buf, &payload);
        let Frame::Whole(got, len) = read_frame(&buf) else {
            panic!("expected a whole frame")
        };
        assert_eq!(len, buf.len());
        assert_eq!(decode_record(got).unwrap(), sample());
    }

    #[test]
    fn detects_torn_and_corrupt_frames() {
        let payload = encode_record(&sample()).unwrap();
        let mut buf = Vec::new();
        write_frame(&mut buf, &payload);
        assert!(matches!(
            read_frame(&buf[..buf.len() - 1]),
            Frame::Partial { .. }
        ));
        let last = buf.len() - 1;
        buf[last] ^= 0xff;
        assert_eq!(read_frame(&buf), Frame::Corrupt);
    }

    #[test]
    fn decoding_garbage_is_an_error_not_a_panic() {
        assert!(decode_record(&[1, 2, 3]).is_err());
        assert!(decode_record(&[0xff; 64]).is_err());
    }
}
