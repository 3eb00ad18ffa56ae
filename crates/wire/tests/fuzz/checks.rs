//! The properties the wire fuzz targets check, one function per target.
//!
//! Shared by the bounded property tests (`tests/fuzz.rs`, in the normal
//! test suite) and the coverage-guided targets (`fuzz/fuzz_targets/`), so
//! both check exactly the same thing. Each function takes arbitrary bytes
//! and panics only when a property fails.

use sessionlab_wire::cookie::{self, Presented};
use sessionlab_wire::route;

/// Target `cookie`: the `Cookie` header parser.
///
/// The input is split at newlines into header values (a request may carry
/// several `Cookie` headers); the first line also names the cookie looked
/// for when it is a valid name. Properties: no panic; an answer borrows a
/// value that is really in the headers under that name, exactly once;
/// a value set by a well-formed pair is found again (round trip).
pub fn cookie(data: &[u8]) {
    let headers: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let first = std::str::from_utf8(headers[0]).unwrap_or("");
    let names = [cookie::SESSION_COOKIE, cookie::ROUTE_COOKIE, first];
    for name in names {
        let found = cookie::find(headers.iter().copied(), name);
        let matching: Vec<&[u8]> = headers
            .iter()
            .flat_map(|h| cookie::pairs(h))
            .filter(|(n, _)| *n == name.as_bytes())
            .map(|(_, v)| v)
            .collect();
        match found {
            Presented::Absent => assert!(matching.is_empty(), "absent but present: {matching:?}"),
            Presented::Unusable => assert!(
                matching.len() > 1 || std::str::from_utf8(unquote(matching[0])).is_err(),
                "unusable though given once as text"
            ),
            Presented::One(v) => {
                assert_eq!(matching.len(), 1, "one of several");
                assert_eq!(v.as_bytes(), unquote(matching[0]));
                assert!(!v.contains(';'), "a value spans a separator");
            }
        }
        for h in &headers {
            let _ = cookie::sets_cookie(h, name);
        }
    }
    let _ = cookie::is_valid_name(first);

    // Round trip: a value of cookie-octets set among the others is found.
    if cookie::is_valid_name(first) {
        let value: Vec<u8> = data
            .iter()
            .copied()
            .filter(|b| b.is_ascii_graphic() && !b"\";,\\".contains(b))
            .take(64)
            .collect();
        let value = String::from_utf8(value).expect("ASCII");
        let header = format!("a-{first}=1; {first}={value}; {first}-b=2");
        assert_eq!(
            cookie::find([header.as_str()], first),
            Presented::One(value.as_str()),
            "{header}"
        );
        assert!(cookie::sets_cookie(
            format!("{first}={value}; Path=/").as_bytes(),
            first
        ));
    }
}

/// The value inside double quotes, as `find` reports it.
fn unquote(v: &[u8]) -> &[u8] {
    v.strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
        .unwrap_or(v)
}

/// Target `route`: the `<session-id>.<node-id>` route suffix.
///
/// Properties: no panic; the byte and text splits agree; the parts put
/// back together give the input; [`route::with_route`] round-trips.
pub fn route(data: &[u8]) {
    let (id, suffix) = route::split(data);
    assert_eq!(route::route_suffix(data), suffix);
    match suffix {
        Some(r) => {
            assert!(!r.is_empty() && !r.contains(&b'.'));
            assert_eq!([id, b".", r].concat(), data);
        }
        None => assert!(id == data || (data.ends_with(b".") && id == &data[..data.len() - 1])),
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let (tid, troute) = route::split_str(text);
        assert_eq!(tid.as_bytes(), id);
        assert_eq!(troute.map(str::as_bytes), suffix);
        // Round trip: an id and a route without dots come back apart.
        let mid = (0..=text.len() / 2)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        let (a, b) = text.split_at(mid);
        let (a, b) = (a.replace('.', ""), b.replace('.', ""));
        if !b.is_empty() {
            let value = route::with_route(&a, Some(&b));
            assert_eq!(route::split_str(&value), (a.as_str(), Some(b.as_str())));
        }
        assert_eq!(
            route::split_str(&route::with_route(&a, None)),
            (a.as_str(), None)
        );
    }
}
