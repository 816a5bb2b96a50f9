//! What the pipeline knows about one call, and how an upstream answer becomes a key state,
//! an audit record and proof references.

use std::time::Instant;

use rmcp::model::{CallToolResponse, CallToolResult, RequestMetaObject};
use serde_json::{Value, json};

use crate::call::FailureClass;
use crate::clock::{Millis, rfc3339};
use crate::config::{ProofPointers, ToolPolicy};
use crate::error::{GatewayError, UpstreamFault};
use crate::journal::{AuditRecord, KeyState, Outcome, Proof, RecordKind};

/// Prefix of protocol-reserved `_meta` keys; they describe one hop and are never forwarded.
const RESERVED_META_PREFIX: &str = "io.modelcontextprotocol/";

/// Result `_meta` key naming the call's audit record.
pub const META_AUDIT_ID: &str = "toolgate/audit_id";
/// Result `_meta` key naming the upstream that served the call.
pub const META_UPSTREAM: &str = "toolgate/upstream";
/// Result `_meta` key: true when the result was replayed from the journal.
pub const META_REPLAYED: &str = "toolgate/replayed";
/// Result `_meta` key: the attempt number of the idempotency key.
pub const META_ATTEMPT: &str = "toolgate/attempt";
/// Result `_meta` key, present (true) only when the side effect ran but the journal could not
/// record its outcome: the call has no audit record, and a `journal_failure` hard stop holds.
pub const META_AUDIT_FAILED: &str = "toolgate/audit_failed";

/// Everything known about a call so far; grows as it passes the gates.
#[derive(Debug, Clone)]
pub struct CallCtx {
    pub audit_id: String,
    pub started: Instant,
    pub now_ms: Millis,
    pub tenant: String,
    pub tool: String,
    pub upstream: Option<String>,
    pub policy: Option<ToolPolicy>,
    pub account: Option<String>,
    pub platform: Option<String>,
    pub target: Option<String>,
    pub key: Option<String>,
    pub fingerprint: Option<String>,
    pub attempt: Option<u32>,
    pub job_id: Option<String>,
    pub episode_id: Option<String>,
}

impl CallCtx {
    pub fn new(tenant: &str, tool: &str, now_ms: Millis) -> Self {
        Self {
            audit_id: uuid::Uuid::now_v7().to_string(),
            started: Instant::now(),
            now_ms,
            tenant: tenant.into(),
            tool: tool.into(),
            upstream: None,
            policy: None,
            account: None,
            platform: None,
            target: None,
            key: None,
            fingerprint: None,
            attempt: None,
            job_id: None,
            episode_id: None,
        }
    }

    pub fn side_effect(&self) -> bool {
        self.policy.as_ref().is_some_and(|p| p.side_effect)
    }

    /// The call's audit record with the given ending.
    pub fn record(
        &self,
        outcome: Outcome,
        failure_class: Option<FailureClass>,
        reason: Option<String>,
    ) -> AuditRecord {
        let mut r = AuditRecord::new(
            self.audit_id.clone(),
            rfc3339(self.now_ms),
            RecordKind::Call,
            &self.tool,
            outcome,
        );
        r.tenant = Some(self.tenant.clone());
        r.account = self.account.clone();
        r.platform = self.platform.clone();
        if let Some(p) = &self.policy {
            r.lane = Some(p.lane);
            r.action = Some(p.action);
            r.capability = p.capability.clone();
            r.side_effect = p.side_effect;
        }
        r.target = self.target.clone();
        r.upstream = self.upstream.clone();
        r.idempotency_key = self.key.clone();
        r.fingerprint = self.fingerprint.clone();
        r.attempt = self.attempt;
        r.failure_class = failure_class;
        r.reason = reason;
        r.latency_ms = (self.started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
        r.job_id = self.job_id.clone();
        r.episode_id = self.episode_id.clone();
        r
    }
}

/// How an upstream answer settles a call.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    pub state: KeyState,
    pub outcome: Outcome,
    pub failure_class: Option<FailureClass>,
    pub reason: Option<String>,
    /// What a replay returns: `{"result": ..}` or `{"error": ..}`.
    pub stored: Option<Value>,
    pub proof: Proof,
}

/// Classifies an upstream answer (before toolgate stamps its `_meta`).
pub fn classify(
    answer: &Result<CallToolResponse, GatewayError>,
    pointers: &ProofPointers,
) -> Settled {
    let settled = |state, outcome, failure_class, reason: Option<String>, stored| Settled {
        state,
        outcome,
        failure_class,
        reason,
        stored,
        proof: Proof::default(),
    };
    match answer {
        Ok(CallToolResponse::Complete(r)) if r.is_error != Some(true) => Settled {
            proof: proof(r, pointers),
            ..settled(
                KeyState::Succeeded,
                Outcome::Success,
                None,
                None,
                Some(json!({"result": r})),
            )
        },
        Ok(CallToolResponse::Complete(r)) => {
            let retryable = says_retryable(r);
            let state = if retryable {
                KeyState::FailedRetryable
            } else {
                KeyState::FailedFinal
            };
            let reason = if retryable {
                format!(
                    "{}: {}",
                    crate::journal::record::RETRYABLE_ERROR_REASON,
                    summary(r)
                )
            } else {
                format!("upstream error result: {}", summary(r))
            };
            settled(
                state,
                Outcome::ErrorResult,
                Some(FailureClass::PlatformRejected),
                Some(reason),
                Some(json!({"result": r})),
            )
        }
        Ok(_) => settled(
            KeyState::InDoubt,
            Outcome::InDoubt,
            None,
            Some(
                "upstream answered with an input request or a task; the outcome is not known yet"
                    .into(),
            ),
            None,
        ),
        Err(GatewayError::Upstream { fault, detail, .. }) if fault.never_delivered() => settled(
            KeyState::FailedRetryable,
            Outcome::Failed,
            Some(fault.failure_class()),
            Some(format!("not sent: {detail}")),
            None,
        ),
        Err(GatewayError::Upstream { fault, detail, .. }) => {
            let why = match fault {
                UpstreamFault::Cancelled => "cancelled by the runner after it was sent",
                UpstreamFault::Timeout(_) => "timed out after it was sent",
                _ => "connection lost after it was sent",
            };
            settled(
                KeyState::InDoubt,
                Outcome::InDoubt,
                Some(fault.failure_class()),
                Some(format!("{why}: {detail}")),
                None,
            )
        }
        Err(GatewayError::UpstreamError { error, .. }) => settled(
            KeyState::FailedFinal,
            Outcome::ErrorResult,
            Some(FailureClass::ToolFailure),
            Some(format!(
                "upstream JSON-RPC error {}: {}",
                error.code.0, error.message
            )),
            Some(json!({"error": error})),
        ),
        Err(e) => settled(
            KeyState::FailedRetryable,
            Outcome::Failed,
            e.failure_class(),
            Some(e.to_string()),
            None,
        ),
    }
}

/// An error result that says it may be retried (`retryable: true` in structuredContent or _meta).
fn says_retryable(r: &CallToolResult) -> bool {
    let flag = |v: Option<&Value>| {
        v.and_then(|v| v.get("retryable")).and_then(Value::as_bool) == Some(true)
    };
    flag(r.structured_content.as_ref())
        || r.meta
            .as_ref()
            .is_some_and(|m| m.get("retryable").and_then(Value::as_bool) == Some(true))
}

fn summary(r: &CallToolResult) -> String {
    let text = r
        .structured_content
        .as_ref()
        .map(|v| v.to_string())
        .or_else(|| {
            r.content
                .first()
                .and_then(|c| c.as_text())
                .map(|t| t.text.clone())
        })
        .unwrap_or_default();
    text.chars().take(200).collect()
}

/// Proof references: the tool's pointers into `structuredContent`, else the result's
/// `_meta.proof` object.
pub fn proof(r: &CallToolResult, pointers: &ProofPointers) -> Proof {
    let at = |p: &Option<String>| -> Option<String> {
        let v = r.structured_content.as_ref()?.pointer(p.as_deref()?)?;
        match v {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let from_pointers = Proof {
        post_id: at(&pointers.post_id),
        url: at(&pointers.url),
        screenshot: at(&pointers.screenshot),
    };
    if !from_pointers.is_empty() {
        return from_pointers;
    }
    r.meta
        .as_ref()
        .and_then(|m| m.get("proof"))
        .and_then(|p| serde_json::from_value(p.clone()).ok())
        .unwrap_or_default()
}

/// Adds toolgate's keys to a completed result's `_meta`, leaving the upstream's own keys.
/// `attempt` is set for side effects (with `replayed`).
pub fn stamp(
    response: &mut CallToolResponse,
    audit_id: &str,
    upstream: &str,
    attempt: Option<(u32, bool)>,
) {
    if let CallToolResponse::Complete(result) = response {
        let meta = result.meta.get_or_insert_with(Default::default);
        meta.insert(META_AUDIT_ID.into(), Value::String(audit_id.into()));
        meta.insert(META_UPSTREAM.into(), Value::String(upstream.into()));
        if let Some((attempt, replayed)) = attempt {
            meta.insert(META_ATTEMPT.into(), json!(attempt));
            meta.insert(META_REPLAYED.into(), json!(replayed));
        }
    }
}

/// Drops the hop-by-hop keys of a request `_meta` (protocol-reserved keys and the progress
/// token, which the upstream client sets for its own hop) and keeps everything else.
pub fn hop_meta(mut meta: RequestMetaObject) -> RequestMetaObject {
    meta.0
        .0
        .retain(|k, _| !k.starts_with(RESERVED_META_PREFIX) && k != "progressToken");
    meta
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::ErrorData;

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

    fn ok(structured: Value) -> Result<CallToolResponse, GatewayError> {
        let mut r = CallToolResult::success(vec![]);
        r.structured_content = Some(structured);
        Ok(CallToolResponse::Complete(r))
    }

    fn pointers() -> ProofPointers {
        ProofPointers {
            post_id: Some("/id".into()),
            url: Some("/url".into()),
            screenshot: Some("/proof/shot".into()),
        }
    }

    #[test]
    fn success_extracts_proof() {
        let s = classify(
            &ok(json!({"id": "p1", "url": "https://x/p1", "proof": {"shot": "s.png"}})),
            &pointers(),
        );
        assert_eq!(
            (s.state, s.outcome),
            (KeyState::Succeeded, Outcome::Success)
        );
        assert_eq!(
            s.proof,
            Proof {
                post_id: Some("p1".into()),
                url: Some("https://x/p1".into()),
                screenshot: Some("s.png".into())
            }
        );
        let s = classify(&ok(json!({"other": 1})), &pointers());
        assert!(s.proof.is_empty());
    }

    #[test]
    fn proof_falls_back_to_result_meta() {
        let mut r = CallToolResult::success(vec![]);
        r.meta = Some(serde_json::from_value(json!({"proof": {"url": "https://u"}})).unwrap());
        assert_eq!(proof(&r, &pointers()).url.as_deref(), Some("https://u"));
    }

    #[test]
    fn error_results_and_faults() {
        let mut r = CallToolResult::error(vec![]);
        r.structured_content = Some(json!({"error": "rejected", "retryable": true}));
        let s = classify(&Ok(CallToolResponse::Complete(r.clone())), &pointers());
        assert_eq!(
            (s.state, s.failure_class),
            (
                KeyState::FailedRetryable,
                Some(FailureClass::PlatformRejected)
            )
        );
        r.structured_content = Some(json!({"error": "rejected", "retryable": false}));
        assert_eq!(
            classify(&Ok(CallToolResponse::Complete(r)), &pointers()).state,
            KeyState::FailedFinal
        );
        let fault = |fault| {
            Err(GatewayError::Upstream {
                upstream: "u".into(),
                fault,
                retryable: false,
                detail: "d".into(),
            })
        };
        let s = classify(&fault(UpstreamFault::NotConnected), &pointers());
        assert_eq!(
            (s.state, s.outcome, s.reason.as_deref()),
            (
                KeyState::FailedRetryable,
                Outcome::Failed,
                Some("not sent: d")
            )
        );
        let s = classify(
            &fault(UpstreamFault::Timeout(std::time::Duration::from_secs(1))),
            &pointers(),
        );
        assert_eq!(
            (s.state, s.failure_class),
            (KeyState::InDoubt, Some(FailureClass::RunnerFailure))
        );
        let s = classify(&fault(UpstreamFault::ConnectionLost), &pointers());
        assert_eq!(
            (s.state, s.failure_class),
            (KeyState::InDoubt, Some(FailureClass::ToolFailure))
        );
        let e = Err(GatewayError::UpstreamError {
            upstream: "u".into(),
            error: ErrorData::invalid_params("bad", None),
        });
        let s = classify(&e, &pointers());
        assert_eq!(s.state, KeyState::FailedFinal);
        assert_eq!(s.stored.unwrap()["error"]["code"], -32602);
    }
}
