//! What the replay operator remembers about one person between rounds: per replayed insight,
//! its [`Memo`] and the contributions it last emitted.
//!
//! It is kept packed ([`super::packed`]) and unpacked only when the person is touched. As
//! vectors of heap vectors it was about 1.7 KB per person with five replayed insights, more than
//! the person's events in both arrangements.

use super::operator::{Contribution, Memo};
use super::packed::{Packer, Unpacker};

/// One insight's last pass over one person, unpacked.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct SlotMemory {
    pub memo: Option<Memo>,
    /// The contributions last emitted.
    pub emitted: Vec<(Contribution, isize)>,
}

/// Packs one person's slots.
pub(super) fn pack(slots: &[SlotMemory], packer: &mut Packer) -> Box<[u8]> {
    packer.count(slots.len());
    for slot in slots {
        match &slot.memo {
            Some(memo) => {
                packer.count(1);
                memo.iter().for_each(|v| packer.int(*v));
            }
            None => packer.count(0),
        }
        packer.count(slot.emitted.len());
        for (contribution, diff) in &slot.emitted {
            packer.count(contribution.len());
            contribution.iter().for_each(|v| packer.int(*v));
            packer.int(*diff as i64);
        }
    }
    packer.finish()
}

/// Unpacks a person's slots into `slots`, reusing its vectors.
pub(super) fn unpack(bytes: &[u8], slots: &mut Vec<SlotMemory>) {
    let mut reader = Unpacker::new(bytes);
    let n = reader.count();
    slots.resize_with(n, SlotMemory::default);
    for slot in slots.iter_mut() {
        slot.memo = read_memo(&mut reader);
        slot.emitted.clear();
        for _ in 0..reader.count() {
            let len = reader.count();
            let contribution: Contribution = (0..len).map(|_| reader.int()).collect();
            slot.emitted.push((contribution, reader.int() as isize));
        }
    }
}

/// Unpacks only the memos, which is what deciding whether to replay needs.
pub(super) fn unpack_memos(bytes: &[u8], memos: &mut Vec<Option<Memo>>) {
    memos.clear();
    let mut reader = Unpacker::new(bytes);
    for _ in 0..reader.count() {
        memos.push(read_memo(&mut reader));
        for _ in 0..reader.count() {
            let len = reader.count();
            // The contribution's integers, then its diff.
            (0..=len).for_each(|_| {
                reader.int();
            });
        }
    }
}

fn read_memo(reader: &mut Unpacker<'_>) -> Option<Memo> {
    (reader.count() == 1).then(|| std::array::from_fn(|_| reader.int()))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn slot() -> impl Strategy<Value = SlotMemory> {
        (
            proptest::option::of(any::<Memo>()),
            proptest::collection::vec(
                (proptest::collection::vec(any::<i64>(), 0..6), -3isize..4),
                0..5,
            ),
        )
            .prop_map(|(memo, emitted)| SlotMemory { memo, emitted })
    }

    proptest! {
        #[test]
        fn a_person_unpacks_as_packed(
            slots in proptest::collection::vec(slot(), 0..6),
            stale in proptest::collection::vec(slot(), 0..6),
        ) {
            let mut packer = Packer::default();
            let packed = pack(&slots, &mut packer);
            // Unpacking into vectors that held another person must leave nothing of them.
            let mut out = stale;
            unpack(&packed, &mut out);
            prop_assert_eq!(&out, &slots);
            let mut memos = Vec::new();
            unpack_memos(&packed, &mut memos);
            let expected: Vec<Option<Memo>> = slots.iter().map(|s| s.memo).collect();
            prop_assert_eq!(memos, expected);
        }
    }
}
