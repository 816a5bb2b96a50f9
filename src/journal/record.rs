//! The audit record: one per tool call (and per operator action), hash-chained in `seq` order.

mod hash;
mod scan;

pub use scan::{Scanned, scan};

use serde::{Deserialize, Serialize};

use crate::call::FailureClass;
use crate::config::{Action, Lane};

/// `prev_hash` of the first record ever written.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// `tool` of the operator record that retention writes when it deletes a prefix of the chain;
/// its `target` is the pruned prefix's head as `SEQ:HASH` (see [`AuditRecord::prune_anchor`]).
pub const PRUNE_TOOL: &str = "audit.prune";

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

impl RecordKind {
    /// The serialised name (as stored in the journal's `kind` column).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Call => "call",
            Self::Operator => "operator",
            Self::Recovery => "recovery",
        }
    }
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

impl Outcome {
    /// The serialised name (as the record's JSON and its filters use it).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::ErrorResult => "error_result",
            Self::Failed => "failed",
            Self::InDoubt => "in_doubt",
            Self::Refused => "refused",
            Self::Operator => "operator",
        }
    }
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
    /// The failure as the status document and incident bundles count it among their top
    /// reasons: the failure class, then the first 80 characters of the reason.
    pub fn failure_summary(&self) -> String {
        let class = self.failure_class.map(|c| c.as_str()).unwrap_or("failed");
        let detail: String = self
            .reason
            .as_deref()
            .unwrap_or("")
            .chars()
            .take(80)
            .collect();
        if detail.is_empty() {
            class.to_string()
        } else {
            format!("{class}: {detail}")
        }
    }

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
    ///
    /// The bytes are exactly [`crate::canonical::to_string`] of the record's JSON without
    /// `hash`, written field by field instead of through a `serde_json::Value` (see
    /// [`hash::write_canonical`]; a unit test holds the two equal).
    pub fn compute_hash(&self) -> String {
        let mut buf = Vec::with_capacity(1024);
        hash::sha256_hex(self, &mut buf)
    }

    /// Whether `hash` seals the record, reusing `buf` for the canonical bytes (verification
    /// of millions of records).
    pub fn hash_matches(&self, buf: &mut Vec<u8>) -> bool {
        hash::matches(self, buf)
    }

    /// For a retention record ([`PRUNE_TOOL`]): the head of the pruned prefix, `(seq, hash)`.
    /// The chain's first kept record has `seq + 1` and `prev_hash == hash`.
    pub fn prune_anchor(&self) -> Option<(u64, String)> {
        if self.kind != RecordKind::Operator || self.tool != PRUNE_TOOL {
            return None;
        }
        parse_anchor(self.target.as_deref()?)
    }

    /// Assigns the chain position and seals the record.
    pub fn seal(&mut self, seq: u64, prev_hash: &str) {
        self.seq = seq;
        self.prev_hash = prev_hash.into();
        self.hash = self.compute_hash();
    }
}

/// Parses `SEQ:HASH` (the output of `toolgate audit anchor`, as seq and hash); the hash is
/// 64 hex digits, returned lower-case.
pub fn parse_anchor(s: &str) -> Option<(u64, String)> {
    let (seq, hash) = s.split_once(':')?;
    let hash = hash.trim().to_ascii_lowercase();
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((seq.trim().parse().ok()?, hash))
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
    let mut buf = Vec::with_capacity(1024);
    for r in records {
        if !r.hash_matches(&mut buf) {
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
    fn outcome_names_are_the_serialised_ones() {
        for o in [
            Outcome::Success,
            Outcome::ErrorResult,
            Outcome::Failed,
            Outcome::InDoubt,
            Outcome::Refused,
            Outcome::Operator,
        ] {
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
    }

    #[test]
    fn kind_names_are_the_serialised_ones() {
        for k in [RecordKind::Call, RecordKind::Operator, RecordKind::Recovery] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
    }

    #[test]
    fn prune_records_name_their_anchor() {
        let mut r = AuditRecord::operator(PRUNE_TOOL, 0, "toolgate", "retention");
        r.target = Some(format!("7:{}", "AB".repeat(32)));
        assert_eq!(r.prune_anchor(), Some((7, "ab".repeat(32))));
        r.tool = "hard_stop.trip".into();
        assert_eq!(r.prune_anchor(), None);
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
