//! A `tools/call` whose params break the protocol's shape: refused with a reason and a record.
//!
//! rmcp reads such a request as a method it does not know (`arguments` not an object: -32601
//! "tools/call", HTTP 404 on the stateless route) or as no JSON-RPC message at all (`_meta`
//! not an object: HTTP 415), and records nothing: the runner is told tools/call does not
//! exist, and the operator never sees the attempt. Here it gets -32602 `invalid_request`
//! naming the field, and an audit record, on the routes the fast path serves (the
//! stateless one with its headers, or a live session of this gateway); anything else still
//! goes to rmcp.

use http::HeaderMap;
use rmcp::model::{CallToolRequestParams, ProtocolVersion, RequestId, ServerJsonRpcMessage};
use serde_json::{Map, Value};

use super::answer::{Shape, respond};
use super::headers::{accepts, session_header, standard_headers_fit};
use super::{FastPath, HEADER_PROTOCOL_VERSION};
use crate::admin::Body;
use crate::call::Caller;

impl FastPath {
    /// Answers `body` when it is a `tools/call` with a readable id and tool name whose params
    /// do not fit; `None` leaves it to rmcp.
    pub(super) async fn malformed(
        &self,
        caller: &Caller,
        h: &HeaderMap,
        body: &[u8],
    ) -> Option<http::Response<Body>> {
        let Ok(Value::Object(msg)) = serde_json::from_slice::<Value>(body) else {
            return None;
        };
        if msg.get("jsonrpc")?.as_str()? != "2.0" || msg.get("method")?.as_str()? != "tools/call" {
            return None;
        }
        let id = serde_json::from_value::<RequestId>(msg.get("id")?.clone()).ok()?;
        let params = msg.get("params")?.as_object()?;
        let name = params.get("name")?.as_str()?;
        let detail = fault(params)?;
        let header_version = match h.get(HEADER_PROTOCOL_VERSION) {
            Some(v) => Some(v.to_str().ok()?),
            None => None,
        };
        let stateless = header_version == Some(ProtocolVersion::V_2026_07_28.as_str());
        let shape = if stateless {
            // rmcp checks the standard headers before the body: a mismatch stays its answer.
            if !self.stateless_ok || !standard_headers_fit(h, name) {
                return None;
            }
            Shape {
                modern: true,
                stateless: true,
                caps: None,
            }
        } else {
            let sid = session_header(h);
            self.session_shape(sid.as_deref(), header_version, None)
                .await?
        };
        let error = self.pipeline.malformed(caller, name, detail);
        let message = ServerJsonRpcMessage::error(error, Some(id));
        Some(respond(&shape, message, accepts(h).unwrap_or(false)))
    }
}

/// What is wrong with `params`, or `None` when they fit `tools/call` after all (the request
/// failed for another reason, which rmcp answers).
fn fault(params: &Map<String, Value>) -> Option<String> {
    for key in ["arguments", "_meta"] {
        if let Some(v) = params.get(key)
            && !v.is_object()
            && !v.is_null()
        {
            return Some(format!(
                "params.{key} must be a JSON object, not {}",
                kind(v)
            ));
        }
    }
    serde_json::from_value::<CallToolRequestParams>(Value::Object(params.clone()))
        .err()
        .map(|e| format!("params do not fit tools/call: {e}"))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn names_the_field_that_is_not_an_object() {
        let f = |v| fault(&params(v));
        assert_eq!(
            f(json!({"name": "t", "arguments": "x"})).unwrap(),
            "params.arguments must be a JSON object, not a string"
        );
        assert_eq!(
            f(json!({"name": "t", "arguments": {}, "_meta": [1]})).unwrap(),
            "params._meta must be a JSON object, not an array"
        );
        assert!(
            f(json!({"name": "t", "arguments": {}, "requestState": 5}))
                .unwrap()
                .starts_with("params do not fit tools/call: ")
        );
    }

    #[test]
    fn params_that_fit_are_left_to_rmcp() {
        assert_eq!(fault(&params(json!({"name": "t"}))), None);
        assert_eq!(
            fault(&params(
                json!({"name": "t", "arguments": {"a": 1}, "_meta": {"k": "v"}})
            )),
            None
        );
        assert_eq!(
            fault(&params(json!({"name": "t", "arguments": null}))),
            None
        );
    }
}
