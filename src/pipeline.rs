//! The one function every `tools/call` runs through, top to bottom: resolve, forward, stamp.
//!
//! The side-effect gates (binding, idempotency, status, spam loop) and the journal slot in
//! between "resolve" and "forward"; every path leaves through `finish`, so each call is
//! recorded exactly once.

use std::sync::Arc;
use std::time::Instant;

use rmcp::model::{CallToolRequestParams, CallToolResponse, ErrorData, RequestMetaObject};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::call::Caller;
use crate::config::{Config, ToolPolicy};
use crate::error::{GatewayError, UpstreamFault};
use crate::upstream::Upstreams;

/// Result `_meta` key naming the call's audit record.
pub const META_AUDIT_ID: &str = "toolgate/audit_id";
/// Result `_meta` key naming the upstream that served the call.
pub const META_UPSTREAM: &str = "toolgate/upstream";
/// Prefix of protocol-reserved `_meta` keys; they describe one hop and are never forwarded.
const RESERVED_META_PREFIX: &str = "io.modelcontextprotocol/";

/// Shared state of the call path.
pub struct Pipeline {
    cfg: Arc<Config>,
    upstreams: Arc<Upstreams>,
}

impl Pipeline {
    pub fn new(cfg: Arc<Config>, upstreams: Arc<Upstreams>) -> Self {
        Self { cfg, upstreams }
    }

    /// Runs one `tools/call` for `caller`. `meta` is the request's `_meta` (rmcp lifts it out
    /// of the params); `ct` fires when the runner cancels the request.
    pub async fn call_tool(
        &self,
        caller: &Caller,
        params: CallToolRequestParams,
        meta: RequestMetaObject,
        ct: CancellationToken,
    ) -> Result<CallToolResponse, ErrorData> {
        let audit_id = Uuid::now_v7().to_string();
        let started = Instant::now();
        let tool = params.name.clone();

        // 1. Resolve: which upstream owns the exposed name, and how is the tool classified?
        let catalog = self.upstreams.catalog();
        let Some(entry) = catalog.get(&tool) else {
            return Err(self.finish_err(
                caller,
                &tool,
                &audit_id,
                started,
                GatewayError::UnknownTool(tool.to_string()),
            ));
        };
        let link = self.upstreams.link(entry.upstream);
        let unclassified;
        let policy = match self.cfg.tools.get(tool.as_ref()) {
            Some(p) => p,
            None => {
                unclassified = ToolPolicy::unclassified(entry.read_only_hint);
                &unclassified
            }
        };

        // 2. Forward with the upstream's own tool name, arguments and `_meta` unchanged.
        let mut forwarded = params;
        forwarded.meta = None;
        forwarded.name = entry.original.to_string().into();
        match link.call(forwarded, hop_meta(meta), &ct).await {
            Ok(mut response) => {
                stamp(&mut response, &audit_id, &link.cfg.name);
                tracing::debug!(tenant = %caller.tenant, %tool, %audit_id, upstream = %link.cfg.name, latency_us = started.elapsed().as_micros() as u64, "call ok");
                Ok(response)
            }
            Err(mut e) => {
                if let GatewayError::Upstream {
                    fault, retryable, ..
                } = &mut e
                {
                    // Repeating a read-only call is harmless unless the runner itself gave up.
                    if !policy.side_effect && *fault != UpstreamFault::Cancelled {
                        *retryable = true;
                    }
                }
                Err(self.finish_err(caller, &tool, &audit_id, started, e))
            }
        }
    }

    /// The error path's single exit: log it once and map it to JSON-RPC.
    fn finish_err(
        &self,
        caller: &Caller,
        tool: &str,
        audit_id: &str,
        started: Instant,
        e: GatewayError,
    ) -> ErrorData {
        tracing::info!(tenant = %caller.tenant, %tool, %audit_id, latency_us = started.elapsed().as_micros() as u64, error = %e, "call failed");
        e.to_error_data(audit_id)
    }
}

/// Drops the hop-by-hop keys of a request `_meta` (protocol-reserved keys and the progress
/// token, which the upstream client sets for its own hop) and keeps everything else.
fn hop_meta(mut meta: RequestMetaObject) -> RequestMetaObject {
    meta.0
        .0
        .retain(|k, _| !k.starts_with(RESERVED_META_PREFIX) && k != "progressToken");
    meta
}

/// Adds toolgate's keys to a completed result's `_meta`, leaving the upstream's own keys.
fn stamp(response: &mut CallToolResponse, audit_id: &str, upstream: &str) {
    if let CallToolResponse::Complete(result) = response {
        let meta = result.meta.get_or_insert_with(Default::default);
        meta.insert(META_AUDIT_ID.into(), Value::String(audit_id.into()));
        meta.insert(META_UPSTREAM.into(), Value::String(upstream.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hop_meta_keeps_application_keys_only() {
        let meta: RequestMetaObject = serde_json::from_value(json!({
            "idempotency_key": "k1",
            "progressToken": 7,
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "tenant_id": "acme"
        }))
        .unwrap();
        let kept = serde_json::to_value(hop_meta(meta)).unwrap();
        assert_eq!(kept, json!({"idempotency_key": "k1", "tenant_id": "acme"}));
    }

    #[test]
    fn stamp_adds_keys_without_touching_upstream_meta() {
        let mut r = rmcp::model::CallToolResult::success(vec![]);
        r.meta = Some(serde_json::from_value(json!({"demo/x": 1})).unwrap());
        let mut resp = CallToolResponse::Complete(r);
        stamp(&mut resp, "a1", "social");
        let CallToolResponse::Complete(r) = resp else {
            unreachable!()
        };
        let meta = serde_json::to_value(r.meta.unwrap()).unwrap();
        assert_eq!(
            meta,
            json!({"demo/x": 1, "toolgate/audit_id": "a1", "toolgate/upstream": "social"})
        );
    }
}
