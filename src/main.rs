//! The `quill` binary: parses the command line, wires the crates together, maps errors to exit
//! codes. Pipeline logic lives in the library crates.

mod api;
mod bench;
mod cli;
mod commands;
mod flags_http;
mod heap;
mod hog;
mod insights;
mod serve;

use clap::Parser;
use tracing_subscriber::EnvFilter;

// The dataflow allocates and frees many small vectors per replayed person; under glibc's
// allocator that was about 40% of the timely worker's time at 10M events (perf, session 6).
// Counted, for `/_status` (see `heap`).
#[global_allocator]
static ALLOCATOR: heap::CountingAllocator = heap::CountingAllocator;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("QUILL_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: cli::Cli) -> anyhow::Result<()> {
    use cli::{BenchCommand, Command, ProjectCommand};
    match cli.command {
        Command::Serve(args) => runtime()?.block_on(serve::serve(args)),
        Command::Ingest(args) => commands::ingest(args),
        Command::Replay(args) => commands::replay(&args),
        Command::Project {
            command: ProjectCommand::Create { data, name },
        } => commands::project_create(&data, &name),
        Command::Project {
            command: ProjectCommand::List { data },
        } => commands::project_list(&data),
        Command::Bench {
            command: BenchCommand::Ingest(args),
        } => runtime()?.block_on(bench::ingest::run(args)),
        Command::Bench {
            command: BenchCommand::Log(args),
        } => bench::log::run(args),
        Command::Bench {
            command: BenchCommand::Insights(args),
        } => runtime()?.block_on(bench::insights::run(args)),
        Command::Bench {
            command: BenchCommand::Flags(args),
        } => runtime()?.block_on(bench::flags::run(args)),
        Command::Hog { command } => hog::run(&command),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
