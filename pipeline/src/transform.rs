//! The transformation seam: stages that see every captured event before it is stored.
//!
//! Transformations run after validation and before the log append, so that what they remove
//! (PII, dropped events) never reaches disk. Quill's Hog transformations plug in here.

use crate::event::Event;

/// What a transformation decided about one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Store this (possibly modified) event.
    Keep(Event),
    /// Store nothing.
    Drop,
}

/// One transformation stage.
pub trait Transform: Send + Sync {
    /// A name for logs and metrics.
    fn name(&self) -> &str;
    /// Transforms one event. A failing transformation must return the event unchanged: bad
    /// code in a transformation never loses data.
    fn apply(&self, event: Event) -> Outcome;
}

/// Transformations in execution order; each sees the previous one's output.
#[derive(Default)]
pub struct TransformChain {
    stages: Vec<Box<dyn Transform>>,
}

impl TransformChain {
    /// A chain with no stages: every event passes unchanged.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Appends a stage.
    pub fn push(&mut self, stage: Box<dyn Transform>) {
        self.stages.push(stage);
    }

    /// Runs every stage over one event.
    pub fn apply(&self, mut event: Event) -> Option<Event> {
        for stage in &self.stages {
            match stage.apply(event) {
                Outcome::Keep(next) => event = next,
                Outcome::Drop => {
                    tracing::trace!(stage = stage.name(), "event dropped by transformation");
                    return None;
                }
            }
        }
        Some(event)
    }

    /// Whether there is no stage.
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }
}

/// The live chain, swappable while capture runs (when transformations are edited).
#[derive(Default)]
pub struct Transforms {
    current: std::sync::RwLock<std::sync::Arc<TransformChain>>,
}

impl Transforms {
    /// Starts with `chain`.
    pub fn new(chain: TransformChain) -> Self {
        Self {
            current: std::sync::RwLock::new(std::sync::Arc::new(chain)),
        }
    }

    /// The chain to run on the next request.
    pub fn current(&self) -> std::sync::Arc<TransformChain> {
        self.current
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Installs a new chain; requests already running finish with the old one.
    pub fn replace(&self, chain: TransformChain) {
        let mut guard = self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *guard = std::sync::Arc::new(chain);
    }
}
