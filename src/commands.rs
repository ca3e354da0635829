//! The offline commands: `ingest`, `replay`, `project create|list`. Each takes the data
//! directory's lock, so they refuse to run beside a server on the same directory.

use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use quill_pipeline::data_dir::DataDir;
use quill_pipeline::identity;
use quill_pipeline::indexer::Indexer;
use quill_pipeline::log::{AppendBatch, Log, LogOptions};
use quill_pipeline::materialize::Materializer;
use quill_pipeline::projects::{self, Registry};
use quill_pipeline::store::Store;
use quill_pipeline::transform::Transforms;
use quill_sources::capture::{Capture, RequestInfo};
use serde_json::Value;

use crate::cli::{DataDirArgs, IngestArgs};

struct Opened {
    _data: DataDir,
    store: Arc<Store>,
    index: Arc<Store>,
    log: Log,
}

fn open(args: &DataDirArgs) -> anyhow::Result<Opened> {
    let data = DataDir::open(&args.data_dir)?;
    let store = Arc::new(Store::open(&data.state_file()).context("opening the state store")?);
    let index = open_index(&data, &store)?;
    let log = Log::open(&data.log_dir(), LogOptions::default()).context("opening the event log")?;
    Ok(Opened {
        _data: data,
        store,
        index,
        log,
    })
}

/// Opens the events index. A data directory from before the index had its own file keeps it
/// in the state store: that copy is dropped, and the indexer rebuilds the index from the log.
pub fn open_index(data: &DataDir, state: &Store) -> anyhow::Result<Arc<Store>> {
    if state.meta(LEGACY_INDEX_CURSOR)? > 0 {
        tracing::info!(
            "moving the events index out of the state store; it is rebuilt from the log"
        );
        Indexer::reset(state)?;
    }
    Ok(Arc::new(
        Store::open_with_cache(&data.index_file(), INDEX_CACHE_BYTES)
            .context("opening the events index")?,
    ))
}

/// The events index's page cache. redb's default, 1 GiB, filled up as the indexer rewrote
/// pages all over the person-keyed table: a server with no insights at all held 1.2 GiB of
/// heap after 10M events (session 16). Nothing waits on the index but the events list.
const INDEX_CACHE_BYTES: usize = 256 << 20;

/// The indexer's cursor key, as it was kept in the state store.
const LEGACY_INDEX_CURSOR: &str = "cursor.events_index";

/// Lines per append: large enough to amortize the fsync.
const INGEST_CHUNK: usize = 5_000;

pub fn ingest(args: IngestArgs) -> anyhow::Result<()> {
    let opened = open(&args.data)?;
    let boot = projects::bootstrap(&opened.store, None, None)?;
    let default_token = args.token.clone().unwrap_or(boot.project.api_token);
    let capture = Capture {
        log: opened.log.clone(),
        registry: Arc::new(Registry::load(&opened.store)?),
        transforms: Arc::new(Transforms::default()),
    };
    let (input, total): (Box<dyn Read>, Option<u64>) = if args.file.as_os_str() == "-" {
        (Box::new(std::io::stdin()), None)
    } else {
        let file = std::fs::File::open(&args.file)
            .with_context(|| format!("opening {}", args.file.display()))?;
        let len = file.metadata().ok().map(|m| m.len());
        (Box::new(file), len)
    };
    let bar = match total {
        Some(len) => ProgressBar::new(len).with_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner(),
    };
    let (mut accepted, mut duplicates, mut rejected, mut dropped) =
        (0usize, 0usize, 0usize, 0usize);
    let mut batch = AppendBatch::new();
    let flush =
        |batch: AppendBatch, accepted: &mut usize, duplicates: &mut usize| -> anyhow::Result<()> {
            if batch.is_empty() {
                return Ok(());
            }
            let appended = opened.log.append_blocking(batch)?;
            *accepted += appended.stored;
            *duplicates += appended.duplicates;
            Ok(())
        };
    for (number, line) in BufReader::new(input).lines().enumerate() {
        let line = line.with_context(|| format!("reading line {}", number + 1))?;
        bar.inc(line.len() as u64 + 1);
        if line.trim().is_empty() {
            continue;
        }
        let text = with_default_token(&line, &default_token);
        let info = RequestInfo {
            now_us: quill_pipeline::event::now_us(),
            ..RequestInfo::default()
        };
        match capture.prepare(&text, &info) {
            Ok(prepared) => {
                dropped += prepared.received - prepared.batch.len();
                batch.extend(prepared.batch);
            }
            Err(e) => {
                rejected += 1;
                bar.suspend(|| eprintln!("line {}: {} ({})", number + 1, e, e.code()));
            }
        }
        if batch.len() >= INGEST_CHUNK {
            flush(std::mem::take(&mut batch), &mut accepted, &mut duplicates)?;
        }
    }
    flush(batch, &mut accepted, &mut duplicates)?;
    bar.finish_and_clear();
    let mut materializer = Materializer::new(opened.store.clone(), opened.log.reader())?;
    materializer.catch_up()?;
    Indexer::new(opened.index.clone(), opened.log.reader())?.catch_up()?;
    println!("accepted {accepted}, duplicates {duplicates}, dropped by transformations {dropped}, rejected {rejected}");
    opened.log.shutdown();
    Ok(())
}

/// A line without any token gets the default one, so it goes through capture's token rules.
fn with_default_token(line: &str, token: &str) -> String {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(mut obj)) => {
            let has_token = ["token", "$token", "api_key"]
                .iter()
                .any(|k| obj.contains_key(*k))
                || obj.get("properties").and_then(|p| p.get("token")).is_some();
            if !has_token {
                obj.insert("token".into(), Value::String(token.to_string()));
            }
            Value::Object(obj).to_string()
        }
        _ => line.to_string(),
    }
}

pub fn replay(args: &DataDirArgs) -> anyhow::Result<()> {
    let opened = open(args)?;
    let started = std::time::Instant::now();
    Materializer::reset(&opened.store)?;
    Indexer::reset(&opened.index)?;
    let mut materializer = Materializer::new(opened.store.clone(), opened.log.reader())?;
    let end = materializer.catch_up()?;
    Indexer::new(opened.index.clone(), opened.log.reader())?.catch_up()?;
    let (count, digest) = identity::digest(&opened.store)?;
    println!(
        "replayed {end} bytes of log in {:.2}s; persons: {count}; digest: {digest}",
        started.elapsed().as_secs_f64()
    );
    opened.log.shutdown();
    Ok(())
}

pub fn project_create(args: &DataDirArgs, name: &str) -> anyhow::Result<()> {
    let opened = open(args)?;
    projects::bootstrap(&opened.store, None, None)?;
    let project = projects::create(&opened.store, name)?;
    println!(
        "Created project {} ({}) with token {}",
        project.id, project.name, project.api_token
    );
    opened.log.shutdown();
    Ok(())
}

pub fn project_list(args: &DataDirArgs) -> anyhow::Result<()> {
    let opened = open(args)?;
    for p in projects::list(&opened.store)? {
        println!("{}\t{}\t{}", p.id, p.api_token, p.name);
    }
    opened.log.shutdown();
    Ok(())
}
