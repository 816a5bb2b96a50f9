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

/// Why toolgate refused a call. The first group answers JSON-RPC -32090 (refused by policy),
/// the idempotency group -32091.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    MissingIdempotencyKey,
    InvalidMeta,
    UnknownAccount,
    WrongAccount,
    TenantMismatch,
    TenantQuarantined,
    JournalFailure,
    InvalidTarget,
    SpamLoop,
    HardStop,
    Frozen,
    CanaryOnly,
    FlagDisabled,
    KeyConflict,
    InFlight,
    InDoubt,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingIdempotencyKey => "missing_idempotency_key",
            Self::InvalidMeta => "invalid_meta",
            Self::UnknownAccount => "unknown_account",
            Self::WrongAccount => "wrong_account",
            Self::TenantMismatch => "tenant_mismatch",
            Self::TenantQuarantined => "tenant_quarantined",
            Self::JournalFailure => "journal_failure",
            Self::InvalidTarget => "invalid_target",
            Self::SpamLoop => "spam_loop",
            Self::HardStop => "hard_stop",
            Self::Frozen => "frozen",
            Self::CanaryOnly => "canary_only",
            Self::FlagDisabled => "flag_disabled",
            Self::KeyConflict => "key_conflict",
            Self::InFlight => "in_flight",
            Self::InDoubt => "in_doubt",
        }
    }

    /// Whether this is an idempotency refusal (-32091) rather than a policy one (-32090).
    pub fn is_idempotency(self) -> bool {
        matches!(self, Self::KeyConflict | Self::InFlight | Self::InDoubt)
    }

    /// A wrong-account or cross-tenant attempt: a safety event (SLO-07, §7.2).
    pub fn is_safety_event(self) -> bool {
        matches!(self, Self::WrongAccount | Self::TenantMismatch)
    }

    /// Whether the same call may succeed later without any change on the caller's side.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            Self::InFlight
                | Self::Frozen
                | Self::CanaryOnly
                | Self::FlagDisabled
                | Self::HardStop
                | Self::JournalFailure
        )
    }
}

/// A gate's refusal: the reason code and a sentence for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub reason: Reason,
    pub detail: String,
}

impl Denial {
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}
