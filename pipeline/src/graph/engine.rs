//! The engine: the runtime plus the live insight set, its collector and published results.
//!
//! The collector thread folds each set's contribution changes into the set's aggregators and,
//! each time the set completes a round, renders the insights whose contributions changed and
//! publishes them. Reading a result is a map lookup of an already rendered document.
//!
//! Replacing the live set (an insight registered or removed) installs a new set beside the old
//! one; the old keeps publishing until the new one has caught up, then it is retired.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use tokio::sync::watch;

use crate::event::now_us;

use super::operator::{Aggregator, InsightOperator};
use super::runtime::{InsightSlot, Output, Round, Runtime, RuntimeError};

/// A rendered, maintained result.
#[derive(Debug, Clone)]
pub struct Published {
    /// The `results` document.
    pub result: Arc<serde_json::Value>,
    /// `result` serialized, once per publication however many readers ask for it.
    serialized: Arc<OnceLock<Box<RawValue>>>,
    /// The log offset the result reflects.
    pub offset: u64,
    /// When it was rendered, µs since the epoch.
    pub refreshed_at_us: i64,
}

impl Published {
    fn new(result: Arc<serde_json::Value>, offset: u64, refreshed_at_us: i64) -> Self {
        Self {
            result,
            serialized: Arc::default(),
            offset,
            refreshed_at_us,
        }
    }

    /// The result as JSON text: a read copies these bytes rather than the document.
    pub fn result_json(&self) -> &RawValue {
        self.serialized
            .get_or_init(|| match serde_json::value::to_raw_value(&*self.result) {
                Ok(raw) => raw,
                Err(e) => {
                    tracing::error!(error = %e, "cannot serialize an insight's result");
                    RawValue::NULL.to_owned()
                }
            })
    }
}

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The dataflow stopped.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// An ad hoc query took longer than allowed.
    #[error("the query did not finish within {0:?}")]
    Timeout(Duration),
}

struct SetState {
    ids: Vec<u64>,
    aggregators: Vec<Box<dyn Aggregator>>,
    dirty: Vec<bool>,
    caught_up: bool,
}

#[derive(Default)]
struct Sets {
    states: HashMap<u64, SetState>,
    /// The newest set; it replaces the others once it has caught up.
    newest: Option<u64>,
}

/// The incremental insights engine.
pub struct Engine {
    runtime: Arc<Mutex<Runtime>>,
    sets: Arc<Mutex<Sets>>,
    published: Arc<RwLock<HashMap<u64, Published>>>,
    version: watch::Sender<u64>,
    sink: Sender<Output>,
}

impl Engine {
    /// Starts the runtime with `workers` threads and the collector.
    pub fn start(workers: usize) -> Result<Arc<Self>, EngineError> {
        Self::start_with(workers, watch::channel(0).0)
    }

    /// As [`Engine::start`], bumping `version` whenever a result is published (so that a
    /// replacement engine can keep its predecessor's subscribers).
    pub fn start_with(
        workers: usize,
        version: watch::Sender<u64>,
    ) -> Result<Arc<Self>, EngineError> {
        let runtime = Arc::new(Mutex::new(Runtime::start(workers)?));
        let (sink, outputs) = mpsc::channel();
        let engine = Arc::new(Self {
            runtime,
            sets: Arc::default(),
            published: Arc::default(),
            version,
            sink,
        });
        let collector = Collector {
            // Weak: the engine owns the runtime; when the engine goes, the workers stop, their
            // sinks close, and the collector's loop ends.
            runtime: Arc::downgrade(&engine.runtime),
            sets: engine.sets.clone(),
            published: engine.published.clone(),
            version: engine.version.clone(),
        };
        std::thread::Builder::new()
            .name("quill-insights".into())
            .spawn(move || collector.run(outputs))
            .map_err(|e| RuntimeError::Start(e.to_string()))?;
        Ok(engine)
    }

    fn runtime(&self) -> std::sync::MutexGuard<'_, Runtime> {
        self.runtime.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Feeds one round of changes reaching log `offset`.
    pub fn feed(&self, round: Round, offset: u64) -> Result<(), EngineError> {
        self.runtime().push(round, offset)?;
        Ok(())
    }

    /// Rounds fed that the dataflow has not finished yet.
    pub fn rounds_in_flight(&self) -> u64 {
        self.runtime().rounds_in_flight()
    }

    /// Replaces the maintained insights with `insights` (id, operator).
    pub fn set_insights(
        &self,
        insights: Vec<(u64, Arc<dyn InsightOperator>)>,
    ) -> Result<(), EngineError> {
        let mut sets = self.sets.lock().unwrap_or_else(|e| e.into_inner());
        let state = SetState {
            ids: insights.iter().map(|(id, _)| *id).collect(),
            aggregators: insights.iter().map(|(_, op)| op.aggregator()).collect(),
            dirty: vec![true; insights.len()],
            caught_up: false,
        };
        let slots = insights
            .into_iter()
            .map(|(id, op)| InsightSlot { id, op })
            .collect();
        let set = self.runtime().install(slots, self.sink.clone())?;
        sets.states.insert(set, state);
        sets.newest = Some(set);
        Ok(())
    }

    /// The maintained result of an insight, if it has one yet.
    pub fn result(&self, id: u64) -> Option<Published> {
        self.published
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    /// A receiver that changes whenever any result is published.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Answers one query over everything fed so far: a temporary set that reads the shared
    /// arrangement, retired once complete.
    pub fn query(
        &self,
        op: Arc<dyn InsightOperator>,
        timeout: Duration,
    ) -> Result<Published, EngineError> {
        let (sink, outputs) = mpsc::channel();
        let mut aggregator = op.aggregator();
        let (set, target) = {
            let mut runtime = self.runtime();
            if runtime.last_round().is_none() {
                runtime.push(Round::default(), 0)?;
            }
            let target = runtime.last_round().unwrap_or(0);
            let set = runtime.install(vec![InsightSlot { id: 0, op }], sink)?;
            (set, target)
        };
        let answer = collect_one(&outputs, &mut *aggregator, target, timeout);
        self.runtime().retire(set)?;
        let offset = answer?;
        Ok(Published::new(
            Arc::new(aggregator.render()),
            offset,
            now_us(),
        ))
    }
}

/// Applies a one-insight set's updates until it completes `target`; returns the offset reached.
fn collect_one(
    outputs: &Receiver<Output>,
    aggregator: &mut dyn Aggregator,
    target: u64,
    timeout: Duration,
) -> Result<u64, EngineError> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match outputs.recv_timeout(left) {
            Ok(Output::Updates { updates, .. }) => {
                for (_, c, diff) in &updates {
                    aggregator.apply(c, *diff);
                }
            }
            Ok(Output::Complete { round, offset, .. }) if round >= target => return Ok(offset),
            Ok(Output::Complete { .. }) => {}
            Err(RecvTimeoutError::Timeout) => return Err(EngineError::Timeout(timeout)),
            Err(RecvTimeoutError::Disconnected) => {
                return Err(EngineError::Runtime(RuntimeError::Stopped))
            }
        }
    }
}

struct Collector {
    runtime: std::sync::Weak<Mutex<Runtime>>,
    sets: Arc<Mutex<Sets>>,
    published: Arc<RwLock<HashMap<u64, Published>>>,
    version: watch::Sender<u64>,
}

impl Collector {
    fn run(self, outputs: Receiver<Output>) {
        while let Ok(output) = outputs.recv() {
            let mut sets = self.sets.lock().unwrap_or_else(|e| e.into_inner());
            match output {
                Output::Updates { set, updates } => {
                    if let Some(state) = sets.states.get_mut(&set) {
                        for (slot, c, diff) in &updates {
                            let slot = *slot as usize;
                            if let Some(agg) = state.aggregators.get_mut(slot) {
                                agg.apply(c, *diff);
                                state.dirty[slot] = true;
                            }
                        }
                    }
                }
                Output::Complete { set, offset, round } => {
                    let started = Instant::now();
                    self.complete(&mut sets, set, offset);
                    tracing::debug!(
                        set,
                        round,
                        offset,
                        render_ms = started.elapsed().as_millis() as u64,
                        "a round completed"
                    );
                }
            }
        }
    }

    fn complete(&self, sets: &mut Sets, set: u64, offset: u64) {
        let newest = sets.newest;
        let Some(state) = sets.states.get_mut(&set) else {
            return;
        };
        let first = !state.caught_up;
        state.caught_up = true;
        let is_newest = newest == Some(set);
        // An older set keeps publishing only while the newest one is still catching up.
        let newest_live = newest
            .and_then(|n| sets.states.get(&n))
            .is_some_and(|s| s.caught_up);
        if !is_newest && newest_live {
            return;
        }
        let Some(state) = sets.states.get_mut(&set) else {
            return;
        };
        let now = now_us();
        let mut rendered = Vec::new();
        for (slot, id) in state.ids.iter().enumerate() {
            if state.dirty[slot] || first {
                state.dirty[slot] = false;
                let result =
                    Published::new(Arc::new(state.aggregators[slot].render()), offset, now);
                // Serialized here rather than by its first reader: a large result took that
                // reader milliseconds, and every read after a publication could be that reader.
                result.result_json();
                rendered.push((*id, result));
            }
        }
        let live: HashSet<u64> = state.ids.iter().copied().collect();
        {
            let mut published = self.published.write().unwrap_or_else(|e| e.into_inner());
            if is_newest && first {
                published.retain(|id, _| live.contains(id));
            }
            for (id, result) in rendered {
                published.insert(id, result);
            }
            // Results that did not change still reflect the newer offset.
            for id in &live {
                if let Some(p) = published.get_mut(id) {
                    p.offset = offset;
                }
            }
        }
        self.version.send_modify(|v| *v += 1);
        if is_newest && first {
            let old: Vec<u64> = sets.states.keys().copied().filter(|s| *s != set).collect();
            let Some(runtime) = self.runtime.upgrade() else {
                return;
            };
            let mut runtime = runtime.lock().unwrap_or_else(|e| e.into_inner());
            for s in old {
                sets.states.remove(&s);
                if let Err(e) = runtime.retire(s) {
                    tracing::warn!(error = %e, "cannot retire an insight set");
                }
            }
        }
    }
}
