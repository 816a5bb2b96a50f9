//! The `tools/call` fast path against rmcp's own answers: same envelope and meaning, session
//! checks, the stateless 2026-07-28 route, JSON and SSE bodies, and cancellation.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const ACCEPT_BOTH: &str = "application/json, text/event-stream";

struct Raw {
    http: reqwest::Client,
    url: String,
    session: Option<String>,
}

/// A decoded answer: HTTP status, content type, and the JSON-RPC message in the body.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    message: Value,
}

impl Raw {
    fn new(url: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: url.into(),
            session: None,
        }
    }

    fn post(&self, body: &Value, extra: &[(&str, &str)]) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .post(&self.url)
            .bearer_auth(TOKEN_A)
            .header("Content-Type", "application/json")
            .body(body.to_string());
        if !extra.iter().any(|(k, _)| k.eq_ignore_ascii_case("accept")) {
            req = req.header("Accept", ACCEPT_BOTH);
        }
        if let Some(s) = &self.session {
            req = req
                .header("Mcp-Session-Id", s)
                .header("MCP-Protocol-Version", "2025-11-25");
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        req
    }

    async fn send(&self, body: &Value, extra: &[(&str, &str)]) -> Answer {
        let r = self.post(body, extra).send().await.unwrap();
        decode(r).await
    }

    /// initialize + notifications/initialized, as a 2025-11-25 session client.
    async fn handshake(&mut self) {
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}});
        let r = self.post(&init, &[]).send().await.unwrap();
        assert_eq!(r.status(), 200);
        self.session = Some(r.headers()["mcp-session-id"].to_str().unwrap().to_string());
        let _ = r.text().await.unwrap();
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let r = self.post(&note, &[]).send().await.unwrap();
        assert_eq!(r.status(), 202);
    }
}

async fn decode(r: reqwest::Response) -> Answer {
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = r.text().await.unwrap();
    let message = if content_type.starts_with("text/event-stream") {
        text.split("\n\n")
            .filter_map(|event| {
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
                    .collect();
                serde_json::from_str::<Value>(&data.join("\n")).ok()
            })
            .find(|m| m.get("id").is_some())
            .unwrap_or(Value::Null)
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Answer {
        status,
        content_type,
        message,
    }
}

fn call_body(id: i64, tool: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": tool, "arguments": args}})
}

/// The message without the per-call audit id, for comparing two answers.
fn without_audit_id(mut m: Value) -> Value {
    if let Some(meta) = m
        .pointer_mut("/result/_meta")
        .and_then(Value::as_object_mut)
    {
        meta.remove("toolgate/audit_id");
    }
    if let Some(data) = m.pointer_mut("/error/data").and_then(Value::as_object_mut) {
        data.remove("audit_id");
    }
    m
}

/// An `Origin` header makes the fast path hand the request to rmcp (which ignores it here).
const VIA_RMCP: (&str, &str) = ("Origin", "http://rmcp.example");

/// Waits until the session's `initialized` notification has reached the gateway, i.e. until
/// a call is answered with one JSON body (rmcp's session path answers with SSE).
async fn until_fast(c: &Raw) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = c
            .send(
                &call_body(1, "a__get_post", json!({"post_id": "warm"})),
                &[],
            )
            .await;
        if a.content_type == "application/json" {
            return a;
        }
        assert!(Instant::now() < deadline, "never took the fast path: {a:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_calls_match_rmcp_answers() {
    let gw = Gateway::start(&config(&stdio_upstream("a", ""), ""));
    gw.wait_ready().await;
    let mut c = Raw::new(&gw.mcp);
    c.handshake().await;
    let warm = until_fast(&c).await;
    assert_eq!(warm.status, 200);
    assert_eq!(warm.message["result"]["structuredContent"]["id"], "warm");

    let cases = [
        call_body(7, "a__get_post", json!({"post_id": "p1"})),
        call_body(8, "nope__x", json!({})),
        call_body(
            9,
            "a__publish_post",
            json!({"account_id": "a-1", "text": "REJECT: spam"}),
        ),
        json!({"jsonrpc": "2.0", "id": "s-10", "method": "tools/call",
            "params": {"name": "a__get_post", "arguments": {"post_id": "p2"}, "_meta": {"trace": 1}}}),
    ];
    for body in cases {
        let fast = c.send(&body, &[]).await;
        let slow = c.send(&body, &[VIA_RMCP]).await;
        assert_eq!(fast.content_type, "application/json", "{fast:?}");
        assert!(
            slow.content_type.starts_with("text/event-stream"),
            "{slow:?}"
        );
        assert_eq!((fast.status, slow.status), (200, 200));
        assert_eq!(
            without_audit_id(fast.message.clone()),
            without_audit_id(slow.message.clone()),
            "fast path and rmcp disagree on {body}"
        );
        // A 2025-11-25 peer gets the legacy shape: no resultType.
        assert!(
            fast.message.pointer("/result/resultType").is_none(),
            "{fast:?}"
        );
    }

    // SSE when the client ranks it first: one event with the same message.
    let body = call_body(11, "a__get_post", json!({"post_id": "p3"}));
    let sse = c
        .send(
            &body,
            &[("Accept", "text/event-stream, application/json;q=0.5")],
        )
        .await;
    assert!(sse.content_type.starts_with("text/event-stream"), "{sse:?}");
    let json_answer = c.send(&body, &[]).await;
    assert_eq!(
        without_audit_id(sse.message),
        without_audit_id(json_answer.message)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_or_closed_session_gets_rmcps_404() {
    let gw = Gateway::start(&config(&stdio_upstream("a", ""), ""));
    gw.wait_ready().await;
    let body = call_body(1, "a__get_post", json!({"post_id": "x"}));
    let mut c = Raw::new(&gw.mcp);
    c.session = Some("no-such-session".into());
    let fast = c.post(&body, &[]).send().await.unwrap();
    let slow = c.post(&body, &[VIA_RMCP]).send().await.unwrap();
    assert_eq!((fast.status().as_u16(), slow.status().as_u16()), (404, 404));
    assert_eq!(fast.text().await.unwrap(), slow.text().await.unwrap());

    // A session closed with DELETE is gone for the fast path too.
    let mut c = Raw::new(&gw.mcp);
    c.handshake().await;
    until_fast(&c).await;
    let r = c
        .http
        .delete(&gw.mcp)
        .bearer_auth(TOKEN_A)
        .header("Mcp-Session-Id", c.session.as_deref().unwrap())
        .header("MCP-Protocol-Version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let after = c.post(&body, &[]).send().await.unwrap();
    assert_eq!(after.status(), 404);
}

fn stateless_body(id: i64, tool: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": tool, "arguments": args, "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {},
            "idempotency_key": "k-1"}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_2026_calls_match_rmcp_answers() {
    let gw = Gateway::start(&config(&stdio_upstream("a", ""), ""));
    gw.wait_ready().await;
    let c = Raw::new(&gw.mcp);
    for (id, tool) in [(1, "a__get_post"), (2, "nope__x")] {
        let body = stateless_body(id, tool, json!({"post_id": "st"}));
        let headers = [
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", tool),
        ];
        let fast = c.send(&body, &headers).await;
        let mut via_rmcp = headers.to_vec();
        via_rmcp.push(VIA_RMCP);
        let slow = c.send(&body, &via_rmcp).await;
        assert_eq!(fast.content_type, "application/json");
        assert_eq!(fast.status, slow.status, "{fast:?} vs {slow:?}");
        assert_eq!(
            without_audit_id(fast.message.clone()),
            without_audit_id(slow.message),
        );
        if id == 1 {
            assert_eq!(fast.message["result"]["structuredContent"]["id"], "st");
        }
    }
    // A missing Mcp-Name header is rmcp's to reject, with its own answer.
    let body = stateless_body(3, "a__get_post", json!({"post_id": "st"}));
    let r = c
        .send(
            &body,
            &[
                ("MCP-Protocol-Version", "2026-07-28"),
                ("Mcp-Method", "tools/call"),
            ],
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_notification_stops_a_fast_path_call() {
    let gw = Gateway::start(&config(&stdio_upstream("a", ""), ""));
    gw.wait_ready().await;
    let mut c = Raw::new(&gw.mcp);
    c.handshake().await;
    until_fast(&c).await;
    let body = call_body(42, "a__slow_echo", json!({"text": "x", "ms": 10000}));
    let pending = c.post(&body, &[]).send();
    let canceller = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let note = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": 42, "reason": "test"}});
        c.post(&note, &[]).send().await.unwrap().status().as_u16()
    };
    let (answer, cancel_status) = tokio::join!(pending, canceller);
    assert_eq!(cancel_status, 202);
    let a = decode(answer.unwrap()).await;
    // A 10 s echo that was not cancelled would answer with a result, not this error.
    assert_eq!(a.message["error"]["code"], -32092, "{a:?}");
    assert_eq!(
        a.message["error"]["data"]["failure_class"],
        "runner_failure"
    );

    // A cancellation for an id nobody runs goes to rmcp, which accepts it.
    let note = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 999, "reason": "late"}});
    assert_eq!(c.post(&note, &[]).send().await.unwrap().status(), 202);
    // Another tenant naming the same session and id cancels nothing.
    let body = call_body(43, "a__slow_echo", json!({"text": "y", "ms": 800}));
    let pending = c.post(&body, &[]).send();
    let intruder = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let note = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": 43, "reason": "intruder"}});
        c.http
            .post(&gw.mcp)
            .bearer_auth(TOKEN_B)
            .header("Content-Type", "application/json")
            .header("Accept", ACCEPT_BOTH)
            .header("Mcp-Session-Id", c.session.as_deref().unwrap())
            .header("MCP-Protocol-Version", "2025-11-25")
            .body(note.to_string())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let (answer, _) = tokio::join!(pending, intruder);
    let a = decode(answer.unwrap()).await;
    assert!(a.message.get("result").is_some(), "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_that_hangs_up_mid_call_still_leaves_the_calls_audit_record() {
    let gw = Gateway::start(&config(&stdio_upstream("a", ""), ""));
    gw.wait_ready().await;
    let body = stateless_body(9, "a__slow_echo", json!({"text": "bye", "ms": 1500}));
    // The client gives up after 300 ms and drops its connection: the gateway's task for
    // the call is dropped with it, mid-forward.
    let r = reqwest::Client::new()
        .post(&gw.mcp)
        .bearer_auth(TOKEN_A)
        .header("Content-Type", "application/json")
        .header("Accept", ACCEPT_BOTH)
        .header("MCP-Protocol-Version", "2026-07-28")
        .header("Mcp-Method", "tools/call")
        .header("Mcp-Name", "a__slow_echo")
        .timeout(Duration::from_millis(300))
        .body(body.to_string())
        .send()
        .await;
    assert!(r.is_err(), "the call should not have been answered yet");
    let records = gw
        .audit_records_when(|r| r.iter().any(|r| r.tool == "a__slow_echo"))
        .await;
    let mine: Vec<_> = records
        .iter()
        .filter(|r| r.tool == "a__slow_echo")
        .collect();
    assert_eq!(mine.len(), 1, "exactly one record for the call");
    assert_eq!(mine[0].outcome, toolgate::journal::Outcome::InDoubt);
    assert_eq!(
        mine[0].failure_class,
        Some(toolgate::call::FailureClass::RunnerFailure)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_answers_only_to_the_tenant_that_opened_it() {
    let gw = Gateway::start(&config(&stdio_upstream("a", ""), ""));
    gw.wait_ready().await;
    let mut a = Raw::new(&gw.mcp);
    a.handshake().await;
    until_fast(&a).await;
    let sid = a.session.clone().unwrap();
    let body = call_body(7, "a__get_post", json!({"post_id": "x"}));
    // Tenant b's token with a's session id: a call (fast path and rmcp path alike) and a
    // DELETE all get rmcp's answer to an unknown session.
    let as_b = |method: reqwest::Method| {
        a.http
            .request(method, &gw.mcp)
            .bearer_auth(TOKEN_B)
            .header("Mcp-Session-Id", &sid)
            .header("MCP-Protocol-Version", "2025-11-25")
            .header("Accept", ACCEPT_BOTH)
    };
    for via_rmcp in [false, true] {
        let mut req = as_b(reqwest::Method::POST)
            .header("Content-Type", "application/json")
            .body(body.to_string());
        if via_rmcp {
            req = req.header(VIA_RMCP.0, VIA_RMCP.1);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(r.text().await.unwrap(), "Not Found: Session not found");
    }
    let r = as_b(reqwest::Method::DELETE).send().await.unwrap();
    assert_eq!(r.status(), 404);
    // The session is a's, untouched.
    let mine = a.send(&body, &[]).await;
    assert_eq!(mine.status, 200, "{mine:?}");
    assert_eq!(mine.message["result"]["structuredContent"]["id"], "x");
}
