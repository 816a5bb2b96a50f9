//! End-to-end tests of side-effect safety: idempotency, binding, hard stops, spam loops, crash
//! recovery. Real binary, real SQLite file, a real demo upstream that counts executions.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use toolgate::journal::{Outcome, record::verify_chain};

const TOOLS: &str = "  a__publish_post: {side_effect: true, action: publish, platform: demo, proof: {post_id: /id, url: /url, screenshot: /proof/screenshot_url}}
  a__send_dm: {side_effect: true, action: dm, platform: demo, target_arg: to, proof: {post_id: /id}}
";

fn gateway(extra_upstream_args: &str) -> Gateway {
    let up = format!(
        "  - name: a\n    command: [\"{{bin}}\", demo-upstream, --test-tools, --count-file, \"{{dir}}/a.count\"{extra_upstream_args}]\n    timeout: 5s\n"
    );
    Gateway::start(&config(&up, TOOLS))
}

fn key(k: &str) -> Option<Value> {
    Some(json!({"idempotency_key": k}))
}

fn post(account: &str, text: &str) -> Value {
    json!({"account_id": account, "text": text})
}

fn reason(e: &rmcp::model::ErrorData) -> (i32, String) {
    (
        e.code.0,
        e.data.as_ref().unwrap()["reason"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_replay_conflicts_refuse_and_every_call_is_audited_once() {
    let gw = gateway("");
    gw.wait_ready().await;
    let c = client(&gw.mcp, TOKEN_A).await.unwrap();
    let count = gw.path("a.count");

    let first = call(&c, "a__publish_post", post("a-1", "hello"), key("k1"))
        .await
        .unwrap();
    let m = meta(&first);
    assert_eq!(
        (
            m["toolgate/replayed"].clone(),
            m["toolgate/attempt"].clone()
        ),
        (json!(false), json!(1))
    );
    let again = call(&c, "a__publish_post", post("a-1", "hello"), key("k1"))
        .await
        .unwrap();
    assert_eq!(meta(&again)["toolgate/replayed"], true);
    assert_eq!(structured(&again)["id"], structured(&first)["id"]);
    assert_ne!(
        meta(&again)["toolgate/audit_id"],
        m["toolgate/audit_id"],
        "each call has its own record"
    );
    assert_eq!(executions(&count), 1, "a retry must not execute again");

    let e = call(&c, "a__publish_post", post("a-1", "other text"), key("k1"))
        .await
        .unwrap_err();
    assert_eq!(reason(&e), (-32091, "key_conflict".into()));
    let e = call(&c, "a__publish_post", post("a-1", "hello"), None)
        .await
        .unwrap_err();
    assert_eq!(reason(&e), (-32090, "missing_idempotency_key".into()));

    // An error result is final: replayed, not re-executed. A retryable one runs again.
    let r = call(
        &c,
        "a__publish_post",
        post("a-1", "REJECT: nope"),
        key("k2"),
    )
    .await
    .unwrap();
    assert_eq!(r.is_error, Some(true));
    let r = call(
        &c,
        "a__publish_post",
        post("a-1", "REJECT: nope"),
        key("k2"),
    )
    .await
    .unwrap();
    assert_eq!(
        (r.is_error, meta(&r)["toolgate/replayed"].clone()),
        (Some(true), json!(true))
    );
    call(&c, "a__publish_post", post("a-1", "RETRY: busy"), key("k3"))
        .await
        .unwrap();
    let r = call(&c, "a__publish_post", post("a-1", "RETRY: busy"), key("k3"))
        .await
        .unwrap();
    assert_eq!(
        (
            meta(&r)["toolgate/replayed"].clone(),
            meta(&r)["toolgate/attempt"].clone()
        ),
        (json!(false), json!(2))
    );

    // A read-only call is audited too (batched), without a key.
    call(&c, "a__get_post", json!({"post_id": "p"}), None)
        .await
        .unwrap();
    let records = gw.audit_records_when(|r| r.len() >= 9).await;
    assert_eq!(records.len(), 9, "one record per call: {records:#?}");
    verify_chain(records.clone(), Some((0, toolgate::journal::GENESIS_HASH))).unwrap();
    let firsts: Vec<_> = records
        .iter()
        .filter(|r| r.idempotency_key.as_deref() == Some("k1"))
        .collect();
    assert_eq!(firsts[0].outcome, Outcome::Success);
    assert_eq!(
        firsts[0].proof.post_id.as_deref(),
        structured(&first)["id"].as_str()
    );
    assert!(firsts[0].proof.screenshot.is_some() && !firsts[0].proof_missing);
    assert!(firsts[1].replayed);
    assert!(
        records
            .iter()
            .any(|r| r.tool == "a__get_post" && !r.side_effect)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_with_one_key_execute_once() {
    let gw = gateway(", --delay-ms, \"400\"");
    gw.wait_ready().await;
    let c = client(&gw.mcp, TOKEN_A).await.unwrap();
    let peer = c.peer().clone();
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let peer = peer.clone();
            tokio::spawn(async move {
                peer.call_tool(params("a__publish_post", post("a-1", "once"), key("same")))
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    let mut in_flight = 0;
    for t in calls {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(rmcp::service::ServiceError::McpError(e)) => {
                assert_eq!(reason(&e), (-32091, "in_flight".into()));
                in_flight += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((ok, in_flight), (1, 1));
    assert_eq!(executions(&gw.path("a.count")), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_account_is_refused_trips_a_hard_stop_and_quarantines_the_tenant() {
    let gw = gateway("");
    gw.wait_ready().await;
    let c = client(&gw.mcp, TOKEN_A).await.unwrap();
    let e = call(&c, "a__publish_post", post("b-1", "not mine"), key("x1"))
        .await
        .unwrap_err();
    assert_eq!(reason(&e), (-32090, "wrong_account".into()));
    assert_eq!(
        executions(&gw.path("a.count")),
        0,
        "nothing may be forwarded"
    );

    // Listed for the admin and for the tenant itself, not for others; never without a token.
    let (s, body) = gw
        .admin("GET", "/v1/hard-stops", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(s, 200);
    let stops = body["hard_stops"].as_array().unwrap().clone();
    assert_eq!(stops.len(), 1);
    assert_eq!(
        (
            stops[0]["kind"].clone(),
            stops[0]["tenant"].clone(),
            stops[0]["account"].clone()
        ),
        (json!("wrong_account"), json!("a"), json!("b-1"))
    );
    assert_eq!(stops[0]["audit_id"], e.data.as_ref().unwrap()["audit_id"]);
    let (_, b) = gw.admin("GET", "/v1/hard-stops", Some(TOKEN_B), None).await;
    assert_eq!(b["hard_stops"], json!([]));
    assert_eq!(gw.admin("GET", "/v1/hard-stops", None, None).await.0, 401);

    // Quarantine: even the tenant's own account is refused; read-only calls go on.
    let e = call(&c, "a__publish_post", post("a-1", "mine"), key("x2"))
        .await
        .unwrap_err();
    assert_eq!(reason(&e), (-32090, "tenant_quarantined".into()));
    call(&c, "a__get_post", json!({"post_id": "p"}), None)
        .await
        .unwrap();
    // Other tenants are not quarantined.
    let cb = client(&gw.mcp, TOKEN_B).await.unwrap();
    call(&cb, "a__publish_post", post("b-1", "b's own"), key("y1"))
        .await
        .unwrap();

    // A cross-tenant claim in _meta is a safety event too.
    let e = call(
        &cb,
        "a__publish_post",
        post("b-1", "x"),
        Some(json!({"idempotency_key": "y2", "tenant_id": "a"})),
    )
    .await
    .unwrap_err();
    assert_eq!(reason(&e), (-32090, "tenant_mismatch".into()));

    // The hard stop survives a restart; clearing needs the admin token and is audited.
    let gw = gw.crash_and_restart();
    gw.wait_ready().await;
    let c = client(&gw.mcp, TOKEN_A).await.unwrap();
    let e = call(&c, "a__publish_post", post("a-1", "mine"), key("x3"))
        .await
        .unwrap_err();
    assert_eq!(reason(&e).1, "tenant_quarantined");
    let id = stops[0]["id"].as_str().unwrap();
    let clear = json!({"by": "ops@agency", "reason": "runner bug fixed"});
    assert_eq!(
        gw.admin(
            "POST",
            &format!("/v1/hard-stops/{id}/clear"),
            None,
            Some(clear.clone())
        )
        .await
        .0,
        401
    );
    assert_eq!(
        gw.admin(
            "POST",
            &format!("/v1/hard-stops/{id}/clear"),
            Some(TOKEN_A),
            Some(clear.clone())
        )
        .await
        .0,
        403
    );
    let (s, body) = gw
        .admin(
            "POST",
            &format!("/v1/hard-stops/{id}/clear"),
            Some(ADMIN_TOKEN),
            Some(clear.clone()),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["cleared"]["cleared_by"], "ops@agency");
    call(&c, "a__publish_post", post("a-1", "mine"), key("x4"))
        .await
        .unwrap();
    let records = gw.audit_records();
    assert!(
        records
            .iter()
            .any(|r| r.tool == "hard_stop.clear" && r.actor.as_deref() == Some("ops@agency"))
    );
    // Refused before the key gate, the attempts still carry the runner's keys.
    for (key, reason) in [
        ("x1", "wrong_account"),
        ("x2", "tenant_quarantined"),
        ("y2", "tenant_mismatch"),
    ] {
        let r = records
            .iter()
            .find(|r| r.idempotency_key.as_deref() == Some(key))
            .unwrap_or_else(|| panic!("no record with key {key}"));
        assert!(
            r.reason.as_deref().is_some_and(|x| x.contains(reason)),
            "{key}: {:?}",
            r.reason
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fourth_identical_dm_is_a_spam_loop() {
    let gw = gateway("");
    gw.wait_ready().await;
    let c = client(&gw.mcp, TOKEN_A).await.unwrap();
    let dm = json!({"account_id": "a-1", "to": "@fan", "text": "hi!"});
    for i in 0..3 {
        call(&c, "a__send_dm", dm.clone(), key(&format!("dm{i}")))
            .await
            .unwrap();
    }
    let e = call(&c, "a__send_dm", dm.clone(), key("dm3"))
        .await
        .unwrap_err();
    assert_eq!(reason(&e), (-32090, "spam_loop".into()));
    assert_eq!(executions(&gw.path("a.count")), 3);
    // A different target is fine; the same target stays stopped.
    call(
        &c,
        "a__send_dm",
        json!({"account_id": "a-1", "to": "@other", "text": "hi!"}),
        key("dm4"),
    )
    .await
    .unwrap();
    let e = call(&c, "a__send_dm", dm, key("dm5")).await.unwrap_err();
    assert_eq!(reason(&e).1, "spam_loop");
    let (_, body) = gw
        .admin("GET", "/v1/hard-stops", Some(ADMIN_TOKEN), None)
        .await;
    let stops = body["hard_stops"].as_array().unwrap();
    assert_eq!(stops.len(), 1);
    assert_eq!(
        (stops[0]["kind"].clone(), stops[0]["target"].clone()),
        (json!("spam_loop"), json!("fan")),
        "the stop names the target as the guard counts it (folded)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_leaves_no_acknowledged_record_missing_and_no_duplicate() {
    let gw = gateway(", --delay-ms, \"1500\"");
    gw.wait_ready().await;
    let c = client(&gw.mcp, TOKEN_A).await.unwrap();
    // Acknowledged before the crash.
    let mut acked = Vec::new();
    for i in 0..3 {
        let r = call(
            &c,
            "a__publish_post",
            post("a-1", &format!("done {i}")),
            key(&format!("done{i}")),
        )
        .await
        .unwrap();
        acked.push(meta(&r)["toolgate/audit_id"].as_str().unwrap().to_string());
    }
    // In flight when the gateway dies.
    let peer = c.peer().clone();
    let inflight: Vec<_> = (0..4)
        .map(|i| {
            let peer = peer.clone();
            tokio::spawn(async move {
                peer.call_tool(params(
                    "a__publish_post",
                    post("a-1", &format!("fly {i}")),
                    key(&format!("fly{i}")),
                ))
                .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let gw = gw.crash_and_restart();
    for t in inflight {
        assert!(
            t.await.unwrap().is_err(),
            "the gateway died; no call may report success"
        );
    }
    gw.wait_ready().await;
    // Let the orphaned upstream child finish whatever it was doing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let executed_before = executions(&gw.path("a.count"));

    let records = gw.audit_records();
    verify_chain(records.clone(), Some((0, toolgate::journal::GENESIS_HASH))).unwrap();
    for id in &acked {
        assert!(
            records.iter().any(|r| &r.id == id),
            "acknowledged record {id} missing"
        );
    }
    let recovered: Vec<_> = records
        .iter()
        .filter(|r| r.outcome == Outcome::InDoubt)
        .collect();
    assert_eq!(
        recovered.len(),
        4,
        "one recovery record per interrupted call: {recovered:#?}"
    );

    let c = client(&gw.mcp, TOKEN_A).await.unwrap();
    for i in 0..4 {
        let e = call(
            &c,
            "a__publish_post",
            post("a-1", &format!("fly {i}")),
            key(&format!("fly{i}")),
        )
        .await
        .unwrap_err();
        assert_eq!(reason(&e), (-32091, "in_doubt".into()));
    }
    assert_eq!(
        executions(&gw.path("a.count")),
        executed_before,
        "an in-doubt key must never run again"
    );

    // An operator resolves: one happened (retries replay its proof), one did not (runs again).
    let resolve = |k: &str, outcome: &str| {
        (
            format!("/v1/idempotency/a/{k}/resolve"),
            json!({"outcome": outcome, "by": "ops", "reason": "checked the platform", "proof": {"url": "https://demo.social/x"}}),
        )
    };
    let (path, body) = resolve("fly0", "happened");
    assert_eq!(
        gw.admin("POST", &path, Some(ADMIN_TOKEN), Some(body))
            .await
            .0,
        200
    );
    let r = call(&c, "a__publish_post", post("a-1", "fly 0"), key("fly0"))
        .await
        .unwrap();
    assert_eq!(meta(&r)["toolgate/replayed"], true);
    let (path, body) = resolve("fly1", "not_happened");
    assert_eq!(
        gw.admin("POST", &path, Some(ADMIN_TOKEN), Some(body.clone()))
            .await
            .0,
        200
    );
    assert_eq!(
        gw.admin("POST", &path, Some(ADMIN_TOKEN), Some(body))
            .await
            .0,
        409,
        "no longer in doubt"
    );
    let r = call(&c, "a__publish_post", post("a-1", "fly 1"), key("fly1"))
        .await
        .unwrap();
    assert_eq!(meta(&r)["toolgate/attempt"], 2);
    assert_eq!(executions(&gw.path("a.count")), executed_before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_is_refused_clearly_and_nothing_is_forwarded() {
    let gw = gateway("");
    gw.wait_ready().await;
    let c = client(&gw.mcp, TOKEN_A).await.unwrap();
    for bad in [
        json!({"idempotency_key": 42}),
        json!({"idempotency_key": "k".repeat(10_000)}),
        json!({"idempotency_key": "ok", "account_id": ["x"]}),
    ] {
        let e = call(&c, "a__publish_post", post("a-1", "x"), Some(bad))
            .await
            .unwrap_err();
        assert_eq!(reason(&e), (-32090, "invalid_meta".into()));
        let id = e.data.as_ref().unwrap()["audit_id"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            gw.audit_records()
                .iter()
                .any(|r| r.id == id && r.outcome == Outcome::Refused)
        );
    }
    let e = call(
        &c,
        "a__publish_post",
        json!({"account_id": 5, "text": "x"}),
        key("n1"),
    )
    .await
    .unwrap_err();
    assert_eq!(reason(&e).1, "unknown_account");

    let http = reqwest::Client::new();
    let raw = |params: Value| {
        json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": params}).to_string()
    };
    let stateless = |body: String| {
        http.post(&gw.mcp)
            .bearer_auth(TOKEN_A)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", "2026-07-28")
            .body(body)
    };
    let proto = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}});
    // Params rmcp cannot read: rmcp alone answered "method not found" or HTTP 415 and
    // recorded nothing; now -32602 invalid_request names the field, with a record.
    let refused_with_record =
        async |status: reqwest::StatusCode, text: String, field: &str, key: Option<&str>| {
            // A JSON body, or an SSE stream (rmcp's session answers) whose last event is it.
            let json = text
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .rfind(|d| !d.trim().is_empty())
                .unwrap_or(&text);
            let body: Value = serde_json::from_str(json.trim())
                .unwrap_or_else(|e| panic!("{status} {text}: {e}"));
            let err = &body["error"];
            assert_eq!(
                (status.as_u16(), err["code"].as_i64()),
                (200, Some(-32602)),
                "{text}"
            );
            assert_eq!(err["data"]["reason"], "invalid_request", "{text}");
            common::schema::assert_valid("error-data.schema.json", &err["data"]);
            let message = err["message"].as_str().unwrap();
            assert!(
                message.contains(&format!(
                    "params.{field} must be a JSON object, not a string"
                )),
                "{message}"
            );
            let id = err["data"]["audit_id"].as_str().unwrap().to_string();
            let records = gw
                .audit_records_when(|rs| rs.iter().any(|r| r.id == id))
                .await;
            let r = records
                .iter()
                .find(|r| r.id == id)
                .expect("the refusal's record");
            assert_eq!(
                (r.outcome, r.tool.as_str()),
                (Outcome::Refused, "a__publish_post")
            );
            // Tied to the runner's retries whenever its _meta was readable.
            assert_eq!(r.idempotency_key.as_deref(), key);
            let why = r.reason.as_deref().unwrap();
            assert!(why.starts_with("invalid_request: params."), "{why}");
        };
    let mut keyed = proto.clone();
    keyed["idempotency_key"] = json!("m-1");
    for (field, key, params) in [
        (
            "arguments",
            Some("m-1"),
            json!({"name": "a__publish_post", "arguments": "not an object", "_meta": keyed}),
        ),
        (
            "_meta",
            None,
            json!({"name": "a__publish_post", "arguments": {"account_id": "a-1", "text": "x"}, "_meta": "not an object"}),
        ),
    ] {
        let r = stateless(raw(params))
            .header("Mcp-Method", "tools/call")
            .header("Mcp-Name", "a__publish_post")
            .send()
            .await
            .unwrap();
        let status = r.status();
        refused_with_record(status, r.text().await.unwrap(), field, key).await;
    }
    // The same on a session (2025-11-25).
    let init = http
        .post(&gw.mcp)
        .bearer_auth(TOKEN_A)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .body(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}).to_string())
        .send()
        .await
        .unwrap();
    let sid = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let on_session = |body: String| {
        http.post(&gw.mcp)
            .bearer_auth(TOKEN_A)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .header("Mcp-Session-Id", &sid)
            .body(body)
            .send()
    };
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(
        on_session(initialized.to_string()).await.unwrap().status(),
        202
    );
    let r = on_session(raw(
        json!({"name": "a__publish_post", "arguments": "not an object", "_meta": {"idempotency_key": "m-2"}}),
    ))
    .await
    .unwrap();
    let status = r.status();
    refused_with_record(status, r.text().await.unwrap(), "arguments", Some("m-2")).await;
    let huge = raw(
        json!({"name": "a__publish_post", "arguments": {"account_id": "a-1", "text": "x".repeat(5 * 1024 * 1024)}, "_meta": proto}),
    );
    assert_eq!(stateless(huge).send().await.unwrap().status(), 413);
    assert_eq!(executions(&gw.path("a.count")), 0);
}
