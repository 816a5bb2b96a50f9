use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "gw.yml", Path::new("/etc/toolgate"))
}

const MINIMAL: &str = "version: 1
tenants:
  - id: acme
    token_env: TOK_ACME
    accounts: [{id: acme-ig, platform: instagram}]
upstreams:
  - name: social
    command: [docker, run, -i, --rm, mcp/social]
";

#[test]
fn embedded_default_is_valid() {
    let c = Config::embedded_default();
    assert_eq!(c.tenants[0].id, "demo");
    assert_eq!(c.upstreams[0].prefix, "demo__");
    assert!(c.tools["demo__publish_post"].side_effect);
    assert!(!c.tools["demo__get_post"].side_effect);
    assert_eq!(c.listen_admin.port(), 8791);
}

#[test]
fn defaults_and_relative_paths() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.listen_mcp.to_string(), "127.0.0.1:8790");
    assert_eq!(c.data_dir, Path::new("/etc/toolgate/./toolgate-data"));
    assert_eq!(
        Config::embedded_default().data_dir,
        Path::new("./toolgate-data")
    );
    assert_eq!(c.upstreams[0].timeout, Duration::from_secs(30));
    assert!(c.upstreams[0].required);
    assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY);
    assert_eq!(c.tenants[0].token, TokenSource::Env("TOK_ACME".into()));
    assert!(c.safety.hard_stop_on_wrong_account && c.safety.quarantine_tenant);
}

#[test]
fn unknown_field_is_located() {
    let e = parse(&format!("{MINIMAL}    timeuot: 5s\n")).unwrap_err();
    assert_eq!(e.file, "gw.yml");
    assert_eq!(e.line, 9, "{e}");
    assert!(e.to_string().contains("timeuot"), "{e}");
}

#[test]
fn bad_duration_is_located() {
    let e = parse(&format!("{MINIMAL}    timeout: soon\n")).unwrap_err();
    assert_eq!((e.line, e.column > 0), (9, true), "{e}");
    assert!(e.message.contains("invalid duration"), "{e}");
}

#[test]
fn cross_field_errors_name_the_field_and_entry() {
    let e = parse(&format!(
        "{MINIMAL}  - name: social\n    url: http://x/mcp\n"
    ))
    .unwrap_err();
    assert_eq!(e.field, "upstreams[1].name");
    assert_eq!(e.line, 9);
    let e = parse(&MINIMAL.replace("token_env: TOK_ACME", "token_sha256: nothex")).unwrap_err();
    assert_eq!(e.field, "tenants[0].token_sha256");
    let e = parse(&MINIMAL.replace("    token_env: TOK_ACME\n", "")).unwrap_err();
    assert!(e.message.contains("plaintext"), "{e}");
    let e = parse(&MINIMAL.replace("name: social", "name: Social")).unwrap_err();
    assert_eq!(e.field, "upstreams[0].name");
}

#[test]
fn an_upstream_url_is_plain_http() {
    let with = |url: &str| parse(&format!("{MINIMAL}  - name: web\n    url: {url}\n"));
    assert!(with("http://127.0.0.1:9/mcp").is_ok());
    // Accepted by `check` before, then never connected at run time.
    let e = with("https://tools.example/mcp").unwrap_err();
    assert_eq!((e.field.as_str(), e.line), ("upstreams[1].url", 9), "{e}");
    assert!(
        e.message.contains("https upstreams are not supported"),
        "{e}"
    );
    let e = with("ftp://tools.example/mcp").unwrap_err();
    assert!(e.message.contains("must be an http:// URL"), "{e}");
}

#[test]
fn account_belongs_to_one_tenant() {
    let text = format!("{MINIMAL}tenants:\n");
    assert!(parse(&text).is_err(), "duplicate key");
    let text = MINIMAL.replace(
        "upstreams:",
        "  - id: other\n    token_env: T2\n    accounts: [{id: acme-ig}]\nupstreams:",
    );
    let e = parse(&text).unwrap_err();
    assert!(e.message.contains("already belongs"), "{e}");
}

#[test]
fn tool_policy_parsing() {
    let text = format!(
        "{MINIMAL}tools:\n  social__publish_post: {{action: publish, lane: browser, proof: {{url: /url}}}}\n  social__x: {{proof: {{url: url}}}}\n"
    );
    let e = parse(&text).unwrap_err();
    assert_eq!(e.field, "tools.social__x.proof.url");
    let text =
        format!("{MINIMAL}tools:\n  social__publish_post: {{action: publish, lane: browser}}\n");
    let c = parse(&text).unwrap();
    let p = &c.tools["social__publish_post"];
    assert!(p.side_effect, "an entry without side_effect fails closed");
    assert_eq!((p.action, p.lane), (Action::Publish, Lane::Browser));
    assert_eq!(p.account_arg, "account_id");
    let e = parse(&format!("{MINIMAL}tools:\n  t: {{action: shout}}\n")).unwrap_err();
    assert_eq!(e.line, 10, "{e}");
}

#[test]
fn prefix_and_http_upstream() {
    let text = format!(
        "{MINIMAL}  - name: web\n    url: http://127.0.0.1:9/mcp\n    prefix: \"\"\n    timeout: 500ms\n    required: false\n"
    );
    let c = parse(&text).unwrap();
    let u = &c.upstreams[1];
    assert_eq!(u.prefix, "");
    assert_eq!(u.timeout, Duration::from_millis(500));
    assert!(!u.required);
    assert!(matches!(
        u.transport,
        UpstreamTransport::Http {
            max_concurrent_requests: 64,
            ..
        }
    ));
}

#[test]
fn durations() {
    assert_eq!(
        parse_duration("28d").unwrap(),
        Duration::from_secs(28 * 86400)
    );
    assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
    assert!(parse_duration("0s").is_err());
    assert!(parse_duration("fast").is_err());
}

#[test]
fn retention_is_at_least_the_longest_slo_window() {
    let day = |d: u64| Duration::from_secs(d * 86_400);
    // Default 90 days; raised (not refused) when an SLO window is longer.
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.audit_retention("SLO-01", day(28)).unwrap(), day(90));
    assert_eq!(c.audit_retention("SLO-X", day(120)).unwrap(), day(120));
    // Written: kept as written when long enough, refused (with its location) when not.
    let c = parse(&format!("{MINIMAL}retention: 30d\n")).unwrap();
    assert_eq!(c.audit_retention("SLO-01", day(28)).unwrap(), day(30));
    let c = parse(&format!("{MINIMAL}retention: 7d\n")).unwrap();
    let e = c.audit_retention("SLO-01", day(28)).unwrap_err();
    assert_eq!((e.line, e.field.as_str()), (9, "retention"));
    assert!(e.message.contains("SLO-01: 28d"), "{}", e.message);
    assert!(e.to_string().starts_with("gw.yml:9:"), "{e}");
    // Never below 28 days, even with shorter SLO windows.
    let e = c.audit_retention("SLO-Y", day(7)).unwrap_err();
    assert!(e.message.contains("at least 28d"), "{}", e.message);
    let e = parse(&format!("{MINIMAL}retention: forever\n")).unwrap_err();
    assert_eq!((e.line, e.field.as_str()), (9, "retention"));
}

#[test]
fn a_tools_key_must_fit_an_upstream() {
    let e = parse(&format!(
        "{MINIMAL}tools:\n  socal__publish_post: {{action: publish}}\n"
    ))
    .unwrap_err();
    assert_eq!(
        (e.field.as_str(), e.line),
        ("tools.socal__publish_post", 10),
        "{e}"
    );
    assert!(e.message.contains("\"social__\" (social)"), "{e}");
    // The bare prefix leaves no tool name.
    assert!(parse(&format!("{MINIMAL}tools:\n  social__: {{}}\n")).is_err());
    let c = parse(&format!("{MINIMAL}tools:\n  social__publish_post: {{}}\n")).unwrap();
    assert_eq!(c.upstreams[0].classified, ["publish_post"]);
    // An upstream without a prefix can expose any name; with a prefixed one beside it, an
    // entry belongs to the longest prefix it fits.
    let text = format!(
        "{MINIMAL}  - name: plain\n    url: http://h/mcp\n    prefix: \"\"\ntools:\n  anything: {{}}\n  social__x: {{}}\n"
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.upstreams[0].classified, ["x"]);
    assert_eq!(c.upstreams[1].classified, ["anything"]);
}

#[test]
fn two_tenants_cannot_share_a_token_sha256() {
    let digest = "a".repeat(64);
    let text = format!(
        "version: 1\ntenants:\n  - id: one\n    token_sha256: {digest}\n  - id: two\n    token_sha256: {digest}\n"
    );
    let e = parse(&text).unwrap_err();
    assert_eq!(
        (e.field.as_str(), e.line),
        ("tenants[1].token_sha256", 5),
        "{e}"
    );
    assert!(e.message.contains("\"one\""), "{e}");
    assert!(!e.to_string().contains(&digest), "{e}");
}

#[test]
fn yaml_type_errors_read_plainly() {
    let cases = [
        (
            MINIMAL.replace(
                "accounts: [{id: acme-ig, platform: instagram}]",
                "accounts: acme-acct",
            ),
            (5, "expected a list here"),
        ),
        (
            MINIMAL.replace("version: 1", "version: \"one\""),
            (1, "expected a whole number"),
        ),
        (
            format!("{MINIMAL}tools:\n  social__x: {{side_effect: maybe}}\n"),
            (10, "expected true or false"),
        ),
        (
            format!("{MINIMAL}    timeout: 5s\n    timeout: 6s\n"),
            (10, "duplicate mapping key `timeout`"),
        ),
    ];
    for (text, (line, want)) in cases {
        let e = parse(&text).unwrap_err();
        assert_eq!(e.line, line, "{e}");
        assert!(e.message.contains(want), "{e}");
        assert!(!e.message.contains("DuplicateKeyPolicy"), "{e}");
    }
}
