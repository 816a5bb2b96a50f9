//! A lean MCP client for Streamable HTTP upstreams, driven by the calling task itself.
//!
//! rmcp's client runs every request through its service loop, a transport worker task and a
//! spawned POST task, each a wake-up. Here a `tools/call` is one pooled HTTP/1 POST sent and
//! read by the task that runs the call: serialize, send, parse the `application/json` body or
//! the `text/event-stream` events until the response with our id, done. The connection's
//! lifecycle (handshake, re-initialization after a 404, the GET event stream, liveness pings)
//! belongs to the supervisor, which owns the [`HttpConn`] and alone replaces its session.

mod endpoint;
mod lifecycle;
mod message;
mod sse;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rmcp::model::{
    CallToolRequestParams, ErrorData, JsonRpcMessage, ProgressToken, RequestId, RequestMetaObject,
    ServerJsonRpcMessage, ServerNotification, ServerResult, Tool,
};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

pub use endpoint::Endpoint;
use message::{Parsed, parse_message};
pub use sse::{EventReader, SseParser};

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

#[cfg(test)]
mod tests;
