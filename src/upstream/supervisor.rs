//! Keeps one upstream connected: spawn or dial, handshake, list tools, watch, restart with backoff.

use std::process::Stdio;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use rmcp::{
    ClientHandler, RoleClient, ServiceExt,
    model::{ClientCapabilities, ClientConfig, Implementation},
    service::{NotificationContext, RunningService},
    transport::{
        StreamableHttpClientTransport, TokioChildProcess,
        streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use super::{Link, Status, Upstreams};
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
            r = connect(&link, UpstreamClient { refresh: refresh_tx }) => r,
            _ = shutdown.cancelled() => break,
        };
        let reason = match connected {
            Ok(running) => {
                let started = Instant::now();
                let outcome =
                    serve_connection(&link, &set, running, &mut refresh_rx, &shutdown).await;
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
            s.peer = None;
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
        s.peer = None;
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
    tracing::info!(upstream = %name, tools = tools.len(), "upstream connected");
    link.update(|s| {
        s.peer = Some(peer.clone());
        s.tools = Arc::new(tools);
        s.status = Status::Connected;
        s.last_error = None;
        s.connected_since = Some(Instant::now());
    });
    if let Some(set) = set.upgrade() {
        set.rebuild();
    }
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
                    Ok(tools) => {
                        tracing::info!(upstream = %name, tools = tools.len(), "upstream tool list changed");
                        link.update(|s| s.tools = Arc::new(tools));
                        if let Some(set) = set.upgrade() {
                            set.rebuild();
                        }
                    }
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
async fn connect(link: &Link, client: UpstreamClient) -> Result<Running, String> {
    let cfg = &link.cfg;
    let handshake = cfg.timeout.max(MIN_CONNECT_TIMEOUT);
    let started = match &cfg.transport {
        UpstreamTransport::Command { argv, env, cwd } => {
            let program = if argv[0] == "toolgate" {
                // The embedded default runs the demo upstream from this very binary.
                std::env::current_exe().map_err(|e| format!("cannot locate own binary: {e}"))?
            } else {
                argv[0].clone().into()
            };
            let mut cmd = tokio::process::Command::new(&program);
            cmd.args(&argv[1..]).envs(env);
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
            tokio::time::timeout(handshake, client.serve(child)).await
        }
        UpstreamTransport::Http {
            url,
            token_env,
            max_concurrent_requests,
        } => {
            let mut tcfg = StreamableHttpClientTransportConfig::with_uri(url.as_str())
                .max_concurrent_requests(*max_concurrent_requests);
            tcfg.reinit_on_expired_session = true;
            if let Some(var) = token_env {
                let token = std::env::var(var).map_err(|_| {
                    format!("environment variable {var} (upstream bearer token) is not set")
                })?;
                tcfg = tcfg.auth_header(token);
            }
            let transport = StreamableHttpClientTransport::with_client(http_client()?, tcfg);
            tokio::time::timeout(handshake, client.serve(transport)).await
        }
    };
    match started {
        Ok(Ok(running)) => Ok(running),
        Ok(Err(e)) => Err(format!("handshake failed: {e}")),
        Err(_) => Err(format!("handshake timed out after {handshake:?}")),
    }
}

/// The HTTP client for Streamable HTTP upstreams. rmcp's default client disables connection
/// pooling, which costs a TCP handshake (and a socket in TIME_WAIT) per call; the pool here
/// keeps connections to the upstream warm. Redirects are not followed: an upstream URL that
/// redirects is a configuration error to fix, not something to chase with a bearer token.
pub(crate) fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build HTTP client: {e}"))
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
