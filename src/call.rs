//! Domain types a tool call carries through the gateway: who calls, and how a call can fail.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The authenticated caller of a request: fixed per request from its bearer token (HTTP) or
/// from `--tenant` (stdio), never from anything the request body says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant: Arc<str>,
}

/// The policy's failure classes (§4.2). Only true failures consume error budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// Refused by toolgate on purpose; expected, not a failure.
    PolicyBlocked,
    /// The upstream answered with an error result (auth, content rules, rate limits).
    PlatformRejected,
    /// The upstream was unreachable, crashed or broke the protocol.
    ToolFailure,
    /// Timeout or cancellation.
    RunnerFailure,
    /// A later verification found the side effect not visible.
    VerificationFailed,
}

impl FailureClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PolicyBlocked => "policy_blocked",
            Self::PlatformRejected => "platform_rejected",
            Self::ToolFailure => "tool_failure",
            Self::RunnerFailure => "runner_failure",
            Self::VerificationFailed => "verification_failed",
        }
    }
}
