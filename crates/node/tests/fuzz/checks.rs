//! The properties the node's url-tracking fuzz target checks.
//!
//! Shared by the bounded property tests (`tests/fuzz.rs`) and the
//! coverage-guided target (`fuzz/fuzz_targets/node_sid.rs`). The function
//! takes arbitrary bytes and panics only when a property fails.

use actix_web::http::Uri;
use actix_web::test::TestRequest;
use sessionlab_node::presented::{SID_PARAM, UrlSid, parse_value, split_sid, strip_from_request};

/// Target `node_sid`: the request path's `;sid=` parameter (url tracking)
/// and the `<id>[.<route>]` value it (or the session cookie) carries.
///
/// Properties: no panic; the split puts the path back together and leaves
/// no `;sid=` in the path routed; a parsed value is an id of the strict
/// form (and its route) spelled as presented; stripping the parameter from
/// a real request keeps its query and presents the same id.
pub fn node_sid(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (path, value) = split_sid(&text);
    match value {
        Some(v) => {
            assert_eq!(format!("{path}{SID_PARAM}{v}"), text);
            assert!(!path.contains(SID_PARAM));
        }
        None => assert_eq!(path, text),
    }
    for v in [Some(&*text), value].into_iter().flatten() {
        if let Some(p) = parse_value(v) {
            let joined = sessionlab_wire::route::with_route(p.id.as_str(), p.route.as_deref());
            assert!(
                joined == v || format!("{joined}.") == v,
                "{v:?} read as {joined:?}"
            );
        }
    }

    // Through a request, when the text is a request target at all.
    if !text.starts_with('/') {
        return;
    }
    let Ok(uri) = text.parse::<Uri>() else {
        return;
    };
    let mut req = TestRequest::default().uri(&text).to_srv_request();
    let UrlSid(presented) = strip_from_request(&mut req);
    let expected = split_sid(uri.path()).1.and_then(parse_value);
    assert_eq!(presented.map(|p| p.id), expected.map(|p| p.id));
    assert!(!req.path().contains(SID_PARAM), "{} routed", req.path());
    assert_eq!(req.uri().query(), uri.query());
}
