//! The status document of a fed budget engine against the status schema, and the budget contract in the README.

use super::*;

use toolgate::budget::events as runner_events;
use toolgate::budget::{Engine, Scope, status as budget_status};

use crate::records::{call_record, hard_stop, new_id};
use crate::sli_event::{NOW, at, events_accepted};

/// A publish call record as the pipeline writes it for SLO-01/02.
fn publish_record(seq: u64, secs: i64, key: &str, lane: Lane, outcome: Outcome) -> AuditRecord {
    let mut r = AuditRecord::new(
        new_id(),
        at(secs),
        RecordKind::Call,
        "social__publish_post",
        outcome,
    );
    r.seq = seq;
    r.tenant = Some("acme".into());
    r.account = Some("acme-ig".into());
    r.platform = Some("instagram".into());
    r.lane = Some(lane);
    r.action = Some(Action::Publish);
    r.side_effect = true;
    r.idempotency_key = Some(key.into());
    r.attempt = Some(1);
    match outcome {
        Outcome::Success if lane == Lane::Api => {
            r.proof = Proof {
                post_id: Some(format!("post-{key}")),
                ..Default::default()
            }
        }
        Outcome::Success => {}
        Outcome::Refused => r.failure_class = Some(FailureClass::PolicyBlocked),
        _ => {
            r.failure_class = Some(FailureClass::ToolFailure);
            r.reason = Some("upstream closed the connection".into());
        }
    }
    r
}

/// An engine fed through the library as the gateway feeds it: audit records and runner events
/// of tenant acme (and one of tenant beta).
fn fed_engine() -> Engine {
    let mut e = Engine::new(toolgate::slo::embedded());
    let mut seq = 0;
    let mut next = || {
        seq += 1;
        seq
    };
    for i in 0..30 {
        let outcome = if i % 10 == 3 {
            Outcome::Failed
        } else {
            Outcome::Success
        };
        e.observe_record(&publish_record(
            next(),
            -3000 + i * 60,
            &format!("k{i}"),
            Lane::Api,
            outcome,
        ));
    }
    // A browser publish without proof (SLO-02 requires it), an in-doubt one and a refusal.
    e.observe_record(&publish_record(
        next(),
        -500,
        "b1",
        Lane::Browser,
        Outcome::Success,
    ));
    e.observe_record(&publish_record(
        next(),
        -400,
        "b2",
        Lane::Browser,
        Outcome::InDoubt,
    ));
    e.observe_record(&publish_record(
        next(),
        -300,
        "b3",
        Lane::Api,
        Outcome::Refused,
    ));
    let mut dm = call_record(Outcome::Success, NOW - 200_000);
    dm.seq = next();
    e.observe_record(&dm);
    let mut events: Vec<(Option<&str>, Value)> = events_accepted()
        .into_iter()
        .map(|(_, caller, v)| (caller, v))
        .collect();
    events.push((
        None,
        json!({"id": "b-job", "type": "job_started", "tenant": "beta", "job_id": "bj", "kind": "publish",
               "scheduled_at": at(-1200), "started_at": at(-1190), "tags": {"platform": "tiktok"}}),
    ));
    events.push((
        Some("acme"),
        json!({"id": "v-b2", "type": "post_verified", "idempotency_key": "b2", "published_at": at(-400), "visible_at": at(-100)}),
    ));
    for (n, (caller, v)) in events.into_iter().enumerate() {
        let ev = runner_events::parse(&v, caller, NOW)
            .unwrap_or_else(|err| panic!("event {n} rejected: {err}\n{v:#}"));
        e.observe_event(&ev, n as u64 + 1);
    }
    e.tick(NOW);
    e
}

#[test]
fn status_documents_match_the_schema() {
    let engine = fed_engine();
    let trip = call_record(Outcome::Refused, NOW - 60_000);
    let stop = hard_stop(HardStopKind::WrongAccount, &trip, "b-ig");
    let stops = [stop.clone()];
    let n_slos = engine.set().slos.len();

    // Scope all, with an active hard stop.
    let all = budget_status::document(&engine, &Scope::All, &stops, &stops, 2, NOW);
    schema::assert_valid(STATUS, &all);
    assert_eq!(all["band"], "RED", "{all:#}");
    assert_eq!(all["scope"], "all");
    assert_eq!(all["in_doubt"], 2);
    assert_eq!(all["hard_stops"].as_array().unwrap().len(), 1);
    let slos = all["slos"].as_array().unwrap();
    assert_eq!(slos.len(), n_slos);
    let slo = |id: &str| slos.iter().find(|s| s["id"] == id).unwrap();
    // The document is not trivial: the array members the schema describes are filled.
    let pub_api = slo("SLO-01");
    assert!(pub_api["valid"].as_u64().unwrap() >= 30, "{pub_api:#}");
    for key in [
        "alerts",
        "top_failure_reasons",
        "top_clients",
        "top_platforms",
    ] {
        assert!(
            !pub_api[key].as_array().unwrap().is_empty(),
            "SLO-01 {key} is empty: {pub_api:#}"
        );
    }
    assert!(pub_api["time_to_exhaustion"].is_number(), "{pub_api:#}");
    assert_eq!(
        slo("SLO-07")["band"],
        "RED",
        "the wrong-account event is bad"
    );
    assert!(slo("SLO-05A")["valid"].as_u64().unwrap() >= 1);
    assert!(slo("SLO-06B")["sli"].is_number());

    // A tenant: its own stop, its own client; in_doubt as GET /v1/status sends it (null) and
    // as document() builds it.
    let mut mine = budget_status::document(
        &engine,
        &Scope::Tenant("acme".into()),
        &stops,
        &stops,
        2,
        NOW,
    );
    schema::assert_valid(STATUS, &mine);
    mine["in_doubt"] = Value::Null;
    schema::assert_valid(STATUS, &mine);
    assert_eq!(mine["scope"], "tenant:acme");
    assert_eq!(mine["band"], "RED");
    assert_eq!(mine["hard_stops"].as_array().unwrap().len(), 1);
    // Another tenant sees neither acme's stop nor its clients.
    let beta = budget_status::document(
        &engine,
        &Scope::Tenant("beta".into()),
        &stops,
        &stops,
        2,
        NOW,
    );
    schema::assert_valid(STATUS, &beta);
    assert_eq!(beta["hard_stops"], json!([]));
    for s in beta["slos"].as_array().unwrap() {
        for c in s["top_clients"].as_array().unwrap() {
            assert_eq!(c["client_id"], "beta", "{beta:#}");
        }
    }

    // Without data and without stops: GREEN, no SLI.
    let empty = Engine::new(toolgate::slo::embedded());
    let quiet = budget_status::document(&empty, &Scope::All, &[], &[], 0, NOW);
    schema::assert_valid(STATUS, &quiet);
    assert_eq!(quiet["band"], "GREEN");
    assert!(quiet["slos"][0]["sli"].is_null());
    schema::assert_valid(
        STATUS,
        &budget_status::document(&empty, &Scope::Tenant("acme".into()), &[], &[], 0, NOW),
    );

    // What the schema refuses.
    let broken = |doc: &Value, f: &dyn Fn(&mut Value)| {
        let mut v = doc.clone();
        f(&mut v);
        v
    };
    for (what, v) in [
        (
            "GREEN with a hard stop",
            broken(&all, &|v| v["band"] = json!("GREEN")),
        ),
        (
            "GREEN with a RED SLO",
            broken(&all, &|v| {
                v["hard_stops"] = json!([]);
                v["band"] = json!("GREEN");
            }),
        ),
        (
            "an unknown band",
            broken(&all, &|v| v["band"] = json!("AMBER")),
        ),
        (
            "a missing burn window",
            broken(&all, &|v| {
                v["slos"][0]["burn_rates"]
                    .as_object_mut()
                    .unwrap()
                    .remove("3d");
            }),
        ),
        (
            "an extra SLO member",
            broken(&all, &|v| v["slos"][0]["owner"] = json!("sre")),
        ),
        (
            "in_doubt null for the admin",
            broken(&all, &|v| v["in_doubt"] = Value::Null),
        ),
        (
            "an SLI without events",
            broken(&quiet, &|v| v["slos"][0]["sli"] = json!(1.0)),
        ),
        (
            "a tenant with alerts",
            broken(&mine, &|v| {
                v["slos"][0]["alerts"] = all["slos"][0]["alerts"].clone()
            }),
        ),
        (
            "a tenant with a 5m burn rate",
            broken(&mine, &|v| v["slos"][0]["burn_rates"]["5m"] = json!(0.5)),
        ),
        (
            "a cleared hard stop",
            broken(&all, &|v| {
                v["hard_stops"][0]["cleared_at"] = json!(at(0));
                v["hard_stops"][0]["cleared_by"] = json!("ops");
                v["hard_stops"][0]["clear_reason"] = json!("checked");
            }),
        ),
    ] {
        assert!(!schema::is_valid(STATUS, &v), "the schema accepts {what}");
    }
}

#[test]
fn budget_contract_is_documented() {
    let readme = read("proto/README.md");
    for phrase in [
        "sli-event.schema.json",
        "status.schema.json",
        "POST /v1/events",
        "GET /v1/status",
        "GET /v1/flags",
        "PUT /v1/flags/{capability}",
        "(tenant, id)",
        "job_id",
        "in-doubt",
        "wrong_account_detected",
        "approval_required",
    ] {
        assert!(
            readme.contains(phrase),
            "proto/README.md does not document {phrase}"
        );
    }
}
