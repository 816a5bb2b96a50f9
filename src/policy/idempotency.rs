//! The idempotency gate: fingerprints and the decision table of a stored key's state.

use serde_json::{Map, Value, json};

use crate::call::{Denial, Reason};
use crate::journal::{KeyRecord, KeyState};

/// What a call with an idempotency key may do.
#[derive(Debug, Clone, PartialEq)]
pub enum Permit {
    /// Run the side effect (first attempt, or again after a provable non-execution).
    Execute,
    /// Answer with the stored result; no upstream call.
    Replay(KeyRecord),
}

/// SHA-256 of the canonical JSON of (exposed tool name, arguments with sorted keys, account).
pub fn fingerprint(tool: &str, args: &Map<String, Value>, account: &str) -> String {
    crate::canonical::sha256_hex(&json!({"tool": tool, "arguments": args, "account": account}))
}

/// The decision table: a stored key's state and fingerprint against the new call's.
pub fn check(stored: Option<&KeyRecord>, fingerprint: &str) -> Result<Permit, Denial> {
    let Some(k) = stored else {
        return Ok(Permit::Execute);
    };
    if k.fingerprint != fingerprint {
        return Err(Denial::new(
            Reason::KeyConflict,
            format!(
                "idempotency key {:?} was used for a different call (tool {:?}); use a new key",
                k.key, k.tool
            ),
        ));
    }
    match k.state {
        KeyState::Dispatching => Err(Denial::new(
            Reason::InFlight,
            format!("a call with key {:?} is in flight", k.key),
        )),
        KeyState::Succeeded | KeyState::FailedFinal => Ok(Permit::Replay(k.clone())),
        KeyState::FailedRetryable => Ok(Permit::Execute),
        KeyState::InDoubt => Err(Denial::new(
            Reason::InDoubt,
            format!(
                "the call with key {:?} may or may not have happened; it is never re-executed blindly: verify it, then resolve the key",
                k.key
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(state: KeyState, fp: &str) -> KeyRecord {
        KeyRecord {
            tenant: "a".into(),
            key: "k".into(),
            fingerprint: fp.into(),
            tool: "t".into(),
            account: None,
            state,
            attempt: 1,
            result: None,
            audit_id: None,
            updated_ms: 0,
        }
    }

    #[test]
    fn decision_table() {
        assert_eq!(check(None, "f"), Ok(Permit::Execute));
        let same = |s| check(Some(&rec(s, "f")), "f");
        assert_eq!(
            same(KeyState::Dispatching).unwrap_err().reason,
            Reason::InFlight
        );
        assert!(matches!(same(KeyState::Succeeded), Ok(Permit::Replay(_))));
        assert!(matches!(same(KeyState::FailedFinal), Ok(Permit::Replay(_))));
        assert_eq!(same(KeyState::FailedRetryable), Ok(Permit::Execute));
        assert_eq!(same(KeyState::InDoubt).unwrap_err().reason, Reason::InDoubt);
        for s in [
            KeyState::Dispatching,
            KeyState::Succeeded,
            KeyState::FailedFinal,
            KeyState::FailedRetryable,
            KeyState::InDoubt,
        ] {
            assert_eq!(
                check(Some(&rec(s, "f")), "g").unwrap_err().reason,
                Reason::KeyConflict,
                "{s:?}"
            );
        }
    }

    #[test]
    fn fingerprint_ignores_key_order_but_not_values() {
        let a: Map<String, Value> =
            serde_json::from_str(r#"{"text":"hi","account_id":"x"}"#).unwrap();
        let b: Map<String, Value> =
            serde_json::from_str(r#"{"account_id":"x","text":"hi"}"#).unwrap();
        let c: Map<String, Value> =
            serde_json::from_str(r#"{"account_id":"x","text":"hi!"}"#).unwrap();
        assert_eq!(fingerprint("t", &a, "x"), fingerprint("t", &b, "x"));
        assert_ne!(fingerprint("t", &a, "x"), fingerprint("t", &c, "x"));
        assert_ne!(fingerprint("t", &a, "x"), fingerprint("u", &a, "x"));
        assert_eq!(fingerprint("t", &a, "x").len(), 64);
    }
}
