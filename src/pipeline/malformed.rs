//! A `tools/call` whose params break the protocol's shape: what is wrong, and its refusal.
//!
//! rmcp cannot read such params into a call (`arguments` or `_meta` not an object, a member
//! of the wrong type), so no gate ever sees it; left alone, rmcp answers "method not found"
//! and nothing is recorded. The fast path and the MCP handler refuse it here instead.

use std::sync::Arc;

use rmcp::model::{CallToolRequestParams, ErrorData};
use serde_json::{Map, Value};

use super::resolve::{Resolved, resolve};
use super::{CallCtx, Pipeline};
use crate::call::Caller;
use crate::error::GatewayError;
use crate::journal::Outcome;
use crate::policy::meta::{self, kind};

/// The most of a serde message kept in a refusal: it quotes the offending value, which the
/// runner controls (and which would otherwise land whole in the audit record).
const MAX_DETAIL: usize = 200;

/// What is wrong with the params of a `tools/call`, naming the member, or `None` when they
/// fit (the request failed for another reason, which rmcp answers).
pub fn params_fault(params: &Map<String, Value>) -> Option<String> {
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
    let fits = |p: Map<String, Value>| {
        serde_json::from_value::<CallToolRequestParams>(Value::Object(p)).err()
    };
    let e = fits(params.clone())?;
    // Which member: the first that fails alone beside a valid name.
    let member = params.iter().find_map(|(k, v)| {
        let alone = Map::from_iter([
            ("name".to_string(), Value::from("t")),
            (k.clone(), v.clone()),
        ]);
        (k != "name").then(|| fits(alone)).flatten().map(|_| k)
    });
    let mut detail = match member {
        Some(k) => format!("params.{k} does not fit tools/call: {e}"),
        None => format!("params do not fit tools/call: {e}"),
    };
    if detail.len() > MAX_DETAIL {
        let cut = (0..=MAX_DETAIL)
            .rev()
            .find(|&i| detail.is_char_boundary(i))
            .unwrap_or(0);
        detail.truncate(cut);
        detail.push('…');
    }
    Some(detail)
}

impl Pipeline {
    /// The refusal of a `tools/call` whose params do not fit, or `None` when `params` name no
    /// tool or fit after all: -32602 `invalid_request`, nothing forwarded, no key or other
    /// state touched, and a record like any refusal's (durable for a side effect, batched
    /// otherwise), carrying the idempotency key when the `_meta` is readable.
    ///
    /// `meta` is the request's `_meta` when the transport lifted it out of `params` already
    /// (rmcp does, for the handler).
    pub async fn malformed_call(
        self: &Arc<Self>,
        caller: &Caller,
        params: Option<&Value>,
        meta: Option<&Map<String, Value>>,
    ) -> Option<ErrorData> {
        let params = params?.as_object()?;
        let name = params.get("name")?.as_str()?;
        let detail = params_fault(params)?;
        let mut cx = CallCtx::new(&caller.tenant, name, self.clock.now_ms());
        if let Resolved::Tool {
            upstream, policy, ..
        } = resolve(&self.cfg, &self.upstreams.catalog(), name)
        {
            cx.upstream = Some(self.upstreams.link(upstream).cfg.name.clone());
            cx.policy = Some(policy);
        }
        let meta = params.get("_meta").and_then(Value::as_object).or(meta);
        if cx.side_effect()
            && let Some(m) = meta
            && let Ok(m) = meta::parse(m)
        {
            cx.key = m.idempotency_key;
            cx.job_id = m.job_id;
            cx.episode_id = m.episode_id;
        }
        let e = GatewayError::InvalidRequest(detail.clone());
        let rec = cx.record(
            Outcome::Refused,
            e.failure_class(),
            Some(format!("invalid_request: {detail}")),
        );
        tracing::info!(tenant = %cx.tenant, tool = %cx.tool, audit_id = %cx.audit_id, error = %e, "call refused: malformed params");
        let answer = e.to_error_data(&cx.audit_id);
        if cx.side_effect() {
            // In its own task, as every side effect's record: written (or its failure tripping
            // the journal_failure stop) even if the runner hangs up meanwhile.
            let this = self.clone();
            let _ = tokio::spawn(async move {
                if let Err(err) = this.journal.append(rec).await {
                    this.journal_failed(&cx, "a refused side effect", &err)
                        .await;
                }
            })
            .await;
        } else {
            self.journal.append_later(rec);
        }
        Some(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fault(v: Value) -> Option<String> {
        params_fault(v.as_object().unwrap())
    }

    #[test]
    fn names_the_member_that_does_not_fit() {
        assert_eq!(
            fault(json!({"name": "t", "arguments": "x"})).unwrap(),
            "params.arguments must be a JSON object, not a string"
        );
        assert_eq!(
            fault(json!({"name": "t", "arguments": {}, "_meta": [1]})).unwrap(),
            "params._meta must be a JSON object, not an array"
        );
        let f = fault(json!({"name": "t", "arguments": {}, "requestState": 5})).unwrap();
        assert!(
            f.starts_with("params.requestState does not fit tools/call: invalid type"),
            "{f}"
        );
    }

    #[test]
    fn quotes_at_most_a_bounded_detail() {
        let f = fault(json!({"name": "t", "inputResponses": "é".repeat(500_000)})).unwrap();
        assert!(f.len() <= MAX_DETAIL + '…'.len_utf8(), "{}", f.len());
        assert!(f.ends_with('…'));
    }

    #[test]
    fn params_that_fit_are_left_to_rmcp() {
        assert_eq!(fault(json!({"name": "t"})), None);
        assert_eq!(
            fault(json!({"name": "t", "arguments": {"a": 1}, "_meta": {"k": "v"}})),
            None
        );
        assert_eq!(fault(json!({"name": "t", "arguments": null})), None);
    }
}
