//! Semantic-version operators.
//!
//! Versions are read leniently, as PostHog's SDKs read them: surrounding whitespace and any
//! leading `v`/`V` are dropped, everything from the first `-` or `+` is ignored, missing or
//! empty minor and patch parts are `0`, and parts after the third are ignored. Each part must
//! be ASCII digits without a leading zero. Only `(major, minor, patch)` is compared, so
//! pre-release tags do not order.
//!
//! Range operators turn the filter into `[lower, upper)`: tilde `~1.2.3` is `[1.2.3, 1.3.0)`,
//! caret `^1.2.3` is `[1.2.3, 2.0.0)` (`^0.2.3` is `[0.2.3, 0.3.0)`, `^0.0.3` is
//! `[0.0.3, 0.0.4)`), wildcard `1.*` is `[1.0.0, 2.0.0)` and `1.2.*` is `[1.2.0, 1.3.0)`.

/// A parsed `(major, minor, patch)`.
pub type Version = (u64, u64, u64);

/// The semver operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SemverOp {
    /// `semver_eq`
    Eq,
    /// `semver_neq`
    Neq,
    /// `semver_gt`
    Gt,
    /// `semver_gte`
    Gte,
    /// `semver_lt`
    Lt,
    /// `semver_lte`
    Lte,
    /// `semver_tilde`
    Tilde,
    /// `semver_caret`
    Caret,
    /// `semver_wildcard`
    Wildcard,
}

/// A compiled semver filter: a version to compare with, or a half-open range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SemverFilter {
    /// Comparison against one version.
    Compare(SemverOp, Version),
    /// `lower <= v < upper`.
    Range(Version, Version),
}

impl SemverFilter {
    /// Compiles the filter value for `op`; `None` when it is not a valid version or pattern.
    pub fn compile(op: SemverOp, value: &str) -> Option<SemverFilter> {
        match op {
            SemverOp::Tilde => {
                let (ma, mi, pa) = parse(value)?;
                Some(SemverFilter::Range(
                    (ma, mi, pa),
                    (ma, mi.checked_add(1)?, 0),
                ))
            }
            SemverOp::Caret => {
                let (ma, mi, pa) = parse(value)?;
                let upper = if ma > 0 {
                    (ma.checked_add(1)?, 0, 0)
                } else if mi > 0 {
                    (0, mi.checked_add(1)?, 0)
                } else {
                    (0, 0, pa.checked_add(1)?)
                };
                Some(SemverFilter::Range((ma, mi, pa), upper))
            }
            SemverOp::Wildcard => wildcard(value),
            _ => Some(SemverFilter::Compare(op, parse(value)?)),
        }
    }

    /// Whether `version` satisfies the filter.
    pub fn matches(&self, version: Version) -> bool {
        match *self {
            SemverFilter::Range(lo, hi) => lo <= version && version < hi,
            SemverFilter::Compare(op, v) => match op {
                SemverOp::Eq => version == v,
                SemverOp::Neq => version != v,
                SemverOp::Gt => version > v,
                SemverOp::Gte => version >= v,
                SemverOp::Lt => version < v,
                _ => version <= v,
            },
        }
    }
}

/// Parses a version leniently (see the module docs).
pub fn parse(value: &str) -> Option<Version> {
    let text = value.trim().trim_start_matches(['v', 'V']);
    let text = text.split('-').next().unwrap_or("");
    let text = text.split('+').next().unwrap_or("");
    let mut parts = text.split('.');
    let major = identifier(parts.next().unwrap_or(""))?;
    let mut rest = || match parts.next() {
        None | Some("") => Some(0),
        Some(p) => identifier(p),
    };
    let minor = rest()?;
    let patch = rest()?;
    Some((major, minor, patch))
}

fn identifier(part: &str) -> Option<u64> {
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if part.len() > 1 && part.starts_with('0') {
        return None;
    }
    part.parse().ok()
}

fn wildcard(value: &str) -> Option<SemverFilter> {
    let cleaned = value.trim().trim_start_matches(['v', 'V']).replace('*', "");
    let cleaned = cleaned.trim_end_matches('.');
    let parts: Vec<&str> = cleaned.split('.').filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        [] => None,
        [ma] => {
            let ma = identifier(ma)?;
            Some(SemverFilter::Range((ma, 0, 0), (ma.checked_add(1)?, 0, 0)))
        }
        [ma, mi] => {
            let (ma, mi) = (identifier(ma)?, identifier(mi)?);
            Some(SemverFilter::Range(
                (ma, mi, 0),
                (ma, mi.checked_add(1)?, 0),
            ))
        }
        [ma, mi, pa, ..] => {
            let (ma, mi, pa) = (identifier(ma)?, identifier(mi)?, identifier(pa)?);
            Some(SemverFilter::Range(
                (ma, mi, pa),
                (ma, mi, pa.checked_add(1)?),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_parsing() {
        assert_eq!(parse("1.2.3"), Some((1, 2, 3)));
        assert_eq!(parse(" v1.2 "), Some((1, 2, 0)));
        assert_eq!(parse("1"), Some((1, 0, 0)));
        assert_eq!(parse("1.2.3-beta.1+build"), Some((1, 2, 3)));
        assert_eq!(parse("1.2.3.4"), Some((1, 2, 3)));
        assert_eq!(parse("1..3"), Some((1, 0, 3)));
        assert_eq!(parse("01.2.3"), None);
        assert_eq!(parse("a.b"), None);
        assert_eq!(parse(""), None);
    }

    fn m(op: SemverOp, filter: &str, v: &str) -> bool {
        SemverFilter::compile(op, filter)
            .unwrap()
            .matches(parse(v).unwrap())
    }

    #[test]
    fn comparisons() {
        assert!(m(SemverOp::Eq, "1.2.3", "v1.2.3"));
        assert!(m(SemverOp::Neq, "1.2.3", "1.2.4"));
        assert!(m(SemverOp::Gt, "1.2.3", "1.10.0"));
        assert!(m(SemverOp::Gte, "1.2.3", "1.2.3"));
        assert!(!m(SemverOp::Lt, "1.2.3", "1.2.3-alpha"));
        assert!(m(SemverOp::Lte, "2", "1.99.99"));
    }

    #[test]
    fn ranges() {
        assert!(m(SemverOp::Tilde, "1.2.3", "1.2.9"));
        assert!(!m(SemverOp::Tilde, "1.2.3", "1.3.0"));
        assert!(m(SemverOp::Caret, "1.2.3", "1.9.0"));
        assert!(!m(SemverOp::Caret, "1.2.3", "2.0.0"));
        assert!(m(SemverOp::Caret, "0.2.3", "0.2.9"));
        assert!(!m(SemverOp::Caret, "0.2.3", "0.3.0"));
        assert!(m(SemverOp::Caret, "0.0.3", "0.0.3"));
        assert!(!m(SemverOp::Caret, "0.0.3", "0.0.4"));
        assert!(m(SemverOp::Wildcard, "1.*", "1.9.9"));
        assert!(!m(SemverOp::Wildcard, "1.*", "2.0.0"));
        assert!(m(SemverOp::Wildcard, "1.2.*", "1.2.7"));
        assert!(!m(SemverOp::Wildcard, "1.2.*", "1.3.0"));
        assert!(SemverFilter::compile(SemverOp::Wildcard, "*").is_none());
    }
}
