//! End-to-end tests of graceful shutdown: a side effect in flight when the gateway is told to
//! stop finishes and is journaled, in HTTP mode (signal to the whole process group, as a
//! terminal's Ctrl-C sends it) and in `serve --stdio` mode.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rmcp::ServiceExt;
use serde_json::{Value, json};

/// A stdio demo upstream whose every answer takes 1.5 s, so a call is surely in flight when
/// the signal arrives.
const SLOW_UPSTREAM: &str = "  - name: a\n    command: [\"{bin}\", demo-upstream, --test-tools, --delay-ms, \"1500\", --count-file, \"{dir}/a.count\"]\n";

/// A stateless (2026-07-28) `tools/call` over plain HTTP: one request, one answer.
async fn stateless_call(mcp: &str, tool: &str, args: Value, key: &str) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": tool, "arguments": args, "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {},
            "idempotency_key": key}}});
    reqwest::Client::new()
        .post(mcp)
        .bearer_auth(TOKEN_A)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2026-07-28")
        .header("Mcp-Method", "tools/call")
        .header("Mcp-Name", tool)
        .body(body.to_string())
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The process group of a process, from /proc/PID/stat (the field after state and ppid).
fn process_group(pid: u64) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.split(' ').nth(2).unwrap().parse().unwrap()
}

/// The state of an idempotency key, read straight from the journal file.
fn key_state(journal: &std::path::Path, key: &str) -> String {
    let conn = rusqlite::Connection::open(journal).unwrap();
    conn.query_row("SELECT state FROM idempotency WHERE key = ?1", [key], |r| {
        r.get(0)
    })
    .unwrap()
}

fn kill(signal: &str, target: &str) {
    let ok = std::process::Command::new("kill")
        .args([signal, "--", target])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {signal} {target} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_to_the_process_group_lets_a_side_effect_in_flight_finish() {
    let mut gw = Gateway::start_in_own_group(&config(SLOW_UPSTREAM, ""));
    gw.wait_ready().await;
    let stats = stateless_call(&gw.mcp, "a__stats", json!({}), "k-stats").await;
    let child = stats["result"]["structuredContent"]["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("{stats}"));
    let gateway_group = process_group(gw.proc.pid().into());
    assert_eq!(gateway_group, u64::from(gw.proc.pid()));
    assert_ne!(
        process_group(child),
        gateway_group,
        "the upstream child must not share the gateway's process group"
    );

    let mcp = gw.mcp.clone();
    let in_flight = tokio::spawn(async move {
        let args = json!({"account_id": "a-1", "text": "drained"});
        stateless_call(&mcp, "a__publish_post", args, "k-drain").await
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    // What a terminal does on Ctrl-C: SIGINT to every process of the foreground group.
    kill("-INT", &format!("-{gateway_group}"));

    let answer = in_flight.await.unwrap();
    assert!(
        answer["result"]["structuredContent"]["id"].is_string(),
        "the call in flight must complete: {answer}\n{}",
        gw.proc.log()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = gw.proc.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "gateway did not exit on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}\n{}", gw.proc.log());
    assert_eq!(executions(&gw.path("a.count")), 1);
    assert_eq!(
        key_state(&gw.path("data/journal.db"), "k-drain"),
        "succeeded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_sigterm_lets_a_side_effect_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "gw.yml", &config(SLOW_UPSTREAM, ""));
    let mut gateway = tokio::process::Command::new(bin())
        .args(["serve", "--stdio", "--tenant", "a", "--config"])
        .arg(&path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = gateway.id().unwrap().to_string();
    let io = (
        gateway.stdout.take().unwrap(),
        gateway.stdin.take().unwrap(),
    );
    let c = ().serve(io).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !c
        .peer()
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .any(|t| t.name == "a__publish_post")
    {
        assert!(Instant::now() < deadline, "upstream tools never appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let peer = c.peer().clone();
    let in_flight = tokio::spawn(async move {
        peer.call_tool(params(
            "a__publish_post",
            json!({"account_id": "a-1", "text": "drained"}),
            Some(json!({"idempotency_key": "k-stdio"})),
        ))
        .await
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    kill("-TERM", &pid);

    let r = in_flight
        .await
        .unwrap()
        .expect("the call in flight must complete");
    assert!(structured(&r)["id"].is_string(), "{r:?}");
    let status = tokio::time::timeout(Duration::from_secs(15), gateway.wait())
        .await
        .expect("gateway did not exit after the drain")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(executions(&dir.path().join("a.count")), 1);
    assert_eq!(
        key_state(&dir.path().join("data/journal.db"), "k-stdio"),
        "succeeded"
    );
}
