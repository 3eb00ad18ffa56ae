//! Configuration: flags (each also a `SESSIONLAB_LB_*` environment
//! variable) and the optional backend file, parsed once.
//!
//! See [`flags`].

pub(crate) mod flags;

pub use flags::{Config, ConfigError, Settings};
