//! Operator names and the filter types they apply to.

use crate::semver::SemverOp;

/// A property-filter operator, parsed from its PostHog name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `exact`: case-insensitive equality, boolean strings as booleans, lists as membership.
    Exact,
    /// `is_not`: the negation of `exact`; true when the key is missing.
    IsNot,
    /// `is_set`: the key is present.
    IsSet,
    /// `is_not_set`: the key is absent.
    IsNotSet,
    /// `icontains`: ASCII-case-insensitive substring.
    IContains,
    /// `not_icontains`
    NotIContains,
    /// `starts_with` (ASCII-case-insensitive)
    StartsWith,
    /// `not_starts_with`
    NotStartsWith,
    /// `ends_with` (ASCII-case-insensitive)
    EndsWith,
    /// `not_ends_with`
    NotEndsWith,
    /// `regex`: unanchored search; an invalid pattern matches nothing.
    Regex,
    /// `not_regex`: an invalid pattern matches nothing either.
    NotRegex,
    /// `gt`
    Gt,
    /// `gte`
    Gte,
    /// `lt`
    Lt,
    /// `lte`
    Lte,
    /// `is_date_before`
    IsDateBefore,
    /// `is_date_after`
    IsDateAfter,
    /// `is_date_exact`
    IsDateExact,
    /// One of the `semver_*` operators.
    Semver(SemverOp),
    /// `in` (cohort filters).
    In,
    /// `not_in` (cohort filters).
    NotIn,
    /// `flag_evaluates_to` (flag dependencies).
    FlagEvaluatesTo,
}

impl Operator {
    /// Parses an operator name; `None` for unknown names.
    pub fn parse(name: &str) -> Option<Operator> {
        use Operator::*;
        Some(match name {
            "exact" => Exact,
            "is_not" => IsNot,
            "is_set" => IsSet,
            "is_not_set" => IsNotSet,
            "icontains" => IContains,
            "not_icontains" => NotIContains,
            "starts_with" => StartsWith,
            "not_starts_with" => NotStartsWith,
            "ends_with" => EndsWith,
            "not_ends_with" => NotEndsWith,
            "regex" => Regex,
            "not_regex" => NotRegex,
            "gt" => Gt,
            "gte" => Gte,
            "lt" => Lt,
            "lte" => Lte,
            "is_date_before" => IsDateBefore,
            "is_date_after" => IsDateAfter,
            "is_date_exact" => IsDateExact,
            "semver_eq" => Semver(SemverOp::Eq),
            "semver_neq" => Semver(SemverOp::Neq),
            "semver_gt" => Semver(SemverOp::Gt),
            "semver_gte" => Semver(SemverOp::Gte),
            "semver_lt" => Semver(SemverOp::Lt),
            "semver_lte" => Semver(SemverOp::Lte),
            "semver_tilde" => Semver(SemverOp::Tilde),
            "semver_caret" => Semver(SemverOp::Caret),
            "semver_wildcard" => Semver(SemverOp::Wildcard),
            "in" => In,
            "not_in" => NotIn,
            "flag_evaluates_to" => FlagEvaluatesTo,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(Operator::parse("exact"), Some(Operator::Exact));
        assert_eq!(
            Operator::parse("semver_caret"),
            Some(Operator::Semver(SemverOp::Caret))
        );
        assert_eq!(Operator::parse("EXACT"), None);
        assert_eq!(Operator::parse("contains"), None);
    }
}
