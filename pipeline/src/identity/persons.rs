//! Person rows and the distinct-id → person mapping.

use std::collections::HashMap;

use redb::{
    ReadOnlyTable, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::event::ProjectId;
use crate::store::{from_json, to_json, Store, StoreError};

pub(crate) const DISTINCT_IDS: TableDefinition<(u32, &str), u64> =
    TableDefinition::new("person_distinct_ids");
pub(crate) const PERSONS: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("persons");
pub(crate) const PERSON_UUIDS: TableDefinition<(u32, u128), u64> =
    TableDefinition::new("person_uuids");
/// Identity's own counters (kept apart from the shared meta table, which holds cursors).
pub(crate) const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("identity_counters");
const NEXT_PERSON_ID: &str = "next_person_id";

/// Namespace for person uuids, so that they are a deterministic function of the log.
const PERSON_NAMESPACE: Uuid = Uuid::from_u128(0x5c1d_7e0a_9b44_4f2e_8d61_3a7f_0c52_e918);

/// A person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    /// Numeric id, unique across projects, assigned in log order.
    pub id: u64,
    /// The person's uuid.
    pub uuid: Uuid,
    /// The owning project.
    pub project: ProjectId,
    /// Every distinct id that resolves to this person, in the order they joined.
    pub distinct_ids: Vec<String>,
    /// Person properties.
    pub properties: Map<String, Value>,
    /// The timestamp of the earliest event that created a merged part of this person.
    pub created_at_us: i64,
    /// Whether an `$identify` (or alias) has claimed this person.
    pub is_identified: bool,
}

/// The uuid of a person id; a pure function, so events can name their person without a read.
pub fn person_uuid(project: ProjectId, id: u64) -> Uuid {
    Uuid::new_v5(&PERSON_NAMESPACE, format!("{project}:{id}").as_bytes())
}

/// Person tables opened inside one write transaction.
///
/// Reads go through a [`PersonCache`]: events keep touching the same active persons, and a redb
/// lookup plus a JSON parse per event cost more than everything else the materializer does.
/// Writes go straight through to the tables and update the cache.
pub struct PersonWriter<'txn> {
    distinct_ids: Table<'txn, (u32, &'static str), u64>,
    persons: Table<'txn, (u32, u64), &'static [u8]>,
    uuids: Table<'txn, (u32, u128), u64>,
    meta: Table<'txn, &'static str, u64>,
    touched: Touched,
    cache: PersonCache,
}

/// Person rows and distinct-id mappings as of the last transaction that used the cache.
///
/// It is valid across transactions only while it follows every committed write, which holds for
/// the materializer (the only writer of persons), as long as it drops the cache whenever a
/// transaction fails to commit.
#[derive(Debug, Default)]
pub struct PersonCache {
    /// Distinct id → person id (`None`: known to be unmapped).
    ids: HashMap<ProjectId, HashMap<String, Option<u64>>>,
    /// Person rows (`None`: known not to exist).
    rows: HashMap<(ProjectId, u64), Option<Person>>,
    id_entries: usize,
    /// Lookups that missed the cache and went to redb, since the last [`PersonWriter::take_misses`].
    misses: usize,
}

/// Distinct ids past which the cache forgets them all, to bound its memory. An entry is a short
/// string and a number (~80 bytes with the map's overhead), so this holds every distinct id of a
/// few hundred thousand active persons: with fewer, at 500k persons with skewed activity, misses
/// sent most of the materializer's time into redb.
const CACHED_IDS: usize = 1_000_000;
/// Person rows past which the cache forgets them all. Rows carry every person property, so they
/// are bounded tighter; only events that change a person load its row.
const CACHED_ROWS: usize = 100_000;

impl PersonCache {
    fn bound(&mut self) {
        if self.id_entries > CACHED_IDS {
            self.ids.clear();
            self.id_entries = 0;
        }
        if self.rows.len() > CACHED_ROWS {
            self.rows.clear();
        }
    }
}

/// What a writer changed, for consumers that follow identity (the insights feeder).
#[derive(Debug, Default)]
pub struct Touched {
    /// Persons saved or removed.
    pub persons: std::collections::BTreeSet<(ProjectId, u64)>,
    /// Distinct ids of removed persons (they may now point elsewhere, or nowhere).
    pub unmapped: Vec<(ProjectId, String)>,
}

impl<'txn> PersonWriter<'txn> {
    /// Opens the tables in `txn`.
    pub fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            distinct_ids: txn.open_table(DISTINCT_IDS)?,
            persons: txn.open_table(PERSONS)?,
            uuids: txn.open_table(PERSON_UUIDS)?,
            meta: txn.open_table(COUNTERS)?,
            touched: Touched::default(),
            cache: PersonCache::default(),
        })
    }

    /// Opens the tables in `txn`, reading through `cache`.
    pub fn open_cached(
        txn: &'txn WriteTransaction,
        mut cache: PersonCache,
    ) -> Result<Self, StoreError> {
        cache.bound();
        let mut writer = Self::open(txn)?;
        writer.cache = cache;
        Ok(writer)
    }

    /// Gives the cache back, to use with the next transaction once this one commits.
    pub fn into_cache(self) -> PersonCache {
        self.cache
    }

    /// Takes the count of lookups that missed the cache since the last take.
    pub fn take_misses(&mut self) -> usize {
        std::mem::take(&mut self.cache.misses)
    }

    /// Takes the record of what changed since the writer opened (or since the last take).
    pub fn take_touched(&mut self) -> Touched {
        std::mem::take(&mut self.touched)
    }

    /// The person id a distinct id resolves to.
    pub fn person_id(
        &mut self,
        project: ProjectId,
        distinct_id: &str,
    ) -> Result<Option<u64>, StoreError> {
        if let Some(id) = self
            .cache
            .ids
            .get(&project)
            .and_then(|ids| ids.get(distinct_id))
        {
            return Ok(*id);
        }
        let id = self
            .distinct_ids
            .get((project, distinct_id))?
            .map(|v| v.value());
        self.cache.misses += 1;
        self.cache_id(project, distinct_id, id);
        Ok(id)
    }

    fn cache_id(&mut self, project: ProjectId, distinct_id: &str, id: Option<u64>) {
        let ids = self.cache.ids.entry(project).or_default();
        match ids.get_mut(distinct_id) {
            Some(slot) => *slot = id,
            None => {
                ids.insert(distinct_id.to_string(), id);
                self.cache.id_entries += 1;
            }
        }
    }

    /// Loads a person row.
    pub fn load(&mut self, project: ProjectId, id: u64) -> Result<Option<Person>, StoreError> {
        if let Some(row) = self.cache.rows.get(&(project, id)) {
            return Ok(row.clone());
        }
        let row = match self.persons.get((project, id))? {
            Some(v) => Some(from_json::<Person>("person", v.value())?),
            None => None,
        };
        self.cache.misses += 1;
        self.cache_row(project, id, row.clone());
        Ok(row)
    }

    fn cache_row(&mut self, project: ProjectId, id: u64, row: Option<Person>) {
        self.cache.rows.insert((project, id), row);
    }

    /// Stores a person row and its distinct-id mappings.
    pub fn save(&mut self, person: &Person) -> Result<(), StoreError> {
        self.touched.persons.insert((person.project, person.id));
        self.persons
            .insert((person.project, person.id), to_json(person).as_slice())?;
        for did in &person.distinct_ids {
            self.distinct_ids
                .insert((person.project, did.as_str()), person.id)?;
            self.cache_id(person.project, did, Some(person.id));
        }
        self.cache_row(person.project, person.id, Some(person.clone()));
        Ok(())
    }

    /// Creates a person owning `distinct_ids`.
    pub fn create(
        &mut self,
        project: ProjectId,
        distinct_ids: Vec<String>,
        created_at_us: i64,
    ) -> Result<Person, StoreError> {
        let id = self
            .meta
            .get(NEXT_PERSON_ID)?
            .map(|v| v.value())
            .unwrap_or(1);
        self.meta.insert(NEXT_PERSON_ID, id + 1)?;
        let person = Person {
            id,
            uuid: person_uuid(project, id),
            project,
            distinct_ids,
            properties: Map::new(),
            created_at_us,
            is_identified: false,
        };
        self.uuids.insert((project, person.uuid.as_u128()), id)?;
        self.save(&person)?;
        Ok(person)
    }

    /// Removes a person row; its distinct ids are unmapped only where they still point to it.
    pub fn remove(&mut self, person: &Person) -> Result<(), StoreError> {
        self.touched.persons.insert((person.project, person.id));
        self.touched.unmapped.extend(
            person
                .distinct_ids
                .iter()
                .map(|did| (person.project, did.clone())),
        );
        for did in &person.distinct_ids {
            if self.person_id(person.project, did)? == Some(person.id) {
                self.distinct_ids.remove((person.project, did.as_str()))?;
                self.cache_id(person.project, did, None);
            }
        }
        self.persons.remove((person.project, person.id))?;
        self.cache_row(person.project, person.id, None);
        self.uuids.remove((person.project, person.uuid.as_u128()))?;
        Ok(())
    }

    /// The person id of a person uuid.
    pub fn id_for_uuid(&self, project: ProjectId, uuid: Uuid) -> Result<Option<u64>, StoreError> {
        Ok(self
            .uuids
            .get((project, uuid.as_u128()))?
            .map(|v| v.value()))
    }
}

/// Read-only access to persons for the API.
pub struct PersonReader {
    distinct_ids: ReadOnlyTable<(u32, &'static str), u64>,
    persons: ReadOnlyTable<(u32, u64), &'static [u8]>,
    uuids: ReadOnlyTable<(u32, u128), u64>,
}

impl PersonReader {
    /// A consistent snapshot of the person tables, or `None` before any person exists.
    pub fn open(store: &Store) -> Result<Option<Self>, StoreError> {
        let txn = store.db().begin_read()?;
        let open = || -> Result<Self, redb::TableError> {
            Ok(Self {
                distinct_ids: txn.open_table(DISTINCT_IDS)?,
                persons: txn.open_table(PERSONS)?,
                uuids: txn.open_table(PERSON_UUIDS)?,
            })
        };
        match open() {
            Ok(reader) => Ok(Some(reader)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The person id a distinct id resolves to.
    pub fn person_id(
        &self,
        project: ProjectId,
        distinct_id: &str,
    ) -> Result<Option<u64>, StoreError> {
        Ok(self
            .distinct_ids
            .get((project, distinct_id))?
            .map(|v| v.value()))
    }

    /// The person a distinct id resolves to.
    pub fn by_distinct_id(
        &self,
        project: ProjectId,
        distinct_id: &str,
    ) -> Result<Option<Person>, StoreError> {
        match self.person_id(project, distinct_id)? {
            Some(id) => self.by_id(project, id),
            None => Ok(None),
        }
    }

    /// A person by numeric id.
    pub fn by_id(&self, project: ProjectId, id: u64) -> Result<Option<Person>, StoreError> {
        match self.persons.get((project, id))? {
            Some(v) => Ok(Some(from_json("person", v.value())?)),
            None => Ok(None),
        }
    }

    /// A person by uuid.
    pub fn by_uuid(&self, project: ProjectId, uuid: Uuid) -> Result<Option<Person>, StoreError> {
        match self.uuids.get((project, uuid.as_u128()))? {
            Some(id) => self.by_id(project, id.value()),
            None => Ok(None),
        }
    }

    /// A page of a project's persons, by id.
    pub fn list(
        &self,
        project: ProjectId,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<Person>, StoreError> {
        let mut out = Vec::new();
        for entry in self
            .persons
            .range((project, after_id.saturating_add(1))..=(project, u64::MAX))?
        {
            out.push(from_json("person", entry?.1.value())?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}
