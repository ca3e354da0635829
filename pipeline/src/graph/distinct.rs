//! A `distinct` that keeps its counts in a hash map instead of an arrangement.
//!
//! The event-local insights that count persons (DAU, weekly and monthly active, unique
//! sessions) send one `(slot, person, cell)` per event and keep those present at least once.
//! Differential's `threshold_total` does that over an arrangement: every round it seeks each
//! new key through the spine and merges batches, and at 10M events that was a third of the
//! worker's time (perf, session 6). A multiplicity per key is all it needs to remember.
//!
//! Updates wait until their time is complete (the input frontier has passed it), then apply in
//! time order, so the output at every complete time is exactly the distinct input.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use differential_dataflow::consolidation::consolidate;
use differential_dataflow::{AsCollection, VecCollection};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;

use super::runtime::Time;

/// Updates waiting for their time to complete, with a capability to emit at that time.
type Pending<D> = BTreeMap<Time, (Capability<Time>, Vec<(D, isize)>)>;

/// The records of `input` present with a positive multiplicity, each once.
///
/// Runs where its input is: callers must send every copy of a record to one worker (the
/// runtime's records include the person, and arrive partitioned by person).
pub(super) fn distinct_by_hash<'s, D>(
    input: VecCollection<'s, Time, D, isize>,
) -> VecCollection<'s, Time, D, isize>
where
    D: timely::ExchangeData + Hash + Eq + Ord + Clone,
{
    input
        .inner
        .unary_frontier::<CapacityContainerBuilder<Vec<(D, Time, isize)>>, _, _, _>(
            Pipeline,
            "DistinctByHash",
            |_, _| {
                let mut counts: HashMap<D, isize> = HashMap::new();
                let mut pending: Pending<D> = BTreeMap::new();
                move |(input, frontier), output| {
                    input.for_each(|cap, data| {
                        for (d, t, r) in data.drain(..) {
                            pending
                                .entry(t)
                                .or_insert_with(|| (cap.delayed(&t, 0), Vec::new()))
                                .1
                                .push((d, r));
                        }
                    });
                    while let Some(entry) = pending.first_entry() {
                        let t = *entry.key();
                        if frontier.less_equal(&t) {
                            break;
                        }
                        let (cap, mut updates) = entry.remove();
                        consolidate(&mut updates);
                        let mut session = output.session(&cap);
                        for (d, r) in updates {
                            // The record is cloned only when it is new to the map: most
                            // updates are to a key already counted.
                            let (old, new) = match counts.get_mut(&d) {
                                Some(count) => {
                                    let old = *count;
                                    *count += r;
                                    if *count == 0 {
                                        counts.remove(&d);
                                    }
                                    (old, old + r)
                                }
                                None => {
                                    counts.insert(d.clone(), r);
                                    (0, r)
                                }
                            };
                            let change = isize::from(new > 0) - isize::from(old > 0);
                            if change != 0 {
                                session.give((d, t, change));
                            }
                        }
                    }
                }
            },
        )
        .as_collection()
}
