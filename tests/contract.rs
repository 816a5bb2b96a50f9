//! The wire contract in `proto/` checked against what the Rust code really accepts and emits.
//!
//! Each schema is compiled as JSON Schema draft 2020-12, then held against the parser (configs
//! and SLO files both ways: what one accepts the other accepts, what one rejects the other
//! rejects) and against real outputs (error data, result `_meta`, audit records and hard stops
//! written by the SQLite journal and read back from its file). A drift on either side fails
//! here. No network, no child processes.

#[path = "common/schema.rs"]
mod schema;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jsonschema::Validator;
use rmcp::model::{ErrorCode, ErrorData};
use serde_json::{Value, json};
use toolgate::call::{Denial, FailureClass, Reason};
use toolgate::clock::rfc3339;
use toolgate::config::{Action, Config, EMBEDDED_DEFAULT, EMBEDDED_NAME, Lane};
use toolgate::error::{
    GatewayError, IDEMPOTENCY, REFUSED_BY_POLICY, UPSTREAM_FAILURE, UpstreamFault,
};
use toolgate::journal::sqlite::SqliteJournal;
use toolgate::journal::{
    AuditRecord, Claim, GENESIS_HASH, HardStop, HardStopKind, Intent, KeyRecord, KeyState, Outcome,
    Proof, RecordKind, Resolution, Settle, Store,
};

const SCHEMAS: [&str; 10] = [
    "gateway-config.schema.json",
    "slo-definitions.schema.json",
    "request-meta.schema.json",
    "result-meta.schema.json",
    "error-data.schema.json",
    "audit-record.schema.json",
    "hard-stop.schema.json",
    "admin-api.schema.json",
    "sli-event.schema.json",
    "status.schema.json",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: impl AsRef<Path>) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `proto/<name>`, or one part of it with `name#/$defs/<def>`.
fn validator(name: &str) -> Arc<Validator> {
    schema::validator(name)
}

/// The schema `name` narrowed to one of its `$defs`.
fn def_validator(name: &str, def: &str) -> Arc<Validator> {
    validator(&format!("{name}#/$defs/{def}"))
}

fn violations(v: &Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance)
        .map(|e| format!("{} (at {:?})", e, e.instance_path().as_str()))
        .collect()
}

fn assert_valid(v: &Validator, instance: &Value, what: &str) {
    let errs = violations(v, instance);
    assert!(
        errs.is_empty(),
        "{what} does not match its schema:\n  {}\ninstance: {instance:#}",
        errs.join("\n  ")
    );
}

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str::<Value>(text).unwrap_or_else(|e| panic!("not YAML: {e}\n{text}"))
}

fn parse_config(text: &str) -> Result<Config, String> {
    Config::parse(text, "case.yml", Path::new("/etc/toolgate")).map_err(|e| e.to_string())
}

// ---- the schemas themselves ---------------------------------------------------------------

#[test]
fn schemas_are_valid_draft_2020_12_and_documented() {
    let listed: BTreeSet<String> = std::fs::read_dir(root().join("proto"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".schema.json"))
        .collect();
    let known: BTreeSet<String> = SCHEMAS.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        listed, known,
        "every proto/*.schema.json must be covered by this test"
    );
    for name in SCHEMAS {
        let s = schema::schema_json(name);
        assert_eq!(
            s["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "proto/{name}: $schema"
        );
        let stem = name.trim_end_matches(".schema.json");
        assert_eq!(
            s["$id"],
            format!("urn:toolgate:proto:{stem}:1"),
            "proto/{name}: $id (other schemas $ref it by this)"
        );
        if let Err(e) = jsonschema::draft202012::meta::validate(&s) {
            panic!("proto/{name} is not a valid 2020-12 schema: {e}");
        }
        schema::compile(&s);
        let mut undocumented = Vec::new();
        find_undocumented(&s, "", &mut undocumented);
        assert!(
            undocumented.is_empty(),
            "proto/{name}: properties without a description (they are the reference docs): {undocumented:?}"
        );
        assert!(
            read("proto/README.md").contains(name),
            "proto/README.md does not mention {name}"
        );
    }
}

/// Every member of every `properties` map carries a `description`.
fn find_undocumented(node: &Value, at: &str, out: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get("properties") {
                for (k, p) in props {
                    // Members of branch-local `properties` (inside oneOf/allOf/not/if/then/
                    // else) and of `properties` beside a `$ref` only narrow a property
                    // documented where it is defined.
                    let local = ["/oneOf/", "/allOf/", "/not", "/if", "/then", "/else"]
                        .iter()
                        .any(|b| at.contains(b))
                        || map.contains_key("$ref");
                    if !local && p.get("description").is_none() {
                        out.push(format!("{at}/properties/{k}"));
                    }
                }
            }
            for (k, v) in map {
                find_undocumented(v, &format!("{at}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                find_undocumented(v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

// ---- gateway config ---------------------------------------------------------------------------

/// Gateway configs under examples/: every `*.yml` except the compose file.
fn example_configs() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .filter(|p| !p.file_name().unwrap().to_string_lossy().contains("compose"))
        .collect();
    out.sort();
    out
}

#[test]
fn example_configs_parse_and_match_the_schema() {
    let v = validator("gateway-config.schema.json");
    Config::parse(EMBEDDED_DEFAULT, EMBEDDED_NAME, Path::new("."))
        .unwrap_or_else(|e| panic!("embedded default: {e}"));
    assert_valid(&v, &yaml(EMBEDDED_DEFAULT), "the embedded default config");

    let files = example_configs();
    for expected in ["default.yml", "gateway.yml", "docker-gateway.yml"] {
        assert!(
            files.iter().any(|p| p.ends_with(expected)),
            "examples/{expected} is missing"
        );
    }
    for path in files {
        let shown = path.display().to_string();
        let cfg = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_valid(&v, &yaml(&read(&path)), &shown);
        // A relative slo_definitions path in an example must point at a real, valid file.
        // The embedded default is exempt: it resolves against the working directory.
        if let Some(slo) = &cfg.slo_definitions
            && slo.is_relative()
            && !path.ends_with("default.yml")
        {
            toolgate::slo::load(slo).unwrap_or_else(|e| panic!("{shown}: slo_definitions: {e}"));
        }
    }
}

#[test]
fn reference_config_shows_every_section() {
    let text = read("examples/gateway.yml");
    let doc = yaml(&text);
    for key in [
        "version",
        "listen",
        "data_dir",
        "slo_definitions",
        "admin_token_env",
        "limits",
        "tenants",
        "upstreams",
        "tools",
        "capabilities",
        "safety",
    ] {
        assert!(doc.get(key).is_some(), "examples/gateway.yml lacks {key}");
    }
    let cfg = Config::load(&root().join("examples/gateway.yml")).unwrap();
    assert!(cfg.tenants.len() >= 2, "a second tenant");
    assert!(
        cfg.upstreams.iter().any(|u| matches!(
            u.transport,
            toolgate::config::UpstreamTransport::Http { .. }
        ) && !u.required),
        "an optional url upstream"
    );
}

/// A small valid config that the cases below vary.
const BASE: &str = "version: 1
tenants:
  - id: acme
    token_env: TOK_ACME
    accounts: [{id: acme-ig, platform: instagram}]
upstreams:
  - name: social
    command: [docker, run, -i, --rm, mcp/social]
";

/// `BASE` with one text replacement (which must apply).
fn vary(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "case does not apply: {from:?}");
    BASE.replacen(from, to, 1)
}

fn config_rejected_by_both() -> Vec<(&'static str, String)> {
    let sha = "e2186dbdb1bb4193608605e84f33208765b5693b55edd4f730a719a100eeea6f";
    vec![
        ("missing version", BASE.replace("version: 1\n", "")),
        ("version 2", vary("version: 1", "version: 2")),
        ("unknown top-level key", format!("{BASE}telemetry: {{}}\n")),
        (
            "retention that is no duration",
            format!("{BASE}retention: forever\n"),
        ),
        ("zero retention", format!("{BASE}retention: 0d\n")),
        ("unknown upstream key", format!("{BASE}    timeuot: 5s\n")),
        (
            "unknown tenant key",
            vary(
                "    token_env: TOK_ACME\n",
                "    token_env: TOK_ACME\n    token: plain\n",
            ),
        ),
        (
            "unknown account key",
            vary("platform: instagram", "platform: instagram, owner: x"),
        ),
        (
            "unknown listen key",
            format!("{BASE}listen: {{http: 127.0.0.1:1}}\n"),
        ),
        (
            "unknown limits key",
            format!("{BASE}limits: {{max_body: 2048}}\n"),
        ),
        (
            "unknown safety key",
            format!("{BASE}safety: {{panic: true}}\n"),
        ),
        (
            "unknown tool key",
            format!("{BASE}tools: {{social__x: {{kind: publish}}}}\n"),
        ),
        (
            "unknown proof key",
            format!("{BASE}tools: {{social__x: {{proof: {{id: /id}}}}}}\n"),
        ),
        (
            "unknown capability key",
            format!("{BASE}capabilities: {{c: {{stage: new, owner: x}}}}\n"),
        ),
        (
            "host name in listen",
            format!("{BASE}listen: {{mcp: \"localhost:8790\"}}\n"),
        ),
        (
            "listen without port",
            format!("{BASE}listen: {{admin: 127.0.0.1}}\n"),
        ),
        (
            "listen port too large",
            format!("{BASE}listen: {{admin: \"127.0.0.1:65536\"}}\n"),
        ),
        (
            "body limit below 1024",
            format!("{BASE}limits: {{max_request_body_bytes: 512}}\n"),
        ),
        (
            "token in neither form",
            vary("    token_env: TOK_ACME\n", ""),
        ),
        (
            "token in both forms",
            vary(
                "token_env: TOK_ACME",
                &format!("token_env: TOK_ACME\n    token_sha256: {sha}"),
            ),
        ),
        (
            "empty token_env",
            vary("token_env: TOK_ACME", "token_env: \"\""),
        ),
        (
            "token_sha256 not hex",
            vary(
                "token_env: TOK_ACME",
                &format!("token_sha256: {}", sha.replace('e', "g")),
            ),
        ),
        (
            "token_sha256 too short",
            vary(
                "token_env: TOK_ACME",
                &format!("token_sha256: {}", &sha[..62]),
            ),
        ),
        ("tenant id with a space", vary("id: acme", "id: \"ac me\"")),
        (
            "tenant id too long",
            vary("id: acme", &format!("id: {}", "a".repeat(129))),
        ),
        ("empty account id", vary("id: acme-ig", "id: \"\"")),
        (
            "upstream name with capitals",
            vary("name: social", "name: Social"),
        ),
        (
            "upstream name with a space",
            vary("name: social", "name: \"my social\""),
        ),
        ("empty upstream name", vary("name: social", "name: \"\"")),
        (
            "both command and url",
            format!("{BASE}    url: http://tools:8080/mcp\n"),
        ),
        (
            "neither command nor url",
            vary("    command: [docker, run, -i, --rm, mcp/social]\n", ""),
        ),
        (
            "empty command",
            vary("[docker, run, -i, --rm, mcp/social]", "[]"),
        ),
        (
            "empty program",
            vary("[docker, run, -i, --rm, mcp/social]", "[\"\", x]"),
        ),
        (
            "token_env on a command upstream",
            format!("{BASE}    token_env: T\n"),
        ),
        (
            "max_concurrent_requests on a command upstream",
            format!("{BASE}    max_concurrent_requests: 4\n"),
        ),
        (
            "url not http",
            vary(
                "command: [docker, run, -i, --rm, mcp/social]",
                "url: ftp://tools/mcp",
            ),
        ),
        (
            "cwd on a url upstream",
            vary(
                "command: [docker, run, -i, --rm, mcp/social]",
                "url: http://tools/mcp\n    cwd: /tmp",
            ),
        ),
        (
            "env on a url upstream",
            vary(
                "command: [docker, run, -i, --rm, mcp/social]",
                "url: http://tools/mcp\n    env: {A: b}",
            ),
        ),
        (
            "timeout without unit",
            format!("{BASE}    timeout: \"30\"\n"),
        ),
        ("timeout in words", format!("{BASE}    timeout: soon\n")),
        ("zero timeout", format!("{BASE}    timeout: 0s\n")),
        (
            "zero compound timeout",
            format!("{BASE}    timeout: 0m 0s\n"),
        ),
        (
            "unknown duration unit",
            format!("{BASE}    timeout: 5 fortnights\n"),
        ),
        (
            "fraction of a nanosecond",
            format!("{BASE}    timeout: 1.5ns\n"),
        ),
        ("required not a bool", format!("{BASE}    required: [x]\n")),
        (
            "bad action",
            format!("{BASE}tools: {{social__x: {{action: post}}}}\n"),
        ),
        (
            "bad lane",
            format!("{BASE}tools: {{social__x: {{lane: desktop}}}}\n"),
        ),
        (
            "proof is not a pointer",
            format!("{BASE}tools: {{social__x: {{proof: {{url: url}}}}}}\n"),
        ),
        (
            "empty account_arg",
            format!("{BASE}tools: {{social__x: {{account_arg: \"\"}}}}\n"),
        ),
        (
            "capability without stage",
            format!("{BASE}capabilities: {{c: {{enabled: true}}}}\n"),
        ),
        (
            "bad stage",
            format!("{BASE}capabilities: {{c: {{stage: beta}}}}\n"),
        ),
        (
            "unknown spam_loop key",
            format!("{BASE}safety: {{spam_loop: {{limit: 3}}}}\n"),
        ),
        (
            "spam_loop max_repeats 0",
            format!("{BASE}safety: {{spam_loop: {{max_repeats: 0}}}}\n"),
        ),
        (
            "spam_loop max_repeats 0 while explicitly enabled",
            format!("{BASE}safety: {{spam_loop: {{enabled: true, max_repeats: 0}}}}\n"),
        ),
        (
            "negative spam_loop max_repeats",
            format!("{BASE}safety: {{spam_loop: {{max_repeats: -1}}}}\n"),
        ),
        (
            "fractional spam_loop max_repeats",
            format!("{BASE}safety: {{spam_loop: {{max_repeats: 1.5}}}}\n"),
        ),
        (
            "spam_loop max_repeats beyond u32",
            format!("{BASE}safety: {{spam_loop: {{max_repeats: 4294967296}}}}\n"),
        ),
        (
            "spam_loop unknown action",
            format!("{BASE}safety: {{spam_loop: {{actions: [dm, post]}}}}\n"),
        ),
        (
            "spam_loop actions not a list",
            format!("{BASE}safety: {{spam_loop: {{actions: {{dm: true}}}}}}\n"),
        ),
        (
            "spam_loop zero window",
            format!("{BASE}safety: {{spam_loop: {{within: 0s}}}}\n"),
        ),
        (
            "spam_loop window without unit",
            format!("{BASE}safety: {{spam_loop: {{within: \"60\"}}}}\n"),
        ),
        (
            "spam_loop bad window while disabled",
            format!("{BASE}safety: {{spam_loop: {{enabled: false, within: soon}}}}\n"),
        ),
        (
            "spam_loop enabled not a bool",
            format!("{BASE}safety: {{spam_loop: {{enabled: [yes]}}}}\n"),
        ),
        (
            "spam_loop not an object",
            format!("{BASE}safety: {{spam_loop: [dm]}}\n"),
        ),
    ]
}

fn config_accepted_by_both() -> Vec<(&'static str, String)> {
    let sha = "E2186DBDB1BB4193608605E84F33208765B5693B55EDD4F730A719A100EEEA6F";
    vec![
        ("only the version", "version: 1\n".to_string()),
        ("base", BASE.to_string()),
        ("retention", format!("{BASE}retention: 400d\n")),
        (
            "token_sha256 in upper case",
            vary("token_env: TOK_ACME", &format!("token_sha256: {sha}")),
        ),
        (
            "canary tenant without accounts",
            vary(
                "    accounts: [{id: acme-ig, platform: instagram}]\n",
                "    canary: true\n",
            ),
        ),
        (
            "account without platform",
            vary(", platform: instagram", ""),
        ),
        (
            "ids with . and @",
            vary("id: acme-ig", "id: ops@acme.example"),
        ),
        (
            "IPv6 and port 0",
            format!("{BASE}listen: {{mcp: \"[::1]:0\", admin: \"[::1]:8791\"}}\n"),
        ),
        (
            "same address with port 0",
            format!("{BASE}listen: {{mcp: 127.0.0.1:0, admin: 127.0.0.1:0}}\n"),
        ),
        (
            "body limit exactly 1024",
            format!("{BASE}limits: {{max_request_body_bytes: 1024}}\n"),
        ),
        (
            "url upstream with every option",
            vary(
                "command: [docker, run, -i, --rm, mcp/social]",
                "url: https://tools.example/mcp\n    env: {}\n    token_env: T\n    max_concurrent_requests: 0\n    required: false\n    prefix: \"\"",
            ),
        ),
        (
            "command upstream with env and cwd",
            format!("{BASE}    env: {{A: b}}\n    cwd: ./tools\n"),
        ),
        (
            "durations",
            format!(
                "{BASE}    timeout: 500ms\n  - name: b\n    command: [b]\n    timeout: 1h 30m\n  - name: c\n    command: [c]\n    timeout: 1.5s\n  - name: d\n    command: [d]\n    timeout: 28d\n"
            ),
        ),
        (
            "empty proof pointer",
            format!("{BASE}tools: {{social__x: {{proof: {{post_id: \"\", url: /url}}}}}}\n"),
        ),
        (
            "tool with defaults only",
            format!("{BASE}tools: {{social__x: {{}}}}\n"),
        ),
        (
            "declared capability",
            format!(
                "{BASE}tools: {{social__x: {{capability: c}}}}\ncapabilities: {{c: {{stage: new}}}}\n"
            ),
        ),
        (
            "safety off",
            format!(
                "{BASE}safety: {{hard_stop_on_wrong_account: false, quarantine_tenant: false, spam_loop: {{enabled: false}}}}\n"
            ),
        ),
        (
            "spam_loop with defaults",
            format!("{BASE}safety: {{spam_loop: {{}}}}\n"),
        ),
        (
            "spam_loop with every key",
            format!(
                "{BASE}safety:\n  spam_loop:\n    enabled: true\n    actions: [publish, dm, comment, like, other]\n    max_repeats: 1\n    within: 1h 30m\n"
            ),
        ),
        (
            "spam_loop counting nothing",
            format!("{BASE}safety: {{spam_loop: {{actions: []}}}}\n"),
        ),
        (
            "spam_loop largest max_repeats",
            format!("{BASE}safety: {{spam_loop: {{max_repeats: 4294967295, within: 28d}}}}\n"),
        ),
        (
            "spam_loop disabled with max_repeats 0",
            format!("{BASE}safety: {{spam_loop: {{enabled: false, max_repeats: 0}}}}\n"),
        ),
    ]
}

#[test]
fn schema_and_parser_agree_on_configs() {
    let v = validator("gateway-config.schema.json");
    for (what, text) in config_rejected_by_both() {
        assert!(
            parse_config(&text).is_err(),
            "the parser accepts {what}:\n{text}"
        );
        assert!(
            !v.is_valid(&yaml(&text)),
            "the schema accepts {what}, which the parser rejects:\n{text}"
        );
    }
    for (what, text) in config_accepted_by_both() {
        if let Err(e) = parse_config(&text) {
            panic!("the parser rejects {what}: {e}\n{text}");
        }
        assert_valid(&v, &yaml(&text), what);
    }
}

/// Rules proto/README.md lists as parser-only (a JSON Schema cannot express them). If the
/// schema starts catching one, move it to `config_rejected_by_both` and update the README.
#[test]
fn parser_only_config_rules_are_the_documented_ones() {
    let v = validator("gateway-config.schema.json");
    let cases = [
        (
            "duplicate tenant id",
            vary("upstreams:", "  - id: acme\n    token_env: T2\nupstreams:"),
        ),
        (
            "account in two tenants",
            vary(
                "upstreams:",
                "  - id: other\n    token_env: T2\n    accounts: [{id: acme-ig}]\nupstreams:",
            ),
        ),
        (
            "duplicate upstream name",
            format!("{BASE}  - name: social\n    url: http://x/mcp\n"),
        ),
        (
            "mcp and admin on one address",
            format!("{BASE}listen: {{mcp: 127.0.0.1:9000, admin: 127.0.0.1:9000}}\n"),
        ),
        (
            "undeclared capability",
            format!(
                "{BASE}tools: {{social__x: {{capability: c}}}}\ncapabilities: {{d: {{stage: new}}}}\n"
            ),
        ),
    ];
    let readme = read("proto/README.md");
    for (what, text) in cases {
        assert!(parse_config(&text).is_err(), "the parser accepts {what}");
        assert!(
            v.is_valid(&yaml(&text)),
            "the schema now rejects {what}: move the case"
        );
    }
    for phrase in ["unique", "exactly one tenant", "listen.mcp", "capabilities"] {
        assert!(
            readme.contains(phrase),
            "proto/README.md no longer documents: {phrase}"
        );
    }
}

/// YAML leniencies of the parser that the schema deliberately does not copy (README: "stricter
/// than the parser"). If the parser becomes strict too, drop the case and the README note.
#[test]
fn schema_is_stricter_than_the_parser_only_where_documented() {
    let v = validator("gateway-config.schema.json");
    let cases = [
        ("explicit null", format!("{BASE}    cwd: null\n")),
        (
            "a number where a string is expected",
            vary("id: acme", "id: 123"),
        ),
        (
            "a quoted boolean",
            vary("    accounts:", "    canary: \"true\"\n    accounts:"),
        ),
    ];
    for (what, text) in cases {
        assert!(
            parse_config(&text).is_ok(),
            "the parser now rejects {what}: drop the case"
        );
        assert!(!v.is_valid(&yaml(&text)), "the schema accepts {what}");
    }
    assert!(read("proto/README.md").contains("stricter than the parser"));
}

// ---- SLO definitions ----------------------------------------------------------------------

use toolgate::slo::{EventKind, Severity, Source};

const SLOS: &str = "slo-definitions.schema.json";

/// A small valid SLO file that the cases below vary.
const SLO_BASE: &str = "version: 1
slos:
  - id: SLO-01
    name: Publish success
    target: 0.995
    window: 28d
    sli: {source: tool_calls, filter: {action_type: [publish]}}
";

/// One alert tier and a full `bands` section, for the cases that vary them.
const TIER: &str = "{severity: page, long: 1h, short: 5m, budget_fraction: 0.02}";
const BANDS: &str = "bands: {green_min_remaining: 0.5, yellow_min_remaining: 0.2, page_sustained: 15m, ticket_repeats: 3, ticket_repeat_window: 7d}";

/// `SLO_BASE` with one text replacement (which must apply).
fn slo_vary(from: &str, to: &str) -> String {
    assert!(SLO_BASE.contains(from), "case does not apply: {from:?}");
    SLO_BASE.replacen(from, to, 1)
}

/// `SLO_BASE` whose one SLO has this `sli`.
fn slo_sli(sli: &str) -> String {
    slo_vary(
        "{source: tool_calls, filter: {action_type: [publish]}}",
        sli,
    )
}

/// `SLO_BASE` plus one top-level section.
fn slo_with(section: &str) -> String {
    format!("{SLO_BASE}{section}\n")
}

/// `SLO_BASE` with `TIER`, varied, as its only alert tier.
fn slo_tier(from: &str, to: &str) -> String {
    assert!(TIER.contains(from), "case does not apply: {from:?}");
    slo_with(&format!("alerts: [{}]", TIER.replacen(from, to, 1)))
}

/// `SLO_BASE` with `BANDS`, varied.
fn slo_bands(from: &str, to: &str) -> String {
    assert!(BANDS.contains(from), "case does not apply: {from:?}");
    slo_with(&BANDS.replacen(from, to, 1))
}

fn parse_slos(text: &str) -> Result<toolgate::slo::SloSet, String> {
    toolgate::slo::parse(text, "s.yml").map_err(|e| e.to_string())
}

#[test]
fn shipped_slo_definitions_parse_and_match_the_schema() {
    let text = read("slo_definitions.yml");
    let set = toolgate::slo::parse(&text, "slo_definitions.yml").unwrap_or_else(|e| panic!("{e}"));
    assert!(!set.slos.is_empty());
    assert_eq!(
        text,
        toolgate::slo::EMBEDDED,
        "the binary embeds the shipped file"
    );
    let doc = yaml(&text);
    assert_valid(&validator(SLOS), &doc, "slo_definitions.yml");
    // Every section is present, so the schema is held against each one.
    for key in [
        "version",
        "defaults",
        "alerts",
        "bands",
        "hard_stops",
        "slos",
    ] {
        assert!(doc.get(key).is_some(), "slo_definitions.yml lacks {key}");
    }
    assert!(!set.alerts.is_empty() && set.hard_stops.audit_completeness.is_some());
}

fn slo_rejected_by_both() -> Vec<(&'static str, String)> {
    vec![
        // The file.
        ("missing version", SLO_BASE.replace("version: 1\n", "")),
        ("version 2", slo_vary("version: 1", "version: 2")),
        ("version 0", slo_vary("version: 1", "version: 0")),
        ("unknown top-level key", slo_with("owners: []")),
        ("missing slos", "version: 1\n".to_string()),
        ("no slos", "version: 1\nslos: []\n".to_string()),
        ("slos null", "version: 1\nslos: null\n".to_string()),
        (
            "slos as a map",
            "version: 1\nslos: {SLO-01: {name: a, target: 0.9, sli: {source: audit}}}\n"
                .to_string(),
        ),
        // defaults
        ("defaults null", slo_with("defaults: null")),
        ("unknown defaults key", slo_with("defaults: {target: 0.99}")),
        (
            "bad default window",
            slo_with("defaults: {window: a month}"),
        ),
        ("zero default window", slo_with("defaults: {window: 0d}")),
        (
            "negative min_events",
            slo_with("defaults: {min_events: -1}"),
        ),
        (
            "fractional min_events",
            slo_with("defaults: {min_events: 2.5}"),
        ),
        (
            "min_events beyond u64",
            slo_with("defaults: {min_events: 18446744073709551616}"),
        ),
        (
            "unknown failure class",
            slo_with("defaults: {budget_classes: [tool_failure, timeout]}"),
        ),
        (
            "budget_classes not a list",
            slo_with("defaults: {budget_classes: tool_failure}"),
        ),
        (
            "exclude_dependency_incidents not a bool",
            slo_with("defaults: {exclude_dependency_incidents: [yes]}"),
        ),
        (
            "postmortem_budget_fraction 0",
            slo_with("defaults: {postmortem_budget_fraction: 0}"),
        ),
        (
            "postmortem_budget_fraction as a percentage",
            slo_with("defaults: {postmortem_budget_fraction: 20}"),
        ),
        (
            "negative postmortem_budget_fraction",
            slo_with("defaults: {postmortem_budget_fraction: -0.2}"),
        ),
        // alerts
        ("alerts not a list", slo_with(&format!("alerts: {TIER}"))),
        (
            "unknown tier key",
            slo_tier("severity: page", "severity: page, channel: sre"),
        ),
        ("tier without severity", slo_tier("severity: page, ", "")),
        (
            "unknown severity",
            slo_tier("severity: page", "severity: critical"),
        ),
        ("tier without long", slo_tier("long: 1h, ", "")),
        ("tier without short", slo_tier("short: 5m, ", "")),
        ("bad long window", slo_tier("long: 1h", "long: an hour")),
        ("zero short window", slo_tier("short: 5m", "short: 0m")),
        (
            "tier without a rate",
            slo_tier(", budget_fraction: 0.02", ""),
        ),
        (
            "tier with both rates",
            slo_tier(
                "budget_fraction: 0.02",
                "budget_fraction: 0.02, burn_rate: 14",
            ),
        ),
        (
            "burn_rate 0",
            slo_tier("budget_fraction: 0.02", "burn_rate: 0"),
        ),
        (
            "negative burn_rate",
            slo_tier("budget_fraction: 0.02", "burn_rate: -2"),
        ),
        (
            "burn_rate in words",
            slo_tier("budget_fraction: 0.02", "burn_rate: fast"),
        ),
        (
            "budget_fraction 0",
            slo_tier("budget_fraction: 0.02", "budget_fraction: 0"),
        ),
        (
            "budget_fraction as a percentage",
            slo_tier("budget_fraction: 0.02", "budget_fraction: 2"),
        ),
        // bands
        (
            "unknown bands key",
            slo_bands(
                "ticket_repeats: 3",
                "ticket_repeats: 3, red_min_remaining: 0.1",
            ),
        ),
        (
            "bands without ticket_repeat_window",
            slo_bands(", ticket_repeat_window: 7d", ""),
        ),
        (
            "bands without green_min_remaining",
            slo_bands("green_min_remaining: 0.5, ", ""),
        ),
        (
            "green_min_remaining above 1",
            slo_bands("green_min_remaining: 0.5", "green_min_remaining: 1.5"),
        ),
        (
            "negative yellow_min_remaining",
            slo_bands("yellow_min_remaining: 0.2", "yellow_min_remaining: -0.1"),
        ),
        (
            "bands as percentages",
            slo_bands(
                "green_min_remaining: 0.5, yellow_min_remaining: 0.2",
                "green_min_remaining: 50, yellow_min_remaining: 20",
            ),
        ),
        (
            "negative ticket_repeats",
            slo_bands("ticket_repeats: 3", "ticket_repeats: -1"),
        ),
        (
            "fractional ticket_repeats",
            slo_bands("ticket_repeats: 3", "ticket_repeats: 1.5"),
        ),
        (
            "ticket_repeats beyond u32",
            slo_bands("ticket_repeats: 3", "ticket_repeats: 4294967296"),
        ),
        (
            "page_sustained without unit",
            slo_bands("page_sustained: 15m", "page_sustained: 15"),
        ),
        (
            "zero ticket_repeat_window",
            slo_bands("ticket_repeat_window: 7d", "ticket_repeat_window: 0d"),
        ),
        // hard_stops
        (
            "unknown hard_stops key",
            slo_with("hard_stops: {audit_gap: true}"),
        ),
        (
            "wrong_account not a bool",
            slo_with("hard_stops: {wrong_account: [on]}"),
        ),
        (
            "spam_loop not a bool",
            slo_with("hard_stops: {spam_loop: {max_repeats: 3}}"),
        ),
        (
            "audit_completeness without below",
            slo_with("hard_stops: {audit_completeness: {slo: SLO-01}}"),
        ),
        (
            "audit_completeness without slo",
            slo_with("hard_stops: {audit_completeness: {below: 0.999}}"),
        ),
        (
            "unknown audit_completeness key",
            slo_with(
                "hard_stops: {audit_completeness: {slo: SLO-01, below: 0.999, min_events: 5}}",
            ),
        ),
        (
            "audit_completeness below 0",
            slo_with("hard_stops: {audit_completeness: {slo: SLO-01, below: 0}}"),
        ),
        (
            "audit_completeness below as a percentage",
            slo_with("hard_stops: {audit_completeness: {slo: SLO-01, below: 99.9}}"),
        ),
        (
            "audit_completeness with an empty slo",
            slo_with("hard_stops: {audit_completeness: {slo: \"\", below: 0.999}}"),
        ),
        // One SLO.
        (
            "unknown SLO key",
            slo_vary("    window: 28d\n", "    window: 28d\n    owner: sre\n"),
        ),
        (
            "missing id",
            slo_vary("  - id: SLO-01\n    name:", "  - name:"),
        ),
        ("empty id", slo_vary("id: SLO-01", "id: \"\"")),
        ("missing name", slo_vary("    name: Publish success\n", "")),
        ("missing target", slo_vary("    target: 0.995\n", "")),
        (
            "missing sli",
            slo_vary(
                "    sli: {source: tool_calls, filter: {action_type: [publish]}}\n",
                "",
            ),
        ),
        ("target as a percentage", slo_vary("0.995", "99.5")),
        ("target 0", slo_vary("0.995", "0")),
        ("negative target", slo_vary("0.995", "-0.5")),
        ("target above 1", slo_vary("0.995", "1.0001")),
        ("target in words", slo_vary("0.995", "high")),
        ("bad window", slo_vary("28d", "a month")),
        ("window without unit", slo_vary("28d", "28")),
        ("zero window", slo_vary("28d", "0d")),
        ("zero compound window", slo_vary("28d", "0h 0m")),
        ("fraction of a nanosecond", slo_vary("28d", "1.5ns")),
        (
            "negative SLO min_events",
            slo_vary("    window: 28d\n", "    window: 28d\n    min_events: -1\n"),
        ),
        (
            "paging not a bool",
            slo_vary("    window: 28d\n", "    window: 28d\n    paging: [yes]\n"),
        ),
        (
            "paging null",
            slo_vary("    window: 28d\n", "    window: 28d\n    paging: null\n"),
        ),
        (
            "unknown SLO budget class",
            slo_vary(
                "    window: 28d\n",
                "    window: 28d\n    budget_classes: [late]\n",
            ),
        ),
        (
            "SLO exclude_dependency_incidents not a bool",
            slo_vary(
                "    window: 28d\n",
                "    window: 28d\n    exclude_dependency_incidents: {platform: x}\n",
            ),
        ),
        // Its SLI.
        (
            "sli without source",
            slo_sli("{filter: {action_type: [publish]}}"),
        ),
        (
            "unknown source",
            slo_sli("{source: events, event: job_started, threshold: 2m}"),
        ),
        ("unknown sli key", slo_sli("{source: audit, within: 10m}")),
        (
            "event on a tool_calls source",
            slo_sli("{source: tool_calls, event: job_started, threshold: 2m}"),
        ),
        (
            "event on a safety source",
            slo_sli("{source: safety, event: wrong_account_detected}"),
        ),
        ("source event without event", slo_sli("{source: event}")),
        (
            "unknown event type",
            slo_sli("{source: event, event: post_published, threshold: 10m}"),
        ),
        (
            "job_started without threshold",
            slo_sli("{source: event, event: job_started, filter: {kind: [publish]}}"),
        ),
        (
            "post_verified without threshold",
            slo_sli("{source: event, event: post_verified}"),
        ),
        (
            "inbound_visible without threshold",
            slo_sli("{source: event, event: inbound_visible}"),
        ),
        (
            "auto_reply_sent without threshold",
            slo_sli("{source: event, event: auto_reply_sent}"),
        ),
        (
            "latency event with an empty threshold_by_kind",
            slo_sli("{source: event, event: job_started, threshold_by_kind: {}}"),
        ),
        (
            "bad threshold",
            slo_sli("{source: event, event: post_verified, threshold: soon}"),
        ),
        (
            "zero threshold",
            slo_sli("{source: event, event: post_verified, threshold: 0s}"),
        ),
        (
            "bad threshold on a non-latency SLI",
            slo_sli("{source: audit, threshold: soon}"),
        ),
        (
            "bad threshold_by_kind entry",
            slo_sli(
                "{source: event, event: job_started, threshold_by_kind: {publish: 2m, engagement_ingest: 5}}",
            ),
        ),
        (
            "threshold_by_kind not a map",
            slo_sli("{source: event, event: job_started, threshold_by_kind: [2m]}"),
        ),
        (
            "threshold_by_kind null",
            slo_sli("{source: event, event: job_started, threshold: 2m, threshold_by_kind: null}"),
        ),
        (
            "require_proof not a bool",
            slo_sli("{source: tool_calls, require_proof: [yes]}"),
        ),
        (
            "require_proof null",
            slo_sli("{source: tool_calls, require_proof: null}"),
        ),
        ("filter null", slo_sli("{source: audit, filter: null}")),
        (
            "unknown filter key",
            slo_sli("{source: audit, filter: {tenant: [acme]}}"),
        ),
        (
            "unknown lane",
            slo_sli("{source: tool_calls, filter: {lane: [desktop]}}"),
        ),
        (
            "unknown action_type",
            slo_sli("{source: tool_calls, filter: {action_type: [post]}}"),
        ),
        (
            "filter value not a list",
            slo_sli("{source: tool_calls, filter: {platform: instagram}}"),
        ),
        (
            "filter kind null",
            slo_sli("{source: event, event: job_started, threshold: 2m, filter: {kind: null}}"),
        ),
        (
            "side_effects not a bool",
            slo_sli("{source: event, event: episode_finished, filter: {side_effects: [true]}}"),
        ),
    ]
}

fn slo_accepted_by_both() -> Vec<(&'static str, String)> {
    vec![
        ("base", SLO_BASE.to_string()),
        ("without window", slo_vary("    window: 28d\n", "")),
        ("target 1", slo_vary("0.995", "1.0")),
        ("integer target 1", slo_vary("0.995", "1")),
        ("tiny target", slo_vary("0.995", "0.000001")),
        ("compound window", slo_vary("28d", "1w 12h")),
        ("fractional window", slo_vary("28d", "1.5d")),
        ("window in words", slo_vary("28d", "4 weeks")),
        (
            "empty name",
            slo_vary("name: Publish success", "name: \"\""),
        ),
        (
            "every SLO key",
            slo_vary(
                "    window: 28d\n",
                "    window: 7d\n    min_events: 0\n    paging: true\n    budget_classes: [policy_blocked, verification_failed]\n    exclude_dependency_incidents: true\n",
            ),
        ),
        (
            "largest min_events, no budget classes",
            slo_vary(
                "    window: 28d\n",
                "    window: 28d\n    min_events: 18446744073709551615\n    budget_classes: []\n",
            ),
        ),
        (
            "several SLOs",
            format!(
                "{SLO_BASE}  - {{id: SLO-07, name: Safety, target: 1, paging: true, min_events: 1, sli: {{source: safety}}}}\n"
            ),
        ),
        // SLIs.
        ("audit source", slo_sli("{source: audit}")),
        ("safety source", slo_sli("{source: safety}")),
        (
            "tool_calls with proof",
            slo_sli("{source: tool_calls, filter: {lane: [browser]}, require_proof: true}"),
        ),
        (
            "episode_finished needs no threshold",
            slo_sli("{source: event, event: episode_finished, filter: {side_effects: true}}"),
        ),
        (
            "wrong_account_detected event",
            slo_sli("{source: event, event: wrong_account_detected}"),
        ),
        (
            "dependency_incident event",
            slo_sli("{source: event, event: dependency_incident}"),
        ),
        (
            "post_verified with threshold",
            slo_sli("{source: event, event: post_verified, threshold: 10m}"),
        ),
        (
            "inbound_visible with threshold",
            slo_sli("{source: event, event: inbound_visible, threshold: 5m}"),
        ),
        (
            "auto_reply_sent with threshold",
            slo_sli("{source: event, event: auto_reply_sent, threshold: 10m}"),
        ),
        (
            "job_started with threshold_by_kind only",
            slo_sli(
                "{source: event, event: job_started, threshold_by_kind: {publish: 2m, engagement_ingest: 5m}}",
            ),
        ),
        (
            "job_started with both thresholds",
            slo_sli(
                "{source: event, event: job_started, threshold: 10m, threshold_by_kind: {publish: 2m}}",
            ),
        ),
        (
            "threshold and an empty threshold_by_kind",
            slo_sli("{source: event, event: job_started, threshold: 2m, threshold_by_kind: {}}"),
        ),
        // Accepted, though only job_started reads threshold_by_kind (README, schema).
        (
            "post_verified with threshold_by_kind only",
            slo_sli("{source: event, event: post_verified, threshold_by_kind: {publish: 10m}}"),
        ),
        (
            "threshold on a non-latency SLI",
            slo_sli("{source: audit, threshold: 5m}"),
        ),
        ("empty filter", slo_sli("{source: audit, filter: {}}")),
        (
            "filter with every key",
            slo_sli(
                "{source: event, event: job_started, threshold: 2m, filter: {client_id: [acme], platform: [instagram, x], lane: [api, browser], action_type: [publish, dm, comment, like, other], kind: [publish], side_effects: false}}",
            ),
        ),
        (
            "empty filter lists",
            slo_sli(
                "{source: tool_calls, filter: {client_id: [], platform: [], lane: [], action_type: [], kind: []}}",
            ),
        ),
        // defaults
        ("empty defaults", slo_with("defaults: {}")),
        (
            "every default",
            slo_with(
                "defaults: {window: 30d, min_events: 1, budget_classes: [tool_failure], exclude_dependency_incidents: true, postmortem_budget_fraction: 1}",
            ),
        ),
        // alerts
        ("no alerts", slo_with("alerts: []")),
        (
            "the shipped page tier",
            slo_with(&format!("alerts: [{TIER}]")),
        ),
        (
            "tier with burn_rate",
            slo_with("alerts: [{severity: ticket, long: 3d, short: 6h, burn_rate: 0.5}]"),
        ),
        (
            "tier spending the whole budget",
            slo_tier("budget_fraction: 0.02", "budget_fraction: 1"),
        ),
        // bands
        ("bands", slo_with(BANDS)),
        (
            "bands at the extremes",
            slo_bands(
                "green_min_remaining: 0.5, yellow_min_remaining: 0.2",
                "green_min_remaining: 1, yellow_min_remaining: 0",
            ),
        ),
        (
            "equal bands",
            slo_bands(
                "green_min_remaining: 0.5, yellow_min_remaining: 0.2",
                "green_min_remaining: 0.3, yellow_min_remaining: 0.3",
            ),
        ),
        (
            "ticket_repeats 0",
            slo_bands("ticket_repeats: 3", "ticket_repeats: 0"),
        ),
        // hard_stops
        ("empty hard_stops", slo_with("hard_stops: {}")),
        (
            "hard stops off",
            slo_with("hard_stops: {wrong_account: false, spam_loop: false}"),
        ),
        (
            "audit_completeness",
            slo_with("hard_stops: {audit_completeness: {slo: SLO-01, below: 1}}"),
        ),
    ]
}

#[test]
fn schema_and_parser_agree_on_slo_definitions() {
    let v = validator(SLOS);
    for (what, text) in slo_rejected_by_both() {
        assert!(
            parse_slos(&text).is_err(),
            "the parser accepts {what}:\n{text}"
        );
        assert!(
            !v.is_valid(&yaml(&text)),
            "the schema accepts {what}, which the parser rejects:\n{text}"
        );
    }
    for (what, text) in slo_accepted_by_both() {
        if let Err(e) = parse_slos(&text) {
            panic!("the parser rejects {what}: {e}\n{text}");
        }
        assert_valid(&v, &yaml(&text), what);
    }
}

/// Cross-field rules proto/README.md lists as parser-only. If the schema starts catching one,
/// move it to `slo_rejected_by_both` and update the README.
#[test]
fn parser_only_slo_rules_are_the_documented_ones() {
    let v = validator(SLOS);
    let cases = [
        (
            "duplicate SLO id",
            format!(
                "{SLO_BASE}  - {{id: SLO-01, name: again, target: 0.9, sli: {{source: audit}}}}\n"
            ),
        ),
        (
            "short window as long as the long one",
            slo_tier("short: 5m", "short: 1h"),
        ),
        (
            "short window longer than the long one",
            slo_tier("short: 5m", "short: 2h"),
        ),
        (
            "yellow above green",
            slo_bands(
                "green_min_remaining: 0.5, yellow_min_remaining: 0.2",
                "green_min_remaining: 0.2, yellow_min_remaining: 0.5",
            ),
        ),
        (
            "audit_completeness naming an undefined SLO",
            slo_with("hard_stops: {audit_completeness: {slo: SLO-08, below: 0.999}}"),
        ),
    ];
    for (what, text) in cases {
        assert!(parse_slos(&text).is_err(), "the parser accepts {what}");
        assert!(
            v.is_valid(&yaml(&text)),
            "the schema now rejects {what}: move the case"
        );
    }
    let readme = read("proto/README.md");
    for phrase in [
        "SLO ids are unique",
        "`short` window is shorter than its `long`",
        "`yellow_min_remaining` ≤ `green_min_remaining`",
        "`hard_stops.audit_completeness.slo` names an SLO",
    ] {
        assert!(
            readme.contains(phrase),
            "proto/README.md no longer documents: {phrase}"
        );
    }
}

/// YAML leniencies of the SLO parser that the schema deliberately does not copy, and what the
/// JSON data model cannot say (README, "SLO definitions"). If the parser changes, drop the case
/// and the README note.
#[test]
fn slo_schema_and_parser_differ_only_where_documented() {
    let v = validator(SLOS);
    let stricter = [
        ("explicit null section", slo_with("alerts: null")),
        (
            "explicit null event",
            slo_sli("{source: audit, event: null}"),
        ),
        (
            "explicit null burn_rate",
            slo_tier(
                "budget_fraction: 0.02",
                "budget_fraction: 0.02, burn_rate: null",
            ),
        ),
        ("explicit null window", slo_vary("28d", "null")),
        (
            "a number where a string is expected",
            slo_vary("id: SLO-01", "id: 101"),
        ),
        ("a quoted number", slo_vary("0.995", "\"0.995\"")),
        ("a quoted version", slo_vary("version: 1", "version: \"1\"")),
        (
            "a quoted boolean",
            slo_vary(
                "    window: 28d\n",
                "    window: 28d\n    paging: \"true\"\n",
            ),
        ),
    ];
    for (what, text) in stricter {
        assert!(
            parse_slos(&text).is_ok(),
            "the parser now rejects {what}: drop the case"
        );
        assert!(!v.is_valid(&yaml(&text)), "the schema accepts {what}");
    }
    // JSON numbers do not keep `20.0` apart from `20`, as the parser's integers do; a pattern
    // cannot do the parser's duration arithmetic.
    let laxer = [
        ("version 1.0", slo_vary("version: 1", "version: 1.0")),
        ("min_events 20.0", slo_with("defaults: {min_events: 20.0}")),
        (
            "a duration beyond 2^64 s",
            slo_vary("28d", "10000000000000y"),
        ),
        ("a fraction of a second in hours", slo_vary("28d", "0.001h")),
        (
            "a fraction of a nanosecond in seconds",
            slo_vary("28d", "0.0000000001s"),
        ),
    ];
    for (what, text) in laxer {
        assert!(
            parse_slos(&text).is_err(),
            "the parser now accepts {what}: drop the case"
        );
        assert!(v.is_valid(&yaml(&text)), "the schema rejects {what}");
    }
    // JSON has no infinity.
    let inf = slo_tier("budget_fraction: 0.02", "burn_rate: .inf");
    assert!(parse_slos(&inf).is_ok(), "the parser now rejects .inf");
    assert!(serde_saphyr::from_str::<Value>(&inf).is_err());

    let readme = read("proto/README.md");
    for phrase in [
        "stricter than the parser",
        "`min_events: 20.0`",
        "2^64 seconds",
        "`0.001h`",
        "`.inf`",
    ] {
        assert!(
            readme.contains(phrase),
            "proto/README.md no longer says {phrase}"
        );
    }
}

/// The `default`s the schema documents are the parser's.
#[test]
fn slo_defaults_are_the_schema_defaults() {
    let s = schema::schema_json(SLOS);
    let dur = |v: &Value| {
        toolgate::config::parse_duration(v.as_str().expect("a duration")).expect("a valid one")
    };
    let minimal = slo_vary("    window: 28d\n", "");
    let set = parse_slos(&minimal).unwrap();
    let slo = &set.slos[0];
    let d = &s["$defs"]["defaults"]["properties"];
    assert_eq!(slo.window, dur(&d["window"]["default"]));
    assert_eq!(json!(slo.min_events), d["min_events"]["default"]);
    assert_eq!(wire(&slo.budget_classes), d["budget_classes"]["default"]);
    assert_eq!(
        json!(slo.exclude_dependency_incidents),
        d["exclude_dependency_incidents"]["default"]
    );
    assert_eq!(
        json!(set.postmortem_budget_fraction),
        d["postmortem_budget_fraction"]["default"]
    );
    assert_eq!(
        json!(slo.paging),
        s["$defs"]["slo"]["properties"]["paging"]["default"]
    );
    assert_eq!(
        json!(slo.sli.require_proof),
        s["$defs"]["sli"]["properties"]["require_proof"]["default"]
    );
    assert!(set.alerts.is_empty(), "no alerts section, no tiers");

    let b = &s["properties"]["bands"]["default"];
    assert_eq!(
        set.bands,
        toolgate::slo::Bands {
            green_min_remaining: b["green_min_remaining"].as_f64().unwrap(),
            yellow_min_remaining: b["yellow_min_remaining"].as_f64().unwrap(),
            page_sustained: dur(&b["page_sustained"]),
            ticket_repeats: b["ticket_repeats"].as_u64().unwrap() as u32,
            ticket_repeat_window: dur(&b["ticket_repeat_window"]),
        }
    );
    assert_valid(
        &def_validator(SLOS, "bands"),
        b,
        "the documented default bands",
    );

    let h = &s["$defs"]["hard_stops"]["properties"];
    for text in [minimal.clone(), format!("{minimal}hard_stops: {{}}\n")] {
        let stops = parse_slos(&text).unwrap().hard_stops;
        assert_eq!(json!(stops.wrong_account), h["wrong_account"]["default"]);
        assert_eq!(json!(stops.spam_loop), h["spam_loop"]["default"]);
        assert_eq!(stops.audit_completeness, None);
    }

    // SLOs take `defaults` unless they say otherwise.
    let text = "version: 1
defaults: {window: 7d, min_events: 5, budget_classes: [tool_failure], exclude_dependency_incidents: true}
slos:
  - {id: A, name: a, target: 0.9, sli: {source: audit}}
  - {id: B, name: b, target: 0.9, window: 1d, min_events: 2, budget_classes: [], exclude_dependency_incidents: false, sli: {source: audit}}
";
    let set = parse_slos(text).unwrap();
    let (a, b) = (&set.slos[0], &set.slos[1]);
    assert_eq!(
        (
            a.window,
            a.min_events,
            a.budget_classes.clone(),
            a.exclude_dependency_incidents
        ),
        (
            Duration::from_secs(7 * 86_400),
            5,
            vec![FailureClass::ToolFailure],
            true
        )
    );
    assert_eq!(
        (
            b.window,
            b.min_events,
            b.budget_classes.clone(),
            b.exclude_dependency_incidents
        ),
        (Duration::from_secs(86_400), 2, vec![], false)
    );

    // budget_fraction → burn rate as described: budget_fraction × defaults.window / long.
    let set = parse_slos(&format!(
        "{SLO_BASE}defaults: {{window: 30d}}\nalerts: [{{severity: page, long: 1h, short: 5m, budget_fraction: 0.02}}]\n"
    ))
    .unwrap();
    assert!((set.alerts[0].burn_rate - 0.02 * 30.0 * 24.0).abs() < 1e-9);
}

/// The wire name of each SLI source; the match makes a new source fail to compile here until
/// it is listed in `ALL_SOURCES` (and the schema).
fn source_name(s: Source) -> &'static str {
    match s {
        Source::ToolCalls => "tool_calls",
        Source::Audit => "audit",
        Source::Safety => "safety",
        Source::Event => "event",
    }
}

const ALL_SOURCES: [Source; 4] = [
    Source::ToolCalls,
    Source::Audit,
    Source::Safety,
    Source::Event,
];

/// Every runner event type; the match makes a new one fail to compile until it is listed.
const ALL_EVENT_KINDS: [EventKind; 7] = [
    EventKind::JobStarted,
    EventKind::EpisodeFinished,
    EventKind::PostVerified,
    EventKind::InboundVisible,
    EventKind::AutoReplySent,
    EventKind::WrongAccountDetected,
    EventKind::DependencyIncident,
];

#[test]
fn slo_schema_enums_are_the_parser_enums() {
    for k in ALL_EVENT_KINDS {
        match k {
            EventKind::JobStarted
            | EventKind::EpisodeFinished
            | EventKind::PostVerified
            | EventKind::InboundVisible
            | EventKind::AutoReplySent
            | EventKind::WrongAccountDetected
            | EventKind::DependencyIncident => {}
        }
    }
    let names = |it: Vec<Value>| -> BTreeSet<String> {
        it.into_iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let first = |text: &str| -> toolgate::slo::Slo {
        parse_slos(text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
            .slos
            .remove(0)
    };

    assert_eq!(
        schema_enum(SLOS, "/$defs/sli/properties/source"),
        ALL_SOURCES
            .iter()
            .map(|s| source_name(*s).to_string())
            .collect(),
        "sources"
    );
    for s in ALL_SOURCES {
        let event = if s == Source::Event {
            ", event: episode_finished"
        } else {
            ""
        };
        let slo = first(&slo_sli(&format!("{{source: {}{event}}}", source_name(s))));
        assert_eq!(slo.sli.source, s);
    }

    let latency: BTreeSet<String> = schema::schema_json(SLOS)
        .pointer("/$defs/sli/allOf/1/if/properties/event/enum")
        .and_then(Value::as_array)
        .expect("the latency events of the sli")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        schema_enum(SLOS, "/$defs/event_kind"),
        names(ALL_EVENT_KINDS.iter().map(wire).collect()),
        "event types"
    );
    for k in ALL_EVENT_KINDS {
        let name = wire(k).as_str().unwrap().to_string();
        let slo = first(&slo_sli(&format!(
            "{{source: event, event: {name}, threshold: 1m}}"
        )));
        assert_eq!(slo.sli.event, Some(k));
        // Latency events are the ones the parser demands a threshold for.
        let bare = parse_slos(&slo_sli(&format!("{{source: event, event: {name}}}")));
        assert_eq!(
            bare.is_err(),
            latency.contains(&name),
            "{name} needs a threshold"
        );
    }

    let severities = [Severity::Ticket, Severity::Page];
    assert_eq!(
        schema_enum(SLOS, "/$defs/alert_tier/properties/severity"),
        names(severities.iter().map(wire).collect()),
        "severities"
    );
    for sev in severities {
        let text = slo_tier(
            "severity: page",
            &format!("severity: {}", wire(sev).as_str().unwrap()),
        );
        assert_eq!(parse_slos(&text).unwrap().alerts[0].severity, sev);
    }

    let classes = [
        FailureClass::PolicyBlocked,
        FailureClass::PlatformRejected,
        FailureClass::ToolFailure,
        FailureClass::RunnerFailure,
        FailureClass::VerificationFailed,
    ];
    assert_eq!(
        schema_enum(SLOS, "/$defs/budget_classes/items"),
        names(classes.iter().map(wire).collect()),
        "failure classes"
    );
    for c in classes {
        let text = slo_with(&format!(
            "defaults: {{budget_classes: [{}]}}",
            wire(c).as_str().unwrap()
        ));
        assert_eq!(first(&text).budget_classes, [c]);
    }

    let lanes = [Lane::Api, Lane::Browser];
    assert_eq!(
        schema_enum(SLOS, "/$defs/filter/properties/lane/items"),
        names(lanes.iter().map(wire).collect()),
        "lanes"
    );
    let actions = [
        Action::Publish,
        Action::Dm,
        Action::Comment,
        Action::Like,
        Action::Other,
    ];
    assert_eq!(
        schema_enum(SLOS, "/$defs/filter/properties/action_type/items"),
        names(actions.iter().map(wire).collect()),
        "action types"
    );
    let filter = first(&slo_sli(&format!(
        "{{source: tool_calls, filter: {{lane: {}, action_type: {}}}}}",
        wire(lanes),
        wire(actions)
    )))
    .sli
    .filter;
    assert_eq!(
        (filter.lane, filter.action_type),
        (lanes.to_vec(), actions.to_vec())
    );
}

/// The SLO file's durations are the gateway config's.
#[test]
fn slo_durations_are_the_config_durations() {
    let slo = schema::schema_json(SLOS);
    let cfg = schema::schema_json("gateway-config.schema.json");
    for pointer in [
        "/$defs/duration/type",
        "/$defs/duration/pattern",
        "/$defs/duration/not/pattern",
    ] {
        assert_eq!(slo.pointer(pointer), cfg.pointer(pointer), "{pointer}");
    }
}

// ---- JSON-RPC error data ------------------------------------------------------------------

/// One of each variant, and each upstream fault; the match makes a new variant a compile error
/// here until it is covered.
fn every_gateway_error() -> Vec<GatewayError> {
    let faults = [
        UpstreamFault::NotConnected,
        UpstreamFault::ConnectionLost,
        UpstreamFault::Protocol,
        UpstreamFault::Timeout(Duration::from_secs(30)),
        UpstreamFault::Cancelled,
    ];
    for f in faults {
        match f {
            UpstreamFault::NotConnected
            | UpstreamFault::ConnectionLost
            | UpstreamFault::Protocol
            | UpstreamFault::Timeout(_)
            | UpstreamFault::Cancelled => {}
        }
    }
    let upstream_error = |data: Option<Value>| GatewayError::UpstreamError {
        upstream: "social".into(),
        error: ErrorData::new(ErrorCode::INVALID_PARAMS, "bad arguments", data),
    };
    let mut out = vec![
        GatewayError::UnknownTool("social__nope".into()),
        GatewayError::InvalidRequest("arguments must be an object".into()),
        GatewayError::Internal("journal unavailable".into()),
        upstream_error(None),
        upstream_error(Some(json!({"field": "text", "hint": "too long"}))),
        upstream_error(Some(json!(3))),
        upstream_error(Some(json!(["a", "b"]))),
        upstream_error(Some(json!("text"))),
        upstream_error(Some(json!(null))),
        // Members named like toolgate's are replaced.
        upstream_error(Some(json!({"upstream": 7, "audit_id": false}))),
        // A toolgate upstream of a toolgate: its data has toolgate's own shapes.
        upstream_error(Some(
            json!({"failure_class": "tool_failure", "retryable": true}),
        )),
        upstream_error(Some(json!({"reason": "wrong_account", "retryable": false}))),
    ];
    for reason in ALL_REASONS {
        out.push(GatewayError::Refused(Denial::new(reason, "because")));
    }
    for fault in faults {
        for retryable in [false, true] {
            out.push(GatewayError::Upstream {
                upstream: "social".into(),
                fault,
                retryable,
                detail: "no answer".into(),
            });
        }
    }
    for e in &out {
        match e {
            GatewayError::UnknownTool(_)
            | GatewayError::InvalidRequest(_)
            | GatewayError::Refused(_)
            | GatewayError::Upstream { .. }
            | GatewayError::UpstreamError { .. }
            | GatewayError::Internal(_) => {}
        }
    }
    out
}

/// Every refusal reason; the match makes a new reason fail to compile until it is listed.
const ALL_REASONS: [Reason; 14] = [
    Reason::MissingIdempotencyKey,
    Reason::InvalidMeta,
    Reason::UnknownAccount,
    Reason::WrongAccount,
    Reason::TenantMismatch,
    Reason::TenantQuarantined,
    Reason::SpamLoop,
    Reason::HardStop,
    Reason::Frozen,
    Reason::CanaryOnly,
    Reason::FlagDisabled,
    Reason::KeyConflict,
    Reason::InFlight,
    Reason::InDoubt,
];

#[test]
fn all_reasons_is_exhaustive() {
    for r in ALL_REASONS {
        match r {
            Reason::MissingIdempotencyKey
            | Reason::InvalidMeta
            | Reason::UnknownAccount
            | Reason::WrongAccount
            | Reason::TenantMismatch
            | Reason::TenantQuarantined
            | Reason::SpamLoop
            | Reason::HardStop
            | Reason::Frozen
            | Reason::CanaryOnly
            | Reason::FlagDisabled
            | Reason::KeyConflict
            | Reason::InFlight
            | Reason::InDoubt => {}
        }
    }
}

#[test]
fn every_error_data_matches_the_schema() {
    let any = validator("error-data.schema.json");
    let upstream_failure = def_validator("error-data.schema.json", "upstream_failure");
    let refusal = def_validator("error-data.schema.json", "refusal");
    let passthrough = def_validator("error-data.schema.json", "upstream_error");
    let audit_id = "0196f0c2-7a3e-7c1b-9d2e-5f4a3b2c1d0e";
    for e in every_gateway_error() {
        let err = e.to_error_data(audit_id);
        let data = err
            .data
            .clone()
            .unwrap_or_else(|| panic!("{e:?}: error without data"));
        let shown = format!("data of {e:?}");
        assert_valid(&any, &data, &shown);
        assert_eq!(data["audit_id"], audit_id, "{shown}");
        // The code decides the shape (README), so each code must produce its own shape.
        let (code, v, name) = match &e {
            GatewayError::Upstream { .. } => {
                (UPSTREAM_FAILURE, &upstream_failure, "upstream_failure")
            }
            GatewayError::UnknownTool(_) | GatewayError::InvalidRequest(_) => {
                (ErrorCode::INVALID_PARAMS.0, &refusal, "refusal")
            }
            GatewayError::Internal(_) => (ErrorCode::INTERNAL_ERROR.0, &refusal, "refusal"),
            GatewayError::Refused(d) => {
                let code = if d.reason.is_idempotency() {
                    -32091
                } else {
                    -32090
                };
                assert_eq!(data["reason"], d.reason.as_str(), "{shown}");
                (code, &refusal, "refusal")
            }
            GatewayError::UpstreamError { error, .. } => {
                assert_eq!(
                    (err.code, &err.message),
                    (error.code, &error.message),
                    "{shown}: passed through"
                );
                assert_eq!(data["upstream"], "social", "{shown}");
                // README: upstream data that has exactly the upstream_failure shape (a toolgate
                // behind toolgate) validates as that; the code tells the two apart.
                if upstream_failure.is_valid(&data) {
                    assert!(!passthrough.is_valid(&data), "{shown}: oneOf overlap");
                    continue;
                }
                (error.code.0, &passthrough, "upstream_error")
            }
        };
        assert_eq!(err.code.0, code, "{shown}: code");
        assert_valid(v, &data, &format!("{shown} as $defs/{name}"));
    }
}

#[test]
fn error_codes_and_reasons_are_documented() {
    let readme = read("proto/README.md");
    for code in [REFUSED_BY_POLICY, IDEMPOTENCY, UPSTREAM_FAILURE] {
        assert!(
            readme.contains(&code.to_string()),
            "proto/README.md lacks code {code}"
        );
    }
    assert_eq!(
        (REFUSED_BY_POLICY, IDEMPOTENCY, UPSTREAM_FAILURE),
        (-32090, -32091, -32092)
    );
    let v = validator("error-data.schema.json");
    assert!(!v.is_valid(&json!({"reason": "made_up", "retryable": false, "audit_id": "a"})));
    assert!(
        !v.is_valid(&json!({"failure_class": "tool_failure", "retryable": true, "audit_id": "a"}))
    );
    assert!(!v.is_valid(&json!({"retryable": true})));
    assert!(!v.is_valid(&json!("not an object")));
    // `retryable` follows from the reason.
    let refusal = def_validator("error-data.schema.json", "refusal");
    for (reason, retryable) in [
        ("in_doubt", true),
        ("in_flight", false),
        ("internal", false),
    ] {
        let data = json!({"reason": reason, "retryable": retryable, "audit_id": "a"});
        assert!(
            !refusal.is_valid(&data),
            "{reason} with retryable {retryable}"
        );
    }
}

/// A repeat of a key whose first call got an upstream JSON-RPC error gets that error again,
/// with `replayed: true` and the replay's own audit id (src/pipeline.rs, `replay`). The replay
/// needs live upstreams to run, so the data is built here the way the README describes it.
#[test]
fn replayed_upstream_error_data_matches_the_schema() {
    let passthrough = def_validator("error-data.schema.json", "upstream_error");
    for data in [None, Some(json!({"field": "text"})), Some(json!([1, 2]))] {
        let first = GatewayError::UpstreamError {
            upstream: "social".into(),
            error: ErrorData::new(ErrorCode::INVALID_PARAMS, "bad arguments", data),
        }
        .to_error_data("0196f0c2-7a3e-7c1b-9d2e-5f4a3b2c1d0e");
        let mut replayed = first.data.unwrap();
        replayed["audit_id"] = json!("0196f0c2-7a3e-7c1b-9d2e-5f4a3b2c1d0f");
        replayed["replayed"] = json!(true);
        assert_valid(
            &validator("error-data.schema.json"),
            &replayed,
            "replayed error data",
        );
        assert_valid(
            &passthrough,
            &replayed,
            "replayed error data as upstream_error",
        );
        replayed["replayed"] = json!(false);
        assert!(
            !passthrough.is_valid(&replayed),
            "replayed is only ever true"
        );
    }
}

// ---- _meta ---------------------------------------------------------------------------------

#[test]
fn result_meta_schema_names_the_keys_the_pipeline_stamps() {
    use toolgate::pipeline::{META_ATTEMPT, META_AUDIT_ID, META_REPLAYED, META_UPSTREAM};
    let v = validator("result-meta.schema.json");
    let stamped = json!({
        META_AUDIT_ID: "0196f0c2-7a3e-7c1b-9d2e-5f4a3b2c1d0e",
        META_UPSTREAM: "social",
        "demo/seen_meta": {"idempotency_key": "k1"},
    });
    assert_valid(&v, &stamped, "a stamped result _meta");
    for key in [META_AUDIT_ID, META_UPSTREAM] {
        let mut m = stamped.clone();
        m.as_object_mut().unwrap().remove(key);
        assert!(!v.is_valid(&m), "{key} must be required");
    }
    // Side-effect results carry both idempotency keys, always together.
    for replayed in [false, true] {
        let mut side_effect = stamped.clone();
        side_effect[META_REPLAYED] = json!(replayed);
        side_effect[META_ATTEMPT] = json!(2);
        assert_valid(&v, &side_effect, "a side-effect result _meta");
        side_effect[META_ATTEMPT] = json!(0);
        assert!(!v.is_valid(&side_effect), "attempt counts from 1");
        for key in [META_REPLAYED, META_ATTEMPT] {
            let mut m = side_effect.clone();
            m[META_ATTEMPT] = json!(1);
            m.as_object_mut().unwrap().remove(key);
            assert!(!v.is_valid(&m), "{key} alone");
        }
    }
}

#[test]
fn request_meta_schema() {
    let v = validator("request-meta.schema.json");
    let ok = [
        json!({}),
        json!({"idempotency_key": "k1", "tenant_id": "acme"}),
        json!({
            "idempotency_key": "job-42:publish:acme-ig ~!",
            "tenant_id": "acme", "account_id": "acme-ig", "job_id": "j1", "episode_id": "e1",
            "scheduled_at": "2026-05-01T09:30:00Z",
            "progressToken": 7, "vendor/trace": {"id": 1}
        }),
        json!({"idempotency_key": "k".repeat(255), "scheduled_at": "2026-05-01T09:30:00.5+02:00"}),
    ];
    for m in ok {
        assert_valid(&v, &m, "request _meta");
    }
    let bad = [
        json!({"idempotency_key": ""}),
        json!({"idempotency_key": "k".repeat(256)}),
        json!({"idempotency_key": "tab\there"}),
        json!({"idempotency_key": "caf\u{e9}"}),
        json!({"idempotency_key": 42}),
        json!({"tenant_id": 1}),
        json!({"job_id": ""}),
        json!({"account_id": "a".repeat(256)}),
        json!({"scheduled_at": "tomorrow"}),
        json!({"scheduled_at": "2026-05-01 09:30"}),
    ];
    for m in bad {
        assert!(!v.is_valid(&m), "accepted request _meta {m}");
    }
}

// ---- packaging -----------------------------------------------------------------------------

#[test]
fn dockerfile_and_compose_refer_to_real_things() {
    let dockerfile = read("Dockerfile");
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            assert!(root().join(src).exists(), "Dockerfile copies missing {src}");
        }
    }
    for needle in [
        "AS runtime",
        "AS runtime-docker",
        "cargo build --release --locked",
        "ENTRYPOINT [\"toolgate\"]",
        "CMD [\"serve\", \"--config\", \"/etc/toolgate/gateway.yml\"]",
    ] {
        assert!(dockerfile.contains(needle), "Dockerfile lacks {needle}");
    }
    // The image's config must be valid, and agree with the image's paths and ports.
    let cfg = Config::load(&root().join("examples/docker-gateway.yml")).unwrap();
    assert_eq!(cfg.data_dir, Path::new("/var/lib/toolgate"));
    assert_eq!(
        (cfg.listen_mcp.port(), cfg.listen_admin.port()),
        (8790, 8791)
    );
    assert!(cfg.listen_admin.ip().is_unspecified() && cfg.listen_mcp.ip().is_unspecified());
    assert!(dockerfile.contains("http://127.0.0.1:8791/healthz"));

    let compose = yaml(&read("examples/compose.yml"));
    let services = &compose["services"];
    for s in ["runner", "toolgate", "social-tools"] {
        assert!(services.get(s).is_some(), "compose.yml lacks service {s}");
    }
    assert_eq!(services["toolgate"]["build"]["target"], "runtime");
    assert_eq!(
        services["toolgate"]["ports"],
        json!(["127.0.0.1:8791:8791"])
    );
    assert_eq!(
        services["runner"]["environment"]["TOOLGATE_URL"],
        "http://toolgate:8790/mcp"
    );
    let social = match &cfg.upstreams[0].transport {
        toolgate::config::UpstreamTransport::Http { url, .. } => url.clone(),
        other => panic!("docker-gateway.yml: first upstream is not a url upstream: {other:?}"),
    };
    assert_eq!(social, "http://social-tools:8080/mcp");
}

// ---- spam-loop defaults -------------------------------------------------------------------

#[test]
fn spam_loop_defaults_are_the_schema_defaults() {
    let s = schema::schema_json("gateway-config.schema.json");
    let d = &s["properties"]["safety"]["properties"]["spam_loop"]["properties"];
    let on = parse_config(BASE)
        .unwrap()
        .safety
        .spam_loop
        .expect("on by default");
    assert_eq!(json!(on.actions), d["actions"]["default"]);
    assert_eq!(json!(on.max_repeats), d["max_repeats"]["default"]);
    assert_eq!(
        Some(on.within),
        d["within"]["default"]
            .as_str()
            .and_then(|t| toolgate::config::parse_duration(t).ok())
    );
    assert_eq!(d["enabled"]["default"], true);
    let empty = parse_config(&format!("{BASE}safety: {{spam_loop: {{}}}}\n")).unwrap();
    assert_eq!(empty.safety.spam_loop, Some(on));
    let off = parse_config(&format!(
        "{BASE}safety: {{spam_loop: {{enabled: false}}}}\n"
    ))
    .unwrap();
    assert_eq!(off.safety.spam_loop, None);
}

// ---- audit records and hard stops -----------------------------------------------------------

const AUDIT: &str = "audit-record.schema.json";
const HARD_STOP: &str = "hard-stop.schema.json";
const ADMIN: &str = "admin-api.schema.json";

/// 2026-04-24T03:06:40Z: the journal's clock in these tests.
const T0: i64 = 1_777_000_000_000;

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The wire name of a serde enum value.
fn wire<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap()
}

/// The values of the `enum` at `pointer` in proto/`file`, null left out.
fn schema_enum(file: &str, pointer: &str) -> BTreeSet<String> {
    let s = schema::schema_json(file);
    let e = s
        .pointer(pointer)
        .and_then(|n| n.get("enum"))
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("proto/{file} has no enum at {pointer}"));
    e.iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

/// A side-effect call record filled in as the pipeline fills it (CallCtx::record).
fn call_record(outcome: Outcome, at: i64) -> AuditRecord {
    let mut r = AuditRecord::new(
        new_id(),
        rfc3339(at),
        RecordKind::Call,
        "social__send_dm",
        outcome,
    );
    r.tenant = Some("acme".into());
    r.account = Some("acme-ig".into());
    r.platform = Some("instagram".into());
    r.lane = Some(Lane::Browser);
    r.action = Some(Action::Dm);
    r.target = Some("user-7".into());
    r.upstream = Some("social".into());
    r.capability = Some("dm_send".into());
    r.side_effect = true;
    r.latency_ms = 12.345;
    r.job_id = Some("job-1".into());
    r.episode_id = Some("episode-1".into());
    r
}

/// An operator record as src/admin/ops.rs writes it.
fn operator_record(action: &str, at: i64, by: &str, reason: &str) -> AuditRecord {
    let mut r = AuditRecord::new(
        new_id(),
        rfc3339(at),
        RecordKind::Operator,
        action,
        Outcome::Operator,
    );
    r.actor = Some(by.into());
    r.reason = Some(reason.into());
    r
}

fn keyed(mut r: AuditRecord, key: &str, attempt: u32) -> AuditRecord {
    r.idempotency_key = Some(key.into());
    r.fingerprint = Some(format!("{:064x}", key.len()));
    r.attempt = Some(attempt);
    r
}

fn intent(key: &str, at: i64) -> Intent {
    Intent {
        tenant: "acme".into(),
        key: key.into(),
        fingerprint: format!("{:064x}", key.len()),
        tool: "social__send_dm".into(),
        account: Some("acme-ig".into()),
        now_ms: at,
    }
}

async fn claim(j: &SqliteJournal, key: &str, at: i64) -> u32 {
    match j.claim(intent(key, at)).await.unwrap() {
        Claim::Claimed { attempt } => attempt,
        Claim::Taken(k) => panic!("key {key} is taken: {k:?}"),
    }
}

async fn settle(
    j: &SqliteJournal,
    key: &str,
    state: KeyState,
    result: Option<Value>,
    audit: AuditRecord,
) {
    let s = Settle {
        tenant: "acme".into(),
        key: key.into(),
        state,
        result,
        audit,
        now_ms: T0 + 1_000,
    };
    j.settle(s).await.unwrap();
}

fn hard_stop(kind: HardStopKind, audit: &AuditRecord, account: &str) -> HardStop {
    HardStop {
        id: new_id(),
        kind,
        tenant: audit.tenant.clone(),
        account: Some(account.into()),
        target: (kind == HardStopKind::SpamLoop)
            .then(|| audit.target.clone())
            .flatten(),
        reason: "tripped in a test".into(),
        audit_id: Some(audit.id.clone()),
        created_at: audit.time.clone(),
        created_ms: toolgate::clock::parse_rfc3339(&audit.time).unwrap(),
        cleared_at: None,
        cleared_by: None,
        clear_reason: None,
    }
}

/// The `POST .../resolve` answer as src/admin/ops.rs builds it.
fn resolve_response(k: &KeyRecord) -> Value {
    json!({"tenant": k.tenant, "key": k.key, "state": k.state, "attempt": k.attempt})
}

/// The stored audit records, straight from the database file, in chain order.
fn stored_records(db: &Path) -> Vec<Value> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut st = conn
        .prepare("SELECT record FROM audit ORDER BY seq")
        .unwrap();
    st.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|t| serde_json::from_str(&t.unwrap()).expect("a stored record is JSON"))
        .collect()
}

/// SHA-256 of the canonical JSON (keys sorted at every level, no whitespace) of `record`
/// without `hash`: the README's recipe, written independently of src/canonical.rs.
fn chain_hash(record: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    use sha2::Digest;
    let mut r = record.clone();
    r.as_object_mut().unwrap().remove("hash");
    let text = serde_json::to_string(&sorted(&r)).unwrap();
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// Writes every kind of record and hard stop through the `Store` trait, then validates what
/// the database file holds, and the admin answers built from it.
#[tokio::test]
async fn journal_records_and_hard_stops_match_their_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let (j, recovery) = SqliteJournal::open(dir.path(), T0).unwrap();
    assert_eq!(recovery.in_doubt, 0);

    // A read-only call and an unknown tool (appended, no key).
    let mut read = call_record(Outcome::Success, T0);
    (read.tool, read.action, read.lane) = (
        "social__list_posts".into(),
        Some(Action::Other),
        Some(Lane::Api),
    );
    (read.side_effect, read.account, read.platform, read.target) = (false, None, None, None);
    (read.capability, read.job_id, read.episode_id) = (None, None, None);
    j.append(read).await.unwrap();
    let mut unknown = AuditRecord::new(
        new_id(),
        rfc3339(T0),
        RecordKind::Call,
        "nope",
        Outcome::Refused,
    );
    unknown.tenant = Some("acme".into());
    unknown.failure_class = Some(FailureClass::PolicyBlocked);
    unknown.reason = Some("unknown tool \"nope\"".into());
    j.append(unknown).await.unwrap();

    // Claimed and settled side effects, one per key state a settle can write.
    assert_eq!(claim(&j, "k-ok", T0).await, 1);
    let mut ok = keyed(call_record(Outcome::Success, T0), "k-ok", 1);
    ok.proof = Proof {
        post_id: Some("p1".into()),
        url: Some("https://social.example/p1".into()),
        screenshot: None,
    };
    let stored = json!({"result": {"content": [], "structuredContent": {"id": "p1"}}});
    settle(&j, "k-ok", KeyState::Succeeded, Some(stored), ok.clone()).await;
    claim(&j, "k-final", T0).await;
    let mut rejected = keyed(call_record(Outcome::ErrorResult, T0), "k-final", 1);
    rejected.failure_class = Some(FailureClass::PlatformRejected);
    rejected.reason = Some("upstream error result: {\"error\":\"rejected\"}".into());
    let stored = json!({"result": {"content": [], "isError": true}});
    settle(&j, "k-final", KeyState::FailedFinal, Some(stored), rejected).await;
    claim(&j, "k-retry", T0).await;
    let mut failed = keyed(call_record(Outcome::Failed, T0), "k-retry", 1);
    failed.failure_class = Some(FailureClass::ToolFailure);
    failed.reason = Some("upstream \"social\" is not connected".into());
    settle(&j, "k-retry", KeyState::FailedRetryable, None, failed).await;
    assert_eq!(claim(&j, "k-retry", T0 + 2_000).await, 2);
    let mut second = keyed(call_record(Outcome::Success, T0 + 2_000), "k-retry", 2);
    second.proof_missing = true;
    settle(
        &j,
        "k-retry",
        KeyState::Succeeded,
        Some(json!({"result": {"content": []}})),
        second,
    )
    .await;
    claim(&j, "k-doubt", T0).await;
    let mut doubt = keyed(call_record(Outcome::InDoubt, T0), "k-doubt", 1);
    doubt.failure_class = Some(FailureClass::RunnerFailure);
    doubt.reason = Some("timed out after it was sent: no answer within 30s".into());
    settle(&j, "k-doubt", KeyState::InDoubt, None, doubt).await;

    // A replay of k-ok.
    let mut replay = keyed(call_record(Outcome::Success, T0 + 3_000), "k-ok", 1);
    (replay.replayed, replay.proof) = (true, ok.proof.clone());
    replay.reason = Some("replayed: key is succeeded".into());
    j.append(replay).await.unwrap();

    // Two hard stops, each with the refusal that tripped it; then an operator clears one.
    let mut wrong = call_record(Outcome::Refused, T0 + 4_000);
    (wrong.account, wrong.platform) = (Some("other-ig".into()), None);
    wrong.failure_class = Some(FailureClass::PolicyBlocked);
    wrong.reason = Some("wrong_account: account \"other-ig\" belongs to another tenant".into());
    let wrong_stop = hard_stop(HardStopKind::WrongAccount, &wrong, "other-ig");
    j.trip(wrong_stop.clone(), wrong).await.unwrap();
    let mut spam = call_record(Outcome::Refused, T0 + 5_000);
    spam.failure_class = Some(FailureClass::PolicyBlocked);
    spam.reason = Some("spam_loop: 3 identical side effects within 3600 s".into());
    let spam_stop = hard_stop(HardStopKind::SpamLoop, &spam, "acme-ig");
    j.trip(spam_stop.clone(), spam).await.unwrap();
    let mut clear = operator_record("hard_stop.clear", T0 + 6_000, "oncall@acme", "checked");
    (clear.target, clear.tenant) = (Some(wrong_stop.id.clone()), wrong_stop.tenant.clone());
    clear.account = wrong_stop.account.clone();
    let cleared = j
        .clear(&wrong_stop.id, "oncall@acme", "checked", clear)
        .await
        .unwrap()
        .expect("the stop was active");
    schema::assert_valid(
        &format!("{ADMIN}#/$defs/clear_response"),
        &json!({"cleared": cleared}),
    );

    // An operator resolves the in-doubt key as happened.
    let mut resolve = operator_record(
        "idempotency.resolve",
        T0 + 7_000,
        "oncall@acme",
        "happened: seen on the platform",
    );
    (resolve.tenant, resolve.idempotency_key) = (Some("acme".into()), Some("k-doubt".into()));
    resolve.proof.url = Some("https://social.example/p2".into());
    let resolved = j
        .resolve(Resolution {
            tenant: "acme".into(),
            key: "k-doubt".into(),
            happened: true,
            result: Some(json!({"result": {"content": [], "isError": false}})),
            audit: resolve,
            now_ms: T0 + 7_000,
        })
        .await
        .unwrap()
        .expect("the key was in doubt");
    schema::assert_valid(
        &format!("{ADMIN}#/$defs/resolve_response"),
        &resolve_response(&resolved),
    );

    // A call left in flight: the next start writes a recovery record and the key is in doubt.
    claim(&j, "k-flight", T0 + 8_000).await;
    drop(j);
    let (j, recovery) = SqliteJournal::open(dir.path(), T0 + 60_000).unwrap();
    assert_eq!(recovery.in_doubt, 1);
    let mut undo = operator_record(
        "idempotency.resolve",
        T0 + 61_000,
        "oncall@acme",
        "not_happened: nothing on the platform",
    );
    (undo.tenant, undo.idempotency_key) = (Some("acme".into()), Some("k-flight".into()));
    let undone = j
        .resolve(Resolution {
            tenant: "acme".into(),
            key: "k-flight".into(),
            happened: false,
            result: None,
            audit: undo,
            now_ms: T0 + 61_000,
        })
        .await
        .unwrap()
        .expect("the recovered key is in doubt");
    assert_eq!(undone.state, KeyState::FailedRetryable);
    schema::assert_valid(
        &format!("{ADMIN}#/$defs/resolve_response"),
        &resolve_response(&undone),
    );
    let report = j.verify().unwrap();
    assert_eq!(report.broken, None);

    // Every stored record matches the schema, and the chain is the README's recipe.
    let records = stored_records(j.path());
    assert_eq!(records.len() as u64, report.checked);
    let mut prev = GENESIS_HASH.to_string();
    for (i, r) in records.iter().enumerate() {
        schema::assert_valid(AUDIT, r);
        assert_eq!(r["seq"], i as u64 + 1, "seq is consecutive from 1");
        assert_eq!(r["prev_hash"], prev.as_str(), "seq {}: prev_hash", i + 1);
        assert_eq!(r["hash"], chain_hash(r).as_str(), "seq {}: hash", i + 1);
        let back: AuditRecord = serde_json::from_value(r.clone()).unwrap();
        assert_eq!(&wire(&back), r, "seq {}: the record round-trips", i + 1);
        prev = r["hash"].as_str().unwrap().to_string();
    }
    let seen = |field: &str| -> BTreeSet<String> {
        records
            .iter()
            .filter_map(|r| r[field].as_str().map(String::from))
            .collect()
    };
    assert_eq!(
        seen("kind"),
        schema_enum(AUDIT, "/properties/kind"),
        "every kind was written"
    );
    assert_eq!(
        seen("outcome"),
        schema_enum(AUDIT, "/properties/outcome"),
        "every outcome was written"
    );
    let recovered = records.iter().find(|r| r["kind"] == "recovery").unwrap();
    assert_eq!(
        (
            &recovered["idempotency_key"],
            &recovered["outcome"],
            &recovered["attempt"]
        ),
        (&json!("k-flight"), &json!("in_doubt"), &json!(1))
    );

    // Hard stops: one cleared, one active, as the admin API shows them.
    let all = j.hard_stops(true).unwrap();
    assert_eq!(all.len(), 2);
    for stop in &all {
        schema::assert_valid(HARD_STOP, &wire(stop));
    }
    let active = j.hard_stops(false).unwrap();
    assert_eq!(active, vec![spam_stop]);
    for stops in [&all, &active] {
        schema::assert_valid(
            &format!("{ADMIN}#/$defs/hard_stops_response"),
            &json!({"hard_stops": stops}),
        );
    }
    let mut still_active = json!({"cleared": active[0]});
    schema::assert_invalid(&format!("{ADMIN}#/$defs/clear_response"), &still_active);
    still_active["cleared"]["cleared_at"] = json!(rfc3339(T0));
    schema::assert_invalid(HARD_STOP, &still_active["cleared"]);
}

#[test]
fn audit_records_of_every_kind_and_outcome_match_the_schema() {
    // Kind and outcome pairs the code writes; the matches fail to compile on a new variant.
    let pairs = [
        (RecordKind::Call, Outcome::Success),
        (RecordKind::Call, Outcome::ErrorResult),
        (RecordKind::Call, Outcome::Failed),
        (RecordKind::Call, Outcome::InDoubt),
        (RecordKind::Call, Outcome::Refused),
        (RecordKind::Operator, Outcome::Operator),
        (RecordKind::Recovery, Outcome::InDoubt),
    ];
    for (kind, outcome) in pairs {
        match kind {
            RecordKind::Call | RecordKind::Operator | RecordKind::Recovery => {}
        }
        match outcome {
            Outcome::Success
            | Outcome::ErrorResult
            | Outcome::Failed
            | Outcome::InDoubt
            | Outcome::Refused
            | Outcome::Operator => {}
        }
    }
    let classes = [
        FailureClass::PolicyBlocked,
        FailureClass::PlatformRejected,
        FailureClass::ToolFailure,
        FailureClass::RunnerFailure,
        FailureClass::VerificationFailed,
    ];
    let lanes = [Lane::Api, Lane::Browser];
    let actions = [
        Action::Publish,
        Action::Dm,
        Action::Comment,
        Action::Like,
        Action::Other,
    ];
    for c in classes {
        match c {
            FailureClass::PolicyBlocked
            | FailureClass::PlatformRejected
            | FailureClass::ToolFailure
            | FailureClass::RunnerFailure
            | FailureClass::VerificationFailed => {}
        }
    }
    for l in lanes {
        match l {
            Lane::Api | Lane::Browser => {}
        }
    }
    for a in actions {
        match a {
            Action::Publish | Action::Dm | Action::Comment | Action::Like | Action::Other => {}
        }
    }
    // The schema's enums are exactly the serialized variants.
    let names = |vs: Vec<Value>| -> BTreeSet<String> {
        vs.into_iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let kinds = [RecordKind::Call, RecordKind::Operator, RecordKind::Recovery];
    for (pointer, values) in [
        ("/properties/kind", names(kinds.iter().map(wire).collect())),
        (
            "/properties/outcome",
            names(pairs.iter().map(|p| wire(p.1)).collect()),
        ),
        (
            "/properties/failure_class",
            names(classes.iter().map(wire).collect()),
        ),
        ("/properties/lane", names(lanes.iter().map(wire).collect())),
        (
            "/properties/action",
            names(actions.iter().map(wire).collect()),
        ),
    ] {
        assert_eq!(schema_enum(AUDIT, pointer), values, "{pointer}");
    }
    // The schema lists exactly the serialized members, all required.
    let sample = wire(AuditRecord::new(
        new_id(),
        rfc3339(T0),
        RecordKind::Call,
        "t",
        Outcome::Success,
    ));
    let members: BTreeSet<String> = sample.as_object().unwrap().keys().cloned().collect();
    let s = schema::schema_json(AUDIT);
    let props: BTreeSet<String> = s["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let required: BTreeSet<String> = s["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!((&props, &required), (&members, &members));

    // One sealed chain through every pair, failure class, lane and action.
    let mut prev = GENESIS_HASH.to_string();
    let mut chain = Vec::new();
    for (i, (kind, outcome)) in pairs.into_iter().enumerate() {
        let mut r = match kind {
            RecordKind::Call => call_record(outcome, T0),
            RecordKind::Operator => operator_record("hard_stop.clear", T0, "ops", "checked"),
            RecordKind::Recovery => {
                let mut r =
                    AuditRecord::new(new_id(), rfc3339(T0), kind, "social__send_dm", outcome);
                (r.tenant, r.side_effect) = (Some("acme".into()), true);
                r.reason =
                    Some("gateway_restart: the call was in flight when toolgate stopped".into());
                keyed(r, "k1", 3)
            }
        };
        if kind == RecordKind::Call {
            r.failure_class = (outcome != Outcome::Success).then_some(classes[i % classes.len()]);
            r.lane = Some(lanes[i % lanes.len()]);
            r.action = Some(actions[i % actions.len()]);
        }
        r.seal(i as u64 + 1, &prev);
        prev = r.hash.clone();
        schema::assert_valid(AUDIT, &wire(&r));
        chain.push(r);
    }
    for c in classes {
        let mut r = call_record(Outcome::Failed, T0);
        r.failure_class = Some(c);
        r.seal(1, GENESIS_HASH);
        schema::assert_valid(AUDIT, &wire(&r));
    }
    for a in actions {
        let mut r = call_record(Outcome::Success, T0);
        r.action = Some(a);
        r.seal(1, GENESIS_HASH);
        schema::assert_valid(AUDIT, &wire(&r));
    }

    // What the schema rejects.
    let good = wire(&chain[0]);
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        v
    };
    let cases: Vec<(&str, Value)> = vec![
        ("seq 0", broken(&|v| v["seq"] = json!(0))),
        (
            "upper-case hash",
            broken(&|v| v["hash"] = json!(v["hash"].as_str().unwrap().to_uppercase())),
        ),
        ("short prev_hash", broken(&|v| v["prev_hash"] = json!("00"))),
        ("id not a UUID", broken(&|v| v["id"] = json!("id1"))),
        (
            "time not RFC 3339",
            broken(&|v| v["time"] = json!("2026-04-24 03:06:40")),
        ),
        (
            "negative latency",
            broken(&|v| v["latency_ms"] = json!(-1.0)),
        ),
        ("attempt 0", broken(&|v| v["attempt"] = json!(0))),
        (
            "unknown outcome",
            broken(&|v| v["outcome"] = json!("partial")),
        ),
        ("unknown kind", broken(&|v| v["kind"] = json!("system"))),
        (
            "unknown failure class",
            broken(&|v| v["failure_class"] = json!("network")),
        ),
        (
            "null proof member",
            broken(&|v| v["proof"] = json!({"url": null})),
        ),
        (
            "unknown proof member",
            broken(&|v| v["proof"] = json!({"id": "p"})),
        ),
        (
            "missing member",
            broken(&|v| drop(v.as_object_mut().unwrap().remove("actor"))),
        ),
        ("extra member", broken(&|v| v["severity"] = json!("high"))),
        (
            "call with outcome operator",
            broken(&|v| v["outcome"] = json!("operator")),
        ),
        ("operator record with a call outcome", {
            let mut v = wire(&chain[5]);
            v["outcome"] = json!("success");
            v
        }),
        ("operator record without actor", {
            let mut v = wire(&chain[5]);
            v["actor"] = Value::Null;
            v
        }),
        ("recovery record that succeeded", {
            let mut v = wire(&chain[6]);
            v["outcome"] = json!("success");
            v
        }),
    ];
    for (what, v) in cases {
        assert!(!schema::is_valid(AUDIT, &v), "the schema accepts {what}");
    }
}

#[test]
fn hard_stops_of_every_kind_match_the_schema() {
    let kinds = [
        HardStopKind::WrongAccount,
        HardStopKind::SpamLoop,
        HardStopKind::AuditGap,
    ];
    for k in kinds {
        match k {
            HardStopKind::WrongAccount | HardStopKind::SpamLoop | HardStopKind::AuditGap => {}
        }
    }
    let names: BTreeSet<String> = kinds
        .iter()
        .map(|k| wire(k).as_str().unwrap().to_string())
        .collect();
    assert_eq!(schema_enum(HARD_STOP, "/properties/kind"), names);
    let s = schema::schema_json(HARD_STOP);
    let props: BTreeSet<&String> = s["properties"].as_object().unwrap().keys().collect();
    let audit = call_record(Outcome::Refused, T0);
    for kind in kinds {
        let mut stop = hard_stop(kind, &audit, "acme-ig");
        if kind == HardStopKind::AuditGap {
            (stop.tenant, stop.account, stop.audit_id) = (None, None, None);
        }
        let v = wire(&stop);
        assert_eq!(
            v.as_object().unwrap().keys().collect::<BTreeSet<_>>(),
            props
        );
        schema::assert_valid(HARD_STOP, &v);
        stop.cleared_at = Some(rfc3339(T0 + 1));
        stop.cleared_by = Some("ops".into());
        stop.clear_reason = Some("checked".into());
        schema::assert_valid(HARD_STOP, &wire(&stop));
        schema::assert_valid(
            &format!("{ADMIN}#/$defs/clear_response"),
            &json!({"cleared": stop}),
        );
    }
    let good = wire(hard_stop(HardStopKind::SpamLoop, &audit, "acme-ig"));
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        v
    };
    for (what, v) in [
        ("unknown kind", broken(&|v| v["kind"] = json!("rate_limit"))),
        (
            "spam loop without target",
            broken(&|v| v["target"] = Value::Null),
        ),
        ("half cleared", broken(&|v| v["cleared_by"] = json!("ops"))),
        (
            "created_ms as text",
            broken(&|v| v["created_ms"] = json!("1")),
        ),
        (
            "missing reason",
            broken(&|v| drop(v.as_object_mut().unwrap().remove("reason"))),
        ),
        ("extra member", broken(&|v| v["severity"] = json!(1))),
    ] {
        assert!(
            !schema::is_valid(HARD_STOP, &v),
            "the schema accepts {what}"
        );
    }
    let mut wrong = wire(hard_stop(HardStopKind::WrongAccount, &audit, "b-ig"));
    wrong["target"] = json!("user-7");
    schema::assert_invalid(HARD_STOP, &wrong);
}

/// The admin request bodies. Their parsers (src/admin/ops.rs) are private; these cases mirror
/// them and tests/safety.rs drives the real endpoints.
#[test]
fn admin_request_and_error_bodies_match_the_schema() {
    let clear = format!("{ADMIN}#/$defs/clear_request");
    let resolve = format!("{ADMIN}#/$defs/resolve_request");
    let error = format!("{ADMIN}#/$defs/error");
    schema::assert_valid(
        &clear,
        &json!({"by": "oncall@acme", "reason": "checked the account"}),
    );
    for bad in [
        json!({"by": "ops"}),
        json!({"by": " ", "reason": "x"}),
        json!({"by": "ops", "reason": ""}),
        json!({"by": "ops", "reason": "x", "force": true}),
        json!({"by": 7, "reason": "x"}),
    ] {
        schema::assert_invalid(&clear, &bad);
    }
    for good in [
        json!({"outcome": "happened", "by": "ops", "reason": "seen"}),
        json!({"outcome": "happened", "proof": {"post_id": "p1", "url": "https://x/p1", "screenshot": "s.png"}, "by": "ops", "reason": "seen"}),
        json!({"outcome": "not_happened", "proof": {}, "by": "ops", "reason": "not there"}),
    ] {
        schema::assert_valid(&resolve, &good);
    }
    for bad in [
        json!({"outcome": "maybe", "by": "ops", "reason": "x"}),
        json!({"by": "ops", "reason": "x"}),
        json!({"outcome": "happened", "proof": null, "by": "ops", "reason": "x"}),
        json!({"outcome": "happened", "proof": {"id": "p"}, "by": "ops", "reason": "x"}),
        json!({"outcome": "happened", "by": "ops", "reason": "x", "tenant": "acme"}),
    ] {
        schema::assert_invalid(&resolve, &bad);
    }
    for code in [
        "unauthorized",
        "forbidden",
        "not_found",
        "invalid_body",
        "not_in_doubt",
        "journal_error",
        "method_not_allowed",
    ] {
        schema::assert_valid(&error, &json!({"error": code, "message": "a sentence"}));
    }
    schema::assert_invalid(&error, &json!({"error": "not_found"}));
    // The state enum is the journal's.
    let states = [
        KeyState::Dispatching,
        KeyState::Succeeded,
        KeyState::FailedFinal,
        KeyState::FailedRetryable,
        KeyState::InDoubt,
    ];
    for s in states {
        match s {
            KeyState::Dispatching
            | KeyState::Succeeded
            | KeyState::FailedFinal
            | KeyState::FailedRetryable
            | KeyState::InDoubt => {}
        }
        assert_eq!(wire(s), s.as_str());
    }
    let names: BTreeSet<String> = states.iter().map(|s| s.as_str().to_string()).collect();
    assert_eq!(schema_enum(ADMIN, "/$defs/key_state"), names);
    // Every body validates against the top level too.
    schema::assert_valid(ADMIN, &json!({"by": "ops", "reason": "x"}));
    schema::assert_invalid(ADMIN, &json!({"hard_stops": [{}]}));
}

#[test]
fn safety_contract_is_documented() {
    let readme = read("proto/README.md");
    for phrase in [
        "wrong_account",
        "tenant_mismatch",
        "dispatching",
        "failed_retryable",
        "in_doubt",
        "GET /v1/hard-stops",
        "POST /v1/hard-stops/{id}/clear",
        "POST /v1/idempotency/{tenant}/{key}/resolve",
        "401",
        "403",
        "prev_hash",
        "spam_loop",
    ] {
        assert!(
            readme.contains(phrase),
            "proto/README.md does not document {phrase}"
        );
    }
}

// ---- runner events, the status document, flags --------------------------------------------

use toolgate::budget::events as runner_events;
use toolgate::budget::{Engine, Scope, status as budget_status};

const SLI_EVENT: &str = "sli-event.schema.json";
const STATUS: &str = "status.schema.json";

/// The clock of the budget tests: an hour after [`T0`].
const NOW: i64 = T0 + 3_600_000;

/// `NOW` shifted by `secs` seconds, as RFC 3339.
fn at(secs: i64) -> String {
    rfc3339(NOW + secs * 1000)
}

/// Events `events::parse` accepts, each with the caller's tenant (`None`: the admin token).
fn events_accepted() -> Vec<(&'static str, Option<&'static str>, Value)> {
    vec![
        (
            "job start with every tag",
            Some("acme"),
            json!({"id": "e1", "type": "job_started", "job_id": "j1", "kind": "publish",
                   "scheduled_at": at(-600), "started_at": at(-420),
                   "tags": {"client_id": "acme", "platform": "instagram", "lane": "api", "action_type": "publish"}}),
        ),
        (
            "job start as the pipeline derives it",
            Some("acme"),
            json!({"id": "job:j2", "type": "job_started", "job_id": "j2", "kind": "engagement_ingest",
                   "scheduled_at": at(-60), "started_at": rfc3339(NOW),
                   "tags": {"platform": "instagram", "lane": "browser", "action_type": "other"}}),
        ),
        (
            "job started before it was due, offset and fraction",
            Some("acme"),
            json!({"id": "e3", "type": "job_started", "job_id": "j3", "kind": "nightly",
                   "scheduled_at": "2026-04-24T05:00:00.5+02:00", "started_at": "2026-04-24T02:59:00Z"}),
        ),
        (
            "episode with a side-effect count, no finished_at",
            Some("acme"),
            json!({"id": "e4", "type": "episode_finished", "episode_id": "ep1", "outcome": "completed", "side_effects": 3}),
        ),
        (
            "episode without side effects, finished_at null, tags null",
            Some("acme"),
            json!({"id": "e5", "type": "episode_finished", "episode_id": "ep2", "outcome": "human_intervention",
                   "side_effects": false, "finished_at": null, "tags": null}),
        ),
        (
            "failed episode, zero side effects",
            Some("acme"),
            json!({"id": "e6", "type": "episode_finished", "episode_id": "ep3", "outcome": "failed",
                   "side_effects": 0, "finished_at": at(-5)}),
        ),
        (
            "post verified by key",
            Some("acme"),
            json!({"id": "e7", "type": "post_verified", "idempotency_key": "k1",
                   "published_at": at(-900), "visible_at": at(-840)}),
        ),
        (
            "post not found, by audit id",
            Some("acme"),
            json!({"id": "e8", "type": "post_verified", "audit_id": new_id(), "idempotency_key": null,
                   "published_at": at(-900), "visible_at": null}),
        ),
        (
            "inbound visible",
            Some("acme"),
            json!({"id": "e9", "type": "inbound_visible", "event_id": "m1", "created_at": at(-400), "visible_at": at(-100),
                   "tags": {"lane": null, "action_type": null, "client_id": null}}),
        ),
        (
            "auto reply",
            Some("acme"),
            json!({"id": "e10", "type": "auto_reply_sent", "event_id": "m1", "created_at": at(-400), "sent_at": at(-30)}),
        ),
        (
            "wrong account, own tenant named, unknown members ignored",
            Some("acme"),
            json!({"id": "e11", "type": "wrong_account_detected", "tenant": "acme", "account": "b-ig",
                   "detail": "liked from the wrong page", "at": at(-1), "severity": "high",
                   "tags": {"platform": "instagram", "campaign": "spring"}}),
        ),
        (
            "dependency incident by the admin token",
            None,
            json!({"id": "e12", "type": "dependency_incident", "tenant": "acme", "platform": "instagram",
                   "start": at(-3000), "end": at(-2000)}),
        ),
        (
            "tenant null with a tenant token, a zero-length incident",
            Some("acme"),
            json!({"id": "e13", "type": "dependency_incident", "tenant": null, "platform": "x",
                   "start": at(-10), "end": at(-10)}),
        ),
        (
            "a time up to 5 minutes ahead, 512-byte strings",
            Some("acme"),
            json!({"id": "i".repeat(512), "type": "inbound_visible", "event_id": "m".repeat(512),
                   "created_at": at(299), "visible_at": at(299)}),
        ),
    ]
}

/// Events both `events::parse` and the schema reject.
fn events_rejected_by_both() -> Vec<(&'static str, Value)> {
    let good = json!({"id": "x", "type": "post_verified", "audit_id": "a1", "published_at": at(-60), "visible_at": at(-30)});
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        v
    };
    let without = |k: &str| with(&|v| drop(v.as_object_mut().unwrap().remove(k)));
    vec![
        ("not an object", json!([good.clone()])),
        ("a string", json!("post_verified")),
        ("no id", without("id")),
        ("empty id", with(&|v| v["id"] = json!(""))),
        ("numeric id", with(&|v| v["id"] = json!(7))),
        (
            "id over 512 bytes",
            with(&|v| v["id"] = json!("x".repeat(513))),
        ),
        ("no type", without("type")),
        (
            "unknown type",
            with(&|v| v["type"] = json!("post_published")),
        ),
        ("type null", with(&|v| v["type"] = Value::Null)),
        ("empty tenant", with(&|v| v["tenant"] = json!(""))),
        ("numeric tenant", with(&|v| v["tenant"] = json!(1))),
        ("tags an array", with(&|v| v["tags"] = json!(["api"]))),
        ("tags a string", with(&|v| v["tags"] = json!("api"))),
        (
            "unknown lane",
            with(&|v| v["tags"] = json!({"lane": "API"})),
        ),
        (
            "unknown action",
            with(&|v| v["tags"] = json!({"action_type": "share"})),
        ),
        (
            "empty client id",
            with(&|v| v["tags"] = json!({"client_id": ""})),
        ),
        (
            "numeric platform",
            with(&|v| v["tags"] = json!({"platform": 3})),
        ),
        ("post without audit_id or key", without("audit_id")),
        (
            "post with both null",
            with(&|v| {
                v["audit_id"] = Value::Null;
                v["idempotency_key"] = Value::Null;
            }),
        ),
        (
            "post with an empty key only",
            with(&|v| {
                v.as_object_mut().unwrap().remove("audit_id");
                v["idempotency_key"] = json!("");
            }),
        ),
        ("post without visible_at", without("visible_at")),
        ("post without published_at", without("published_at")),
        (
            "visible_at not a time",
            with(&|v| v["visible_at"] = json!("soon")),
        ),
        (
            "published_at a date only",
            with(&|v| v["published_at"] = json!("2026-04-24")),
        ),
        (
            "published_at without offset",
            with(&|v| v["published_at"] = json!("2026-04-24T03:00:00")),
        ),
        (
            "published_at epoch millis",
            with(&|v| v["published_at"] = json!(NOW)),
        ),
        (
            "job start without started_at",
            json!({"id": "x", "type": "job_started", "job_id": "j", "kind": "publish", "scheduled_at": at(-60)}),
        ),
        (
            "job start without kind",
            json!({"id": "x", "type": "job_started", "job_id": "j", "scheduled_at": at(-60), "started_at": at(0)}),
        ),
        (
            "job start with an empty job id",
            json!({"id": "x", "type": "job_started", "job_id": "", "kind": "publish", "scheduled_at": at(-60), "started_at": at(0)}),
        ),
        (
            "episode outcome unknown",
            json!({"id": "x", "type": "episode_finished", "episode_id": "e", "outcome": "meh", "side_effects": 1}),
        ),
        (
            "episode without side_effects",
            json!({"id": "x", "type": "episode_finished", "episode_id": "e", "outcome": "completed"}),
        ),
        (
            "episode with negative side effects",
            json!({"id": "x", "type": "episode_finished", "episode_id": "e", "outcome": "completed", "side_effects": -1}),
        ),
        (
            "episode with side effects as text",
            json!({"id": "x", "type": "episode_finished", "episode_id": "e", "outcome": "completed", "side_effects": "yes"}),
        ),
        (
            "episode with a fractional count",
            json!({"id": "x", "type": "episode_finished", "episode_id": "e", "outcome": "completed", "side_effects": 1.5}),
        ),
        (
            "episode without episode_id",
            json!({"id": "x", "type": "episode_finished", "outcome": "completed", "side_effects": true}),
        ),
        (
            "episode finished_at not a time",
            json!({"id": "x", "type": "episode_finished", "episode_id": "e", "outcome": "completed", "side_effects": true, "finished_at": "today"}),
        ),
        (
            "inbound without visible_at",
            json!({"id": "x", "type": "inbound_visible", "event_id": "m", "created_at": at(-60)}),
        ),
        (
            "inbound with visible_at null",
            json!({"id": "x", "type": "inbound_visible", "event_id": "m", "created_at": at(-60), "visible_at": null}),
        ),
        (
            "inbound created_at not a time",
            json!({"id": "x", "type": "inbound_visible", "event_id": "m", "created_at": "yesterday", "visible_at": at(0)}),
        ),
        (
            "auto reply without sent_at",
            json!({"id": "x", "type": "auto_reply_sent", "event_id": "m", "created_at": at(-60)}),
        ),
        (
            "auto reply with visible_at instead of sent_at",
            json!({"id": "x", "type": "auto_reply_sent", "event_id": "m", "created_at": at(-60), "visible_at": at(0)}),
        ),
        (
            "wrong account without detail",
            json!({"id": "x", "type": "wrong_account_detected", "account": "a"}),
        ),
        (
            "wrong account with an empty account",
            json!({"id": "x", "type": "wrong_account_detected", "account": "", "detail": "d"}),
        ),
        (
            "wrong account with at not a time",
            json!({"id": "x", "type": "wrong_account_detected", "account": "a", "detail": "d", "at": 5}),
        ),
        (
            "incident without end",
            json!({"id": "x", "type": "dependency_incident", "platform": "instagram", "start": at(-60)}),
        ),
        (
            "incident without platform",
            json!({"id": "x", "type": "dependency_incident", "start": at(-60), "end": at(0)}),
        ),
    ]
}

/// Events the parser rejects and the schema cannot: each rule is in the schema's description
/// and proto/README.md ("Runner events"), named by the phrase given here.
fn events_rejected_by_the_parser_only()
-> Vec<(&'static str, Option<&'static str>, Value, &'static str)> {
    vec![
        (
            "the admin token without a tenant",
            None,
            json!({"id": "x", "type": "wrong_account_detected", "account": "a", "detail": "d"}),
            "admin token",
        ),
        (
            "another tenant named with a tenant token",
            Some("acme"),
            json!({"id": "x", "type": "wrong_account_detected", "tenant": "other", "account": "a", "detail": "d"}),
            "own tenant",
        ),
        (
            "more than 5 minutes ahead",
            Some("acme"),
            json!({"id": "x", "type": "auto_reply_sent", "event_id": "m", "created_at": at(301), "sent_at": at(400)}),
            "5 minutes",
        ),
        (
            "an incident ending before it starts",
            Some("acme"),
            json!({"id": "x", "type": "dependency_incident", "platform": "instagram", "start": at(-60), "end": at(-120)}),
            "before its `start`",
        ),
        (
            "a 300-character id of 600 bytes",
            Some("acme"),
            json!({"id": "é".repeat(300), "type": "wrong_account_detected", "account": "a", "detail": "d"}),
            "in bytes",
        ),
        (
            "a side-effect count written with a fraction",
            Some("acme"),
            json!({"id": "x", "type": "episode_finished", "episode_id": "e", "outcome": "completed", "side_effects": 2.0}),
            "without a fraction",
        ),
    ]
}

#[test]
fn sli_event_schema_and_parser_agree() {
    for (what, caller, v) in events_accepted() {
        if let Err(e) = runner_events::parse(&v, caller, NOW) {
            panic!("the parser rejects {what}: {e}\n{v:#}");
        }
        schema::assert_valid(SLI_EVENT, &v);
    }
    for (what, v) in events_rejected_by_both() {
        for caller in [Some("acme"), None] {
            let mut v = v.clone();
            if caller.is_none() && v.get("tenant").is_none() && v.is_object() {
                v["tenant"] = json!("acme");
            }
            assert!(
                runner_events::parse(&v, caller, NOW).is_err(),
                "the parser accepts {what}: {v:#}"
            );
        }
        assert!(
            !schema::is_valid(SLI_EVENT, &v),
            "the schema accepts {what}: {v:#}"
        );
    }
    let readme = read("proto/README.md");
    let description = schema::schema_json(SLI_EVENT)["description"]
        .as_str()
        .unwrap()
        .to_string();
    for (what, caller, v, phrase) in events_rejected_by_the_parser_only() {
        assert!(
            runner_events::parse(&v, caller, NOW).is_err(),
            "the parser accepts {what}"
        );
        schema::assert_valid(SLI_EVENT, &v);
        assert!(
            readme.contains(phrase) && description.contains(phrase),
            "{what}: proto/README.md and the schema's description must say {phrase:?}"
        );
    }
    // The request body: an array of events.
    let batch: Vec<Value> = events_accepted().into_iter().map(|(_, _, v)| v).collect();
    schema::assert_valid(&format!("{ADMIN}#/$defs/events_request"), &json!(batch));
    schema::assert_invalid(
        &format!("{ADMIN}#/$defs/events_request"),
        &json!({"events": batch}),
    );
}

/// The schema's enums are the parser's: event types, lanes and actions.
#[test]
fn sli_event_schema_enums_are_the_parser_enums() {
    let kinds = [
        EventKind::JobStarted,
        EventKind::EpisodeFinished,
        EventKind::PostVerified,
        EventKind::InboundVisible,
        EventKind::AutoReplySent,
        EventKind::WrongAccountDetected,
        EventKind::DependencyIncident,
    ];
    for k in kinds {
        match k {
            EventKind::JobStarted
            | EventKind::EpisodeFinished
            | EventKind::PostVerified
            | EventKind::InboundVisible
            | EventKind::AutoReplySent
            | EventKind::WrongAccountDetected
            | EventKind::DependencyIncident => {}
        }
    }
    let names: BTreeSet<String> = kinds
        .iter()
        .map(|k| wire(k).as_str().unwrap().to_string())
        .collect();
    assert_eq!(schema_enum(SLI_EVENT, "/properties/type"), names);
    let s = schema::schema_json(SLI_EVENT);
    for name in &names {
        assert!(
            s["$defs"].get(name.as_str()).is_some(),
            "proto/{SLI_EVENT} has no $defs/{name}"
        );
    }
    let lanes: BTreeSet<String> = [Lane::Api, Lane::Browser]
        .iter()
        .map(|l| wire(l).as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        schema_enum(SLI_EVENT, "/properties/tags/properties/lane"),
        lanes
    );
    let actions: BTreeSet<String> = [
        Action::Publish,
        Action::Dm,
        Action::Comment,
        Action::Like,
        Action::Other,
    ]
    .iter()
    .map(|a| wire(a).as_str().unwrap().to_string())
    .collect();
    assert_eq!(
        schema_enum(SLI_EVENT, "/properties/tags/properties/action_type"),
        actions
    );
}

/// A publish call record as the pipeline writes it for SLO-01/02.
fn publish_record(seq: u64, secs: i64, key: &str, lane: Lane, outcome: Outcome) -> AuditRecord {
    let mut r = AuditRecord::new(
        new_id(),
        at(secs),
        RecordKind::Call,
        "social__publish_post",
        outcome,
    );
    r.seq = seq;
    r.tenant = Some("acme".into());
    r.account = Some("acme-ig".into());
    r.platform = Some("instagram".into());
    r.lane = Some(lane);
    r.action = Some(Action::Publish);
    r.side_effect = true;
    r.idempotency_key = Some(key.into());
    r.attempt = Some(1);
    match outcome {
        Outcome::Success if lane == Lane::Api => {
            r.proof = Proof {
                post_id: Some(format!("post-{key}")),
                ..Default::default()
            }
        }
        Outcome::Success => {}
        Outcome::Refused => r.failure_class = Some(FailureClass::PolicyBlocked),
        _ => {
            r.failure_class = Some(FailureClass::ToolFailure);
            r.reason = Some("upstream closed the connection".into());
        }
    }
    r
}

/// An engine fed through the library as the gateway feeds it: audit records and runner events
/// of tenant acme (and one of tenant beta).
fn fed_engine() -> Engine {
    let mut e = Engine::new(toolgate::slo::embedded());
    let mut seq = 0;
    let mut next = || {
        seq += 1;
        seq
    };
    for i in 0..30 {
        let outcome = if i % 10 == 3 {
            Outcome::Failed
        } else {
            Outcome::Success
        };
        e.observe_record(&publish_record(
            next(),
            -3000 + i * 60,
            &format!("k{i}"),
            Lane::Api,
            outcome,
        ));
    }
    // A browser publish without proof (SLO-02 requires it), an in-doubt one and a refusal.
    e.observe_record(&publish_record(
        next(),
        -500,
        "b1",
        Lane::Browser,
        Outcome::Success,
    ));
    e.observe_record(&publish_record(
        next(),
        -400,
        "b2",
        Lane::Browser,
        Outcome::InDoubt,
    ));
    e.observe_record(&publish_record(
        next(),
        -300,
        "b3",
        Lane::Api,
        Outcome::Refused,
    ));
    let mut dm = call_record(Outcome::Success, NOW - 200_000);
    dm.seq = next();
    e.observe_record(&dm);
    let mut events: Vec<(Option<&str>, Value)> = events_accepted()
        .into_iter()
        .map(|(_, caller, v)| (caller, v))
        .collect();
    events.push((
        None,
        json!({"id": "b-job", "type": "job_started", "tenant": "beta", "job_id": "bj", "kind": "publish",
               "scheduled_at": at(-1200), "started_at": at(-1190), "tags": {"platform": "tiktok"}}),
    ));
    events.push((
        Some("acme"),
        json!({"id": "v-b2", "type": "post_verified", "idempotency_key": "b2", "published_at": at(-400), "visible_at": at(-100)}),
    ));
    for (n, (caller, v)) in events.into_iter().enumerate() {
        let ev = runner_events::parse(&v, caller, NOW)
            .unwrap_or_else(|err| panic!("event {n} rejected: {err}\n{v:#}"));
        e.observe_event(&ev, n as u64 + 1);
    }
    e.tick(NOW);
    e
}

#[test]
fn status_documents_match_the_schema() {
    let engine = fed_engine();
    let trip = call_record(Outcome::Refused, NOW - 60_000);
    let stop = hard_stop(HardStopKind::WrongAccount, &trip, "b-ig");
    let stops = [stop.clone()];
    let n_slos = engine.set().slos.len();

    // Scope all, with an active hard stop.
    let all = budget_status::document(&engine, &Scope::All, &stops, &stops, 2, NOW);
    schema::assert_valid(STATUS, &all);
    assert_eq!(all["band"], "RED", "{all:#}");
    assert_eq!(all["scope"], "all");
    assert_eq!(all["in_doubt"], 2);
    assert_eq!(all["hard_stops"].as_array().unwrap().len(), 1);
    let slos = all["slos"].as_array().unwrap();
    assert_eq!(slos.len(), n_slos);
    let slo = |id: &str| slos.iter().find(|s| s["id"] == id).unwrap();
    // The document is not trivial: the array members the schema describes are filled.
    let pub_api = slo("SLO-01");
    assert!(pub_api["valid"].as_u64().unwrap() >= 30, "{pub_api:#}");
    for key in [
        "alerts",
        "top_failure_reasons",
        "top_clients",
        "top_platforms",
    ] {
        assert!(
            !pub_api[key].as_array().unwrap().is_empty(),
            "SLO-01 {key} is empty: {pub_api:#}"
        );
    }
    assert!(pub_api["time_to_exhaustion"].is_number(), "{pub_api:#}");
    assert_eq!(
        slo("SLO-07")["band"],
        "RED",
        "the wrong-account event is bad"
    );
    assert!(slo("SLO-05A")["valid"].as_u64().unwrap() >= 1);
    assert!(slo("SLO-06B")["sli"].is_number());

    // A tenant: its own stop, its own client; in_doubt as GET /v1/status sends it (null) and
    // as document() builds it.
    let mut mine = budget_status::document(
        &engine,
        &Scope::Tenant("acme".into()),
        &stops,
        &stops,
        2,
        NOW,
    );
    schema::assert_valid(STATUS, &mine);
    mine["in_doubt"] = Value::Null;
    schema::assert_valid(STATUS, &mine);
    assert_eq!(mine["scope"], "tenant:acme");
    assert_eq!(mine["band"], "RED");
    assert_eq!(mine["hard_stops"].as_array().unwrap().len(), 1);
    // Another tenant sees neither acme's stop nor its clients.
    let beta = budget_status::document(
        &engine,
        &Scope::Tenant("beta".into()),
        &stops,
        &stops,
        2,
        NOW,
    );
    schema::assert_valid(STATUS, &beta);
    assert_eq!(beta["hard_stops"], json!([]));
    for s in beta["slos"].as_array().unwrap() {
        for c in s["top_clients"].as_array().unwrap() {
            assert_eq!(c["client_id"], "beta", "{beta:#}");
        }
    }

    // Without data and without stops: GREEN, no SLI.
    let empty = Engine::new(toolgate::slo::embedded());
    let quiet = budget_status::document(&empty, &Scope::All, &[], &[], 0, NOW);
    schema::assert_valid(STATUS, &quiet);
    assert_eq!(quiet["band"], "GREEN");
    assert!(quiet["slos"][0]["sli"].is_null());
    schema::assert_valid(
        STATUS,
        &budget_status::document(&empty, &Scope::Tenant("acme".into()), &[], &[], 0, NOW),
    );

    // What the schema refuses.
    let broken = |doc: &Value, f: &dyn Fn(&mut Value)| {
        let mut v = doc.clone();
        f(&mut v);
        v
    };
    for (what, v) in [
        (
            "GREEN with a hard stop",
            broken(&all, &|v| v["band"] = json!("GREEN")),
        ),
        (
            "GREEN with a RED SLO",
            broken(&all, &|v| {
                v["hard_stops"] = json!([]);
                v["band"] = json!("GREEN");
            }),
        ),
        (
            "an unknown band",
            broken(&all, &|v| v["band"] = json!("AMBER")),
        ),
        (
            "a missing burn window",
            broken(&all, &|v| {
                v["slos"][0]["burn_rates"]
                    .as_object_mut()
                    .unwrap()
                    .remove("3d");
            }),
        ),
        (
            "an extra SLO member",
            broken(&all, &|v| v["slos"][0]["owner"] = json!("sre")),
        ),
        (
            "in_doubt null for the admin",
            broken(&all, &|v| v["in_doubt"] = Value::Null),
        ),
        (
            "an SLI without events",
            broken(&quiet, &|v| v["slos"][0]["sli"] = json!(1.0)),
        ),
        (
            "a tenant with alerts",
            broken(&mine, &|v| {
                v["slos"][0]["alerts"] = all["slos"][0]["alerts"].clone()
            }),
        ),
        (
            "a tenant with a 5m burn rate",
            broken(&mine, &|v| v["slos"][0]["burn_rates"]["5m"] = json!(0.5)),
        ),
        (
            "a cleared hard stop",
            broken(&all, &|v| {
                v["hard_stops"][0]["cleared_at"] = json!(at(0));
                v["hard_stops"][0]["cleared_by"] = json!("ops");
                v["hard_stops"][0]["clear_reason"] = json!("checked");
            }),
        ),
    ] {
        assert!(!schema::is_valid(STATUS, &v), "the schema accepts {what}");
    }
}

/// The bodies of `POST /v1/events` and the flag endpoints. The handlers (src/admin/budget.rs)
/// are private; these mirror them, and tests/budget.rs drives the real endpoints.
#[test]
fn events_and_flag_bodies_match_the_schema() {
    let events = format!("{ADMIN}#/$defs/events_response");
    let results = json!([
        {"index": 0, "id": "e1", "status": "accepted"},
        {"index": 1, "id": "e1", "status": "duplicate"},
        {"index": 2, "id": null, "status": "rejected", "error": "id is required"},
        {"index": 3, "id": 7, "status": "rejected", "error": "id must be a non-empty string (≤ 512 bytes)"},
    ]);
    let good = json!({"accepted": 1, "duplicates": 1, "rejected": 2, "results": results});
    schema::assert_valid(&events, &good);
    schema::assert_valid(ADMIN, &good);
    for bad in [
        json!({"accepted": 0, "duplicates": 0, "rejected": 1,
               "results": [{"index": 0, "id": null, "status": "rejected"}]}),
        json!({"accepted": 1, "duplicates": 0, "rejected": 0,
               "results": [{"index": 0, "id": "e", "status": "accepted", "error": "x"}]}),
        json!({"accepted": 1, "duplicates": 0, "rejected": 0,
               "results": [{"index": 0, "id": "e", "status": "pending"}]}),
        json!({"accepted": 1, "duplicates": 0, "rejected": 0,
               "results": [{"index": 0, "id": null, "status": "accepted"}]}),
        json!({"accepted": 1, "duplicates": 0, "results": []}),
    ] {
        schema::assert_invalid(&events, &bad);
    }
    let flags = format!("{ADMIN}#/$defs/flags_response");
    schema::assert_valid(
        &flags,
        &json!({"flags": [{"capability": "dm_send", "enabled": false}]}),
    );
    schema::assert_invalid(&flags, &json!({"flags": [{"capability": "dm_send"}]}));
    let req = format!("{ADMIN}#/$defs/flag_request");
    for good in [
        json!({"enabled": true, "by": "ops", "reason": "canary passed"}),
        json!({"enabled": true, "by": "ops", "reason": "canary passed", "approved_by": "reliability owner"}),
        json!({"enabled": false, "by": "ops", "reason": "rollback", "approved_by": null}),
    ] {
        schema::assert_valid(&req, &good);
    }
    for bad in [
        json!({"enabled": "yes", "by": "ops", "reason": "x"}),
        json!({"enabled": true, "by": " ", "reason": "x"}),
        json!({"enabled": true, "reason": "x"}),
        json!({"enabled": true, "by": "ops", "reason": "x", "force": true}),
    ] {
        schema::assert_invalid(&req, &bad);
    }
    let resp = format!("{ADMIN}#/$defs/flag_response");
    for band in [
        toolgate::budget::Band::Green,
        toolgate::budget::Band::Yellow,
        toolgate::budget::Band::Red,
    ] {
        schema::assert_valid(
            &resp,
            &json!({"capability": "dm_send", "enabled": true, "band": band}),
        );
        assert_eq!(wire(band), band.as_str());
    }
    assert_eq!(
        schema_enum(STATUS, "/$defs/band"),
        schema_enum(ADMIN, "/$defs/flag_response/properties/band")
    );
    for code in ["approval_required", "no_flag"] {
        schema::assert_valid(
            &format!("{ADMIN}#/$defs/error"),
            &json!({"error": code, "message": "a sentence"}),
        );
    }
}

#[test]
fn budget_contract_is_documented() {
    let readme = read("proto/README.md");
    for phrase in [
        "sli-event.schema.json",
        "status.schema.json",
        "POST /v1/events",
        "GET /v1/status",
        "GET /v1/flags",
        "PUT /v1/flags/{capability}",
        "(tenant, id)",
        "job_id",
        "in-doubt",
        "wrong_account_detected",
        "approval_required",
    ] {
        assert!(
            readme.contains(phrase),
            "proto/README.md does not document {phrase}"
        );
    }
}
