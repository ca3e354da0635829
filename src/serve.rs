//! `quill serve`: opens the data directory, starts the log, the materializer and HTTP.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use axum::routing::get;
use axum::Router;
use quill_pipeline::data_dir::DataDir;
use quill_pipeline::indexer::Indexer;
use quill_pipeline::log::{byte_position, Log, LogOptions};
use quill_pipeline::materialize::Materializer;
use quill_pipeline::projects::{self, Registry};
use quill_pipeline::store::Store;
use quill_pipeline::transform::Transforms;
use quill_sources::capture::{self, Capture};
use tokio::sync::watch;

use crate::api::{self, AppState};
use crate::cli::ServeArgs;

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let data = DataDir::open(&args.data.data_dir)?;
    let store = Arc::new(Store::open(&data.state_file()).context("opening the state store")?);
    let index = crate::commands::open_index(&data, &store)?;
    let boot = projects::bootstrap(
        &store,
        args.project_token.as_deref(),
        args.personal_api_key.as_deref(),
    )?;
    if boot.created {
        println!("Created project 1 ({}).", boot.project.name);
    }
    println!("Project token (phc):      {}", boot.project.api_token);
    println!("Personal API key (phx):   {}", boot.personal_api_key);
    let registry = Arc::new(Registry::load(&store)?);
    let log = Log::open(&data.log_dir(), LogOptions::default()).context("opening the event log")?;

    let (progress_tx, progress) = watch::channel(0u64);
    let (indexed_tx, indexed) = watch::channel(0u64);
    let stop = Arc::new(AtomicBool::new(false));
    let insights = crate::insights::Insights::load(
        store.clone(),
        log.clone(),
        args.workers,
        !args.no_insights_checkpoint,
    )?;
    let status = status_handler(
        log.clone(),
        progress.clone(),
        indexed.clone(),
        insights.clone(),
    );
    let mut materializer = Materializer::new(store.clone(), log.reader())?;
    // `--workers 0` runs without the insights dataflow: capture, persons and the events API
    // only (and the baseline that `quill bench insights` measures dataflow state against).
    let feeder = if args.workers > 0 {
        let (batches_tx, batches) = std::sync::mpsc::channel();
        materializer = materializer.with_observer(batches_tx);
        insights.spawn_range_refresher(stop.clone())?;
        Some(insights.spawn_feeder(batches, stop.clone())?)
    } else {
        tracing::info!("--workers 0: the insights dataflow is off");
        None
    };
    let materializer = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("quill-materializer".into())
            .spawn(move || materializer.run(progress_tx, stop))?
    };
    let indexer = Indexer::new(index.clone(), log.reader())?;
    let indexer = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("quill-indexer".into())
            .spawn(move || {
                lower_thread_priority();
                indexer.run(indexed_tx, stop)
            })?
    };

    let transforms = Arc::new(Transforms::default());
    let hog_functions = Arc::new(
        quill_transforms::HogFunctions::load(
            store.clone(),
            transforms.clone(),
            quill_transforms::Runtime::from_env().context("configuring transformations")?,
        )
        .context("loading the hog functions")?,
    );
    let capture = Arc::new(Capture {
        log: log.clone(),
        registry: registry.clone(),
        transforms,
    });
    let flags = Arc::new(
        api::feature_flags::FlagCache::load(&store).context("compiling the feature flags")?,
    );
    let streams = insights.clone();
    let state = Arc::new(AppState {
        index,
        store: store.clone(),
        registry,
        log: log.clone(),
        progress,
        indexed,
        flags,
        hog_functions,
        insights,
    });
    let app = Router::new()
        .route("/", get(|| async { "quill" }))
        .route("/_readiness", get(|| async { "ready" }))
        .route("/_status", get(status))
        .route("/_liveness", get(|| async { "alive" }))
        .merge(capture::router(capture))
        .merge(crate::flags_http::public_router(state.clone()))
        .merge(api::router(state));

    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("binding {}", args.bind))?;
    println!("Listening on http://{}", listener.local_addr()?);
    tracing::info!(addr = %args.bind, data_dir = %data.root().display(), "quill is serving");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        // Live streams never end by themselves; end them so that shutdown does not wait.
        streams.close_streams();
    })
    .await?;

    tracing::info!("shutting down: flushing the log");
    stop.store(true, Ordering::Relaxed);
    tokio::task::spawn_blocking(move || {
        log.shutdown();
        if materializer.join().is_err() {
            tracing::error!("the materializer thread panicked");
        }
        if indexer.join().is_err() {
            tracing::error!("the indexer thread panicked");
        }
        if feeder.is_some_and(|f| f.join().is_err()) {
            tracing::error!("the insights feeder panicked");
        }
    })
    .await?;
    drop(data);
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// The events index is the log's least urgent follower: when the CPU is short, acknowledging
/// captures, identity and the insights behind it come first, and the indexer catches up in the
/// slack. (The materializer used to run this way too; at 50k events/s the dataflow's worker
/// then kept it waiting, and every insight with it.) `/_status` shows the lag.
///
/// Linux's idle scheduling class: the indexer runs when a core would otherwise idle, and any
/// other thread that wakes takes its core at once. At niceness 10 it still took 0.4 of a core
/// from a 2-core machine streaming 50k events/s into ten insights, and at niceness 19 0.2–0.3.
/// Where the class is refused, niceness 19 is the fallback.
fn lower_thread_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain syscalls on the calling thread (id 0 is the caller); `param` outlives the
    // call and is only read.
    let idle = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } == 0;
    // SAFETY: as above.
    if !idle
        && unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19) } != 0
    {
        tracing::debug!("could not lower the indexer's priority");
    }
}

/// `GET /_status`: the durable log end and how far derived state has followed it.
fn status_handler(
    log: Log,
    progress: watch::Receiver<u64>,
    indexed: watch::Receiver<u64>,
    insights: Arc<crate::insights::Insights>,
) -> impl Fn() -> std::future::Ready<axum::Json<serde_json::Value>> + Clone {
    move || {
        let (end, materialized, indexed) = (log.end(), *progress.borrow(), *indexed.borrow());
        let fed = insights.fed_offset();
        let loaded = insights.loaded();
        let lag = |offset: u64| byte_position(end).saturating_sub(byte_position(offset));
        std::future::ready(axum::Json(serde_json::json!({
            "log_end_offset": end,
            "materialized_offset": materialized,
            "materializer_lag_bytes": lag(materialized),
            "indexed_offset": indexed,
            "indexer_lag_bytes": lag(indexed),
            "insights_fed_offset": fed,
            "insights_lag_bytes": lag(fed),
            "insights_loaded_from_checkpoint_offset": loaded.checkpoint,
            "insights_loaded_log_events": loaded.log_events,
            "insights_loaded_checkpoint_bytes": loaded.checkpoint_bytes,
            "heap_bytes": crate::heap::live_bytes(),
        })))
    }
}
