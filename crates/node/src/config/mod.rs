//! The node's configuration: parsed once, into types.
//!
//! Two layers, and one conversion between them:
//!
//! - [`flags`]: the command line as clap reads it ([`Cli`], [`Flags`]),
//!   every flag also from a `SESSIONLAB_*` environment variable, grouped by
//!   part under the headings of `--help`. Clap checks each value on its own.
//! - [`options`]: [`NodeOptions`], what the rest of the node reads, one
//!   typed part per component: [`StoreOptions`] (memory, replicated with its
//!   peers and secret, or Redis with its URL), [`AuthOptions`] (session with
//!   its tracking and binding, or jwt with its keys), the cookie policy,
//!   timeouts, limits, what one client may do. Combinations that cannot work have no value of these
//!   types.
//! - [`from_flags`]: `NodeOptions::try_from(Flags)`, where the rules that
//!   span several flags live, each refusal naming the flag to fix.
//!
//! `main` converts once, before anything binds; the wiring, the handlers and
//! the node's shared state only ever see [`NodeOptions`], never the flags.

mod flags;
mod from_flags;
mod machine;
mod options;

pub use flags::{Cli, Command, Flags};
pub use from_flags::InvalidConfig;
pub use options::{
    AuthOptions, BindSession, ClientOptions, ClusterSecret, JwtKeys, JwtOptions, JwtSecret, Limits,
    ListenOptions, MemoryOptions, NodeOptions, RateLimit, RedisOptions, ReferrerPolicy,
    ReplicationOptions, StoreOptions, Timeouts, Tracking, UsersSource,
};
