//! The gateway config schema against the config parser, both ways.

mod cases;

use cases::{config_accepted_by_both, config_rejected_by_both};

use super::*;

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
            "two tenants with one token_sha256",
            vary(
                "upstreams:",
                &format!(
                    "  - id: one\n    token_sha256: {d}\n  - id: two\n    token_sha256: {d}\nupstreams:",
                    d = "a".repeat(64)
                ),
            ),
        ),
        (
            "a tools: key that no upstream's prefix fits",
            format!("{BASE}tools: {{socal__x: {{}}}}\n"),
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
    for phrase in [
        "unique",
        "exactly one tenant",
        "token_sha256",
        "upstream's prefix",
        "listen.mcp",
        "capabilities",
    ] {
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
