//! One message, shared by every peer queue it is in, encoded once.
//!
//! A local write is queued for every live peer. Cloning the message per
//! peer copied the whole session `N - 1` times (four allocations each), and
//! the transport then encoded each copy again for its own batch. A
//! [`Shared`] is a reference-counted message with a slot for its wire form:
//!
//! | step | cost per write |
//! |---|---|
//! | queue it for `N - 1` peers | `N - 1` reference-count increments |
//! | encode it ([`crate::codec`]) | once, by whichever batch is encoded first; the others copy the bytes |
//! | receive it | the decoder's value is not shared, so [`Shared::into_inner`] moves it out without a copy |
//!
//! Equality, `Debug` and the JSON form are those of the value: the slot is a
//! cache, never part of what the message says.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A shared value and its encoded form, filled on first use.
pub struct Shared<T>(Arc<Inner<T>>);

struct Inner<T> {
    value: T,
    wire: OnceLock<Box<[u8]>>,
}

impl<T> Shared<T> {
    pub fn new(value: T) -> Self {
        Shared(Arc::new(Inner {
            value,
            wire: OnceLock::new(),
        }))
    }

    /// The value: moved out if this is the last reference, cloned otherwise.
    pub fn into_inner(self) -> T
    where
        T: Clone,
    {
        match Arc::try_unwrap(self.0) {
            Ok(inner) => inner.value,
            Err(shared) => shared.value.clone(),
        }
    }

    /// The encoded form, computed by `encode` the first time it is asked for.
    pub(crate) fn wire(&self, encode: impl FnOnce(&T) -> Vec<u8>) -> &[u8] {
        self.0
            .wire
            .get_or_init(|| encode(&self.0.value).into_boxed_slice())
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0.value
    }
}

impl<T> From<T> for Shared<T> {
    fn from(value: T) -> Self {
        Shared::new(value)
    }
}

impl<T: PartialEq> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0.value == other.0.value
    }
}
impl<T: Eq> Eq for Shared<T> {}

impl<T: fmt::Debug> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.value.fmt(f)
    }
}

impl<T: Serialize> Serialize for Shared<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.value.serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Shared<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Shared::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_encoding_and_the_last_one_moves_out() {
        let a = Shared::new(String::from("x"));
        let b = a.clone();
        let mut calls = 0;
        assert_eq!(
            a.wire(|v| {
                calls += 1;
                v.as_bytes().to_vec()
            }),
            b"x"
        );
        assert_eq!(b.wire(|_| unreachable!("encoded once")), b"x");
        assert_eq!(calls, 1);
        assert_eq!(a, b);
        drop(a);
        assert_eq!(b.into_inner(), "x");
    }
}
