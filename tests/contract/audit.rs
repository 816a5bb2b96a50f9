//! Audit records written by the SQLite journal against the audit-record schema.

use super::*;

use crate::records::{
    T0, call_record, chain_hash, claim, hard_stop, keyed, new_id, operator_record,
    resolve_response, settle, stored_records,
};

/// Writes every kind of record and hard stop through the `Store` trait, then validates what
/// the database file holds, and the admin answers built from it.
#[tokio::test]
async fn journal_records_and_hard_stops_match_their_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let (j, recovery) = SqliteJournal::open(dir.path(), T0).unwrap();
    assert_eq!(recovery.in_doubt, 0);

    // A read-only call and an unknown tool (appended, no key).
    let mut read = call_record(Outcome::Success, T0);
    (read.tool, read.action, read.lane) = (
        "social__list_posts".into(),
        Some(Action::Other),
        Some(Lane::Api),
    );
    (read.side_effect, read.account, read.platform, read.target) = (false, None, None, None);
    (read.capability, read.job_id, read.episode_id) = (None, None, None);
    j.append(read).await.unwrap();
    let mut unknown = AuditRecord::new(
        new_id(),
        rfc3339(T0),
        RecordKind::Call,
        "nope",
        Outcome::Refused,
    );
    unknown.tenant = Some("acme".into());
    unknown.failure_class = Some(FailureClass::PolicyBlocked);
    unknown.reason = Some("unknown tool \"nope\"".into());
    j.append(unknown).await.unwrap();

    // Claimed and settled side effects, one per key state a settle can write.
    assert_eq!(claim(&j, "k-ok", T0).await, 1);
    let mut ok = keyed(call_record(Outcome::Success, T0), "k-ok", 1);
    ok.proof = Proof {
        post_id: Some("p1".into()),
        url: Some("https://social.example/p1".into()),
        screenshot: None,
    };
    let stored = json!({"result": {"content": [], "structuredContent": {"id": "p1"}}});
    settle(&j, "k-ok", KeyState::Succeeded, Some(stored), ok.clone()).await;
    claim(&j, "k-final", T0).await;
    let mut rejected = keyed(call_record(Outcome::ErrorResult, T0), "k-final", 1);
    rejected.failure_class = Some(FailureClass::PlatformRejected);
    rejected.reason = Some("upstream error result: {\"error\":\"rejected\"}".into());
    let stored = json!({"result": {"content": [], "isError": true}});
    settle(&j, "k-final", KeyState::FailedFinal, Some(stored), rejected).await;
    claim(&j, "k-retry", T0).await;
    let mut failed = keyed(call_record(Outcome::Failed, T0), "k-retry", 1);
    failed.failure_class = Some(FailureClass::ToolFailure);
    failed.reason = Some("upstream \"social\" is not connected".into());
    settle(&j, "k-retry", KeyState::FailedRetryable, None, failed).await;
    assert_eq!(claim(&j, "k-retry", T0 + 2_000).await, 2);
    let mut second = keyed(call_record(Outcome::Success, T0 + 2_000), "k-retry", 2);
    second.proof_missing = true;
    settle(
        &j,
        "k-retry",
        KeyState::Succeeded,
        Some(json!({"result": {"content": []}})),
        second,
    )
    .await;
    claim(&j, "k-doubt", T0).await;
    let mut doubt = keyed(call_record(Outcome::InDoubt, T0), "k-doubt", 1);
    doubt.failure_class = Some(FailureClass::RunnerFailure);
    doubt.reason = Some("timed out after it was sent: no answer within 30s".into());
    settle(&j, "k-doubt", KeyState::InDoubt, None, doubt).await;

    // A replay of k-ok.
    let mut replay = keyed(call_record(Outcome::Success, T0 + 3_000), "k-ok", 1);
    (replay.replayed, replay.proof) = (true, ok.proof.clone());
    replay.reason = Some("replayed: key is succeeded".into());
    j.append(replay).await.unwrap();

    // Two hard stops, each with the refusal that tripped it; then an operator clears one.
    let mut wrong = call_record(Outcome::Refused, T0 + 4_000);
    (wrong.account, wrong.platform) = (Some("other-ig".into()), None);
    wrong.failure_class = Some(FailureClass::PolicyBlocked);
    wrong.reason = Some("wrong_account: account \"other-ig\" belongs to another tenant".into());
    let wrong_stop = hard_stop(HardStopKind::WrongAccount, &wrong, "other-ig");
    j.trip(wrong_stop.clone(), wrong).await.unwrap();
    let mut spam = call_record(Outcome::Refused, T0 + 5_000);
    spam.failure_class = Some(FailureClass::PolicyBlocked);
    spam.reason = Some("spam_loop: 3 identical side effects within 3600 s".into());
    let spam_stop = hard_stop(HardStopKind::SpamLoop, &spam, "acme-ig");
    j.trip(spam_stop.clone(), spam).await.unwrap();
    let mut clear = operator_record("hard_stop.clear", T0 + 6_000, "oncall@acme", "checked");
    (clear.target, clear.tenant) = (Some(wrong_stop.id.clone()), wrong_stop.tenant.clone());
    clear.account = wrong_stop.account.clone();
    let cleared = j
        .clear(&wrong_stop.id, "oncall@acme", "checked", clear)
        .await
        .unwrap()
        .expect("the stop was active");
    schema::assert_valid(
        &format!("{ADMIN}#/$defs/clear_response"),
        &json!({"cleared": cleared}),
    );

    // An operator resolves the in-doubt key as happened.
    let mut resolve = operator_record(
        "idempotency.resolve",
        T0 + 7_000,
        "oncall@acme",
        "happened: seen on the platform",
    );
    (resolve.tenant, resolve.idempotency_key) = (Some("acme".into()), Some("k-doubt".into()));
    resolve.proof.url = Some("https://social.example/p2".into());
    let resolved = j
        .resolve(Resolution {
            tenant: "acme".into(),
            key: "k-doubt".into(),
            happened: true,
            result: Some(json!({"result": {"content": [], "isError": false}})),
            audit: resolve,
            now_ms: T0 + 7_000,
        })
        .await
        .unwrap()
        .expect("the key was in doubt");
    schema::assert_valid(
        &format!("{ADMIN}#/$defs/resolve_response"),
        &resolve_response(&resolved),
    );

    // A call left in flight: the next start writes a recovery record and the key is in doubt.
    claim(&j, "k-flight", T0 + 8_000).await;
    drop(j);
    let (j, recovery) = SqliteJournal::open(dir.path(), T0 + 60_000).unwrap();
    assert_eq!(recovery.in_doubt, 1);
    let mut undo = operator_record(
        "idempotency.resolve",
        T0 + 61_000,
        "oncall@acme",
        "not_happened: nothing on the platform",
    );
    (undo.tenant, undo.idempotency_key) = (Some("acme".into()), Some("k-flight".into()));
    let undone = j
        .resolve(Resolution {
            tenant: "acme".into(),
            key: "k-flight".into(),
            happened: false,
            result: None,
            audit: undo,
            now_ms: T0 + 61_000,
        })
        .await
        .unwrap()
        .expect("the recovered key is in doubt");
    assert_eq!(undone.state, KeyState::FailedRetryable);
    schema::assert_valid(
        &format!("{ADMIN}#/$defs/resolve_response"),
        &resolve_response(&undone),
    );
    let report = j.verify().unwrap();
    assert_eq!(report.broken, None);

    // Every stored record matches the schema, and the chain is the README's recipe.
    let records = stored_records(j.path());
    assert_eq!(records.len() as u64, report.checked);
    let mut prev = GENESIS_HASH.to_string();
    for (i, r) in records.iter().enumerate() {
        schema::assert_valid(AUDIT, r);
        assert_eq!(r["seq"], i as u64 + 1, "seq is consecutive from 1");
        assert_eq!(r["prev_hash"], prev.as_str(), "seq {}: prev_hash", i + 1);
        assert_eq!(r["hash"], chain_hash(r).as_str(), "seq {}: hash", i + 1);
        let back: AuditRecord = serde_json::from_value(r.clone()).unwrap();
        assert_eq!(&wire(&back), r, "seq {}: the record round-trips", i + 1);
        prev = r["hash"].as_str().unwrap().to_string();
    }
    let seen = |field: &str| -> BTreeSet<String> {
        records
            .iter()
            .filter_map(|r| r[field].as_str().map(String::from))
            .collect()
    };
    assert_eq!(
        seen("kind"),
        schema_enum(AUDIT, "/properties/kind"),
        "every kind was written"
    );
    assert_eq!(
        seen("outcome"),
        schema_enum(AUDIT, "/properties/outcome"),
        "every outcome was written"
    );
    let recovered = records.iter().find(|r| r["kind"] == "recovery").unwrap();
    assert_eq!(
        (
            &recovered["idempotency_key"],
            &recovered["outcome"],
            &recovered["attempt"]
        ),
        (&json!("k-flight"), &json!("in_doubt"), &json!(1))
    );

    // Hard stops: one cleared, one active, as the admin API shows them.
    let all = j.hard_stops(true).unwrap();
    assert_eq!(all.len(), 2);
    for stop in &all {
        schema::assert_valid(HARD_STOP, &wire(stop));
    }
    let active = j.hard_stops(false).unwrap();
    assert_eq!(active, vec![spam_stop]);
    for stops in [&all, &active] {
        schema::assert_valid(
            &format!("{ADMIN}#/$defs/hard_stops_response"),
            &json!({"hard_stops": stops}),
        );
    }
    let mut still_active = json!({"cleared": active[0]});
    schema::assert_invalid(&format!("{ADMIN}#/$defs/clear_response"), &still_active);
    still_active["cleared"]["cleared_at"] = json!(rfc3339(T0));
    schema::assert_invalid(HARD_STOP, &still_active["cleared"]);
}

#[test]
fn audit_records_of_every_kind_and_outcome_match_the_schema() {
    // Kind and outcome pairs the code writes; the matches fail to compile on a new variant.
    let pairs = [
        (RecordKind::Call, Outcome::Success),
        (RecordKind::Call, Outcome::ErrorResult),
        (RecordKind::Call, Outcome::Failed),
        (RecordKind::Call, Outcome::InDoubt),
        (RecordKind::Call, Outcome::Refused),
        (RecordKind::Operator, Outcome::Operator),
        (RecordKind::Recovery, Outcome::InDoubt),
    ];
    for (kind, outcome) in pairs {
        match kind {
            RecordKind::Call | RecordKind::Operator | RecordKind::Recovery => {}
        }
        match outcome {
            Outcome::Success
            | Outcome::ErrorResult
            | Outcome::Failed
            | Outcome::InDoubt
            | Outcome::Refused
            | Outcome::Operator => {}
        }
    }
    let classes = ALL_FAILURE_CLASSES;
    let lanes = [Lane::Api, Lane::Browser];
    let actions = [
        Action::Publish,
        Action::Dm,
        Action::Comment,
        Action::Like,
        Action::Other,
    ];
    for c in classes {
        match c {
            FailureClass::PolicyBlocked
            | FailureClass::PlatformRejected
            | FailureClass::ToolFailure
            | FailureClass::RunnerFailure
            | FailureClass::VerificationFailed => {}
        }
    }
    for l in lanes {
        match l {
            Lane::Api | Lane::Browser => {}
        }
    }
    for a in actions {
        match a {
            Action::Publish | Action::Dm | Action::Comment | Action::Like | Action::Other => {}
        }
    }
    // The schema's enums are exactly the serialized variants.
    let names = |vs: Vec<Value>| -> BTreeSet<String> {
        vs.into_iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let kinds = [RecordKind::Call, RecordKind::Operator, RecordKind::Recovery];
    for (pointer, values) in [
        ("/properties/kind", names(kinds.iter().map(wire).collect())),
        (
            "/properties/outcome",
            names(pairs.iter().map(|p| wire(p.1)).collect()),
        ),
        (
            "/properties/failure_class",
            names(classes.iter().map(wire).collect()),
        ),
        ("/properties/lane", names(lanes.iter().map(wire).collect())),
        (
            "/properties/action",
            names(actions.iter().map(wire).collect()),
        ),
    ] {
        assert_eq!(schema_enum(AUDIT, pointer), values, "{pointer}");
    }
    // The schema lists exactly the serialized members, all required.
    let sample = wire(AuditRecord::new(
        new_id(),
        rfc3339(T0),
        RecordKind::Call,
        "t",
        Outcome::Success,
    ));
    let members: BTreeSet<String> = sample.as_object().unwrap().keys().cloned().collect();
    let s = schema::schema_json(AUDIT);
    let props: BTreeSet<String> = s["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let required: BTreeSet<String> = s["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!((&props, &required), (&members, &members));

    // One sealed chain through every pair, failure class, lane and action.
    let mut prev = GENESIS_HASH.to_string();
    let mut chain = Vec::new();
    for (i, (kind, outcome)) in pairs.into_iter().enumerate() {
        let mut r = match kind {
            RecordKind::Call => call_record(outcome, T0),
            RecordKind::Operator => operator_record("hard_stop.clear", T0, "ops", "checked"),
            RecordKind::Recovery => {
                let mut r =
                    AuditRecord::new(new_id(), rfc3339(T0), kind, "social__send_dm", outcome);
                (r.tenant, r.side_effect) = (Some("acme".into()), true);
                r.reason =
                    Some("gateway_restart: the call was in flight when toolgate stopped".into());
                keyed(r, "k1", 3)
            }
        };
        if kind == RecordKind::Call {
            r.failure_class = (outcome != Outcome::Success).then_some(classes[i % classes.len()]);
            r.lane = Some(lanes[i % lanes.len()]);
            r.action = Some(actions[i % actions.len()]);
        }
        r.seal(i as u64 + 1, &prev);
        prev = r.hash.clone();
        schema::assert_valid(AUDIT, &wire(&r));
        chain.push(r);
    }
    for c in classes {
        let mut r = call_record(Outcome::Failed, T0);
        r.failure_class = Some(c);
        r.seal(1, GENESIS_HASH);
        schema::assert_valid(AUDIT, &wire(&r));
    }
    for a in actions {
        let mut r = call_record(Outcome::Success, T0);
        r.action = Some(a);
        r.seal(1, GENESIS_HASH);
        schema::assert_valid(AUDIT, &wire(&r));
    }

    // What the schema rejects.
    let good = wire(&chain[0]);
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        v
    };
    let cases: Vec<(&str, Value)> = vec![
        ("seq 0", broken(&|v| v["seq"] = json!(0))),
        (
            "upper-case hash",
            broken(&|v| v["hash"] = json!(v["hash"].as_str().unwrap().to_uppercase())),
        ),
        ("short prev_hash", broken(&|v| v["prev_hash"] = json!("00"))),
        ("id not a UUID", broken(&|v| v["id"] = json!("id1"))),
        (
            "time not RFC 3339",
            broken(&|v| v["time"] = json!("2026-04-24 03:06:40")),
        ),
        (
            "negative latency",
            broken(&|v| v["latency_ms"] = json!(-1.0)),
        ),
        ("attempt 0", broken(&|v| v["attempt"] = json!(0))),
        (
            "unknown outcome",
            broken(&|v| v["outcome"] = json!("partial")),
        ),
        ("unknown kind", broken(&|v| v["kind"] = json!("system"))),
        (
            "unknown failure class",
            broken(&|v| v["failure_class"] = json!("network")),
        ),
        (
            "null proof member",
            broken(&|v| v["proof"] = json!({"url": null})),
        ),
        (
            "unknown proof member",
            broken(&|v| v["proof"] = json!({"id": "p"})),
        ),
        (
            "missing member",
            broken(&|v| drop(v.as_object_mut().unwrap().remove("actor"))),
        ),
        ("extra member", broken(&|v| v["severity"] = json!("high"))),
        (
            "call with outcome operator",
            broken(&|v| v["outcome"] = json!("operator")),
        ),
        ("operator record with a call outcome", {
            let mut v = wire(&chain[5]);
            v["outcome"] = json!("success");
            v
        }),
        ("operator record without actor", {
            let mut v = wire(&chain[5]);
            v["actor"] = Value::Null;
            v
        }),
        ("recovery record that succeeded", {
            let mut v = wire(&chain[6]);
            v["outcome"] = json!("success");
            v
        }),
    ];
    for (what, v) in cases {
        assert!(!schema::is_valid(AUDIT, &v), "the schema accepts {what}");
    }
}
