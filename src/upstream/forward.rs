//! Forwarding one `tools/call` to its upstream: timeout, cancellation, and honest fault reporting.

use rmcp::RoleClient;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, CallToolResult,
    CancelledNotificationParam, ClientRequest, RequestMetaObject, ServerResult,
};
use rmcp::service::{Peer, PeerRequestOptions, ServiceError};
use tokio_util::sync::CancellationToken;

use super::http::HttpFault;
use super::{Conn, Link, Status, Upstreams};
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
        let answer = match self.conn() {
            None => Err(self.not_connected()),
            Some(Conn::Rmcp(peer)) => self.call_rmcp(&peer, params, meta, ct).await,
            Some(Conn::Http(conn)) => match conn.call_tool(params, meta, ct).await {
                Ok(r) => Ok(r),
                Err(fault) => Err(self.http_fault(fault)),
            },
        }?;
        match answer {
            ServerResult::CallToolResult(r) => Ok(CallToolResponse::Complete(r)),
            ServerResult::InputRequiredResult(r) => Ok(CallToolResponse::InputRequired(r)),
            ServerResult::CreateTaskResult(r) => Ok(CallToolResponse::Task(r)),
            // Older servers may answer a content-free tool call with an empty result.
            ServerResult::EmptyResult(_) => {
                Ok(CallToolResponse::Complete(CallToolResult::success(vec![])))
            }
            other => Err(self.fail(
                UpstreamFault::Protocol,
                format!("unexpected response to tools/call: {}", kind(&other)),
            )),
        }
    }

    /// The error of a call that cannot be sent now because the upstream is not connected
    /// (nothing is sent, so it is retryable), or `None` while it is connected.
    pub fn unreachable(&self) -> Option<GatewayError> {
        self.conn().is_none().then(|| self.not_connected())
    }

    fn not_connected(&self) -> GatewayError {
        self.fail(
            UpstreamFault::NotConnected,
            format!("not connected ({}); retry later", self.down_reason()),
        )
    }

    /// Why the upstream is not connected, for the runner and the audit record.
    fn down_reason(&self) -> String {
        let s = self.state.read().expect("link lock");
        match (s.status, s.last_error.as_deref()) {
            (Status::Backoff, Some(e)) => format!("backoff: {e}"),
            (Status::Connecting, Some(e)) => format!("reconnecting after: {e}"),
            (Status::Connecting, None) => "connecting: not connected yet since start-up".into(),
            (Status::Stopped, _) => "stopped: the gateway is shutting down".into(),
            (status, e) => format!("{status:?}: {}", e.unwrap_or("connection closed")),
        }
    }

    fn fail(&self, fault: UpstreamFault, detail: String) -> GatewayError {
        GatewayError::Upstream {
            upstream: self.cfg.name.clone(),
            fault,
            // Conservative: only a request that never left may be sent again blindly.
            retryable: fault.never_delivered(),
            detail,
        }
    }

    fn http_fault(&self, fault: HttpFault) -> GatewayError {
        match fault {
            HttpFault::NotSent(d) => {
                self.fail(UpstreamFault::NotConnected, format!("not connected: {d}"))
            }
            e @ HttpFault::Expired => self.fail(UpstreamFault::NotConnected, e.to_string()),
            HttpFault::Lost(d) => self.fail(
                UpstreamFault::ConnectionLost,
                format!("connection lost after the call was sent: {d}"),
            ),
            HttpFault::Protocol(d) => self.fail(UpstreamFault::Protocol, d),
            HttpFault::Timeout(timeout) => self.fail(
                UpstreamFault::Timeout(timeout),
                format!("no answer within {timeout:?}"),
            ),
            HttpFault::Cancelled => {
                self.fail(UpstreamFault::Cancelled, "cancelled by the runner".into())
            }
            HttpFault::Rpc(error) => GatewayError::UpstreamError {
                upstream: self.cfg.name.clone(),
                error,
            },
        }
    }

    /// The rmcp client path (child processes).
    async fn call_rmcp(
        &self,
        peer: &Peer<RoleClient>,
        params: CallToolRequestParams,
        meta: RequestMetaObject,
        ct: &CancellationToken,
    ) -> Result<ServerResult, GatewayError> {
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        let timeout = self.cfg.timeout;
        let handle = peer
            .send_cancellable_request(
                request,
                PeerRequestOptions::with_timeout(timeout).with_meta(meta),
            )
            .await
            .map_err(|e| self.fail(UpstreamFault::NotConnected, format!("not connected: {e}")))?;
        let id = handle.id.clone();
        // On timeout rmcp itself sends notifications/cancelled upstream; on a runner's
        // cancellation we send it, so the tool server can stop work nobody waits for.
        let answer = tokio::select! {
            r = handle.await_response() => r,
            _ = ct.cancelled() => {
                let _ = peer
                    .notify_cancelled(CancelledNotificationParam::new(Some(id), Some("cancelled by the runner".into())))
                    .await;
                return Err(self.fail(UpstreamFault::Cancelled, "cancelled by the runner".into()));
            }
        };
        answer.map_err(|e| match e {
            ServiceError::Timeout { timeout } => self.fail(
                UpstreamFault::Timeout(timeout),
                format!("no answer within {timeout:?}"),
            ),
            ServiceError::McpError(error) => GatewayError::UpstreamError {
                upstream: self.cfg.name.clone(),
                error,
            },
            ServiceError::Cancelled { reason } => self.fail(
                UpstreamFault::Cancelled,
                reason.unwrap_or_else(|| "cancelled".into()),
            ),
            e => self.fail(
                UpstreamFault::ConnectionLost,
                format!("connection lost after the call was sent: {e}"),
            ),
        })
    }
}

impl Upstreams {
    /// The error of a call to `tool`, which is not exposed now and may belong to any of the
    /// not-connected upstreams `candidates` (indices, at least one). `data.upstream` names the
    /// first; the message names them all.
    pub fn unreachable(&self, tool: &str, candidates: &[usize]) -> GatewayError {
        let mut e = self.link(candidates[0]).not_connected();
        if let GatewayError::Upstream { detail, .. } = &mut e
            && candidates.len() > 1
        {
            let others: Vec<String> = candidates[1..]
                .iter()
                .map(|&i| {
                    let l = self.link(i);
                    format!("{:?} ({})", l.cfg.name, l.down_reason())
                })
                .collect();
            *detail = format!(
                "{detail}; no prefix attributes {tool:?}, so it may also belong to the \
                 not-connected upstream(s) {}",
                others.join(", ")
            );
        }
        e
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
