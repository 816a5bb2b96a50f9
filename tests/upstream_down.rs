//! End to end: calls to the tools of an upstream that is not connected (killed and in restart
//! backoff, failing to start, or not connected yet after start-up) fail with a retryable
//! -32092 naming that upstream, never a non-retryable unknown_tool, and an idempotency key
//! used during the outage executes exactly once after recovery.

mod common;

use std::time::{Duration, Instant};

use common::schema::assert_valid;
use common::*;
use rmcp::ServiceExt;
use rmcp::model::ErrorData;
use serde_json::{Value, json};

/// A stdio demo upstream that starts only while `{dir}/<gate>` exists (else it exits at once,
/// so the gateway's handshake fails and it backs off), after `sleep` seconds.
fn gated_upstream(name: &str, gate: &str, sleep: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    command: [sh, -c, \"sleep {sleep}; [ -e {{dir}}/{gate} ] || exit 1; exec {{bin}} demo-upstream --test-tools --count-file {{dir}}/{name}.count\"]\n{extra}"
    )
}

/// Asserts the retryable "not connected" error of upstream `upstream`, valid per the proto
/// schema; returns its audit id.
fn assert_not_connected(e: &ErrorData, upstream: &str) -> String {
    assert_eq!(e.code.0, -32092, "{e:?}");
    let d = e.data.clone().unwrap();
    assert_valid("error-data.schema.json", &d);
    assert_eq!(d["failure_class"], "tool_failure", "{d}");
    assert_eq!(d["retryable"], true, "{d}");
    assert_eq!(d["upstream"], upstream, "{d}");
    let prefix = format!("upstream {upstream:?}: not connected (");
    assert!(e.message.starts_with(&prefix), "{}", e.message);
    assert!(e.message.ends_with("; retry later"), "{}", e.message);
    d["audit_id"].as_str().unwrap().to_string()
}

/// Calls until the call succeeds; every failure on the way must be the retryable -32092.
async fn until_ok<S: rmcp::service::Service<rmcp::RoleClient>>(
    c: &rmcp::service::RunningService<rmcp::RoleClient, S>,
    tool: &str,
    args: Value,
    meta: Option<Value>,
    upstream: &str,
) -> rmcp::model::CallToolResult {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match call(c, tool, args.clone(), meta.clone()).await {
            Ok(r) => return r,
            Err(e) => {
                assert_not_connected(&e, upstream);
                assert!(Instant::now() < deadline, "{upstream} never came back");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_upstream_is_retryable_and_a_key_used_meanwhile_executes_once_after() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("up"), "").unwrap();
    let ups = format!(
        "{}  - name: ghost\n    command: [/nonexistent/tool-server]\n    required: false\n",
        gated_upstream("a", "up", "0", "")
    );
    let gw = Gateway::start_in(&config(&ups, ""), dir);
    gw.wait_ready().await;
    let c = client(&gw.mcp, TOKEN_A).await.unwrap();

    // An upstream that never starts: every name with its prefix is its own.
    let e = call(&c, "ghost__anything", json!({}), None)
        .await
        .unwrap_err();
    let ghost_audit = assert_not_connected(&e, "ghost");
    assert!(e.message.contains("cannot start"), "{}", e.message);
    // A name no upstream can serve is still unknown.
    let e = call(&c, "nope__x", json!({}), None).await.unwrap_err();
    assert_eq!(
        (e.code.0, e.data.unwrap()["retryable"].clone()),
        (-32602, json!(false))
    );

    // Kill `a` and keep it from starting again: it stays in restart backoff.
    let stats = call(&c, "a__stats", json!({}), None).await.unwrap();
    let pid = structured(&stats)["pid"].as_u64().unwrap();
    std::fs::remove_file(gw.path("up")).unwrap();
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while c
        .peer()
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .any(|t| t.name == "a__get_post")
    {
        assert!(Instant::now() < deadline, "a's tools never left tools/list");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // /readyz names it with the same lowercase word as its `status` field (both read from
    // one snapshot, so they agree even while it flips between connecting and backoff).
    let (code, ready) = gw.admin("GET", "/readyz", None, None).await;
    assert_eq!(code, 503, "{ready}");
    let status = ready["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "a")
        .unwrap()["status"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        ["connecting", "backoff"].contains(&status.as_str()),
        "{ready}"
    );
    let reason = format!("required upstream a is {status}: ");
    assert!(
        ready["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().starts_with(&reason)),
        "{ready}"
    );

    // Its tools are withdrawn from tools/list but calls to them are "not connected", retryable.
    let e = call(&c, "a__get_post", json!({"post_id": "p"}), None)
        .await
        .unwrap_err();
    assert_not_connected(&e, "a");
    let publish = |key: Option<&str>| {
        let meta = key.map(|k| json!({"idempotency_key": k}));
        call(
            &c,
            "a__publish_post",
            json!({"account_id": "a-1", "text": "outage"}),
            meta,
        )
    };
    // A side effect with a key: refused before the key is claimed, so a repeat during the
    // outage is not `in_flight` or `in_doubt`, and nothing executes.
    let mut outage_audits = Vec::new();
    for _ in 0..2 {
        let e = publish(Some("k-outage")).await.unwrap_err();
        outage_audits.push(assert_not_connected(&e, "a"));
    }
    // The gates still judge the call while the upstream is down.
    let e = publish(None).await.unwrap_err();
    assert_eq!(e.data.unwrap()["reason"], "missing_idempotency_key");
    assert_eq!(executions(&gw.path("a.count")), 0);

    // Recovery: the same key executes once (attempt 1), then replays.
    std::fs::write(gw.path("up"), "").unwrap();
    let args = json!({"account_id": "a-1", "text": "outage"});
    let meta_k = Some(json!({"idempotency_key": "k-outage"}));
    let r = until_ok(&c, "a__publish_post", args.clone(), meta_k.clone(), "a").await;
    assert_ne!(r.is_error, Some(true));
    assert_eq!(
        (
            meta(&r)["toolgate/attempt"].clone(),
            meta(&r)["toolgate/replayed"].clone()
        ),
        (json!(1), json!(false))
    );
    let again = call(&c, "a__publish_post", args, meta_k).await.unwrap();
    assert_eq!(meta(&again)["toolgate/replayed"], true);
    assert_eq!(structured(&again)["id"], structured(&r)["id"]);
    assert_eq!(executions(&gw.path("a.count")), 1);

    // The records of the unsent calls say so: failed, tool_failure, the upstream, nothing sent.
    let records = gw
        .audit_records_when(|rs| rs.iter().any(|r| r.id == ghost_audit))
        .await;
    let mut unsent = outage_audits.clone();
    unsent.push(ghost_audit);
    for id in &unsent {
        let r = records
            .iter()
            .find(|r| &r.id == id)
            .expect("record of an unsent call");
        assert_valid(
            "audit-record.schema.json",
            &serde_json::to_value(r).unwrap(),
        );
        assert_eq!(r.outcome, toolgate::journal::Outcome::Failed, "{r:?}");
        assert_eq!(
            r.failure_class,
            Some(toolgate::call::FailureClass::ToolFailure)
        );
        assert!(
            r.reason.as_deref().unwrap().contains("nothing was sent"),
            "{r:?}"
        );
        assert!(r.attempt.is_none(), "no attempt was claimed: {r:?}");
    }
    let key_records: Vec<_> = records
        .iter()
        .filter(|r| {
            r.idempotency_key.as_deref() == Some("k-outage")
                && r.outcome == toolgate::journal::Outcome::Success
        })
        .collect();
    assert_eq!(key_records.len(), 2, "one execution and one replay");
    assert_eq!(
        records
            .iter()
            .find(|r| r.id == outage_audits[0])
            .unwrap()
            .upstream
            .as_deref(),
        Some("a")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_call_before_the_first_connect_is_retryable_not_unknown() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("up"), "").unwrap();
    // The upstream takes two seconds to start; `a__publish_post` is classified by the config.
    let cfg = config(
        &gated_upstream("a", "up", "2", ""),
        "  a__publish_post: {side_effect: true, action: publish}\n",
    );
    let path = write_config(dir.path(), "gw.yml", &cfg);
    let mut cmd = tokio::process::Command::new(bin());
    cmd.args([
        "serve",
        "--stdio",
        "--tenant",
        "a",
        "--config",
        path.to_str().unwrap(),
    ]);
    // Its log is not part of the test's output.
    let (transport, _) = rmcp::transport::TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let c = ().serve(transport).await.unwrap();

    // Right after initialize: not connected yet, so retryable, not unknown.
    let e = call(&c, "a__get_post", json!({"post_id": "early"}), None)
        .await
        .unwrap_err();
    assert_not_connected(&e, "a");
    assert!(
        e.message.contains("not connected yet since start-up"),
        "{}",
        e.message
    );
    // A tool neither listed yet nor configured: same answer.
    let e = call(&c, "a__stats", json!({}), None).await.unwrap_err();
    assert_not_connected(&e, "a");
    // A configured side effect passes its gates, then is not sent and its key not claimed.
    let args = json!({"account_id": "a-1", "text": "early"});
    let key = Some(json!({"idempotency_key": "k-early"}));
    let e = call(&c, "a__publish_post", args.clone(), key.clone())
        .await
        .unwrap_err();
    assert_not_connected(&e, "a");
    // A name without a configured prefix is unknown even now.
    let e = call(&c, "zzz", json!({}), None).await.unwrap_err();
    assert_eq!(e.data.unwrap()["reason"], "unknown_tool");

    let started = Instant::now();
    let r = until_ok(&c, "a__publish_post", args, key, "a").await;
    assert_eq!(meta(&r)["toolgate/attempt"], 1);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(executions(&dir.path().join("a.count")), 1);
    c.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_prefix_upstream_down_makes_unattributable_names_retryable() {
    let dir = tempfile::tempdir().unwrap();
    let ups = format!(
        "{}{}",
        stdio_upstream("a", ""),
        gated_upstream("bare", "up", "0", "    prefix: \"\"\n    required: false\n")
    );
    let gw = Gateway::start_in(&config(&ups, ""), dir);
    gw.wait_ready().await;
    let c = client(&gw.mcp, TOKEN_A).await.unwrap();
    // `bare` has never connected: any name nobody else serves may be its own.
    let e = call(&c, "get_post", json!({"post_id": "p"}), None)
        .await
        .unwrap_err();
    assert_not_connected(&e, "bare");
    let e = call(&c, "no_such_tool", json!({}), None).await.unwrap_err();
    assert_not_connected(&e, "bare");
    let r = call(&c, "a__get_post", json!({"post_id": "p"}), None)
        .await
        .unwrap();
    assert_eq!(structured(&r)["id"], "p");

    // Once it is connected, its tools work and a truly unknown name is unknown_tool again.
    std::fs::write(gw.path("up"), "").unwrap();
    let r = until_ok(&c, "get_post", json!({"post_id": "bare-p"}), None, "bare").await;
    assert_eq!(structured(&r)["id"], "bare-p");
    let e = call(&c, "no_such_tool", json!({}), None).await.unwrap_err();
    assert_eq!(e.code.0, -32602);
    assert_eq!(e.data.unwrap()["reason"], "unknown_tool");
}
