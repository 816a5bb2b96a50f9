//! The config file exactly as written (serde shapes with source spans) and its validation.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{
    Account, Capability, Config, ConfigError, DEFAULT_MAX_BODY, Retention, Safety, SpamLoop,
    Tenant, TokenSource, Upstream, UpstreamTransport, parse_duration,
};

mod tools;

/// What a side-effect tool does, in the policy's `action_type` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Publish,
    Dm,
    Comment,
    Like,
    Other,
}

/// Which automation lane executes the tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    Api,
    Browser,
}

/// Release stage of a capability (§8 of the policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    New,
    Established,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    version: Spanned<u32>,
    #[serde(default)]
    listen: RawListen,
    data_dir: Option<String>,
    slo_definitions: Option<String>,
    admin_token_env: Option<String>,
    retention: Option<Spanned<String>>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    tenants: Vec<Spanned<RawTenant>>,
    #[serde(default)]
    upstreams: Vec<Spanned<RawUpstream>>,
    #[serde(default)]
    tools: BTreeMap<String, Spanned<RawTool>>,
    #[serde(default)]
    capabilities: BTreeMap<String, RawCapability>,
    #[serde(default)]
    safety: RawSafety,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListen {
    #[serde(default, deserialize_with = "de_addr")]
    mcp: Option<SocketAddr>,
    #[serde(default, deserialize_with = "de_addr")]
    admin: Option<SocketAddr>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_request_body_bytes: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    id: String,
    token_env: Option<String>,
    token_sha256: Option<String>,
    #[serde(default)]
    canary: bool,
    #[serde(default)]
    accounts: Vec<RawAccount>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    id: String,
    platform: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    name: String,
    command: Option<Vec<String>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cwd: Option<String>,
    url: Option<String>,
    token_env: Option<String>,
    max_concurrent_requests: Option<usize>,
    #[serde(default, deserialize_with = "de_duration")]
    timeout: Option<std::time::Duration>,
    #[serde(default = "yes")]
    required: bool,
    prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTool {
    side_effect: Option<bool>,
    action: Option<Action>,
    lane: Option<Lane>,
    platform: Option<String>,
    capability: Option<String>,
    account_arg: Option<String>,
    target_arg: Option<String>,
    #[serde(default)]
    proof: RawProof,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProof {
    post_id: Option<String>,
    url: Option<String>,
    screenshot: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCapability {
    stage: Stage,
    #[serde(default)]
    enabled: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSafety {
    hard_stop_on_wrong_account: Option<bool>,
    quarantine_tenant: Option<bool>,
    spam_loop: Option<RawSpamLoop>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpamLoop {
    #[serde(default = "yes")]
    enabled: bool,
    actions: Option<Vec<Action>>,
    max_repeats: Option<u32>,
    #[serde(default, deserialize_with = "de_duration")]
    within: Option<std::time::Duration>,
}

fn yes() -> bool {
    true
}

fn de_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "invalid address {s:?}; write host:port, e.g. 127.0.0.1:8790"
        ))
    })
}

fn de_duration<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<std::time::Duration>, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// Collects the first validation error with its location.
struct Checker<'a> {
    file: &'a str,
}

impl Checker<'_> {
    fn err<T>(
        &self,
        at: serde_saphyr::Location,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Result<T, ConfigError> {
        Err(ConfigError {
            file: self.file.into(),
            line: at.line(),
            column: at.column(),
            field: field.into(),
            message: message.into(),
        })
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'))
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() || base == Path::new(".") {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn is_pointer(p: &str) -> bool {
    p.is_empty() || p.starts_with('/')
}

pub(super) fn validate(raw: RawConfig, file: &str, base: &Path) -> Result<Config, ConfigError> {
    let c = Checker { file };
    if raw.version.value != 1 {
        return c.err(
            raw.version.referenced,
            "version",
            "only version 1 is supported",
        );
    }
    let tenants = validate_tenants(&c, raw.tenants)?;
    let mut upstreams = validate_upstreams(&c, raw.upstreams, base)?;
    let tools = tools::validate_tools(&c, raw.tools, &raw.capabilities, &mut upstreams)?;
    let listen_mcp = raw.listen.mcp.unwrap_or(([127, 0, 0, 1], 8790).into());
    let listen_admin = raw.listen.admin.unwrap_or(([127, 0, 0, 1], 8791).into());
    if listen_mcp == listen_admin && listen_mcp.port() != 0 {
        return c.err(
            raw.version.referenced,
            "listen",
            "mcp and admin must listen on different addresses",
        );
    }
    let max_body_bytes = raw
        .limits
        .max_request_body_bytes
        .unwrap_or(DEFAULT_MAX_BODY);
    if max_body_bytes < 1024 {
        return c.err(
            raw.version.referenced,
            "limits.max_request_body_bytes",
            "must be at least 1024",
        );
    }
    let retention = match raw.retention {
        None => Retention::default(),
        Some(r) => Retention {
            keep: match parse_duration(&r.value) {
                Ok(d) => d,
                Err(m) => return c.err(r.referenced, "retention", m),
            },
            explicit: true,
            line: r.referenced.line(),
            column: r.referenced.column(),
        },
    };
    Ok(Config {
        source: file.into(),
        retention,
        listen_mcp,
        listen_admin,
        data_dir: resolve(base, raw.data_dir.as_deref().unwrap_or("./toolgate-data")),
        slo_definitions: raw.slo_definitions.map(|p| resolve(base, &p)),
        admin_token_env: raw.admin_token_env,
        max_body_bytes,
        tenants,
        upstreams,
        tools,
        capabilities: raw
            .capabilities
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    Capability {
                        stage: v.stage,
                        enabled: v.enabled,
                    },
                )
            })
            .collect(),
        safety: Safety {
            hard_stop_on_wrong_account: raw.safety.hard_stop_on_wrong_account.unwrap_or(true),
            quarantine_tenant: raw.safety.quarantine_tenant.unwrap_or(true),
            spam_loop: spam_loop(&c, raw.safety.spam_loop, raw.version.referenced)?,
        },
    })
}

fn spam_loop(
    c: &Checker,
    raw: Option<RawSpamLoop>,
    at: serde_saphyr::Location,
) -> Result<Option<SpamLoop>, ConfigError> {
    let d = SpamLoop::default();
    let Some(r) = raw else { return Ok(Some(d)) };
    if !r.enabled {
        return Ok(None);
    }
    let max_repeats = r.max_repeats.unwrap_or(d.max_repeats);
    if max_repeats == 0 {
        return c.err(
            at,
            "safety.spam_loop.max_repeats",
            "must be at least 1 (set enabled: false to turn the guard off)",
        );
    }
    Ok(Some(SpamLoop {
        actions: r.actions.unwrap_or(d.actions),
        max_repeats,
        within: r.within.unwrap_or(d.within),
    }))
}

fn validate_tenants(c: &Checker, raw: Vec<Spanned<RawTenant>>) -> Result<Vec<Tenant>, ConfigError> {
    let mut ids = HashSet::new();
    let mut accounts_seen: BTreeMap<String, String> = BTreeMap::new();
    let mut digests: BTreeMap<[u8; 32], String> = BTreeMap::new();
    let mut tenants = Vec::new();
    for (i, t) in raw.into_iter().enumerate() {
        let at = t.referenced;
        let t = t.value;
        let field = format!("tenants[{i}]");
        if !is_ident(&t.id) {
            return c.err(
                at,
                format!("{field}.id"),
                format!("{:?} is not a valid id (letters, digits, _ - . @)", t.id),
            );
        }
        if !ids.insert(t.id.clone()) {
            return c.err(
                at,
                format!("{field}.id"),
                format!("tenant {:?} is declared twice", t.id),
            );
        }
        let token = match (t.token_env, t.token_sha256) {
            (Some(env), None) if !env.is_empty() => TokenSource::Env(env),
            (None, Some(hex_digest)) => {
                let mut digest = [0u8; 32];
                if hex::decode_to_slice(hex_digest.trim(), &mut digest).is_err() {
                    return c.err(at, format!("{field}.token_sha256"), "must be 64 hex characters (sha256sum of the token)");
                }
                // A token must name one tenant: otherwise it authenticates as one of them,
                // and the other's runner trips wrong-account hard stops on the wrong tenant.
                if let Some(first) = digests.insert(digest, t.id.clone()) {
                    return c.err(at, format!("{field}.token_sha256"), format!("equals the token_sha256 of tenant {first:?}: each tenant needs a token of its own"));
                }
                TokenSource::Sha256(digest)
            }
            (Some(_), Some(_)) => return c.err(at, &field, "set token_env or token_sha256, not both"),
            _ => return c.err(at, &field, "needs token_env (an environment variable name) or token_sha256; plaintext tokens are not accepted"),
        };
        let mut accounts = Vec::new();
        for (j, a) in t.accounts.into_iter().enumerate() {
            if !is_ident(&a.id) {
                return c.err(
                    at,
                    format!("{field}.accounts[{j}].id"),
                    format!("{:?} is not a valid account id", a.id),
                );
            }
            if let Some(owner) = accounts_seen.insert(a.id.clone(), t.id.clone()) {
                return c.err(at, format!("{field}.accounts[{j}].id"), format!("account {:?} already belongs to tenant {owner:?}; an account has exactly one tenant", a.id));
            }
            accounts.push(Account {
                id: a.id,
                platform: a.platform,
            });
        }
        tenants.push(Tenant {
            line: at.line(),
            column: at.column(),
            id: t.id,
            token,
            canary: t.canary,
            accounts,
        });
    }
    Ok(tenants)
}

fn validate_upstreams(
    c: &Checker,
    raw: Vec<Spanned<RawUpstream>>,
    base: &Path,
) -> Result<Vec<Upstream>, ConfigError> {
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for (i, u) in raw.into_iter().enumerate() {
        let at = u.referenced;
        let u = u.value;
        let field = format!("upstreams[{i}]");
        if !is_name(&u.name) {
            return c.err(
                at,
                format!("{field}.name"),
                format!("{:?} must match [a-z0-9_-]+", u.name),
            );
        }
        if !names.insert(u.name.clone()) {
            return c.err(
                at,
                format!("{field}.name"),
                format!("upstream {:?} is declared twice", u.name),
            );
        }
        let transport = match (u.command, u.url) {
            (Some(argv), None) => {
                if argv.is_empty() || argv[0].is_empty() {
                    return c.err(
                        at,
                        format!("{field}.command"),
                        "must name a program, e.g. [docker, run, -i, --rm, IMAGE]",
                    );
                }
                if u.token_env.is_some() || u.max_concurrent_requests.is_some() {
                    return c.err(
                        at,
                        &field,
                        "token_env and max_concurrent_requests apply to url upstreams only",
                    );
                }
                UpstreamTransport::Command {
                    argv,
                    env: u.env,
                    cwd: u.cwd.map(|p| resolve(base, &p)),
                }
            }
            (None, Some(url)) => {
                // The upstream client speaks plain HTTP only. Refused here, not first at
                // start-up, where the upstream would just never connect (and never be ready).
                if url.starts_with("https://") {
                    return c.err(
                        at,
                        format!("{field}.url"),
                        format!(
                            "{url:?}: https upstreams are not supported yet (toolgate speaks plain \
                             HTTP to upstreams, meant for tool servers beside it); reach a remote \
                             one through a local TLS-terminating proxy"
                        ),
                    );
                }
                if !url.starts_with("http://") {
                    return c.err(
                        at,
                        format!("{field}.url"),
                        format!("{url:?} must be an http:// URL"),
                    );
                }
                if !u.env.is_empty() || u.cwd.is_some() {
                    return c.err(at, &field, "env and cwd apply to command upstreams only");
                }
                UpstreamTransport::Http {
                    url,
                    token_env: u.token_env,
                    max_concurrent_requests: u.max_concurrent_requests.unwrap_or(64).max(1),
                }
            }
            (Some(_), Some(_)) => return c.err(at, &field, "set command or url, not both"),
            (None, None) => {
                return c.err(
                    at,
                    &field,
                    "needs command: [argv...] or url: http://host:port/mcp",
                );
            }
        };
        let prefix = u.prefix.unwrap_or_else(|| format!("{}__", u.name));
        out.push(Upstream {
            name: u.name,
            transport,
            timeout: u.timeout.unwrap_or(std::time::Duration::from_secs(30)),
            required: u.required,
            prefix,
            classified: Vec::new(),
        });
    }
    Ok(out)
}
