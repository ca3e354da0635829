//! A `quill serve` child process on a fresh data directory, for the whole-system benchmarks.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::Context as _;

/// The project token the child serves.
pub const TOKEN: &str = "phc_bench_token";
/// The personal API key the child accepts.
pub const KEY: &str = "phx_bench_key";

/// The running child; dropping it stops the server and removes its data.
pub struct ChildServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl ChildServer {
    /// Starts `quill serve` on a free loopback port, with `extra` arguments after `serve`.
    pub fn start(name: &str, extra: &[&str]) -> anyhow::Result<ChildServer> {
        let dir = std::env::temp_dir().join(format!("quill-bench-{name}-{}", std::process::id()));
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = spawn(port, &dir, extra)?;
        Ok(ChildServer { child, port, dir })
    }

    /// Stops the server as in production (SIGTERM) and starts it again on the same data and
    /// port, with `extra` arguments after `serve`.
    pub fn restart(&mut self, extra: &[&str]) -> anyhow::Result<()> {
        self.stop();
        self.child = spawn(self.port, &self.dir, extra)?;
        Ok(())
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }

    /// `http://127.0.0.1:{port}`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        // SIGTERM, so the server shuts down as in production rather than being killed.
        self.stop();
        // For looking into a run afterwards: `QUILL_BENCH_KEEP_DATA=1` keeps its data.
        if std::env::var_os("QUILL_BENCH_KEEP_DATA").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn spawn(port: u16, dir: &Path, extra: &[&str]) -> anyhow::Result<Child> {
    Command::new(std::env::current_exe()?)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .args(extra)
        .arg("--data-dir")
        .arg(dir)
        .env("QUILL_PROJECT_TOKEN", TOKEN)
        .env("QUILL_PERSONAL_API_KEY", KEY)
        // The server's own log filter, for looking inside a benchmark run.
        .env(
            "QUILL_LOG",
            std::env::var("QUILL_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .spawn()
        .context("starting quill serve")
}

/// CPU time (user + system) a process has used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(ticks / hz.max(1) as f64)
}
