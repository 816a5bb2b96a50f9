use super::*;
use crate::budget::events;
use crate::budget::status::{self, Band, Scope};
use crate::call::FailureClass;
use crate::clock::rfc3339;
use crate::config::{Action, Lane};
use crate::journal::{AuditRecord, Outcome, Proof, RecordKind};
use serde_json::json;

const T0: Millis = 1_800_000_000_000;
const DAY: i64 = 86_400_000;

fn set(extra: &str) -> SloSet {
    crate::slo::parse(
        &format!(
            "version: 1
defaults: {{min_events: 10{extra}}}
alerts:
  - {{severity: page, long: 1h, short: 5m, budget_fraction: 0.02}}
  - {{severity: ticket, long: 1d, short: 2h, budget_fraction: 0.10}}
slos:
  - {{id: PUB, name: publish api, target: 0.99, paging: true, sli: {{source: tool_calls, filter: {{action_type: [publish], lane: [api]}}}}}}
  - {{id: AUD, name: audit, target: 0.999, sli: {{source: audit}}}}
  - {{id: SAFE, name: safety, target: 1.0, min_events: 1, sli: {{source: safety}}}}
  - {{id: JOB, name: jobs, target: 0.99, sli: {{source: event, event: job_started, threshold_by_kind: {{publish: 2m}}}}}}
"
        ),
        "t.yml",
    )
    .unwrap()
}

fn rec(
    seq: u64,
    at: Millis,
    key: &str,
    attempt: u32,
    outcome: Outcome,
    class: Option<FailureClass>,
) -> AuditRecord {
    let mut r = AuditRecord::new(
        format!("id{seq}"),
        rfc3339(at),
        RecordKind::Call,
        "social__publish_post",
        outcome,
    );
    r.seq = seq;
    r.tenant = Some("acme".into());
    r.platform = Some("instagram".into());
    r.lane = Some(Lane::Api);
    r.action = Some(Action::Publish);
    r.side_effect = true;
    r.idempotency_key = Some(key.into());
    r.attempt = Some(attempt);
    r.failure_class = class;
    if outcome == Outcome::Success {
        r.proof = Proof {
            post_id: Some("p".into()),
            ..Default::default()
        };
    }
    r
}

fn counts(e: &Engine, slo: usize, now: Millis) -> Counts {
    e.counts(slo, now - 28 * DAY, now, now)
}

#[test]
fn retries_with_the_same_key_count_once_and_latest_state_decides() {
    let mut e = Engine::new(set(""));
    e.observe_record(&rec(
        1,
        T0,
        "k1",
        1,
        Outcome::Failed,
        Some(FailureClass::ToolFailure),
    ));
    assert_eq!(counts(&e, 0, T0), Counts { good: 0, bad: 1 });
    e.observe_record(&rec(2, T0 + 60_000, "k1", 2, Outcome::Success, None));
    assert_eq!(
        counts(&e, 0, T0 + 60_000),
        Counts { good: 1, bad: 0 },
        "the retry replaced the failure"
    );
    // A replay and a refusal are not attempts.
    let mut replay = rec(3, T0 + 70_000, "k1", 2, Outcome::Success, None);
    replay.replayed = true;
    e.observe_record(&replay);
    e.observe_record(&rec(
        4,
        T0 + 80_000,
        "k2",
        1,
        Outcome::Refused,
        Some(FailureClass::PolicyBlocked),
    ));
    assert_eq!(counts(&e, 0, T0 + 80_000).valid(), 1);
    // SLO-07 and SLO-08 saw the success too.
    assert_eq!(counts(&e, 1, T0 + 80_000), Counts { good: 1, bad: 0 });
    assert_eq!(counts(&e, 2, T0 + 80_000), Counts { good: 1, bad: 0 });
}

#[test]
fn final_failures_are_not_remembered_retryable_ones_are() {
    let mut e = Engine::new(set(""));
    let mut fin = rec(
        1,
        T0,
        "f",
        1,
        Outcome::ErrorResult,
        Some(FailureClass::PlatformRejected),
    );
    fin.reason = Some("upstream error result: rejected".into());
    e.observe_record(&fin);
    assert!(
        e.state().pending.is_empty(),
        "a final rejection needs no pending entry"
    );
    let mut retry = rec(
        2,
        T0,
        "r",
        1,
        Outcome::ErrorResult,
        Some(FailureClass::PlatformRejected),
    );
    retry.reason = Some(format!(
        "{}: busy",
        crate::journal::record::RETRYABLE_ERROR_REASON
    ));
    e.observe_record(&retry);
    e.observe_record(&rec(3, T0 + 1000, "r", 2, Outcome::Success, None));
    assert_eq!(
        counts(&e, 0, T0 + 1000),
        Counts { good: 1, bad: 1 },
        "the retryable failure was replaced"
    );
    assert!(e.state().pending.is_empty());
}

#[test]
fn only_budget_classes_consume_budget() {
    let mut e = Engine::new(set(", budget_classes: [tool_failure]"));
    e.observe_record(&rec(
        1,
        T0,
        "a",
        1,
        Outcome::ErrorResult,
        Some(FailureClass::PlatformRejected),
    ));
    e.observe_record(&rec(
        2,
        T0,
        "b",
        1,
        Outcome::Failed,
        Some(FailureClass::ToolFailure),
    ));
    assert_eq!(counts(&e, 0, T0), Counts { good: 0, bad: 1 });
}

#[test]
fn resolution_and_verification_take_back_in_doubt_failures() {
    let mut e = Engine::new(set(""));
    e.observe_record(&rec(
        1,
        T0,
        "k",
        1,
        Outcome::InDoubt,
        Some(FailureClass::RunnerFailure),
    ));
    assert_eq!(counts(&e, 0, T0).bad, 1);
    let mut op = AuditRecord::new(
        "op".into(),
        rfc3339(T0 + 1000),
        RecordKind::Operator,
        "idempotency.resolve",
        Outcome::Operator,
    );
    op.seq = 2;
    op.tenant = Some("acme".into());
    op.idempotency_key = Some("k".into());
    op.reason = Some("happened: checked".into());
    e.observe_record(&op);
    assert_eq!(counts(&e, 0, T0 + 1000), Counts { good: 1, bad: 0 });
    // A final failure is not taken back by a verification.
    e.observe_record(&rec(
        3,
        T0,
        "final",
        1,
        Outcome::ErrorResult,
        Some(FailureClass::PlatformRejected),
    ));
    let v = events::parse(
        &json!({"id": "v", "type": "post_verified", "idempotency_key": "final", "published_at": rfc3339(T0), "visible_at": rfc3339(T0 + 1000)}),
        Some("acme"),
        T0 + 2000,
    )
    .unwrap();
    e.observe_event(&v, 1);
    assert_eq!(counts(&e, 0, T0 + 2000), Counts { good: 1, bad: 1 });
}

#[test]
fn dependency_incidents_are_excluded_only_when_configured() {
    for (exclude, want_bad) in [(false, 3), (true, 1)] {
        let mut e = Engine::new(set(&format!(", exclude_dependency_incidents: {exclude}")));
        for (i, t) in [T0, T0 + 10 * 60_000, T0 + 20 * 60_000].iter().enumerate() {
            e.observe_record(&rec(
                i as u64 + 1,
                *t,
                &format!("k{i}"),
                1,
                Outcome::Failed,
                Some(FailureClass::ToolFailure),
            ));
        }
        let inc = events::parse(
            &json!({"id": "i1", "type": "dependency_incident", "platform": "instagram",
                    "start": rfc3339(T0 + 5 * 60_000), "end": rfc3339(T0 + 25 * 60_000)}),
            Some("acme"),
            T0 + DAY,
        )
        .unwrap();
        e.observe_event(&inc, 1);
        assert_eq!(
            counts(&e, 0, T0 + 30 * 60_000).bad,
            want_bad,
            "exclude={exclude}"
        );
    }
}

#[test]
fn job_start_latency_by_kind() {
    let mut e = Engine::new(set(""));
    for (i, late_s) in [30, 90, 180].iter().enumerate() {
        let ev = events::parse(
            &json!({"id": format!("j{i}"), "type": "job_started", "job_id": format!("j{i}"), "kind": "publish",
                    "scheduled_at": rfc3339(T0), "started_at": rfc3339(T0 + late_s * 1000)}),
            Some("acme"),
            T0 + DAY,
        )
        .unwrap();
        e.observe_event(&ev, i as u64 + 1);
    }
    assert_eq!(counts(&e, 3, T0 + 600_000), Counts { good: 2, bad: 1 });
}

#[test]
fn bands_follow_budget_edges_and_min_events() {
    // 0.99 target: 100 events allow 1 failure. Band edges: <50% left YELLOW, <20% RED.
    let band_with = |good: u64, bad: u64| {
        let mut e = Engine::new(set(""));
        let mut seq = 0;
        for i in 0..(good + bad) {
            seq += 1;
            let (o, c) = if i < bad {
                (Outcome::Failed, Some(FailureClass::ToolFailure))
            } else {
                (Outcome::Success, None)
            };
            // Spread over two days so no burn alert is involved.
            e.observe_record(&rec(
                seq,
                T0 - 2 * DAY + i as i64 * 60_000,
                &format!("k{i}"),
                1,
                o,
                c,
            ));
        }
        let c = counts(&e, 0, T0);
        status::slo_band(&e, 0, c, T0)
    };
    assert_eq!(band_with(400, 0).0, Band::Green);
    assert_eq!(band_with(398, 2).0, Band::Green, "50% left is still GREEN");
    assert_eq!(band_with(397, 3).0, Band::Yellow, "25% left");
    assert_eq!(band_with(396, 4).0, Band::Red, "0% left");
    let (b, why, low) = band_with(5, 4);
    assert_eq!((b, low), (Band::Green, true), "{why}");
}

#[test]
fn page_alert_fires_on_fast_burn_and_sustains_to_red() {
    let mut e = Engine::new(set(""));
    let mut seq = 0;
    // A healthy history, then 30 minutes at 50% errors.
    for i in 0..2000 {
        seq += 1;
        e.observe_record(&rec(
            seq,
            T0 - 3 * DAY + i * 60_000,
            &format!("ok{i}"),
            1,
            Outcome::Success,
            None,
        ));
    }
    for i in 0..60 {
        seq += 1;
        let (o, c) = if i % 2 == 0 {
            (Outcome::Failed, Some(FailureClass::ToolFailure))
        } else {
            (Outcome::Success, None)
        };
        e.observe_record(&rec(seq, T0 + i * 30_000, &format!("b{i}"), 1, o, c));
    }
    let now = T0 + 30 * 60_000;
    assert!(e.firing(0, now).contains(&Severity::Page));
    e.tick(now);
    let doc = status::document(&e, &Scope::All, &[], &[], 0, now);
    assert_eq!(doc["slos"][0]["alerts"][0]["firing"], true);
    e.tick(now + 16 * 60_000);
    let (band, why, _) = status::slo_band(&e, 0, counts(&e, 0, now), now + 16 * 60_000);
    assert_eq!(band, Band::Red, "{why}");
}

#[test]
fn a_detected_wrong_account_action_exhausts_the_safety_slo() {
    let mut e = Engine::new(set(""));
    e.observe_record(&rec(1, T0, "k", 1, Outcome::Success, None));
    let ev = events::parse(&json!({"id": "w", "type": "wrong_account_detected", "account": "x", "detail": "posted on b's feed", "at": rfc3339(T0)}), Some("acme"), T0).unwrap();
    e.observe_event(&ev, 1);
    let c = counts(&e, 2, T0);
    assert_eq!(c, Counts { good: 1, bad: 1 });
    assert_eq!(status::slo_band(&e, 2, c, T0).0, Band::Red);
}

#[test]
fn snapshot_round_trip_keeps_counts() {
    let mut e = Engine::new(set(""));
    e.observe_record(&rec(
        7,
        T0,
        "k",
        1,
        Outcome::InDoubt,
        Some(FailureClass::RunnerFailure),
    ));
    let ids: Vec<String> = e.set().slos.iter().map(|s| s.id.clone()).collect();
    let snap: EngineState =
        serde_json::from_str(&serde_json::to_string(e.state()).unwrap()).unwrap();
    let mut r = Engine::restore(set(""), snap, &ids);
    assert_eq!(counts(&r, 0, T0), Counts { good: 0, bad: 1 });
    assert_eq!(r.state().audit_seq, 7);
    // The pending in-doubt failure survived: a later success of the key replaces it.
    r.observe_record(&rec(8, T0 + 1000, "k", 2, Outcome::Success, None));
    assert_eq!(counts(&r, 0, T0 + 1000), Counts { good: 1, bad: 0 });
}
