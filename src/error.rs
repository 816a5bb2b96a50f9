//! The one exhaustive mapping from gateway failures to JSON-RPC errors, each naming its source.

use std::time::Duration;

use rmcp::model::{ErrorCode, ErrorData};
use serde_json::{Value, json};

use crate::call::{Denial, FailureClass};

/// JSON-RPC code for a call refused by policy (`data.reason` says which rule).
pub const REFUSED_BY_POLICY: i32 = -32090;
/// JSON-RPC code for an idempotency refusal (`key_conflict`, `in_flight`, `in_doubt`).
pub const IDEMPOTENCY: i32 = -32091;
/// JSON-RPC code for an upstream failure (`data.failure_class` says which kind).
pub const UPSTREAM_FAILURE: i32 = -32092;

/// Why an upstream call failed, as seen from the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFault {
    /// No live connection: nothing was sent.
    NotConnected,
    /// The connection broke after the request was sent.
    ConnectionLost,
    /// The upstream answered with something that is not a valid MCP response.
    Protocol,
    /// No answer within the upstream's timeout.
    Timeout(Duration),
    /// The runner cancelled the call.
    Cancelled,
}

impl UpstreamFault {
    /// The policy's failure class: waiting too long is the runner's failure, the rest the tool's.
    pub fn failure_class(self) -> FailureClass {
        match self {
            Self::Timeout(_) | Self::Cancelled => FailureClass::RunnerFailure,
            Self::NotConnected | Self::ConnectionLost | Self::Protocol => FailureClass::ToolFailure,
        }
    }

    /// Whether the request provably never reached the upstream.
    pub fn never_delivered(self) -> bool {
        matches!(self, Self::NotConnected)
    }
}

/// Every way a call can fail inside toolgate. `source` of each is implied by the variant:
/// `Downstream` faults are the caller's, `Upstream` the tool server's, `Internal` ours.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    /// The caller named a tool no upstream, connected or not, can serve (a tool of an upstream
    /// that is down is an [`UpstreamFault::NotConnected`] instead).
    #[error("unknown tool {0:?}: no upstream serves it, connected or not")]
    UnknownTool(String),
    /// The caller sent something malformed (downstream fault).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A gate refused the call before anything was forwarded.
    #[error("refused: {}: {}", .0.reason.as_str(), .0.detail)]
    Refused(Denial),
    /// The upstream failed to answer.
    #[error("upstream {upstream:?}: {detail}")]
    Upstream {
        upstream: String,
        fault: UpstreamFault,
        retryable: bool,
        detail: String,
    },
    /// The upstream answered with a JSON-RPC error; it is passed through unchanged.
    #[error("upstream {upstream:?} returned error {}: {}", .error.code.0, .error.message)]
    UpstreamError { upstream: String, error: ErrorData },
    /// A fault inside toolgate itself.
    #[error("internal error: {0}")]
    Internal(String),
}

impl GatewayError {
    /// The failure class an audit record of this error carries, if any.
    pub fn failure_class(&self) -> Option<FailureClass> {
        match self {
            Self::UnknownTool(_) | Self::InvalidRequest(_) | Self::Refused(_) => {
                Some(FailureClass::PolicyBlocked)
            }
            Self::Upstream { fault, .. } => Some(fault.failure_class()),
            Self::UpstreamError { .. } | Self::Internal(_) => Some(FailureClass::ToolFailure),
        }
    }

    /// The JSON-RPC error the runner receives. `audit_id` names the call's audit record.
    pub fn to_error_data(&self, audit_id: &str) -> ErrorData {
        match self {
            Self::UnknownTool(_) => ErrorData::new(
                ErrorCode::INVALID_PARAMS,
                self.to_string(),
                Some(json!({"reason": "unknown_tool", "retryable": false, "audit_id": audit_id})),
            ),
            Self::InvalidRequest(_) => ErrorData::new(
                ErrorCode::INVALID_PARAMS,
                self.to_string(),
                Some(
                    json!({"reason": "invalid_request", "retryable": false, "audit_id": audit_id}),
                ),
            ),
            Self::Refused(d) => ErrorData::new(
                ErrorCode(if d.reason.is_idempotency() {
                    IDEMPOTENCY
                } else {
                    REFUSED_BY_POLICY
                }),
                self.to_string(),
                Some(
                    json!({"reason": d.reason.as_str(), "retryable": d.reason.retryable(), "audit_id": audit_id}),
                ),
            ),
            Self::Upstream {
                upstream,
                fault,
                retryable,
                ..
            } => ErrorData::new(
                ErrorCode(UPSTREAM_FAILURE),
                self.to_string(),
                Some(json!({
                    "failure_class": fault.failure_class().as_str(),
                    "retryable": retryable,
                    "upstream": upstream,
                    "audit_id": audit_id,
                })),
            ),
            Self::UpstreamError { upstream, error } => {
                let mut error = error.clone();
                // Keep the upstream's own data, and say where the error came from.
                let mut data = match error.data.take() {
                    Some(Value::Object(map)) => map,
                    Some(other) => [("upstream_data".to_string(), other)].into_iter().collect(),
                    None => Default::default(),
                };
                data.insert("upstream".into(), json!(upstream));
                data.insert("audit_id".into(), json!(audit_id));
                error.data = Some(Value::Object(data));
                error
            }
            Self::Internal(_) => ErrorData::new(
                ErrorCode::INTERNAL_ERROR,
                self.to_string(),
                Some(json!({"reason": "internal", "retryable": true, "audit_id": audit_id})),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_faults_map_to_32092_with_class() {
        let e = GatewayError::Upstream {
            upstream: "social".into(),
            fault: UpstreamFault::Timeout(Duration::from_secs(1)),
            retryable: false,
            detail: "no answer within 1s".into(),
        };
        let d = e.to_error_data("a1");
        assert_eq!(d.code.0, UPSTREAM_FAILURE);
        let data = d.data.unwrap();
        assert_eq!(data["failure_class"], "runner_failure");
        assert_eq!(data["upstream"], "social");
        assert_eq!(data["audit_id"], "a1");
        assert_eq!(data["retryable"], false);
        assert_eq!(
            UpstreamFault::NotConnected.failure_class(),
            FailureClass::ToolFailure
        );
        assert!(UpstreamFault::NotConnected.never_delivered());
        assert!(!UpstreamFault::ConnectionLost.never_delivered());
    }

    #[test]
    fn refusals_use_their_own_codes() {
        use crate::call::Reason;
        let d = GatewayError::Refused(Denial::new(Reason::WrongAccount, "b-1 is not yours"))
            .to_error_data("a3");
        assert_eq!(d.code.0, REFUSED_BY_POLICY);
        assert_eq!(d.data.as_ref().unwrap()["reason"], "wrong_account");
        let d = GatewayError::Refused(Denial::new(Reason::InFlight, "busy")).to_error_data("a4");
        assert_eq!(d.code.0, IDEMPOTENCY);
        assert_eq!(d.data.unwrap()["retryable"], true);
    }

    #[test]
    fn upstream_json_rpc_errors_pass_through_with_origin() {
        let e = GatewayError::UpstreamError {
            upstream: "u".into(),
            error: ErrorData::new(ErrorCode::INVALID_PARAMS, "bad", Some(json!(3))),
        };
        let d = e.to_error_data("a2");
        assert_eq!(d.code, ErrorCode::INVALID_PARAMS);
        assert_eq!(d.message, "bad");
        let data = d.data.unwrap();
        assert_eq!(
            (data["upstream_data"].clone(), data["upstream"].clone()),
            (json!(3), json!("u"))
        );
    }
}
