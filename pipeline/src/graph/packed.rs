//! Integers packed as varints: the form per-person state takes between rounds.
//!
//! The state the dataflow keeps per person (each replayed insight's memo and last emission,
//! each person count of the event-local insights) is a handful of small integers, read and
//! rewritten only when the person is touched. Kept as vectors of `i64` with their headers and
//! allocations, it cost kilobytes per person, more than the person's events. Packed, most of
//! those integers take one or two bytes. Aggregators that keep per-person state (weekly and
//! monthly active users) pack it the same way.

use integer_encoding::VarInt;

/// A growing packed buffer.
#[derive(Debug, Default)]
pub struct Packer {
    bytes: Vec<u8>,
}

impl Packer {
    /// Appends a signed integer (zigzag, so small negatives stay small).
    pub fn int(&mut self, value: i64) {
        self.push(value);
    }

    /// Appends a count or length.
    pub fn count(&mut self, value: usize) {
        self.push(value as u64);
    }

    fn push<T: VarInt>(&mut self, value: T) {
        // Ten bytes hold any 64-bit varint.
        let mut scratch = [0u8; 10];
        let n = value.encode_var(&mut scratch);
        self.bytes.extend_from_slice(&scratch[..n]);
    }

    /// Appends bytes another packer wrote.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    /// Whether nothing has been appended since the last finish.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The bytes appended so far, exactly sized; the packer is left empty for reuse.
    pub fn finish(&mut self) -> Box<[u8]> {
        let packed = Box::from(&self.bytes[..]);
        self.bytes.clear();
        packed
    }

    /// Like [`Packer::finish`], into `slot`: overwritten in place when the size is unchanged,
    /// which saves an allocation and a free per rewrite of the same state.
    pub fn finish_into(&mut self, slot: &mut Box<[u8]>) {
        if slot.len() == self.bytes.len() {
            slot.copy_from_slice(&self.bytes);
            self.bytes.clear();
        } else {
            *slot = self.finish();
        }
    }
}

/// Reads back what a [`Packer`] wrote, in the same order.
///
/// The bytes never leave the process, so malformed input means a bug: reads past the end
/// return zero rather than fail, and debug builds assert.
#[derive(Debug, Clone)]
pub struct Unpacker<'a> {
    bytes: &'a [u8],
}

impl<'a> Unpacker<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// The next signed integer.
    pub fn int(&mut self) -> i64 {
        self.next::<i64>()
    }

    /// The next count or length.
    pub fn count(&mut self) -> usize {
        self.next::<u64>() as usize
    }

    /// Whether every byte has been read.
    pub fn is_done(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    fn next<T: VarInt + Default>(&mut self) -> T {
        match T::decode_var(self.bytes) {
            Some((value, n)) => {
                self.bytes = &self.bytes[n..];
                value
            }
            None => {
                debug_assert!(false, "a packed buffer ended early");
                self.bytes = &[];
                T::default()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn what_is_packed_unpacks_in_order(values in proptest::collection::vec((any::<i64>(), any::<usize>()), 0..50)) {
            let mut packer = Packer::default();
            for (int, len) in &values {
                packer.int(*int);
                packer.count(*len);
            }
            let packed = packer.finish();
            prop_assert!(packer.finish().is_empty());
            let mut reader = Unpacker::new(&packed);
            for (int, len) in &values {
                prop_assert_eq!(reader.int(), *int);
                prop_assert_eq!(reader.count(), *len);
            }
            prop_assert!(reader.is_done());
        }
    }

    #[test]
    fn small_integers_take_one_byte() {
        let mut packer = Packer::default();
        for v in [-64, -1, 0, 1, 63] {
            packer.int(v);
        }
        packer.count(127);
        assert_eq!(packer.finish().len(), 6);
    }
}
