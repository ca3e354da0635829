//! Hog function definitions in the state store, and the live chain built from them.
//!
//! Definitions are stored with [`quill_pipeline::definitions`] under kind [`KIND`]: the
//! validated [`FunctionSpec`] plus its `bytecode`. Every change (and startup) rebuilds the whole
//! chain from the store, the enabled functions of every project in `execution_order` (then by
//! id), and installs it with [`Transforms::replace`]; requests in flight finish with the old one.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use quill_pipeline::definitions::{self, Definition};
use quill_pipeline::event::ProjectId;
use quill_pipeline::store::{Store, StoreError};
use quill_pipeline::transform::{TransformChain, Transforms};
use serde_json::{json, Value};

use crate::function::{FunctionSpec, SpecError};
use crate::logs::LogEntry;
use crate::transformation::{HogTransformation, Runtime};

/// The definitions kind of hog functions.
pub const KIND: &str = "hog_function";

/// A failed hog function operation.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The definition is invalid (400).
    #[error(transparent)]
    Invalid(#[from] SpecError),
    /// No such live function (404).
    #[error("hog function {0} not found")]
    NotFound(u64),
    /// The state store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for RegistryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => RegistryError::Store(e),
            other => RegistryError::Store(other),
        }
    }
}

/// Hog functions: their definitions, and the chain that capture runs.
pub struct HogFunctions {
    store: Arc<Store>,
    transforms: Arc<Transforms>,
    runtime: Runtime,
    rebuilding: Mutex<()>,
}

impl HogFunctions {
    /// Loads the stored functions and installs their chain.
    pub fn load(
        store: Arc<Store>,
        transforms: Arc<Transforms>,
        runtime: Runtime,
    ) -> Result<HogFunctions, StoreError> {
        let functions = HogFunctions {
            store,
            transforms,
            runtime,
            rebuilding: Mutex::new(()),
        };
        let n = functions.rebuild()?;
        tracing::info!(functions = n, "hog transformations loaded");
        Ok(functions)
    }

    /// The shared runtime (watcher, logs, host functions).
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Rebuilds the chain from the store; returns how many functions it runs.
    pub fn rebuild(&self) -> Result<usize, StoreError> {
        let _one_at_a_time = self.rebuilding.lock().unwrap_or_else(|p| p.into_inner());
        let mut stages = Vec::new();
        for project in definitions::projects_with(&self.store, KIND)? {
            for stored in definitions::list(&self.store, project, KIND, false)? {
                let spec = match FunctionSpec::from_json(&stored.body) {
                    Ok(spec) if spec.enabled => spec,
                    Ok(_) => continue,
                    Err(error) => {
                        tracing::error!(project, id = stored.id, %error, "a stored hog function no longer loads; skipped");
                        continue;
                    }
                };
                match spec.compile() {
                    Ok(compiled) => stages.push((project, stored.id, compiled)),
                    Err(error) => {
                        tracing::error!(project, id = stored.id, %error, "a stored hog function no longer compiles; skipped");
                    }
                }
            }
        }
        stages.sort_by_key(|(project, id, c)| {
            (*project, c.spec.execution_order.unwrap_or(i64::MAX), *id)
        });
        let mut chain = TransformChain::empty();
        let n = stages.len();
        for (project, id, compiled) in stages {
            chain.push(Box::new(HogTransformation::new(
                project,
                id,
                compiled,
                self.runtime.clone(),
            )));
        }
        self.transforms.replace(chain);
        Ok(n)
    }

    /// A project's live functions.
    pub fn list(&self, project: ProjectId) -> Result<Vec<Value>, RegistryError> {
        Ok(definitions::list(&self.store, project, KIND, false)?
            .iter()
            .map(|d| self.api_json(project, d))
            .collect())
    }

    /// One live function.
    pub fn get(&self, project: ProjectId, id: u64) -> Result<Value, RegistryError> {
        match definitions::get(&self.store, project, KIND, id)? {
            Some(d) if !d.deleted => Ok(self.api_json(project, &d)),
            _ => Err(RegistryError::NotFound(id)),
        }
    }

    /// Validates, compiles and stores a new function, then rebuilds the chain.
    pub fn create(&self, project: ProjectId, body: &Value) -> Result<Value, RegistryError> {
        let spec = FunctionSpec::from_json(body)?;
        let stored_body = stored(spec)?;
        let made = definitions::create(&self.store, project, KIND, stored_body, None)?;
        self.rebuild()?;
        tracing::info!(project, id = made.id, "hog function created");
        Ok(self.api_json(project, &made))
    }

    /// Applies a patch (each field sent replaces the stored one), then rebuilds the chain.
    /// Saving a function resets its watcher state.
    pub fn update(
        &self,
        project: ProjectId,
        id: u64,
        patch: &Value,
    ) -> Result<Value, RegistryError> {
        if patch.get("deleted") == Some(&Value::Bool(true)) {
            self.delete(project, id)?;
            return self.deleted_json(project, id);
        }
        let updated = definitions::update(&self.store, project, KIND, id, None, |old| {
            let old = FunctionSpec::from_json(old)?;
            stored(old.patched(patch)?)
        })
        .map_err(|e| match e {
            RegistryError::Store(StoreError::NotFound(_)) => RegistryError::NotFound(id),
            other => other,
        })?;
        self.runtime.watcher.reset((project, id));
        self.rebuild()?;
        Ok(self.api_json(project, &updated))
    }

    /// Soft-deletes a function, then rebuilds the chain.
    pub fn delete(&self, project: ProjectId, id: u64) -> Result<(), RegistryError> {
        definitions::delete(&self.store, project, KIND, id).map_err(|e| match e {
            StoreError::NotFound(_) => RegistryError::NotFound(id),
            other => RegistryError::Store(other),
        })?;
        self.runtime.watcher.reset((project, id));
        self.runtime.logs.clear((project, id));
        self.rebuild()?;
        Ok(())
    }

    fn deleted_json(&self, project: ProjectId, id: u64) -> Result<Value, RegistryError> {
        match definitions::get(&self.store, project, KIND, id)? {
            Some(d) => Ok(self.api_json(project, &d)),
            None => Err(RegistryError::NotFound(id)),
        }
    }

    /// A live function's recent log entries, newest first.
    pub fn logs(
        &self,
        project: ProjectId,
        id: u64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, RegistryError> {
        self.get(project, id)?;
        Ok(self.runtime.logs.recent((project, id), limit))
    }

    /// A function as the API shows it.
    fn api_json(&self, project: ProjectId, d: &Definition) -> Value {
        let mut out = d.body.clone();
        let status = self.runtime.watcher.status((project, d.id), Instant::now());
        out["id"] = json!(d.id);
        out["version"] = json!(d.version);
        out["deleted"] = json!(d.deleted);
        out["created_at"] = json!(iso(d.created_at_us));
        out["updated_at"] = json!(iso(d.updated_at_us));
        out["status"] = serde_json::to_value(status).unwrap_or(Value::Null);
        out
    }
}

/// The body to store: the spec and its bytecode.
fn stored(spec: FunctionSpec) -> Result<Value, RegistryError> {
    let compiled = spec.compile()?;
    let mut body = serde_json::to_value(&compiled.spec)
        .map_err(|e| RegistryError::Invalid(SpecError::new("", e.to_string())))?;
    body["bytecode"] = compiled.bytecode;
    Ok(body)
}

fn iso(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use quill_pipeline::event::Event;

    fn event(name: &str) -> Event {
        Event {
            uuid: Default::default(),
            project: 1,
            event: name.into(),
            distinct_id: "u".into(),
            properties: serde_json::Map::new(),
            timestamp_us: 0,
            received_us: 0,
        }
    }

    #[test]
    fn crud_rebuilds_the_chain_in_order_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s.redb")).unwrap());
        let transforms = Arc::new(Transforms::default());
        let fns =
            HogFunctions::load(store.clone(), transforms.clone(), Runtime::default()).unwrap();
        let append = |s: &str| {
            format!(
                "let e := event\ne.properties.trail := concat(e.properties.trail, '{s}')\nreturn e"
            )
        };
        let a = fns
            .create(1, &json!({"type": "transformation", "name": "a", "hog": append("a"), "enabled": true, "execution_order": 2}))
            .unwrap();
        fns.create(1, &json!({"type": "transformation", "name": "b", "hog": append("b"), "enabled": true, "execution_order": 1}))
            .unwrap();
        fns.create(
            1,
            &json!({"type": "transformation", "name": "off", "hog": "return null"}),
        )
        .unwrap();
        let out = transforms.current().apply(event("x")).unwrap();
        assert_eq!(out.properties["trail"], json!("ba"));
        assert!(a["bytecode"].is_array());
        assert_eq!(a["status"]["state"], json!(1));

        // Reloaded from the store after a restart.
        drop(fns);
        let again = Arc::new(Transforms::default());
        let fns = HogFunctions::load(store, again.clone(), Runtime::default()).unwrap();
        assert_eq!(
            again.current().apply(event("x")).unwrap().properties["trail"],
            json!("ba")
        );

        let id = a["id"].as_u64().unwrap();
        fns.update(1, id, &json!({"enabled": false})).unwrap();
        assert_eq!(
            again.current().apply(event("x")).unwrap().properties["trail"],
            json!("b")
        );
        let e = fns.update(1, id, &json!({"hog": "return ("})).unwrap_err();
        assert!(matches!(e, RegistryError::Invalid(ref s) if s.attr == "hog"));
        fns.delete(1, id).unwrap();
        assert!(matches!(fns.get(1, id), Err(RegistryError::NotFound(_))));
        assert_eq!(fns.list(1).unwrap().len(), 2);
    }
}
