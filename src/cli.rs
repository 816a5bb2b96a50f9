//! The command line: parse arguments, start logging, dispatch subcommands, choose exit codes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, ConfigError, EMBEDDED_NAME, TokenSource};
use crate::server::{HttpServer, serve_stdio};

/// Exit code for an invalid configuration (EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;
/// Exit code when the gateway cannot start (bind, data dir, tokens).
pub const EXIT_START: u8 = 69;
/// Tokio worker threads of `toolgate serve` when `TOOLGATE_WORKER_THREADS` is not set: one,
/// as sidecar proxies usually run (the journal writer and its checkpointer have threads of
/// their own). Against one per core on 2 vCPUs it cut the added median at concurrency 1 from
/// ~135 to ~50–90 µs and the CPU per call at 16 from ~52 to ~44 µs, with the same throughput
/// (BENCHMARKS.md, session 3). Other commands (benches, demo upstream, offline tools) keep
/// Tokio's default of one per core.
pub const SERVE_WORKER_THREADS: usize = 1;
/// The environment variable that overrides the Tokio worker thread count.
pub const WORKER_THREADS_ENV: &str = "TOOLGATE_WORKER_THREADS";
/// Most worker threads `TOOLGATE_WORKER_THREADS` may ask for: far above any useful count for
/// a sidecar, low enough that a typo (an extra zero or three) is refused instead of
/// spawning threads until the process or the host gives out.
pub const MAX_WORKER_THREADS: usize = 1024;

/// The environment `serve` reads, for `serve --help`. The admin and demo variable names are
/// those of the embedded default (a unit test holds them to it).
const SERVE_ENV_HELP: &str = "\
Environment:
  TOOLGATE_ADMIN_TOKEN     The admin bearer token: the variable the config's admin_token_env
                           names (TOOLGATE_ADMIN_TOKEN in the embedded default). Unset or
                           empty: the admin-only endpoints are disabled.
  TOOLGATE_DEMO_TOKEN      The demo tenant's bearer token on the embedded default (without
                           --config); generated and printed once when unset. With --config,
                           each tenant's token_env names its own variable.
  TOOLGATE_WORKER_THREADS  Tokio worker threads, a whole number from 1 to 1024 (default 1);
                           anything else is refused at start (exit 64).
  RUST_LOG                 Log filter; overrides --log-level.";

/// Why `TOOLGATE_WORKER_THREADS` was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{WORKER_THREADS_ENV}={value:?} is not a worker thread count: expected a whole number \
     from 1 to {MAX_WORKER_THREADS} (unset or empty: {SERVE_WORKER_THREADS} for serve, one per \
     core for other commands)"
)]
pub struct WorkerThreadsError {
    pub value: String,
}

/// The help heading of the options every subcommand takes, so that a subcommand's `--help`
/// lists its own options apart from them.
const GLOBAL_HEADING: &str = "Global options";

#[derive(Debug, Parser)]
#[command(
    name = "toolgate",
    version,
    about = "MCP tool-call gateway: idempotency, account binding, audit and error budgets"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, help_heading = GLOBAL_HEADING)]
    log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax); RUST_LOG overrides it.
    #[arg(long, global = true, default_value = "info", help_heading = GLOBAL_HEADING)]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (on the embedded demo default when --config is not given).
    #[command(after_help = SERVE_ENV_HELP)]
    Serve(ServeArgs),
    /// Validate a config file and the SLO definitions it points to; exit 64 on errors.
    Check {
        /// Gateway config file (YAML) to validate. The token variables it names are read
        /// here too: unset or empty ones are warnings, equal values an error.
        #[arg(long)]
        config: PathBuf,
    },
    /// Run the demo social-platform MCP server (stdio, or Streamable HTTP with --http).
    DemoUpstream(DemoArgs),
    /// Measure a read-only tools/call direct vs through toolgate (see BENCHMARKS.md).
    Bench(crate::bench::BenchArgs),
    /// Measure durable side-effect calls direct vs through toolgate (see BENCHMARKS.md).
    BenchSideEffects(crate::bench_side_effects::BenchSideEffectsArgs),
    /// Measure the budget engine: accounting, status cost, memory, restart (see BENCHMARKS.md).
    BenchBudget(crate::bench_budget::BenchBudgetArgs),
    /// Measure `audit export` and `audit verify` over a journal of 1M records (see BENCHMARKS.md).
    BenchAudit(crate::bench_audit::BenchAuditArgs),
    /// Print the gateway's SLO status (GET /v1/status on the admin listener) as a table.
    Status(crate::status_cli::StatusArgs),
    /// SLO tooling: `slo rules` prints Prometheus recording and alerting rules.
    Slo {
        #[command(subcommand)]
        command: crate::slo_rules::SloCommand,
    },
    /// Audit journal: `export` (JSON Lines or CSV), `verify` (an export or --data), `anchor`.
    Audit {
        #[command(subcommand)]
        command: crate::audit_cli::AuditCommand,
    },
    /// Incidents: `list`, and `bundle ID` (a postmortem bundle, JSON or Markdown), offline.
    Incident {
        #[command(subcommand)]
        command: crate::incident_cli::IncidentCommand,
    },
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Gateway config file (YAML). Without it, the embedded demo default is used.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Serve one runner over stdin/stdout instead of HTTP (needs --tenant). No listener is
    /// bound in this mode, the admin one neither: the runner owns the process and its
    /// lifetime, and a sidecar per runner would otherwise need a port per runner too.
    #[arg(long, requires = "tenant", conflicts_with_all = ["mcp_addr", "admin_addr"])]
    stdio: bool,
    /// Tenant of the stdio runner (with --stdio only).
    #[arg(long, requires = "stdio")]
    tenant: Option<String>,
    /// Override listen.mcp (port 0 picks a free port; not with --stdio).
    #[arg(long)]
    mcp_addr: Option<SocketAddr>,
    /// Override listen.admin (not with --stdio).
    #[arg(long)]
    admin_addr: Option<SocketAddr>,
    /// Override data_dir.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// Serve Streamable HTTP at http://ADDR/mcp instead of stdio.
    #[arg(long)]
    http: Option<SocketAddr>,
    /// Append one line per side-effect execution to this file (tests count executions).
    #[arg(long, env = "TOOLGATE_DEMO_COUNT_FILE")]
    count_file: Option<PathBuf>,
    /// Add test-only tools (slow_echo, crash, stats, add_tool).
    #[arg(long)]
    test_tools: bool,
    /// Delay every tools/call answer by this many milliseconds.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Server name reported to clients.
    #[arg(long)]
    name: Option<String>,
}

/// Entry point of the `toolgate` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let serve = matches!(cli.command, Command::Serve(_));
    // A value that is not UTF-8 reads lossily, so it is refused rather than taken as unset.
    let env = std::env::var_os(WORKER_THREADS_ENV).map(|v| v.to_string_lossy().into_owned());
    let threads = match worker_threads(env.as_deref(), serve) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("toolgate: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    init_logging(cli.log_format, &cli.log_level);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = threads {
        builder.worker_threads(n);
    }
    let runtime = match builder.build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("toolgate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run(cli.command));
    // Do not wait for blocking-pool work that outlived the command, such as a read of a
    // stdin that is not a pipe (it cannot be cancelled, and would hold the exit until the
    // runner wrote another line).
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

/// Tokio worker threads from the value of `TOOLGATE_WORKER_THREADS` (`env`): that count when
/// it is 1..=[`MAX_WORKER_THREADS`], else [`SERVE_WORKER_THREADS`] for `serve` and `None`
/// (one per core, Tokio's default) for other commands when unset or empty. Any other value
/// is an error: silently running on a count the operator did not ask for hides the typo.
pub fn worker_threads(env: Option<&str>, serve: bool) -> Result<Option<usize>, WorkerThreadsError> {
    match env.map(str::trim) {
        None | Some("") => Ok(serve.then_some(SERVE_WORKER_THREADS)),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_WORKER_THREADS).contains(&n) => Ok(Some(n)),
            _ => Err(WorkerThreadsError {
                value: env.unwrap_or_default().to_string(),
            }),
        },
    }
}

async fn run(command: Command) -> ExitCode {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Check { config } => check(&config),
        Command::DemoUpstream(args) => demo(args).await,
        Command::Bench(args) => match crate::bench::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("toolgate bench: {e}");
                ExitCode::FAILURE
            }
        },
        Command::BenchSideEffects(args) => match crate::bench_side_effects::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("toolgate bench-side-effects: {e}");
                ExitCode::FAILURE
            }
        },
        Command::BenchBudget(args) => match crate::bench_budget::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("toolgate bench-budget: {e}");
                ExitCode::FAILURE
            }
        },
        Command::BenchAudit(args) => match crate::bench_audit::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("toolgate bench-audit: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Status(args) => crate::status_cli::run(args).await,
        Command::Slo { command } => crate::slo_rules::run(command),
        Command::Audit { command } => crate::audit_cli::run(command),
        Command::Incident { command } => crate::incident_cli::run(command),
    }
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Quiet rmcp's per-session chatter unless asked for; keep colour for terminals only (a
    // child's stderr is a pipe that the gateway relays into its own log).
    let filter = filter.add_directive("rmcp=warn".parse().expect("static directive"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

fn config_failed(e: &ConfigError) -> ExitCode {
    eprintln!("toolgate: invalid configuration\n  {e}");
    ExitCode::from(EXIT_CONFIG)
}

async fn serve(args: ServeArgs) -> ExitCode {
    let embedded = args.config.is_none();
    let mut cfg = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => return config_failed(&e),
        },
        None => Config::embedded_default(),
    };
    if let Some(a) = args.mcp_addr {
        cfg.listen_mcp = a;
    }
    if let Some(a) = args.admin_addr {
        cfg.listen_admin = a;
    }
    if let Some(d) = args.data_dir {
        cfg.data_dir = d;
    }
    if args.stdio {
        let tenant = args.tenant.unwrap_or_default();
        return match serve_stdio(cfg, &tenant, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("toolgate: {e}");
                ExitCode::from(EXIT_START)
            }
        };
    }
    let mut env = HashMap::new();
    let generated = if embedded {
        demo_token(&cfg, &mut env)
    } else {
        None
    };
    let server = match HttpServer::start(cfg, &env).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("toolgate: cannot start: {e}");
            return ExitCode::from(EXIT_START);
        }
    };
    if embedded {
        print_demo_banner(&server, generated.as_deref());
    }
    server.run_until(shutdown_signal()).await;
    ExitCode::SUCCESS
}

/// The embedded default's token: from its env var, or generated once (returned for printing).
fn demo_token(cfg: &Config, env: &mut HashMap<String, String>) -> Option<String> {
    let TokenSource::Env(var) = &cfg.tenants.first()?.token else {
        return None;
    };
    if std::env::var(var).is_ok_and(|v| !v.is_empty()) {
        return None;
    }
    let token = format!("tg_{}", hex::encode(rand::random::<[u8; 24]>()));
    env.insert(var.clone(), token.clone());
    Some(token)
}

fn print_demo_banner(server: &HttpServer, generated: Option<&str>) {
    let token = generated
        .map(str::to_string)
        .unwrap_or_else(|| "$TOOLGATE_DEMO_TOKEN".into());
    println!(
        "toolgate {} on the embedded default ({EMBEDDED_NAME}): tenant `demo`, account `demo-account`, upstream `demo`.",
        env!("CARGO_PKG_VERSION")
    );
    if generated.is_some() {
        println!(
            "Generated demo token (shown once; set TOOLGATE_DEMO_TOKEN to choose your own):\n  {token}"
        );
    }
    // Double quotes around the header: the shell must expand $TOOLGATE_DEMO_TOKEN.
    println!(
        "MCP:   http://{mcp}/mcp\nAdmin: http://{admin}/readyz (admin-only endpoints need TOOLGATE_ADMIN_TOKEN set at start)\nTry a read-only call:\n  curl -s http://{mcp}/mcp -H \"Authorization: Bearer {token}\" -H 'Content-Type: application/json' \\\n    -H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' -H 'Mcp-Name: demo__get_post' \\\n    -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{{\"name\":\"demo__get_post\",\"arguments\":{{\"post_id\":\"p1\"}},\"_meta\":{{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientInfo\":{{\"name\":\"curl\",\"version\":\"1\"}},\"io.modelcontextprotocol/clientCapabilities\":{{}}}}}}}}'",
        mcp = server.mcp_addr,
        admin = server.admin_addr,
    );
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    let cfg = match Config::load(path) {
        Ok(c) => c,
        Err(e) => return config_failed(&e),
    };
    if let Err(e) = cfg.check_distinct_tokens(|var| std::env::var(var).ok()) {
        return config_failed(&e);
    }
    let (slos, set) = match &cfg.slo_definitions {
        Some(p) => match crate::slo::load(p) {
            Ok(s) => (format!("{} SLOs", s.slos.len()), s),
            Err(e) => return config_failed(&e),
        },
        None => {
            let s = crate::slo::embedded();
            (format!("{} SLOs (embedded defaults)", s.slos.len()), s)
        }
    };
    let (slo, window) = set.longest_window().unwrap_or(("(none)", Duration::ZERO));
    let retention = match cfg.audit_retention(slo, window) {
        Ok(d) => d,
        Err(e) => return config_failed(&e),
    };
    let mut warnings = Vec::new();
    for var in cfg.missing_env() {
        let how = if std::env::var_os(&var).is_some() {
            "is set but empty"
        } else {
            "is not set"
        };
        warnings.push(format!(
            "environment variable {var} {how} here; `serve` needs a value in it"
        ));
    }
    for (i, a) in cfg.upstreams.iter().enumerate() {
        for b in &cfg.upstreams[i + 1..] {
            if a.prefix == b.prefix {
                warnings.push(format!(
                    "upstreams {} and {} share the prefix {:?}: a tool name both expose will be withheld",
                    a.name, b.name, a.prefix
                ));
            }
        }
    }
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "ok: {} — {} tenants, {} upstreams, {} classified tools, {slos}, audit retention {}",
        path.display(),
        cfg.tenants.len(),
        cfg.upstreams.len(),
        cfg.tools.len(),
        crate::config::format_duration(retention)
    );
    ExitCode::SUCCESS
}

async fn demo(args: DemoArgs) -> ExitCode {
    let opts = crate::demo::DemoOptions {
        name: args.name,
        count_file: args.count_file,
        test_tools: args.test_tools,
        delay: Duration::from_millis(args.delay_ms),
    };
    let result = match args.http {
        None => crate::demo::serve_stdio(opts).await,
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                let local = listener
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                tracing::info!(url = %format!("http://{local}/mcp"), "demo upstream listening");
                let stop = tokio_util::sync::CancellationToken::new();
                let trigger = stop.clone();
                tokio::spawn(async move {
                    shutdown_signal().await;
                    trigger.cancel();
                });
                crate::demo::serve_http(opts, listener, stop).await
            }
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("toolgate demo-upstream: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests;
