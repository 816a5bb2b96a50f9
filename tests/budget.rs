//! End-to-end tests of error budgets: failures injected through a real upstream move the
//! bands, the freeze gate follows them, runner events move every SLO, and all of it shows
//! in /v1/status, /metrics and the page.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// SLO file for band tests: 90% target so a few failures move the band; alert tiers that
/// cannot fire at these error ratios (a 90% target burns at most 10×).
const SLOS: &str = "version: 1
defaults: {min_events: 10}
alerts:
  - {severity: page, long: 1h, short: 5m, burn_rate: 14.4}
slos:
  - {id: SLO-01, name: Publish success (API lane), target: 0.9, paging: true, sli: {source: tool_calls, filter: {action_type: [publish], lane: [api]}}}
  - {id: SLO-08, name: Audit completeness, target: 0.5, sli: {source: audit}}
";

const TOOLS: &str = "  a__publish_post: {side_effect: true, action: publish, lane: api, platform: demo, capability: feed_publish, proof: {post_id: /id}}
  a__send_dm: {side_effect: true, action: dm, lane: api, platform: demo, capability: dm_send, target_arg: to, proof: {post_id: /id}}
";

fn gateway() -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("slo.yml"), SLOS).unwrap();
    let cfg = config(&stdio_upstream("a", ""), TOOLS)
        .replace("admin_token_env: TOK_ADMIN", "admin_token_env: TOK_ADMIN\nslo_definitions: {dir}/slo.yml\ncapabilities:\n  feed_publish: {stage: established}\n  dm_send: {stage: new, enabled: true}")
        .replace("  - id: b\n    token_env: TOK_B", "  - id: b\n    token_env: TOK_B\n    canary: true");
    Gateway::start_in(&cfg, dir)
}

async fn status(gw: &Gateway) -> Value {
    let (s, body) = gw.admin("GET", "/v1/status", Some(ADMIN_TOKEN), None).await;
    assert_eq!(s, 200, "{body}");
    body
}

/// Waits until the overall band is `band` (the engine folds commits in asynchronously), then
/// one more tick so the gate's cached band has caught up.
async fn wait_band(gw: &Gateway, band: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = status(gw).await;
        if s["band"] == band {
            tokio::time::sleep(Duration::from_millis(700)).await;
            return s;
        }
        assert!(Instant::now() < deadline, "band never became {band}: {s:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn slo<'a>(s: &'a Value, id: &str) -> &'a Value {
    s["slos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == id)
        .unwrap()
}

async fn publish(c: &Client, n: usize, text: &str, tag: &str) {
    for i in 0..n {
        let r = call(
            c,
            "a__publish_post",
            json!({"account_id": "a-1", "text": format!("{text}{i}")}),
            Some(json!({"idempotency_key": format!("{tag}-{i}")})),
        )
        .await;
        r.unwrap_or_else(|e| panic!("publish {tag}-{i}: {e:?}"));
    }
}

fn reason(r: Result<rmcp::model::CallToolResult, rmcp::model::ErrorData>) -> String {
    r.err()
        .and_then(|e| e.data)
        .map(|d| d["reason"].as_str().unwrap_or_default().to_string())
        .unwrap_or_else(|| "ok".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_drive_green_yellow_red_and_the_freeze_gate_follows() {
    let gw = gateway();
    gw.wait_ready().await;
    let a = client(&gw.mcp, TOKEN_A).await.unwrap();
    let b = client(&gw.mcp, TOKEN_B).await.unwrap();
    let dm = |who: &'static str, k: &str| {
        (
            json!({"account_id": who, "to": format!("@{k}"), "text": "hi"}),
            json!({"idempotency_key": k}),
        )
    };

    // GREEN: 37 good publishes. New capability runs (flag on).
    publish(&a, 37, "ok ", "g").await;
    let s = wait_band(&gw, "GREEN").await;
    assert_eq!(
        (
            slo(&s, "SLO-01")["valid"].clone(),
            slo(&s, "SLO-01")["good"].clone()
        ),
        (json!(37), json!(37))
    );
    let (args, meta) = dm("a-1", "d1");
    assert_eq!(reason(call(&a, "a__send_dm", args, Some(meta)).await), "ok");

    // YELLOW: 3 platform rejections of 40 leave 25% of the budget (allowed 4).
    publish(&a, 3, "REJECT: bad ", "r").await;
    let s = wait_band(&gw, "YELLOW").await;
    let s1 = slo(&s, "SLO-01");
    assert_eq!(
        (s1["valid"].clone(), s1["band"].clone()),
        (json!(40), json!("YELLOW"))
    );
    assert!(
        (s1["budget_remaining_pct"].as_f64().unwrap() - 25.0).abs() < 0.01,
        "{s1}"
    );
    assert!(
        s1["top_failure_reasons"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("platform_rejected"),
        "{s1}"
    );
    assert_eq!(s1["top_clients"][0]["client_id"], "a");
    // Non-canary tenant a: canary_only; canary tenant b: runs.
    let (args, meta) = dm("a-1", "d2");
    assert_eq!(
        reason(call(&a, "a__send_dm", args, Some(meta)).await),
        "canary_only"
    );
    let (args, meta) = dm("b-1", "d3");
    assert_eq!(reason(call(&b, "a__send_dm", args, Some(meta)).await), "ok");
    // Enabling a flag now needs approval.
    let body = json!({"enabled": true, "by": "ops", "reason": "launch"});
    assert_eq!(
        gw.admin("PUT", "/v1/flags/dm_send", Some(ADMIN_TOKEN), Some(body))
            .await
            .0,
        409
    );

    // RED: one more failure exhausts the budget. New capability frozen; established and
    // read-only calls go on.
    publish(&a, 1, "REJECT: worse ", "r2").await;
    wait_band(&gw, "RED").await;
    let (args, meta) = dm("b-1", "d4");
    assert_eq!(
        reason(call(&b, "a__send_dm", args, Some(meta)).await),
        "frozen"
    );
    assert_eq!(
        reason(
            call(
                &a,
                "a__publish_post",
                json!({"account_id": "a-1", "text": "still fine"}),
                Some(json!({"idempotency_key": "est"}))
            )
            .await
        ),
        "ok"
    );
    assert_eq!(
        reason(call(&a, "a__get_post", json!({"post_id": "p"}), None).await),
        "ok"
    );

    // Visible in /metrics and on the page.
    let metrics = reqwest::get(format!("{}/metrics", gw.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("toolgate_band 2"), "{metrics}");
    assert!(
        metrics.contains("toolgate_sli_events_total{slo=\"SLO-01\",outcome=\"bad\""),
        "{metrics}"
    );
    let page = reqwest::get(&gw.admin).await.unwrap().text().await.unwrap();
    assert!(page.contains("band-red"), "page banner");

    // Recovery: enough good traffic brings the budget back above 50% → GREEN again.
    publish(&a, 40, "recovered ", "h").await;
    let s = wait_band(&gw, "GREEN").await;
    assert_eq!(slo(&s, "SLO-01")["band"], "GREEN");
    let (args, meta) = dm("a-1", "d5");
    assert_eq!(reason(call(&a, "a__send_dm", args, Some(meta)).await), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_account_attempt_turns_red_at_once_and_clearing_returns_green() {
    let gw = gateway();
    gw.wait_ready().await;
    let a = client(&gw.mcp, TOKEN_A).await.unwrap();
    publish(&a, 12, "ok ", "g").await;
    wait_band(&gw, "GREEN").await;
    let e = call(
        &a,
        "a__publish_post",
        json!({"account_id": "b-1", "text": "x"}),
        Some(json!({"idempotency_key": "bad"})),
    )
    .await
    .unwrap_err();
    assert_eq!(e.data.unwrap()["reason"], "wrong_account");
    let s = wait_band(&gw, "RED").await;
    let stop = s["hard_stops"][0]["id"].as_str().unwrap().to_string();
    // A new capability is refused with hard_stop while it is active (tenant b is not quarantined).
    let b = client(&gw.mcp, TOKEN_B).await.unwrap();
    assert_eq!(
        reason(
            call(
                &b,
                "a__send_dm",
                json!({"account_id": "b-1", "to": "@x", "text": "hi"}),
                Some(json!({"idempotency_key": "hs"}))
            )
            .await
        ),
        "hard_stop"
    );
    // A tenant sees its own figures only.
    let (_, mine) = gw.admin("GET", "/v1/status", Some(TOKEN_B), None).await;
    assert_eq!(mine["scope"], "tenant:b");
    assert_eq!(slo(&mine, "SLO-01")["valid"], 0);
    let clear = json!({"by": "ops", "reason": "false alarm from a misconfigured runner"});
    assert_eq!(
        gw.admin(
            "POST",
            &format!("/v1/hard-stops/{stop}/clear"),
            Some(ADMIN_TOKEN),
            Some(clear)
        )
        .await
        .0,
        200
    );
    wait_band(&gw, "GREEN").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_events_move_every_event_slo_and_survive_restart() {
    // The shipped SLO file (no slo_definitions key → built in).
    let gw = Gateway::start(&config(&stdio_upstream("a", ""), TOOLS));
    gw.wait_ready().await;
    let now = chrono::Utc::now();
    let t = |mins: i64| {
        (now - chrono::Duration::minutes(mins)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let events = json!([
        {"id": "j1", "type": "job_started", "job_id": "job-1", "kind": "publish", "scheduled_at": t(30), "started_at": t(29)},
        {"id": "j2", "type": "job_started", "job_id": "job-2", "kind": "publish", "scheduled_at": t(30), "started_at": t(20)},
        {"id": "j3", "type": "job_started", "job_id": "job-1", "kind": "publish", "scheduled_at": t(30), "started_at": t(10)},
        {"id": "v1", "type": "post_verified", "idempotency_key": "k1", "published_at": t(30), "visible_at": t(28)},
        {"id": "v2", "type": "post_verified", "audit_id": "x", "published_at": t(30), "visible_at": null},
        {"id": "e1", "type": "episode_finished", "episode_id": "ep1", "outcome": "completed", "side_effects": 0},
        {"id": "e2", "type": "episode_finished", "episode_id": "ep2", "outcome": "human_intervention", "side_effects": 2},
        {"id": "i1", "type": "inbound_visible", "event_id": "m1", "created_at": t(30), "visible_at": t(27)},
        {"id": "r1", "type": "auto_reply_sent", "event_id": "m1", "created_at": t(30), "sent_at": t(15)},
        {"id": "bad", "type": "inbound_visible", "event_id": "m2"},
        {"id": "v1", "type": "post_verified", "idempotency_key": "k1", "published_at": t(30), "visible_at": t(28)},
    ]);
    let (s, body) = gw
        .admin("POST", "/v1/events", Some(TOKEN_A), Some(events))
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        (
            body["accepted"].clone(),
            body["duplicates"].clone(),
            body["rejected"].clone()
        ),
        (json!(8), json!(2), json!(1)),
        "{body}"
    );
    assert!(
        body["results"][9]["error"]
            .as_str()
            .unwrap()
            .contains("created_at")
    );
    // Without a token: 401; a tenant cannot post for another tenant.
    assert_eq!(
        gw.admin("POST", "/v1/events", None, Some(json!([])))
            .await
            .0,
        401
    );
    let (_, other) = gw.admin("POST", "/v1/events", Some(TOKEN_A), Some(json!([{"id": "w", "type": "wrong_account_detected", "account": "b-1", "detail": "d", "tenant": "b"}]))).await;
    assert_eq!(other["rejected"], 1);

    let expect = [
        ("SLO-04", 2, 1),
        ("SLO-03", 2, 1),
        ("SLO-05A", 1, 1),
        ("SLO-05B", 1, 0),
        ("SLO-06A", 1, 1),
        ("SLO-06B", 1, 0),
    ];
    let check = |s: &Value| {
        for (id, valid, good) in expect {
            let x = slo(s, id);
            if (x["valid"].as_u64(), x["good"].as_u64()) != (Some(valid), Some(good)) {
                return Err(format!("{id}: {x}"));
            }
        }
        Ok(())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = check(&status(&gw).await) {
        assert!(Instant::now() < deadline, "{e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A detected wrong-account action: SLO-07 bad, hard stop, RED.
    let (_, body) = gw.admin("POST", "/v1/events", Some(ADMIN_TOKEN), Some(json!([{"id": "w1", "type": "wrong_account_detected", "tenant": "a", "account": "a-1", "detail": "posted on the wrong page"}]))).await;
    assert_eq!(body["accepted"], 1, "{body}");
    let s = wait_band(&gw, "RED").await;
    assert_eq!(slo(&s, "SLO-07")["valid"], 1);
    assert_eq!(slo(&s, "SLO-07")["band"], "RED");
    assert!(
        s["hard_stops"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["kind"] == "wrong_account")
    );

    // Budgets survive a crash: the restarted gateway reports the same figures.
    let gw = gw.crash_and_restart();
    gw.wait_ready().await;
    let s = status(&gw).await;
    check(&s).unwrap();
    assert_eq!(slo(&s, "SLO-07")["valid"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_move_slo_01_02_07_08() {
    let tools = "  a__publish_post: {side_effect: true, action: publish, lane: api, platform: demo, proof: {post_id: /id}}
  a__reply_comment: {side_effect: true, action: publish, lane: browser, platform: demo}
";
    let gw = Gateway::start(&config(&stdio_upstream("a", ""), tools));
    gw.wait_ready().await;
    let a = client(&gw.mcp, TOKEN_A).await.unwrap();
    publish(&a, 2, "ok ", "p").await;
    // The browser-lane tool has no proof pointers: success without proof is bad for SLO-02
    // (proof required) and for SLO-08 (audit completeness).
    call(
        &a,
        "a__reply_comment",
        json!({"account_id": "a-1", "comment_id": "c1", "text": "thanks"}),
        Some(json!({"idempotency_key": "rc"})),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = status(&gw).await;
        let got = |id: &str| {
            (
                slo(&s, id)["valid"].as_u64().unwrap(),
                slo(&s, id)["good"].as_u64().unwrap(),
            )
        };
        if got("SLO-01") == (2, 2)
            && got("SLO-02") == (1, 0)
            && got("SLO-07") == (3, 3)
            && got("SLO-08") == (3, 2)
        {
            break;
        }
        assert!(Instant::now() < deadline, "{s:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
