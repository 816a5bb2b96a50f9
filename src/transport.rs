//! The MCP edge: an rmcp `ServerHandler` that lists the merged catalog and hands calls to the pipeline.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CustomRequest, CustomResult, ErrorCode,
        Implementation, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
    },
    service::{NotificationContext, Peer, RequestContext},
};

use crate::call::Caller;
use crate::pipeline::Pipeline;
use crate::upstream::Upstreams;

/// Downstream sessions that asked to hear about tool-list changes.
#[derive(Default)]
pub struct Listeners {
    next: std::sync::atomic::AtomicU64,
    peers: Mutex<Vec<(u64, Peer<RoleServer>)>>,
    /// Initialized HTTP sessions by `Mcp-Session-Id`, for the `tools/call` fast path.
    pub sessions: SessionPeers,
}

/// One initialized HTTP session as the fast path needs it.
pub struct SessionPeer {
    /// rmcp's peer of the session: its negotiated version and capabilities.
    pub peer: Peer<RoleServer>,
    /// When the fast path last reset rmcp's idle timer of the session (ms since start).
    pub touched_ms: AtomicU64,
}

/// HTTP sessions that completed the handshake, by `Mcp-Session-Id`.
#[derive(Default)]
pub struct SessionPeers {
    map: RwLock<HashMap<Arc<str>, Arc<SessionPeer>>>,
}

impl SessionPeers {
    fn register(&self, id: &str, peer: Peer<RoleServer>) {
        let mut map = self.map.write().expect("sessions lock");
        // Forget sessions whose service loop has ended.
        map.retain(|_, s| !s.peer.is_transport_closed());
        map.insert(
            id.into(),
            Arc::new(SessionPeer {
                peer,
                touched_ms: AtomicU64::new(0),
            }),
        );
    }

    /// The session with this id, if it completed the handshake and is still open.
    pub fn get(&self, id: &str) -> Option<Arc<SessionPeer>> {
        let s = self.map.read().expect("sessions lock").get(id).cloned()?;
        if s.peer.is_transport_closed() {
            self.forget(id);
            return None;
        }
        Some(s)
    }

    pub fn forget(&self, id: &str) {
        self.map.write().expect("sessions lock").remove(id);
    }
}

impl Listeners {
    fn add(&self, peer: Peer<RoleServer>) {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.peers.lock().expect("listeners lock").push((id, peer));
    }

    /// Sends `notifications/tools/list_changed` to every session; forgets closed ones.
    pub async fn notify_all(&self) {
        // Clone out of the lock: sending awaits.
        let peers: Vec<_> = self.peers.lock().expect("listeners lock").clone();
        let mut dead = Vec::new();
        for (id, p) in &peers {
            if p.notify_tool_list_changed().await.is_err() {
                dead.push(*id);
            }
        }
        if !dead.is_empty() {
            self.peers
                .lock()
                .expect("listeners lock")
                .retain(|(id, _)| !dead.contains(id));
        }
    }

    pub fn len(&self) -> usize {
        self.peers.lock().expect("listeners lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One MCP server handler; cloned per downstream session (all clones share the same state).
#[derive(Clone)]
pub struct Gateway {
    pipeline: Arc<Pipeline>,
    upstreams: Arc<Upstreams>,
    listeners: Arc<Listeners>,
    /// Set for stdio, where there is no HTTP request to carry a token.
    fixed_caller: Option<Caller>,
}

impl Gateway {
    pub fn new(
        pipeline: Arc<Pipeline>,
        upstreams: Arc<Upstreams>,
        listeners: Arc<Listeners>,
        fixed_caller: Option<Caller>,
    ) -> Self {
        Self {
            pipeline,
            upstreams,
            listeners,
            fixed_caller,
        }
    }

    /// The authenticated caller: fixed for stdio, else put on the HTTP request by the
    /// authentication layer before rmcp saw it.
    fn caller(&self, ctx: &RequestContext<RoleServer>) -> Result<Caller, ErrorData> {
        if let Some(c) = &self.fixed_caller {
            return Ok(c.clone());
        }
        ctx.extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.extensions.get::<Caller>())
            .cloned()
            .ok_or_else(|| {
                ErrorData::internal_error(
                    "request reached MCP without an authenticated caller",
                    None,
                )
            })
    }
}

impl ServerHandler for Gateway {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new("toolgate", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "toolgate gateway: tools of every upstream, named <upstream>__<tool>. Side-effect \
             calls are checked for account binding and idempotency, and audited.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.caller(&ctx)?;
        let catalog = self.upstreams.catalog();
        Ok(ListToolsResult::with_all_items(
            catalog.tools.as_ref().clone(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = self.caller(&ctx)?;
        self.pipeline
            .call_tool(&caller, request, ctx.meta, ctx.ct)
            .await
    }

    /// rmcp reads a `tools/call` whose params do not fit as a method it does not know: refuse
    /// it as a malformed call (reason and record) rather than "method not found".
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        if request.method == "tools/call" {
            let caller = self.caller(&ctx)?;
            if let Some(refused) = self
                .pipeline
                .malformed_call(&caller, request.params.as_ref(), Some(&ctx.meta.0.0))
                .await
            {
                return Err(refused);
            }
        }
        Err(ErrorData::new(
            ErrorCode::METHOD_NOT_FOUND,
            request.method,
            None,
        ))
    }

    async fn on_initialized(&self, ctx: NotificationContext<RoleServer>) {
        let session = ctx
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.headers.get("mcp-session-id"))
            .and_then(|v| v.to_str().ok());
        if self.fixed_caller.is_none()
            && let Some(id) = session
        {
            self.listeners.sessions.register(id, ctx.peer.clone());
        }
        self.listeners.add(ctx.peer);
    }
}
