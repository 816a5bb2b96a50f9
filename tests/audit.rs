//! End-to-end tests of the audit export: calls through the real gateway, exports over HTTP and
//! with `toolgate audit export`, verification of both, tenant isolation, tamper detection in
//! an exported file and in the SQLite journal, and CSV that Python's csv module reads.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const TOOLS: &str = "  a__publish_post: {side_effect: true, action: publish, platform: demo, proof: {post_id: /id, url: /url, screenshot: /proof/screenshot_url}}
";

fn key(k: &str) -> Option<Value> {
    Some(json!({"idempotency_key": k}))
}

fn post(account: &str, text: &str) -> Value {
    json!({"account_id": account, "text": text})
}

/// Runs `toolgate audit ARGS`.
fn audit(args: &[&str]) -> Output {
    std::process::Command::new(bin())
        .arg("audit")
        .args(args)
        .output()
        .expect("run toolgate audit")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// GET /v1/audit/export?QUERY; returns (status, content type, body).
async fn http_export(gw: &Gateway, query: &str, token: Option<&str>) -> (u16, String, String) {
    let mut req = reqwest::Client::new().get(format!("{}/v1/audit/export?{query}", gw.admin));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, r.text().await.unwrap())
}

/// The record lines of a JSON Lines export, parsed.
fn records(jsonl: &str) -> Vec<Value> {
    jsonl
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] == "record")
        .collect()
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_agree_verify_isolate_tenants_and_catch_tampering() {
    let up = "  - name: a\n    command: [\"{bin}\", demo-upstream, --test-tools, --count-file, \"{dir}/a.count\"]\n    timeout: 5s\n";
    let gw = Gateway::start(&config(up, TOOLS));
    gw.wait_ready().await;
    let ca = client(&gw.mcp, TOKEN_A).await.unwrap();
    let cb = client(&gw.mcp, TOKEN_B).await.unwrap();
    call(
        &ca,
        "a__publish_post",
        post("a-1", "hello, \"world\"\nbye"),
        key("k1"),
    )
    .await
    .unwrap();
    call(
        &ca,
        "a__publish_post",
        post("a-1", "hello, \"world\"\nbye"),
        key("k1"),
    )
    .await
    .unwrap();
    call(&cb, "a__publish_post", post("b-1", "from b"), key("kb1"))
        .await
        .unwrap();
    call(&ca, "a__publish_post", post("a-2", "REJECT: no"), key("k2"))
        .await
        .unwrap();
    call(&ca, "a__get_post", json!({"post_id": "p"}), None)
        .await
        .unwrap();
    call(&cb, "a__publish_post", post("b-1", "again"), key("kb2"))
        .await
        .unwrap();
    let stored = gw.audit_records_when(|r| r.len() >= 6).await;
    assert!(stored.len() >= 6, "{stored:#?}");
    let data = gw.path("data");
    let data = data.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();

    // HTTP, admin: everything.
    let (status, ct, http_full) = http_export(&gw, "", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{http_full}");
    assert_eq!(ct, "application/x-ndjson");
    let header: Value = serde_json::from_str(http_full.lines().next().unwrap()).unwrap();
    assert_eq!(header["type"], "header");
    assert_eq!(header["format_version"], 1);
    assert_eq!(header["filters"], json!({}));
    let http_recs = records(&http_full);
    assert_eq!(http_recs.len(), stored.len());
    assert_eq!(header["chain"]["seq"], stored.len() as u64);
    assert_eq!(
        header["chain"]["hash"],
        stored.last().unwrap().hash.as_str()
    );
    let trailer: Value = serde_json::from_str(http_full.lines().last().unwrap()).unwrap();
    assert_eq!(
        (trailer["type"].clone(), trailer["count"].clone()),
        (json!("trailer"), json!(stored.len()))
    );

    // CLI: the same records.
    let cli_file = tmp.path().join("cli.jsonl");
    let o = audit(&["export", "--data", data, "-o", cli_file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let cli_full = std::fs::read_to_string(&cli_file).unwrap();
    assert_eq!(records(&cli_full), http_recs, "HTTP and CLI exports agree");
    for (r, s) in http_recs.iter().zip(&stored) {
        let mut r = r.clone();
        r.as_object_mut().unwrap().remove("type");
        common::schema::assert_valid("audit-record.schema.json", &r);
        assert_eq!(r, serde_json::to_value(s).unwrap());
    }

    // Both verify.
    let http_file = write(tmp.path(), "http.jsonl", &http_full);
    for f in [http_file.as_str(), cli_file.to_str().unwrap()] {
        let o = audit(&["verify", f]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
    let o = audit(&["verify", "--data", data]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // Anchors.
    let o = audit(&["anchor", "--data", data]);
    assert!(o.status.success(), "{}", text(&o));
    let anchor: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(anchor["seq"], stored.len() as u64);
    let good = format!("{}:{}", anchor["seq"], anchor["hash"].as_str().unwrap());
    let o = audit(&["verify", &http_file, "--anchor", &good]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = audit(&["verify", "--data", data, "--anchor", &good]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let wrong = format!("{}:{}", anchor["seq"], "ab".repeat(32));
    let o = audit(&["verify", &http_file, "--anchor", &wrong]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let o = audit(&["verify", &http_file, "--anchor", "nonsense"]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    let o = audit(&["verify"]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    let o = audit(&["export", "--data", data, "--from", "yesterday"]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));

    // Tenants: a tenant token sees its own records only; another tenant's is 403; no token 401.
    let (status, _, a_only) = http_export(&gw, "", Some(TOKEN_A)).await;
    assert_eq!(status, 200);
    let a_recs = records(&a_only);
    let a_stored = stored
        .iter()
        .filter(|r| r.tenant.as_deref() == Some("a"))
        .count();
    assert!(a_stored > 0);
    assert_eq!(a_recs.len(), a_stored);
    assert!(a_recs.iter().all(|r| r["tenant"] == "a"));
    let o = audit(&["verify", &write(tmp.path(), "a.jsonl", &a_only)]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "a filtered export verifies: {}",
        text(&o)
    );
    let (status, _, body) = http_export(&gw, "tenant=b", Some(TOKEN_A)).await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("kb1"));
    assert_eq!(http_export(&gw, "tenant=b", None).await.0, 401);
    let (status, _, b_only) = http_export(&gw, "tenant=b", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200);
    let b_recs = records(&b_only);
    assert!(!b_recs.is_empty() && b_recs.iter().all(|r| r["tenant"] == "b"));
    let (status, _, k1) =
        http_export(&gw, "idempotency_key=k1&outcome=success", Some(TOKEN_A)).await;
    assert_eq!(status, 200);
    assert_eq!(records(&k1).len(), 2, "{k1}");
    assert_eq!(http_export(&gw, "bogus=1", Some(ADMIN_TOKEN)).await.0, 400);

    // One byte changed in an exported file: detected at that record's seq.
    let victim = http_recs.len() / 2;
    let seq = http_recs[victim]["seq"].as_u64().unwrap();
    let lines: Vec<String> = cli_full.lines().map(String::from).collect();
    let line = &lines[victim + 1];
    let id = http_recs[victim]["id"].as_str().unwrap();
    let last = id.chars().last().unwrap();
    let flipped = if last == '0' { '1' } else { '0' };
    let new_id = format!("{}{flipped}", &id[..id.len() - 1]);
    let mut tampered = lines.clone();
    tampered[victim + 1] = line.replacen(id, &new_id, 1);
    assert_eq!(tampered[victim + 1].len(), line.len());
    let f = write(tmp.path(), "tampered.jsonl", &(tampered.join("\n") + "\n"));
    let o = audit(&["verify", &f]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!("seq {seq},")),
        "{}",
        text(&o)
    );
    // A deleted record and two swapped ones.
    let mut deleted = lines.clone();
    deleted.remove(victim + 1);
    let o = audit(&[
        "verify",
        &write(tmp.path(), "del.jsonl", &deleted.join("\n")),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let mut swapped = lines.clone();
    swapped.swap(victim, victim + 1);
    let o = audit(&[
        "verify",
        &write(tmp.path(), "swap.jsonl", &swapped.join("\n")),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // CSV, over HTTP and from the CLI: Python's csv module reads header + N rows.
    let (status, ct, csv_http) = http_export(&gw, "format=csv", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("text/csv"), "{ct}");
    let csv_cli = tmp.path().join("cli.csv");
    let o = audit(&[
        "export",
        "--data",
        data,
        "--format",
        "csv",
        "-o",
        csv_cli.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&csv_cli).unwrap(), csv_http);
    let py = std::process::Command::new("python3")
        .args([
            "-c",
            "import csv,sys; rows=list(csv.reader(open(sys.argv[1], newline=''))); \
             assert all(len(r)==len(rows[0]) for r in rows); print(len(rows)); print(rows[0][1], rows[1][1])",
            csv_cli.to_str().unwrap(),
        ])
        .output()
        .expect("python3");
    assert!(py.status.success(), "{}", text(&py));
    let out = String::from_utf8_lossy(&py.stdout);
    let mut out = out.lines();
    assert_eq!(out.next().unwrap(), (stored.len() + 1).to_string());
    assert_eq!(out.next().unwrap(), "seq 1");

    // Tampering in the SQLite file: `audit verify --data` names the seq.
    let target = stored[stored.len() / 2].clone();
    let conn = rusqlite::Connection::open(gw.path("data/journal.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut changed = serde_json::to_value(&target).unwrap();
    changed["tool"] = json!(format!("{}x", target.tool));
    conn.execute(
        "UPDATE audit SET record = ?1 WHERE seq = ?2",
        rusqlite::params![changed.to_string(), target.seq as i64],
    )
    .unwrap();
    drop(conn);
    let o = audit(&["verify", "--data", data]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!("seq {}:", target.seq)),
        "{}",
        text(&o)
    );
}

/// Retention at the library level on a real journal file (records 100 days old, then recent
/// ones), then the real binary: `audit verify --data`, an export and its verification, an
/// anchor taken before pruning, and deletion of the oldest kept record.
#[tokio::test]
async fn a_pruned_journal_verifies_from_its_anchor_and_deletion_is_still_found() {
    use toolgate::journal::sqlite::SqliteJournal;
    use toolgate::journal::{AuditRecord, Outcome, RecordKind, Store};
    const DAY: i64 = 86_400_000;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_str().unwrap().to_string();
    let now = chrono::Utc::now().timestamp_millis();
    let (j, _) = SqliteJournal::open(tmp.path(), now).unwrap();
    for i in 0..30i64 {
        let t = if i < 20 {
            now - 100 * DAY + i
        } else {
            now - DAY + i
        };
        let mut r = AuditRecord::new(
            format!("r{i}"),
            toolgate::clock::rfc3339(t),
            RecordKind::Call,
            "a__publish_post",
            Outcome::Success,
        );
        r.tenant = Some("acme".into());
        j.append(r).await.unwrap();
    }
    drop(j);
    // An anchor kept before pruning: the head of what retention will delete.
    let o = audit(&[
        "export",
        "--data",
        &data,
        "--to",
        &toolgate::clock::rfc3339(now - 50 * DAY),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let old = records(&String::from_utf8_lossy(&o.stdout));
    let old_anchor = format!("20:{}", old[19]["hash"].as_str().unwrap());

    let (j, _) = SqliteJournal::open(tmp.path(), now).unwrap();
    let keep = Duration::from_secs(90 * 86_400);
    let run = toolgate::maintenance::prune_audit(&j, now, keep, 8)
        .await
        .unwrap();
    assert_eq!(
        (run.deleted, run.batches, run.oldest_seq),
        (20, 3, Some(21))
    );
    let stats = j.write_stats();
    assert_eq!((stats.oldest_seq, stats.pruned), (21, 20));
    drop(j);

    let o = audit(&["verify", "--data", &data]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("13 records verified (seq 1..20 deleted by retention"),
        "{out}"
    );
    let o = audit(&["verify", "--data", &data, "--anchor", &old_anchor]);
    assert!(o.status.success(), "{}", text(&o));
    let o = audit(&[
        "verify",
        "--data",
        &data,
        "--anchor",
        &format!("3:{}", old[2]["hash"].as_str().unwrap()),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("deleted by retention"),
        "{}",
        text(&o)
    );

    let file = tmp.path().join("pruned.jsonl");
    let f = file.to_str().unwrap();
    let o = audit(&["export", "--data", &data, "-o", f]);
    assert!(o.status.success(), "{}", text(&o));
    let body = std::fs::read_to_string(&file).unwrap();
    let header: Value = serde_json::from_str(body.lines().next().unwrap()).unwrap();
    assert_eq!(header["chain"]["first_seq"], 21);
    assert_eq!(header["chain"]["anchor_prev_hash"], old[19]["hash"]);
    let o = audit(&["verify", f, "--anchor", &old_anchor]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("ok: 13 records verified (seq 21..33)"),
        "{}",
        text(&o)
    );
    // The first kept record removed from the export.
    let mut lines: Vec<&str> = body.lines().collect();
    lines.remove(1);
    let cut = write(tmp.path(), "cut.jsonl", &lines.join("\n"));
    let o = audit(&["verify", &cut]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("seq 21"),
        "{}",
        text(&o)
    );

    // The oldest kept record deleted from the journal: not retention, and named.
    let conn = rusqlite::Connection::open(tmp.path().join("journal.db")).unwrap();
    conn.execute("DELETE FROM audit WHERE seq = 21", [])
        .unwrap();
    drop(conn);
    let o = audit(&["verify", "--data", &data]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("first broken seq 22") && err.contains("starts at seq 21"),
        "{err}"
    );
}

/// `toolgate check` refuses a retention shorter than the longest SLO window, at its line.
#[test]
fn check_refuses_a_retention_shorter_than_the_slo_window() {
    let tmp = tempfile::tempdir().unwrap();
    let base = "version: 1\ntenants:\n  - id: acme\n    token_env: TOK\nupstreams:\n  - name: a\n    command: [x]\n";
    let short = write(tmp.path(), "short.yml", &format!("{base}retention: 7d\n"));
    let o = std::process::Command::new(bin())
        .args(["check", "--config", &short])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("short.yml:8:")
            && err.contains("retention: 7d is shorter than the longest SLO window"),
        "{err}"
    );
    let ok = write(tmp.path(), "ok.yml", &format!("{base}retention: 400d\n"));
    let o = std::process::Command::new(bin())
        .args(["check", "--config", &ok])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("audit retention 400d"),
        "{}",
        text(&o)
    );
}
