//! A lean MCP client for Streamable HTTP upstreams, driven by the calling task itself.
//!
//! rmcp's client runs every request through its service loop, a transport worker task and a
//! spawned POST task, each a wake-up. Here a `tools/call` is one pooled HTTP/1 POST sent and
//! read by the task that runs the call: serialize, send, parse the `application/json` body or
//! the `text/event-stream` events until the response with our id, done. The connection's
//! lifecycle (handshake, re-initialization after a 404, the GET event stream, liveness pings)
//! belongs to the supervisor, which owns the [`HttpConn`] and alone replaces its session.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures::FutureExt;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rmcp::model::{
    CallToolRequestParams, ErrorData, JsonRpcMessage, ProgressToken, RequestId, RequestMetaObject,
    ServerJsonRpcMessage, ServerNotification, ServerResult, Tool,
};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// The protocol version toolgate asks for in `initialize`.
pub const PROTOCOL_VERSION: &str = "2025-11-25";
/// Versions a server may answer `initialize` with (they all have the handshake).
const HANDSHAKE_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
const HEADER_SESSION_ID: &str = "mcp-session-id";
const HEADER_PROTOCOL_VERSION: &str = "mcp-protocol-version";
const JSON: &str = "application/json";
const EVENT_STREAM: &str = "text/event-stream";
const ACCEPT_BOTH: &str = "application/json, text/event-stream";
/// Largest JSON-RPC message (JSON body or one SSE event) read from an upstream.
const MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;
/// How long a response body may take to end after the response event was read, before the
/// connection is given up instead of reused.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why one exchange with the upstream failed. The caller maps it to an `UpstreamFault`.
#[derive(Debug)]
pub enum HttpFault {
    /// The request provably never reached the upstream (it could not connect).
    NotSent(String),
    /// The upstream no longer knows our session (HTTP 404), so it did not process the request.
    Expired,
    /// The request was (or may have been) sent; no answer arrived.
    Lost(String),
    /// The upstream answered with something that is not the expected MCP response.
    Protocol(String),
    /// No answer within the timeout.
    Timeout(Duration),
    /// The runner cancelled the call.
    Cancelled,
    /// The upstream answered with a JSON-RPC error.
    Rpc(ErrorData),
}

impl std::fmt::Display for HttpFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotSent(d) => write!(f, "not sent: {d}"),
            Self::Expired => write!(f, "the upstream expired the session; re-initializing"),
            Self::Lost(d) => write!(f, "connection lost: {d}"),
            Self::Protocol(d) => write!(f, "protocol error: {d}"),
            Self::Timeout(t) => write!(f, "no answer within {t:?}"),
            Self::Cancelled => write!(f, "cancelled"),
            Self::Rpc(e) => write!(f, "error {}: {}", e.code.0, e.message),
        }
    }
}

/// One negotiated session: what every request after `initialize` carries.
#[derive(Debug)]
struct Session {
    id: Option<HeaderValue>,
    version: HeaderValue,
    generation: u64,
}

/// How an upstream is reached (from the config), independent of any session.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub uri: Uri,
    pub auth: Option<HeaderValue>,
    pub timeout: Duration,
    pub max_concurrent_requests: usize,
}

impl Endpoint {
    /// Validates the URL and resolves the bearer token from `token_env`.
    pub fn new(
        url: &str,
        token_env: Option<&str>,
        timeout: Duration,
        max_concurrent_requests: usize,
    ) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("invalid upstream URL {url:?}: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(format!(
                    "upstream URL scheme {other:?} is not supported (this build speaks plain http)"
                ));
            }
            None => return Err(format!("upstream URL {url:?} has no scheme")),
        }
        let auth = match token_env {
            Some(var) => {
                let token = std::env::var(var).map_err(|_| {
                    format!("environment variable {var} (upstream bearer token) is not set")
                })?;
                let mut v = HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| format!("environment variable {var} is not a valid token"))?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(Self {
            uri,
            auth,
            timeout,
            max_concurrent_requests: max_concurrent_requests.max(1),
        })
    }
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A live connection to one Streamable HTTP upstream: a connection pool and a session.
pub struct HttpConn {
    endpoint: Endpoint,
    client: HttpClient,
    session: RwLock<Arc<Session>>,
    next_id: AtomicI64,
    slots: Semaphore,
    /// `notifications/tools/list_changed` arrived: the supervisor refreshes the tool list.
    refresh: mpsc::Sender<()>,
    /// A call got 404 for its session: the supervisor re-initializes.
    pub(super) expired: Notify,
    /// A call could not reach the upstream: the supervisor checks whether it is down.
    pub(super) trouble: Notify,
}

impl std::fmt::Debug for HttpConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConn")
            .field("uri", &self.endpoint.uri)
            .finish()
    }
}

fn pooled_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_keepalive(Some(Duration::from_secs(60)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_timer(TokioTimer::new())
        .build(connector)
}

#[derive(Serialize)]
struct Outgoing<'a, P: Serialize> {
    jsonrpc: &'static str,
    id: i64,
    method: &'a str,
    params: P,
}

/// The parts of a server message that make it an answer, read in one pass. (rmcp's
/// `JsonRpcMessage` first buffers the whole message to find out which kind it is; an answer
/// is by far the most common message, so it gets the direct route.)
#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    id: Option<RequestId>,
    #[serde(default)]
    result: Option<ServerResult>,
    #[serde(default)]
    error: Option<ErrorData>,
    #[serde(default)]
    method: Option<IgnoredAny>,
}

/// The first `limit` bytes of a body, as text, for error details.
fn snippet(body: &[u8]) -> String {
    let end = body.len().min(200);
    String::from_utf8_lossy(&body[..end]).trim().to_string()
}

fn is_media(value: Option<&HeaderValue>, media: &str) -> bool {
    value
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .is_some_and(|essence| essence.eq_ignore_ascii_case(media))
}

fn transport_fault(e: hyper_util::client::legacy::Error) -> HttpFault {
    if e.is_connect() {
        HttpFault::NotSent(format!("cannot connect: {e}"))
    } else {
        HttpFault::Lost(format!("{e}"))
    }
}

impl HttpConn {
    /// Opens a pool and runs the handshake: `initialize`, then `notifications/initialized`.
    pub async fn connect(endpoint: Endpoint, refresh: mpsc::Sender<()>) -> Result<Self, String> {
        let slots = Semaphore::new(endpoint.max_concurrent_requests);
        let conn = Self {
            endpoint,
            client: pooled_client(),
            session: RwLock::new(Arc::new(Session {
                id: None,
                version: HeaderValue::from_static(PROTOCOL_VERSION),
                generation: 0,
            })),
            next_id: AtomicI64::new(1),
            slots,
            refresh,
            expired: Notify::new(),
            trouble: Notify::new(),
        };
        conn.initialize().await?;
        Ok(conn)
    }

    fn session(&self) -> Arc<Session> {
        self.session.read().expect("session lock").clone()
    }

    fn next_id(&self) -> i64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Runs the handshake and installs the new session (also after the old one expired).
    pub async fn initialize(&self) -> Result<(), String> {
        let id = self.next_id();
        let body = serde_json::to_vec(&Outgoing {
            jsonrpc: "2.0",
            id,
            method: "initialize",
            params: json!({
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "toolgate", "version": env!("CARGO_PKG_VERSION")},
            }),
        })
        .expect("serializable");
        let attempt = async {
            let req = self.post(None, None, body);
            let resp = self.client.request(req).await.map_err(transport_fault)?;
            let session_id = resp.headers().get(HEADER_SESSION_ID).cloned();
            let result = self.read_answer(resp, id, false).await?;
            Ok::<_, HttpFault>((session_id, result))
        };
        let (session_id, result) = tokio::time::timeout(self.endpoint.timeout, attempt)
            .await
            .map_err(|_| format!("initialize: no answer within {:?}", self.endpoint.timeout))?
            .map_err(|e| format!("initialize: {e}"))?;
        let ServerResult::InitializeResult(init) = result else {
            return Err("initialize: the answer is not an InitializeResult".into());
        };
        let version = init.protocol_version.as_str();
        if !HANDSHAKE_VERSIONS.contains(&version) {
            return Err(format!(
                "initialize: upstream chose protocol version {version}, which toolgate does not speak"
            ));
        }
        let version = HeaderValue::from_str(version)
            .map_err(|_| format!("initialize: bad protocol version {version:?}"))?;
        let note =
            serde_json::to_vec(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
                .expect("serializable");
        let req = self.post(session_id.as_ref(), Some(&version), note);
        let resp = tokio::time::timeout(self.endpoint.timeout, self.client.request(req))
            .await
            .map_err(|_| "notifications/initialized: no answer in time".to_string())?
            .map_err(|e| format!("notifications/initialized: {e}"))?;
        let status = resp.status();
        // Read (and discard) whatever came back so the connection goes back to the pool.
        let _ = tokio::time::timeout(self.endpoint.timeout, resp.into_body().collect()).await;
        if !status.is_success() {
            return Err(format!("notifications/initialized: HTTP {status}"));
        }
        let mut slot = self.session.write().expect("session lock");
        let generation = slot.generation + 1;
        *slot = Arc::new(Session {
            id: session_id,
            version,
            generation,
        });
        Ok(())
    }

    /// The generation of the current session (changes with every handshake).
    pub fn generation(&self) -> u64 {
        self.session().generation
    }

    fn post(
        &self,
        session_id: Option<&HeaderValue>,
        version: Option<&HeaderValue>,
        body: Vec<u8>,
    ) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(Bytes::from(body)));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.endpoint.uri.clone();
        let h = req.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
        h.insert(header::ACCEPT, HeaderValue::from_static(ACCEPT_BOTH));
        if let Some(a) = &self.endpoint.auth {
            h.insert(header::AUTHORIZATION, a.clone());
        }
        if let Some(s) = session_id {
            h.insert(HEADER_SESSION_ID, s.clone());
        }
        if let Some(v) = version {
            h.insert(HEADER_PROTOCOL_VERSION, v.clone());
        }
        req
    }

    /// Sends one request and reads its answer, in this task. `Ok` is the `result`.
    async fn exchange(&self, id: i64, body: Vec<u8>) -> Result<ServerResult, HttpFault> {
        let session = self.session();
        let req = self.post(session.id.as_ref(), Some(&session.version), body);
        let resp = match self.client.request(req).await {
            Ok(r) => r,
            Err(e) => {
                let fault = transport_fault(e);
                if matches!(fault, HttpFault::NotSent(_)) {
                    self.trouble.notify_one();
                }
                return Err(fault);
            }
        };
        if resp.status() == StatusCode::NOT_FOUND && session.id.is_some() {
            // The server forgot the session, so it did not process this request.
            self.expired.notify_one();
            return Err(HttpFault::Expired);
        }
        self.read_answer(resp, id, true).await
    }

    /// Reads the answer to request `id` from a POST response: one JSON body, or SSE events
    /// until the response with that id.
    async fn read_answer(
        &self,
        resp: Response<Incoming>,
        id: i64,
        sent: bool,
    ) -> Result<ServerResult, HttpFault> {
        let lost = |d: String| {
            if sent {
                HttpFault::Lost(d)
            } else {
                HttpFault::Protocol(d)
            }
        };
        let status = resp.status();
        let ctype = resp.headers().get(header::CONTENT_TYPE).cloned();
        if status == StatusCode::ACCEPTED || status == StatusCode::NO_CONTENT {
            return Err(HttpFault::Protocol(format!(
                "HTTP {status} without a response to the request"
            )));
        }
        if is_media(ctype.as_ref(), EVENT_STREAM) && status.is_success() {
            return self.read_event_answer(resp.into_body(), id, sent).await;
        }
        let body = http_body_util::Limited::new(resp.into_body(), MAX_MESSAGE_BYTES)
            .collect()
            .await
            .map_err(|e| lost(format!("reading the response body: {e}")))?
            .to_bytes();
        if is_media(ctype.as_ref(), JSON) {
            match self.answer_in(&body, id) {
                Some(answer) => return answer,
                None if status.is_success() => {
                    return Err(HttpFault::Protocol(format!(
                        "the JSON body does not answer the request: {}",
                        snippet(&body)
                    )));
                }
                None => {}
            }
        }
        if status.is_success() {
            Err(HttpFault::Protocol(format!(
                "unexpected response (HTTP {status}, content type {:?}): {}",
                ctype.as_ref().and_then(|v| v.to_str().ok()).unwrap_or(""),
                snippet(&body)
            )))
        } else {
            Err(HttpFault::Protocol(format!(
                "HTTP {status}: {}",
                snippet(&body)
            )))
        }
    }

    async fn read_event_answer(
        &self,
        mut body: Incoming,
        id: i64,
        sent: bool,
    ) -> Result<ServerResult, HttpFault> {
        let mut parser = SseParser::default();
        loop {
            let frame = match body.frame().await {
                Some(Ok(f)) => f,
                Some(Err(e)) => {
                    let d = format!("event stream broke: {e}");
                    return Err(if sent {
                        HttpFault::Lost(d)
                    } else {
                        HttpFault::Protocol(d)
                    });
                }
                None => {
                    let d = "event stream ended before the response".to_string();
                    return Err(if sent {
                        HttpFault::Lost(d)
                    } else {
                        HttpFault::Protocol(d)
                    });
                }
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            parser.push(&data);
            while let Some(event) = parser.next_event().map_err(HttpFault::Protocol)? {
                if event.is_empty() {
                    continue;
                }
                if let Some(answer) = self.answer_in(&event, id) {
                    finish(body);
                    return answer;
                }
            }
        }
    }

    /// The answer to request `id` if the message in `bytes` is it; anything else the server
    /// says is handled on the side.
    fn answer_in(&self, bytes: &[u8], id: i64) -> Option<Result<ServerResult, HttpFault>> {
        match parse_message(bytes, id) {
            Parsed::Answer(a) => Some(a),
            Parsed::Other(msg) => {
                self.on_server_message(msg);
                None
            }
            Parsed::NotOurs => None,
        }
    }

    /// A message the server sent that answers none of our requests.
    pub(super) fn on_server_message(&self, msg: ServerJsonRpcMessage) {
        match msg {
            JsonRpcMessage::Notification(n) => {
                if matches!(
                    n.notification,
                    ServerNotification::ToolListChangedNotification(_)
                ) {
                    // A full channel already holds a pending refresh; one is enough.
                    let _ = self.refresh.try_send(());
                }
            }
            JsonRpcMessage::Request(r) => {
                // toolgate declares no client capabilities; answer ping, refuse the rest.
                let answer = match &r.request {
                    rmcp::model::ServerRequest::PingRequest(_) => {
                        json!({"jsonrpc": "2.0", "id": r.id, "result": {}})
                    }
                    _ => json!({"jsonrpc": "2.0", "id": r.id, "error": {
                        "code": -32601, "message": "toolgate does not serve requests from upstreams"}}),
                };
                self.spawn_post(answer);
            }
            _ => {}
        }
    }

    /// Fire-and-forget POST of a notification or response (its outcome changes nothing).
    fn spawn_post(&self, message: Value) {
        let session = self.session();
        let req = self.post(
            session.id.as_ref(),
            Some(&session.version),
            serde_json::to_vec(&message).expect("serializable"),
        );
        let client = self.client.clone();
        let timeout = self.endpoint.timeout;
        tokio::spawn(async move {
            if let Ok(Ok(resp)) = tokio::time::timeout(timeout, client.request(req)).await {
                let _ = tokio::time::timeout(timeout, resp.into_body().collect()).await;
            }
        });
    }

    fn spawn_cancel(&self, id: i64, reason: &str) {
        self.spawn_post(
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": id, "reason": reason}}),
        );
    }

    /// Sends one request with the timeout and the runner's cancellation; on either, tells
    /// the upstream with `notifications/cancelled`.
    async fn request<P: Serialize>(
        &self,
        method: &str,
        params: P,
        ct: Option<&CancellationToken>,
    ) -> Result<ServerResult, HttpFault> {
        let timeout = self.endpoint.timeout;
        let id = self.next_id();
        let body = serde_json::to_vec(&Outgoing {
            jsonrpc: "2.0",
            id,
            method,
            params,
        })
        .map_err(|e| HttpFault::Protocol(format!("cannot serialize {method}: {e}")))?;
        let run = async {
            let _slot = self
                .slots
                .acquire()
                .await
                .map_err(|_| HttpFault::NotSent("connection closed".into()))?;
            self.exchange(id, body).await
        };
        let timed = tokio::time::timeout(timeout, run);
        let outcome = match ct {
            Some(ct) => {
                tokio::select! {
                    r = timed => r,
                    _ = ct.cancelled() => {
                        self.spawn_cancel(id, "cancelled by the runner");
                        return Err(HttpFault::Cancelled);
                    }
                }
            }
            None => timed.await,
        };
        outcome.unwrap_or_else(|_| {
            self.spawn_cancel(id, "timed out");
            Err(HttpFault::Timeout(timeout))
        })
    }

    /// `tools/call` with the request's `_meta` in `params._meta`, as rmcp's client sends it
    /// (including a progress token of its own).
    pub async fn call_tool(
        &self,
        mut params: CallToolRequestParams,
        meta: RequestMetaObject,
        ct: &CancellationToken,
    ) -> Result<ServerResult, HttpFault> {
        let mut meta = meta;
        meta.set_progress_token(ProgressToken(RequestId::Number(self.next_id())));
        params.meta = Some(meta);
        self.request("tools/call", &params, Some(ct)).await
    }

    /// `tools/list`, following `nextCursor` to the end.
    pub async fn list_tools(&self) -> Result<Vec<Tool>, HttpFault> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            match self.request("tools/list", params, None).await? {
                ServerResult::ListToolsResult(page) => {
                    tools.extend(page.tools);
                    match page.next_cursor {
                        Some(next) if !next.is_empty() => cursor = Some(next),
                        _ => return Ok(tools),
                    }
                }
                _ => {
                    return Err(HttpFault::Protocol(
                        "the answer to tools/list is not a tool list".into(),
                    ));
                }
            }
        }
    }

    /// `ping`: is the upstream alive and does it still know our session?
    pub async fn ping(&self) -> Result<(), HttpFault> {
        match self.request("ping", json!({}), None).await {
            Ok(_) => Ok(()),
            // A server that does not implement ping is still alive.
            Err(HttpFault::Rpc(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Opens the GET event stream for server-initiated messages. `Ok(None)` when the
    /// server offers none (405).
    pub async fn open_events(&self) -> Result<Option<Incoming>, HttpFault> {
        let session = self.session();
        let mut req = Request::new(Full::new(Bytes::new()));
        *req.uri_mut() = self.endpoint.uri.clone();
        let h = req.headers_mut();
        h.insert(header::ACCEPT, HeaderValue::from_static(EVENT_STREAM));
        if let Some(a) = &self.endpoint.auth {
            h.insert(header::AUTHORIZATION, a.clone());
        }
        if let Some(s) = &session.id {
            h.insert(HEADER_SESSION_ID, s.clone());
        }
        h.insert(HEADER_PROTOCOL_VERSION, session.version.clone());
        let resp = tokio::time::timeout(self.endpoint.timeout, self.client.request(req))
            .await
            .map_err(|_| HttpFault::Timeout(self.endpoint.timeout))?
            .map_err(transport_fault)?;
        let status = resp.status();
        if status == StatusCode::METHOD_NOT_ALLOWED {
            return Ok(None);
        }
        if status == StatusCode::NOT_FOUND && session.id.is_some() {
            return Err(HttpFault::Expired);
        }
        if !status.is_success() || !is_media(resp.headers().get(header::CONTENT_TYPE), EVENT_STREAM)
        {
            return Err(HttpFault::Protocol(format!(
                "GET event stream: HTTP {status}"
            )));
        }
        Ok(Some(resp.into_body()))
    }

    /// Ends the session on the server (`DELETE`), best effort.
    pub async fn close(&self) {
        let session = self.session();
        let Some(id) = &session.id else {
            return;
        };
        let mut req = Request::new(Full::new(Bytes::new()));
        *req.method_mut() = Method::DELETE;
        *req.uri_mut() = self.endpoint.uri.clone();
        let h = req.headers_mut();
        if let Some(a) = &self.endpoint.auth {
            h.insert(header::AUTHORIZATION, a.clone());
        }
        h.insert(HEADER_SESSION_ID, id.clone());
        h.insert(HEADER_PROTOCOL_VERSION, session.version.clone());
        let _ = tokio::time::timeout(Duration::from_secs(2), self.client.request(req)).await;
    }
}

/// What one message from the server is to a request waiting for its answer.
enum Parsed {
    Answer(Result<ServerResult, HttpFault>),
    /// A request or notification from the server.
    Other(ServerJsonRpcMessage),
    /// An answer to another request, or nothing readable.
    NotOurs,
}

fn parse_message(bytes: &[u8], id: i64) -> Parsed {
    let ours = |rid: &RequestId| *rid == RequestId::Number(id);
    if let Ok(reply) = serde_json::from_slice::<Reply>(bytes)
        && reply.method.is_none()
    {
        return match (reply.result, reply.error) {
            (Some(result), None) if reply.id.as_ref().is_some_and(ours) => {
                Parsed::Answer(Ok(result))
            }
            (None, Some(error)) if reply.id.as_ref().is_none_or(ours) => {
                Parsed::Answer(Err(HttpFault::Rpc(error)))
            }
            _ => Parsed::NotOurs,
        };
    }
    match serde_json::from_slice::<ServerJsonRpcMessage>(bytes) {
        Ok(JsonRpcMessage::Response(r)) if ours(&r.id) => Parsed::Answer(Ok(r.result)),
        Ok(JsonRpcMessage::Error(e)) if e.id.as_ref().is_none_or(ours) => {
            Parsed::Answer(Err(HttpFault::Rpc(e.error)))
        }
        Ok(msg @ (JsonRpcMessage::Request(_) | JsonRpcMessage::Notification(_))) => {
            Parsed::Other(msg)
        }
        Ok(_) => Parsed::NotOurs,
        Err(_) => {
            tracing::debug!(message = %snippet(bytes), "ignoring an unparsable message");
            Parsed::NotOurs
        }
    }
}

/// Lets a response body end so its connection returns to the pool. Usually the end is
/// already buffered; otherwise a small task waits for it (bounded).
fn finish(mut body: Incoming) {
    use hyper::body::Body as _;
    loop {
        if body.is_end_stream() {
            return;
        }
        match body.frame().now_or_never() {
            Some(Some(Ok(_))) => continue,
            Some(_) => return,
            None => break,
        }
    }
    tokio::spawn(async move {
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while let Some(Ok(_)) = body.frame().await {}
        })
        .await;
    });
}

/// Reads server-sent events from the GET stream, one JSON-RPC message at a time.
pub struct EventReader {
    body: Incoming,
    parser: SseParser,
}

impl EventReader {
    pub fn new(body: Incoming) -> Self {
        Self {
            body,
            parser: SseParser::default(),
        }
    }

    /// The next message; `Err` when the stream ended or broke (with why).
    pub async fn next(&mut self) -> Result<ServerJsonRpcMessage, String> {
        loop {
            while let Some(event) = self.parser.next_event()? {
                if event.is_empty() {
                    continue;
                }
                if let Ok(msg) = serde_json::from_slice::<ServerJsonRpcMessage>(&event) {
                    return Ok(msg);
                }
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.parser.push(&data);
                    }
                }
                Some(Err(e)) => return Err(format!("event stream broke: {e}")),
                None => return Err("event stream ended".into()),
            }
        }
    }
}

/// An incremental `text/event-stream` parser that yields the `data` of each event.
///
/// Lines may end in LF, CRLF or CR and may be split across chunks; several `data:` lines
/// of one event are joined with LF; comments, `event:`, `id:` and `retry:` are skipped.
#[derive(Default)]
pub struct SseParser {
    buf: BytesMut,
    data: Vec<u8>,
    has_data: bool,
    /// The previous chunk ended in CR: a leading LF in the next one belongs to it.
    skip_lf: bool,
}

impl SseParser {
    pub fn push(&mut self, chunk: &[u8]) {
        let mut chunk = chunk;
        if self.skip_lf {
            self.skip_lf = false;
            if chunk.first() == Some(&b'\n') {
                chunk = &chunk[1..];
            }
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The data of the next complete event, if one is buffered (empty for a data-less event).
    pub fn next_event(&mut self) -> Result<Option<Vec<u8>>, String> {
        loop {
            let Some(end) = self.buf.iter().position(|b| *b == b'\n' || *b == b'\r') else {
                if self.buf.len() + self.data.len() > MAX_MESSAGE_BYTES {
                    return Err("SSE event too large".into());
                }
                return Ok(None);
            };
            let line = self.buf.split_to(end).freeze();
            let term = self.buf[0];
            self.buf.advance(1);
            if term == b'\r' {
                if self.buf.is_empty() {
                    self.skip_lf = true;
                } else if self.buf[0] == b'\n' {
                    self.buf.advance(1);
                }
            }
            if line.is_empty() {
                if self.has_data {
                    self.has_data = false;
                    return Ok(Some(std::mem::take(&mut self.data)));
                }
                continue;
            }
            self.field(&line)?;
        }
    }

    fn field(&mut self, line: &[u8]) -> Result<(), String> {
        if line[0] == b':' {
            return Ok(());
        }
        let (name, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        if name == b"data" {
            if self.has_data {
                self.data.push(b'\n');
            }
            self.has_data = true;
            if self.data.len() + value.len() > MAX_MESSAGE_BYTES {
                return Err("SSE event too large".into());
            }
            self.data.extend_from_slice(value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<String> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.push(c);
            while let Some(e) = p.next_event().unwrap() {
                out.push(String::from_utf8(e).unwrap());
            }
        }
        out
    }

    #[test]
    fn sse_events_with_split_lines_and_all_line_endings() {
        let whole: &[u8] =
            b": comment\nid: 0\nretry: 3000\ndata:\n\nevent: message\ndata: {\"a\":\ndata: 1}\n\r\ndata:x\r\rdata: y\r\n\r\n";
        let want = vec!["", "{\"a\":\n1}", "x", "y"];
        assert_eq!(events(&[whole]), want);
        // Every split point gives the same events.
        for i in 0..whole.len() {
            assert_eq!(events(&[&whole[..i], &whole[i..]]), want, "split at {i}");
        }
        // Byte by byte.
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(events(&bytes), want);
    }

    #[test]
    fn sse_incomplete_event_waits_for_more() {
        let mut p = SseParser::default();
        p.push(b"data: {\"id\":1");
        assert_eq!(p.next_event().unwrap(), None);
        p.push(b"}\n");
        assert_eq!(p.next_event().unwrap(), None);
        p.push(b"\n");
        assert_eq!(p.next_event().unwrap(), Some(b"{\"id\":1}".to_vec()));
    }

    #[test]
    fn answers_are_told_from_other_messages() {
        let ok = br#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"hi"}],"structuredContent":{"a":1},"isError":false}}"#;
        match parse_message(ok, 7) {
            Parsed::Answer(Ok(ServerResult::CallToolResult(r))) => {
                assert_eq!(r.structured_content, Some(json!({"a": 1})));
            }
            _ => panic!("not read as a tool result"),
        }
        assert!(matches!(parse_message(ok, 8), Parsed::NotOurs));
        let err = br#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"bad"}}"#;
        match parse_message(err, 7) {
            Parsed::Answer(Err(HttpFault::Rpc(e))) => assert_eq!(e.code.0, -32602),
            _ => panic!("not read as an error"),
        }
        let changed = br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#;
        assert!(matches!(
            parse_message(changed, 7),
            Parsed::Other(JsonRpcMessage::Notification(_))
        ));
        let ping = br#"{"jsonrpc":"2.0","id":"s1","method":"ping"}"#;
        assert!(matches!(
            parse_message(ping, 7),
            Parsed::Other(JsonRpcMessage::Request(_))
        ));
        assert!(matches!(parse_message(b"{not json", 7), Parsed::NotOurs));
        let empty = br#"{"jsonrpc":"2.0","id":7,"result":{}}"#;
        assert!(matches!(parse_message(empty, 7), Parsed::Answer(Ok(_))));
    }

    #[test]
    fn endpoint_checks_scheme_and_token() {
        assert!(Endpoint::new("http://127.0.0.1:1/mcp", None, Duration::from_secs(1), 4).is_ok());
        assert!(Endpoint::new("https://h/mcp", None, Duration::from_secs(1), 4).is_err());
        assert!(
            Endpoint::new(
                "http://h/mcp",
                Some("TOOLGATE_TEST_SURELY_UNSET_VAR"),
                Duration::from_secs(1),
                4
            )
            .is_err()
        );
    }
}
