//! Upstream tool servers: one supervised connection each, a merged tool catalog, forwarding.
//!
//! Each upstream has a [`Link`] (its live peer, tools and status) written only by its own
//! supervisor task. Calls read the link under a short, synchronous lock and never hold it
//! across `.await`, so a hung or crashing upstream cannot stall calls to the others.

pub mod catalog;
mod forward;
pub mod http;
mod supervisor;

use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use rmcp::{RoleClient, model::Tool, service::Peer};
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config;
pub use catalog::{Catalog, CatalogEntry};

/// Connection state of one upstream, as reported by `/readyz` and the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Connecting,
    Connected,
    Backoff,
    Stopped,
}

impl Status {
    /// The name `/readyz` reports in `status` (the serde name), for messages that must use
    /// the same word.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Connecting => "connecting",
            Status::Connected => "connected",
            Status::Backoff => "backoff",
            Status::Stopped => "stopped",
        }
    }
}

/// How calls reach a connected upstream.
#[derive(Debug, Clone)]
pub(crate) enum Conn {
    /// rmcp's client (child processes over stdio).
    Rmcp(Peer<RoleClient>),
    /// toolgate's own Streamable HTTP client, driven by the calling task.
    Http(Arc<http::HttpConn>),
}

/// The live side of one upstream.
#[derive(Debug)]
pub struct Link {
    pub cfg: config::Upstream,
    state: RwLock<LinkState>,
}

#[derive(Debug)]
struct LinkState {
    conn: Option<Conn>,
    /// The tools of the live connection; empty while not connected (what `tools/list` shows).
    tools: Arc<Vec<Tool>>,
    /// The last `tools/list` answer, kept after a disconnect so that a call to one of these
    /// tools while the upstream is down is attributed to it; `None` until the first listing.
    listed: Option<Arc<Vec<Tool>>>,
    status: Status,
    last_error: Option<String>,
    restarts: u64,
    connected_since: Option<Instant>,
}

/// A point-in-time view of one upstream for health reporting.
#[derive(Debug, Clone, Serialize)]
pub struct LinkReport {
    pub name: String,
    pub status: Status,
    pub required: bool,
    pub tools: usize,
    pub restarts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Link {
    fn new(cfg: config::Upstream) -> Self {
        Self {
            cfg,
            state: RwLock::new(LinkState {
                conn: None,
                tools: Arc::new(Vec::new()),
                listed: None,
                status: Status::Connecting,
                last_error: None,
                restarts: 0,
                connected_since: None,
            }),
        }
    }

    fn conn(&self) -> Option<Conn> {
        self.state.read().expect("link lock").conn.clone()
    }

    fn tools(&self) -> Arc<Vec<Tool>> {
        self.state.read().expect("link lock").tools.clone()
    }

    /// Whether calls can be sent right now, and the last tool list (kept while down).
    fn catalog_view(&self) -> (bool, Option<Arc<Vec<Tool>>>) {
        let s = self.state.read().expect("link lock");
        (s.conn.is_some(), s.listed.clone())
    }

    fn update(&self, f: impl FnOnce(&mut LinkState)) {
        f(&mut self.state.write().expect("link lock"));
    }

    pub fn report(&self) -> LinkReport {
        let s = self.state.read().expect("link lock");
        LinkReport {
            name: self.cfg.name.clone(),
            status: s.status,
            required: self.cfg.required,
            tools: s.tools.len(),
            restarts: s.restarts,
            last_error: s.last_error.clone(),
        }
    }
}

/// All upstreams, their merged catalog, and a change signal for downstream sessions.
pub struct Upstreams {
    links: Vec<Arc<Link>>,
    catalog: RwLock<Arc<Catalog>>,
    /// Serializes `rebuild`: two upstreams connecting at once must not publish catalogs built
    /// from each other's stale tool lists (the later writer would drop the earlier's tools).
    rebuilding: Mutex<()>,
    changed: watch::Sender<u64>,
    shutdown: CancellationToken,
    tasks: tokio::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams")
            .field("links", &self.links.len())
            .finish()
    }
}

impl Upstreams {
    /// Starts one supervisor per configured upstream; connections come up in the background.
    pub fn start(cfgs: &[config::Upstream]) -> Arc<Self> {
        let (changed, _) = watch::channel(0);
        let this = Arc::new(Self {
            links: cfgs
                .iter()
                .cloned()
                .map(|c| Arc::new(Link::new(c)))
                .collect(),
            catalog: RwLock::new(Arc::new(Catalog::default())),
            rebuilding: Mutex::new(()),
            changed,
            shutdown: CancellationToken::new(),
            tasks: tokio::sync::Mutex::new(Vec::new()),
        });
        // A catalog that knows every upstream is not connected yet, before the first connects:
        // a call right after start-up is then "not connected" (retryable), not "unknown tool".
        this.rebuild();
        let handles = this
            .links
            .iter()
            .map(|link| tokio::spawn(supervisor::supervise(link.clone(), Arc::downgrade(&this))))
            .collect();
        // Nothing else holds the lock yet.
        *this.tasks.try_lock().expect("fresh mutex") = handles;
        this
    }

    /// The current merged catalog (cheap: an `Arc` clone).
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().expect("catalog lock").clone()
    }

    /// A receiver that changes whenever the catalog does.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub fn links(&self) -> &[Arc<Link>] {
        &self.links
    }

    pub fn link(&self, index: usize) -> &Arc<Link> {
        &self.links[index]
    }

    /// Health of every upstream.
    pub fn reports(&self) -> Vec<LinkReport> {
        self.links.iter().map(|l| l.report()).collect()
    }

    /// Rebuilds the catalog from every link's tools and tells subscribers.
    fn rebuild(&self) {
        let _one_at_a_time = self.rebuilding.lock().expect("rebuild lock");
        let tools: Vec<_> = self
            .links
            .iter()
            .map(|l| (l.cfg.prefix.as_str(), l.tools()))
            .collect();
        let mut next = Catalog::build(&self.links, &tools);
        for (i, link) in self.links.iter().enumerate() {
            if let (false, listed) = link.catalog_view() {
                next.mark_down(i, &link.cfg.prefix, listed.as_deref().map(Vec::as_slice));
            }
        }
        for c in &next.conflicts {
            tracing::error!(tool = %c.name, upstreams = ?c.upstreams, "tool name exposed by more than one upstream; withheld from tools/list until the prefixes differ");
        }
        *self.catalog.write().expect("catalog lock") = Arc::new(next);
        self.changed.send_modify(|g| *g += 1);
    }

    /// Graceful shutdown: close every child's stdin first (so `docker run -i --rm` sees EOF),
    /// then terminate what does not exit; waits for the supervisors to finish.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().await);
        for t in tasks {
            let _ = t.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_words_are_the_serde_names() {
        for s in [
            Status::Connecting,
            Status::Connected,
            Status::Backoff,
            Status::Stopped,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
