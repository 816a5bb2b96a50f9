//! Header checks the fast path makes as rmcp would: session id, `Accept` ranking and the
//! SEP-2243 standard headers of a `tools/call`.

use std::sync::Arc;

use http::{HeaderMap, header};

use super::{
    EVENT_STREAM, HEADER_METHOD, HEADER_NAME, HEADER_PARAM_PREFIX, HEADER_PROTOCOL_VERSION,
    HEADER_SESSION_ID, JSON,
};

/// The `MCP-Protocol-Version` header: `Err` when it is not text (rmcp refuses that).
pub(super) fn header_version(h: &HeaderMap) -> Result<Option<&str>, http::header::ToStrError> {
    h.get(HEADER_PROTOCOL_VERSION)
        .map(|v| v.to_str())
        .transpose()
}

pub(super) fn session_header(h: &HeaderMap) -> Option<Arc<str>> {
    h.get(HEADER_SESSION_ID)
        .and_then(|v| v.to_str().ok())
        .map(Arc::from)
}

/// SEP-2243 headers of a 2026-07-28 `tools/call`, in the one form rmcp accepts without
/// decoding: exactly one `Mcp-Method: tools/call`, exactly one plain `Mcp-Name` equal to the
/// tool name, and no `Mcp-Param-*` (rmcp skips those without a tool schema, which the
/// gateway does not give it; anything unusual goes to rmcp anyway).
pub(super) fn standard_headers_fit(h: &HeaderMap, name: &str) -> bool {
    let single = |n: &str| {
        let mut all = h.get_all(n).iter();
        match (all.next(), all.next()) {
            (Some(v), None) => v.to_str().ok(),
            _ => None,
        }
    };
    let method_ok = single(HEADER_METHOD) == Some("tools/call");
    let name_ok = single(HEADER_NAME).is_some_and(|v| v == name && !v.starts_with("=?base64?"));
    let no_params = !h
        .keys()
        .any(|k| k.as_str().starts_with(HEADER_PARAM_PREFIX));
    method_ok && name_ok && no_params
}

/// rmcp requires `Accept` to list both `application/json` and `text/event-stream` (an
/// explicit `q=0` excludes a type). `None` when it does not; else whether the client ranks
/// `text/event-stream` strictly above `application/json`.
pub(super) fn accepts(h: &HeaderMap) -> Option<bool> {
    let (mut json, mut sse): (Option<f32>, Option<f32>) = (None, None);
    for value in h.get_all(header::ACCEPT).iter() {
        let Ok(value) = value.to_str() else {
            continue;
        };
        for entry in split_unquoted(value, ',') {
            let mut parts = split_unquoted(entry, ';');
            let Some(essence) = parts.next().map(str::trim) else {
                continue;
            };
            let mut q = 1.0f32;
            let mut excluded = false;
            for p in parts {
                let Some((n, v)) = p.split_once('=') else {
                    continue;
                };
                if n.trim().eq_ignore_ascii_case("q") {
                    let v = v.trim();
                    if !quality_is_acceptable(v) {
                        excluded = true;
                    } else if let Ok(parsed) = v.parse::<f32>() {
                        q = parsed;
                    }
                }
            }
            if excluded {
                continue;
            }
            if essence.eq_ignore_ascii_case(JSON) {
                json = Some(json.map_or(q, |old: f32| old.max(q)));
            } else if essence.eq_ignore_ascii_case(EVENT_STREAM) {
                sse = Some(sse.map_or(q, |old: f32| old.max(q)));
            }
        }
    }
    match (json, sse) {
        (Some(j), Some(s)) => Some(s > j),
        _ => None,
    }
}

/// rmcp's `split_unquoted`: delimiters inside quoted strings do not split.
pub(super) fn split_unquoted(value: &str, delimiter: char) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    let mut escaped = false;
    value.split(move |c| {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if !quoted && c == delimiter {
            return true;
        }
        false
    })
}

/// rmcp's `quality_is_acceptable`: only an explicit zero weight excludes a media range.
pub(super) fn quality_is_acceptable(quality: &str) -> bool {
    let (whole, fraction) = quality.split_once('.').unwrap_or((quality, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|d| d.is_ascii_digit()) {
        return true;
    }
    whole != "0" || fraction.bytes().any(|d| d != b'0')
}
