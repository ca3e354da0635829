//! Where a worker's time goes, by operator: a diagnostic for freshness work.
//!
//! With `QUILL_DATAFLOW_PROFILE=1` each worker logs (at info, every five seconds) the operators
//! that were scheduled longest since its last report. A dataflow's own entry includes the time
//! of the operators inside it. Off by default: timely's event log costs a little per schedule.

use std::collections::HashMap;
use std::time::Duration;

use timely::logging::{StartStop, TimelyEvent, TimelyEventBuilder};

/// How often each worker reports.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// How many operators a report names.
const REPORTED: usize = 12;

/// Registers the profiler on `worker` if `QUILL_DATAFLOW_PROFILE` is set.
pub(super) fn install(worker: &mut timely::worker::Worker) {
    if std::env::var_os("QUILL_DATAFLOW_PROFILE").is_none() {
        return;
    }
    let index = worker.index();
    let mut names: HashMap<usize, String> = HashMap::new();
    let mut started: HashMap<usize, Duration> = HashMap::new();
    let mut spent: HashMap<usize, (Duration, u64)> = HashMap::new();
    let mut reported_at = Duration::ZERO;
    let Some(mut registry) = worker.log_register() else {
        return;
    };
    registry.insert::<TimelyEventBuilder, _>("timely", move |now, events| {
        for (at, event) in events.iter().flat_map(|e| e.iter()) {
            match event {
                TimelyEvent::Operates(op) => {
                    names.insert(op.id, format!("{} {:?}", op.name, op.addr));
                }
                TimelyEvent::Schedule(s) => match s.start_stop {
                    StartStop::Start => {
                        started.insert(s.id, *at);
                    }
                    StartStop::Stop => {
                        if let Some(from) = started.remove(&s.id) {
                            let entry = spent.entry(s.id).or_default();
                            entry.0 += at.saturating_sub(from);
                            entry.1 += 1;
                        }
                    }
                },
                _ => {}
            }
        }
        if now.saturating_sub(reported_at) < REPORT_EVERY {
            return;
        }
        let window = now.saturating_sub(reported_at);
        reported_at = *now;
        let mut top: Vec<(usize, (Duration, u64))> = spent.drain().collect();
        top.sort_by_key(|(_, (time, _))| std::cmp::Reverse(*time));
        let lines: Vec<String> = top
            .iter()
            .take(REPORTED)
            .map(|(id, (time, calls))| {
                let name = names.get(id).map_or("?", String::as_str);
                format!(
                    "{:>7.1} ms {calls:>6} calls  {name}",
                    time.as_secs_f64() * 1e3
                )
            })
            .collect();
        tracing::info!(
            worker = index,
            window_ms = window.as_millis() as u64,
            "operator time:\n{}",
            lines.join("\n")
        );
    });
}
