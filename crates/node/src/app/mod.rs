//! The demo app: what the user sees and does.
//!
//! - [`routes`]: the app's routes (login, a counter, a small cart, the
//!   session as JSON, `/healthz`), each a small handler that reads and
//!   changes the session through the session layer;
//! - [`page`]: the HTML page that says which node answered and what the
//!   session holds, with every link written for the tracking mode;
//! - `jwt_page`: the page of jwt mode, whose script keeps the tokens.
//!
//! Nothing here knows where sessions are stored or how the id travels:
//! that is the session layer's (`session/`) and the store's (`store/`).

mod jwt_page;
pub(crate) mod page;
pub(crate) mod routes;

pub use page::EXTERNAL_LINK;
