//! The route suffix: `<session-id>.<node-id>`, Tomcat's `jvmRoute` form.
//!
//! With `--route-suffix` the node appends its id to the session id it hands
//! out, and the load balancer's `sticky-route` strategy sends the request to
//! the backend of that id. Both ends split the value with [`split`].
//!
//! The rule: the route is what follows the **last** dot. Neither part may
//! contain a dot: session ids are URL-safe base64 (no `.`), and node ids are
//! `A-Z a-z 0-9 - _` (the node's `--id` and the LB's `--backend` refuse
//! anything else). So a well-formed value has at most one dot, and both
//! splits agree on it; on a malformed value such as `abc.def.node-3` the
//! last-dot rule names the backend the LB would route to (`node-3`) and
//! leaves `abc.def` as the id, which the node then refuses as not an id.
//! An empty route (`abc.`) is no route.

/// Split a presented value into the id and its route suffix, if any.
pub fn split(value: &[u8]) -> (&[u8], Option<&[u8]>) {
    match value.iter().rposition(|&b| b == b'.') {
        Some(dot) => {
            let route = &value[dot + 1..];
            (&value[..dot], (!route.is_empty()).then_some(route))
        }
        None => (value, None),
    }
}

/// [`split`] on text (splitting at an ASCII dot keeps both halves UTF-8).
pub fn split_str(value: &str) -> (&str, Option<&str>) {
    match value.rsplit_once('.') {
        Some((id, route)) => (id, (!route.is_empty()).then_some(route)),
        None => (value, None),
    }
}

/// The route suffix of a value (`abc123.node-2` -> `node-2`).
pub fn route_suffix(value: &[u8]) -> Option<&[u8]> {
    split(value).1
}

/// The value a node with `route` hands out for `id`: `<id>.<route>`.
pub fn with_route(id: &str, route: Option<&str>) -> String {
    match route {
        Some(route) => format!("{id}.{route}"),
        None => id.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn route_suffix_is_after_the_last_dot() {
        assert_eq!(route_suffix(b"abc.def.node-3"), Some(&b"node-3"[..]));
        assert_eq!(route_suffix(b"abc"), None);
        assert_eq!(route_suffix(b"abc."), None);
    }

    #[test]
    fn split_gives_the_id_and_the_route() {
        assert_eq!(split(b"abc.node-2"), (&b"abc"[..], Some(&b"node-2"[..])));
        assert_eq!(split(b"abc"), (&b"abc"[..], None));
        assert_eq!(split_str("abc.def.node-3"), ("abc.def", Some("node-3")));
        assert_eq!(split_str("abc."), ("abc", None));
        assert_eq!(with_route("abc", Some("node-1")), "abc.node-1");
        assert_eq!(with_route("abc", None), "abc");
    }

    proptest! {
        #[test]
        fn text_and_bytes_agree(s in ".*") {
            let (id, route) = split_str(&s);
            let (bid, broute) = split(s.as_bytes());
            prop_assert_eq!(id.as_bytes(), bid);
            prop_assert_eq!(route.map(str::as_bytes), broute);
        }
    }
}
