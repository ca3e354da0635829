//! The evaluation engine: one flag, or all of them, for one request.
//!
//! Order of evaluation for a flag:
//! 1. an inactive flag is `false` (`flag_disabled`);
//! 2. a group flag needs its group in the request, else `false` (`no_group_type`), and then
//!    buckets by the group key and reads the group's properties;
//! 3. feature enrollment (`$feature_enrollment/{key}` on the person) and super conditions
//!    (when the first super property is set) decide the flag (`super_condition_value`);
//! 4. the holdout: `hash("holdout-{id}") <= exclusion` gives variant `holdout-{id}`;
//! 5. conditions in order, the first match wins (`condition_match`); a condition whose
//!    properties match but whose rollout excludes the user is `out_of_rollout_bound`, which
//!    ends the evaluation when the flag has `early_exit`;
//! 6. otherwise `false` with the best reason seen.
//!
//! Evaluating a flag without dependencies allocates nothing. Dependency values are cached per
//! request, so each flag is evaluated at most once however many flags depend on it.

use serde_json::Value;

use crate::context::{EvalContext, Properties};
use crate::filter::{match_property, CompiledFilter, DepTarget, FlagRef, Test};
use crate::flag::{CompiledCondition, Flag};
use crate::hash::{flag_hash, holdout_hash, VARIANT_SALT};
use crate::reason::{Reason, ReasonCode};
use crate::set::FlagSet;

/// Deepest nesting of cohorts within cohorts and of flag dependencies followed.
const MAX_DEPTH: u32 = 64;

/// The result of evaluating one flag.
#[derive(Debug, Clone, Copy)]
pub struct FlagEvaluation<'a> {
    /// The flag evaluated.
    pub flag: &'a Flag,
    /// Whether it is on.
    pub enabled: bool,
    /// The variant, for multivariate flags and holdouts.
    pub variant: Option<&'a str>,
    /// Why.
    pub reason: Reason,
}

/// A flag's value as the legacy responses carry it: `false`, `true` or a variant key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagValue<'a> {
    /// Off, or on without a variant.
    Bool(bool),
    /// On, with this variant.
    Variant(&'a str),
}

impl<'a> FlagEvaluation<'a> {
    /// The flag key.
    pub fn key(&self) -> &'a str {
        self.flag.key()
    }

    /// `false`, `true` or the variant.
    pub fn value(&self) -> FlagValue<'a> {
        match (self.enabled, self.variant) {
            (true, Some(v)) => FlagValue::Variant(v),
            (enabled, _) => FlagValue::Bool(enabled),
        }
    }

    /// The payload for the value, if any (never for a disabled flag).
    pub fn payload(&self) -> Option<&'a Value> {
        self.flag.payload(self.enabled, self.variant)
    }
}

enum ConditionResult {
    Match,
    OutOfRollout,
    NoMatch,
}

impl FlagSet {
    /// Evaluates the flag with `key`; `None` if there is no such flag.
    ///
    /// # Examples
    /// ```
    /// use quill_flags::{EvalContext, Flag, FlagDefinition, FlagSet};
    /// let def = FlagDefinition::from_json(
    ///     r#"{"id":1,"key":"simple-flag","filters":{"groups":[{"rollout_percentage":78}]}}"#,
    /// )
    /// .unwrap();
    /// let set = FlagSet::new(vec![Flag::new(def).unwrap()], [], []);
    /// // hash("simple-flag", "distinct_id_0") is 0.78369..., just above 78%.
    /// let result = set.evaluate("simple-flag", &EvalContext::new("distinct_id_0")).unwrap();
    /// assert_eq!(result.reason.code.as_str(), "out_of_rollout_bound");
    /// ```
    pub fn evaluate<'s>(&'s self, key: &str, ctx: &EvalContext<'_>) -> Option<FlagEvaluation<'s>> {
        let index = self.index_of(key)?;
        Some(self.evaluate_index(index, ctx))
    }

    /// Evaluates the flag at `index` (see [`FlagSet::index_of`]).
    ///
    /// # Panics
    /// If `index` is out of bounds.
    pub fn evaluate_index<'s>(&'s self, index: usize, ctx: &EvalContext<'_>) -> FlagEvaluation<'s> {
        Evaluator::new(self, ctx).flag(index)
    }

    /// Evaluates every flag, or only those in `keys` (unknown keys are skipped), in the
    /// set's order.
    pub fn evaluate_all<'s>(
        &'s self,
        ctx: &EvalContext<'_>,
        keys: Option<&[String]>,
    ) -> Vec<FlagEvaluation<'s>> {
        let mut ev = Evaluator::new(self, ctx);
        match keys {
            None => (0..self.flags.len()).map(|i| ev.flag_cached(i)).collect(),
            Some(keys) => keys
                .iter()
                .filter_map(|k| self.index_of(k))
                .map(|i| ev.flag_cached(i))
                .collect(),
        }
    }
}

struct Evaluator<'s, 'c> {
    set: &'s FlagSet,
    ctx: &'c EvalContext<'c>,
    /// Per-flag results, allocated on the first dependency.
    cache: Vec<Option<FlagEvaluation<'s>>>,
    depth: u32,
    /// Whether the flag being evaluated hit a missing or circular dependency.
    dependency_problem: bool,
}

impl<'s, 'c> Evaluator<'s, 'c> {
    fn new(set: &'s FlagSet, ctx: &'c EvalContext<'_>) -> Self {
        // Shorten the context's lifetime to the evaluator's; it is only read.
        let ctx: &'c EvalContext<'c> = ctx;
        Evaluator {
            set,
            ctx,
            cache: Vec::new(),
            depth: 0,
            dependency_problem: false,
        }
    }

    fn flag_cached(&mut self, i: usize) -> FlagEvaluation<'s> {
        if let Some(Some(hit)) = self.cache.get(i) {
            return *hit;
        }
        let result = self.flag(i);
        if let Some(slot) = self.cache.get_mut(i) {
            *slot = Some(result);
        }
        result
    }

    fn flag(&mut self, i: usize) -> FlagEvaluation<'s> {
        let outer_problem = std::mem::replace(&mut self.dependency_problem, false);
        let result = self.flag_inner(&self.set.flags[i]);
        self.dependency_problem = outer_problem;
        result
    }

    fn flag_inner(&mut self, flag: &'s Flag) -> FlagEvaluation<'s> {
        let out = |enabled, variant, code, condition_index| FlagEvaluation {
            flag,
            enabled,
            variant,
            reason: Reason {
                code,
                condition_index,
            },
        };
        if !flag.active() {
            return out(false, None, ReasonCode::FlagDisabled, None);
        }
        let ctx = self.ctx;
        let (bucket, props) = match flag.aggregation {
            Some(index) => match self.group(index) {
                Some(target) => target,
                None => return out(false, None, ReasonCode::NoGroupType, None),
            },
            None => (self.person_bucket(flag), ctx.person_properties),
        };

        if flag.aggregation.is_none() {
            if let Some(key) = &flag.enrollment_key {
                if let Some(v) = ctx.person_properties.get(key) {
                    let enrolled = v == &Value::Bool(true) || v.as_str() == Some("true");
                    return out(enrolled, None, ReasonCode::SuperConditionValue, Some(0));
                }
            }
        }
        if let Some((key, condition)) = &flag.super_condition {
            if props.contains(key) {
                let matched = matches!(
                    self.condition(flag, condition, bucket, props),
                    ConditionResult::Match
                );
                return out(matched, None, ReasonCode::SuperConditionValue, Some(0));
            }
        }

        if let Some(h) = &flag.holdout {
            if h.fraction >= 1.0 || holdout_hash(bucket) <= h.fraction {
                return out(
                    true,
                    Some(&h.variant),
                    ReasonCode::HoldoutConditionValue,
                    None,
                );
            }
        }

        let mut best = (ReasonCode::NoConditionMatch, None);
        for (i, condition) in flag.conditions.iter().enumerate() {
            let (c_bucket, c_props) = match condition.aggregation {
                Some(Some(index)) if Some(index) != flag.aggregation => match self.group(index) {
                    Some(target) => target,
                    None => continue,
                },
                _ => (bucket, props),
            };
            match self.condition(flag, condition, c_bucket, c_props) {
                ConditionResult::Match => {
                    let variant = match &condition.variant {
                        Some(v) => Some(v.as_str()),
                        None if flag.variants.is_empty() => None,
                        None => flag.variant_for(flag_hash(flag.key(), c_bucket, VARIANT_SALT)),
                    };
                    return out(true, variant, ReasonCode::ConditionMatch, Some(i));
                }
                ConditionResult::OutOfRollout => {
                    if flag.early_exit {
                        return out(false, None, ReasonCode::OutOfRolloutBound, Some(i));
                    }
                    if ReasonCode::OutOfRolloutBound.rank() > best.0.rank() {
                        best = (ReasonCode::OutOfRolloutBound, Some(i));
                    }
                }
                ConditionResult::NoMatch => {}
            }
        }
        if best.0 == ReasonCode::NoConditionMatch && self.dependency_problem {
            best.0 = ReasonCode::MissingDependency;
        }
        out(false, None, best.0, best.1)
    }

    /// The bucketing key and properties of the request's group of type `index`.
    fn group(&self, index: i32) -> Option<(&'c str, Properties<'c>)> {
        let name = self.set.group_types.get(&index)?;
        let key = self.ctx.group_key(name)?;
        Some((key, self.ctx.group_props(name)))
    }

    fn person_bucket(&self, flag: &Flag) -> &'c str {
        let ctx = self.ctx;
        if flag.ensures_experience_continuity() {
            if let Some(o) = ctx.hash_key_overrides.and_then(|m| m.get(flag.key())) {
                return o;
            }
            return ctx.anon_distinct_id.unwrap_or(ctx.distinct_id);
        }
        if flag.bucket_by_device {
            return ctx.device_id.unwrap_or(ctx.distinct_id);
        }
        ctx.distinct_id
    }

    fn condition(
        &mut self,
        flag: &Flag,
        condition: &CompiledCondition,
        bucket: &str,
        props: Properties<'_>,
    ) -> ConditionResult {
        for filter in &condition.filters {
            if !self.filter(filter, props) {
                return ConditionResult::NoMatch;
            }
        }
        match condition.rollout {
            Some(pct) if pct < 100.0 => {
                if flag_hash(flag.key(), bucket, "") <= pct / 100.0 {
                    ConditionResult::Match
                } else {
                    ConditionResult::OutOfRollout
                }
            }
            _ => ConditionResult::Match,
        }
    }

    /// Decides one filter, before negation (which only cohort definitions apply).
    fn filter(&mut self, filter: &CompiledFilter, props: Properties<'_>) -> bool {
        match &filter.test {
            Test::Cohort { id, negate } => self.cohort(*id, props) != *negate,
            Test::Flag(r) => self.dependency(r),
            test => match_property(test, props.get(&filter.key), self.ctx.now),
        }
    }

    fn cohort(&mut self, id: i64, props: Properties<'_>) -> bool {
        let set = self.set;
        if let Some(group) = set.cohorts.get(&id) {
            if self.depth >= MAX_DEPTH {
                return false;
            }
            self.depth += 1;
            let result = group.matches(&mut |f| self.filter(f, props));
            self.depth -= 1;
            return result;
        }
        self.ctx
            .cohorts
            .and_then(|c| c.is_member(id))
            .unwrap_or(false)
    }

    fn dependency(&mut self, r: &FlagRef) -> bool {
        let index = match r.target {
            DepTarget::Index(i) => i,
            // References inside cohort definitions are resolved on use.
            DepTarget::Unresolved => match self.set.index_of(&r.key) {
                Some(i) => i,
                None => {
                    self.dependency_problem = true;
                    return false;
                }
            },
            DepTarget::Missing | DepTarget::Cyclic => {
                self.dependency_problem = true;
                return false;
            }
        };
        if self.depth >= MAX_DEPTH {
            self.dependency_problem = true;
            return false;
        }
        if self.cache.is_empty() {
            self.cache = vec![None; self.set.flags.len()];
        }
        self.depth += 1;
        let result = self.flag_cached(index);
        self.depth -= 1;
        dependency_matches(&r.expected, result.value())
    }
}

/// Whether a dependency's value satisfies the expected one: any variant satisfies `true`, a
/// variant key must match exactly (case-sensitive), and booleans must be equal.
fn dependency_matches(expected: &Value, actual: FlagValue<'_>) -> bool {
    match (actual, expected) {
        (FlagValue::Variant(v), Value::Bool(b)) => !v.is_empty() && *b,
        (FlagValue::Variant(v), Value::String(want)) => !v.is_empty() && v == want,
        (FlagValue::Bool(a), Value::Bool(b)) => a == *b,
        _ => false,
    }
}

#[cfg(test)]
mod tests;
