//! Configuration, parsed once (parse, don't validate).
//!
//! | file | stage |
//! |---|---|
//! | [`flags`] | the command line as clap reads it: flags grouped by part (the `--help` headings), each also a `SESSIONLAB_LB_*` variable, each value checked on its own |
//! | [`from_flags`] | the one `TryFrom<Flags>` for [`LbOptions`]: the backend file and the rules across flags; errors name the flag |
//! | [`options`] | the typed options, one struct per part; the only thing the runtime reads |
//!
//! Why two stages: clap can say "`--health-interval soon` is not a
//! duration", but not "this admin listener is reachable without a token".
//! Doing the second once, into types, means no part re-checks a flag, and
//! no part can read a flag it was not given.

mod flags;
mod from_flags;
mod options;

pub use flags::Flags;
pub use from_flags::ConfigError;
pub use options::{
    AdminOptions, AdminToken, LbOptions, ListenOptions, SelectionOptions, TlsOptions,
};
