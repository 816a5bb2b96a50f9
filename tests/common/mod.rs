//! Shared harness for end-to-end tests: the real `toolgate` binary, real child upstreams,
//! real HTTP on 127.0.0.1 with port 0, and rmcp clients.
#![allow(dead_code)]

pub mod schema;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use rmcp::{
    ClientHandler, RoleClient, ServiceExt,
    model::{CallToolRequestParams, CallToolResult, ClientConfig, ErrorData},
    service::{RunningService, ServiceError},
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::{Value, json};

pub const TOKEN_A: &str = "token-tenant-a";
pub const TOKEN_B: &str = "token-tenant-b";
pub const ADMIN_TOKEN: &str = "token-admin";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_toolgate")
}

/// A child process whose stderr JSON log lines are collected; killed on drop.
pub struct Proc {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    rx: mpsc::Receiver<Value>,
}

impl Proc {
    /// Spawns `toolgate ARGS` with JSON logs and waits for a log event with `message`.
    pub fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Self {
        Self::spawn_cmd(Command::new(bin()), args, envs)
    }

    /// As [`Proc::spawn`], as the leader of a new process group (the group id is its pid),
    /// so a test can signal the whole group as a terminal or a service manager would.
    pub fn spawn_in_own_group(args: &[&str], envs: &[(&str, &str)]) -> Self {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(bin());
        cmd.process_group(0);
        Self::spawn_cmd(cmd, args, envs)
    }

    fn spawn_cmd(mut cmd: Command, args: &[&str], envs: &[(&str, &str)]) -> Self {
        cmd.args(["--log-format", "json"]).args(args);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn toolgate");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let keep = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
                keep.lock().unwrap().push(line);
            }
        });
        Self { child, lines, rx }
    }

    /// Waits for a log event whose `message` equals `message`.
    pub fn wait_for(&self, message: &str, timeout: Duration) -> Value {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(v) if v["message"] == message => return v,
                Ok(_) => {}
                Err(_) => panic!(
                    "no {message:?} log within {timeout:?}; log so far:\n{}",
                    self.log()
                ),
            }
        }
    }

    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a gateway process is started: [`Proc::spawn`] or [`Proc::spawn_in_own_group`].
type SpawnFn = fn(&[&str], &[(&str, &str)]) -> Proc;

/// A running gateway on a temporary config and data dir.
pub struct Gateway {
    pub proc: Proc,
    pub mcp: String,
    pub admin: String,
    pub dir: tempfile::TempDir,
}

impl Gateway {
    /// Starts the gateway on `config` (YAML). `{bin}` and `{dir}` in it are replaced by the
    /// toolgate binary and the temp dir.
    pub fn start(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(config, dir)
    }

    pub fn start_in(config: &str, dir: tempfile::TempDir) -> Self {
        Self::launch(config, dir, Proc::spawn)
    }

    /// As [`Gateway::start`], as the leader of its own process group (group id = its pid).
    pub fn start_in_own_group(config: &str) -> Self {
        Self::launch(
            config,
            tempfile::tempdir().unwrap(),
            Proc::spawn_in_own_group,
        )
    }

    fn launch(config: &str, dir: tempfile::TempDir, spawn: SpawnFn) -> Self {
        let path = write_config(dir.path(), "gateway.yml", config);
        let proc = spawn(
            &[
                "serve",
                "--config",
                path.to_str().unwrap(),
                "--mcp-addr",
                "127.0.0.1:0",
                "--admin-addr",
                "127.0.0.1:0",
            ],
            &[
                ("TOK_A", TOKEN_A),
                ("TOK_B", TOKEN_B),
                ("TOK_ADMIN", ADMIN_TOKEN),
            ],
        );
        let ev = proc.wait_for("listening", Duration::from_secs(20));
        let mcp = format!("http://{}/mcp", ev["mcp"].as_str().unwrap());
        let admin = format!("http://{}", ev["admin"].as_str().unwrap());
        Self {
            proc,
            mcp,
            admin,
            dir,
        }
    }

    /// Kills the gateway with SIGKILL (no shutdown at all) and starts it again on the same
    /// config and data dir.
    pub fn crash_and_restart(self) -> Self {
        self.crash_and_restart_with(|_| {})
    }

    /// As [`Self::crash_and_restart`], running `meanwhile` while the gateway is down.
    pub fn crash_and_restart_with(mut self, meanwhile: impl FnOnce(&Self)) -> Self {
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
        meanwhile(&self);
        let config = std::fs::read_to_string(self.dir.path().join("gateway.yml")).unwrap();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        drop(self);
        Self::start_in(&config, dir)
    }

    /// An admin API request; returns (status, JSON body).
    pub async fn admin(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let http = reqwest::Client::new();
        let mut req = http.request(method.parse().unwrap(), format!("{}{path}", self.admin));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Audit records in the journal, in seq order (read straight from the SQLite file).
    pub fn audit_records(&self) -> Vec<toolgate::journal::AuditRecord> {
        let conn = rusqlite::Connection::open(self.path("data/journal.db")).unwrap();
        let mut st = conn
            .prepare("SELECT record FROM audit ORDER BY seq")
            .unwrap();
        st.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(|t| serde_json::from_str(&t.unwrap()).unwrap())
            .collect()
    }

    /// The audit records once `done` holds for them, or after 10 s whatever they are: a
    /// read-only call's record is committed within ~50 ms of its answer, not before it.
    pub async fn audit_records_when(
        &self,
        done: impl Fn(&[toolgate::journal::AuditRecord]) -> bool,
    ) -> Vec<toolgate::journal::AuditRecord> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let records = self.audit_records();
            if done(&records) || std::time::Instant::now() > deadline {
                return records;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Polls `/readyz` until it answers 200 (all required upstreams connected).
    pub async fn wait_ready(&self) -> Value {
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = http.get(format!("{}/readyz", self.admin)).send().await
                && r.status() == 200
            {
                return r.json().await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("gateway never became ready; log:\n{}", self.proc.log());
    }
}

/// A config with tenants `a` (accounts a-1, a-2) and `b` (account b-1), and `upstreams` as
/// given (YAML list items, already indented by two spaces).
pub fn config(upstreams: &str, tools: &str) -> String {
    let tools = if tools.is_empty() {
        " {}".to_string()
    } else {
        format!("\n{tools}")
    };
    format!(
        "version: 1
data_dir: {{dir}}/data
admin_token_env: TOK_ADMIN
tenants:
  - id: a
    token_env: TOK_A
    accounts: [{{id: a-1, platform: demo}}, {{id: a-2, platform: demo}}]
  - id: b
    token_env: TOK_B
    accounts: [{{id: b-1, platform: demo}}]
upstreams:
{upstreams}
tools:{tools}
"
    )
}

/// A stdio demo upstream entry with test tools and an execution count file in the temp dir.
pub fn stdio_upstream(name: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    command: [\"{{bin}}\", demo-upstream, --test-tools, --count-file, \"{{dir}}/{name}.count\"]\n{extra}"
    )
}

/// A demo upstream serving Streamable HTTP on a free port, as its own process.
pub struct HttpUpstream {
    pub proc: Proc,
    pub url: String,
}

impl HttpUpstream {
    pub fn start() -> Self {
        let proc = Proc::spawn(
            &["demo-upstream", "--test-tools", "--http", "127.0.0.1:0"],
            &[],
        );
        let ev = proc.wait_for("demo upstream listening", Duration::from_secs(20));
        let url = ev["url"].as_str().unwrap().to_string();
        Self { proc, url }
    }
}

/// Counts `tools/list_changed` notifications a client receives.
#[derive(Clone, Default)]
pub struct Watcher {
    pub list_changed: Arc<std::sync::atomic::AtomicUsize>,
}

impl ClientHandler for Watcher {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::default()
    }
    async fn on_tool_list_changed(&self, _ctx: rmcp::service::NotificationContext<RoleClient>) {
        self.list_changed
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

pub type Client = RunningService<RoleClient, Watcher>;

/// A session-based (initialize) rmcp client with the given bearer token.
pub async fn client(url: &str, token: &str) -> Result<Client, String> {
    let cfg = StreamableHttpClientTransportConfig::with_uri(url).auth_header(token.to_string());
    Watcher::default()
        .serve(StreamableHttpClientTransport::from_config(cfg))
        .await
        .map_err(|e| e.to_string())
}

/// Builds call params with arguments and `_meta`.
pub fn params(tool: &str, args: Value, meta: Option<Value>) -> CallToolRequestParams {
    let mut p = CallToolRequestParams::new(tool.to_string())
        .with_arguments(args.as_object().unwrap().clone());
    if let Some(m) = meta {
        p.meta = Some(serde_json::from_value(m).unwrap());
    }
    p
}

/// Calls a tool; a JSON-RPC error comes back as `Err(ErrorData)`.
pub async fn call<S: rmcp::service::Service<RoleClient>>(
    client: &RunningService<RoleClient, S>,
    tool: &str,
    args: Value,
    meta: Option<Value>,
) -> Result<CallToolResult, ErrorData> {
    match client.peer().call_tool(params(tool, args, meta)).await {
        Ok(r) => Ok(r),
        Err(ServiceError::McpError(e)) => Err(e),
        Err(e) => panic!("transport error calling {tool}: {e}"),
    }
}

/// The structured content of a result as JSON.
pub fn structured(r: &CallToolResult) -> Value {
    r.structured_content.clone().unwrap_or(Value::Null)
}

/// The `_meta` of a result as JSON.
pub fn meta(r: &CallToolResult) -> Value {
    r.meta
        .as_ref()
        .map(|m| serde_json::to_value(m).unwrap())
        .unwrap_or(json!({}))
}

/// Lines in an execution count file (0 if it does not exist).
pub fn executions(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// Runs `toolgate ARGS` to its end (killed and failed after 15 s: it should not be serving);
/// returns (exit code, stderr).
pub fn run_to_end(args: &[&str], envs: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_remove("TOOLGATE_ADMIN_TOKEN")
        .env_remove("TOOLGATE_WORKER_THREADS")
        .envs([("TOK_A", TOKEN_A), ("TOK_B", TOKEN_B)])
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run toolgate");
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{args:?} is still running; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

/// Writes `yaml` to `dir/name` with `{bin}` and `{dir}` replaced by the toolgate binary and
/// `dir`; returns the file's path.
pub fn write_config(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let text = yaml
        .replace("{bin}", bin())
        .replace("{dir}", dir.to_str().unwrap());
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}
