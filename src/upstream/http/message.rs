//! Reading a server message: our answer (result or error), a server request or notification,
//! or something to ignore.

use rmcp::model::{
    CallToolResult, ErrorData, JsonRpcMessage, RequestId, ServerJsonRpcMessage, ServerResult,
};
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::{HttpFault, snippet};

/// The parts of a server message that make it an answer, read in one pass. (rmcp's
/// `JsonRpcMessage` first buffers the whole message to find out which kind it is; an answer
/// is by far the most common message, so it gets the direct route.)
#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    id: Option<RequestId>,
    #[serde(default)]
    result: Option<ServerResult>,
    #[serde(default)]
    error: Option<ErrorData>,
    #[serde(default)]
    method: Option<IgnoredAny>,
}

/// A tool call's answer, the message a busy gateway reads most, read straight into its type:
/// inside `Reply`, rmcp's untagged `ServerResult` would buffer the result and try fifteen other
/// result types first, each failing. `CallToolResult` only matches a complete result with
/// `content`, `structuredContent` or `isError`, which none of those types has, so the outcome
/// is the one rmcp would reach.
#[derive(Deserialize)]
struct CallAnswer {
    id: RequestId,
    result: CallToolResult,
}

/// What one message from the server is to a request waiting for its answer.
pub(super) enum Parsed {
    Answer(Result<ServerResult, HttpFault>),
    /// A request or notification from the server.
    Other(ServerJsonRpcMessage),
    /// An answer to another request, or nothing readable.
    NotOurs,
}

pub(super) fn parse_message(bytes: &[u8], id: i64) -> Parsed {
    let ours = |rid: &RequestId| *rid == RequestId::Number(id);
    if let Ok(answer) = serde_json::from_slice::<CallAnswer>(bytes) {
        return if ours(&answer.id) {
            Parsed::Answer(Ok(ServerResult::CallToolResult(answer.result)))
        } else {
            Parsed::NotOurs
        };
    }
    if let Ok(reply) = serde_json::from_slice::<Reply>(bytes)
        && reply.method.is_none()
    {
        return match (reply.result, reply.error) {
            (Some(result), None) if reply.id.as_ref().is_some_and(ours) => {
                Parsed::Answer(Ok(result))
            }
            (None, Some(error)) if reply.id.as_ref().is_none_or(ours) => {
                Parsed::Answer(Err(HttpFault::Rpc(error)))
            }
            _ => Parsed::NotOurs,
        };
    }
    match serde_json::from_slice::<ServerJsonRpcMessage>(bytes) {
        Ok(JsonRpcMessage::Response(r)) if ours(&r.id) => Parsed::Answer(Ok(r.result)),
        Ok(JsonRpcMessage::Error(e)) if e.id.as_ref().is_none_or(ours) => {
            Parsed::Answer(Err(HttpFault::Rpc(e.error)))
        }
        Ok(msg @ (JsonRpcMessage::Request(_) | JsonRpcMessage::Notification(_))) => {
            Parsed::Other(msg)
        }
        Ok(_) => Parsed::NotOurs,
        Err(_) => {
            tracing::debug!(message = %snippet(bytes), "ignoring an unparsable message");
            Parsed::NotOurs
        }
    }
}
