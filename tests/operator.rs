//! End-to-end tests of what an operator sees when something is off: a wrong method on an
//! admin path, `toolgate status` without or with a wrong token or a URL without a scheme, a
//! bad TOOLGATE_WORKER_THREADS, a data dir that is a file. The real binary, real HTTP on
//! 127.0.0.1.

mod common;

use common::*;
use serde_json::Value;

/// Every admin endpoint with the one method it takes (src/admin/mod.rs, `allowed_method`).
const ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/metrics"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/v1/status"),
    ("GET", "/v1/audit/export"),
    ("GET", "/v1/incidents"),
    ("GET", "/v1/incidents/hs-x/bundle"),
    ("POST", "/v1/events"),
    ("GET", "/v1/flags"),
    ("PUT", "/v1/flags/feed_publish"),
    ("GET", "/v1/hard-stops"),
    ("POST", "/v1/hard-stops/hs-x/clear"),
    ("POST", "/v1/idempotency/a/k/resolve"),
];

fn gateway() -> Gateway {
    Gateway::start(&config(&stdio_upstream("a", ""), ""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_method_on_any_admin_path_is_a_405_naming_the_right_one() {
    let gw = gateway();
    let http = reqwest::Client::new();
    for &(allowed, path) in ENDPOINTS {
        let url = format!("{}{path}", gw.admin);
        // The right method reaches the endpoint (without a token: 200 or 401, never 404/405).
        let r = http
            .request(allowed.parse().unwrap(), &url)
            .send()
            .await
            .unwrap();
        assert!(
            ![404, 405].contains(&r.status().as_u16()),
            "{allowed} {path}: {}",
            r.status()
        );
        for wrong in ["GET", "POST", "PUT", "DELETE"]
            .into_iter()
            .filter(|m| *m != allowed)
        {
            let r = http
                .request(wrong.parse().unwrap(), &url)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 405, "{wrong} {path}");
            assert_eq!(r.headers()["allow"], allowed, "{wrong} {path}");
            let body: Value = r.json().await.unwrap();
            schema::assert_valid("admin-api.schema.json#/$defs/error", &body);
            assert_eq!(body["error"], "method_not_allowed", "{wrong} {path}");
            assert!(
                body["message"].as_str().unwrap().contains(allowed),
                "{body}"
            );
        }
    }
    // A path no endpoint has stays a 404, whatever the method.
    for m in ["GET", "POST"] {
        let (status, body) = gw.admin(m, "/v1/hard-stops/x/y", None, None).await;
        assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_cli_says_which_token_variable_is_missing_or_refused_and_takes_host_port() {
    let gw = gateway();
    let bare = gw.admin.strip_prefix("http://").unwrap().to_string();

    // The server's own 401s tell a missing token from a wrong one.
    let (status, none) = gw.admin("GET", "/v1/status", None, None).await;
    let (_, wrong) = gw.admin("GET", "/v1/status", Some("nope"), None).await;
    assert_eq!(status, 401);
    assert!(
        none["message"]
            .as_str()
            .unwrap()
            .starts_with("no bearer token was sent")
    );
    assert!(
        wrong["message"]
            .as_str()
            .unwrap()
            .starts_with("the bearer token was not accepted"),
        "{wrong}"
    );

    let (code, out) = run_to_end(&["status", "--url", &bare], &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("no token was sent because TOOLGATE_ADMIN_TOKEN is not set"),
        "{out}"
    );
    let (code, out) = run_to_end(&["status", "--url", &bare], &[("TOOLGATE_ADMIN_TOKEN", "")]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("TOOLGATE_ADMIN_TOKEN is set but empty"),
        "{out}"
    );
    let (code, out) = run_to_end(
        &["status", "--url", &bare],
        &[("TOOLGATE_ADMIN_TOKEN", "not-a-token")],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("the token in TOOLGATE_ADMIN_TOKEN was refused")
            && out.contains("not accepted"),
        "{out}"
    );
    assert!(!out.contains("not-a-token"), "the token leaks: {out}");

    // A bare HOST:PORT is http://HOST:PORT; --token-env names another variable.
    let (code, out) = run_to_end(
        &["status", "--url", &bare, "--token-env", "TOK_ADMIN"],
        &[("TOK_ADMIN", ADMIN_TOKEN)],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("toolgate status: "), "{out}");
    let (code, out) = run_to_end(&["status", "--url", "https://127.0.0.1:1"], &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("invalid --url") && out.contains("plain http://"),
        "{out}"
    );
}

#[test]
fn a_bad_worker_thread_count_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "gw.yml", &config(&stdio_upstream("a", ""), ""));
    let args = [
        "serve",
        "--config",
        cfg.to_str().unwrap(),
        "--mcp-addr",
        "127.0.0.1:0",
        "--admin-addr",
        "127.0.0.1:0",
    ];
    for bad in ["abc", "0", "-2", "100000"] {
        let (code, err) = run_to_end(&args, &[("TOOLGATE_WORKER_THREADS", bad)]);
        assert_eq!(code, Some(64), "{bad}: {err}");
        assert!(
            err.contains(&format!("TOOLGATE_WORKER_THREADS={bad:?}"))
                && err.contains("whole number from 1 to 1024"),
            "{bad}: {err}"
        );
    }
    assert!(
        !dir.path().join("data").exists(),
        "refused before touching the data dir"
    );
}

#[test]
fn a_data_dir_that_is_a_file_is_not_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data");
    std::fs::write(&file, "not a dir").unwrap();
    let cfg = write_config(dir.path(), "gw.yml", &config(&stdio_upstream("a", ""), ""));
    let (code, err) = run_to_end(
        &[
            "serve",
            "--config",
            cfg.to_str().unwrap(),
            "--mcp-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert_eq!(code, Some(69), "{err}");
    let want = format!("data dir {} is not a directory", file.display());
    assert!(err.contains(&want), "{err}");
    assert!(!err.contains("File exists"), "{err}");
}
