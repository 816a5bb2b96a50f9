//! `toolgate status`: fetches `/v1/status` from the admin listener and prints it as a table.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

/// Arguments of `toolgate status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Base URL of the admin listener (a bare HOST:PORT means http://HOST:PORT).
    #[arg(long, default_value = "http://127.0.0.1:8791")]
    pub url: String,
    /// Environment variable holding the bearer token (admin or tenant); sent when it is set.
    #[arg(long, default_value = "TOOLGATE_ADMIN_TOKEN")]
    pub token_env: String,
    /// Print the raw JSON document instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Why the status document could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("invalid --url {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("cannot reach {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("{url} answered HTTP {status}:\n{body}")]
    Http {
        url: String,
        status: u16,
        body: String,
    },
    /// A 401, with what the token variable held: the server's answer alone cannot say that
    /// the variable was never set.
    #[error("{url} answered HTTP 401: {hint}\n{body}")]
    Unauthorized {
        url: String,
        hint: String,
        body: String,
    },
    #[error("{url} did not answer a JSON document: {reason}")]
    Decode { url: String, reason: String },
}

/// Fetches the status document, with the bearer token from `--token-env` when it is set.
pub async fn fetch(args: &StatusArgs) -> Result<Value, StatusError> {
    let raw = std::env::var_os(&args.token_env);
    let token = raw
        .as_deref()
        .and_then(|v| v.to_str())
        .filter(|t| !t.is_empty());
    match get(&args.url, token).await {
        Err(StatusError::Http {
            url,
            status: 401,
            body,
        }) => Err(StatusError::Unauthorized {
            url,
            hint: token_hint(&args.token_env, raw.as_deref()),
            body,
        }),
        other => other,
    }
}

/// Why a 401 happened, from what the token variable (`var`) held.
fn token_hint(var: &str, value: Option<&std::ffi::OsStr>) -> String {
    let unsent = |why: &str| {
        format!(
            "no token was sent because {var} {why}; set it to the admin token (or a tenant's \
             token), or name another variable with --token-env"
        )
    };
    match value.map(|v| v.to_str()) {
        None => unsent("is not set"),
        Some(Some("")) => unsent("is set but empty"),
        Some(None) => unsent("is not valid UTF-8"),
        Some(Some(_)) => format!(
            "the token in {var} was refused: it is neither this gateway's admin token nor a \
             tenant's token"
        ),
    }
}

/// The admin listener's base URL from `--url`: `http://` is assumed for a bare HOST:PORT;
/// only plain HTTP is spoken (the admin listener has no TLS, and this client none either).
pub fn base_url(raw: &str) -> Result<String, StatusError> {
    let bad = |reason: String| StatusError::Url {
        url: raw.to_string(),
        reason,
    };
    let trimmed = raw.trim().trim_end_matches('/');
    let full = if trimmed.contains("://") {
        trimmed.to_string()
    } else {
        format!("http://{trimmed}")
    };
    let parsed = reqwest::Url::parse(&full)
        .map_err(|e| bad(format!("{e}; expected http://HOST:PORT or HOST:PORT")))?;
    if parsed.scheme() != "http" {
        return Err(bad(format!(
            "scheme {}:// is not supported: the admin listener speaks plain http://",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host; expected http://HOST:PORT or HOST:PORT".into()));
    }
    Ok(full)
}

/// GETs `<base>/v1/status`; a non-200 answer is an error carrying its body.
pub async fn get(base: &str, token: Option<&str>) -> Result<Value, StatusError> {
    let url = format!("{}/v1/status", base_url(base)?);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| StatusError::Connect {
            url: url.clone(),
            reason: chain(&e),
        })?;
    let mut req = client.get(&url);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.map_err(|e| StatusError::Connect {
        url: url.clone(),
        reason: chain(&e),
    })?;
    let status = resp.status().as_u16();
    let body = resp.text().await.map_err(|e| StatusError::Connect {
        url: url.clone(),
        reason: chain(&e),
    })?;
    if status != 200 {
        let body = match serde_json::from_str::<Value>(&body) {
            Ok(v) => serde_json::to_string_pretty(&v).unwrap_or(body),
            Err(_) => body,
        };
        return Err(StatusError::Http { url, status, body });
    }
    serde_json::from_str(&body).map_err(|e| StatusError::Decode {
        url,
        reason: e.to_string(),
    })
}

/// Runs `toolgate status`: prints the table (or the raw document); exit code 1 on failure.
pub async fn run(args: StatusArgs) -> ExitCode {
    match fetch(&args).await {
        Ok(doc) if args.json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&doc).unwrap_or_else(|_| doc.to_string())
            );
            ExitCode::SUCCESS
        }
        Ok(doc) => {
            print!("{}", format_table(&doc));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("toolgate status: {e}");
            ExitCode::FAILURE
        }
    }
}

/// An error and its sources on one line ("error sending request: connection refused").
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// Formats the status document for a terminal: overall band, hard stops, one line per SLO.
pub fn format_table(doc: &Value) -> String {
    let mut out = format!(
        "toolgate status: {}  (scope {}, evaluated {}, {} in doubt)\n",
        field(&doc["band"]),
        field(&doc["scope"]),
        field(&doc["evaluated_at"]),
        field(&doc["in_doubt"]),
    );
    let stops = doc["hard_stops"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    out.push_str(&format!("\nHard stops: {}\n", stops.len()));
    if !stops.is_empty() {
        let mut rows = vec![cells(&[
            "ID", "KIND", "TENANT", "ACCOUNT", "TARGET", "REASON",
        ])];
        for s in stops {
            rows.push(
                ["id", "kind", "tenant", "account", "target", "reason"]
                    .iter()
                    .map(|f| field(&s[*f]))
                    .collect(),
            );
        }
        out.push_str(&columns(&rows));
    }
    let slos = doc["slos"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    out.push_str(&format!("\nSLOs: {}\n", slos.len()));
    let mut rows = vec![cells(&[
        "SLO", "SLI", "TARGET", "BUDGET", "BURN 1h", "BURN 6h", "BAND", "ALERT",
    ])];
    for s in slos {
        rows.push(vec![
            field(&s["id"]),
            pct(s["sli"].as_f64().map(|f| f * 100.0), 2),
            pct(s["target"].as_f64().map(|f| f * 100.0), 2),
            pct(s["budget_remaining_pct"].as_f64(), 1),
            burn(&s["burn_rates"]["1h"]),
            burn(&s["burn_rates"]["6h"]),
            field(&s["band"]),
            firing(&s["alerts"]),
        ]);
    }
    if !slos.is_empty() {
        out.push_str(&columns(&rows));
    }
    out
}

/// The most severe firing alert's severity, or "-".
fn firing(alerts: &Value) -> String {
    let firing: Vec<&str> = alerts
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|a| a["firing"] == true)
        .filter_map(|a| a["severity"].as_str())
        .collect();
    if firing.contains(&"page") {
        "page".into()
    } else if let Some(s) = firing.first() {
        clean(s)
    } else {
        "-".into()
    }
}

fn pct(v: Option<f64>, digits: usize) -> String {
    v.map(|f| format!("{f:.digits$}%"))
        .unwrap_or_else(|| "-".into())
}

fn burn(v: &Value) -> String {
    v.as_f64()
        .map(|f| format!("{f:.2}"))
        .unwrap_or_else(|| "-".into())
}

/// A scalar for the terminal: strings without control characters; null or missing is "-".
fn field(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => clean(s),
        other => clean(&other.to_string()),
    }
}

/// Drops control characters (upstream reasons must not drive the terminal).
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn cells(h: &[&str]) -> Vec<String> {
    h.iter().map(|s| s.to_string()).collect()
}

/// Left-aligned columns two spaces apart, each as wide as its widest cell.
fn columns(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::from("  ");
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                let pad = widths[i] - c.chars().count() + 2;
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture() -> Value {
        json!({
            "band": "RED", "evaluated_at": "2026-11-27T22:50:02.000Z", "scope": "all", "in_doubt": 1,
            "hard_stops": [{"id": "hs-1", "kind": "wrong_account", "tenant": "acme", "account": "acme-ig",
                            "target": "@x", "reason": "bound to\u{1b}[31m another", "created_at": "x"}],
            "slos": [
                {"id": "SLO-01", "target": 0.995, "sli": 0.99, "budget_remaining_pct": -100.0,
                 "burn_rates": {"1h": 14.5, "6h": 2.0}, "band": "RED",
                 "alerts": [{"severity": "ticket", "firing": true}, {"severity": "page", "firing": true}]},
                {"id": "SLO-07", "target": 1.0, "sli": null, "budget_remaining_pct": null,
                 "burn_rates": {"1h": null}, "band": "GREEN",
                 "alerts": [{"severity": "page", "firing": false}]}
            ]
        })
    }

    #[test]
    fn base_url_assumes_http_for_a_bare_host_and_port() {
        for (raw, want) in [
            ("127.0.0.1:18791", "http://127.0.0.1:18791"),
            ("localhost:8791/", "http://localhost:8791"),
            ("http://127.0.0.1:8791/", "http://127.0.0.1:8791"),
            ("http://[::1]:8791", "http://[::1]:8791"),
        ] {
            assert_eq!(base_url(raw).unwrap(), want, "{raw}");
        }
        for (raw, says) in [
            ("https://127.0.0.1:8791", "plain http://"),
            ("ftp://host:21", "scheme ftp://"),
            ("", "expected http://HOST:PORT"),
            ("127.0.0.1:notaport", "invalid port"),
        ] {
            let e = base_url(raw).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("invalid --url {raw:?}: ")) && e.contains(says),
                "{raw}: {e}"
            );
        }
    }

    #[test]
    fn a_401_says_what_the_token_variable_held() {
        let v = "TOOLGATE_ADMIN_TOKEN";
        assert!(token_hint(v, None).contains("because TOOLGATE_ADMIN_TOKEN is not set"));
        let empty = std::ffi::OsStr::new("");
        assert!(token_hint(v, Some(empty)).contains("is set but empty"));
        let set = std::ffi::OsStr::new("tok");
        let h = token_hint(v, Some(set));
        assert!(
            h.contains("the token in TOOLGATE_ADMIN_TOKEN was refused"),
            "{h}"
        );
        assert!(!h.contains("tok "), "the token leaks: {h}");
    }

    #[test]
    fn formats_band_hard_stops_and_one_aligned_line_per_slo() {
        let t = format_table(&fixture());
        let expected = "\
toolgate status: RED  (scope all, evaluated 2026-11-27T22:50:02.000Z, 1 in doubt)

Hard stops: 1
  ID    KIND           TENANT  ACCOUNT  TARGET  REASON
  hs-1  wrong_account  acme    acme-ig  @x      bound to [31m another

SLOs: 2
  SLO     SLI     TARGET   BUDGET   BURN 1h  BURN 6h  BAND   ALERT
  SLO-01  99.00%  99.50%   -100.0%  14.50    2.00     RED    page
  SLO-07  -       100.00%  -        -        -        GREEN  -
";
        assert_eq!(t, expected, "\n{t}");
        assert!(!t.contains('\u{1b}'), "control characters are dropped");
    }

    #[test]
    fn tolerates_an_empty_document() {
        let t = format_table(&json!({}));
        assert!(t.starts_with("toolgate status: -  (scope -, evaluated -, - in doubt)"));
        assert!(t.contains("Hard stops: 0") && t.contains("SLOs: 0"));
    }

    #[tokio::test]
    async fn connection_failure_is_a_clear_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let e = get(&format!("http://{addr}/"), None).await.unwrap_err();
        assert!(matches!(e, StatusError::Connect { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with(&format!("cannot reach http://{addr}/v1/status: "))
        );
    }

    /// Answers one request with `status` and `body`; returns the request head it read.
    async fn answer_once(
        status: &str,
        body: &'static str,
    ) -> (String, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        let status = status.to_string();
        let task = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap();
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            s.write_all(resp.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        (base, task)
    }

    #[tokio::test]
    async fn non_200_carries_the_json_error_body_and_the_token_is_sent() {
        let (base, task) = answer_once(
            "401 Unauthorized",
            r#"{"error":"unauthorized","message":"needs a token"}"#,
        )
        .await;
        let e = get(&base, Some("t0k")).await.unwrap_err();
        let head = task.await.unwrap();
        assert!(head.starts_with("GET /v1/status HTTP/1.1"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("authorization: bearer t0k"),
            "{head}"
        );
        let StatusError::Http { status, body, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(*status, 401);
        assert!(body.contains("\"error\": \"unauthorized\""), "{body}");
        assert!(e.to_string().contains("answered HTTP 401"));

        let (base, _task) = answer_once("200 OK", r#"{"band":"GREEN","slos":[]}"#).await;
        let doc = get(&format!("{base}/"), None).await.unwrap();
        assert_eq!(doc["band"], "GREEN");
    }
}
