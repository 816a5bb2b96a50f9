//! Request and result `_meta` against their schemas.

use super::*;

#[test]
fn result_meta_schema_names_the_keys_the_pipeline_stamps() {
    use toolgate::pipeline::{META_ATTEMPT, META_AUDIT_ID, META_REPLAYED, META_UPSTREAM};
    let v = validator("result-meta.schema.json");
    let stamped = json!({
        META_AUDIT_ID: "0196f0c2-7a3e-7c1b-9d2e-5f4a3b2c1d0e",
        META_UPSTREAM: "social",
        "demo/seen_meta": {"idempotency_key": "k1"},
    });
    assert_valid(&v, &stamped, "a stamped result _meta");
    for key in [META_AUDIT_ID, META_UPSTREAM] {
        let mut m = stamped.clone();
        m.as_object_mut().unwrap().remove(key);
        assert!(!v.is_valid(&m), "{key} must be required");
    }
    // Side-effect results carry both idempotency keys, always together.
    for replayed in [false, true] {
        let mut side_effect = stamped.clone();
        side_effect[META_REPLAYED] = json!(replayed);
        side_effect[META_ATTEMPT] = json!(2);
        assert_valid(&v, &side_effect, "a side-effect result _meta");
        side_effect[META_ATTEMPT] = json!(0);
        assert!(!v.is_valid(&side_effect), "attempt counts from 1");
        for key in [META_REPLAYED, META_ATTEMPT] {
            let mut m = side_effect.clone();
            m[META_ATTEMPT] = json!(1);
            m.as_object_mut().unwrap().remove(key);
            assert!(!v.is_valid(&m), "{key} alone");
        }
    }
}

#[test]
fn request_meta_schema() {
    let v = validator("request-meta.schema.json");
    let ok = [
        json!({}),
        json!({"idempotency_key": "k1", "tenant_id": "acme"}),
        json!({
            "idempotency_key": "job-42:publish:acme-ig ~!",
            "tenant_id": "acme", "account_id": "acme-ig", "job_id": "j1", "episode_id": "e1",
            "scheduled_at": "2026-05-01T09:30:00Z",
            "progressToken": 7, "vendor/trace": {"id": 1}
        }),
        json!({"idempotency_key": "k".repeat(255), "scheduled_at": "2026-05-01T09:30:00.5+02:00"}),
    ];
    for m in ok {
        assert_valid(&v, &m, "request _meta");
    }
    let bad = [
        json!({"idempotency_key": ""}),
        json!({"idempotency_key": "k".repeat(256)}),
        json!({"idempotency_key": "tab\there"}),
        json!({"idempotency_key": "caf\u{e9}"}),
        json!({"idempotency_key": 42}),
        json!({"tenant_id": 1}),
        json!({"job_id": ""}),
        json!({"account_id": "a".repeat(256)}),
        json!({"scheduled_at": "tomorrow"}),
        json!({"scheduled_at": "2026-05-01 09:30"}),
    ];
    for m in bad {
        assert!(!v.is_valid(&m), "accepted request _meta {m}");
    }
}
