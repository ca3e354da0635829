//! Each function's recent log entries: errors, invalid results, `print` output and watcher
//! state changes, newest last. Kept in memory (the last [`CAPACITY`] per function), so they are
//! gone after a restart, as in a log tail.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;

/// Entries kept per function.
pub const CAPACITY: usize = 500;

/// A function's key: `(project, function id)`.
pub type FunctionKey = (u32, u64);

/// One log entry, as `GET .../hog_functions/{id}/logs` returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogEntry {
    /// ISO 8601.
    pub timestamp: String,
    /// `debug`, `info`, `warn` or `error`.
    pub level: &'static str,
    /// What happened.
    pub message: String,
}

/// The logs of every function.
#[derive(Debug, Default)]
pub struct FunctionLogs {
    entries: Mutex<HashMap<FunctionKey, VecDeque<LogEntry>>>,
}

impl FunctionLogs {
    /// Records an entry.
    pub fn push(&self, key: FunctionKey, level: &'static str, message: impl Into<String>) {
        let entry = LogEntry {
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            level,
            message: message.into(),
        };
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let log = map.entry(key).or_default();
        if log.len() == CAPACITY {
            log.pop_front();
        }
        log.push_back(entry);
    }

    /// A function's entries, newest first (as PostHog lists them).
    pub fn recent(&self, key: FunctionKey, limit: usize) -> Vec<LogEntry> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&key)
            .map(|log| log.iter().rev().take(limit).cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets a function's entries (when it is deleted).
    pub fn clear(&self, key: FunctionKey) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest() {
        let logs = FunctionLogs::default();
        for i in 0..CAPACITY + 3 {
            logs.push((1, 1), "info", format!("{i}"));
        }
        let recent = logs.recent((1, 1), 2);
        assert_eq!(recent[0].message, format!("{}", CAPACITY + 2));
        assert_eq!(recent.len(), 2);
        assert!(logs.recent((1, 2), 10).is_empty());
    }
}
