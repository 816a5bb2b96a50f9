//! End-to-end tests of the gateway core: the real binary, real child upstreams, real HTTP.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rmcp::{ClientServiceExt, ServiceExt, model::ProtocolVersion};
use serde_json::{Value, json};

fn two_upstreams(http_url: &str) -> String {
    config(
        &format!(
            "{}  - name: web\n    url: {http_url}\n    timeout: 5s\n",
            stdio_upstream("a", "    timeout: 2s\n")
        ),
        "  a__get_post: {side_effect: false}\n",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_namespaced_tools_and_forwards_meta() {
    let web = HttpUpstream::start();
    let gw = Gateway::start(&two_upstreams(&web.url));
    let ready = gw.wait_ready().await;
    assert_eq!(ready["upstreams"].as_array().unwrap().len(), 2, "{ready}");

    let c = client(&gw.mcp, TOKEN_A).await.unwrap();
    let tools = c.peer().list_all_tools().await.unwrap();
    let names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    for n in [
        "a__publish_post",
        "a__get_post",
        "a__slow_echo",
        "web__publish_post",
        "web__get_post",
    ] {
        assert!(names.contains(&n.to_string()), "{n} missing from {names:?}");
    }
    assert!(
        !names.iter().any(|n| n == "publish_post"),
        "un-namespaced name leaked"
    );
    // Descriptions, schemas and annotations survive the renaming.
    let get = tools.iter().find(|t| t.name == "web__get_post").unwrap();
    assert_eq!(
        get.annotations.as_ref().and_then(|a| a.read_only_hint),
        Some(true)
    );
    assert!(get.description.is_some());
    assert!(get.input_schema.contains_key("properties"));

    let sent_meta = json!({"idempotency_key": "k-1", "tenant_id": "a", "trace": {"n": [1, 2]}});
    let r = call(
        &c,
        "a__publish_post",
        json!({"account_id": "a-1", "text": "hello"}),
        Some(sent_meta.clone()),
    )
    .await
    .unwrap();
    assert_ne!(r.is_error, Some(true));
    let m = meta(&r);
    assert_eq!(
        m["demo/seen_meta"], sent_meta,
        "upstream must see the runner's _meta unchanged"
    );
    assert_eq!(m["toolgate/upstream"], "a");
    let audit_id = m["toolgate/audit_id"].as_str().unwrap();
    assert_eq!(
        uuid::Uuid::parse_str(audit_id).unwrap().get_version_num(),
        7
    );
    assert!(structured(&r)["id"].as_str().unwrap().starts_with("post_"));

    // The same call to the HTTP upstream: same deterministic id, other upstream.
    let r2 = call(
        &c,
        "web__publish_post",
        json!({"account_id": "a-1", "text": "hello"}),
        Some(json!({"idempotency_key": "k-2"})),
    )
    .await
    .unwrap();
    assert_eq!(structured(&r2)["id"], structured(&r)["id"]);
    assert_eq!(meta(&r2)["toolgate/upstream"], "web");

    // Error results pass through unchanged (isError and structuredContent).
    let rej = call(
        &c,
        "a__publish_post",
        json!({"account_id": "a-1", "text": "REJECT: spam"}),
        Some(json!({"idempotency_key": "k-3"})),
    )
    .await
    .unwrap();
    assert_eq!(rej.is_error, Some(true));
    assert_eq!(structured(&rej)["error"], "rejected");

    // Unknown tool: a clear invalid-params error naming the tool.
    let e = call(&c, "nope__x", json!({}), None).await.unwrap_err();
    assert_eq!(e.code.0, -32602);
    assert!(e.message.contains("nope__x"), "{}", e.message);
    c.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_missing_and_wrong_tokens_before_mcp() {
    let gw = Gateway::start(&config(&stdio_upstream("a", ""), ""));
    let http = reqwest::Client::new();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Basic dG9rZW4tdGVuYW50LWE="),
    ] {
        let mut req = http
            .post(&gw.mcp)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .body(init.to_string());
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "auth {auth:?}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let body: Value = r.json().await.unwrap();
        assert!(
            matches!(
                body["error"].as_str(),
                Some("missing_token" | "invalid_token")
            ),
            "{body}"
        );
    }
    assert!(client(&gw.mcp, "wrong").await.is_err());
    assert!(client(&gw.mcp, TOKEN_B).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_upstream_fails_its_call_then_restarts_others_unaffected() {
    let web = HttpUpstream::start();
    let gw = Gateway::start(&two_upstreams(&web.url));
    gw.wait_ready().await;
    let c = client(&gw.mcp, TOKEN_A).await.unwrap();
    let stats = call(&c, "a__stats", json!({}), None).await.unwrap();
    let pid = structured(&stats)["pid"].as_u64().unwrap();

    let peer = c.peer().clone();
    let in_flight = tokio::spawn(async move {
        peer.call_tool(params(
            "a__slow_echo",
            json!({"text": "x", "ms": 1500}),
            None,
        ))
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();

    match in_flight.await.unwrap() {
        Err(rmcp::service::ServiceError::McpError(e)) => {
            assert_eq!(e.code.0, -32092, "{e:?}");
            let d = e.data.unwrap();
            assert_eq!(d["failure_class"], "tool_failure");
            assert_eq!(d["upstream"], "a");
            assert!(d["audit_id"].is_string());
        }
        other => panic!("expected -32092, got {other:?}"),
    }
    // The other upstream keeps serving while `a` restarts, on the same session.
    let r = call(&c, "web__get_post", json!({"post_id": "p1"}), None)
        .await
        .unwrap();
    assert_eq!(structured(&r)["id"], "p1");
    // `a` comes back with a new process; the next call succeeds.
    let deadline = Instant::now() + Duration::from_secs(15);
    let new_pid = loop {
        match call(&c, "a__stats", json!({}), None).await {
            Ok(r) => break structured(&r)["pid"].as_u64().unwrap(),
            Err(e) => {
                // While `a` restarts its tools are not in tools/list, yet calls to them are
                // "not connected" (retryable), never unknown_tool.
                assert_eq!(e.code.0, -32092, "{e:?}");
                assert_eq!(e.data.unwrap()["retryable"], true);
                assert!(Instant::now() < deadline, "upstream a did not come back");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_ne!(new_pid, pid);
    let ready = gw.wait_ready().await;
    assert!(
        ready["upstreams"][0]["restarts"].as_u64().unwrap() >= 1,
        "{ready}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_upstream_times_out_as_runner_failure_and_session_survives() {
    let gw = Gateway::start(&config(&stdio_upstream("a", "    timeout: 500ms\n"), ""));
    gw.wait_ready().await;
    let c = client(&gw.mcp, TOKEN_A).await.unwrap();
    let started = Instant::now();
    let e = call(&c, "a__slow_echo", json!({"text": "x", "ms": 10000}), None)
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.code.0, -32092);
    let d = e.data.unwrap();
    assert_eq!(d["failure_class"], "runner_failure");
    assert_eq!(
        d["retryable"], true,
        "slow_echo is read-only: safe to retry"
    );
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // Same session, same upstream: still works.
    let r = call(&c, "a__get_post", json!({"post_id": "p2"}), None)
        .await
        .unwrap();
    assert_eq!(structured(&r)["id"], "p2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_2026_client_and_session_client_both_work() {
    let gw = Gateway::start(&config(&stdio_upstream("a", ""), ""));
    gw.wait_ready().await;
    let cfg =
        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
            gw.mcp.as_str(),
        )
        .auth_header(TOKEN_A.to_string());
    let stateless = ()
        .serve_with_lifecycle(
            rmcp::transport::StreamableHttpClientTransport::from_config(cfg),
            rmcp::ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .expect("discover client starts");
    let tools = stateless.peer().list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "a__get_post"));
    let r = call(&stateless, "a__get_post", json!({"post_id": "s1"}), None)
        .await
        .unwrap();
    assert_eq!(meta(&r)["toolgate/upstream"], "a");

    let session = client(&gw.mcp, TOKEN_A).await.unwrap();
    let r = call(&session, "a__get_post", json!({"post_id": "s2"}), None)
        .await
        .unwrap();
    assert_eq!(structured(&r)["id"], "s2");

    // A bare server/discover probe is answered at once, never left hanging.
    let http = reqwest::Client::new();
    let started = Instant::now();
    let r = http
        .post(&gw.mcp)
        .bearer_auth(TOKEN_A)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2026-07-28")
        .header("Mcp-Method", "server/discover")
        .body(
            json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "probe", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}}})
            .to_string(),
        )
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("supportedVersions") || text.contains("2026-07-28"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_clear_errors_and_harm_nothing() {
    let gw = Gateway::start(&config(&stdio_upstream("a", ""), "").replace(
        "version: 1",
        "version: 1\nlimits: {max_request_body_bytes: 65536}",
    ));
    gw.wait_ready().await;
    let session = client(&gw.mcp, TOKEN_A).await.unwrap();
    let http = reqwest::Client::new();
    let post = |body: String, ct: &'static str| {
        http.post(&gw.mcp)
            .bearer_auth(TOKEN_A)
            .header("Content-Type", ct)
            .header("Accept", "application/json, text/event-stream")
            .body(body)
            .send()
    };
    let r = post("{not json".into(), "application/json").await.unwrap();
    assert!(
        r.status().is_client_error(),
        "malformed JSON: {}",
        r.status()
    );
    let r = post("{}".into(), "text/plain").await.unwrap();
    assert!(
        r.status().is_client_error(),
        "wrong content type: {}",
        r.status()
    );
    let big = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"pad\":\"{}\"}}",
        "x".repeat(100_000)
    );
    let r = post(big, "application/json").await.unwrap();
    assert_eq!(r.status(), 413, "oversized body");
    let r = http.put(&gw.mcp).bearer_auth(TOKEN_A).send().await.unwrap();
    assert!(
        r.status().is_client_error(),
        "unsupported method: {}",
        r.status()
    );
    let r = http
        .get(gw.mcp.replace("/mcp", "/other"))
        .bearer_auth(TOKEN_A)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // The earlier session and the process are unaffected.
    let r = call(&session, "a__get_post", json!({"post_id": "ok"}), None)
        .await
        .unwrap();
    assert_eq!(structured(&r)["id"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_list_changes_reach_downstream_sessions() {
    let gw = Gateway::start(&config(
        &stdio_upstream("a", ""),
        "  a__add_tool: {side_effect: false}\n",
    ));
    gw.wait_ready().await;
    let c = client(&gw.mcp, TOKEN_A).await.unwrap();
    let before = c
        .service()
        .list_changed
        .load(std::sync::atomic::Ordering::SeqCst);
    call(&c, "a__add_tool", json!({"name": "fresh"}), None)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let names: Vec<String> = c
            .peer()
            .list_all_tools()
            .await
            .unwrap()
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        if names.contains(&"a__fresh".to_string())
            && c.service()
                .list_changed
                .load(std::sync::atomic::Ordering::SeqCst)
                > before
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a__fresh never appeared / no notification: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_can_be_empty_and_conflicts_are_withheld() {
    let ups = format!(
        "{}{}",
        stdio_upstream("a", "    prefix: \"\"\n"),
        stdio_upstream("b", "    prefix: \"\"\n")
    );
    let gw = Gateway::start(&config(&ups, ""));
    let ready = gw.wait_ready().await;
    let conflicts = ready["tool_conflicts"].as_array().unwrap();
    assert!(
        conflicts.iter().any(|c| c["tool"] == "publish_post"),
        "{ready}"
    );
    let c = client(&gw.mcp, TOKEN_A).await.unwrap();
    let names: Vec<String> = c
        .peer()
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(
        !names.contains(&"publish_post".to_string()),
        "a conflicting name must not be shadowed: {names:?}"
    );
    let gw1 = Gateway::start(&config(&stdio_upstream("a", "    prefix: \"\"\n"), ""));
    gw1.wait_ready().await;
    let c1 = client(&gw1.mcp, TOKEN_A).await.unwrap();
    let r = call(&c1, "get_post", json!({"post_id": "same-name"}), None)
        .await
        .unwrap();
    assert_eq!(structured(&r)["id"], "same-name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_runner_is_served_as_its_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "gw.yml", &config(&stdio_upstream("a", ""), ""));
    let mut cmd = tokio::process::Command::new(bin());
    cmd.args([
        "serve",
        "--stdio",
        "--tenant",
        "a",
        "--config",
        path.to_str().unwrap(),
    ]);
    let transport = rmcp::transport::TokioChildProcess::new(cmd).unwrap();
    let c = ().serve(transport).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tools = c.peer().list_all_tools().await.unwrap();
        if tools.iter().any(|t| t.name == "a__get_post") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "upstream tools never appeared over stdio"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = call(&c, "a__get_post", json!({"post_id": "via-stdio"}), None)
        .await
        .unwrap();
    assert_eq!(structured(&r)["id"], "via-stdio");

    // A tools/call whose arguments are not an object: rmcp reads it as an unknown method;
    // the runner gets -32602 invalid_request naming the field, and the call its record.
    let malformed = rmcp::model::CustomRequest::new(
        "tools/call",
        Some(json!({"name": "a__publish_post", "arguments": "not an object"})),
    );
    let e = match c
        .peer()
        .send_request(rmcp::model::ClientRequest::CustomRequest(malformed))
        .await
    {
        Err(rmcp::ServiceError::McpError(e)) => e,
        other => panic!("expected an MCP error, got {other:?}"),
    };
    assert_eq!(e.code.0, -32602, "{e:?}");
    assert!(
        e.message
            .contains("params.arguments must be a JSON object, not a string"),
        "{e:?}"
    );
    let data = e.data.unwrap();
    assert_eq!(data["reason"], "invalid_request");
    let audit_id = data["audit_id"].as_str().unwrap().to_string();
    c.cancel().await.unwrap();
    // The record is batched; a clean stop commits it. Poll the journal until it is there.
    let journal = dir.path().join("data/journal.db");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found: Option<String> = rusqlite::Connection::open(&journal)
            .unwrap()
            .query_row(
                "SELECT record FROM audit WHERE record LIKE ?1",
                [format!("%{audit_id}%")],
                |r| r.get(0),
            )
            .ok();
        if let Some(record) = found {
            let record: Value = serde_json::from_str(&record).unwrap();
            assert_eq!(
                (record["outcome"].as_str(), record["tool"].as_str()),
                (Some("refused"), Some("a__publish_post"))
            );
            break;
        }
        assert!(Instant::now() < deadline, "no audit record for {audit_id}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_upstream_stdin_and_exits() {
    let gw = Gateway::start(&config(&stdio_upstream("a", ""), ""));
    gw.wait_ready().await;
    let c = client(&gw.mcp, TOKEN_A).await.unwrap();
    let stats = call(&c, "a__stats", json!({}), None).await.unwrap();
    let child_pid = structured(&stats)["pid"].as_u64().unwrap().to_string();
    let mut gw = gw;
    std::process::Command::new("kill")
        .args(["-TERM", &gw.proc.pid().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = gw.proc.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "gateway did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}\n{}", gw.proc.log());
    // The demo upstream exits on EOF; if stdin were not closed it would still be running.
    let alive = std::path::Path::new(&format!("/proc/{child_pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{child_pid}/stat"))
            .unwrap_or_default()
            .contains(") Z");
    assert!(
        !alive,
        "upstream child {child_pid} still running after gateway exit"
    );
    assert!(gw.proc.log().contains("upstream stopped"));
}

#[test]
fn check_rejects_broken_config_with_location_and_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yml");
    std::fs::write(
        &path,
        "version: 1\nupstreams:\n  - name: x\n    command: [a]\n    timeout: forever\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args(["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    let want = format!("{}:5:", path.display());
    assert!(err.contains(&want), "want {want} in: {err}");
    assert!(err.contains("duration"), "{err}");

    std::fs::write(&path, "version: 1\nupstreams:\n  - name: x\n    command: [a]\n  - name: x\n    url: http://h/mcp\n").unwrap();
    let out = std::process::Command::new(bin())
        .args(["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(":5:") && err.contains("upstreams[1].name"),
        "{err}"
    );

    let ok = std::process::Command::new(bin())
        .args([
            "check",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/examples/gateway.yml"),
        ])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}
