//! Gateway configs that the schema and the parser must both reject, or both accept.

use super::*;

pub(super) fn config_rejected_by_both() -> Vec<(&'static str, String)> {
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
        (
            "an https upstream (the upstream client speaks plain http)",
            vary(
                "command: [docker, run, -i, --rm, mcp/social]",
                "url: https://tools.example/mcp",
            ),
        ),
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

pub(super) fn config_accepted_by_both() -> Vec<(&'static str, String)> {
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
                "url: http://tools.example/mcp\n    env: {}\n    token_env: T\n    max_concurrent_requests: 0\n    required: false\n    prefix: \"\"",
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
