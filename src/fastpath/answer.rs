//! How a fast-path answer is shaped: the JSON-RPC message, HTTP status and body framing
//! rmcp's handler and transport would give the same result.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use rmcp::model::{
    CallToolResponse, ClientCapabilities, ErrorCode, ErrorData, RequestId, ServerJsonRpcMessage,
    ServerResult,
};

use super::{EVENT_STREAM, JSON};
use crate::admin::Body;

/// How the answer to one fast-path call is shaped, as rmcp's handler would shape it.
pub(super) struct Shape {
    /// 2026-07-28 or later was negotiated (per request or for the session).
    pub(super) modern: bool,
    /// The stateless route, whose JSON-RPC errors map to HTTP statuses.
    pub(super) stateless: bool,
    pub(super) caps: Option<ClientCapabilities>,
}

impl Shape {
    /// What rmcp's `ServerHandler` dispatch makes of the handler's answer.
    pub(super) fn message(
        &self,
        answer: Result<CallToolResponse, ErrorData>,
        id: RequestId,
    ) -> ServerJsonRpcMessage {
        let result = answer.and_then(|response| {
            let declared_tasks = self.caps.as_ref().is_some_and(|c| c.supports_tasks());
            if matches!(response, CallToolResponse::Task(_)) && !declared_tasks {
                return Err(ErrorData::missing_required_client_capability(
                    ClientCapabilities::builder().enable_tasks().build(),
                ));
            }
            let mut result = ServerResult::from(response);
            if matches!(result, ServerResult::InputRequiredResult(_)) && !self.modern {
                return Err(ErrorData::invalid_request(
                    "InputRequiredResult requires negotiated protocol version 2026-07-28 or newer",
                    None,
                ));
            }
            if self.modern {
                result.fill_missing_cache_hints();
            } else {
                result.strip_result_type_for_legacy_peer();
                result.strip_non_object_output_for_legacy_peer();
            }
            Ok(result)
        });
        match result {
            Ok(r) => ServerJsonRpcMessage::response(r, id),
            Err(mut e) => {
                if self.modern && e.code == ErrorCode::RESOURCE_NOT_FOUND {
                    e.code = ErrorCode::INVALID_PARAMS;
                }
                ServerJsonRpcMessage::error(e, Some(id))
            }
        }
    }

    /// rmcp's HTTP status for a stateless answer; session answers are always 200.
    fn status_of(&self, message: &ServerJsonRpcMessage) -> StatusCode {
        let ServerJsonRpcMessage::Error(e) = message else {
            return StatusCode::OK;
        };
        if !self.stateless {
            return StatusCode::OK;
        }
        match e.error.code {
            ErrorCode::UNSUPPORTED_PROTOCOL_VERSION
            | ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY
            | ErrorCode::HEADER_MISMATCH => StatusCode::BAD_REQUEST,
            ErrorCode::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
            _ => StatusCode::OK,
        }
    }
}

pub(super) fn respond(
    shape: &Shape,
    message: ServerJsonRpcMessage,
    prefers_sse: bool,
) -> Response<Body> {
    let status = shape.status_of(&message);
    let json = match serde_json::to_vec(&message) {
        Ok(j) => j,
        Err(e) => {
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Encounter an error when serialize json response: {e}"),
            );
        }
    };
    let mut resp = if prefers_sse && status == StatusCode::OK {
        let mut body = Vec::with_capacity(json.len() + 8);
        body.extend_from_slice(b"data: ");
        body.extend_from_slice(&json);
        body.extend_from_slice(b"\n\n");
        let mut r = Response::new(Full::new(Bytes::from(body)).boxed());
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(EVENT_STREAM));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
        r
    } else {
        let mut r = Response::new(Full::new(Bytes::from(json)).boxed());
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
        r
    };
    *resp.status_mut() = status;
    resp
}

pub(super) fn plain(status: StatusCode, text: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(text)).boxed());
    *r.status_mut() = status;
    r
}

pub(super) fn accepted() -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::new()).boxed());
    *r.status_mut() = StatusCode::ACCEPTED;
    r
}
