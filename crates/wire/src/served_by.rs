//! `X-Served-By`: which node answered.
//!
//! Every node stamps its id on every answer, and the demo LB's echo
//! backends do the same. It is how the load tool, the lab's probes and the
//! tests see where a request went: the whole point of the lab is to watch
//! requests move between nodes, so the header is a contract like the
//! cookie names.
//!
//! | who | does |
//! |---|---|
//! | node, echo backend | writes its id ([`SERVED_BY`]) |
//! | load tool, `study` probes, tests | read it back ([`served_by`]) |

/// The header's name, lower case as HTTP/2 and `http` want it.
pub const SERVED_BY: &str = "x-served-by";

/// The node that answered, when the answer says so (and in text).
pub fn served_by(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get(SERVED_BY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_node_and_ignores_what_is_not_text() {
        let mut h = http::HeaderMap::new();
        assert_eq!(served_by(&h), None);
        h.insert(SERVED_BY, http::HeaderValue::from_static("node-2"));
        assert_eq!(served_by(&h).as_deref(), Some("node-2"));
        h.insert(SERVED_BY, http::HeaderValue::from_bytes(b"\xff").unwrap());
        assert_eq!(served_by(&h), None);
    }
}
