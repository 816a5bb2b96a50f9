//! Tests of the demo server over real HTTP: sessions, tools, side-effect counting and shutdown.

use rmcp::model::{ClientConfig, ProtocolVersion};
use rmcp::transport::StreamableHttpClientTransport as Http;
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, Peer, RoleClient};
use tokio::{sync::Notify, task::JoinHandle, time::timeout};

use super::*;

type Server = JoinHandle<io::Result<()>>;
const V_2026: ProtocolVersion = ProtocolVersion::V_2026_07_28;
const TWO_SECONDS: Duration = Duration::from_secs(2);

/// `serve_http` on an ephemeral port, addressed as `localhost` to exercise the Host check.
async fn start(opts: DemoOptions) -> (Http<reqwest::Client>, CancellationToken, Server) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve_http(opts, listener, shutdown.clone()));
    let transport = Http::from_uri(format!("http://localhost:{port}/mcp"));
    (transport, shutdown, server)
}

/// `request` is the JSON of `tools/call` params: `{"name", "arguments", "_meta"}`.
async fn call(peer: &Peer<RoleClient>, request: Value) -> CallToolResult {
    let params = serde_json::from_value(request).unwrap();
    peer.call_tool(params).await.unwrap()
}

fn body(result: &CallToolResult) -> &Value {
    result.structured_content.as_ref().unwrap()
}

fn seen_meta(result: &CallToolResult) -> &Value {
    &result.meta.as_ref().unwrap().0["demo/seen_meta"]
}

async fn stop(shutdown: CancellationToken, server: Server) {
    shutdown.cancel();
    let stopped = timeout(TWO_SECONDS, server).await;
    stopped.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn publish_reject_and_get_post() {
    let dir = tempfile::tempdir().unwrap();
    let count_file = dir.path().join("executions.jsonl");
    let count = || std::fs::read_to_string(&count_file).unwrap();
    let opts = DemoOptions {
        count_file: Some(count_file.clone()),
        ..Default::default()
    };
    let (transport, shutdown, server) = start(opts).await;
    let client = ().serve(transport).await.unwrap();
    let info = client.peer_info().unwrap();
    assert_eq!(info.server_info.as_ref().unwrap().name, "toolgate-demo");
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<_> = tools.iter().map(|t| t.name.as_ref()).collect();
    let expected = "publish_post send_dm reply_comment like_post get_post";
    assert_eq!(names.join(" "), expected);
    let closed = |t: &Tool| t.input_schema["additionalProperties"] == false;
    assert!(tools.iter().all(closed));
    let get_post_hints = tools[4].annotations.clone().unwrap();
    assert_eq!(get_post_hints.read_only_hint, Some(true));

    let args = json!({"account_id": "acme", "text": "hello"});
    let meta = json!({"toolgate/idempotency_key": "k1", "trace": 7, "progressToken": 1});
    let request = json!({"name": "publish_post", "arguments": args, "_meta": meta});
    let published = call(&client, request).await;
    // Recomputed independently: the id contract is documented on `effect_id`.
    let digest = Sha256::digest(json!(["publish_post", args]).to_string());
    let id = format!("post_{}", &hex::encode(digest)[..16]);
    let url = format!("https://demo.social/acme/post/{id}");
    let proof = json!({"screenshot_url": format!("https://demo.social/proof/{id}.png")});
    let expected = json!({"id": id, "url": url, "account_id": "acme", "proof": proof});
    assert_eq!(*body(&published), expected);
    let expected = json!({"toolgate/idempotency_key": "k1", "trace": 7});
    assert_eq!(*seen_meta(&published), expected);
    let line: Value = serde_json::from_str(&count()).unwrap();
    let expected = json!({"tool": "publish_post", "account_id": "acme",
                          "idempotency_key": "k1", "pid": std::process::id()});
    assert_eq!(line, expected);

    let request = json!({"name": "get_post", "arguments": {"post_id": id}});
    let stored = call(&client, request).await;
    assert_eq!(body(&stored)["text"], "hello");
    let synthetic = json!({"name": "get_post", "arguments": {"post_id": "p9"}});
    assert_eq!(body(&call(&client, synthetic).await)["synthetic"], true);

    for (text, retryable) in [("REJECT: spam", false), ("RETRY:later", true)] {
        let args = json!({"account_id": "acme", "to": "bob", "text": text});
        let request = json!({"name": "send_dm", "arguments": args, "_meta": {"k": 1}});
        let rejected = call(&client, request).await;
        assert_eq!(rejected.is_error, Some(true));
        let reason = text.split_once(':').unwrap().1.trim();
        let expected = json!({"error": "rejected", "reason": reason, "retryable": retryable});
        assert_eq!(*body(&rejected), expected);
        assert_eq!(*seen_meta(&rejected), json!({"k": 1}));
    }
    let missing = json!({"name": "publish_post", "arguments": {"account_id": "a"}});
    let missing = call(&client, missing).await;
    assert_eq!(missing.is_error, Some(true));
    assert!(
        body(&missing)["reason"]
            .as_str()
            .unwrap()
            .contains("`text`")
    );
    let unknown = client.call_tool(CallToolRequestParams::new("nope")).await;
    assert!(unknown.unwrap_err().to_string().contains("nope"));
    // Only the successful publish executed.
    assert_eq!(count().lines().count(), 1);
    client.cancel().await.unwrap();
    stop(shutdown, server).await;
}

#[tokio::test]
async fn discover_lifecycle_2026_07_28() {
    let opts = DemoOptions {
        name: Some("demo-x".into()),
        ..Default::default()
    };
    let (transport, shutdown, server) = start(opts).await;
    let preferred_versions = vec![V_2026];
    let lifecycle = ClientLifecycleMode::Discover { preferred_versions };
    let client = ClientConfig::default().serve_with_lifecycle(transport, lifecycle);
    let client = client.await.unwrap();
    let info = client.peer_info().unwrap();
    assert_eq!(info.protocol_version, V_2026);
    assert_eq!(info.server_info.as_ref().unwrap().name, "demo-x");
    assert_eq!(client.list_all_tools().await.unwrap().len(), 5);
    let args = json!({"account_id": "acme", "post_id": "p1"});
    let request = json!({"name": "like_post", "arguments": args, "_meta": {"trace": "t"}});
    let liked = call(&client, request).await;
    assert!(body(&liked)["id"].as_str().unwrap().starts_with("like_"));
    // The io.modelcontextprotocol/* keys this lifecycle adds to every request are hidden.
    assert_eq!(*seen_meta(&liked), json!({"trace": "t"}));
    client.cancel().await.unwrap();
    stop(shutdown, server).await;
}

#[derive(Clone)]
struct ListChanged(Arc<Notify>);

impl ClientHandler for ListChanged {
    async fn on_tool_list_changed(&self, _: rmcp::service::NotificationContext<RoleClient>) {
        self.0.notify_one();
    }
}

#[tokio::test]
async fn test_tools_and_shutdown_with_open_session() {
    let opts = DemoOptions {
        test_tools: true,
        ..Default::default()
    };
    let (transport, shutdown, server) = start(opts).await;
    let notified = Arc::new(Notify::new());
    let handler = ListChanged(notified.clone());
    let client = handler.serve(transport).await.unwrap();
    assert_eq!(client.list_all_tools().await.unwrap().len(), 9);
    let request = json!({"name": "add_tool", "arguments": {"name": "zap"}});
    let added = call(&client, request).await;
    assert_eq!(*body(&added), json!({"added": "zap"}));
    timeout(TWO_SECONDS, notified.notified()).await.unwrap();
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "zap"));
    let zap = call(&client, json!({"name": "zap"})).await;
    assert_eq!(*body(&zap), json!({"added": "zap"}));
    let echo = json!({"name": "slow_echo", "arguments": {"text": "hi", "ms": 5}});
    let echo = call(&client, echo).await;
    assert_eq!(echo.content[0].as_text().unwrap().text, "hi");
    let args = json!({"account_id": "a", "comment_id": "c", "text": "t"});
    call(&client, json!({"name": "reply_comment", "arguments": args})).await;
    let stats = call(&client, json!({"name": "stats", "arguments": {}})).await;
    assert_eq!(body(&stats)["executions"], 1);
    // The session (and its SSE stream) is still open: shutdown must not wait on it.
    stop(shutdown, server).await;
}
