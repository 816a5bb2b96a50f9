//! Binds the MCP and admin listeners, wires the shared handles, and shuts everything down in order.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState, Body, error_response};
use crate::call::Caller;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::fastpath::FastPath;

use crate::budget::Budget;
use crate::flags::Flags;
use crate::journal::sqlite::SqliteJournal;
use crate::pipeline::Pipeline;
use crate::safety::SafetyState;
use crate::session::{Authenticator, TokenError};
use crate::transport::{Gateway, Listeners};
use crate::upstream::Upstreams;

mod stdio;

/// How long in-flight requests (HTTP or stdio) get to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("cannot create data dir {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "data dir {path} is not a directory: it is an existing {what}; set data_dir (or --data-dir) to a directory"
    )]
    NotADirectory { path: String, what: &'static str },
    #[error("data dir: {0}")]
    DataDirDenied(String),
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open the journal in the data dir: {0}")]
    Journal(#[from] crate::journal::JournalError),
    #[error("invalid SLO definitions: {0}")]
    Slo(#[from] crate::config::ConfigError),
    #[error("invalid retention: {0}")]
    Retention(crate::config::ConfigError),
    #[error("unknown tenant {0:?} for --stdio (it is not in the config)")]
    UnknownTenant(String),
    #[error("stdio transport failed: {0}")]
    Stdio(String),
}

/// Why the data dir could not be created, in the words an operator needs: an existing file
/// in its place is "not a directory" (the OS says "File exists"), a permission error names
/// the uid and the owner.
fn data_dir_error(path: &std::path::Path, source: std::io::Error) -> StartError {
    if let Ok(m) = std::fs::metadata(path)
        && !m.is_dir()
    {
        return StartError::NotADirectory {
            path: path.display().to_string(),
            what: if m.is_file() { "file" } else { "non-directory" },
        };
    }
    if source.kind() == std::io::ErrorKind::PermissionDenied {
        return StartError::DataDirDenied(crate::journal::access::describe(
            "create", path, &source,
        ));
    }
    StartError::DataDir {
        path: path.display().to_string(),
        source,
    }
}

/// The shared handles of a running gateway.
pub struct Core {
    pub cfg: Arc<Config>,
    pub journal: Arc<SqliteJournal>,
    pub safety: Arc<SafetyState>,
    pub budget: Arc<Budget>,
    pub flags: Arc<Flags>,
    pub clock: Arc<dyn Clock>,
    pub upstreams: Arc<Upstreams>,
    pub pipeline: Arc<Pipeline>,
    pub listeners: Arc<Listeners>,
}

impl Core {
    /// Commits the audit records still queued (read-only calls' records wait a few
    /// milliseconds for company), so a clean stop loses none of them.
    pub async fn flush_journal(&self) {
        use crate::journal::Store;
        match self.journal.flush().await {
            Ok(()) => tracing::debug!("journal flushed"),
            Err(e) => {
                tracing::error!(error = %e, "could not commit the queued audit records at shutdown")
            }
        }
    }

    /// Prepares the data dir, opens and recovers the journal, then starts supervising upstreams.
    pub fn start(cfg: Config) -> Result<Self, StartError> {
        // Owner-only when toolgate creates it: the journal holds every tenant's stored results.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&cfg.data_dir)
            .map_err(|source| data_dir_error(&cfg.data_dir, source))?;
        let cfg = Arc::new(cfg);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let (journal, recovery) = SqliteJournal::open(&cfg.data_dir, clock.now_ms())?;
        let journal = Arc::new(journal);
        if recovery.in_doubt > 0 {
            tracing::warn!(
                in_doubt = recovery.in_doubt,
                "side effects interrupted by the last stop are in doubt; resolve them via POST /v1/idempotency/{{tenant}}/{{key}}/resolve"
            );
        }
        let safety = Arc::new(SafetyState::load(&cfg, journal.as_ref(), clock.now_ms())?);
        if let Some(why) = &recovery.broken_tail {
            // In force before anything is served; written by the maintenance watch.
            safety.hold_journal_failure_now(
                format!(
                    "at start-up, {why}: something other than toolgate wrote to the journal, \
                     or it was damaged; run `toolgate audit verify --data DIR`, repair, then \
                     clear this stop"
                ),
                clock.now_ms(),
            );
        }
        for stop in safety.active().iter() {
            tracing::warn!(hard_stop = %stop.id, kind = ?stop.kind, tenant = ?stop.tenant, account = ?stop.account, "active hard stop");
        }
        let slos = match &cfg.slo_definitions {
            Some(path) => crate::slo::load(path)?,
            None => crate::slo::embedded(),
        };
        let (slo, window) = slos.longest_window().unwrap_or(("(none)", Duration::ZERO));
        let retention = cfg
            .audit_retention(slo, window)
            .map_err(StartError::Retention)?;
        let budget = Arc::new(Budget::load(
            slos.clone(),
            journal.as_ref(),
            Box::new(crate::admin::metrics::observe),
        )?);
        let flags = Arc::new(Flags::load(&cfg, journal.as_ref())?);
        // Upstreams start last: nothing is launched for a gateway that cannot record.
        let upstreams = Upstreams::start(&cfg.upstreams);
        let pipeline = Arc::new(Pipeline::new(
            cfg.clone(),
            upstreams.clone(),
            journal.clone(),
            safety.clone(),
            budget.clone(),
            flags.clone(),
            clock.clone(),
        ));
        let listeners = Arc::new(Listeners::default());
        // Relay catalog changes to downstream sessions for as long as the upstreams live.
        let mut changes = upstreams.subscribe();
        let relay = listeners.clone();
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                relay.notify_all().await;
            }
        });
        crate::maintenance::spawn_key_pruning(journal.clone(), clock.clone(), &slos);
        crate::maintenance::spawn_audit_retention(journal.clone(), clock.clone(), retention);
        crate::maintenance::spawn_unrecorded_watch(journal.clone(), safety.clone(), clock.clone());
        crate::maintenance::spawn_budget(
            budget.clone(),
            journal.clone(),
            safety.clone(),
            clock.clone(),
            &slos,
        );
        Ok(Self {
            cfg,
            journal,
            safety,
            budget,
            flags,
            clock,
            upstreams,
            pipeline,
            listeners,
        })
    }

    fn gateway(&self, caller: Option<Caller>) -> Gateway {
        Gateway::new(
            self.pipeline.clone(),
            self.upstreams.clone(),
            self.listeners.clone(),
            caller,
        )
    }
}

/// A gateway serving HTTP: its bound addresses and its stop switch.
pub struct HttpServer {
    pub mcp_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    core: Core,
}

impl HttpServer {
    /// Binds both listeners and starts serving. `env` supplies tokens that are not in the
    /// process environment (the embedded default's generated token).
    pub async fn start(cfg: Config, env: &HashMap<String, String>) -> Result<Self, StartError> {
        let auth = Authenticator::from_config(&cfg, env)?;
        if !auth.has_admin() {
            let why = match &cfg.admin_token_env {
                None => "admin_token_env is not in the config".to_string(),
                Some(var) => format!("{var} (admin_token_env) is not set or empty"),
            };
            tracing::warn!(
                "no admin token ({why}): admin-only endpoints (resolving in-doubt keys, clearing hard stops, switching flags, status and export of every tenant) are disabled; set admin_token_env to a variable name and that variable to a token, then restart (the embedded default reads TOOLGATE_ADMIN_TOKEN)"
            );
        }
        let (mcp_at, admin_at) = (cfg.listen_mcp, cfg.listen_admin);
        let mcp = bind("mcp", mcp_at).await?;
        let admin = bind("admin", admin_at).await?;
        let core = Core::start(cfg)?;
        let shutdown = CancellationToken::new();

        let gateway = core.gateway(None);
        let mcp_config = StreamableHttpServerConfig::default()
            .with_max_request_body_bytes(core.cfg.max_body_bytes)
            .with_cancellation_token(shutdown.child_token())
            // No event store backs resumption, so a priming event per response stream would
            // only cost a write; stateless (2026-07-28) calls get one JSON body when possible.
            .with_sse_retry(None)
            .with_json_response(true)
            // A sidecar is addressed by container or service name; the bearer token, not the
            // Host header, is what keeps other callers out.
            .disable_allowed_hosts();
        let sessions = Arc::new(LocalSessionManager::default());
        let fast = Arc::new(FastPath::new(
            core.pipeline.clone(),
            sessions.clone(),
            core.listeners.clone(),
            &mcp_config,
            &gateway,
        ));
        let mcp_service: StreamableHttpService<Gateway, LocalSessionManager> =
            StreamableHttpService::new(move || Ok(gateway.clone()), sessions, mcp_config);
        let auth = Arc::new(auth);
        let admin_auth = auth.clone();
        let mcp_handler = move |req: Request<Incoming>| {
            let auth = auth.clone();
            let fast = fast.clone();
            let mut svc = mcp_service.clone();
            async move { Ok::<_, Infallible>(route_mcp(&auth, &fast, &mut svc, req).await) }
        };
        let admin_state = Arc::new(AdminState {
            cfg: core.cfg.clone(),
            upstreams: core.upstreams.clone(),
            auth: admin_auth,
            journal: core.journal.clone(),
            safety: core.safety.clone(),
            budget: core.budget.clone(),
            flags: core.flags.clone(),
            clock: core.clock.clone(),
        });
        let admin_handler = move |req: Request<Incoming>| {
            let state = admin_state.clone();
            async move { Ok::<_, Infallible>(admin::route(state, req).await) }
        };
        let server = Self {
            mcp_addr: mcp.local_addr().expect("bound socket has an address"),
            admin_addr: admin.local_addr().expect("bound socket has an address"),
            tasks: vec![
                tokio::spawn(accept_loop("mcp", mcp, mcp_handler, shutdown.clone())),
                tokio::spawn(accept_loop("admin", admin, admin_handler, shutdown.clone())),
            ],
            shutdown,
            core,
        };
        tracing::info!(mcp = %server.mcp_addr, admin = %server.admin_addr, config = %server.core.cfg.source, data_dir = %server.core.cfg.data_dir.display(), "listening");
        Ok(server)
    }

    /// Serves until `signal` resolves, then drains requests and stops upstreams.
    pub async fn run_until(self, signal: impl Future<Output = ()>) {
        signal.await;
        tracing::info!("shutting down: draining requests, then stopping upstreams");
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        self.core.upstreams.shutdown().await;
        self.core.flush_journal().await;
        tracing::info!("stopped");
    }
}

/// Serves one runner over stdin/stdout as tenant `tenant` until stdin closes or `signal`
/// resolves. On the signal it drains as the HTTP listeners do: no new request is read, the
/// ones in flight get [`DRAIN_TIMEOUT`] to finish, then upstreams stop and the journal flushes.
pub async fn serve_stdio(
    cfg: Config,
    tenant: &str,
    signal: impl Future<Output = ()>,
) -> Result<(), StartError> {
    if cfg.tenant(tenant).is_none() {
        return Err(StartError::UnknownTenant(tenant.into()));
    }
    let core = Core::start(cfg)?;
    let gateway = core.gateway(Some(Caller {
        tenant: tenant.into(),
    }));
    let drain = CancellationToken::new();
    let transport = stdio::DrainingStdio::new(drain.clone(), DRAIN_TIMEOUT);
    let running = rmcp::ServiceExt::serve(gateway, transport)
        .await
        .map_err(|e| StartError::Stdio(e.to_string()))?;
    tracing::info!(%tenant, "serving one runner on stdio");
    let mut ended = std::pin::pin!(running.waiting());
    tokio::select! {
        _ = &mut ended => {}
        () = signal => {
            tracing::info!("shutting down: draining requests, then stopping upstreams");
            drain.cancel();
            let _ = ended.await;
        }
    }
    core.upstreams.shutdown().await;
    core.flush_journal().await;
    tracing::info!("stopped");
    Ok(())
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { what, addr, source })
}

/// Authenticates, then serves `/mcp` (plain `tools/call` inline, the rest through rmcp);
/// everything else is a JSON 404.
async fn route_mcp(
    auth: &Authenticator,
    fast: &FastPath,
    svc: &mut StreamableHttpService<Gateway, LocalSessionManager>,
    req: Request<Incoming>,
) -> Response<Body> {
    if req.uri().path() != "/mcp" {
        return error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            "the MCP endpoint is /mcp",
        );
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    match auth.authenticate(presented) {
        Ok(caller) => fast.serve(caller, req, svc).await,
        Err(e) => {
            let mut resp = error_response(StatusCode::UNAUTHORIZED, e.code(), &e.to_string());
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
            resp
        }
    }
}

/// Accepts connections until shutdown, then waits (bounded) for open ones to finish.
async fn accept_loop<F, Fut>(
    what: &'static str,
    listener: TcpListener,
    handler: F,
    shutdown: CancellationToken,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    // HTTP/1.1 only: MCP clients speak it over cleartext (HTTP/2 without TLS needs prior
    // knowledge, which none uses), and h2's code would be half a megabyte of resident text
    // and attack surface in every sidecar.
    let builder = hyper::server::conn::http1::Builder::new();
    loop {
        let (stream, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and friends are transient; back off instead of spinning.
                    tracing::warn!(listener = what, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = builder.serve_connection(
            TokioIo::new(stream),
            hyper::service::service_fn(handler.clone()),
        );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = what,
            "connections still open after {DRAIN_TIMEOUT:?}; closing them"
        );
    }
}
