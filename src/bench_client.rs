//! The benches' load generator: rmcp clients as a runner would hold them, or one lean session.
//!
//! On a 2-core machine the load generator competes with the gateway and the upstream for the
//! same CPUs, so its own cost shows up in every figure. rmcp's client spends several task
//! hops and an SSE parse per call; the lean generator reuses the gateway's own pooled
//! Streamable HTTP client ([`HttpConn`]): one session, one keep-alive connection per in-flight
//! call, one POST and one JSON parse per call. Both targets (direct and proxied) always get the
//! same kind of generator, so the added latency compares like with like.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use rmcp::model::{CallToolRequestParams, ServerResult};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::bench::{Client, connect};
use crate::upstream::http::{Endpoint, HttpConn};

/// Which load generator a bench drives its targets with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientKind {
    /// One session over the gateway's lean pooled HTTP/1 client (least load-generator CPU).
    Lean,
    /// One rmcp Streamable HTTP client per in-flight call, as a typical runner holds them.
    Rmcp,
}

/// Open sessions to one target.
pub(crate) enum Load {
    Rmcp(Vec<Client>),
    Lean {
        conn: Arc<HttpConn>,
        // Kept so the connection's list-changed notices have somewhere to go.
        _refresh: mpsc::Receiver<()>,
    },
}

/// One worker's handle on a target.
#[derive(Clone)]
pub(crate) enum Caller {
    Rmcp(rmcp::Peer<rmcp::RoleClient>),
    Lean(Arc<HttpConn>),
}

impl Load {
    /// Connects `conc` rmcp clients, or one lean session able to carry `conc` calls at once.
    pub(crate) async fn open(
        kind: ClientKind,
        url: &str,
        token: Option<&str>,
        conc: usize,
    ) -> Result<Self, String> {
        match kind {
            ClientKind::Rmcp => Ok(Load::Rmcp(
                futures::future::try_join_all((0..conc).map(|_| connect(url, token))).await?,
            )),
            ClientKind::Lean => {
                let mut endpoint = Endpoint::new(url, None, Duration::from_secs(30), conc)?;
                if let Some(t) = token {
                    let mut v =
                        HeaderValue::from_str(&format!("Bearer {t}")).map_err(|e| e.to_string())?;
                    v.set_sensitive(true);
                    endpoint.auth = Some(v);
                }
                let (tx, rx) = mpsc::channel(1);
                let mut last = String::new();
                for _ in 0..100 {
                    match HttpConn::connect(endpoint.clone(), tx.clone()).await {
                        Ok(conn) => {
                            return Ok(Load::Lean {
                                conn: Arc::new(conn),
                                _refresh: rx,
                            });
                        }
                        Err(e) => last = e,
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(format!("cannot connect to {url}: {last}"))
            }
        }
    }

    /// The handle of worker `i` (of the `conc` the load was opened for).
    pub(crate) fn caller(&self, i: usize) -> Caller {
        match self {
            Load::Rmcp(clients) => Caller::Rmcp(clients[i % clients.len()].peer().clone()),
            Load::Lean { conn, .. } => Caller::Lean(conn.clone()),
        }
    }

    /// Ends the sessions.
    pub(crate) async fn close(self) {
        match self {
            Load::Rmcp(clients) => {
                for c in clients {
                    let _ = c.cancel().await;
                }
            }
            Load::Lean { conn, .. } => conn.close().await,
        }
    }
}

impl Caller {
    /// Calls a tool; true when it answered a result that is not a tool error.
    pub(crate) async fn call(&self, mut params: CallToolRequestParams) -> bool {
        match self {
            Caller::Rmcp(peer) => {
                matches!(peer.call_tool(params).await, Ok(r) if r.is_error != Some(true))
            }
            Caller::Lean(conn) => {
                let meta = params.meta.take().unwrap_or_default();
                let never = CancellationToken::new();
                matches!(
                    conn.call_tool(params, meta, &never).await,
                    Ok(ServerResult::CallToolResult(r)) if r.is_error != Some(true)
                )
            }
        }
    }
}
