//! Hard stops of every kind against the hard-stop schema, and the safety contract in the README.

use super::*;

use crate::records::{T0, call_record, hard_stop};

#[test]
fn hard_stops_of_every_kind_match_the_schema() {
    let kinds = [
        HardStopKind::WrongAccount,
        HardStopKind::SpamLoop,
        HardStopKind::AuditGap,
        HardStopKind::JournalFailure,
    ];
    for k in kinds {
        match k {
            HardStopKind::WrongAccount
            | HardStopKind::SpamLoop
            | HardStopKind::AuditGap
            | HardStopKind::JournalFailure => {}
        }
    }
    let names: BTreeSet<String> = kinds
        .iter()
        .map(|k| wire(k).as_str().unwrap().to_string())
        .collect();
    assert_eq!(schema_enum(HARD_STOP, "/properties/kind"), names);
    let s = schema::schema_json(HARD_STOP);
    let props: BTreeSet<&String> = s["properties"].as_object().unwrap().keys().collect();
    let audit = call_record(Outcome::Refused, T0);
    for kind in kinds {
        let mut stop = hard_stop(kind, &audit, "acme-ig");
        if matches!(kind, HardStopKind::AuditGap | HardStopKind::JournalFailure) {
            (stop.tenant, stop.account, stop.audit_id) = (None, None, None);
        }
        let v = wire(&stop);
        assert_eq!(
            v.as_object().unwrap().keys().collect::<BTreeSet<_>>(),
            props
        );
        schema::assert_valid(HARD_STOP, &v);
        stop.cleared_at = Some(rfc3339(T0 + 1));
        stop.cleared_by = Some("ops".into());
        stop.clear_reason = Some("checked".into());
        schema::assert_valid(HARD_STOP, &wire(&stop));
        schema::assert_valid(
            &format!("{ADMIN}#/$defs/clear_response"),
            &json!({"cleared": stop}),
        );
    }
    let good = wire(hard_stop(HardStopKind::SpamLoop, &audit, "acme-ig"));
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        v
    };
    for (what, v) in [
        ("unknown kind", broken(&|v| v["kind"] = json!("rate_limit"))),
        (
            "spam loop without target",
            broken(&|v| v["target"] = Value::Null),
        ),
        ("half cleared", broken(&|v| v["cleared_by"] = json!("ops"))),
        (
            "created_ms as text",
            broken(&|v| v["created_ms"] = json!("1")),
        ),
        (
            "missing reason",
            broken(&|v| drop(v.as_object_mut().unwrap().remove("reason"))),
        ),
        ("extra member", broken(&|v| v["severity"] = json!(1))),
    ] {
        assert!(
            !schema::is_valid(HARD_STOP, &v),
            "the schema accepts {what}"
        );
    }
    let mut wrong = wire(hard_stop(HardStopKind::WrongAccount, &audit, "b-ig"));
    wrong["target"] = json!("user-7");
    schema::assert_invalid(HARD_STOP, &wrong);
}

#[test]
fn safety_contract_is_documented() {
    let readme = read("proto/README.md");
    for phrase in [
        "wrong_account",
        "tenant_mismatch",
        "dispatching",
        "failed_retryable",
        "in_doubt",
        "GET /v1/hard-stops",
        "POST /v1/hard-stops/{id}/clear",
        "POST /v1/idempotency/{tenant}/{key}/resolve",
        "401",
        "403",
        "prev_hash",
        "spam_loop",
    ] {
        assert!(
            readme.contains(phrase),
            "proto/README.md does not document {phrase}"
        );
    }
}
