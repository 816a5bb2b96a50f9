//! The audit record's canonical JSON (sorted keys, no whitespace, `hash` left out) written
//! field by field, and its SHA-256: the seal of the hash chain without a `serde_json::Value`.
//!
//! The output is byte-for-byte what [`crate::canonical::to_string`] gives for the record's
//! JSON without `hash` (scalars go through `serde_json`, as `Value`'s `Display` does); the
//! test below compares the two on records with every field set and with none, so a field
//! added to [`AuditRecord`] but not here fails it.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::AuditRecord;

/// Appends `"name":value` (after a comma unless first) to `out`.
fn field<T: Serialize + ?Sized>(out: &mut Vec<u8>, first: bool, name: &str, value: &T) {
    if !first {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    // Writing a derived `Serialize` value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// Writes the canonical JSON of `r` without `hash` into `out` (cleared first). Keys are in
/// byte order, as `canonical::to_string` sorts them.
pub(super) fn write_canonical(r: &AuditRecord, out: &mut Vec<u8>) {
    out.clear();
    out.push(b'{');
    field(out, true, "account", &r.account);
    field(out, false, "action", &r.action);
    field(out, false, "actor", &r.actor);
    field(out, false, "attempt", &r.attempt);
    field(out, false, "capability", &r.capability);
    field(out, false, "episode_id", &r.episode_id);
    field(out, false, "failure_class", &r.failure_class);
    field(out, false, "fingerprint", &r.fingerprint);
    field(out, false, "id", &r.id);
    field(out, false, "idempotency_key", &r.idempotency_key);
    field(out, false, "job_id", &r.job_id);
    field(out, false, "kind", &r.kind);
    field(out, false, "lane", &r.lane);
    field(out, false, "latency_ms", &r.latency_ms);
    field(out, false, "outcome", &r.outcome);
    field(out, false, "platform", &r.platform);
    field(out, false, "prev_hash", &r.prev_hash);
    // `proof` skips its absent members; the present ones in key order.
    out.extend_from_slice(b",\"proof\":{");
    let mut first = true;
    for (name, v) in [
        ("post_id", &r.proof.post_id),
        ("screenshot", &r.proof.screenshot),
        ("url", &r.proof.url),
    ] {
        if let Some(v) = v {
            field(out, first, name, v);
            first = false;
        }
    }
    out.push(b'}');
    field(out, false, "proof_missing", &r.proof_missing);
    field(out, false, "reason", &r.reason);
    field(out, false, "replayed", &r.replayed);
    field(out, false, "seq", &r.seq);
    field(out, false, "side_effect", &r.side_effect);
    field(out, false, "target", &r.target);
    field(out, false, "tenant", &r.tenant);
    field(out, false, "time", &r.time);
    field(out, false, "tool", &r.tool);
    field(out, false, "upstream", &r.upstream);
    out.push(b'}');
}

fn digest(r: &AuditRecord, buf: &mut Vec<u8>) -> [u8; 32] {
    write_canonical(r, buf);
    Sha256::digest(buf.as_slice()).into()
}

/// Lower-case hex SHA-256 of the canonical form of `r` (without `hash`).
pub(super) fn sha256_hex(r: &AuditRecord, buf: &mut Vec<u8>) -> String {
    hex::encode(digest(r, buf))
}

/// Whether `r.hash` is the hex SHA-256 of `r`'s canonical form (either letter case).
pub(super) fn matches(r: &AuditRecord, buf: &mut Vec<u8>) -> bool {
    let mut stored = [0u8; 32];
    hex::decode_to_slice(r.hash.as_bytes(), &mut stored).is_ok()
        && r.hash.bytes().all(|b| !b.is_ascii_uppercase())
        && stored == digest(r, buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::FailureClass;
    use crate::config::{Action, Lane};
    use crate::journal::record::{GENESIS_HASH, Outcome, Proof, RecordKind};
    use serde_json::Value;

    /// The definition: canonical JSON of the serialised record without `hash`.
    fn reference(r: &AuditRecord) -> String {
        let mut v = serde_json::to_value(r).unwrap();
        if let Value::Object(m) = &mut v {
            m.remove("hash");
        }
        crate::canonical::to_string(&v)
    }

    fn full() -> AuditRecord {
        let mut r = AuditRecord::new(
            "id-\"1\"".into(),
            "2026-01-01T00:00:00.123Z".into(),
            RecordKind::Call,
            "up__publish_post",
            Outcome::ErrorResult,
        );
        r.seq = 42;
        r.tenant = Some("acme\u{e9}".into());
        r.account = Some("acme-1".into());
        r.platform = Some("x".into());
        r.lane = Some(Lane::Browser);
        r.action = Some(Action::Publish);
        r.target = Some("line\nbreak, \"quote\" \\ \u{1}".into());
        r.upstream = Some("up".into());
        r.capability = Some("cap".into());
        r.side_effect = true;
        r.idempotency_key = Some("k".into());
        r.fingerprint = Some("f".into());
        r.attempt = Some(3);
        r.failure_class = Some(FailureClass::PlatformRejected);
        r.reason = Some("rate limited".into());
        r.latency_ms = 41.75;
        r.proof = Proof {
            post_id: Some("p".into()),
            url: Some("https://x/p".into()),
            screenshot: Some("s.png".into()),
        };
        r.proof_missing = true;
        r.replayed = true;
        r.actor = Some("op".into());
        r.job_id = Some("j".into());
        r.episode_id = Some("e".into());
        r.prev_hash = GENESIS_HASH.into();
        r.hash = "ignored".into();
        r
    }

    #[test]
    fn field_by_field_equals_the_canonical_json() {
        let mut buf = Vec::new();
        let empty = AuditRecord::new(
            String::new(),
            String::new(),
            RecordKind::Operator,
            "",
            Outcome::Operator,
        );
        let mut partial = full();
        partial.proof.screenshot = None;
        partial.proof.post_id = None;
        partial.latency_ms = f64::NAN;
        partial.lane = None;
        let mut whole = full();
        whole.latency_ms = 1e21;
        for r in [full(), empty, partial, whole] {
            write_canonical(&r, &mut buf);
            assert_eq!(String::from_utf8(buf.clone()).unwrap(), reference(&r));
            let want = crate::canonical::sha256_hex(&serde_json::from_str(&reference(&r)).unwrap());
            assert_eq!(sha256_hex(&r, &mut buf), want);
        }
    }

    #[test]
    fn matches_needs_the_exact_lower_case_hash() {
        let mut buf = Vec::new();
        let mut r = full();
        r.hash = sha256_hex(&r, &mut buf);
        assert!(matches(&r, &mut buf));
        r.hash = r.hash.to_ascii_uppercase();
        assert!(!matches(&r, &mut buf));
        r.hash = "zz".into();
        assert!(!matches(&r, &mut buf));
    }
}
