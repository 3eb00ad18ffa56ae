//! Session ids for the unit tests: `id('a')` is the id of 32 `a`s, so a
//! test names its sessions by one letter and their order is the letters'.

use sessionlab_session::SessionId;

/// The session id made of 32 copies of `c` (a lowercase hex digit or letter).
pub(crate) fn id(c: char) -> SessionId {
    SessionId::parse(&c.to_string().repeat(32)).unwrap()
}
