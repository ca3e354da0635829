//! The watcher: degrades, then disables, a function that keeps running over its time budget.
//!
//! Modelled on PostHog's HogWatcher, a token bucket per function:
//!
//! - The bucket holds [`WatcherConfig::pool`] tokens (10 000) and refills at
//!   [`WatcherConfig::refill_per_sec`] (10 tokens a second).
//! - A run within the budget ([`WatcherConfig::budget`], 5 ms) costs nothing. Above it, the cost
//!   grows linearly from 0 to [`WatcherConfig::max_cost`] (20 tokens) at the hard timeout; a run
//!   that times out costs the maximum.
//! - Below [`WatcherConfig::degraded_at`] (80 % of the pool) the function is **degraded**: it
//!   still runs, and the state shows in the API and its logs. With an empty bucket it is
//!   **disabled temporarily** for [`WatcherConfig::disabled_for`] (10 minutes): it is skipped and
//!   events pass unchanged. It then comes back degraded, with the bucket at the degraded mark.
//!   The [`WatcherConfig::max_temporary_disables`]th time (3) it is **disabled indefinitely**,
//!   until the function is saved again.
//!
//! So one event a second that times out is tolerated for ~8 minutes before the function is
//! degraded and ~16 minutes before it is disabled; a burst of 500 timeouts disables it at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::logs::FunctionKey;

/// Thresholds; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WatcherConfig {
    /// Time a run may take for free.
    pub budget: Duration,
    /// The hard timeout (where the cost is the maximum).
    pub timeout: Duration,
    /// Bucket size in tokens.
    pub pool: f64,
    /// Tokens regained per second.
    pub refill_per_sec: f64,
    /// Cost of a run at (or over) the timeout.
    pub max_cost: f64,
    /// Below this many tokens the function is degraded.
    pub degraded_at: f64,
    /// How long a temporary disable lasts.
    pub disabled_for: Duration,
    /// Temporary disables before the function is disabled indefinitely.
    pub max_temporary_disables: u32,
}

impl Default for WatcherConfig {
    fn default() -> Self {
        WatcherConfig {
            budget: Duration::from_millis(5),
            timeout: Duration::from_millis(100),
            pool: 10_000.0,
            refill_per_sec: 10.0,
            max_cost: 20.0,
            degraded_at: 8_000.0,
            disabled_for: Duration::from_secs(600),
            max_temporary_disables: 3,
        }
    }
}

/// A function's health, numbered as PostHog's `status.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Runs normally (1).
    Healthy,
    /// Runs, but has been over budget too often (2).
    Degraded,
    /// Skipped for a while (3).
    DisabledTemporarily,
    /// Skipped until saved again (4).
    DisabledIndefinitely,
}

impl State {
    /// PostHog's number for the state.
    pub fn code(self) -> u8 {
        match self {
            State::Healthy => 1,
            State::Degraded => 2,
            State::DisabledTemporarily => 3,
            State::DisabledIndefinitely => 4,
        }
    }

    /// Whether the function is skipped.
    pub fn is_disabled(self) -> bool {
        matches!(
            self,
            State::DisabledTemporarily | State::DisabledIndefinitely
        )
    }
}

/// A function's status for the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// The state.
    pub state: u8,
    /// The state's name.
    pub state_name: State,
    /// Tokens left in the bucket.
    pub tokens: f64,
    /// Runs measured.
    pub runs: u64,
    /// Runs over the budget.
    pub slow_runs: u64,
    /// Total time spent, in milliseconds.
    pub total_ms: f64,
}

#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    at: Instant,
    state: State,
    disabled_until: Option<Instant>,
    disables: u32,
    runs: u64,
    slow_runs: u64,
    total: Duration,
}

/// Per-function buckets. Shared by every chain, so state survives chain rebuilds.
#[derive(Debug, Default)]
pub struct Watcher {
    config: WatcherConfig,
    /// Looked up two or three times per event run: with the Hog dicts' hasher rather than
    /// SipHash (the keys are function ids, not event data).
    buckets: Mutex<Buckets>,
}

type Buckets = HashMap<FunctionKey, Bucket, quill_hog::fasthash::FastState>;

impl Watcher {
    /// A watcher with these thresholds.
    pub fn new(config: WatcherConfig) -> Watcher {
        Watcher {
            config,
            buckets: Mutex::default(),
        }
    }

    /// The thresholds.
    pub fn config(&self) -> &WatcherConfig {
        &self.config
    }

    fn bucket<'a>(&self, map: &'a mut Buckets, key: FunctionKey, now: Instant) -> &'a mut Bucket {
        let c = &self.config;
        let b = map.entry(key).or_insert_with(|| Bucket {
            tokens: c.pool,
            at: now,
            state: State::Healthy,
            disabled_until: None,
            disables: 0,
            runs: 0,
            slow_runs: 0,
            total: Duration::ZERO,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * c.refill_per_sec).min(c.pool);
        b.at = now;
        if b.state == State::DisabledTemporarily && b.disabled_until.is_some_and(|t| now >= t) {
            b.state = State::Degraded;
            b.disabled_until = None;
            b.tokens = b.tokens.max(c.degraded_at);
        }
        if b.state == State::Degraded && b.tokens >= c.pool {
            b.state = State::Healthy;
        }
        b
    }

    /// The function's state now (Healthy for a function never seen).
    pub fn state(&self, key: FunctionKey, now: Instant) -> State {
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(&key) {
            return State::Healthy;
        }
        self.bucket(&mut map, key, now).state
    }

    /// The function's status for the API.
    pub fn status(&self, key: FunctionKey, now: Instant) -> Status {
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = self.bucket(&mut map, key, now);
        Status {
            state: b.state.code(),
            state_name: b.state,
            tokens: (b.tokens * 10.0).round() / 10.0,
            runs: b.runs,
            slow_runs: b.slow_runs,
            total_ms: b.total.as_secs_f64() * 1000.0,
        }
    }

    /// Records one run; returns the new state when it changed.
    pub fn record(&self, key: FunctionKey, took: Duration, now: Instant) -> Option<State> {
        let c = self.config;
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = self.bucket(&mut map, key, now);
        b.runs += 1;
        b.total += took;
        if took <= c.budget {
            return None;
        }
        b.slow_runs += 1;
        let span = c.timeout.saturating_sub(c.budget).as_secs_f64().max(1e-9);
        let over = (took - c.budget).as_secs_f64();
        b.tokens = (b.tokens - c.max_cost * (over / span).min(1.0)).max(0.0);
        let before = b.state;
        if b.state.is_disabled() {
            return None;
        }
        if b.tokens <= 0.0 {
            b.disables += 1;
            if b.disables >= c.max_temporary_disables {
                b.state = State::DisabledIndefinitely;
            } else {
                b.state = State::DisabledTemporarily;
                b.disabled_until = Some(now + c.disabled_for);
            }
        } else if b.tokens < c.degraded_at {
            b.state = State::Degraded;
        }
        (b.state != before).then_some(b.state)
    }

    /// Forgets a function (when it is saved or deleted): it starts healthy again.
    pub fn reset(&self, key: FunctionKey) {
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Watcher {
        Watcher::new(WatcherConfig {
            pool: 100.0,
            refill_per_sec: 0.01,
            degraded_at: 80.0,
            max_cost: 10.0,
            ..WatcherConfig::default()
        })
    }

    #[test]
    fn fast_runs_stay_healthy() {
        let w = small();
        let t = Instant::now();
        for _ in 0..1000 {
            assert_eq!(w.record((1, 1), Duration::from_micros(50), t), None);
        }
        assert_eq!(w.state((1, 1), t), State::Healthy);
    }

    #[test]
    fn slow_runs_degrade_then_disable_then_recover() {
        let w = small();
        let t = Instant::now();
        let key = (1, 1);
        let timeout = w.config().timeout;
        let mut changes = Vec::new();
        for _ in 0..10 {
            changes.extend(w.record(key, timeout, t));
        }
        assert_eq!(changes, vec![State::Degraded, State::DisabledTemporarily]);
        assert_eq!(w.status(key, t).state, 3);
        // After the disable period it comes back degraded.
        let later = t + w.config().disabled_for + Duration::from_secs(1);
        assert_eq!(w.state(key, later), State::Degraded);
        // Refilled completely, it is healthy again.
        assert_eq!(
            w.state(key, later + Duration::from_secs(2100)),
            State::Healthy
        );
    }

    #[test]
    fn repeated_disables_are_permanent() {
        let w = small();
        let key = (1, 1);
        let mut t = Instant::now();
        for _ in 0..3 {
            for _ in 0..20 {
                w.record(key, w.config().timeout, t);
            }
            t += w.config().disabled_for + Duration::from_secs(1);
        }
        assert_eq!(w.state(key, t), State::DisabledIndefinitely);
        w.reset(key);
        assert_eq!(w.state(key, t), State::Healthy);
    }

    #[test]
    fn cost_scales_with_time_over_budget() {
        let w = small();
        let t = Instant::now();
        let c = *w.config();
        let half = c.budget + (c.timeout - c.budget) / 2;
        w.record((1, 1), half, t);
        assert!((w.status((1, 1), t).tokens - 95.0).abs() < 0.2);
    }
}
