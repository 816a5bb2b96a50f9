//! End-to-end tests of incidents and postmortem bundles: a page-alert episode driven by real
//! upstream failures and a wrong-account hard stop, listed and bundled over HTTP (JSON and
//! Markdown) and by the offline CLI, validated against proto/, scoped per tenant.

mod common;

use std::time::{Duration, Instant};

use common::schema::assert_valid;
use common::*;
use serde_json::{Value, json};

/// A 90% publish SLO that pages at burn rate 2 (error ratio above 20%) after 5 events.
const SLOS: &str = "version: 1
defaults: {min_events: 5}
alerts:
  - {severity: page, long: 1h, short: 5m, burn_rate: 2}
slos:
  - {id: SLO-01, name: Publish success (API lane), target: 0.9, paging: true, sli: {source: tool_calls, filter: {action_type: [publish], lane: [api]}}}
  - {id: SLO-07, name: Wrong account, target: 1.0, min_events: 1, sli: {source: safety}}
";

const TOOLS: &str = "  a__publish_post: {side_effect: true, action: publish, lane: api, platform: demo, capability: feed_publish, proof: {post_id: /id}}
";

fn gateway() -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("slo.yml"), SLOS).unwrap();
    let cfg = config(&stdio_upstream("a", ""), TOOLS).replace(
        "admin_token_env: TOK_ADMIN",
        "admin_token_env: TOK_ADMIN\nslo_definitions: {dir}/slo.yml\ncapabilities:\n  feed_publish: {stage: established}",
    );
    Gateway::start_in(&cfg, dir)
}

async fn publish(c: &Client, account: &str, text: &str, key: &str) {
    call(
        c,
        "a__publish_post",
        json!({"account_id": account, "text": text}),
        Some(json!({"idempotency_key": key})),
    )
    .await
    .unwrap_or_else(|e| panic!("publish {key}: {e:?}"));
}

async fn incidents(gw: &Gateway, token: &str) -> Value {
    let (s, body) = gw.admin("GET", "/v1/incidents", Some(token), None).await;
    assert_eq!(s, 200, "{body}");
    assert_valid("incident.schema.json", &body);
    body
}

/// Polls the admin list until `pred` holds for some incident; returns that incident.
async fn wait_incident(gw: &Gateway, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = incidents(gw, ADMIN_TOKEN).await;
        if let Some(i) = list["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| pred(i))
        {
            return i.clone();
        }
        assert!(Instant::now() < deadline, "no {what}: {list:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn get_text(gw: &Gateway, path: &str, token: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .get(format!("{}{path}", gw.admin))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn bundle(gw: &Gateway, id: &str, token: &str) -> Value {
    let (s, body) = gw
        .admin(
            "GET",
            &format!("/v1/incidents/{id}/bundle"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_valid("incident-bundle.schema.json", &body);
    body
}

fn timeline(b: &Value) -> &Vec<Value> {
    b["timeline"].as_array().unwrap()
}

/// Index of the first timeline entry matching `pred`, or a panic naming `what`.
fn pos(b: &Value, what: &str, pred: impl Fn(&Value) -> bool) -> usize {
    timeline(b)
        .iter()
        .position(pred)
        .unwrap_or_else(|| panic!("no {what} in the timeline: {:#}", b["timeline"]))
}

fn record_key(e: &Value) -> Option<&str> {
    e["record"]["idempotency_key"].as_str()
}

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(bin())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const MD_HEADINGS: [&str; 9] = [
    "# Postmortem: ",
    "## Summary",
    "## Impact",
    "## Trigger",
    "## Detection",
    "## Resolution",
    "## Timeline",
    "## Root causes",
    "## Action items",
];

fn assert_draft(md: &str) {
    for h in MD_HEADINGS {
        assert!(md.contains(h), "the draft has no {h:?}:\n{md}");
    }
    assert!(md.contains("| must-do |"), "no must-do slot:\n{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_alert_and_a_wrong_account_hard_stop_become_incidents_with_bundles() {
    let gw = gateway();
    gw.wait_ready().await;
    let a = client(&gw.mcp, TOKEN_A).await.unwrap();
    let b = client(&gw.mcp, TOKEN_B).await.unwrap();
    assert_eq!(
        incidents(&gw, ADMIN_TOKEN).await["incidents"],
        json!([]),
        "nothing yet"
    );

    // --- A page alert: 5 of 14 publishes rejected by the platform (burn rate 4.3 > 2).
    for i in 0..5 {
        publish(&a, "a-1", &format!("fine {i}"), &format!("ok-{i}")).await;
    }
    for i in 0..5 {
        publish(&a, "a-1", &format!("REJECT: spam {i}"), &format!("bad-{i}")).await;
    }
    publish(&b, "b-1", "fine", "b-ok-0").await;
    publish(&b, "b-1", "fine again", "b-ok-1").await;
    publish(&b, "b-1", "REJECT: b spam", "b-bad-0").await;
    let page = wait_incident(&gw, "page alert touching a and b", |i| {
        i["kind"] == "page_alert" && i["tenants"] == json!(["a", "b"])
    })
    .await;
    let page_id = page["id"].as_str().unwrap().to_string();
    assert!(page_id.starts_with("page-SLO-01-"), "{page_id}");
    assert_eq!(page["slo"], "SLO-01");
    assert_eq!(page["tenants"], json!(["a", "b"]), "{page:#}");
    // Good traffic brings the error ratio under 20%: the episode resolves.
    for i in 0..20 {
        publish(&a, "a-1", &format!("recovered {i}"), &format!("rec-{i}")).await;
    }
    let page = wait_incident(&gw, "resolved page alert", |i| {
        i["id"] == page_id.as_str() && i["ongoing"] == false
    })
    .await;
    assert!(page["end_ms"].as_i64().unwrap() >= page["start_ms"].as_i64().unwrap());

    // --- A wrong-account hard stop: tenant a publishes on tenant b's account; then cleared.
    let e = call(
        &a,
        "a__publish_post",
        json!({"account_id": "b-1", "text": "oops"}),
        Some(json!({"idempotency_key": "wrong-1"})),
    )
    .await
    .unwrap_err();
    assert_eq!(e.data.unwrap()["reason"], "wrong_account");
    let hs = wait_incident(&gw, "hard stop", |i| i["kind"] == "hard_stop").await;
    let hs_id = hs["id"].as_str().unwrap().to_string();
    let stop_id = hs["hard_stop"]["id"].as_str().unwrap().to_string();
    assert_eq!(hs_id, format!("hs-{stop_id}"));
    assert_eq!(
        (hs["ongoing"].clone(), hs["postmortem_required"].clone()),
        (json!(true), json!(true))
    );
    let clear = json!({"by": "ops", "reason": "runner config fixed"});
    let (s, body) = gw
        .admin(
            "POST",
            &format!("/v1/hard-stops/{stop_id}/clear"),
            Some(ADMIN_TOKEN),
            Some(clear),
        )
        .await;
    assert_eq!(s, 200, "{body}");

    // --- The list: both, oldest first, the hard stop ended.
    let list = incidents(&gw, ADMIN_TOKEN).await;
    let ids: Vec<&str> = list["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [page_id.as_str(), hs_id.as_str()]);
    let hs = &list["incidents"][1];
    assert_eq!(hs["ongoing"], false);
    assert_eq!(hs["hard_stop"]["cleared_by"], "ops");

    // --- The hard stop's bundle: the refused call, the trip, the clear, in that order.
    let hb = bundle(&gw, &hs_id, ADMIN_TOKEN).await;
    assert_eq!(hb["incident"]["id"], hs_id.as_str());
    // The refusal is recorded before the key is looked at: it is found by the stop's audit_id.
    let audit_id = hb["incident"]["hard_stop"]["audit_id"].clone();
    let refused = pos(&hb, "refused wrong-account record", |e| {
        e["type"] == "audit_record" && e["record"]["id"] == audit_id
    });
    let r = &timeline(&hb)[refused]["record"];
    assert_eq!(
        (r["outcome"].as_str(), r["account"].as_str()),
        (Some("refused"), Some("b-1"))
    );
    let tripped = pos(&hb, "trip", |e| {
        e["type"] == "hard_stop" && e["event"] == "tripped"
    });
    let clear_rec = pos(&hb, "clear record", |e| {
        e["type"] == "operator_action" && e["record"]["tool"] == "hard_stop.clear"
    });
    let cleared = pos(&hb, "clear", |e| {
        e["type"] == "hard_stop" && e["event"] == "cleared"
    });
    assert!(
        refused < tripped && tripped < clear_rec && clear_rec < cleared,
        "order: refused {refused}, tripped {tripped}, clear record {clear_rec}, cleared {cleared}"
    );
    assert!(
        hb["top_failure_reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["reason"].as_str().unwrap().contains("wrong_account")),
        "{:#}",
        hb["top_failure_reasons"]
    );
    // A hard stop of tenant a: only tenant a's records.
    assert!(
        timeline(&hb)
            .iter()
            .filter(|e| e["type"] == "audit_record")
            .all(|e| e["record"]["tenant"] == "a")
    );

    // --- The page alert's bundle: the failing calls in seq order, then the alert firing,
    // then it resolving.
    let pb = bundle(&gw, &page_id, ADMIN_TOKEN).await;
    let failing: Vec<usize> = (0..5)
        .map(|i| {
            let k = format!("bad-{i}");
            pos(&pb, &k, |e| record_key(e) == Some(k.as_str()))
        })
        .collect();
    assert!(failing.windows(2).all(|w| w[0] < w[1]), "{failing:?}");
    let seqs: Vec<u64> = failing
        .iter()
        .map(|i| timeline(&pb)[*i]["record"]["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let firing = pos(&pb, "alert firing", |e| {
        e["type"] == "alert" && e["event"] == "firing" && e["severity"] == "page"
    });
    let resolved = pos(&pb, "alert resolved", |e| {
        e["type"] == "alert" && e["event"] == "resolved"
    });
    // The alert fires once two failures are in (2 of 7: burn 2.9 > 2): the triggering
    // records come first.
    assert!(
        failing[1] < firing && firing < resolved,
        "{failing:?} {firing} {resolved}"
    );
    let red = pos(&pb, "band change to RED", |e| {
        e["type"] == "band_change" && e["to"] == "RED"
    });
    assert!(red > failing[0]);
    let times: Vec<i64> = timeline(&pb)
        .iter()
        .map(|e| e["at_ms"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    assert!(
        pb["top_failure_reasons"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("platform_rejected"),
        "{:#}",
        pb["top_failure_reasons"]
    );
    assert_eq!(pb["impacted_clients"][0]["client_id"], "a");
    assert_eq!(pb["impacted_platforms"][0]["platform"], "demo");
    // The recovery calls ran inside the episode: SLO-01 has events in its window.
    assert!(
        pb["incident"]["budget"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["slo"] == "SLO-01" && c["valid"].as_u64().unwrap() > 0),
        "{:#}",
        pb["incident"]
    );

    // --- Markdown drafts.
    for id in [&page_id, &hs_id] {
        let (s, md) = get_text(
            &gw,
            &format!("/v1/incidents/{id}/bundle?format=md"),
            ADMIN_TOKEN,
        )
        .await;
        assert_eq!(s, 200, "{md}");
        assert_draft(&md);
        assert!(md.contains(id.as_str()));
    }

    // --- Errors: unknown id 404, bad format 400, no token 401.
    let (s, body) = gw
        .admin(
            "GET",
            "/v1/incidents/hs-nope/bundle",
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    assert_valid("admin-api.schema.json#/$defs/error", &body);
    let (s, body) = gw
        .admin(
            "GET",
            &format!("/v1/incidents/{hs_id}/bundle?format=pdf"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("invalid_query")),
        "{body}"
    );
    assert_eq!(gw.admin("GET", "/v1/incidents", None, None).await.0, 401);

    // --- Tenant scope: b sees the page alert (it had a failure) but not a's hard stop, and
    // only its own records; a's bundle holds none of b's.
    let lb = incidents(&gw, TOKEN_B).await;
    assert_eq!(lb["scope"], "tenant:b");
    let b_ids: Vec<&str> = lb["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(b_ids, [page_id.as_str()]);
    assert_eq!(lb["incidents"][0]["tenants"], json!(["b"]));
    let (s, _) = gw
        .admin(
            "GET",
            &format!("/v1/incidents/{hs_id}/bundle"),
            Some(TOKEN_B),
            None,
        )
        .await;
    assert_eq!(s, 404, "tenant b must not see tenant a's hard stop");
    let bb = bundle(&gw, &page_id, TOKEN_B).await;
    assert_eq!(bb["scope"], "tenant:b");
    let tenants_in = |b: &Value| -> Vec<String> {
        timeline(b)
            .iter()
            .filter(|e| e["record"].is_object())
            .map(|e| {
                e["record"]["tenant"]
                    .as_str()
                    .unwrap_or("(none)")
                    .to_string()
            })
            .collect()
    };
    let tb = tenants_in(&bb);
    assert!(!tb.is_empty() && tb.iter().all(|t| t == "b"), "{tb:?}");
    assert!(
        timeline(&bb)
            .iter()
            .all(|e| e["type"] != "alert" && e["type"] != "band_change")
    );
    let ab = bundle(&gw, &page_id, TOKEN_A).await;
    let ta = tenants_in(&ab);
    assert!(!ta.is_empty() && ta.iter().all(|t| t == "a"), "{ta:?}");
    let (s, md) = get_text(
        &gw,
        &format!("/v1/incidents/{page_id}/bundle?format=md"),
        TOKEN_B,
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        !md.contains("a-1"),
        "tenant b's draft names tenant a's account:\n{md}"
    );

    // --- The offline CLI agrees with the gateway, next to it.
    let data = gw.path("data");
    let data = data.to_str().unwrap();
    let cfg = gw.path("gateway.yml");
    let cfg = cfg.to_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let offline = loop {
        let (code, out, err) = cli(&["incident", "list", "--data", data, "--config", cfg]);
        assert_eq!(code, 0, "{err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        let got: Vec<&str> = v["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap())
            .collect();
        if got == ids && v["incidents"][0]["ongoing"] == false {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "CLI list {got:?} != HTTP {ids:?}: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_valid("incident.schema.json", &offline);
    let (code, out, err) = cli(&[
        "incident", "bundle", &hs_id, "--data", data, "--config", cfg,
    ]);
    assert_eq!(code, 0, "{err}");
    let cb: Value = serde_json::from_str(&out).unwrap();
    assert_valid("incident-bundle.schema.json", &cb);
    let seqs_of = |b: &Value| -> Vec<u64> {
        timeline(b)
            .iter()
            .filter_map(|e| e["record"]["seq"].as_u64())
            .collect()
    };
    assert_eq!(
        seqs_of(&cb),
        seqs_of(&hb),
        "CLI and HTTP bundles hold the same records"
    );
    let md_path = gw.path("page.md");
    let (code, _, err) = cli(&[
        "incident",
        "bundle",
        &page_id,
        "--data",
        data,
        "--config",
        cfg,
        "--format",
        "md",
        "-o",
        md_path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_draft(&std::fs::read_to_string(&md_path).unwrap());
    let (code, _, err) = cli(&["incident", "bundle", "page-nope-1", "--data", data]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no incident"), "{err}");
    let (code, _, _) = cli(&[
        "incident", "bundle", &hs_id, "--data", data, "--format", "pdf",
    ]);
    assert_eq!(code, 2, "clap rejects a bad --format");
}
