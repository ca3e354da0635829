//! [`HogTransformation`]: one compiled hog function as a pipeline stage.
//!
//! Per event: skip events of other projects, events the filters reject and disabled functions;
//! resolve the inputs; run the program with the globals `event` (PostHog's shape: `uuid`,
//! `event`, `distinct_id`, `properties`, `timestamp` (ISO 8601), `elements_chain`), `inputs` and
//! `project` (`{id}`); then apply the returned event's `event`, `distinct_id`, `properties` and
//! `timestamp` (when it is a valid ISO 8601 time). `null` drops the event. An error, a timeout,
//! an async call or a result that is not an event with a `properties` object passes the event
//! on unchanged and goes to the function's logs. Every run's time goes to the [`Watcher`].
//!
//! Decoded programs are not `Send` (the VM uses `Rc`), so each thread decodes a function's
//! bytecode once and keeps it in a thread-local cache keyed by the stage's instance id.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use quill_hog::fasthash::FastState;
use quill_hog::patch::JsonPatch;
use quill_hog::{ExecOptions, Limits, Outcome as VmOutcome, Program};
use quill_pipeline::event::Event;
use quill_pipeline::transform::{Outcome, Transform};
use serde_json::{json, Map, Value};

use crate::function::CompiledFunction;
use crate::host::Host;
use crate::inputs::Inputs;
use crate::iso::iso;
use crate::logs::{FunctionKey, FunctionLogs};
use crate::returned::apply_patch;
use crate::watcher::{State, Watcher, WatcherConfig};

/// Most `print` lines kept in the logs per run.
const MAX_PRINTS: usize = 10;

/// What every transformation shares: the watcher, the logs and the host functions.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// Time budgets and function health.
    pub watcher: Arc<Watcher>,
    /// Each function's logs.
    pub logs: Arc<FunctionLogs>,
    /// Host functions (`geoipLookup`, ...).
    pub host: Host,
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime::new(WatcherConfig::default(), Host::default())
    }
}

impl Runtime {
    /// A runtime configured from the environment: `QUILL_GEOIP_DB` (a `.mmdb` file for
    /// `geoipLookup`), `QUILL_HOG_TIMEOUT_MS` and `QUILL_HOG_BUDGET_MS` (the watcher's hard
    /// timeout and free budget per run).
    pub fn from_env() -> Result<Runtime, crate::host::GeoIpError> {
        let mut config = WatcherConfig::default();
        let ms = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(std::time::Duration::from_millis)
        };
        if let Some(t) = ms("QUILL_HOG_TIMEOUT_MS") {
            config.timeout = t;
        }
        if let Some(b) = ms("QUILL_HOG_BUDGET_MS") {
            config.budget = b;
        }
        let mut host = Host::default();
        if let Some(path) = std::env::var_os("QUILL_GEOIP_DB").filter(|p| !p.is_empty()) {
            host = host.with_geoip(std::path::Path::new(&path))?;
            tracing::info!(path = %std::path::Path::new(&path).display(), "GeoIP database loaded");
        }
        Ok(Runtime::new(config, host))
    }

    /// A runtime with these watcher thresholds (whose `timeout` is the VM's hard limit).
    pub fn new(config: WatcherConfig, host: Host) -> Runtime {
        Runtime {
            watcher: Arc::new(Watcher::new(config)),
            logs: Arc::new(FunctionLogs::default()),
            host,
        }
    }
}

/// A compiled hog function as a [`Transform`].
pub struct HogTransformation {
    key: FunctionKey,
    name: String,
    instance: u64,
    function: Arc<CompiledFunction>,
    runtime: Runtime,
}

static INSTANCES: AtomicU64 = AtomicU64::new(1);

/// What a run did with the event.
enum Ran {
    /// The function returned `null`.
    Dropped,
    /// The function returned something else, applied (or not, with the reason).
    Applied(Result<(), String>),
}

struct Loaded {
    program: Program,
    inputs: Option<Program>,
    options: ExecOptions,
}

thread_local! {
    // Looked up once per event run: with the Hog dicts' hasher rather than SipHash (the keys are
    // stage instance numbers).
    static LOADED: RefCell<HashMap<u64, Loaded, FastState>> = RefCell::new(HashMap::default());
}

/// Thread-local programs kept before the cache is cleared (stale chains leave entries behind).
const MAX_LOADED: usize = 1024;

impl HogTransformation {
    /// Function `id` of `project`.
    pub fn new(
        project: u32,
        id: u64,
        function: CompiledFunction,
        runtime: Runtime,
    ) -> HogTransformation {
        HogTransformation {
            key: (project, id),
            name: format!("hog_function {id} ({})", function.spec.name),
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
            function: Arc::new(function),
            runtime,
        }
    }

    fn load(&self) -> Result<Loaded, String> {
        let program = Program::new(&self.function.bytecode).map_err(|e| e.to_string())?;
        let inputs = match &self.function.inputs {
            Inputs::Templated(bc) => Some(Program::new(bc).map_err(|e| e.to_string())?),
            Inputs::Static(_) => None,
        };
        // The globals object lives as long as the program: per event only `event` (and
        // templated `inputs`) change, while `project` and static inputs are set once here.
        let mut globals = Map::new();
        globals.insert("project".into(), json!({"id": self.key.0}));
        if let Inputs::Static(v) = &self.function.inputs {
            globals.insert("inputs".into(), v.clone());
        }
        let options = ExecOptions {
            limits: Limits {
                timeout: self.runtime.watcher.config().timeout,
                ..Limits::default()
            },
            globals: Some(Value::Object(globals)),
            functions: self.runtime.host.functions(),
            ..ExecOptions::default()
        };
        Ok(Loaded {
            program,
            inputs,
            options,
        })
    }

    fn log(&self, level: &'static str, message: String) {
        self.runtime.logs.push(self.key, level, message);
    }

    /// Runs the function and applies what it returns (the inner `Err` names what is invalid
    /// about it); the outer `Err` is a failed run. Either leaves the event unchanged.
    fn run(&self, loaded: &mut Loaded, event: &mut Event, timestamp: &str) -> Result<Ran, String> {
        // The properties move into the globals for the run and back afterwards: the VM only
        // reads its globals, so no copy of the properties is needed.
        let properties = std::mem::take(&mut event.properties);
        if let Some(Value::Object(g)) = loaded.options.globals.as_mut() {
            fill_event_global(g, event, properties, timestamp);
        }
        let result = self.run_with(loaded);
        let global = match loaded.options.globals.as_mut() {
            Some(Value::Object(g)) => match g.get_mut("event") {
                Some(Value::Object(e)) => e,
                _ => return Err("internal: the event global".into()),
            },
            _ => return Err("internal: the globals".into()),
        };
        if let Some(Value::Object(p)) = global.get_mut("properties") {
            event.properties = std::mem::take(p);
        }
        Ok(match result? {
            JsonPatch::Replace(Value::Null) => Ran::Dropped,
            patch => Ran::Applied(apply_patch(event, patch, global, timestamp)),
        })
    }

    /// Runs the inputs (when templated), then the program, with the globals in
    /// `loaded.options.globals`; the program's result comes back as a patch against the `event`
    /// global.
    fn run_with(&self, loaded: &mut Loaded) -> Result<JsonPatch, String> {
        let inputs = match (&loaded.inputs, &self.function.inputs) {
            (Some(program), _) => {
                // Templates do not see `inputs` (as the first event's run did not).
                if let Some(Value::Object(g)) = loaded.options.globals.as_mut() {
                    g.remove("inputs");
                }
                match program.run(&loaded.options) {
                    Ok(r) => match r.outcome {
                        VmOutcome::Finished(v) => Some(v),
                        VmOutcome::Suspended { function, .. } => {
                            return Err(format!(
                            "inputs: async function `{function}` is not allowed in a transformation"
                        ))
                        }
                    },
                    Err(e) => return Err(format!("inputs: {}", quill_hog::format_error(&e.error))),
                }
            }
            // Static inputs were set once when the program was loaded.
            (None, Inputs::Static(_)) => None,
            (None, Inputs::Templated(_)) => Some(Value::Object(Map::new())),
        };
        if let (Some(inputs), Some(Value::Object(g))) = (inputs, loaded.options.globals.as_mut()) {
            g.insert("inputs".into(), inputs);
        }
        let original = loaded
            .options
            .globals
            .as_ref()
            .and_then(|g| g.get("event"))
            .unwrap_or(&Value::Null);
        let result = loaded
            .program
            .run_with(&loaded.options, |v| quill_hog::patch::diff(v, original));
        match result {
            Ok(r) => {
                for line in r.stdout.into_iter().take(MAX_PRINTS) {
                    self.log("info", line);
                }
                match r.outcome {
                    VmOutcome::Finished(v) => Ok(v),
                    VmOutcome::Suspended { function, .. } => Err(format!(
                        "async function `{function}` is not allowed in a transformation"
                    )),
                }
            }
            Err(e) => {
                for line in e.stdout.into_iter().take(MAX_PRINTS) {
                    self.log("info", line);
                }
                Err(quill_hog::format_error(&e.error))
            }
        }
    }
}

impl Transform for HogTransformation {
    fn name(&self) -> &str {
        &self.name
    }

    fn apply(&self, mut event: Event) -> Outcome {
        if event.project != self.key.0 || !self.function.filters.matches(&event) {
            return Outcome::Keep(event);
        }
        let started = Instant::now();
        if self.runtime.watcher.state(self.key, started).is_disabled() {
            return Outcome::Keep(event);
        }
        let timestamp = iso(event.timestamp_us);
        let result = LOADED.with(|cell| {
            let mut cache = cell.borrow_mut();
            if !cache.contains_key(&self.instance) {
                if cache.len() >= MAX_LOADED {
                    cache.clear();
                }
                cache.insert(self.instance, self.load()?);
            }
            match cache.get_mut(&self.instance) {
                Some(loaded) => self.run(loaded, &mut event, &timestamp),
                None => Err("internal: program cache".into()),
            }
        });
        let finished = Instant::now();
        if let Some(state) = self
            .runtime
            .watcher
            .record(self.key, finished - started, finished)
        {
            let level = if state == State::Healthy {
                "info"
            } else {
                "warn"
            };
            self.log(
                level,
                format!(
                    "function is now {state:?} (took {:.1} ms, budget {} ms)",
                    (finished - started).as_secs_f64() * 1000.0,
                    self.runtime.watcher.config().budget.as_millis()
                ),
            );
            tracing::warn!(
                project = self.key.0,
                function = self.key.1,
                ?state,
                "hog function state changed"
            );
        }
        match result {
            Ok(Ran::Dropped) => Outcome::Drop,
            Ok(Ran::Applied(applied)) => {
                if let Err(message) = applied {
                    self.log("error", message);
                }
                Outcome::Keep(event)
            }
            Err(message) => {
                tracing::debug!(project = self.key.0, function = self.key.1, %message, "hog transformation failed; event passed on unchanged");
                self.log("error", format!("Error executing function: {message}"));
                Outcome::Keep(event)
            }
        }
    }
}

/// The `event` global.
pub fn event_global(event: &Event) -> Value {
    event_global_with(event, event.properties.clone(), iso(event.timestamp_us))
}

/// Fields of the `event` global.
const EVENT_FIELDS: usize = 7;

/// Fills the `event` global in `globals` for `event`, reusing the previous event's map and
/// string buffers (an event global costs a map and six strings to build from scratch).
/// It holds the same as [`event_global`], with these properties and ISO timestamp.
///
/// The fields are written in one pass over the map: looking each up searched the map's keys
/// (a string comparison per key visited) seven times per event.
fn fill_event_global(
    globals: &mut Map<String, Value>,
    event: &Event,
    properties: Map<String, Value>,
    timestamp: &str,
) {
    if let Some(Value::Object(fields)) = globals.get_mut("event") {
        if fields.len() == EVENT_FIELDS {
            let mut uuid = [0u8; 36];
            let uuid = event.uuid.hyphenated().encode_lower(&mut uuid);
            let chain = properties.get("$elements_chain").and_then(Value::as_str);
            let url = properties.get("$current_url");
            let mut properties_slot = None;
            let mut filled = 0;
            for (key, slot) in fields.iter_mut() {
                match key.as_str() {
                    "uuid" => write_str(slot, uuid),
                    "event" => write_str(slot, &event.event),
                    "distinct_id" => write_str(slot, &event.distinct_id),
                    "elements_chain" => write_str(slot, chain.unwrap_or("")),
                    "timestamp" => write_str(slot, timestamp),
                    "url" => match url {
                        Some(Value::String(url)) => write_str(slot, url),
                        other => *slot = other.cloned().unwrap_or(Value::Null),
                    },
                    "properties" => {
                        properties_slot = Some(slot);
                        continue;
                    }
                    _ => continue,
                }
                filled += 1;
            }
            if let (Some(slot), 6) = (properties_slot, filled) {
                *slot = Value::Object(properties);
                return;
            }
        }
    }
    globals.insert(
        "event".into(),
        event_global_with(event, properties, timestamp.into()),
    );
}

/// Sets a string value, writing into the old string's buffer.
fn write_str(slot: &mut Value, value: &str) {
    match slot {
        Value::String(s) => {
            s.clear();
            s.push_str(value);
        }
        other => *other = Value::String(value.into()),
    }
}

/// The `event` global, with the event's properties and ISO timestamp given separately.
fn event_global_with(event: &Event, properties: Map<String, Value>, timestamp: String) -> Value {
    let elements_chain = properties
        .get("$elements_chain")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let url = properties
        .get("$current_url")
        .cloned()
        .unwrap_or(Value::Null);
    // Built field by field: `json!` would serialize the properties into a copy rather than
    // move them.
    let mut fields = Map::new();
    fields.insert("uuid".into(), Value::String(event.uuid.to_string()));
    fields.insert("event".into(), Value::String(event.event.clone()));
    fields.insert(
        "distinct_id".into(),
        Value::String(event.distinct_id.clone()),
    );
    fields.insert("properties".into(), Value::Object(properties));
    fields.insert("elements_chain".into(), Value::String(elements_chain));
    fields.insert("timestamp".into(), Value::String(timestamp));
    fields.insert("url".into(), url);
    Value::Object(fields)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::function::FunctionSpec;
    use std::time::Duration;

    /// A stage running `hog`, with `extra` fields merged into its definition.
    pub(crate) fn stage(hog: &str, extra: Value) -> (HogTransformation, Runtime) {
        let mut body = json!({"type": "transformation", "name": "t", "hog": hog});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let spec = FunctionSpec::from_json(&body).unwrap();
        let runtime = Runtime::new(
            WatcherConfig {
                timeout: Duration::from_millis(50),
                ..WatcherConfig::default()
            },
            Host::default(),
        );
        (
            HogTransformation::new(1, 7, spec.compile().unwrap(), runtime.clone()),
            runtime,
        )
    }

    fn event() -> Event {
        Event {
            uuid: Default::default(),
            project: 1,
            event: "$pageview".into(),
            distinct_id: "user".into(),
            properties: json!({"email": "a@b.c", "$current_url": "https://x.io/?q=1"})
                .as_object()
                .cloned()
                .unwrap(),
            timestamp_us: 1_700_000_000_123_456,
            received_us: 0,
        }
    }

    pub(crate) fn kept(o: Outcome) -> Event {
        match o {
            Outcome::Keep(e) => e,
            Outcome::Drop => panic!("dropped"),
        }
    }

    #[test]
    fn returns_the_new_event() {
        let (s, _) = stage(
            "let e := event\ne.properties.email := sha256Hex(concat(inputs.salt, e.properties.email))\ne.event := 'renamed'\ne.distinct_id := 'other'\nreturn e",
            json!({"inputs": {"salt": {"value": "s"}}}),
        );
        let out = kept(s.apply(event()));
        assert_eq!(out.event, "renamed");
        assert_eq!(out.distinct_id, "other");
        assert_eq!(out.properties["email"].as_str().unwrap().len(), 64);
        assert_eq!(
            out.timestamp_us,
            event().timestamp_us,
            "timestamp kept exactly"
        );
    }

    #[test]
    fn null_drops_and_filters_select() {
        let (s, _) = stage(
            "return null",
            json!({"filters": {"events": [{"id": "$pageview"}]}}),
        );
        assert_eq!(s.apply(event()), Outcome::Drop);
        let mut other = event();
        other.event = "$identify".into();
        assert!(matches!(s.apply(other), Outcome::Keep(_)));
        let mut foreign = event();
        foreign.project = 2;
        assert!(matches!(s.apply(foreign), Outcome::Keep(_)));
    }

    #[test]
    fn errors_and_invalid_results_pass_unchanged_and_are_logged() {
        for (hog, needle) in [
            ("throw Error('boom')", "boom"),
            (
                "let i := 0\nlet a := [1]\nreturn a[i]",
                "Error executing function",
            ),
            ("return 'x'", "Invalid result"),
            ("return {'event': 'x'}", "properties"),
            ("while (true) { let a := 1 }", "timed out"),
        ] {
            let (s, runtime) = stage(hog, json!({}));
            let out = kept(s.apply(event()));
            assert_eq!(out, event(), "{hog}");
            let logs = runtime.logs.recent((1, 7), 10);
            assert!(
                logs.iter()
                    .any(|l| l.level == "error" && l.message.contains(needle)),
                "{hog}: {logs:?}"
            );
        }
    }

    #[test]
    fn inputs_are_resolved_for_each_event() {
        let (s, _) = stage(
            "let e := event\ne.properties.tag := inputs.tag\ne.properties.salt := inputs.salt\nreturn e",
            json!({"inputs": {"tag": {"value": "{event.event}"}, "salt": {"value": "s"}}}),
        );
        let out = kept(s.apply(event()));
        assert_eq!(out.properties["tag"], "$pageview");
        let mut other = event();
        other.event = "$identify".into();
        let out = kept(s.apply(other));
        assert_eq!(out.properties["tag"], "$identify");
        assert_eq!(out.properties["salt"], "s");
        let (s, _) = stage(
            "let e := event\ne.properties.salt := inputs.salt\nreturn e",
            json!({"inputs": {"salt": {"value": "s"}}}),
        );
        for _ in 0..2 {
            assert_eq!(kept(s.apply(event())).properties["salt"], "s");
        }
    }

    #[test]
    fn timestamp_changes_apply() {
        let (s, _) = stage(
            "let e := event\ne.timestamp := '2024-01-02T03:04:05.000Z'\nreturn e",
            json!({}),
        );
        let out = kept(s.apply(event()));
        assert_eq!(out.timestamp_us, 1_704_164_645_000_000);
    }

    #[test]
    fn prints_go_to_the_logs() {
        let (s, runtime) = stage("print(f'seen {event.event}')\nreturn event", json!({}));
        kept(s.apply(event()));
        assert_eq!(runtime.logs.recent((1, 7), 1)[0].message, "seen $pageview");
    }
}
