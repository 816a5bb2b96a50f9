//! The demo social-platform MCP server behind `toolgate demo-upstream` and the embedded default.
//!
//! Everything is deterministic on purpose: a side effect's id is derived from its arguments, so
//! tests and benchmarks can predict results, and the optional count file lets them count real
//! executions across restarts.

use std::{
    collections::HashMap,
    convert::Infallible,
    io,
    sync::{Arc, Mutex, MutexGuard, PoisonError, atomic::AtomicU64, atomic::Ordering},
    time::Duration,
};

use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::{conn::auto, graceful::GracefulShutdown};
use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler, ServiceExt,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
        JsonObject, ListToolsResult, MetaObject, PaginatedRequestParams, ServerCapabilities,
        ServerConfig, SubscriptionFilter, Tool, ToolAnnotations, object,
    },
    service::{RequestContext, SubscriptionContext},
    transport::streamable_http_server::session::local::LocalSessionManager,
    transport::{StreamableHttpServerConfig, StreamableHttpService},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::{net::TcpListener, sync::watch};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// Server name reported in initialize/discover (default "toolgate-demo").
    pub name: Option<String>,
    /// When set, every side-effect execution appends one line to this file (JSON: {"tool":..,"account_id":..,"idempotency_key": <from request _meta or null>, "pid": ..}) and fsyncs it before answering; tests count executions with it, across restarts.
    pub count_file: Option<std::path::PathBuf>,
    /// Adds test-only tools (`slow_echo`, `crash`, `stats`, `add_tool`).
    pub test_tools: bool,
    /// Artificial delay before answering every tools/call (default 0).
    pub delay: Duration,
}

/// Serves one client on stdin/stdout until EOF; logs (via `tracing`) must go to stderr.
pub async fn serve_stdio(opts: DemoOptions) -> io::Result<()> {
    // With pipes (how the gateway spawns us) this stays on the reactor instead of paying a
    // blocking-pool hand-off per message; it falls back to plain stdio otherwise.
    let transport = rmcp::transport::stdio_pipes();
    let running = Demo::new(opts)
        .serve(transport)
        .await
        .map_err(io::Error::other)?;
    running.waiting().await.map_err(io::Error::other)?;
    Ok(())
}

/// Serves Streamable HTTP at `/mcp` on `listener` until `shutdown` fires; other paths get 404.
pub async fn serve_http(
    opts: DemoOptions,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let demo = Demo::new(opts);
    // Port-less entries match any port, so ephemeral loopback ports are accepted.
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(["localhost", "127.0.0.1", "::1"])
        .with_cancellation_token(shutdown.child_token());
    let sessions = Arc::new(LocalSessionManager::default());
    let mcp = StreamableHttpService::new(move || Ok(demo.clone()), sessions, config);
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Usually EMFILE: back off instead of spinning; the listener stays usable.
                    tracing::warn!(%error, "demo upstream: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Small JSON-RPC frames: Nagle would add latency to every benchmarked call.
        let _ = stream.set_nodelay(true);
        let mcp = mcp.clone();
        let service = hyper::service::service_fn(move |req: http::Request<_>| {
            let mcp = mcp.clone();
            async move {
                if req.uri().path() == "/mcp" {
                    return Ok::<_, Infallible>(mcp.handle(req).await);
                }
                let mut response = http::Response::new(Full::from("not found\n").boxed());
                *response.status_mut() = http::StatusCode::NOT_FOUND;
                Ok(response)
            }
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(error) = conn.await {
                tracing::debug!(%error, "demo upstream: connection ended with error");
            }
        });
    }
    // rmcp's token is a child of `shutdown`, so SSE streams end on their own; bound the wait
    // anyway so one stuck client cannot hold up process exit.
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
    Ok(())
}

/// One argument: (name, JSON type, required, description). Schema and validation derive from it.
struct Param(&'static str, &'static str, bool, &'static str);

#[derive(Clone, Copy)]
enum Kind {
    /// Side effect: (kind used as id prefix and URL segment, idempotentHint).
    Effect(&'static str, bool),
    ReadOnly,
    /// Neither read-only nor a platform side effect (process / tool-list control).
    Control,
}

struct Spec(&'static str, &'static str, &'static [Param], Kind);

const ACCOUNT: Param = Param("account_id", "string", true, "Account to act as.");
const TEXT: Param = Param(
    "text",
    "string",
    true,
    "Text; a REJECT: or RETRY: prefix simulates a platform rejection.",
);
#[rustfmt::skip]
const SPECS: &[Spec] = &[
    Spec("publish_post", "Publish a post on the account's timeline.", &[ACCOUNT, TEXT, Param("media_url", "string", false, "Optional media URL.")], Kind::Effect("post", false)),
    Spec("send_dm", "Send a direct message.", &[ACCOUNT, Param("to", "string", true, "Recipient handle."), TEXT], Kind::Effect("dm", false)),
    Spec("reply_comment", "Reply to a comment.", &[ACCOUNT, Param("comment_id", "string", true, "Comment to reply to."), TEXT], Kind::Effect("reply", false)),
    Spec("like_post", "Like a post.", &[ACCOUNT, Param("post_id", "string", true, "Post to like.")], Kind::Effect("like", true)),
    Spec("get_post", "Fetch a post by id (synthetic if this server never published it).", &[Param("post_id", "string", true, "Post id.")], Kind::ReadOnly),
];
/// Listed only with `DemoOptions::test_tools`.
#[rustfmt::skip]
const TEST_SPECS: &[Spec] = &[
    Spec("slow_echo", "Sleep `ms` milliseconds, then echo `text`; honours cancellation.", &[Param("text", "string", true, "Text to echo."), Param("ms", "integer", true, "Delay in milliseconds.")], Kind::ReadOnly),
    Spec("crash", "Exit the whole server process without answering.", &[Param("code", "integer", false, "Exit code (default 3).")], Kind::Control),
    Spec("stats", "In-process side-effect execution count and pid.", &[], Kind::ReadOnly),
    Spec("add_tool", "Add a read-only tool, then notify tools/list_changed.", &[Param("name", "string", true, "New tool's name.")], Kind::Control),
];

fn input_schema(params: &[Param]) -> JsonObject {
    let props: JsonObject = (params.iter())
        .map(|p| (p.0.into(), json!({"type": p.1, "description": p.3})))
        .collect();
    let required: Vec<_> = params.iter().filter(|p| p.2).map(|p| p.0).collect();
    let schema = json!({"type": "object", "properties": props, "required": required});
    let mut schema = object(schema);
    schema.insert("additionalProperties".into(), false.into());
    schema
}

fn build_tool(Spec(name, doc, params, kind): &Spec) -> Tool {
    let tool = Tool::new(*name, *doc, input_schema(params));
    let hints = ToolAnnotations::new();
    match *kind {
        Kind::Effect(_, idempotent) => {
            let s = json!({"type": "string"});
            let proof = json!({"type": "object", "properties": {"screenshot_url": s}});
            let props = json!({"id": s, "url": s, "account_id": s, "proof": proof});
            let required = ["id", "url", "account_id", "proof"];
            let out = json!({"type": "object", "properties": props, "required": required});
            let hints = hints.read_only(false).destructive(false).open_world(true);
            (tool.with_raw_output_schema(Arc::new(object(out))))
                .annotate(hints.idempotent(idempotent))
        }
        Kind::ReadOnly => tool.annotate(hints.read_only(true)),
        Kind::Control => tool,
    }
}

/// Validates against the table the schema came from; the error is meant for the caller to read.
fn check_args(Spec(tool, _, params, _): &Spec, args: &JsonObject) -> Result<(), String> {
    for Param(name, ty, required, _) in *params {
        let ok = |v: &Value| {
            if *ty == "string" {
                v.is_string()
            } else {
                v.is_i64() || v.is_u64()
            }
        };
        match args.get(*name) {
            None if *required => return Err(format!("missing required argument `{name}` ({ty})")),
            Some(v) if !ok(v) => return Err(format!("argument `{name}` must be {ty}, got {v}")),
            _ => {}
        }
    }
    match args
        .keys()
        .find(|k| !params.iter().any(|p| p.0 == k.as_str()))
    {
        Some(extra) => Err(format!("unknown argument `{extra}` for {tool}")),
        None => Ok(()),
    }
}

/// Object keys sorted recursively. serde_json sorts today, but sorting explicitly keeps ids
/// stable should a dependency ever enable its `preserve_order` feature.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().map(|(k, v)| (k.clone(), canonical(v))).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// `<kind>_` + first 16 hex chars of SHA-256 over the compact canonical JSON `[tool, arguments]`.
fn effect_id(kind: &str, tool: &str, args: &JsonObject) -> String {
    let canonical = json!([tool, canonical(&Value::Object(args.clone()))]).to_string();
    let digest = Sha256::digest(canonical.as_bytes());
    format!("{kind}_{}", hex::encode(&digest[..8]))
}

/// `isError` result with a machine-readable body (the text block carries the same JSON).
fn failure(error: &str, reason: &str, retryable: bool) -> CallToolResult {
    let body = json!({"error": error, "reason": reason, "retryable": retryable});
    CallToolResult::structured_error(body)
}

/// No spec fixes the gateway's `_meta` key, so accept any (namespaced) spelling:
/// `idempotency_key`, `toolgate/idempotencyKey`, `x.y/idempotency-key`, ...
fn idempotency_key(meta: &JsonObject) -> Value {
    let is_key = |k: &str| {
        let last = k.rsplit('/').next().unwrap_or(k).replace(['_', '-'], "");
        last.eq_ignore_ascii_case("idempotencykey")
    };
    let found = meta.iter().find(|(k, _)| is_key(k));
    found.map_or(Value::Null, |(_, v)| v.clone())
}

/// A poisoned lock only means another call panicked mid-update; the maps stay usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Shared {
    opts: DemoOptions,
    info: ServerConfig,
    tools: Vec<Tool>,
    dynamic: Mutex<Vec<Tool>>,
    posts: Mutex<HashMap<String, Value>>,
    executions: AtomicU64,
    /// Bumped by `add_tool`; `subscriptions/listen` (2026-07-28 clients) forwards each change.
    tools_changed: watch::Sender<u64>,
}

/// rmcp's HTTP service builds one handler per session, so all state is process-wide.
#[derive(Clone)]
struct Demo(Arc<Shared>);

impl Demo {
    fn new(opts: DemoOptions) -> Self {
        let name = opts.name.clone().unwrap_or_else(|| "toolgate-demo".into());
        let caps = ServerCapabilities::builder().enable_tools();
        let info = ServerConfig::new(caps.enable_tool_list_changed().build())
            .with_server_info(Implementation::new(name, env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Demo social platform. Side-effect tools return deterministic ids; a `text` \
                 starting with REJECT: or RETRY: simulates a platform rejection.",
            );
        let test_specs = if opts.test_tools { TEST_SPECS } else { &[] };
        let tools = SPECS.iter().chain(test_specs).map(build_tool).collect();
        Demo(Arc::new(Shared {
            opts,
            info,
            tools,
            dynamic: Mutex::default(),
            posts: Mutex::default(),
            executions: AtomicU64::new(0),
            tools_changed: watch::Sender::new(0),
        }))
    }

    fn spec(&self, name: &str) -> Option<&'static Spec> {
        let test_specs = if self.0.opts.test_tools {
            TEST_SPECS
        } else {
            &[]
        };
        SPECS.iter().chain(test_specs).find(|s| s.0 == name)
    }

    async fn run(
        &self,
        spec: &'static Spec,
        args: &JsonObject,
        meta: &JsonObject,
        ctx: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        let shared = &self.0;
        let arg = |key: &str| args.get(key).and_then(Value::as_str).unwrap_or_default();
        let int = |key: &str| args.get(key).and_then(Value::as_i64);
        if let Kind::Effect(kind, _) = spec.3 {
            return self.effect(spec.0, kind, args, meta).await;
        }
        match spec.0 {
            "get_post" => {
                let id = arg("post_id");
                let stored = lock(&shared.posts).get(id).cloned();
                CallToolResult::structured(stored.unwrap_or_else(|| {
                    let url = format!("https://demo.social/demo/post/{id}");
                    let text = format!("Synthetic post {id}");
                    json!({"id": id, "url": url, "account_id": "demo", "text": text,
                           "media_url": null, "synthetic": true})
                }))
            }
            "slow_echo" => {
                let ms = u64::try_from(int("ms").unwrap_or(0)).unwrap_or(0);
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(ms)) => {
                        CallToolResult::success(vec![ContentBlock::text(arg("text"))])
                    }
                    () = ctx.ct.cancelled() => failure("cancelled", "request cancelled", true),
                }
            }
            "crash" => {
                let code = int("code").map_or(3, |c| i32::try_from(c).unwrap_or(3));
                tracing::warn!(code, "demo upstream: crash tool called, exiting");
                std::process::exit(code)
            }
            "stats" => {
                let executions = shared.executions.load(Ordering::Relaxed);
                CallToolResult::structured(
                    json!({"executions": executions, "pid": std::process::id()}),
                )
            }
            "add_tool" => {
                let name = arg("name");
                let charset = |c: char| c.is_ascii_alphanumeric() || "_-.".contains(c);
                let clash = SPECS.iter().chain(TEST_SPECS).any(|s| s.0 == name);
                if clash || name.is_empty() || name.len() > 64 || !name.chars().all(charset) {
                    return failure(
                        "invalid_arguments",
                        &format!("cannot add tool `{name}`"),
                        false,
                    );
                }
                {
                    let mut dynamic = lock(&shared.dynamic);
                    if !dynamic.iter().any(|t| t.name == name) {
                        let tool =
                            Tool::new(name.to_owned(), "Added by add_tool.", input_schema(&[]));
                        dynamic.push(tool.annotate(ToolAnnotations::new().read_only(true)));
                    }
                }
                shared
                    .tools_changed
                    .send_modify(|generation| *generation += 1);
                if let Err(error) = ctx.peer.notify_tool_list_changed().await {
                    tracing::debug!(%error, "demo upstream: tools/list_changed not delivered");
                }
                CallToolResult::structured(json!({"added": name}))
            }
            other => unreachable!("{other} is in TEST_SPECS but has no implementation"),
        }
    }

    async fn effect(
        &self,
        tool: &'static str,
        kind: &str,
        args: &JsonObject,
        meta: &JsonObject,
    ) -> CallToolResult {
        let text = args.get("text").and_then(Value::as_str).unwrap_or_default();
        for (prefix, retryable) in [("REJECT:", false), ("RETRY:", true)] {
            if let Some(reason) = text.strip_prefix(prefix) {
                return failure("rejected", reason.trim(), retryable);
            }
        }
        let account = args
            .get("account_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let id = effect_id(kind, tool, args);
        let url = format!("https://demo.social/{account}/{kind}/{id}");
        let proof = json!({"screenshot_url": format!("https://demo.social/proof/{id}.png")});
        let out = json!({"id": id, "url": url, "account_id": account, "proof": proof});
        let post = (tool == "publish_post").then(|| {
            let media_url = args.get("media_url");
            json!({"id": id, "url": url, "account_id": account, "text": text,
                   "media_url": media_url, "synthetic": false})
        });
        let line = json!({"tool": tool, "account_id": account,
                          "idempotency_key": idempotency_key(meta), "pid": std::process::id()});
        let shared = self.0.clone();
        // Count-file line, then in-memory state, with no await in between, so an execution is
        // all-or-nothing; on a spawned task a caller cancelling mid-fsync cannot split it either.
        let execute = move || -> io::Result<()> {
            if let Some(path) = &shared.opts.count_file {
                use std::io::Write;
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?;
                // One write on an O_APPEND fd: concurrent executions never interleave lines.
                file.write_all(format!("{line}\n").as_bytes())?;
                file.sync_data()?;
            }
            if let Some(post) = post {
                lock(&shared.posts).insert(id, post);
            }
            shared.executions.fetch_add(1, Ordering::Relaxed);
            Ok(())
        };
        let done = if self.0.opts.count_file.is_some() {
            let task = tokio::task::spawn_blocking(execute).await;
            task.unwrap_or_else(|e| Err(io::Error::other(e)))
        } else {
            execute()
        };
        match done {
            Ok(()) => CallToolResult::structured(out),
            // Nothing was executed, so the caller may safely retry.
            Err(e) => failure(
                "internal",
                &format!("recording the execution failed: {e}"),
                true,
            ),
        }
    }
}

impl ServerHandler for Demo {
    fn get_info(&self) -> ServerConfig {
        self.0.info.clone()
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let mut tools = self.0.tools.clone();
        tools.extend(lock(&self.0.dynamic).iter().cloned());
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        if !self.0.opts.delay.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(self.0.opts.delay) => {}
                () = ctx.ct.cancelled() => return Err(McpError::internal_error("cancelled", None)),
            }
        }
        // rmcp moves the wire `_meta` into the context; typed params only carry it for requests
        // built in-process. Take both, the context winning.
        let mut meta = request.meta.map(|m| m.0.0).unwrap_or_default();
        meta.extend(ctx.meta.0.0.iter().map(|(k, v)| (k.clone(), v.clone())));
        let args = request.arguments.unwrap_or_default();
        let mut result = if let Some(spec) = self.spec(&request.name) {
            match check_args(spec, &args) {
                Ok(()) => self.run(spec, &args, &meta, &ctx).await,
                Err(message) => failure("invalid_arguments", &message, false),
            }
        } else if lock(&self.0.dynamic).iter().any(|t| t.name == request.name) {
            CallToolResult::structured(json!({"added": request.name}))
        } else {
            let message = format!("unknown tool: {}", request.name);
            return Err(McpError::invalid_params(message, None));
        };
        // Lets tests see what actually reached the upstream, minus protocol plumbing.
        let plumbing = |k: &str| k.starts_with("io.modelcontextprotocol/") || k == "progressToken";
        let seen: JsonObject = meta.into_iter().filter(|(k, _)| !plumbing(k)).collect();
        result.meta = Some(MetaObject(object(json!({"demo/seen_meta": seen}))));
        Ok(result.into())
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(requested.supported_by(&self.0.info.capabilities))
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let mut changes = self.0.tools_changed.subscribe();
        let wanted = context.accepted().tools_list_changed == Some(true);
        loop {
            tokio::select! {
                () = context.cancelled() => return Ok(()),
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    if wanted {
                        let _ = context.sink().notify_tool_list_changed().await;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rmcp::{
        ClientHandler, ClientLifecycleMode, ClientServiceExt, RoleClient, ServiceExt,
        model::{ClientConfig, ProtocolVersion, RequestMetaObject},
        service::NotificationContext,
        transport::StreamableHttpClientTransport,
    };
    use tokio::sync::Notify;

    use super::*;

    /// Starts `serve_http` on an ephemeral port; returns the MCP URL and its shutdown token.
    async fn start(opts: DemoOptions) -> (String, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        tokio::spawn(serve_http(opts, listener, shutdown.clone()));
        (url, shutdown)
    }

    fn call(tool: &str, args: Value, meta: Value) -> CallToolRequestParams {
        let mut params = CallToolRequestParams::new(tool.to_owned()).with_arguments(object(args));
        params.meta = Some(RequestMetaObject(MetaObject(object(meta))));
        params
    }

    fn seen_meta(result: &CallToolResult) -> Value {
        result.meta.as_ref().unwrap().0["demo/seen_meta"].clone()
    }

    #[tokio::test]
    async fn publish_reject_and_get_post_over_http() {
        let dir = tempfile::tempdir().unwrap();
        let count_file = dir.path().join("executions.jsonl");
        let opts = DemoOptions {
            count_file: Some(count_file.clone()),
            ..Default::default()
        };
        let (url, shutdown) = start(opts).await;
        let client = ().serve(StreamableHttpClientTransport::from_uri(url)).await.unwrap();
        assert_eq!(
            client
                .peer_info()
                .unwrap()
                .server_info
                .as_ref()
                .unwrap()
                .name,
            "toolgate-demo"
        );

        let tools = client.list_all_tools().await.unwrap();
        let names: Vec<_> = tools.iter().map(|t| t.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "publish_post",
                "send_dm",
                "reply_comment",
                "like_post",
                "get_post"
            ]
        );
        assert!(
            tools
                .iter()
                .all(|t| t.input_schema["additionalProperties"] == false)
        );
        assert_eq!(
            tools[4].annotations.as_ref().unwrap().read_only_hint,
            Some(true)
        );

        let args = json!({"account_id": "acme", "text": "hello"});
        let meta = json!({"toolgate/idempotency_key": "k1", "trace": 7, "progressToken": 1});
        let published = client
            .call_tool(call("publish_post", args.clone(), meta))
            .await
            .unwrap();
        let digest = Sha256::digest(json!(["publish_post", args]).to_string());
        let id = format!("post_{}", &hex::encode(digest)[..16]);
        let body = published.structured_content.clone().unwrap();
        assert_eq!(body["url"], format!("https://demo.social/acme/post/{id}"));
        assert_eq!(
            body["proof"]["screenshot_url"],
            format!("https://demo.social/proof/{id}.png")
        );
        assert_eq!(
            seen_meta(&published),
            json!({"toolgate/idempotency_key": "k1", "trace": 7})
        );
        let lines = std::fs::read_to_string(&count_file).unwrap();
        let line: Value = serde_json::from_str(lines.trim()).unwrap();
        assert_eq!(line["idempotency_key"], "k1");
        assert_eq!(
            (line["tool"].as_str(), line["account_id"].as_str()),
            (Some("publish_post"), Some("acme"))
        );

        let got = client
            .call_tool(call("get_post", json!({"post_id": id}), json!({})))
            .await
            .unwrap();
        assert_eq!(got.structured_content.unwrap()["text"], "hello");
        let synthetic = client
            .call_tool(call("get_post", json!({"post_id": "p9"}), json!({})))
            .await
            .unwrap();
        assert_eq!(synthetic.structured_content.unwrap()["synthetic"], true);

        for (text, retryable) in [("REJECT: spam", false), ("RETRY:later", true)] {
            let args = json!({"account_id": "acme", "to": "bob", "text": text});
            let rejected = client
                .call_tool(call("send_dm", args, json!({"k": 1})))
                .await
                .unwrap();
            assert_eq!(rejected.is_error, Some(true));
            let body = rejected.structured_content.as_ref().unwrap();
            assert_eq!(body["error"], "rejected");
            assert_eq!(body["retryable"], retryable);
            assert_eq!(seen_meta(&rejected), json!({"k": 1}));
        }
        let missing = client
            .call_tool(call("publish_post", json!({"account_id": "a"}), json!({})))
            .await
            .unwrap();
        assert_eq!(missing.is_error, Some(true));
        assert!(format!("{:?}", missing.content).contains("`text`"));
        let unknown = client
            .call_tool(call("nope", json!({}), json!({})))
            .await
            .unwrap_err();
        assert!(unknown.to_string().contains("nope"), "{unknown}");
        // Only the successful publish executed.
        assert_eq!(
            std::fs::read_to_string(&count_file)
                .unwrap()
                .lines()
                .count(),
            1
        );
        client.cancel().await.unwrap();
        shutdown.cancel();
    }

    #[tokio::test]
    async fn discover_lifecycle_2026_07_28() {
        let opts = DemoOptions {
            name: Some("demo-x".into()),
            ..Default::default()
        };
        let (url, shutdown) = start(opts).await;
        let lifecycle = ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        };
        let transport = StreamableHttpClientTransport::from_uri(url);
        let client = ClientConfig::default()
            .serve_with_lifecycle(transport, lifecycle)
            .await
            .unwrap();
        let info = client.peer_info().unwrap();
        assert_eq!(info.protocol_version, ProtocolVersion::V_2026_07_28);
        assert_eq!(info.server_info.as_ref().unwrap().name, "demo-x");
        assert_eq!(client.list_all_tools().await.unwrap().len(), 5);
        let args = json!({"account_id": "acme", "post_id": "p1"});
        let liked = client
            .call_tool(call("like_post", args, json!({"trace": "t"})))
            .await
            .unwrap();
        assert!(
            liked.structured_content.as_ref().unwrap()["id"]
                .as_str()
                .unwrap()
                .starts_with("like_")
        );
        // The per-request io.modelcontextprotocol/* keys this lifecycle adds are filtered out.
        assert_eq!(seen_meta(&liked), json!({"trace": "t"}));
        client.cancel().await.unwrap();
        shutdown.cancel();
    }

    #[derive(Clone)]
    struct ListChanged(Arc<Notify>);

    impl ClientHandler for ListChanged {
        async fn on_tool_list_changed(&self, _: NotificationContext<RoleClient>) {
            self.0.notify_one();
        }
    }

    #[tokio::test]
    async fn test_tools_add_tool_notifies_and_stats_count() {
        let (url, shutdown) = start(DemoOptions {
            test_tools: true,
            ..Default::default()
        })
        .await;
        let notified = Arc::new(Notify::new());
        let transport = StreamableHttpClientTransport::from_uri(url);
        let client = ListChanged(notified.clone())
            .serve(transport)
            .await
            .unwrap();
        assert_eq!(client.list_all_tools().await.unwrap().len(), 9);
        let added = client
            .call_tool(call("add_tool", json!({"name": "zap"}), json!({})))
            .await
            .unwrap();
        assert_eq!(added.structured_content.unwrap(), json!({"added": "zap"}));
        tokio::time::timeout(Duration::from_secs(2), notified.notified())
            .await
            .unwrap();
        assert!(
            client
                .list_all_tools()
                .await
                .unwrap()
                .iter()
                .any(|t| t.name == "zap")
        );
        let echo = client
            .call_tool(call("slow_echo", json!({"text": "hi", "ms": 5}), json!({})))
            .await
            .unwrap();
        assert_eq!(echo.content[0].as_text().unwrap().text, "hi");
        let args = json!({"account_id": "a", "comment_id": "c", "text": "t"});
        client
            .call_tool(call("reply_comment", args, json!({})))
            .await
            .unwrap();
        let stats = client
            .call_tool(call("stats", json!({}), json!({})))
            .await
            .unwrap();
        assert_eq!(stats.structured_content.unwrap()["executions"], 1);
        client.cancel().await.unwrap();
        shutdown.cancel();
    }
}
