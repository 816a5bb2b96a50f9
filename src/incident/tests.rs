use super::bundle::{self, Collected, Options};
use super::*;
use crate::budget::Band;
use crate::call::FailureClass;
use crate::config::{Action, Lane};
use crate::journal::{AuditRecord, HardStopKind, Outcome, Proof, RecordKind};
use serde_json::Value;

const T0: Millis = 1_800_000_000_000;
const MIN: i64 = 60_000;

fn engine() -> Engine {
    Engine::new(
        crate::slo::parse(
            "version: 1
defaults: {min_events: 5}
alerts:
  - {severity: page, long: 1h, short: 5m, burn_rate: 2}
slos:
  - {id: PUB, name: publish api, target: 0.9, paging: true, sli: {source: tool_calls, filter: {action_type: [publish], lane: [api]}}}
  - {id: SAFE, name: safety, target: 1.0, min_events: 1, sli: {source: safety}}
",
            "t.yml",
        )
        .unwrap(),
    )
}

fn rec(seq: u64, at: Millis, tenant: &str, ok: bool) -> AuditRecord {
    let outcome = if ok {
        Outcome::Success
    } else {
        Outcome::ErrorResult
    };
    let mut r = AuditRecord::new(
        format!("id{seq}"),
        rfc3339(at),
        RecordKind::Call,
        "a__publish_post",
        outcome,
    );
    r.seq = seq;
    r.tenant = Some(tenant.into());
    r.platform = Some("demo".into());
    r.lane = Some(Lane::Api);
    r.action = Some(Action::Publish);
    r.side_effect = true;
    r.idempotency_key = Some(format!("k{seq}"));
    if ok {
        r.proof = Proof {
            post_id: Some("p".into()),
            ..Default::default()
        };
    } else {
        r.failure_class = Some(FailureClass::PlatformRejected);
        r.reason = Some("upstream error result: REJECT".into());
    }
    r
}

fn stop(tenant: &str, at: Millis, cleared: Option<Millis>) -> HardStop {
    let mut s = HardStop::new(
        HardStopKind::WrongAccount,
        Some(tenant.into()),
        Some("b-1".into()),
        None,
        "account b-1 belongs to another tenant".into(),
        "0190a0a0-0000-7000-8000-000000000000",
        at,
    );
    s.id = format!("stop-{tenant}");
    if let Some(c) = cleared {
        s.cleared_at = Some(rfc3339(c));
        s.cleared_by = Some("ops".into());
        s.clear_reason = Some("fixed".into());
    }
    s
}

/// 10 good then 10 bad publishes of tenant a, ticking every minute: a page episode opens.
fn paging_engine() -> Engine {
    let mut e = engine();
    for i in 0..20u64 {
        let at = T0 + i as i64 * 1000;
        e.observe_record(&rec(i + 1, at, "a", i < 10));
    }
    e.tick(T0 + MIN);
    e.note_band(Band::Red, vec!["PUB RED".into()], T0 + MIN);
    for i in 0..30u64 {
        e.observe_record(&rec(100 + i, T0 + 3 * MIN, "b", true));
    }
    e.tick(T0 + 70 * MIN);
    e
}

#[test]
fn lists_hard_stops_page_alerts_and_dependency_incidents_in_start_order() {
    let mut e = paging_engine();
    let dep = crate::budget::events::parse(
        &serde_json::json!({"id": "outage-1", "type": "dependency_incident", "platform": "demo",
            "start": rfc3339(T0 - 10 * MIN), "end": rfc3339(T0 - 5 * MIN)}),
        Some("b"),
        T0,
    )
    .unwrap();
    e.observe_event(&dep, 1);
    let stops = [stop("a", T0 + 30_000, Some(T0 + 2 * MIN))];
    let now = T0 + 80 * MIN;
    let all = list(&e, &stops, &Scope::All, now);
    let ids: Vec<&str> = all.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "dep-b:outage-1",
            "hs-stop-a",
            &format!("page-PUB-{}", T0 + MIN)
        ]
    );
    let page = &all[2];
    assert_eq!(page.kind, Kind::PageAlert);
    assert_eq!(page.end_ms, Some(T0 + 70 * MIN));
    assert_eq!(page.tenants, ["a"]);
    assert!(
        page.trigger.contains("platform_rejected"),
        "{}",
        page.trigger
    );
    assert_eq!(page.related, ["hs-stop-a"]);
    let hs = &all[1];
    assert!(hs.postmortem_required, "{:?}", hs.postmortem_reasons);
    assert_eq!(hs.duration_s, 90);
    // The hard stop's window holds the minute of the 10 failures: PUB lost 10 of 5 allowed.
    let pub_ = hs.budget.iter().find(|c| c.slo == "PUB").unwrap();
    assert_eq!((pub_.bad, pub_.consumed_pct), (10, 200.0));
    assert!(!all[0].postmortem_required);
    assert_eq!(find(&e, &stops, &Scope::All, "nope", now), None);

    // Tenant b: its own outage only (it had no failures in the page episode).
    let b = list(&e, &stops, &Scope::Tenant("b".into()), now);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].id, "dep-b:outage-1");
    // Tenant a: its hard stop and the page alert, with its own figures and no reasons.
    let a = list(&e, &stops, &Scope::Tenant("a".into()), now);
    assert_eq!(a.len(), 2);
    assert_eq!(a[1].budget_scope, "tenant:a");
    assert!(!a[1].trigger.contains("platform_rejected"));
}

#[test]
fn a_bundle_orders_its_timeline_and_the_draft_has_the_template() {
    let e = paging_engine();
    let stops = [stop("a", T0 + 30_000, Some(T0 + 2 * MIN))];
    let now = T0 + 80 * MIN;
    let inc = find(
        &e,
        &stops,
        &Scope::All,
        &format!("page-PUB-{}", T0 + MIN),
        now,
    )
    .unwrap();
    let p = bundle::plan(&e, &stops, inc, &Scope::All, Options::default(), now);
    assert_eq!(p.tenants.as_deref(), Some(&["a".to_string()][..]));
    // The window reaches back over the alert's long window and the margin.
    assert_eq!(p.from_ms, T0 + MIN - 60 * MIN - 15 * MIN);
    let doc = bundle::assemble(p, Collected::default(), now);
    let kinds: Vec<&str> = doc["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "hard_stop",
            "alert",
            "band_change",
            "incident",
            "hard_stop",
            "alert",
            "incident"
        ]
    );
    let times: Vec<i64> = doc["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["at_ms"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert_eq!(doc["audit_records"]["truncated"], false);
    let md = markdown::render(&doc);
    for h in [
        "# Postmortem: ",
        "## Summary",
        "## Impact",
        "## Trigger",
        "## Detection",
        "## Resolution",
        "## Timeline",
        "## Root causes",
        "## Action items",
        "| must-do |",
    ] {
        assert!(md.contains(h), "{h} missing:\n{md}");
    }

    // A tenant's bundle has no global alerts or band changes, and only its own records.
    let inc = find(&e, &stops, &Scope::Tenant("a".into()), "hs-stop-a", now).unwrap();
    let p = bundle::plan(
        &e,
        &stops,
        inc,
        &Scope::Tenant("a".into()),
        Options::default(),
        now,
    );
    assert_eq!(p.tenants.as_deref(), Some(&["a".to_string()][..]));
    let doc = bundle::assemble(p, Collected::default(), now);
    assert!(
        doc["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["type"] != "alert" && e["type"] != "band_change")
    );
    assert_eq!(doc["scope"], Value::from("tenant:a"));
}

#[test]
fn markdown_cells_cannot_break_the_table() {
    assert_eq!(markdown_cell("a|b\nc"), "a\\|b c");
}

fn markdown_cell(s: &str) -> String {
    // Through a whole render: a reason with a pipe and a newline stays in its row.
    let doc = serde_json::json!({"incident": {"title": "t"}, "top_failure_reasons": [{"reason": s, "count": 1}]});
    let md = markdown::render(&doc);
    let line = md.lines().find(|l| l.starts_with("- 1 × ")).unwrap();
    line.trim_start_matches("- 1 × ").to_string()
}

#[test]
fn the_engine_keeps_band_changes_and_ticket_episodes() {
    let mut e = Engine::new(
        crate::slo::parse(
            "version: 1
defaults: {min_events: 5}
alerts:
  - {severity: ticket, long: 1h, short: 5m, burn_rate: 2}
slos:
  - {id: PUB, name: publish api, target: 0.9, sli: {source: tool_calls, filter: {action_type: [publish], lane: [api]}}}
",
            "t.yml",
        )
        .unwrap(),
    );
    assert!(
        !e.note_band(Band::Green, vec![], T0),
        "GREEN before any change"
    );
    assert!(e.note_band(Band::Red, vec!["x".into()], T0));
    assert!(!e.note_band(Band::Red, vec!["y".into()], T0 + 1));
    assert!(e.note_band(Band::Yellow, vec![], T0 + 2));
    let bands: Vec<(Band, Band)> = e.band_changes().iter().map(|c| (c.from, c.to)).collect();
    assert_eq!(bands, [(Band::Green, Band::Red), (Band::Red, Band::Yellow)]);
    for i in 0..10u64 {
        e.observe_record(&rec(i + 1, T0, "a", i % 2 == 0));
    }
    e.tick(T0 + MIN);
    e.tick(T0 + 2 * MIN);
    e.tick(T0 + 70 * MIN);
    let eps: Vec<(Severity, Millis, Option<Millis>)> = e
        .episodes()
        .iter()
        .map(|x| (x.severity, x.start_ms, x.end_ms))
        .collect();
    assert_eq!(eps, [(Severity::Ticket, T0 + MIN, Some(T0 + 70 * MIN))]);
    // Ticket episodes are not incidents.
    assert!(list(&e, &[], &Scope::All, T0 + 80 * MIN).is_empty());
}
