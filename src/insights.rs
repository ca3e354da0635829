//! The insights service: registered insights, the feeder thread and the engine they run on.
//!
//! Insight definitions live in the state store (definitions kind `insight`). At start, and
//! whenever a new insight reads a property the dataflow does not project yet, the feeder thread
//! (re)builds the engine: it loads the log and identity up to the materializer's cursor, installs
//! every insight, then follows the materializer. Registering an insight whose properties are
//! already projected only installs a new insight set over the existing arrangement.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use quill_operators::QueryError;
use quill_pipeline::definitions::{self, Definition};
use quill_pipeline::event::{now_us, ProjectId};
use quill_pipeline::graph::feeder::{Bootstrap, Feeder, GraphBatch, Projection};
use quill_pipeline::graph::{BuildContext, Engine, InsightOperator, Interner, Published};
use quill_pipeline::log::Log;
use quill_pipeline::store::{Store, StoreError};
use serde_json::Value;
use tokio::sync::watch;

/// The definitions kind of insights.
pub const KIND: &str = "insight";

/// The longest an ad hoc query may run.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(120);

/// A registered insight's key in the engine: project and id in one number.
pub fn engine_key(project: ProjectId, id: u64) -> u64 {
    (u64::from(project) << 40) | id
}

/// The query inside a stored insight body.
pub fn stored_query(body: &Value) -> &Value {
    body.get("query").unwrap_or(&Value::Null)
}

struct Registered {
    query: Value,
    op: Arc<dyn InsightOperator>,
}

/// Registered insights and the engine that maintains them.
pub struct Insights {
    store: Arc<Store>,
    log: Log,
    interner: Arc<Interner>,
    engine: RwLock<Option<Arc<Engine>>>,
    /// Results published by whichever engine is current.
    version: watch::Sender<u64>,
    workers: usize,
    /// Whether the feeder loads and extends the checkpoint of its input.
    checkpoint: bool,
    registered: Mutex<BTreeMap<(ProjectId, u64), Registered>>,
    /// Every live stored definition, including those whose query no longer builds. Reads
    /// answer from here: a read transaction on the state store waited up to 100 ms behind the
    /// materializer's and the checkpoint's commits.
    definitions: RwLock<BTreeMap<(ProjectId, u64), Arc<Definition>>>,
    /// Bumped whenever `registered` changes: a set installed before a load is still current
    /// after it if this has not moved.
    generation: AtomicU64,
    /// What the current engine projects; a wider need triggers a rebuild.
    projection: Mutex<Projection>,
    rebuild: Arc<AtomicBool>,
    /// The log offset the current engine has been fed up to.
    fed: RwLock<Arc<AtomicU64>>,
    ready: watch::Sender<bool>,
    /// How the current engine was loaded.
    bootstrap: Mutex<Bootstrap>,
    /// Set at shutdown: live streams end.
    closing: watch::Sender<bool>,
}

impl Insights {
    /// Loads every stored insight. The engine starts with [`Insights::spawn_feeder`].
    pub fn load(
        store: Arc<Store>,
        log: Log,
        workers: usize,
        checkpoint: bool,
    ) -> anyhow::Result<Arc<Self>> {
        let interner = Interner::new();
        let mut registered = BTreeMap::new();
        let mut projection = Projection::default();
        let mut stored = BTreeMap::new();
        for project in definitions::projects_with(&store, KIND)? {
            for def in definitions::list(&store, project, KIND, false)? {
                let def = Arc::new(def);
                stored.insert((project, def.id), def.clone());
                let query = stored_query(&def.body).clone();
                match build(&interner, project, &query) {
                    Ok(op) => {
                        projection = projection.union(&needs(&*op));
                        registered.insert((project, def.id), Registered { query, op });
                    }
                    Err(e) => {
                        tracing::warn!(project, id = def.id, error = %e, "skipping an insight whose query no longer builds")
                    }
                }
            }
        }
        Ok(Arc::new(Self {
            store,
            log,
            interner,
            engine: RwLock::new(None),
            version: watch::channel(0).0,
            workers,
            checkpoint,
            registered: Mutex::new(registered),
            definitions: RwLock::new(stored),
            generation: AtomicU64::new(0),
            projection: Mutex::new(projection),
            rebuild: Arc::new(AtomicBool::new(false)),
            fed: RwLock::new(Arc::new(AtomicU64::new(0))),
            ready: watch::channel(false).0,
            bootstrap: Mutex::new(Bootstrap::default()),
            closing: watch::channel(false).0,
        }))
    }

    /// Starts the thread that builds the engine and feeds it the materializer's batches.
    pub fn spawn_feeder(
        self: &Arc<Self>,
        batches: Receiver<GraphBatch>,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<std::thread::JoinHandle<()>> {
        let this = self.clone();
        std::thread::Builder::new()
            .name("quill-insights-feeder".into())
            .spawn(move || this.feed_loop(batches, stop))
            .context("starting the insights feeder")
    }

    fn feed_loop(self: Arc<Self>, batches: Receiver<GraphBatch>, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::Relaxed) {
            self.rebuild.store(false, Ordering::SeqCst);
            let started = Instant::now();
            let engine = match Engine::start_with(self.workers, self.version.clone()) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the insights dataflow");
                    return;
                }
            };
            // Installed before the load, so that each round of it updates the insights, as
            // the first load over HTTP did. Installed after it, a set replays every person in
            // one step and holds all of that step's output at once: several times the
            // dataflow's state (a restart at 10M events ran out of 23 GiB).
            let installed = self.install_on(&engine);
            if let Err(e) = &installed {
                tracing::error!(error = %e, "cannot install the insights");
            }
            let projection = lock(&self.projection).clone();
            let feeder = Feeder::new(engine.clone(), self.interner.clone(), &projection);
            let feeder = match self.checkpoint {
                true => feeder.with_checkpoint(self.store.clone()),
                false => Ok(feeder),
            };
            let mut reader = self.log.reader();
            let loaded = feeder.and_then(|mut feeder| {
                let loaded = feeder.bootstrap(&self.store, &mut reader)?;
                Ok((feeder, loaded))
            });
            let (feeder, loaded) = match loaded {
                Ok(loaded) => loaded,
                Err(e) => {
                    tracing::error!(error = %e, "cannot load the insights dataflow");
                    return;
                }
            };
            // A checkpoint may have projected more than the insights need; the dataflow now
            // does too.
            {
                let mut projection = lock(&self.projection);
                *projection = projection.union(&Projection {
                    event_keys: feeder.event_keys(),
                    person_keys: Vec::new(),
                });
            }
            *lock(&self.bootstrap) = loaded;
            *write(&self.fed) = feeder.cursor();
            *write(&self.engine) = Some(engine);
            // Only insights registered or changed during the load need a new set.
            if installed.ok() != Some(self.generation.load(Ordering::SeqCst)) {
                if let Err(e) = self.install() {
                    tracing::error!(error = %e, "cannot install the insights");
                }
            }
            self.ready.send_replace(true);
            tracing::info!(
                offset = loaded.end,
                from_checkpoint = loaded.checkpoint,
                log_events = loaded.log_events,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "insights dataflow loaded"
            );
            let rebuild = self.rebuild.clone();
            feeder.run(&batches, loaded.end, &stop, &rebuild);
        }
    }

    /// The engine, once loaded.
    fn engine(&self) -> Option<Arc<Engine>> {
        read(&self.engine).clone()
    }

    /// Installs the registered insights as the live set (when the engine is loaded).
    fn install(&self) -> Result<(), quill_pipeline::graph::EngineError> {
        match self.engine() {
            Some(engine) => self.install_on(&engine).map(|_| ()),
            None => Ok(()),
        }
    }

    /// Installs the registered insights on `engine`; returns the generation installed.
    fn install_on(&self, engine: &Engine) -> Result<u64, quill_pipeline::graph::EngineError> {
        let registered = lock(&self.registered);
        let generation = self.generation.load(Ordering::SeqCst);
        let set = registered
            .iter()
            .map(|((project, id), r)| (engine_key(*project, *id), r.op.clone()))
            .collect();
        engine.set_insights(set)?;
        Ok(generation)
    }

    /// Relative date ranges (`-7d`) were resolved when each operator was built; rebuilding the
    /// operators every hour moves them along. The new set reads the shared arrangement, but it
    /// replays every person, so it is installed only when some insight's bounds moved: a
    /// day-interval insight's at midnight, an hour-interval one's every hour.
    fn refresh_ranges(&self) {
        {
            let mut registered = lock(&self.registered);
            let mut moved = 0;
            for ((project, _), r) in registered.iter_mut() {
                if let Ok(op) = build(&self.interner, *project, &r.query) {
                    let bounds = op.resolved_bounds();
                    if bounds.is_none() || bounds != r.op.resolved_bounds() {
                        r.op = op;
                        moved += 1;
                    }
                }
            }
            tracing::debug!(moved, "re-resolved relative date ranges");
            if moved == 0 {
                return;
            }
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        if let Err(e) = self.install() {
            tracing::error!(error = %e, "cannot reinstall the insights");
        }
    }

    /// Starts the thread that re-resolves relative date ranges at every hour boundary.
    pub fn spawn_range_refresher(self: &Arc<Self>, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
        let this = self.clone();
        std::thread::Builder::new()
            .name("quill-insights-ranges".into())
            .spawn(move || {
                let hour_of = || now_us() / 3_600_000_000;
                let mut hour = hour_of();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_secs(1));
                    if hour_of() != hour {
                        hour = hour_of();
                        this.refresh_ranges();
                    }
                }
            })
            .context("starting the insights range refresher")?;
        Ok(())
    }

    /// Builds an operator for `query` in `project`, or says which field is wrong.
    pub fn build(
        &self,
        project: ProjectId,
        query: &Value,
    ) -> Result<Arc<dyn InsightOperator>, QueryError> {
        build(&self.interner, project, query)
    }

    /// Makes sure the dataflow projects what `op` reads; rebuilds it (from the log) if not.
    fn ensure_projection(&self, op: &dyn InsightOperator) {
        let need = needs(op);
        let mut projection = lock(&self.projection);
        if !projection.covers(&need) {
            *projection = projection.union(&need);
            tracing::info!(
                ?projection,
                "an insight reads new properties; reloading the dataflow"
            );
            self.ready.send_replace(false);
            self.rebuild.store(true, Ordering::SeqCst);
        }
    }

    /// Registers a stored insight and starts maintaining it.
    pub fn register(&self, project: ProjectId, def: &Definition, op: Arc<dyn InsightOperator>) {
        self.ensure_projection(&*op);
        let query = stored_query(&def.body).clone();
        {
            let mut registered = lock(&self.registered);
            registered.insert((project, def.id), Registered { query, op });
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        if let Err(e) = self.install() {
            tracing::error!(error = %e, "cannot install the insights");
        }
    }

    /// Stops maintaining an insight.
    pub fn unregister(&self, project: ProjectId, id: u64) {
        let removed = {
            let mut registered = lock(&self.registered);
            self.generation.fetch_add(1, Ordering::SeqCst);
            registered.remove(&(project, id)).is_some()
        };
        if removed {
            if let Err(e) = self.install() {
                tracing::error!(error = %e, "cannot install the insights");
            }
        }
    }

    /// The log offset the dataflow has been fed up to.
    pub fn fed_offset(&self) -> u64 {
        read(&self.fed).load(Ordering::Acquire)
    }

    /// How the current engine was loaded: from the checkpoint up to which offset, and how many
    /// events from the log.
    pub fn loaded(&self) -> Bootstrap {
        *lock(&self.bootstrap)
    }

    /// Waits until the dataflow is loaded and has been fed everything acknowledged before the
    /// call. Gives up after `wait`; returns whether it got there.
    pub async fn wait_fed(&self, wait: Duration) -> bool {
        if self.workers == 0 {
            return false;
        }
        let target = self.log.end();
        let deadline = tokio::time::Instant::now() + wait;
        let mut ready = self.ready.subscribe();
        if tokio::time::timeout_at(deadline, ready.wait_for(|r| *r))
            .await
            .is_err()
        {
            return false;
        }
        loop {
            let fed = read(&self.fed).clone();
            if fed.load(Ordering::Acquire) >= target {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The maintained result of a registered insight.
    pub fn result(&self, project: ProjectId, id: u64) -> Option<Published> {
        self.engine()?.result(engine_key(project, id))
    }

    /// Waits until the insight's result reflects the log up to `offset`.
    pub async fn result_at(
        &self,
        project: ProjectId,
        id: u64,
        offset: u64,
        wait: Duration,
    ) -> Option<Published> {
        let mut version = self.version.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(p) = self.result(project, id) {
                if p.offset >= offset {
                    return Some(p);
                }
            }
            if tokio::time::timeout_at(deadline, version.changed())
                .await
                .is_err()
            {
                return self.result(project, id);
            }
        }
    }

    /// Changes whenever any result is published.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Becomes true when the server is shutting down.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Ends every live stream.
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
    }

    /// Answers an ad hoc query over everything acknowledged before the call.
    pub async fn query(&self, op: Arc<dyn InsightOperator>) -> anyhow::Result<Published> {
        if self.workers == 0 {
            anyhow::bail!("the insights dataflow is off (the server runs with --workers 0)");
        }
        self.ensure_projection(&*op);
        if !self.wait_fed(QUERY_TIMEOUT).await {
            anyhow::bail!("the insights dataflow is still loading");
        }
        let engine = self
            .engine()
            .context("the insights dataflow is not loaded")?;
        let answer = tokio::task::spawn_blocking(move || engine.query(op, QUERY_TIMEOUT)).await??;
        Ok(answer)
    }

    /// A live insight's stored definition.
    pub fn definition(&self, project: ProjectId, id: u64) -> Option<Arc<Definition>> {
        read(&self.definitions).get(&(project, id)).cloned()
    }

    /// A project's live insight definitions, by id.
    pub fn definitions(&self, project: ProjectId) -> Vec<Arc<Definition>> {
        read(&self.definitions)
            .range((project, 0)..=(project, u64::MAX))
            .map(|(_, d)| d.clone())
            .collect()
    }
}

/// Stores and registers a new insight after its query builds.
pub fn create(
    insights: &Insights,
    project: ProjectId,
    body: Value,
) -> Result<Result<Arc<Definition>, QueryError>, StoreError> {
    let query = stored_query(&body).clone();
    let op = match insights.build(project, &query) {
        Ok(op) => op,
        Err(e) => return Ok(Err(e.within("query"))),
    };
    let def = Arc::new(definitions::create(
        &insights.store,
        project,
        KIND,
        body,
        None,
    )?);
    write(&insights.definitions).insert((project, def.id), def.clone());
    insights.register(project, &def, op);
    Ok(Ok(def))
}

/// Deletes a stored insight and stops maintaining it.
pub fn delete(insights: &Insights, project: ProjectId, id: u64) -> Result<(), StoreError> {
    definitions::delete(&insights.store, project, KIND, id)?;
    write(&insights.definitions).remove(&(project, id));
    insights.unregister(project, id);
    Ok(())
}

fn build(
    interner: &Arc<Interner>,
    project: ProjectId,
    query: &Value,
) -> Result<Arc<dyn InsightOperator>, QueryError> {
    let ctx = BuildContext {
        interner: interner.clone(),
        now_ms: now_us() / 1000,
        project,
    };
    quill_operators::build(query, &ctx)
}

fn needs(op: &dyn InsightOperator) -> Projection {
    let mut p = Projection {
        event_keys: op.event_properties(),
        person_keys: op.person_properties(),
    };
    p.event_keys.sort();
    p.event_keys.dedup();
    p.person_keys.sort();
    p.person_keys.dedup();
    p
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
