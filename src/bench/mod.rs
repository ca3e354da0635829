//! Whole-system benchmarks (`quill bench ...`). Results go to BENCHMARKS.md by hand, with the
//! command that produced them.

pub mod events;
pub mod flags;
pub mod ingest;
pub mod insights;
pub mod log;
pub mod server;

/// p-th percentile (0–100) of sorted samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// `p50 …, p99 …, max …` of sorted millisecond samples, with `decimals` places.
pub fn p50_p99_max(sorted_ms: &[f64], decimals: usize) -> String {
    format!(
        "p50 {:.*} ms, p99 {:.*} ms, max {:.*} ms",
        decimals,
        percentile(sorted_ms, 50.0),
        decimals,
        percentile(sorted_ms, 99.0),
        decimals,
        sorted_ms.last().copied().unwrap_or(0.0)
    )
}

/// Peak resident memory of a process, in KiB.
pub fn peak_rss_kb(pid: u32) -> Option<u64> {
    proc_status_kb(pid, "VmHWM:")
}

/// Current resident memory of a process, in KiB.
pub fn current_rss_kb(pid: u32) -> Option<u64> {
    proc_status_kb(pid, "VmRSS:")
}

fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
