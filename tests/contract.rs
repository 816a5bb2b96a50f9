//! The wire contract in `proto/` checked against what the Rust code really accepts and emits.
//!
//! Each schema is compiled as JSON Schema draft 2020-12, then held against the parser (configs
//! and SLO files both ways: what one accepts the other accepts, what one rejects the other
//! rejects) and against real outputs (error data, result `_meta`). A drift on either side fails
//! here. No network, no child processes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonschema::Validator;
use rmcp::model::{ErrorCode, ErrorData};
use serde_json::{Value, json};
use toolgate::call::{Denial, Reason};
use toolgate::config::{Config, EMBEDDED_DEFAULT, EMBEDDED_NAME};
use toolgate::error::{
    GatewayError, IDEMPOTENCY, REFUSED_BY_POLICY, UPSTREAM_FAILURE, UpstreamFault,
};

const SCHEMAS: [&str; 5] = [
    "gateway-config.schema.json",
    "slo-definitions.schema.json",
    "request-meta.schema.json",
    "result-meta.schema.json",
    "error-data.schema.json",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: impl AsRef<Path>) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn schema_json(name: &str) -> Value {
    serde_json::from_str(&read(Path::new("proto").join(name)))
        .unwrap_or_else(|e| panic!("proto/{name} is not JSON: {e}"))
}

fn compile(schema: &Value) -> Validator {
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|e| panic!("schema does not compile: {e}"))
}

fn validator(name: &str) -> Validator {
    compile(&schema_json(name))
}

/// The schema `name` with its top level narrowed to one of its `$defs`.
fn def_validator(name: &str, def: &str) -> Validator {
    let mut s = schema_json(name);
    let obj = s.as_object_mut().unwrap();
    assert!(
        obj["$defs"].get(def).is_some(),
        "proto/{name} has no $defs/{def}"
    );
    obj.remove("oneOf");
    obj.insert("$ref".into(), json!(format!("#/$defs/{def}")));
    compile(&s)
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
        let s = schema_json(name);
        assert_eq!(
            s["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "proto/{name}: $schema"
        );
        if let Err(e) = jsonschema::draft202012::meta::validate(&s) {
            panic!("proto/{name} is not a valid 2020-12 schema: {e}");
        }
        compile(&s);
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
                    // Members of branch-local `properties` (inside oneOf/not) only add a
                    // constraint to a property documented at the object's own level.
                    let local = at.contains("/oneOf/") || at.contains("/not");
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
    ]
}

fn config_accepted_by_both() -> Vec<(&'static str, String)> {
    let sha = "E2186DBDB1BB4193608605E84F33208765B5693B55EDD4F730A719A100EEEA6F";
    vec![
        ("only the version", "version: 1\n".to_string()),
        ("base", BASE.to_string()),
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
                "{BASE}safety: {{hard_stop_on_wrong_account: false, quarantine_tenant: false}}\n"
            ),
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

const SLO_BASE: &str = "version: 1
slos:
  - id: SLO-01
    name: Publish success
    target: 0.995
    window: 28d
    sli: {source: tool_calls, filter: {action_type: [publish]}}
";

#[test]
fn shipped_slo_definitions_parse_and_match_the_schema() {
    let text = read("slo_definitions.yml");
    let slos = toolgate::slo::parse(&text, "slo_definitions.yml").unwrap_or_else(|e| panic!("{e}"));
    assert!(!slos.is_empty());
    assert_valid(
        &validator("slo-definitions.schema.json"),
        &yaml(&text),
        "slo_definitions.yml",
    );
}

#[test]
fn schema_and_parser_agree_on_slo_definitions() {
    let v = validator("slo-definitions.schema.json");
    let rejected = [
        ("version 2", SLO_BASE.replace("version: 1", "version: 2")),
        ("no slos", "version: 1\nslos: []\n".to_string()),
        ("missing slos", "version: 1\n".to_string()),
        ("unknown key", format!("{SLO_BASE}    owner: sre\n")),
        ("unknown top-level key", format!("{SLO_BASE}owners: []\n")),
        ("target as a percentage", SLO_BASE.replace("0.995", "99.5")),
        ("target 0", SLO_BASE.replace("0.995", "0")),
        ("negative target", SLO_BASE.replace("0.995", "-0.5")),
        ("bad window", SLO_BASE.replace("28d", "a month")),
        ("zero window", SLO_BASE.replace("28d", "0d")),
        (
            "sli without source",
            SLO_BASE.replace("source: tool_calls, ", ""),
        ),
        ("empty id", SLO_BASE.replace("id: SLO-01", "id: \"\"")),
        (
            "missing name",
            SLO_BASE.replace("    name: Publish success\n", ""),
        ),
    ];
    for (what, text) in rejected {
        assert!(
            toolgate::slo::parse(&text, "s.yml").is_err(),
            "the parser accepts {what}"
        );
        assert!(
            !v.is_valid(&yaml(&text)),
            "the schema accepts {what}, which the parser rejects"
        );
    }
    let accepted = [
        ("base", SLO_BASE.to_string()),
        ("target 1", SLO_BASE.replace("0.995", "1.0")),
        ("integer target 1", SLO_BASE.replace("0.995", "1")),
        ("compound window", SLO_BASE.replace("28d", "1w 12h")),
        (
            "minimal sli",
            SLO_BASE.replace(
                "{source: tool_calls, filter: {action_type: [publish]}}",
                "{source: audit}",
            ),
        ),
    ];
    for (what, text) in accepted {
        if let Err(e) = toolgate::slo::parse(&text, "s.yml") {
            panic!("the parser rejects {what}: {e}");
        }
        assert_valid(&v, &yaml(&text), what);
    }
    // Parser-only (README): ids are unique.
    let dup = format!("{SLO_BASE}{}", SLO_BASE.split_once("slos:\n").unwrap().1);
    assert!(toolgate::slo::parse(&dup, "s.yml").is_err());
    assert!(v.is_valid(&yaml(&dup)));
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
}

// ---- _meta ---------------------------------------------------------------------------------

#[test]
fn result_meta_schema_names_the_keys_the_pipeline_stamps() {
    use toolgate::pipeline::{META_AUDIT_ID, META_UPSTREAM};
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
    let mut later = stamped.clone();
    later["toolgate/replayed"] = json!(true);
    later["toolgate/attempt"] = json!(2);
    assert_valid(&v, &later, "a replayed result _meta");
    later["toolgate/attempt"] = json!(0);
    assert!(!v.is_valid(&later), "attempt counts from 1");
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
