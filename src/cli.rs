//! Command-line interface.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Quill: a self-hostable, PostHog-compatible product-analytics pipeline.
#[derive(Debug, Parser)]
#[command(name = "quill", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: capture, the event log, persons and the API.
    Serve(ServeArgs),
    /// Bulk-load NDJSON events (PostHog's event JSON) through capture's validation.
    Ingest(IngestArgs),
    /// Rebuild all derived state (persons, groups, the events index) from the log.
    Replay(DataDirArgs),
    /// Manage projects.
    Project {
        #[command(subcommand)]
        command: ProjectCommand,
    },
    /// The Hog language: run, compile and execute programs.
    Hog {
        #[command(subcommand)]
        command: HogCommand,
    },
    /// Whole-system benchmarks.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Debug, Args, Clone)]
pub struct DataDirArgs {
    /// Where Quill keeps its event log and state.
    #[arg(long, env = "QUILL_DATA_DIR", default_value = "./quill-data")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data: DataDirArgs,
    /// Address to listen on.
    #[arg(long, env = "QUILL_BIND", default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,
    /// Seeds project 1's token (phc_...), so scripts can know it in advance.
    #[arg(long, env = "QUILL_PROJECT_TOKEN")]
    pub project_token: Option<String>,
    /// Seeds the personal API key (phx_...).
    #[arg(long, env = "QUILL_PERSONAL_API_KEY")]
    pub personal_api_key: Option<String>,
    /// Timely worker threads for the insights dataflow (0: no insights dataflow at all).
    #[arg(long, env = "QUILL_WORKERS", default_value_t = 1)]
    pub workers: usize,
    /// Keep no checkpoint of the insights dataflow's input: every start then reads the whole
    /// log into it (slower starts, a smaller state file).
    #[arg(long, env = "QUILL_NO_INSIGHTS_CHECKPOINT")]
    pub no_insights_checkpoint: bool,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub data: DataDirArgs,
    /// An NDJSON file, or `-` for standard input.
    pub file: PathBuf,
    /// Token for lines that carry none; defaults to project 1's.
    #[arg(long)]
    pub token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project with its own token.
    Create {
        #[command(flatten)]
        data: DataDirArgs,
        /// The project's name.
        name: String,
    },
    /// List projects and their tokens.
    List {
        #[command(flatten)]
        data: DataDirArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Concurrent clients POST /batch to a freshly started server and wait for acknowledgement.
    Ingest(crate::bench::ingest::IngestBenchArgs),
    /// The log's in-process append rate (group commit + fsync), without HTTP.
    Log(crate::bench::log::LogBenchArgs),
    /// Freshness of ten maintained insights while events stream in at a steady rate.
    Insights(crate::bench::insights::InsightsBenchArgs),
    /// /flags?v=2 at a fixed request rate (open loop), with 50 flags and real person lookups.
    Flags(crate::bench::flags::FlagsBenchArgs),
}

#[derive(Debug, Subcommand)]
pub enum HogCommand {
    /// Compile and run a `.hog` program, printing to stdout.
    Run {
        /// The program.
        file: PathBuf,
    },
    /// Compile a `.hog` program and print its bytecode as JSON.
    Compile {
        /// The program.
        file: PathBuf,
    },
    /// Run bytecode JSON (Quill's or PostHog's).
    Exec {
        /// The bytecode file.
        file: PathBuf,
    },
}
