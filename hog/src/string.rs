//! [`Str`]: the VM's immutable string, stored inline when short and shared (`Rc<str>`) when not.
//!
//! Most strings a transformation touches are short: property names, browser and OS names,
//! `typeof` answers, lowercased values. Keeping up to [`INLINE`] bytes inside the value itself
//! means converting an event, lowercasing a key or copying a dict allocates nothing for them,
//! while a [`crate::value::Value`] stays 32 bytes.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::rc::Rc;

/// Longest string kept inline.
pub const INLINE: usize = 22;

/// An immutable string (see the module docs). Compares, orders and hashes as its text.
#[derive(Clone)]
pub struct Str(Repr);

enum Repr {
    Inline { len: u8, buf: [u8; INLINE] },
    Shared(Rc<str>),
}

impl Clone for Repr {
    // Inlined (see `Value`'s `Clone`); an inline string copies whole rather than field by field.
    #[inline]
    fn clone(&self) -> Repr {
        match self {
            Repr::Inline { len, buf } => Repr::Inline {
                len: *len,
                buf: *buf,
            },
            Repr::Shared(s) => Repr::Shared(s.clone()),
        }
    }
}

impl Str {
    /// The text.
    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, buf } => {
                let bytes = &buf[..usize::from(*len)];
                // SAFETY: `Inline` is only built by `Str::new` from the bytes of a `&str` (a whole
                // string, so never a split character), and is immutable afterwards.
                unsafe { std::str::from_utf8_unchecked(bytes) }
            }
            Repr::Shared(s) => s,
        }
    }

    /// Length in bytes (without going through the text, for the memory estimate on every push).
    #[inline]
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Inline { len, .. } => usize::from(*len),
            Repr::Shared(s) => s.len(),
        }
    }

    /// Whether the string is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A string with this text.
    #[inline]
    pub fn new(s: &str) -> Str {
        if s.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..s.len()].copy_from_slice(s.as_bytes());
            Str(Repr::Inline {
                len: s.len() as u8,
                buf,
            })
        } else {
            Str(Repr::Shared(Rc::from(s)))
        }
    }

    /// Whether two strings share storage (inline strings never do).
    pub fn ptr_eq(a: &Str, b: &Str) -> bool {
        match (&a.0, &b.0) {
            (Repr::Shared(x), Repr::Shared(y)) => Rc::ptr_eq(x, y),
            _ => false,
        }
    }
}

impl Deref for Str {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Str {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Str {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl Default for Str {
    fn default() -> Self {
        Str::new("")
    }
}

impl From<&str> for Str {
    fn from(s: &str) -> Str {
        Str::new(s)
    }
}

impl From<&String> for Str {
    fn from(s: &String) -> Str {
        Str::new(s)
    }
}

impl From<String> for Str {
    fn from(s: String) -> Str {
        if s.len() <= INLINE {
            Str::new(&s)
        } else {
            Str(Repr::Shared(Rc::from(s)))
        }
    }
}

impl From<Rc<str>> for Str {
    fn from(s: Rc<str>) -> Str {
        if s.len() <= INLINE {
            Str::new(&s)
        } else {
            Str(Repr::Shared(s))
        }
    }
}

impl PartialEq for Str {
    #[inline]
    fn eq(&self, other: &Str) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Str {}

impl PartialEq<str> for Str {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Str {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialOrd for Str {
    fn partial_cmp(&self, other: &Str) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Str {
    fn cmp(&self, other: &Str) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Str {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_strings_read_back() {
        for s in ["", "a", "é€", &"x".repeat(INLINE), &"y".repeat(INLINE + 1)] {
            let v = Str::new(s);
            assert_eq!(v.as_str(), s);
            assert_eq!(Str::from(s.to_string()), v);
        }
        assert_eq!(std::mem::size_of::<Str>(), 24);
    }

    #[test]
    fn values_stay_small() {
        assert!(std::mem::size_of::<crate::value::Value>() <= 32);
    }
}
