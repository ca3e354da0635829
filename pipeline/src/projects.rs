//! Projects, their project tokens (`phc_...`) and personal API keys (`phx_...`).
//!
//! Project tokens are public: SDKs put them in every capture request. Personal API keys are
//! secrets for the read, query and definitions APIs; one key may read every project.

use std::collections::HashMap;
use std::sync::RwLock;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::event::{now_us, ProjectId};
use crate::store::{from_json, to_json, Store, StoreError};

const PROJECTS: TableDefinition<u32, &[u8]> = TableDefinition::new("projects");
const TOKENS: TableDefinition<&str, u32> = TableDefinition::new("project_tokens");
const API_KEYS: TableDefinition<&str, u64> = TableDefinition::new("personal_api_keys");

/// A project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    /// Numeric id, from 1.
    pub id: ProjectId,
    /// Display name.
    pub name: String,
    /// The public project token SDKs send (`phc_...`).
    pub api_token: String,
    /// Creation time, µs since the epoch.
    pub created_at_us: i64,
}

/// What [`bootstrap`] found or made.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// Project 1.
    pub project: Project,
    /// The personal API key.
    pub personal_api_key: String,
    /// Whether this start created them.
    pub created: bool,
}

/// Makes sure project 1 and a personal API key exist. Seeds, when given, become their values.
pub fn bootstrap(
    store: &Store,
    seed_token: Option<&str>,
    seed_key: Option<&str>,
) -> Result<Bootstrap, StoreError> {
    let txn = store.db().begin_write()?;
    let (project, key, created) = {
        let mut projects = txn.open_table(PROJECTS)?;
        let mut tokens = txn.open_table(TOKENS)?;
        let mut keys = txn.open_table(API_KEYS)?;
        let existing = match projects.get(1)? {
            Some(v) => Some(from_json::<Project>("project", v.value())?),
            None => None,
        };
        let created = existing.is_none();
        let mut project = existing.unwrap_or_else(|| Project {
            id: 1,
            name: "Default project".into(),
            api_token: new_secret("phc_"),
            created_at_us: now_us(),
        });
        if let Some(seed) = seed_token {
            if seed != project.api_token {
                tokens.remove(project.api_token.as_str())?;
                project.api_token = seed.to_string();
            }
        }
        projects.insert(1, to_json(&project).as_slice())?;
        tokens.insert(project.api_token.as_str(), 1)?;
        let key = match seed_key {
            Some(seed) => seed.to_string(),
            None => match keys.iter()?.next() {
                Some(entry) => entry?.0.value().to_string(),
                None => new_secret("phx_"),
            },
        };
        keys.insert(key.as_str(), now_us() as u64)?;
        (project, key, created)
    };
    txn.commit()?;
    Ok(Bootstrap {
        project,
        personal_api_key: key,
        created,
    })
}

/// Creates a project with a fresh token.
pub fn create(store: &Store, name: &str) -> Result<Project, StoreError> {
    let txn = store.db().begin_write()?;
    let project = {
        let mut projects = txn.open_table(PROJECTS)?;
        let mut tokens = txn.open_table(TOKENS)?;
        let id = match projects.last()? {
            Some((k, _)) => k.value() + 1,
            None => 1,
        };
        let project = Project {
            id,
            name: name.to_string(),
            api_token: new_secret("phc_"),
            created_at_us: now_us(),
        };
        projects.insert(id, to_json(&project).as_slice())?;
        tokens.insert(project.api_token.as_str(), id)?;
        project
    };
    txn.commit()?;
    Ok(project)
}

/// Every project, by id.
pub fn list(store: &Store) -> Result<Vec<Project>, StoreError> {
    let txn = store.db().begin_read()?;
    let table = match txn.open_table(PROJECTS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for entry in table.iter()? {
        out.push(from_json("project", entry?.1.value())?);
    }
    Ok(out)
}

fn list_keys(store: &Store) -> Result<Vec<String>, StoreError> {
    let txn = store.db().begin_read()?;
    let table = match txn.open_table(API_KEYS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for entry in table.iter()? {
        out.push(entry?.0.value().to_string());
    }
    Ok(out)
}

/// A random secret with a prefix, 43 alphanumeric characters long after it, like PostHog's.
pub fn new_secret(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::from(prefix);
    let mut bytes = Vec::with_capacity(48);
    while bytes.len() < 43 {
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    for b in bytes.iter().take(43) {
        out.push(ALPHABET[usize::from(*b) % ALPHABET.len()] as char);
    }
    out
}

/// In-memory view of tokens and keys for the request path.
#[derive(Default)]
pub struct Registry {
    inner: RwLock<RegistryInner>,
}

#[derive(Default)]
struct RegistryInner {
    tokens: HashMap<String, ProjectId>,
    projects: HashMap<ProjectId, Project>,
    keys: Vec<String>,
}

impl Registry {
    /// Loads every project and key from the store.
    pub fn load(store: &Store) -> Result<Registry, StoreError> {
        let registry = Registry::default();
        registry.reload(store)?;
        Ok(registry)
    }

    /// Re-reads the store, after a project was created.
    pub fn reload(&self, store: &Store) -> Result<(), StoreError> {
        let projects = list(store)?;
        let keys = list_keys(store)?;
        let mut inner = RegistryInner {
            keys,
            ..RegistryInner::default()
        };
        for p in projects {
            inner.tokens.insert(p.api_token.clone(), p.id);
            inner.projects.insert(p.id, p);
        }
        if let Ok(mut guard) = self.inner.write() {
            *guard = inner;
        }
        Ok(())
    }

    /// The project a token belongs to.
    pub fn project_for_token(&self, token: &str) -> Option<ProjectId> {
        self.inner.read().ok()?.tokens.get(token).copied()
    }

    /// A project by id.
    pub fn project(&self, id: ProjectId) -> Option<Project> {
        self.inner.read().ok()?.projects.get(&id).cloned()
    }

    /// Whether a personal API key is valid.
    pub fn is_personal_key(&self, key: &str) -> bool {
        self.inner
            .read()
            .map(|inner| inner.keys.iter().any(|k| k == key))
            .unwrap_or(false)
    }
}
