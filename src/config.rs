//! The gateway's YAML configuration: raw file shape → validated [`Config`], with file:line:column errors.
//!
//! Parsing happens in two steps so that every error can point at the YAML that caused it: serde
//! (via serde-saphyr) rejects malformed values with their location, then [`validate`] checks
//! cross-field rules (unique names, token sources, tool classification) against `Spanned` entries.

mod raw;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

pub use raw::{Action, Lane, Stage};

/// The configuration toolgate runs on when `serve` gets no `--config`: the demo upstream behind a
/// single `demo` tenant. Kept as a real YAML file so it doubles as the smallest example.
pub const EMBEDDED_DEFAULT: &str = include_str!("../examples/default.yml");

/// Name under which [`EMBEDDED_DEFAULT`] is reported in errors and logs.
pub const EMBEDDED_NAME: &str = "<embedded default>";

/// Default upper bound for a request body on the MCP listener.
pub const DEFAULT_MAX_BODY: usize = 4 * 1024 * 1024;

/// A configuration error, located in its file.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: {field}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    /// Dotted path of the offending field, e.g. `upstreams[1].timeout`.
    pub field: String,
    pub message: String,
}

/// A validated gateway configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from: a file path or [`EMBEDDED_NAME`].
    pub source: String,
    pub listen_mcp: SocketAddr,
    pub listen_admin: SocketAddr,
    pub data_dir: PathBuf,
    pub slo_definitions: Option<PathBuf>,
    pub admin_token_env: Option<String>,
    /// How long audit records are kept; see [`Config::audit_retention`].
    pub retention: Retention,
    pub max_body_bytes: usize,
    pub tenants: Vec<Tenant>,
    pub upstreams: Vec<Upstream>,
    /// Tool classification keyed by exposed name.
    pub tools: BTreeMap<String, ToolPolicy>,
    pub capabilities: BTreeMap<String, Capability>,
    pub safety: Safety,
}

/// Default of `retention`: how long audit records are kept.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(90 * 86_400);

/// The floor of `retention`: the policy's 28-day SLO window, also how long settled
/// idempotency keys are kept (their `audit_id` should still name a kept record).
pub const MIN_RETENTION: Duration = Duration::from_secs(28 * 86_400);

/// `retention` as written (or the default), with where it was written for errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    pub keep: Duration,
    /// Written in the file (an explicit value too short is an error; the default is raised).
    pub explicit: bool,
    pub line: u64,
    pub column: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            keep: DEFAULT_RETENTION,
            explicit: false,
            line: 0,
            column: 0,
        }
    }
}

/// A tenant: one client of the agency, identified by its bearer token.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: String,
    pub token: TokenSource,
    pub canary: bool,
    pub accounts: Vec<Account>,
    /// Where the entry is written, for errors found after parsing (tokens from the environment).
    pub line: u64,
    pub column: u64,
}

/// Where a tenant's bearer token comes from; plaintext never sits in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// Read from this environment variable at start-up.
    Env(String),
    /// SHA-256 of the token.
    Sha256([u8; 32]),
}

/// A social account a tenant may act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub platform: Option<String>,
}

/// One upstream MCP tool server.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    pub transport: UpstreamTransport,
    pub timeout: Duration,
    pub required: bool,
    /// Prepended to the upstream's tool names; `""` keeps them as they are.
    pub prefix: String,
    /// Its own names of the tools that `tools:` entries classify (entries it alone could
    /// expose), so that one the upstream does not offer can be reported once it lists them.
    pub classified: Vec<String>,
}

/// How toolgate reaches an upstream.
#[derive(Debug, Clone)]
pub enum UpstreamTransport {
    /// A child process speaking MCP over stdio.
    Command {
        argv: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: Option<PathBuf>,
    },
    /// A Streamable HTTP endpoint.
    Http {
        url: String,
        token_env: Option<String>,
        max_concurrent_requests: usize,
    },
}

/// Classification of one exposed tool, used by the safety and budget gates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolPolicy {
    pub side_effect: bool,
    pub action: Action,
    pub lane: Lane,
    pub platform: Option<String>,
    pub capability: Option<String>,
    pub account_arg: String,
    pub target_arg: Option<String>,
    pub proof: ProofPointers,
}

/// JSON pointers into a result's `structuredContent` naming its proof references.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProofPointers {
    pub post_id: Option<String>,
    pub url: Option<String>,
    pub screenshot: Option<String>,
}

/// A shippable side-effect capability and its release stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    pub stage: Stage,
    pub enabled: bool,
}

/// Switches of the safety gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Safety {
    pub hard_stop_on_wrong_account: bool,
    pub quarantine_tenant: bool,
    /// `None` when the spam-loop guard is disabled.
    pub spam_loop: Option<SpamLoop>,
}

/// The spam-loop guard: at most `max_repeats` side effects of one of `actions` per
/// (account, action, target) within `within`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpamLoop {
    pub actions: Vec<Action>,
    pub max_repeats: u32,
    pub within: Duration,
}

impl Default for SpamLoop {
    fn default() -> Self {
        Self {
            actions: vec![Action::Dm, Action::Comment],
            max_repeats: 3,
            within: Duration::from_secs(3600),
        }
    }
}

impl Default for Safety {
    fn default() -> Self {
        Self {
            hard_stop_on_wrong_account: true,
            quarantine_tenant: true,
            spam_loop: Some(SpamLoop::default()),
        }
    }
}

impl ToolPolicy {
    /// The policy of a tool with no `tools:` entry: a side effect unless its upstream says
    /// `readOnlyHint: true`. Failing closed means an unclassified tool gets every check.
    pub fn unclassified(read_only_hint: bool) -> Self {
        Self {
            side_effect: !read_only_hint,
            action: Action::Other,
            lane: Lane::Api,
            platform: None,
            capability: None,
            account_arg: "account_id".into(),
            target_arg: None,
            proof: ProofPointers::default(),
        }
    }
}

impl Config {
    /// Loads and validates a config file. Relative paths resolve against the file's folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            field: "(file)".into(),
            message: format!("cannot read: {e}"),
        })?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Self::parse(&text, &path.display().to_string(), &base)
    }

    /// The embedded default, with paths relative to the working directory.
    pub fn embedded_default() -> Self {
        Self::parse(EMBEDDED_DEFAULT, EMBEDDED_NAME, Path::new("."))
            .expect("the embedded default config is valid (checked by a unit test)")
    }

    /// Parses and validates YAML text; `file` names it in errors, `base` anchors relative paths.
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<Self, ConfigError> {
        let raw: raw::RawConfig = serde_saphyr::from_str(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            ConfigError {
                file: file.into(),
                line,
                column,
                field: "(yaml)".into(),
                message: yaml_message(&e),
            }
        })?;
        raw::validate(raw, file, base)
    }

    /// The tenant with this id.
    pub fn tenant(&self, id: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.id == id)
    }

    /// How long audit records are kept, given the longest SLO window (`slo_window`, named
    /// `slo` in errors): budgets are rebuilt from the journal over that window, so a written
    /// `retention` shorter than it (or than [`MIN_RETENTION`]) is refused, located at the key.
    /// The default (90 days) is raised to the longest window when that is longer.
    pub fn audit_retention(
        &self,
        slo: &str,
        slo_window: Duration,
    ) -> Result<Duration, ConfigError> {
        let floor = slo_window.max(MIN_RETENTION);
        let r = &self.retention;
        if r.keep >= floor {
            return Ok(r.keep);
        }
        if !r.explicit {
            return Ok(floor);
        }
        let days = |d: Duration| d.as_secs_f64() / 86_400.0;
        let why = if slo_window >= MIN_RETENTION {
            format!("the longest SLO window ({slo}: {}d)", days(slo_window))
        } else {
            format!(
                "{}d (the policy's SLO window and how long idempotency keys are kept)",
                days(MIN_RETENTION)
            )
        };
        Err(ConfigError {
            file: self.source.clone(),
            line: r.line,
            column: r.column,
            field: "retention".into(),
            message: format!(
                "{}d is shorter than {why}: budgets are rebuilt from the audit journal over that window; write at least {}d",
                days(r.keep),
                days(floor)
            ),
        })
    }

    /// Environment variables the config names that are not set or empty (tokens it cannot
    /// resolve).
    pub fn missing_env(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .tenants
            .iter()
            .filter_map(|t| match &t.token {
                TokenSource::Env(n) => Some(n.clone()),
                TokenSource::Sha256(_) => None,
            })
            .chain(self.upstreams.iter().filter_map(|u| match &u.transport {
                UpstreamTransport::Http { token_env, .. } => token_env.clone(),
                UpstreamTransport::Command { .. } => None,
            }))
            .filter(|n| std::env::var_os(n).is_none_or(|v| v.is_empty()))
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// A YAML-layer error as one line for `file:line:column: (yaml): ...`: serde-saphyr's
/// user-facing wording (its default one gives library advice, such as setting a
/// `DuplicateKeyPolicy`), with the location left to the caller, and the type mismatches a
/// config author meets most often said in config terms. The parser does not report the
/// field path of these errors; the location points at the value.
fn yaml_message(e: &serde_saphyr::Error) -> String {
    use serde_saphyr::MessageFormatter;
    let text = serde_saphyr::UserMessageFormatter.format_message(e);
    let first = text.lines().next().unwrap_or_default();
    let plain = match first {
        "expected sequence start" => Some("expected a list here: [a, b] or one `- item` per line"),
        "expected mapping start" => {
            Some("expected a mapping here: {key: value} or `key: value` lines")
        }
        "invalid boolean" => Some("expected true or false"),
        m if m.strip_prefix("invalid ").is_some_and(|t| {
            matches!(
                t,
                "u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" | "isize"
            )
        }) =>
        {
            Some("expected a whole number (unquoted, within range)")
        }
        _ => None,
    };
    match plain {
        Some(p) => format!("{p} ({first})"),
        None => first.to_string(),
    }
}

/// A tenant's token as far as it can be known: its digest, or why it is not there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolvedToken {
    Digest([u8; 32]),
    /// Its `token_env` variable is not set.
    Unset,
    /// Its `token_env` variable is set but empty.
    Empty,
}

impl Tenant {
    /// Resolves the token, reading a `token_env` variable through `lookup`.
    pub fn resolve_token(&self, lookup: impl Fn(&str) -> Option<String>) -> ResolvedToken {
        match &self.token {
            TokenSource::Sha256(d) => ResolvedToken::Digest(*d),
            TokenSource::Env(var) => match lookup(var) {
                None => ResolvedToken::Unset,
                Some(v) if v.is_empty() => ResolvedToken::Empty,
                Some(v) => ResolvedToken::Digest(token_digest(&v)),
            },
        }
    }

    /// How the token is given, for messages: `token_env VAR` or `token_sha256`.
    pub fn token_origin(&self) -> String {
        match &self.token {
            TokenSource::Env(var) => format!("token_env {var}"),
            TokenSource::Sha256(_) => "token_sha256".into(),
        }
    }
}

/// The first two tenants (indices, in config order) whose resolved tokens are equal. A token
/// must name one tenant: otherwise it authenticates as one of them, and the other's runner
/// trips wrong-account hard stops on the wrong tenant.
pub fn shared_token(tokens: &[ResolvedToken]) -> Option<(usize, usize)> {
    let mut seen: BTreeMap<[u8; 32], usize> = BTreeMap::new();
    for (i, t) in tokens.iter().enumerate() {
        if let ResolvedToken::Digest(d) = t
            && let Some(first) = seen.insert(*d, i)
        {
            return Some((first, i));
        }
    }
    None
}

impl Config {
    /// Refuses two tenants whose tokens are equal once `token_env` variables are read through
    /// `lookup` (equal `token_sha256` values are refused by the parser already). Located at
    /// the second tenant; never shows the token.
    pub fn check_distinct_tokens(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let tokens: Vec<_> = self
            .tenants
            .iter()
            .map(|t| t.resolve_token(&lookup))
            .collect();
        let Some((a, b)) = shared_token(&tokens) else {
            return Ok(());
        };
        let (first, second) = (&self.tenants[a], &self.tenants[b]);
        let field = match &second.token {
            TokenSource::Env(_) => "token_env",
            TokenSource::Sha256(_) => "token_sha256",
        };
        Err(ConfigError {
            file: self.source.clone(),
            line: second.line,
            column: second.column,
            field: format!("tenants[{b}].{field}"),
            message: format!(
                "tenant {:?} ({}) has the same token as tenant {:?} ({}): each tenant needs a token of its own",
                second.id,
                second.token_origin(),
                first.id,
                first.token_origin()
            ),
        })
    }
}

/// SHA-256 of a bearer token, the only form in which toolgate keeps tokens.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A duration as written in the config: whole days as `90d`, anything else as humantime does.
pub fn format_duration(d: Duration) -> String {
    if d.as_secs() > 0 && d.as_secs().is_multiple_of(86_400) && d.subsec_nanos() == 0 {
        format!("{}d", d.as_secs() / 86_400)
    } else {
        humantime::format_duration(d).to_string()
    }
}

/// Parses durations written as `500ms`, `30s`, `10m`, `1h`, `28d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        format!("invalid duration {text:?} ({e}); write e.g. 500ms, 30s, 10m, 1h, 28d")
    })?;
    if d.is_zero() {
        return Err("duration must be greater than zero".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests;
