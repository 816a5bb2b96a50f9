//! The `tools/call` fast path: a plain POST runs the pipeline in the connection's own task.
//!
//! rmcp serves a session's `tools/call` through its session worker, the session's service
//! loop and a handler task, each a wake-up (often on another thread), then streams the answer
//! back as SSE. For the one request shape that dominates a gateway's traffic (a single
//! JSON-RPC `tools/call` POST that passes every check rmcp makes) this module does what rmcp
//! would do, inline: the same validation outcome, the same handler semantics (negotiated
//! version, legacy result shape, tasks capability, error codes, HTTP status) and the same
//! JSON-RPC envelope, answered as one `application/json` body (or one SSE event when the
//! client prefers `text/event-stream`).
//!
//! Everything else — initialize, notifications other than the cancellation of a fast-path
//! call, `tools/list`, GET, DELETE, batches, and every request that would fail a check —
//! goes to rmcp unchanged, so its error answers stay rmcp's own. One exception: a
//! `tools/call` whose `_meta` is not an object (see [`malformed`]), which rmcp cannot read
//! as a message at all and answers with HTTP 415, without an audit record.

mod answer;
mod headers;
mod malformed;
mod owners;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use rmcp::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientJsonRpcMessage, ClientNotification,
    ClientRequest, GetMeta, JsonRpcMessage, JsonRpcVersion2_0, ProtocolVersion, RequestId,
    RequestMetaObject,
};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tower::Service;

use answer::{Shape, accepted, plain, respond};
use headers::{accepts, header_version, session_header, standard_headers_fit};
use owners::SessionOwners;

use crate::admin::Body;
use crate::call::Caller;
use crate::pipeline::Pipeline;
use crate::transport::{Gateway, Listeners};

const JSON: &str = "application/json";
const EVENT_STREAM: &str = "text/event-stream";
const HEADER_SESSION_ID: &str = "mcp-session-id";
const HEADER_PROTOCOL_VERSION: &str = "mcp-protocol-version";
const HEADER_METHOD: &str = "mcp-method";
const HEADER_NAME: &str = "mcp-name";
const HEADER_PARAM_PREFIX: &str = "mcp-param-";
const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// rmcp's session worker closes a session after this long without an event (its default
/// `SessionConfig::keep_alive` is 300 s); fast-path calls bypass the worker, so they nudge it.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// A `tools/call` request read in one pass (rmcp's `ClientJsonRpcMessage` first buffers the
/// whole message to learn its kind). Anything it does not read exactly, including unknown
/// top-level fields, takes the general parse below it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallEnvelope {
    #[allow(dead_code)]
    jsonrpc: JsonRpcVersion2_0,
    id: RequestId,
    method: String,
    params: CallToolRequestParams,
}

/// In-flight fast-path calls a `notifications/cancelled` may name.
type InFlightKey = (Arc<str>, Option<Arc<str>>, RequestId);

/// Shared state of the fast path.
pub struct FastPath {
    pipeline: Arc<Pipeline>,
    sessions: Arc<LocalSessionManager>,
    listeners: Arc<Listeners>,
    max_body: usize,
    /// The server-side config matches what this module mirrors; otherwise all goes to rmcp.
    enabled: bool,
    /// Whether the handler accepts 2026-07-28 per-request negotiation.
    stateless_ok: bool,
    in_flight: Mutex<HashMap<InFlightKey, (u64, CancellationToken)>>,
    next_ticket: AtomicU64,
    started: Instant,
    /// Which tenant opened each session; another tenant's token gets rmcp's 404.
    owners: SessionOwners,
}

/// What to do with a request the fast path did not answer.
enum Pass {
    /// Headers ruled it out; the body is untouched.
    Untouched(Request<Incoming>),
    /// The body was read; rmcp gets it back whole.
    Buffered(Request<Full<Bytes>>),
}

impl FastPath {
    /// `config` is the rmcp service's config: the fast path switches itself off when it
    /// asks for anything this module does not mirror.
    pub fn new(
        pipeline: Arc<Pipeline>,
        sessions: Arc<LocalSessionManager>,
        listeners: Arc<Listeners>,
        config: &StreamableHttpServerConfig,
        gateway: &Gateway,
    ) -> Self {
        let enabled = config.legacy_session_mode
            && config.json_response
            && config.allowed_hosts.is_empty()
            && config.allowed_origins.is_empty()
            && config.session_store.is_none()
            && !config.stateless_protocol_metadata_required;
        if !enabled {
            tracing::info!(
                "tools/call fast path off: the MCP service config differs from what it mirrors"
            );
        }
        let stateless_ok = gateway
            .supported_protocol_versions()
            .contains(&ProtocolVersion::V_2026_07_28);
        Self {
            pipeline,
            sessions,
            listeners,
            max_body: config.max_request_body_bytes,
            enabled,
            stateless_ok,
            in_flight: Mutex::new(HashMap::new()),
            next_ticket: AtomicU64::new(0),
            started: Instant::now(),
            owners: SessionOwners::default(),
        }
    }

    /// Answers an authenticated `/mcp` request: inline when it is a plain `tools/call` (or
    /// the cancellation of one), else through rmcp.
    pub async fn serve(
        &self,
        caller: Caller,
        mut req: Request<Incoming>,
        svc: &mut StreamableHttpService<Gateway, LocalSessionManager>,
    ) -> Response<Body> {
        if let Some(refused) = self.owners.refuse(&caller.tenant, req.headers()) {
            return refused;
        }
        let pass = match self.try_serve(&caller, req) {
            Ok(fut) => match fut.await {
                Ok(resp) => return resp,
                Err(pass) => pass,
            },
            Err(untouched) => Pass::Untouched(untouched),
        };
        // Only rmcp opens and closes sessions, so only its answers teach the owners map
        // (read off the request here, not for every call: the fast path needs none of it).
        let tenant = caller.tenant.clone();
        let (resp, method, asked) = match pass {
            Pass::Untouched(r) => {
                req = r;
                let (method, asked) = (req.method().clone(), session_header(req.headers()));
                req.extensions_mut().insert(caller);
                match svc.call(req).await {
                    Ok(resp) => (resp, method, asked),
                    Err(never) => match never {},
                }
            }
            Pass::Buffered(mut r) => {
                let (method, asked) = (r.method().clone(), session_header(r.headers()));
                r.extensions_mut().insert(caller);
                (svc.handle(r).await, method, asked)
            }
        };
        let live = |id: &str| {
            self.sessions
                .sessions
                .try_read()
                .map_or(true, |m| m.contains_key(id))
        };
        self.owners
            .observe(&tenant, &method, asked.as_deref(), &resp, live);
        resp
    }

    /// Header checks that need no body; `Err` hands the request back untouched.
    #[allow(clippy::result_large_err)]
    fn try_serve<'a>(
        &'a self,
        caller: &'a Caller,
        req: Request<Incoming>,
    ) -> Result<impl Future<Output = Result<Response<Body>, Pass>> + 'a, Request<Incoming>> {
        if !self.enabled
            || req.method() != Method::POST
            || !self.headers_fit(req.headers(), req.uri())
        {
            return Err(req);
        }
        // A declared length within the limit: oversized and chunked bodies go to rmcp, whose
        // answers to them (413 and friends) stay its own.
        let fits = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .is_some_and(|len| len <= self.max_body);
        if !fits {
            return Err(req);
        }
        Ok(self.read_and_serve(caller, req))
    }

    /// What rmcp checks before reading the body, for the happy path only.
    fn headers_fit(&self, h: &HeaderMap, uri: &http::Uri) -> bool {
        // Host must parse (rmcp answers 400 otherwise); no Origin (rmcp may validate it).
        let host_ok = match h.get(header::HOST) {
            Some(v) => v
                .to_str()
                .ok()
                .is_some_and(|s| http::uri::Authority::try_from(s).is_ok()),
            None => uri.authority().is_some(),
        };
        let content_type_ok = h
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split_once(';')
                    .map_or(v, |(essence, _)| essence)
                    .trim()
                    .eq_ignore_ascii_case(JSON)
            });
        host_ok && content_type_ok && !h.contains_key(header::ORIGIN) && accepts(h).is_some()
    }

    async fn read_and_serve(
        &self,
        caller: &Caller,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, Pass> {
        let (parts, body) = req.into_parts();
        let bytes = match http_body_util::Limited::new(body, self.max_body)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                // The same answer rmcp gives when the body cannot be read.
                return Ok(plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("Failed to read request body: {e}"),
                ));
            }
        };
        let buffered =
            |bytes: Bytes| Pass::Buffered(Request::from_parts(parts.clone(), Full::new(bytes)));
        if let Ok(call) = serde_json::from_slice::<CallEnvelope>(&bytes)
            && call.method == "tools/call"
        {
            let mut params = call.params;
            let meta = params.meta.take().unwrap_or_default();
            return match self
                .call(caller, &parts.headers, call.id, params, meta)
                .await
            {
                Some(resp) => Ok(resp),
                None => Err(buffered(bytes)),
            };
        }
        // A `tools/call` whose `arguments` rmcp cannot read still parses (as a custom method,
        // which the handler refuses); one whose `_meta` is not an object does not parse.
        let Ok(message) = serde_json::from_slice::<ClientJsonRpcMessage>(&bytes) else {
            return match self.malformed(caller, &parts.headers, &bytes).await {
                Some(resp) => Ok(resp),
                None => Err(buffered(bytes)),
            };
        };
        match message {
            JsonRpcMessage::Request(r)
                if matches!(r.request, ClientRequest::CallToolRequest(_)) =>
            {
                let mut inner = r.request;
                let meta = std::mem::take(inner.get_meta_mut());
                let ClientRequest::CallToolRequest(call) = inner else {
                    return Err(buffered(bytes));
                };
                match self
                    .call(caller, &parts.headers, r.id, call.params, meta)
                    .await
                {
                    Some(resp) => Ok(resp),
                    None => Err(buffered(bytes)),
                }
            }
            JsonRpcMessage::Notification(n) => {
                if let ClientNotification::CancelledNotification(c) = &n.notification
                    && let Some(id) = &c.params.request_id
                    && self.cancel(caller, &parts.headers, id)
                {
                    return Ok(accepted());
                }
                Err(buffered(bytes))
            }
            _ => Err(buffered(bytes)),
        }
    }

    /// Cancels a fast-path call in flight; false when no such call is known.
    fn cancel(&self, caller: &Caller, h: &HeaderMap, id: &RequestId) -> bool {
        let key = (caller.tenant.clone(), session_header(h), id.clone());
        match self.in_flight.lock().expect("in-flight lock").get(&key) {
            Some((_, ct)) => {
                ct.cancel();
                true
            }
            None => false,
        }
    }

    /// Runs one `tools/call`, or `None` when rmcp must answer it (anything but the happy path).
    async fn call(
        &self,
        caller: &Caller,
        h: &HeaderMap,
        id: RequestId,
        params: CallToolRequestParams,
        meta: RequestMetaObject,
    ) -> Option<Response<Body>> {
        let header_version = header_version(h).ok()?;
        let session = session_header(h);
        let shape = if meta.0.contains_key(META_PROTOCOL_VERSION) {
            // The stateless 2026-07-28 route: full per-request metadata, matching header.
            let version = meta.protocol_version()?;
            if !self.stateless_ok
                || version != ProtocolVersion::V_2026_07_28
                || header_version != Some(version.as_str())
                || !meta
                    .missing_required_keys(&ProtocolVersion::V_2026_07_28)
                    .is_empty()
                || !standard_headers_fit(h, &params.name)
            {
                return None;
            }
            Shape {
                modern: true,
                stateless: true,
                caps: meta.client_capabilities(),
            }
        } else {
            self.session_shape(
                session.as_deref(),
                header_version,
                meta.client_capabilities(),
            )
            .await?
        };
        let prefers_sse = accepts(h).unwrap_or(false);

        let ct = CancellationToken::new();
        let key = (caller.tenant.clone(), session, id.clone());
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let registered = {
            let mut map = self.in_flight.lock().expect("in-flight lock");
            // Two in-flight calls with one id: only the first can be cancelled by id.
            match map.entry(key.clone()) {
                std::collections::hash_map::Entry::Occupied(_) => false,
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert((ticket, ct.clone()));
                    true
                }
            }
        };
        let _guard = registered.then(|| InFlightGuard {
            fast: self,
            key,
            ticket,
        });
        // `meta` is the whole request `_meta`, as rmcp hands it to the handler.
        let answer = self.pipeline.call_tool(caller, params, meta, ct).await;
        Some(respond(&shape, shape.message(answer, id), prefers_sse))
    }
}

impl FastPath {
    /// The session route: an initialized session, a legacy version header (or none). `None`
    /// leaves the request to rmcp. `caps` are the request's own, if it declares any.
    async fn session_shape(
        &self,
        sid: Option<&str>,
        header_version: Option<&str>,
        caps: Option<ClientCapabilities>,
    ) -> Option<Shape> {
        if let Some(v) = header_version
            && !(v < ProtocolVersion::V_2026_07_28.as_str()
                && ProtocolVersion::KNOWN_VERSIONS
                    .iter()
                    .any(|k| k.as_str() == v))
        {
            return None;
        }
        let sid = sid?;
        let handle = self.sessions.sessions.read().await.get(sid).cloned()?;
        let known = self.listeners.sessions.get(sid)?;
        let info = known.peer.peer_info()?;
        let now = self.started.elapsed().as_millis() as u64;
        let last = known.touched_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= TOUCH_EVERY.as_millis() as u64 {
            known.touched_ms.store(now, Ordering::Relaxed);
            // Any session event resets rmcp's idle timer; closing a response channel
            // that does not exist is one that changes nothing else.
            tokio::spawn(async move {
                let _ = handle.close_request_wise_channel(u64::MAX).await;
            });
        }
        Some(Shape {
            modern: info.protocol_version.as_str() >= ProtocolVersion::V_2026_07_28.as_str(),
            stateless: false,
            caps: caps.or_else(|| Some(info.capabilities.clone())),
        })
    }
}

/// Removes a call from the in-flight map however its future ends.
struct InFlightGuard<'a> {
    fast: &'a FastPath,
    key: InFlightKey,
    ticket: u64,
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.fast.in_flight.lock().expect("in-flight lock");
        if map.get(&self.key).is_some_and(|(t, _)| *t == self.ticket) {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests;
