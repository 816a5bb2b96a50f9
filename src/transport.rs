//! The MCP edge: an rmcp `ServerHandler` that lists the merged catalog and hands calls to the pipeline.

use std::sync::{Arc, Mutex};

use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
        PaginatedRequestParams, ServerCapabilities, ServerConfig,
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

    async fn on_initialized(&self, ctx: NotificationContext<RoleServer>) {
        self.listeners.add(ctx.peer);
    }
}
