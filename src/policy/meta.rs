//! The request `_meta` keys toolgate reads, validated: shape errors are refusals, not panics.

use serde_json::{Map, Value};

use crate::call::{Denial, Reason};

/// `_meta` key carrying the idempotency key of a side effect.
pub const IDEMPOTENCY_KEY: &str = "idempotency_key";

/// The toolgate keys of a request `_meta` (all are forwarded upstream unchanged too).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallMeta {
    pub idempotency_key: Option<String>,
    pub tenant_id: Option<String>,
    pub account_id: Option<String>,
    pub job_id: Option<String>,
    pub episode_id: Option<String>,
    pub scheduled_at: Option<String>,
}

/// Reads and validates toolgate's keys from a request `_meta` object.
pub fn parse(meta: &Map<String, Value>) -> Result<CallMeta, Denial> {
    let text = |k: &str| -> Result<Option<String>, Denial> {
        match meta.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 255 => Ok(Some(s.clone())),
            Some(Value::String(s)) => Err(Denial::new(
                Reason::InvalidMeta,
                format!("_meta.{k} must be 1–255 characters, got {}", s.len()),
            )),
            Some(other) => Err(Denial::new(
                Reason::InvalidMeta,
                format!("_meta.{k} must be a string, got {}", kind(other)),
            )),
        }
    };
    let out = CallMeta {
        idempotency_key: text(IDEMPOTENCY_KEY)?,
        tenant_id: text("tenant_id")?,
        account_id: text("account_id")?,
        job_id: text("job_id")?,
        episode_id: text("episode_id")?,
        scheduled_at: text("scheduled_at")?,
    };
    if let Some(k) = &out.idempotency_key
        && !k.bytes().all(|b| (0x20..=0x7e).contains(&b))
    {
        return Err(Denial::new(
            Reason::InvalidMeta,
            "_meta.idempotency_key must be printable ASCII",
        ));
    }
    if let Some(t) = &out.scheduled_at
        && crate::clock::parse_rfc3339(t).is_none()
    {
        return Err(Denial::new(
            Reason::InvalidMeta,
            "_meta.scheduled_at must be an RFC 3339 timestamp",
        ));
    }
    Ok(out)
}

/// A JSON value's type, as an error message names it ("a string", "an array").
pub(crate) fn kind(v: &Value) -> &'static str {
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

    fn p(v: Value) -> Result<CallMeta, Denial> {
        parse(v.as_object().unwrap())
    }

    #[test]
    fn valid_keys_are_read() {
        let m = p(json!({"idempotency_key": "job-1:post", "tenant_id": "a", "other": 1})).unwrap();
        assert_eq!(m.idempotency_key.as_deref(), Some("job-1:post"));
        assert_eq!(m.tenant_id.as_deref(), Some("a"));
        assert_eq!(p(json!({})).unwrap(), CallMeta::default());
    }

    #[test]
    fn malformed_keys_are_invalid_meta() {
        for bad in [
            json!({"idempotency_key": 5}),
            json!({"idempotency_key": ""}),
            json!({"idempotency_key": "x".repeat(10_000)}),
            json!({"idempotency_key": "tab\there"}),
            json!({"idempotency_key": "é"}),
            json!({"tenant_id": {"a": 1}}),
            json!({"scheduled_at": "yesterday"}),
        ] {
            assert_eq!(
                p(bad.clone()).unwrap_err().reason,
                Reason::InvalidMeta,
                "{bad}"
            );
        }
        assert!(p(json!({"idempotency_key": "x".repeat(255)})).is_ok());
    }
}
