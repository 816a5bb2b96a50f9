//! The demo social-platform MCP server behind `toolgate demo-upstream` and the embedded default.
//!
//! Deterministic on purpose: a side effect's id derives from its arguments, so tests and
//! benchmarks can predict results, and the optional count file counts real executions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::{convert::Infallible, io, time::Duration};

use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, MetaObject, PaginatedRequestParams, ServerCapabilities,
    ServerConfig, Tool, ToolAnnotations, object,
};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt, service::RequestContext};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
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
    // With pipes (how the gateway spawns us) I/O stays on the reactor instead of paying a
    // blocking-pool hand-off per message; other stdio kinds fall back to the blocking handles.
    let transport = rmcp::transport::stdio_pipes();
    let running = match Demo::new(opts).serve(transport).await {
        Ok(running) => running,
        // EOF before a client ever spoke is still "served until EOF", not a failure.
        Err(rmcp::service::ServerInitializeError::ConnectionClosed(_)) => return Ok(()),
        Err(error) => return Err(io::Error::other(error)),
    };
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
    let builder = hyper::server::conn::http1::Builder::new();
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
        let conn = graceful.watch(conn);
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

/// One argument: (name, type, required, description). Schema and validation derive from it.
struct Param(&'static str, Type, bool, &'static str);
/// A JSON Schema type name and the check that enforces it.
type Type = (&'static str, fn(&Value) -> bool);
const STR: Type = ("string", Value::is_string);
const INT: Type = ("integer", Value::is_i64);

#[derive(Clone, Copy)]
enum Kind {
    /// Side effect: (kind, the id prefix and URL segment; idempotentHint).
    Effect(&'static str, bool),
    ReadOnly,
    /// Neither read-only nor a platform side effect (process / tool-list control).
    Control,
}

/// (name, description, arguments, kind).
struct Spec(&'static str, &'static str, &'static [Param], Kind);

const ACCOUNT: Param = Param("account_id", STR, true, "Account to act as.");
const TEXT: Param = Param(
    "text",
    STR,
    true,
    "Text; REJECT:/RETRY: prefixes simulate a rejection.",
);
#[rustfmt::skip]
const SPECS: &[Spec] = &[
    Spec("publish_post", "Publish a post on the account's timeline.", &[ACCOUNT, TEXT, Param("media_url", STR, false, "Optional media URL.")], Kind::Effect("post", false)),
    Spec("send_dm", "Send a direct message.", &[ACCOUNT, Param("to", STR, true, "Recipient handle."), TEXT], Kind::Effect("dm", false)),
    Spec("reply_comment", "Reply to a comment.", &[ACCOUNT, Param("comment_id", STR, true, "Comment to reply to."), TEXT], Kind::Effect("reply", false)),
    Spec("like_post", "Like a post.", &[ACCOUNT, Param("post_id", STR, true, "Post to like.")], Kind::Effect("like", true)),
    Spec("get_post", "Fetch a post by id (synthetic if this server never published it).", &[Param("post_id", STR, true, "Post id.")], Kind::ReadOnly),
];
/// Listed only with `DemoOptions::test_tools`.
#[rustfmt::skip]
const TEST_SPECS: &[Spec] = &[
    Spec("slow_echo", "Sleep `ms` milliseconds, then echo `text`; honours cancellation.", &[Param("text", STR, true, "Text to echo."), Param("ms", INT, true, "Delay in milliseconds.")], Kind::ReadOnly),
    Spec("crash", "Exit the whole server process without answering.", &[Param("code", INT, false, "Exit code (default 3).")], Kind::Control),
    Spec("stats", "In-process side-effect execution count and pid.", &[], Kind::ReadOnly),
    Spec("add_tool", "Add a read-only tool, then notify tools/list_changed.", &[Param("name", STR, true, "New tool's name.")], Kind::Control),
];

fn input_schema(params: &[Param]) -> JsonObject {
    let prop = |p: &Param| (p.0.into(), json!({"type": p.1.0, "description": p.3}));
    let props: JsonObject = params.iter().map(prop).collect();
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
            let tool = tool.with_raw_output_schema(Arc::new(object(out)));
            tool.annotate(hints.idempotent(idempotent))
        }
        Kind::ReadOnly => tool.annotate(hints.read_only(true)),
        Kind::Control => tool,
    }
}

/// Validates against the table the schema came from; the message is for the caller to read.
fn check_args(Spec(tool, _, params, _): &Spec, args: &JsonObject) -> Result<(), String> {
    for Param(name, (ty, fits), required, _) in *params {
        match args.get(*name) {
            None if *required => return Err(format!("missing required argument `{name}` ({ty})")),
            Some(v) if !fits(v) => return Err(format!("argument `{name}` must be {ty}, got {v}")),
            _ => {}
        }
    }
    let unknown = args.keys().find(|k| !params.iter().any(|p| p.0 == *k));
    unknown.map_or(Ok(()), |k| {
        Err(format!("unknown argument `{k}` for {tool}"))
    })
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

/// Arguments were validated against the schema first, so absent means optional and absent.
fn str_arg<'a>(args: &'a JsonObject, key: &str) -> &'a str {
    args.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// A poisoned lock only means another call panicked mid-update; the maps stay usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Shared {
    opts: DemoOptions,
    info: ServerConfig,
    specs: Vec<&'static Spec>,
    tools: Vec<Tool>,
    dynamic: Mutex<Vec<Tool>>,
    posts: Mutex<HashMap<String, Value>>,
    executions: AtomicU64,
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
        let specs: Vec<_> = SPECS.iter().chain(test_specs).collect();
        let tools = specs.iter().copied().map(build_tool).collect();
        let (dynamic, posts) = (Mutex::default(), Mutex::default());
        let executions = AtomicU64::new(0);
        Demo(Arc::new(Shared {
            opts,
            info,
            specs,
            tools,
            dynamic,
            posts,
            executions,
        }))
    }

    async fn run(
        &self,
        spec: &Spec,
        args: &JsonObject,
        meta: &JsonObject,
        ctx: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        let shared = &self.0;
        let arg = |key| str_arg(args, key);
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
                    json!({"id": id, "url": url, "account_id": "demo", "text": text, "synthetic": true})
                }))
            }
            "slow_echo" => {
                let ms = u64::try_from(int("ms").unwrap_or(0)).unwrap_or(0);
                let sleep = tokio::time::sleep(Duration::from_millis(ms));
                tokio::select! {
                    () = sleep => CallToolResult::success(vec![ContentBlock::text(arg("text"))]),
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
                let pid = std::process::id();
                CallToolResult::structured(json!({"executions": executions, "pid": pid}))
            }
            "add_tool" => {
                let name = arg("name");
                let charset = |c: char| c.is_ascii_alphanumeric() || "_-.".contains(c);
                let clash = SPECS.iter().chain(TEST_SPECS).any(|s| s.0 == name);
                if clash || name.is_empty() || name.len() > 64 || !name.chars().all(charset) {
                    let reason = format!("cannot add tool `{name}`");
                    return failure("invalid_arguments", &reason, false);
                }
                let tool = Tool::new(name.to_owned(), "Added by add_tool.", input_schema(&[]));
                // Scoped: the guard must be gone before the await below.
                {
                    let mut dynamic = lock(&shared.dynamic);
                    if !dynamic.iter().any(|t| t.name == name) {
                        dynamic.push(tool.annotate(ToolAnnotations::new().read_only(true)));
                    }
                }
                if let Err(error) = ctx.peer.notify_tool_list_changed().await {
                    tracing::debug!(%error, "demo upstream: tools/list_changed not delivered");
                }
                CallToolResult::structured(json!({"added": name}))
            }
            other => unreachable!("{other} is listed in TEST_SPECS but not implemented"),
        }
    }

    async fn effect(
        &self,
        tool: &'static str,
        kind: &str,
        args: &JsonObject,
        meta: &JsonObject,
    ) -> CallToolResult {
        let text = str_arg(args, "text");
        for (prefix, retryable) in [("REJECT:", false), ("RETRY:", true)] {
            if let Some(reason) = text.strip_prefix(prefix) {
                return failure("rejected", reason.trim(), retryable);
            }
        }
        let account = str_arg(args, "account_id");
        let id = effect_id(kind, tool, args);
        let url = format!("https://demo.social/{account}/{kind}/{id}");
        let proof = json!({"screenshot_url": format!("https://demo.social/proof/{id}.png")});
        let out = json!({"id": id, "url": url, "account_id": account, "proof": proof});
        let post = (tool == "publish_post").then(|| {
            let media_url = args.get("media_url");
            json!({"id": id, "url": url, "account_id": account, "text": text, "media_url": media_url})
        });
        let key = idempotency_key(meta);
        let line = json!({"tool": tool, "account_id": account, "idempotency_key": key, "pid": std::process::id()});
        let shared = self.0.clone();
        // Count-file line, then in-memory state, with no await in between: an execution is
        // all-or-nothing, and on a spawned task a caller cancelling mid-fsync cannot split it.
        let execute = move || -> io::Result<()> {
            if let Some(path) = &shared.opts.count_file {
                use std::io::Write;
                let mut file = std::fs::File::options()
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
            // Nothing was recorded as executed, so the caller may safely retry.
            Err(e) => failure("internal", &format!("recording the execution: {e}"), true),
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
        let name = request.name.as_ref();
        let mut result = if let Some(spec) = self.0.specs.iter().find(|s| s.0 == name) {
            match check_args(spec, &args) {
                Ok(()) => self.run(spec, &args, &meta, &ctx).await,
                Err(message) => failure("invalid_arguments", &message, false),
            }
        } else if lock(&self.0.dynamic).iter().any(|t| t.name == name) {
            CallToolResult::structured(json!({"added": name}))
        } else {
            return Err(McpError::invalid_params(
                format!("unknown tool: {name}"),
                None,
            ));
        };
        // Lets tests see what actually reached the upstream, minus protocol plumbing.
        let plumbing = |k: &str| k.starts_with("io.modelcontextprotocol/") || k == "progressToken";
        let seen: JsonObject = meta.into_iter().filter(|(k, _)| !plumbing(k)).collect();
        result.meta = Some(MetaObject(object(json!({"demo/seen_meta": seen}))));
        Ok(result.into())
    }
}

#[cfg(test)]
mod tests;
