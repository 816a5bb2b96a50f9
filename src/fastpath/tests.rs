//! Unit tests of the fast path's request checks: `Accept` ranking and the standard MCP headers.

use super::*;
use http::HeaderValue;

fn accept(v: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
    h
}

#[test]
fn accept_needs_both_types_and_ranks_them() {
    assert_eq!(
        accepts(&accept("application/json, text/event-stream")),
        Some(false)
    );
    assert_eq!(
        accepts(&accept("text/event-stream, application/json")),
        Some(false)
    );
    assert_eq!(
        accepts(&accept("text/event-stream, application/json;q=0.5")),
        Some(true)
    );
    assert_eq!(accepts(&accept("application/json")), None);
    assert_eq!(
        accepts(&accept("application/json, text/event-stream;q=0")),
        None
    );
    assert_eq!(accepts(&accept("*/*")), None);
}

#[test]
fn standard_headers_must_be_plain_and_match() {
    let mut h = HeaderMap::new();
    h.insert(HEADER_METHOD, HeaderValue::from_static("tools/call"));
    h.insert(HEADER_NAME, HeaderValue::from_static("a__get_post"));
    assert!(standard_headers_fit(&h, "a__get_post"));
    assert!(!standard_headers_fit(&h, "a__other"));
    h.append(HEADER_NAME, HeaderValue::from_static("a__get_post"));
    assert!(!standard_headers_fit(&h, "a__get_post"));
}
