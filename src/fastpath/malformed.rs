//! A `tools/call` that is no JSON-RPC message to rmcp: refused with a reason and a record.
//!
//! rmcp cannot parse a `tools/call` whose `_meta` is not an object into a message at all and
//! answers HTTP 415 "unrecognized JSON-RPC message", recording nothing (one whose `arguments`
//! are not an object does parse, as a custom method, and the handler refuses it:
//! [`Gateway`](crate::transport::Gateway)). Here it gets -32602 `invalid_request` naming the
//! field, and an audit record, on the routes the fast path serves (the stateless one with its
//! headers, or a live session of this gateway); anything else still goes to rmcp.

use http::HeaderMap;
use rmcp::model::{ProtocolVersion, RequestId, ServerJsonRpcMessage};
use serde_json::Value;

use super::FastPath;
use super::answer::{Shape, respond};
use super::headers::{accepts, header_version, session_header, standard_headers_fit};
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
        let params = msg.get("params")?;
        let name = params.get("name")?.as_str()?;
        let header_version = header_version(h).ok()?;
        let shape = if header_version == Some(ProtocolVersion::V_2026_07_28.as_str()) {
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
        let error = self
            .pipeline
            .malformed_call(caller, Some(params), None)
            .await?;
        let message = ServerJsonRpcMessage::error(error, Some(id));
        Some(respond(&shape, message, accepts(h).unwrap_or(false)))
    }
}
