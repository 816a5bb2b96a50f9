//! A `tools/call` whose params break the protocol's shape: what is wrong, and its refusal.
//!
//! rmcp cannot read such params into a call (`arguments` or `_meta` not an object, a member
//! of the wrong type), so no gate ever sees it; left alone, rmcp answers "method not found"
//! and nothing is recorded. The fast path and the MCP handler refuse it here instead.

use rmcp::model::{CallToolRequestParams, ErrorData};
use serde_json::{Map, Value};

use super::resolve::{Resolved, resolve};
use super::{CallCtx, Pipeline};
use crate::call::Caller;
use crate::error::GatewayError;
use crate::journal::Outcome;

/// What is wrong with the params of a `tools/call`, or `None` when they fit (the request
/// failed for another reason, which rmcp answers).
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

impl Pipeline {
    /// Refuses a `tools/call` of `name` whose params do not fit (`detail` says how): -32602
    /// `invalid_request`, nothing forwarded, and a batched record like an unknown tool's (no
    /// gate ran, no key or other state was touched).
    pub fn malformed(&self, caller: &Caller, name: &str, detail: String) -> ErrorData {
        let mut cx = CallCtx::new(&caller.tenant, name, self.clock.now_ms());
        if let Resolved::Tool {
            upstream, policy, ..
        } = resolve(&self.cfg, &self.upstreams.catalog(), name)
        {
            cx.upstream = Some(self.upstreams.link(upstream).cfg.name.clone());
            cx.policy = Some(policy);
        }
        let e = GatewayError::InvalidRequest(detail);
        self.journal.append_later(cx.record(
            Outcome::Refused,
            e.failure_class(),
            Some(e.to_string()),
        ));
        tracing::info!(tenant = %cx.tenant, tool = %cx.tool, audit_id = %cx.audit_id, error = %e, "call refused: malformed params");
        e.to_error_data(&cx.audit_id)
    }

    /// The refusal of a `tools/call` that rmcp read as a method it does not know (its params
    /// did not fit), or `None` when `params` name no tool or fit after all.
    pub fn malformed_call(&self, caller: &Caller, params: Option<&Value>) -> Option<ErrorData> {
        let params = params?.as_object()?;
        let name = params.get("name")?.as_str()?;
        let detail = params_fault(params)?;
        Some(self.malformed(caller, name, detail))
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
    fn names_the_field_that_is_not_an_object() {
        assert_eq!(
            fault(json!({"name": "t", "arguments": "x"})).unwrap(),
            "params.arguments must be a JSON object, not a string"
        );
        assert_eq!(
            fault(json!({"name": "t", "arguments": {}, "_meta": [1]})).unwrap(),
            "params._meta must be a JSON object, not an array"
        );
        assert!(
            fault(json!({"name": "t", "arguments": {}, "requestState": 5}))
                .unwrap()
                .starts_with("params do not fit tools/call: ")
        );
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
