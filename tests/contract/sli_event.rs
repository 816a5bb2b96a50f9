//! Runner events (SLI events) against the sli-event schema and the event parser, both ways.

use super::*;

use toolgate::budget::events as runner_events;

use crate::records::{T0, new_id};

const SLI_EVENT: &str = "sli-event.schema.json";

/// The clock of the budget tests: an hour after [`T0`].
pub(crate) const NOW: i64 = T0 + 3_600_000;

/// `NOW` shifted by `secs` seconds, as RFC 3339.
pub(crate) fn at(secs: i64) -> String {
    rfc3339(NOW + secs * 1000)
}

/// Events `events::parse` accepts, each with the caller's tenant (`None`: the admin token).
pub(crate) fn events_accepted() -> Vec<(&'static str, Option<&'static str>, Value)> {
    vec![
        (
            "job start with every tag",
            Some("acme"),
            json!({"id": "e1", "type": "job_started", "job_id": "j1", "kind": "publish",
                   "scheduled_at": at(-600), "started_at": at(-420),
                   "tags": {"client_id": "acme", "platform": "instagram", "lane": "api", "action_type": "publish"}}),
        ),
        (
            "job start as the pipeline derives it",
            Some("acme"),
            json!({"id": "job:j2", "type": "job_started", "job_id": "j2", "kind": "engagement_ingest",
                   "scheduled_at": at(-60), "started_at": rfc3339(NOW),
                   "tags": {"platform": "instagram", "lane": "browser", "action_type": "other"}}),
        ),
        (
            "job started before it was due, offset and fraction",
            Some("acme"),
            json!({"id": "e3", "type": "job_started", "job_id": "j3", "kind": "nightly",
                   "scheduled_at": "2026-04-24T05:00:00.5+02:00", "started_at": "2026-04-24T02:59:00Z"}),
        ),
        (
            "episode with a side-effect count, no finished_at",
            Some("acme"),
            json!({"id": "e4", "type": "episode_finished", "episode_id": "ep1", "outcome": "completed", "side_effects": 3}),
        ),
        (
            "episode without side effects, finished_at null, tags null",
            Some("acme"),
            json!({"id": "e5", "type": "episode_finished", "episode_id": "ep2", "outcome": "human_intervention",
                   "side_effects": false, "finished_at": null, "tags": null}),
        ),
        (
            "failed episode, zero side effects",
            Some("acme"),
            json!({"id": "e6", "type": "episode_finished", "episode_id": "ep3", "outcome": "failed",
                   "side_effects": 0, "finished_at": at(-5)}),
        ),
        (
            "post verified by key",
            Some("acme"),
            json!({"id": "e7", "type": "post_verified", "idempotency_key": "k1",
                   "published_at": at(-900), "visible_at": at(-840)}),
        ),
        (
            "post not found, by audit id",
            Some("acme"),
            json!({"id": "e8", "type": "post_verified", "audit_id": new_id(), "idempotency_key": null,
                   "published_at": at(-900), "visible_at": null}),
        ),
        (
            "inbound visible",
            Some("acme"),
            json!({"id": "e9", "type": "inbound_visible", "event_id": "m1", "created_at": at(-400), "visible_at": at(-100),
                   "tags": {"lane": null, "action_type": null, "client_id": null}}),
        ),
        (
            "auto reply",
            Some("acme"),
            json!({"id": "e10", "type": "auto_reply_sent", "event_id": "m1", "created_at": at(-400), "sent_at": at(-30)}),
        ),
        (
            "wrong account, own tenant named, unknown members ignored",
            Some("acme"),
            json!({"id": "e11", "type": "wrong_account_detected", "tenant": "acme", "account": "b-ig",
                   "detail": "liked from the wrong page", "at": at(-1), "severity": "high",
                   "tags": {"platform": "instagram", "campaign": "spring"}}),
        ),
        (
            "dependency incident by the admin token",
            None,
            json!({"id": "e12", "type": "dependency_incident", "tenant": "acme", "platform": "instagram",
                   "start": at(-3000), "end": at(-2000)}),
        ),
        (
            "tenant null with a tenant token, a zero-length incident",
            Some("acme"),
            json!({"id": "e13", "type": "dependency_incident", "tenant": null, "platform": "x",
                   "start": at(-10), "end": at(-10)}),
        ),
        (
            "a time up to 5 minutes ahead, 512-byte strings",
            Some("acme"),
            json!({"id": "i".repeat(512), "type": "inbound_visible", "event_id": "m".repeat(512),
                   "created_at": at(299), "visible_at": at(299)}),
        ),
    ]
}

/// Events both `events::parse` and the schema reject.
fn events_rejected_by_both() -> Vec<(&'static str, Value)> {
    let good = json!({"id": "x", "type": "post_verified", "audit_id": "a1", "published_at": at(-60), "visible_at": at(-30)});
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        v
    };
    let without = |k: &str| with(&|v| drop(v.as_object_mut().unwrap().remove(k)));
    vec![
        ("not an object", json!([good.clone()])),
        ("a string", json!("post_verified")),
        ("no id", without("id")),
        ("empty id", with(&|v| v["id"] = json!(""))),
        ("numeric id", with(&|v| v["id"] = json!(7))),
        (
            "id over 512 bytes",
            with(&|v| v["id"] = json!("x".repeat(513))),
        ),
        ("no type", without("type")),
        (
            "unknown type",
            with(&|v| v["type"] = json!("post_published")),
        ),
        ("type null", with(&|v| v["type"] = Value::Null)),
        ("empty tenant", with(&|v| v["tenant"] = json!(""))),
        ("numeric tenant", with(&|v| v["tenant"] = json!(1))),
        ("tags an array", with(&|v| v["tags"] = json!(["api"]))),
        ("tags a string", with(&|v| v["tags"] = json!("api"))),
        (
            "unknown lane",
            with(&|v| v["tags"] = json!({"lane": "API"})),
        ),
        (
            "unknown action",
            with(&|v| v["tags"] = json!({"action_type": "share"})),
        ),
        (
            "empty client id",
            with(&|v| v["tags"] = json!({"client_id": ""})),
        ),
        (
            "numeric platform",
            with(&|v| v["tags"] = json!({"platform": 3})),
        ),
        ("post without audit_id or key", without("audit_id")),
        (
            "post with both null",
            with(&|v| {
                v["audit_id"] = Value::Null;
                v["idempotency_key"] = Value::Null;
            }),
        ),
        (
            "post with an empty key only",
            with(&|v| {
                v.as_object_mut().unwrap().remove("audit_id");
                v["idempotency_key"] = json!("");
            }),
        ),
        ("post without visible_at", without("visible_at")),
        ("post without published_at", without("published_at")),
        (
            "visible_at not a time",
            with(&|v| v["visible_at"] = json!("soon")),
        ),
        (
            "published_at a date only",
            with(&|v| v["published_at"] = json!("2026-04-24")),
        ),
        (
            "published_at without offset",
            with(&|v| v["published_at"] = json!("2026-04-24T03:00:00")),
        ),
        (
            "published_at epoch millis",
            with(&|v| v["published_at"] = json!(NOW)),
        ),
        (
            "job start without started_at",
            json!({"id": "x", "type": "job_started", "job_id": "j", "kind": "publish", "scheduled_at": at(-60)}),
        ),
        (
            "job start without kind",
            json!({"id": "x", "type": "job_started", "job_id": "j", "scheduled_at": at(-60), "started_at": at(0)}),
        ),
        (
            "job start with an empty job id",
            json!({"id": "x", "type": "job_started", "job_id": "", "kind": "publish", "scheduled_at": at(-60), "started_at": at(0)}),
        ),
        (
            "episode outcome unknown",
            json!({"id": "x", "type": "episode_finished", "episode_id": "e", "outcome": "meh", "side_effects": 1}),
        ),
        (
            "episode without side_effects",
            json!({"id": "x", "type": "episode_finished", "episode_id": "e", "outcome": "completed"}),
        ),
        (
            "episode with negative side effects",
            json!({"id": "x", "type": "episode_finished", "episode_id": "e", "outcome": "completed", "side_effects": -1}),
        ),
        (
            "episode with side effects as text",
            json!({"id": "x", "type": "episode_finished", "episode_id": "e", "outcome": "completed", "side_effects": "yes"}),
        ),
        (
            "episode with a fractional count",
            json!({"id": "x", "type": "episode_finished", "episode_id": "e", "outcome": "completed", "side_effects": 1.5}),
        ),
        (
            "episode without episode_id",
            json!({"id": "x", "type": "episode_finished", "outcome": "completed", "side_effects": true}),
        ),
        (
            "episode finished_at not a time",
            json!({"id": "x", "type": "episode_finished", "episode_id": "e", "outcome": "completed", "side_effects": true, "finished_at": "today"}),
        ),
        (
            "inbound without visible_at",
            json!({"id": "x", "type": "inbound_visible", "event_id": "m", "created_at": at(-60)}),
        ),
        (
            "inbound with visible_at null",
            json!({"id": "x", "type": "inbound_visible", "event_id": "m", "created_at": at(-60), "visible_at": null}),
        ),
        (
            "inbound created_at not a time",
            json!({"id": "x", "type": "inbound_visible", "event_id": "m", "created_at": "yesterday", "visible_at": at(0)}),
        ),
        (
            "auto reply without sent_at",
            json!({"id": "x", "type": "auto_reply_sent", "event_id": "m", "created_at": at(-60)}),
        ),
        (
            "auto reply with visible_at instead of sent_at",
            json!({"id": "x", "type": "auto_reply_sent", "event_id": "m", "created_at": at(-60), "visible_at": at(0)}),
        ),
        (
            "wrong account without detail",
            json!({"id": "x", "type": "wrong_account_detected", "account": "a"}),
        ),
        (
            "wrong account with an empty account",
            json!({"id": "x", "type": "wrong_account_detected", "account": "", "detail": "d"}),
        ),
        (
            "wrong account with at not a time",
            json!({"id": "x", "type": "wrong_account_detected", "account": "a", "detail": "d", "at": 5}),
        ),
        (
            "incident without end",
            json!({"id": "x", "type": "dependency_incident", "platform": "instagram", "start": at(-60)}),
        ),
        (
            "incident without platform",
            json!({"id": "x", "type": "dependency_incident", "start": at(-60), "end": at(0)}),
        ),
    ]
}

/// Events the parser rejects and the schema cannot: each rule is in the schema's description
/// and proto/README.md ("Runner events"), named by the phrase given here.
fn events_rejected_by_the_parser_only()
-> Vec<(&'static str, Option<&'static str>, Value, &'static str)> {
    vec![
        (
            "the admin token without a tenant",
            None,
            json!({"id": "x", "type": "wrong_account_detected", "account": "a", "detail": "d"}),
            "admin token",
        ),
        (
            "another tenant named with a tenant token",
            Some("acme"),
            json!({"id": "x", "type": "wrong_account_detected", "tenant": "other", "account": "a", "detail": "d"}),
            "own tenant",
        ),
        (
            "more than 5 minutes ahead",
            Some("acme"),
            json!({"id": "x", "type": "auto_reply_sent", "event_id": "m", "created_at": at(301), "sent_at": at(400)}),
            "5 minutes",
        ),
        (
            "an incident ending before it starts",
            Some("acme"),
            json!({"id": "x", "type": "dependency_incident", "platform": "instagram", "start": at(-60), "end": at(-120)}),
            "before its `start`",
        ),
        (
            "a 300-character id of 600 bytes",
            Some("acme"),
            json!({"id": "é".repeat(300), "type": "wrong_account_detected", "account": "a", "detail": "d"}),
            "in bytes",
        ),
        (
            "a side-effect count written with a fraction",
            Some("acme"),
            json!({"id": "x", "type": "episode_finished", "episode_id": "e", "outcome": "completed", "side_effects": 2.0}),
            "without a fraction",
        ),
    ]
}

#[test]
fn sli_event_schema_and_parser_agree() {
    for (what, caller, v) in events_accepted() {
        if let Err(e) = runner_events::parse(&v, caller, NOW) {
            panic!("the parser rejects {what}: {e}\n{v:#}");
        }
        schema::assert_valid(SLI_EVENT, &v);
    }
    for (what, v) in events_rejected_by_both() {
        for caller in [Some("acme"), None] {
            let mut v = v.clone();
            if caller.is_none() && v.get("tenant").is_none() && v.is_object() {
                v["tenant"] = json!("acme");
            }
            assert!(
                runner_events::parse(&v, caller, NOW).is_err(),
                "the parser accepts {what}: {v:#}"
            );
        }
        assert!(
            !schema::is_valid(SLI_EVENT, &v),
            "the schema accepts {what}: {v:#}"
        );
    }
    let readme = read("proto/README.md");
    let description = schema::schema_json(SLI_EVENT)["description"]
        .as_str()
        .unwrap()
        .to_string();
    for (what, caller, v, phrase) in events_rejected_by_the_parser_only() {
        assert!(
            runner_events::parse(&v, caller, NOW).is_err(),
            "the parser accepts {what}"
        );
        schema::assert_valid(SLI_EVENT, &v);
        assert!(
            readme.contains(phrase) && description.contains(phrase),
            "{what}: proto/README.md and the schema's description must say {phrase:?}"
        );
    }
    // The request body: an array of events.
    let batch: Vec<Value> = events_accepted().into_iter().map(|(_, _, v)| v).collect();
    schema::assert_valid(&format!("{ADMIN}#/$defs/events_request"), &json!(batch));
    schema::assert_invalid(
        &format!("{ADMIN}#/$defs/events_request"),
        &json!({"events": batch}),
    );
}

/// The schema's enums are the parser's: event types, lanes and actions.
#[test]
fn sli_event_schema_enums_are_the_parser_enums() {
    // Listed once (and checked for exhaustiveness) in slo/enums.rs's test.
    let names: BTreeSet<String> = ALL_EVENT_KINDS
        .iter()
        .map(|k| wire(k).as_str().unwrap().to_string())
        .collect();
    assert_eq!(schema_enum(SLI_EVENT, "/properties/type"), names);
    let s = schema::schema_json(SLI_EVENT);
    for name in &names {
        assert!(
            s["$defs"].get(name.as_str()).is_some(),
            "proto/{SLI_EVENT} has no $defs/{name}"
        );
    }
    let lanes: BTreeSet<String> = [Lane::Api, Lane::Browser]
        .iter()
        .map(|l| wire(l).as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        schema_enum(SLI_EVENT, "/properties/tags/properties/lane"),
        lanes
    );
    let actions: BTreeSet<String> = [
        Action::Publish,
        Action::Dm,
        Action::Comment,
        Action::Like,
        Action::Other,
    ]
    .iter()
    .map(|a| wire(a).as_str().unwrap().to_string())
    .collect();
    assert_eq!(
        schema_enum(SLI_EVENT, "/properties/tags/properties/action_type"),
        actions
    );
}
