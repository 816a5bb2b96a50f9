//! Forwarding one `tools/call` to its upstream: timeout, cancellation, and honest fault reporting.

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, CallToolResult,
    CancelledNotificationParam, ClientRequest, RequestMetaObject, ServerResult,
};
use rmcp::service::{PeerRequestOptions, ServiceError};
use tokio_util::sync::CancellationToken;

use super::Link;
use crate::error::{GatewayError, UpstreamFault};

impl Link {
    /// Sends `params` (already carrying the upstream's own tool name) and waits for the answer.
    ///
    /// Distinguishes a request that provably never left ([`UpstreamFault::NotConnected`]) from
    /// one that was sent and then lost: only the first is safe to execute again.
    pub async fn call(
        &self,
        params: CallToolRequestParams,
        meta: RequestMetaObject,
        ct: &CancellationToken,
    ) -> Result<CallToolResponse, GatewayError> {
        let fail = |fault: UpstreamFault, detail: String| GatewayError::Upstream {
            upstream: self.cfg.name.clone(),
            fault,
            // Conservative: only a request that never left may be sent again blindly.
            retryable: fault.never_delivered(),
            detail,
        };
        let Some(peer) = self.peer() else {
            return Err(fail(
                UpstreamFault::NotConnected,
                "not connected (restarting)".into(),
            ));
        };
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        let timeout = self.cfg.timeout;
        let handle = peer
            .send_cancellable_request(
                request,
                PeerRequestOptions::with_timeout(timeout).with_meta(meta),
            )
            .await
            .map_err(|e| fail(UpstreamFault::NotConnected, format!("not connected: {e}")))?;
        let id = handle.id.clone();
        // On timeout rmcp itself sends notifications/cancelled upstream; on a runner's
        // cancellation we send it, so the tool server can stop work nobody waits for.
        let answer = tokio::select! {
            r = handle.await_response() => r,
            _ = ct.cancelled() => {
                let _ = peer
                    .notify_cancelled(CancelledNotificationParam::new(Some(id), Some("cancelled by the runner".into())))
                    .await;
                return Err(fail(UpstreamFault::Cancelled, "cancelled by the runner".into()));
            }
        };
        match answer {
            Ok(ServerResult::CallToolResult(r)) => Ok(CallToolResponse::Complete(r)),
            Ok(ServerResult::InputRequiredResult(r)) => Ok(CallToolResponse::InputRequired(r)),
            Ok(ServerResult::CreateTaskResult(r)) => Ok(CallToolResponse::Task(r)),
            // Older servers may answer a content-free tool call with an empty result.
            Ok(ServerResult::EmptyResult(_)) => {
                Ok(CallToolResponse::Complete(CallToolResult::success(vec![])))
            }
            Ok(other) => Err(fail(
                UpstreamFault::Protocol,
                format!("unexpected response to tools/call: {}", kind(&other)),
            )),
            Err(ServiceError::Timeout { timeout }) => Err(fail(
                UpstreamFault::Timeout(timeout),
                format!("no answer within {timeout:?}"),
            )),
            Err(ServiceError::McpError(error)) => Err(GatewayError::UpstreamError {
                upstream: self.cfg.name.clone(),
                error,
            }),
            Err(ServiceError::Cancelled { reason }) => Err(fail(
                UpstreamFault::Cancelled,
                reason.unwrap_or_else(|| "cancelled".into()),
            )),
            Err(e) => Err(fail(
                UpstreamFault::ConnectionLost,
                format!("connection lost after the call was sent: {e}"),
            )),
        }
    }
}

fn kind(r: &ServerResult) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| {
            v.as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>().join(","))
        })
        .unwrap_or_default()
}
