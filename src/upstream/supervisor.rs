//! Keeps one upstream connected: spawn or dial, handshake, list tools, watch, restart with backoff.

use std::process::Stdio;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use rmcp::{
    ClientHandler, RoleClient, ServiceExt,
    model::{ClientCapabilities, ClientConfig, Implementation, Tool},
    service::{NotificationContext, RunningService},
    transport::TokioChildProcess,
};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::http::{Endpoint, EventReader, HttpConn, HttpFault};
use super::{Conn, Link, Status, Upstreams};
use crate::config::UpstreamTransport;

/// First restart delay; doubles per consecutive failure up to [`BACKOFF_CAP`].
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// A connection that stayed up this long resets the backoff: it was not a crash loop.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// Floor for the handshake timeout (a `docker run` may first pull its image).
const MIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a child gets to exit on its own after its stdin closes, before SIGTERM/kill.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often a Streamable HTTP upstream is pinged to check that it is alive.
const PING_EVERY: Duration = Duration::from_secs(15);
/// Pause before reopening an HTTP upstream's GET event stream after it ended.
const REOPEN_EVENTS_AFTER: Duration = Duration::from_secs(1);

/// The MCP client side of one upstream connection; it only relays `tools/list_changed`.
#[derive(Clone)]
struct UpstreamClient {
    refresh: mpsc::Sender<()>,
}

impl ClientHandler for UpstreamClient {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("toolgate", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        // A full channel already holds a pending refresh; one is enough.
        let _ = self.refresh.try_send(());
    }
}

type Running = RunningService<RoleClient, UpstreamClient>;

/// An established connection, by client kind.
enum Connected {
    Rmcp(Running),
    Http(Arc<HttpConn>),
}

/// Jittered exponential backoff: uniformly within ±50% of the nominal delay, so restarts of
/// many sidecars do not synchronise.
fn backoff(failures: u32) -> Duration {
    let nominal = BACKOFF_BASE
        .saturating_mul(1u32 << failures.min(16))
        .min(BACKOFF_CAP);
    nominal.mul_f64(0.5 + rand::random::<f64>())
}

/// Supervises one upstream until the set shuts down (or is dropped).
pub(super) async fn supervise(link: Arc<Link>, set: Weak<Upstreams>) {
    let Some(shutdown) = set.upgrade().map(|s| s.shutdown.clone()) else {
        return;
    };
    let name = link.cfg.name.clone();
    let mut failures: u32 = 0;
    loop {
        link.update(|s| s.status = Status::Connecting);
        let (refresh_tx, mut refresh_rx) = mpsc::channel(1);
        let connected = tokio::select! {
            r = connect(&link, refresh_tx) => r,
            _ = shutdown.cancelled() => break,
        };
        let reason = match connected {
            Ok(connected) => {
                let started = Instant::now();
                let outcome = match connected {
                    Connected::Rmcp(running) => {
                        serve_connection(&link, &set, running, &mut refresh_rx, &shutdown).await
                    }
                    Connected::Http(conn) => {
                        serve_http(&link, &set, conn, &mut refresh_rx, &shutdown).await
                    }
                };
                if started.elapsed() >= STABLE_AFTER {
                    failures = 0;
                }
                match outcome {
                    Some(reason) => reason,
                    None => break,
                }
            }
            Err(e) => e,
        };
        link.update(|s| {
            s.conn = None;
            // `listed` stays: while down, calls to those tools are "not connected", not unknown.
            s.tools = Arc::new(Vec::new());
            s.status = Status::Backoff;
            s.last_error = Some(reason.clone());
            s.connected_since = None;
            s.restarts += 1;
        });
        if let Some(set) = set.upgrade() {
            set.rebuild();
        }
        let delay = backoff(failures);
        failures = failures.saturating_add(1);
        tracing::warn!(upstream = %name, error = %reason, retry_in_ms = delay.as_millis() as u64, "upstream down; restarting");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    link.update(|s| {
        s.conn = None;
        s.status = Status::Stopped;
    });
    tracing::info!(upstream = %name, "upstream stopped");
}

/// Runs one established connection. Returns why it ended, or `None` on shutdown.
async fn serve_connection(
    link: &Arc<Link>,
    set: &Weak<Upstreams>,
    running: Running,
    refresh_rx: &mut mpsc::Receiver<()>,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Option<String> {
    let name = &link.cfg.name;
    let peer = running.peer().clone();
    let tools = match list_tools(&peer, link.cfg.timeout).await {
        Ok(t) => t,
        Err(e) => {
            let _ = close(running).await;
            return Some(format!("tools/list failed: {e}"));
        }
    };
    install(link, set, Conn::Rmcp(peer.clone()), tools);
    let cancel = running.cancellation_token();
    let mut ended = Box::pin(running.waiting());
    loop {
        tokio::select! {
            r = &mut ended => {
                return Some(match r {
                    Ok(reason) => format!("connection closed ({reason:?})"),
                    Err(e) => format!("connection task failed: {e}"),
                });
            }
            Some(()) = refresh_rx.recv() => {
                match list_tools(&peer, link.cfg.timeout).await {
                    Ok(tools) => publish_tools(link, set, tools),
                    Err(e) => tracing::warn!(upstream = %name, error = %e, "tools/list refresh failed"),
                }
            }
            _ = shutdown.cancelled() => {
                // Cancelling the service closes its transport: for a child that means stdin
                // first, then SIGTERM and kill after a grace period (rmcp's stdio shutdown).
                cancel.cancel();
                if tokio::time::timeout(SHUTDOWN_GRACE, ended).await.is_err() {
                    tracing::warn!(upstream = %name, "upstream did not stop within the grace period");
                }
                return None;
            }
        }
    }
}

/// Warns about each `tools:` entry of this upstream that names none of its tools: a typo,
/// or a tool the server dropped, leaves the real tool unclassified.
fn warn_unmatched(link: &Link, tools: &[Tool]) {
    for own in &link.cfg.classified {
        if !tools.iter().any(|t| t.name == own.as_str()) {
            tracing::warn!(
                upstream = %link.cfg.name,
                tool = %format!("{}{own}", link.cfg.prefix),
                "tools: entry matches none of the upstream's tools; it classifies nothing"
            );
        }
    }
}

/// Publishes a freshly connected upstream: its connection, tools and status.
fn install(link: &Arc<Link>, set: &Weak<Upstreams>, conn: Conn, tools: Vec<Tool>) {
    tracing::info!(upstream = %link.cfg.name, tools = tools.len(), "upstream connected");
    warn_unmatched(link, &tools);
    let tools = Arc::new(tools);
    link.update(|s| {
        s.conn = Some(conn);
        s.listed = Some(tools.clone());
        s.tools = tools;
        s.status = Status::Connected;
        s.last_error = None;
        s.connected_since = Some(Instant::now());
    });
    if let Some(set) = set.upgrade() {
        set.rebuild();
    }
}

/// Replaces an upstream's tools after `tools/list_changed` (or a new session).
fn publish_tools(link: &Link, set: &Weak<Upstreams>, tools: Vec<Tool>) {
    tracing::info!(upstream = %link.cfg.name, tools = tools.len(), "upstream tool list changed");
    warn_unmatched(link, &tools);
    let tools = Arc::new(tools);
    link.update(|s| {
        s.listed = Some(tools.clone());
        s.tools = tools;
    });
    if let Some(set) = set.upgrade() {
        set.rebuild();
    }
}

/// Runs one Streamable HTTP connection: keeps its session, GET event stream and tool list
/// current and checks that the upstream is alive. Returns why it ended, or `None` on shutdown.
async fn serve_http(
    link: &Arc<Link>,
    set: &Weak<Upstreams>,
    conn: Arc<HttpConn>,
    refresh_rx: &mut mpsc::Receiver<()>,
    shutdown: &CancellationToken,
) -> Option<String> {
    let name = &link.cfg.name;
    let tools = match conn.list_tools().await {
        Ok(t) => t,
        Err(e) => {
            conn.close().await;
            return Some(format!("tools/list failed: {e}"));
        }
    };
    install(link, set, Conn::Http(conn.clone()), tools);
    let mut events: Option<EventReader> = None;
    let mut reopen_at = Some(tokio::time::Instant::now());
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let next_event = async {
            match events.as_mut() {
                Some(r) => r.next().await,
                None => std::future::pending().await,
            }
        };
        let reopen = async {
            match reopen_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = next_event => match ev {
                Ok(msg) => conn.on_server_message(msg),
                Err(why) => {
                    tracing::debug!(upstream = %name, %why, "GET event stream ended; reopening");
                    events = None;
                    reopen_at = Some(tokio::time::Instant::now() + REOPEN_EVENTS_AFTER);
                }
            },
            _ = reopen => {
                reopen_at = None;
                match conn.open_events().await {
                    Ok(Some(body)) => events = Some(EventReader::new(body)),
                    Ok(None) => tracing::debug!(upstream = %name, "upstream offers no GET event stream"),
                    Err(HttpFault::Expired) => conn.expired.notify_one(),
                    Err(e @ HttpFault::NotSent(_)) => return Some(format!("upstream unreachable: {e}")),
                    Err(e) => {
                        tracing::warn!(upstream = %name, error = %e, "cannot open the GET event stream; relying on pings");
                    }
                }
            }
            _ = ping.tick() => {
                if let Some(reason) = check_alive(&conn).await {
                    return Some(reason);
                }
            }
            _ = conn.trouble.notified() => {
                if let Some(reason) = check_alive(&conn).await {
                    return Some(reason);
                }
            }
            _ = conn.expired.notified() => {
                tracing::info!(upstream = %name, "upstream expired the session; re-initializing");
                if let Err(e) = conn.initialize().await {
                    return Some(format!("re-initialize failed: {e}"));
                }
                events = None;
                reopen_at = Some(tokio::time::Instant::now());
                match conn.list_tools().await {
                    Ok(tools) => publish_tools(link, set, tools),
                    Err(e) => tracing::warn!(upstream = %name, error = %e, "tools/list after re-initialize failed"),
                }
            }
            Some(()) = refresh_rx.recv() => {
                match conn.list_tools().await {
                    Ok(tools) => publish_tools(link, set, tools),
                    Err(e) => tracing::warn!(upstream = %name, error = %e, "tools/list refresh failed"),
                }
            }
            _ = shutdown.cancelled() => {
                conn.close().await;
                return None;
            }
        }
    }
}

/// Pings; `Some(reason)` when the upstream is down (an expired session is handled by the
/// caller through `conn.expired`).
async fn check_alive(conn: &HttpConn) -> Option<String> {
    match conn.ping().await {
        Ok(()) | Err(HttpFault::Expired) => None,
        Err(HttpFault::Protocol(d)) => {
            tracing::debug!(detail = %d, "odd answer to ping; the upstream is up");
            None
        }
        Err(e) => Some(format!("ping failed: {e}")),
    }
}

async fn close(running: Running) -> Result<(), tokio::task::JoinError> {
    let mut running = running;
    running.close_with_timeout(SHUTDOWN_GRACE).await.map(|_| ())
}

async fn list_tools(
    peer: &rmcp::service::Peer<RoleClient>,
    timeout: Duration,
) -> Result<Vec<rmcp::model::Tool>, String> {
    match tokio::time::timeout(timeout, peer.list_all_tools()).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// Starts the transport and runs the MCP handshake.
async fn connect(link: &Link, refresh: mpsc::Sender<()>) -> Result<Connected, String> {
    let cfg = &link.cfg;
    let handshake = cfg.timeout.max(MIN_CONNECT_TIMEOUT);
    match &cfg.transport {
        UpstreamTransport::Command { argv, env, cwd } => {
            let program = if argv[0] == "toolgate" {
                // The embedded default runs the demo upstream from this very binary.
                std::env::current_exe().map_err(|e| format!("cannot locate own binary: {e}"))?
            } else {
                argv[0].clone().into()
            };
            let mut cmd = tokio::process::Command::new(&program);
            cmd.args(&argv[1..]).envs(env);
            // A process group of its own: a terminal's Ctrl-C (or any signal sent to the
            // gateway's group) would otherwise kill the child at once, and a side effect in
            // flight would end in doubt instead of finishing during the drain. The gateway
            // alone decides when the child stops: stdin closed first, then SIGTERM, then kill
            // (rmcp's stdio shutdown). Should the gateway itself die, the child still sees
            // EOF on stdin, and a dropped transport kills it.
            #[cfg(unix)]
            cmd.process_group(0);
            if let Some(dir) = cwd {
                cmd.current_dir(dir);
            }
            let (child, stderr) = TokioChildProcess::builder(cmd)
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
            if let Some(stderr) = stderr {
                forward_stderr(cfg.name.clone(), stderr);
            }
            match tokio::time::timeout(handshake, UpstreamClient { refresh }.serve(child)).await {
                Ok(Ok(running)) => Ok(Connected::Rmcp(running)),
                Ok(Err(e)) => Err(format!("handshake failed: {e}")),
                Err(_) => Err(format!("handshake timed out after {handshake:?}")),
            }
        }
        UpstreamTransport::Http {
            url,
            token_env,
            max_concurrent_requests,
        } => {
            let endpoint = Endpoint::new(
                url,
                token_env.as_deref(),
                cfg.timeout,
                *max_concurrent_requests,
            )?;
            match tokio::time::timeout(handshake, HttpConn::connect(endpoint, refresh)).await {
                Ok(Ok(conn)) => Ok(Connected::Http(Arc::new(conn))),
                Ok(Err(e)) => Err(format!("handshake failed: {e}")),
                Err(_) => Err(format!("handshake timed out after {handshake:?}")),
            }
        }
    }
}

/// Relays a child's stderr into our logs, line by line, tagged with the upstream's name.
fn forward_stderr(name: String, stderr: tokio::process::ChildStderr) {
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::info!(upstream = %name, "{line}");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        for _ in 0..100 {
            let first = backoff(0);
            assert!(first >= BACKOFF_BASE / 2 && first <= BACKOFF_BASE * 3 / 2);
            let late = backoff(30);
            assert!(late >= BACKOFF_CAP / 2 && late <= BACKOFF_CAP * 3 / 2);
        }
        let mean = |f: u32| (0..200).map(|_| backoff(f).as_secs_f64()).sum::<f64>() / 200.0;
        assert!(mean(3) > mean(1));
    }
}
