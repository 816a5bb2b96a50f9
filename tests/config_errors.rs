//! End-to-end tests of what `check` and `serve` refuse or warn about in a configuration: the
//! real binary, real config files, real environment variables.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::*;

/// Two tenants whose tokens come from the environment.
const TWO_ENV_TENANTS: &str = "version: 1
data_dir: {dir}/data
tenants:
  - id: acme
    token_env: TOK_ACME
  - id: globex
    token_env: TOK_GLOBEX
";

fn write(dir: &tempfile::TempDir, text: &str) -> String {
    let path = write_config(dir.path(), "gw.yml", text);
    path.to_str().unwrap().to_string()
}

fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_remove("TOK_ACME")
        .env_remove("TOK_GLOBEX");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn equal_env_tokens_are_refused_by_check_and_serve_without_showing_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, TWO_ENV_TENANTS);
    let same = [("TOK_ACME", "t0k-same"), ("TOK_GLOBEX", "t0k-same")];

    let out = run(&["check", "--config", &path], &same);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("{path}:6:")), "{err}");
    assert!(err.contains("tenants[1].token_env"), "{err}");
    assert!(
        err.contains("\"acme\"") && err.contains("\"globex\""),
        "{err}"
    );
    assert!(!err.contains("t0k-same"), "the token leaks: {err}");

    let out = run(
        &[
            "serve",
            "--config",
            &path,
            "--mcp-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
        ],
        &same,
    );
    assert_eq!(out.status.code(), Some(69), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("\"acme\"") && err.contains("\"globex\""),
        "{err}"
    );
    assert!(!err.contains("t0k-same"), "the token leaks: {err}");

    // Distinct values pass; one variable unset is only a warning for check.
    let ok = run(
        &["check", "--config", &path],
        &[("TOK_ACME", "x"), ("TOK_GLOBEX", "y")],
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
    let one = run(&["check", "--config", &path], &[("TOK_ACME", "x")]);
    assert!(one.status.success(), "{}", stderr(&one));
    assert!(
        stderr(&one).contains("TOK_GLOBEX is not set"),
        "{}",
        stderr(&one)
    );
}

#[test]
fn an_empty_token_variable_is_called_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, TWO_ENV_TENANTS);
    let envs = [("TOK_ACME", "x"), ("TOK_GLOBEX", "")];
    let out = run(
        &[
            "serve",
            "--config",
            &path,
            "--mcp-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
        ],
        &envs,
    );
    assert_eq!(out.status.code(), Some(69), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("TOK_GLOBEX is set but empty"),
        "{}",
        stderr(&out)
    );
    let out = run(&["check", "--config", &path], &envs);
    assert!(
        stderr(&out).contains("TOK_GLOBEX is set but empty"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_refuses_a_tools_key_no_upstream_fits_and_counts_embedded_slos() {
    let dir = tempfile::tempdir().unwrap();
    let good = format!(
        "{TWO_ENV_TENANTS}upstreams:\n  - name: demo\n    command: [a]\ntools:\n  demo__publish_post: {{}}\n"
    );
    let path = write(&dir, &good);
    let out = run(&["check", "--config", &path], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let embedded = toolgate::slo::embedded().slos.len();
    assert!(embedded > 0);
    assert!(
        said.contains(&format!("{embedded} SLOs (embedded defaults)")),
        "{said}"
    );

    let path = write(
        &dir,
        &good.replace("demo__publish_post", "dmeo__publish_post"),
    );
    let out = run(&["check", "--config", &path], &[]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{path}:12:")) && err.contains("tools.dmeo__publish_post"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_warns_about_entries_an_upstream_does_not_offer_and_a_missing_admin_token() {
    let cfg = config(
        &stdio_upstream("a", ""),
        "  a__publsh_post: {side_effect: true}\n  a__get_post: {side_effect: false}\n",
    )
    .replace("admin_token_env: TOK_ADMIN\n", "");
    let gw = Gateway::start(&cfg);
    gw.wait_ready().await;
    let warned = gw.proc.wait_for(
        "tools: entry matches none of the upstream's tools; it classifies nothing",
        Duration::from_secs(10),
    );
    assert_eq!(warned["tool"], "a__publsh_post", "{warned}");
    assert_eq!(warned["level"], "WARN");
    let log = gw.proc.log();
    assert_eq!(log.matches("it classifies nothing").count(), 1, "{log}");
    assert!(log.contains("admin-only endpoints"), "{log}");
    let (status, _) = gw
        .admin("GET", "/v1/hard-stops", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(status, 401, "no admin token is configured");
}
