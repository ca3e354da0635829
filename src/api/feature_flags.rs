//! `/api/projects/{id}/feature_flags`: flag CRUD in PostHog's shape, and the compiled
//! [`FlagSet`] of each project that `/flags` and local evaluation serve from.
//!
//! Definitions live in the state store ([`quill_pipeline::definitions`], kind `feature_flag`),
//! validated by `quill-flags` before they are stored. Every change rebuilds the project's set;
//! so does a change of the project's group types (from `$groupidentify`).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use quill_flags::{flag::validate, Flag, FlagDefinition, FlagSet, Strictness, ValidationError};
use quill_pipeline::definitions::{self, Definition};
use quill_pipeline::event::ProjectId;
use quill_pipeline::identity::group_types;
use quill_pipeline::store::{Store, StoreError};
use serde_json::{json, Value};

use super::{ApiError, AppState};

/// The definitions kind of feature flags.
pub const KIND: &str = "feature_flag";

/// One project's flags, compiled, with its local-evaluation payloads built on first use.
pub struct CompiledFlags {
    /// The flags, group types and (no) cohorts.
    pub set: FlagSet,
    /// Whether any active flag ensures experience continuity.
    pub has_continuity: bool,
    group_types: Vec<(String, u32)>,
    /// `(body, etag)` of the local-evaluation payload, without and with cohorts.
    local_evaluation: [OnceLock<(Vec<u8>, String)>; 2],
}

impl CompiledFlags {
    /// The serialized local-evaluation payload and its ETag.
    pub fn local_evaluation(&self, send_cohorts: bool) -> &(Vec<u8>, String) {
        self.local_evaluation[usize::from(send_cohorts)].get_or_init(|| {
            let body = quill_flags::local_evaluation::payload(&self.set, send_cohorts);
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            let etag = quill_flags::local_evaluation::etag(&bytes);
            (bytes, etag)
        })
    }
}

/// The compiled flags of every project, rebuilt when definitions or group types change.
#[derive(Default)]
pub struct FlagCache {
    projects: RwLock<HashMap<ProjectId, Arc<CompiledFlags>>>,
}

impl FlagCache {
    /// Compiles every project that has flags.
    pub fn load(store: &Store) -> Result<FlagCache, StoreError> {
        let cache = FlagCache::default();
        for project in definitions::projects_with(store, KIND)? {
            cache.rebuild(store, project)?;
        }
        Ok(cache)
    }

    /// The project's compiled flags, rebuilt first if its group types changed.
    pub fn get(&self, store: &Store, project: ProjectId) -> Result<Arc<CompiledFlags>, StoreError> {
        let types = group_types(store, project)?;
        let cached = self
            .projects
            .read()
            .ok()
            .and_then(|m| m.get(&project).cloned());
        match cached {
            Some(c) if c.group_types == types => Ok(c),
            _ => self.rebuild(store, project),
        }
    }

    /// Recompiles a project's flags from the store.
    pub fn rebuild(
        &self,
        store: &Store,
        project: ProjectId,
    ) -> Result<Arc<CompiledFlags>, StoreError> {
        let types = group_types(store, project)?;
        let now = chrono::Utc::now();
        let mut flags = Vec::new();
        for stored in definitions::list(store, project, KIND, false)? {
            let compiled =
                definition_of(&stored).and_then(|d| validate(d, Strictness::Lenient, now));
            match compiled {
                Ok(flag) => flags.push(flag),
                Err(error) => {
                    tracing::error!(project, id = stored.id, %error, "a stored flag no longer loads; skipped");
                }
            }
        }
        let mapping: Vec<(i32, String)> = types
            .iter()
            .map(|(name, i)| (*i as i32, name.clone()))
            .collect();
        let set = FlagSet::new(flags, mapping, []);
        let has_continuity = set
            .flags()
            .iter()
            .any(|f| f.active() && f.ensures_experience_continuity());
        let compiled = Arc::new(CompiledFlags {
            set,
            has_continuity,
            group_types: types,
            local_evaluation: [OnceLock::new(), OnceLock::new()],
        });
        if let Ok(mut map) = self.projects.write() {
            map.insert(project, compiled.clone());
        }
        Ok(compiled)
    }
}

/// A stored flag as a definition, with the store's id and version.
fn definition_of(stored: &Definition) -> Result<FlagDefinition, ValidationError> {
    let mut def = FlagDefinition::from_value(&stored.body)?;
    def.id = stored.id as i64;
    def.version = Some(stored.version as i64);
    def.deleted = stored.deleted;
    Ok(def)
}

/// A flag as the API returns it.
fn flag_json(stored: &Definition) -> Result<Value, FlagApiError> {
    let def = definition_of(stored).map_err(FlagApiError::Invalid)?;
    let mut out = serde_json::to_value(&def).unwrap_or_else(|_| json!({}));
    out["version"] = json!(stored.version);
    out["deleted"] = json!(stored.deleted);
    out["created_at"] = json!(iso(stored.created_at_us));
    out["updated_at"] = json!(iso(stored.updated_at_us));
    Ok(out)
}

fn iso(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default()
}

/// Validates a definition as the API stores it: by `quill-flags`, strictly.
fn checked(mut def: FlagDefinition) -> Result<Value, FlagApiError> {
    // The store owns these.
    def.id = 0;
    def.version = None;
    def.deleted = false;
    Flag::new(def.clone()).map_err(FlagApiError::Invalid)?;
    serde_json::to_value(&def)
        .map_err(|e| FlagApiError::Invalid(ValidationError::new("", e.to_string())))
}

fn json_body(bytes: &[u8]) -> Result<Value, FlagApiError> {
    Ok(super::json_object_body(bytes)?)
}

fn flag_id(raw: &str) -> Result<u64, FlagApiError> {
    raw.parse().map_err(|_| {
        FlagApiError::Api(ApiError::invalid("id", format!("`{raw}` is not a flag id")))
    })
}

/// `GET /api/projects/{id}/feature_flags`
pub async fn list(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
) -> Result<Json<Value>, FlagApiError> {
    let project = state.project(&project)?;
    let results = definitions::list(&state.store, project, KIND, false)?
        .iter()
        .map(flag_json)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(super::unpaginated(results))
}

/// `POST /api/projects/{id}/feature_flags`
pub async fn create(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
    body: Bytes,
) -> Result<Response, FlagApiError> {
    let project = state.project(&project)?;
    let body = json_body(&body)?;
    let def = FlagDefinition::from_value(&body).map_err(FlagApiError::Invalid)?;
    let stored = definitions::create(&state.store, project, KIND, checked(def)?, Some("key"))?;
    state.flags.rebuild(&state.store, project)?;
    tracing::info!(project, id = stored.id, "feature flag created");
    Ok((StatusCode::CREATED, Json(flag_json(&stored)?)).into_response())
}

/// `GET /api/projects/{id}/feature_flags/{flag_id}`
pub async fn get_one(
    State(state): State<Arc<AppState>>,
    Path((project, id)): Path<(String, String)>,
) -> Result<Json<Value>, FlagApiError> {
    let project = state.project(&project)?;
    let id = flag_id(&id)?;
    match definitions::get(&state.store, project, KIND, id)? {
        Some(stored) if !stored.deleted => Ok(Json(flag_json(&stored)?)),
        _ => Err(ApiError::not_found(format!("feature flag {id}")).into()),
    }
}

/// `PATCH /api/projects/{id}/feature_flags/{flag_id}`: each field sent replaces the stored one.
pub async fn update(
    State(state): State<Arc<AppState>>,
    Path((project, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, FlagApiError> {
    let project = state.project(&project)?;
    let id = flag_id(&id)?;
    let mut patch = json_body(&body)?;
    // A deleted: true patch is how PostHog's UI deletes.
    let delete = patch.get("deleted") == Some(&Value::Bool(true));
    if let Some(fields) = patch.as_object_mut() {
        fields.remove("deleted");
        fields.remove("version");
        fields.remove("created_at");
        fields.remove("updated_at");
        fields.remove("id");
    }
    let stored = definitions::update(&state.store, project, KIND, id, Some("key"), |old| {
        let old = FlagDefinition::from_value(old).map_err(FlagApiError::Invalid)?;
        let new = old.apply_patch(&patch).map_err(FlagApiError::Invalid)?;
        checked(new)
    })?;
    let stored = if delete {
        definitions::delete(&state.store, project, KIND, id)?
    } else {
        stored
    };
    state.flags.rebuild(&state.store, project)?;
    Ok(Json(flag_json(&stored)?))
}

/// `DELETE /api/projects/{id}/feature_flags/{flag_id}`: a soft delete, 204.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path((project, id)): Path<(String, String)>,
) -> Result<StatusCode, FlagApiError> {
    let project = state.project(&project)?;
    let id = flag_id(&id)?;
    definitions::delete(&state.store, project, KIND, id)?;
    state.flags.rebuild(&state.store, project)?;
    Ok(StatusCode::NO_CONTENT)
}

/// A failed flag API request.
#[derive(Debug)]
pub enum FlagApiError {
    /// The shared API failures.
    Api(ApiError),
    /// An invalid definition: 400 naming the field in `attr`.
    Invalid(ValidationError),
}

impl From<ApiError> for FlagApiError {
    fn from(e: ApiError) -> Self {
        FlagApiError::Api(e)
    }
}

impl From<StoreError> for FlagApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(detail) => {
                FlagApiError::Invalid(ValidationError::new("key", detail))
            }
            other => FlagApiError::Api(other.into()),
        }
    }
}

impl IntoResponse for FlagApiError {
    fn into_response(self) -> Response {
        match self {
            FlagApiError::Api(e) => e.into_response(),
            FlagApiError::Invalid(e) => {
                let body = json!({
                    "type": "validation_error",
                    "code": "invalid_input",
                    "detail": e.to_string(),
                    "attr": if e.path.is_empty() { Value::Null } else { Value::String(e.path) },
                });
                (StatusCode::BAD_REQUEST, Json(body)).into_response()
            }
        }
    }
}
