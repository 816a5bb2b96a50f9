//! The audit record: one per tool call (and per operator action), hash-chained in `seq` order.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::call::FailureClass;
use crate::config::{Action, Lane};

/// `prev_hash` of the first record ever written.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Prefix of the `reason` of an error result whose upstream said it may be retried: the one
/// kind of answered failure a later attempt of the same key can still replace.
pub const RETRYABLE_ERROR_REASON: &str = "upstream error result (retryable)";

/// What produced a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// A runner's tool call.
    Call,
    /// An operator's action (clearing a hard stop, resolving an in-doubt key, a flag change).
    Operator,
    /// Written at start-up for a call the previous process left in flight.
    Recovery,
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The upstream returned a non-error result.
    Success,
    /// The upstream answered with an error (an `isError` result or a JSON-RPC error).
    ErrorResult,
    /// No usable answer and provably not executed (never delivered).
    Failed,
    /// Sent, but no definitive answer: it may or may not have happened.
    InDoubt,
    /// Refused by toolgate before anything was forwarded.
    Refused,
    /// An operator action.
    Operator,
}

/// Proof references of a side effect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screenshot: Option<String>,
}

impl Proof {
    pub fn is_empty(&self) -> bool {
        self.post_id.is_none() && self.url.is_none() && self.screenshot.is_none()
    }
}

/// An audit record as stored and exported. `seq`, `prev_hash` and `hash` are assigned by the
/// journal writer; everything else by the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub id: String,
    pub seq: u64,
    pub time: String,
    pub kind: RecordKind,
    pub tenant: Option<String>,
    pub account: Option<String>,
    pub platform: Option<String>,
    pub lane: Option<Lane>,
    pub action: Option<Action>,
    pub target: Option<String>,
    pub tool: String,
    pub upstream: Option<String>,
    pub capability: Option<String>,
    pub side_effect: bool,
    pub idempotency_key: Option<String>,
    pub fingerprint: Option<String>,
    pub attempt: Option<u32>,
    pub outcome: Outcome,
    pub failure_class: Option<FailureClass>,
    pub reason: Option<String>,
    pub latency_ms: f64,
    pub proof: Proof,
    pub proof_missing: bool,
    pub replayed: bool,
    /// The operator, for operator records.
    pub actor: Option<String>,
    pub job_id: Option<String>,
    pub episode_id: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRecord {
    /// A record with the required fields; the rest empty.
    pub fn new(id: String, time: String, kind: RecordKind, tool: &str, outcome: Outcome) -> Self {
        Self {
            id,
            seq: 0,
            time,
            kind,
            tenant: None,
            account: None,
            platform: None,
            lane: None,
            action: None,
            target: None,
            tool: tool.into(),
            upstream: None,
            capability: None,
            side_effect: false,
            idempotency_key: None,
            fingerprint: None,
            attempt: None,
            outcome,
            failure_class: None,
            reason: None,
            latency_ms: 0.0,
            proof: Proof::default(),
            proof_missing: false,
            replayed: false,
            actor: None,
            job_id: None,
            episode_id: None,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    /// An operator (or toolgate-on-its-own-behalf) action: `actor` did `action` because `reason`.
    pub fn operator(action: &str, now_ms: crate::clock::Millis, actor: &str, reason: &str) -> Self {
        let mut r = Self::new(
            uuid::Uuid::now_v7().to_string(),
            crate::clock::rfc3339(now_ms),
            RecordKind::Operator,
            action,
            Outcome::Operator,
        );
        r.actor = Some(actor.into());
        r.reason = Some(reason.into());
        r
    }

    /// SHA-256 over the canonical JSON of every field except `hash` (so `prev_hash` and `seq`
    /// are covered: a changed, removed or reordered record breaks the chain).
    pub fn compute_hash(&self) -> String {
        let mut v = serde_json::to_value(self).expect("audit records serialise");
        if let Value::Object(m) = &mut v {
            m.remove("hash");
        }
        crate::canonical::sha256_hex(&v)
    }

    /// Assigns the chain position and seals the record.
    pub fn seal(&mut self, seq: u64, prev_hash: &str) {
        self.seq = seq;
        self.prev_hash = prev_hash.into();
        self.hash = self.compute_hash();
    }
}

/// Why a chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at seq {seq}: {why}")]
pub struct ChainBreak {
    pub seq: u64,
    pub why: String,
}

/// Walks records in order, checking each hash and link. Returns the last (seq, hash) checked.
/// `anchor` is the expected `prev_hash` of the first record (genesis, or a pruned prefix's head).
pub fn verify_chain<I>(
    records: I,
    anchor: Option<(u64, &str)>,
) -> Result<Option<(u64, String)>, ChainBreak>
where
    I: IntoIterator<Item = AuditRecord>,
{
    let mut prev: Option<(u64, String)> = anchor.map(|(s, h)| (s, h.to_string()));
    for r in records {
        if r.compute_hash() != r.hash {
            return Err(ChainBreak {
                seq: r.seq,
                why: "record does not match its hash (a field was changed)".into(),
            });
        }
        if let Some((pseq, phash)) = &prev {
            if r.seq != pseq + 1 {
                return Err(ChainBreak {
                    seq: r.seq,
                    why: format!(
                        "expected seq {} (a record is missing or out of order)",
                        pseq + 1
                    ),
                });
            }
            if &r.prev_hash != phash {
                return Err(ChainBreak {
                    seq: r.seq,
                    why: "prev_hash does not match the previous record's hash".into(),
                });
            }
        }
        prev = Some((r.seq, r.hash));
    }
    Ok(prev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<AuditRecord> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|i| {
                let mut r = AuditRecord::new(
                    format!("id{i}"),
                    "2026-01-01T00:00:00.000Z".into(),
                    RecordKind::Call,
                    "t",
                    Outcome::Success,
                );
                r.tenant = Some("a".into());
                r.seal(i, &prev);
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    #[test]
    fn intact_chain_verifies() {
        let last = verify_chain(chain(5), Some((0, GENESIS_HASH)))
            .unwrap()
            .unwrap();
        assert_eq!(last.0, 5);
    }

    #[test]
    fn tampering_deleting_and_reordering_are_detected() {
        let mut c = chain(5);
        c[2].tenant = Some("b".into());
        assert_eq!(verify_chain(c, None).unwrap_err().seq, 3);
        let mut c = chain(5);
        c.remove(2);
        assert_eq!(verify_chain(c, None).unwrap_err().seq, 4);
        let mut c = chain(5);
        c.swap(1, 2);
        assert_eq!(verify_chain(c, None).unwrap_err().seq, 3);
        let mut c = chain(5);
        c[4].latency_ms = 1.5;
        assert_eq!(verify_chain(c, None).unwrap_err().seq, 5);
        // A wrong anchor is caught at the first record.
        assert_eq!(verify_chain(chain(2), Some((0, "ff"))).unwrap_err().seq, 1);
    }
}
