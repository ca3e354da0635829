//! The loop every log follower (the materializer, the indexer) runs: step while the log has
//! records, publish the cursor after each batch, sync when idle, back off on errors.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::store::StoreError;

/// A log follower: applies the log in batches, its cursor committed with its state.
pub trait Follower {
    /// What its log lines call it.
    const NAME: &'static str;
    /// How long to sleep when the log has nothing new.
    const IDLE: Duration;
    /// Its error.
    type Error: std::fmt::Display;

    /// Applies the next batch, if the log has one; returns how many records it covered.
    fn step(&mut self) -> Result<usize, Self::Error>;
    /// The log offset everything below which is applied.
    fn cursor(&self) -> u64;
    /// Makes every commit so far durable.
    fn sync(&mut self) -> Result<(), StoreError>;
    /// Whether an idle follower should sync now.
    fn sync_due(&self) -> bool;
    /// Whether to step now; a follower that prefers larger batches may wait for more log.
    fn ready(&mut self) -> bool {
        true
    }
}

/// Follows the log until `stop` is set, publishing the cursor after every batch, and syncs
/// before returning.
pub fn follow<F: Follower>(mut f: F, progress: watch::Sender<u64>, stop: &AtomicBool) {
    progress.send_replace(f.cursor());
    let mut backoff = Duration::from_millis(1);
    while !stop.load(Ordering::Relaxed) {
        if !f.ready() {
            std::thread::sleep(F::IDLE);
            continue;
        }
        match f.step() {
            Ok(0) => {
                if f.sync_due() {
                    if let Err(e) = f.sync() {
                        tracing::error!(error = %e, follower = F::NAME, "cannot sync");
                    }
                }
                std::thread::sleep(F::IDLE);
            }
            Ok(_) => {
                progress.send_replace(f.cursor());
                backoff = Duration::from_millis(1);
            }
            Err(e) => {
                tracing::error!(error = %e, follower = F::NAME, cursor = f.cursor(), "step failed; retrying");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    if let Err(e) = f.sync() {
        tracing::error!(error = %e, follower = F::NAME, "cannot sync");
    }
}
