//! A project's flags, ready to evaluate together.
//!
//! [`FlagSet`] indexes flags by key, holds the group-type mapping and the cohort definitions,
//! and resolves flag dependencies once: each `flag_evaluates_to` filter is pointed at its
//! target (by key, or by id written as a string), and a filter whose target can reach the
//! filter's own flag is marked circular. Circular and missing dependencies never match.

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;

use crate::cohort::CompiledGroup;
use crate::definition::PropertyGroup;
use crate::filter::{DepTarget, Strictness, Test};
use crate::flag::Flag;

/// A project's flags, group types and cohorts.
#[derive(Debug, Clone, Default)]
pub struct FlagSet {
    pub(crate) flags: Vec<Flag>,
    pub(crate) by_key: HashMap<String, usize>,
    pub(crate) group_types: HashMap<i32, String>,
    pub(crate) cohorts: HashMap<i64, CompiledGroup>,
    pub(crate) cohort_definitions: BTreeMap<i64, PropertyGroup>,
}

impl FlagSet {
    /// Builds a set. Deleted flags are dropped; of two flags with one key the later wins.
    /// Cohorts are compiled leniently; one that cannot be compiled at all is answered by
    /// [`crate::CohortMembership`] instead.
    ///
    /// # Examples
    /// ```
    /// use quill_flags::{Flag, FlagDefinition, FlagSet};
    /// let def = FlagDefinition::from_json(r#"{"id":1,"key":"beta","filters":{"groups":[{}]}}"#)
    ///     .unwrap();
    /// let set = FlagSet::new(vec![Flag::new(def).unwrap()], [(0, "company".into())], []);
    /// assert_eq!(set.len(), 1);
    /// ```
    pub fn new(
        flags: impl IntoIterator<Item = Flag>,
        group_type_mapping: impl IntoIterator<Item = (i32, String)>,
        cohorts: impl IntoIterator<Item = (i64, PropertyGroup)>,
    ) -> FlagSet {
        let mut set = FlagSet {
            group_types: group_type_mapping.into_iter().collect(),
            ..FlagSet::default()
        };
        for flag in flags {
            if flag.definition.deleted {
                continue;
            }
            match set.by_key.get(flag.key()) {
                Some(&i) => set.flags[i] = flag,
                None => {
                    set.by_key.insert(flag.key().to_string(), set.flags.len());
                    set.flags.push(flag);
                }
            }
        }
        let now = Utc::now();
        for (id, def) in cohorts {
            if let Ok(g) = CompiledGroup::compile(&def, "", Strictness::Lenient, now) {
                set.cohorts.insert(id, g);
            }
            set.cohort_definitions.insert(id, def);
        }
        set.resolve_dependencies();
        set
    }

    /// Number of flags.
    pub fn len(&self) -> usize {
        self.flags.len()
    }

    /// Whether the set has no flags.
    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// The flags, in insertion order.
    pub fn flags(&self) -> &[Flag] {
        &self.flags
    }

    /// The flag with `key`.
    pub fn get(&self, key: &str) -> Option<&Flag> {
        self.by_key.get(key).map(|&i| &self.flags[i])
    }

    /// Position of the flag with `key`, for [`FlagSet::evaluate_index`].
    pub fn index_of(&self, key: &str) -> Option<usize> {
        self.by_key.get(key).copied()
    }

    /// Group type index → name.
    pub fn group_types(&self) -> &HashMap<i32, String> {
        &self.group_types
    }

    /// Cohort definitions as given.
    pub fn cohort_definitions(&self) -> &BTreeMap<i64, PropertyGroup> {
        &self.cohort_definitions
    }

    /// Experience-continuity flags that have no stored override yet: the `(flag key,
    /// hash key)` pairs the server should record when a request carries `anon_distinct_id`.
    pub fn continuity_overrides_to_write<'a>(
        &'a self,
        existing: &HashMap<String, String>,
        anon_distinct_id: &'a str,
    ) -> Vec<(&'a str, &'a str)> {
        self.flags
            .iter()
            .filter(|f| f.active() && f.ensures_experience_continuity())
            .filter(|f| !existing.contains_key(f.key()))
            .map(|f| (f.key(), anon_distinct_id))
            .collect()
    }

    fn lookup_dependency(&self, key: &str) -> Option<usize> {
        self.by_key.get(key).copied().or_else(|| {
            let id: i64 = key.parse().ok()?;
            self.flags.iter().position(|f| f.id() == id)
        })
    }

    /// Direct dependencies of flag `i` that resolved to a flag.
    pub(crate) fn dependencies(&self, i: usize) -> Vec<usize> {
        let mut out = Vec::new();
        for_each_test(&self.flags[i], |t| {
            if let Test::Flag(r) = t {
                if let DepTarget::Index(j) = r.target {
                    out.push(j);
                }
            }
        });
        out
    }

    fn resolve_dependencies(&mut self) {
        // First point every reference at its target.
        let mut targets: Vec<Vec<Option<usize>>> = Vec::with_capacity(self.flags.len());
        for flag in &self.flags {
            let mut t = Vec::new();
            for_each_test(flag, |test| {
                if let Test::Flag(r) = test {
                    t.push(self.lookup_dependency(&r.key));
                }
            });
            targets.push(t);
        }
        let edges: Vec<Vec<usize>> = targets
            .iter()
            .map(|t| t.iter().flatten().copied().collect())
            .collect();
        // Then mark references whose target reaches back to the referring flag.
        for (i, flag) in self.flags.iter_mut().enumerate() {
            let mut n = 0;
            for_each_test_mut(flag, |test| {
                if let Test::Flag(r) = test {
                    r.target = match targets[i][n] {
                        None => DepTarget::Missing,
                        Some(j) if reaches(&edges, j, i) => DepTarget::Cyclic,
                        Some(j) => DepTarget::Index(j),
                    };
                    n += 1;
                }
            });
        }
    }

    /// The keys the SDKs must evaluate, in order, before a dependency on `target`: its
    /// transitive dependencies depth-first, then `target` itself.
    pub(crate) fn dependency_chain(&self, target: usize) -> Vec<String> {
        fn visit(set: &FlagSet, i: usize, seen: &mut Vec<bool>, out: &mut Vec<String>) {
            if seen[i] {
                return;
            }
            seen[i] = true;
            for j in set.dependencies(i) {
                visit(set, j, seen, out);
            }
            out.push(set.flags[i].key().to_string());
        }
        let mut seen = vec![false; self.flags.len()];
        let mut out = Vec::new();
        visit(self, target, &mut seen, &mut out);
        out
    }
}

/// Whether `to` is reachable from `from` (including `from == to`).
fn reaches(edges: &[Vec<usize>], from: usize, to: usize) -> bool {
    let mut seen = vec![false; edges.len()];
    let mut stack = vec![from];
    while let Some(n) = stack.pop() {
        if n == to {
            return true;
        }
        if std::mem::replace(&mut seen[n], true) {
            continue;
        }
        stack.extend(edges[n].iter().copied());
    }
    false
}

fn for_each_test(flag: &Flag, mut f: impl FnMut(&Test)) {
    let supers = flag.super_condition.iter().map(|(_, c)| c);
    for c in flag.conditions.iter().chain(supers) {
        for filter in &c.filters {
            f(&filter.test);
        }
    }
}

fn for_each_test_mut(flag: &mut Flag, mut f: impl FnMut(&mut Test)) {
    let supers = flag.super_condition.iter_mut().map(|(_, c)| c);
    for c in flag.conditions.iter_mut().chain(supers) {
        for filter in &mut c.filters {
            f(&mut filter.test);
        }
    }
}
