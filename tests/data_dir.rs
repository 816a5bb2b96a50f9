//! End-to-end tests of the data dir's ownership: one gateway process per journal. Real
//! binaries, a real SQLite file, a real demo upstream that counts executions.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use toolgate::journal::record::verify_chain;

const TOOLS: &str = "  a__publish_post: {side_effect: true, action: publish, platform: demo, proof: {post_id: /id}}\n";

fn upstream() -> String {
    "  - name: a\n    command: [\"{bin}\", demo-upstream, --test-tools, --count-file, \"{dir}/a.count\"]\n".into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_gateway_on_the_same_data_dir_refuses_to_start_and_the_first_is_untouched() {
    let gw = Gateway::start(&config(&upstream(), TOOLS));
    gw.wait_ready().await;
    let c = client(&gw.mcp, TOKEN_A).await.unwrap();
    let post = |text: &str| json!({"account_id": "a-1", "text": text});
    call(
        &c,
        "a__publish_post",
        post("one"),
        Some(json!({"idempotency_key": "k1"})),
    )
    .await
    .unwrap();

    // Both ways a second process could open the same journal: another HTTP gateway (its own
    // ports), and the stdio transport a local runner might start with the same config.
    let cfg = gw.path("gateway.yml");
    let cfg = cfg.to_str().unwrap();
    let http = [
        "serve",
        "--config",
        cfg,
        "--mcp-addr",
        "127.0.0.1:0",
        "--admin-addr",
        "127.0.0.1:0",
    ];
    let stdio = ["serve", "--config", cfg, "--stdio", "--tenant", "a"];
    for args in [&http[..], &stdio[..]] {
        let (code, stderr) = run_to_end(args, &[]);
        assert_eq!(
            code,
            Some(69),
            "{args:?} should refuse to start; stderr:\n{stderr}"
        );
        let holder = format!("in use by another toolgate process (pid {},", gw.proc.pid());
        assert!(stderr.contains(&holder), "{args:?}: {stderr}");
        assert!(stderr.contains("journal.lock"), "{stderr}");
    }

    // The running gateway's chain goes on unbroken: its next side effect runs once and is
    // recorded right after the first.
    call(
        &c,
        "a__publish_post",
        post("two"),
        Some(json!({"idempotency_key": "k2"})),
    )
    .await
    .unwrap();
    assert_eq!(executions(&gw.path("a.count")), 2);
    let records = gw.audit_records();
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2],
        "nobody else wrote into the chain"
    );
    verify_chain(records, None).unwrap();

    // Once the first gateway is gone (even by SIGKILL: the kernel drops its lock), the data
    // dir can be taken again.
    let gw = gw.crash_and_restart();
    gw.wait_ready().await;
}

/// A foreign row where the next audit record goes: what any write failure of the journal
/// looks like to the gateway (here a duplicate `seq`), made without a second gateway.
/// A side effect by `c` on `account`, which an active journal_failure stop must refuse: the
/// error it got.
async fn refused_by_journal_failure(
    c: &Client,
    account: &str,
    text: &str,
    key: &str,
) -> rmcp::model::ErrorData {
    let e = call(
        c,
        "a__publish_post",
        json!({"account_id": account, "text": text}),
        Some(json!({"idempotency_key": key})),
    )
    .await
    .unwrap_err();
    assert_eq!(e.data.as_ref().unwrap()["reason"], json!("journal_failure"));
    e
}

fn squat_next_seq(gw: &Gateway, seq: i64) {
    let conn = rusqlite::Connection::open(gw.path("data/journal.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute(
        "INSERT INTO audit (seq, time_ms, kind, tenant, record, hash) VALUES (?1, 0, 'call', 'x', '{}', 'x')",
        [seq],
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_cannot_record_stops_every_side_effect_until_an_operator_clears_it() {
    let gw = Gateway::start(&config(&upstream(), TOOLS));
    gw.wait_ready().await;
    let c = client(&gw.mcp, TOKEN_A).await.unwrap();
    let post = |text: &str| json!({"account_id": "a-1", "text": text});
    let key = |k: &str| Some(json!({"idempotency_key": k}));
    call(&c, "a__publish_post", post("one"), key("k1"))
        .await
        .unwrap();
    squat_next_seq(&gw, 2);

    // The side effect in flight runs (it was claimed before anything failed); the runner
    // learns that its outcome went unrecorded.
    let unrecorded = call(&c, "a__publish_post", post("two"), key("k2"))
        .await
        .unwrap();
    assert_eq!(meta(&unrecorded)["toolgate/audit_failed"], json!(true));
    assert_eq!(executions(&gw.path("a.count")), 2);

    // From then on no side effect runs, for any tenant, and the gateway says why.
    let e = refused_by_journal_failure(&c, "a-1", "three", "k3").await;
    assert_eq!(e.code.0, -32090);
    assert_eq!(executions(&gw.path("a.count")), 2, "nothing forwarded");
    let b = client(&gw.mcp, TOKEN_B).await.unwrap();
    refused_by_journal_failure(&b, "b-1", "b", "kb").await;
    // Read-only calls go on.
    call(&c, "a__get_post", json!({"post_id": "p"}), None)
        .await
        .unwrap();
    let (status, ready) = gw.admin("GET", "/readyz", None, None).await;
    assert_eq!(status, 503);
    assert!(
        ready["reasons"].to_string().contains("journal_failure"),
        "{ready}"
    );
    let (_, body) = gw
        .admin("GET", "/v1/hard-stops", Some(ADMIN_TOKEN), None)
        .await;
    let stops = body["hard_stops"].as_array().unwrap();
    assert_eq!(stops.len(), 1, "{body}");
    assert_eq!(stops[0]["kind"], json!("journal_failure"));
    let id = stops[0]["id"].as_str().unwrap().to_string();
    // It refuses every tenant, so every tenant sees it (its reason names none of them).
    let (_, mine) = gw.admin("GET", "/v1/hard-stops", Some(TOKEN_B), None).await;
    assert_eq!(mine["hard_stops"][0]["id"], json!(id), "{mine}");
    assert!(
        !mine["hard_stops"][0]["reason"]
            .to_string()
            .contains("tenant")
    );

    // The key of the unrecorded side effect is not left looking in flight forever...
    let again = call(&c, "a__publish_post", post("two"), key("k2"))
        .await
        .unwrap_err();
    assert_eq!(
        again.data.as_ref().unwrap()["reason"],
        json!("journal_failure")
    );

    // The operator repairs the journal. What it refused goes in within a second or so: the
    // stop with why it tripped, and the unrecorded side effect as in doubt (as after a
    // crash), so its key can be resolved.
    let conn = rusqlite::Connection::open(gw.path("data/journal.db")).unwrap();
    conn.execute("DELETE FROM audit WHERE seq = 2 AND tenant = 'x'", [])
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.audit_records().len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let records = gw.audit_records();
    assert!(
        records.iter().any(|r| r.tool == "hard_stop.trip"
            && r.reason
                .as_deref()
                .is_some_and(|w| w.contains("could not record"))),
        "{records:?}"
    );
    let k2 = records
        .iter()
        .find(|r| r.idempotency_key.as_deref() == Some("k2"))
        .expect("the unrecorded side effect is on record now");
    assert_eq!(k2.outcome, toolgate::journal::Outcome::InDoubt);
    let clear = json!({"by": "oncall", "reason": "removed a foreign row"});
    let (status, body) = gw
        .admin(
            "POST",
            &format!("/v1/hard-stops/{id}/clear"),
            Some(ADMIN_TOKEN),
            Some(clear),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let ok = call(&c, "a__publish_post", post("four"), key("k4"))
        .await
        .unwrap();
    let e = call(&c, "a__publish_post", post("two"), key("k2"))
        .await
        .unwrap_err();
    assert_eq!(
        e.data.as_ref().unwrap()["reason"],
        json!("in_doubt"),
        "resolvable by an operator, not in flight"
    );
    assert!(meta(&ok).get("toolgate/audit_failed").is_none());
    assert_eq!(executions(&gw.path("a.count")), 3);
    let (status, _) = gw.admin("GET", "/readyz", None, None).await;
    assert_eq!(status, 200);
    let records = gw.audit_records();
    verify_chain(records.clone(), None).unwrap();
    assert!(
        records
            .iter()
            .any(|r| r.tool == "hard_stop.clear" && r.target.as_deref() == Some(id.as_str())),
        "the clear is on record"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_nobody_waited_for_still_stops_side_effects() {
    let gw = Gateway::start(&config(&upstream(), TOOLS));
    gw.wait_ready().await;
    let c = client(&gw.mcp, TOKEN_A).await.unwrap();
    // Only read-only calls come in while the journal cannot record: their records are
    // queued without anyone waiting, so no caller sees the error.
    squat_next_seq(&gw, 1);
    call(&c, "a__get_post", json!({"post_id": "p"}), None)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let stops = loop {
        let (_, body) = gw
            .admin("GET", "/v1/hard-stops", Some(ADMIN_TOKEN), None)
            .await;
        let stops = body["hard_stops"].as_array().cloned().unwrap_or_default();
        if !stops.is_empty() || Instant::now() > deadline {
            break stops;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(stops.len(), 1, "{stops:?}");
    assert_eq!(stops[0]["kind"], json!("journal_failure"));
    refused_by_journal_failure(&c, "a-1", "x", "k").await;
    assert_eq!(executions(&gw.path("a.count")), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_whose_newest_records_do_not_verify_starts_stopped() {
    let gw = Gateway::start(&config(&upstream(), TOOLS));
    gw.wait_ready().await;
    let c = client(&gw.mcp, TOKEN_A).await.unwrap();
    call(
        &c,
        "a__publish_post",
        json!({"account_id": "a-1", "text": "one"}),
        Some(json!({"idempotency_key": "k1"})),
    )
    .await
    .unwrap();
    // Something other than toolgate appends to the chain while it is down: a copy of the
    // last record under the next seq (it parses, but its seal does not hold). A row that is
    // not a record at all already stops the start-up (exit 69).
    let gw = gw.crash_and_restart_with(|gw| {
        let conn = rusqlite::Connection::open(gw.path("data/journal.db")).unwrap();
        conn.execute(
            "INSERT INTO audit (seq, time_ms, kind, tenant, record, hash)
             SELECT 2, time_ms, kind, tenant, json_set(record, '$.seq', 2), hash FROM audit WHERE seq = 1",
            [],
        )
        .unwrap();
    });
    // Checked as soon as it is up (the stop trips when the gateway starts, not on a timer).
    let (_, body) = gw
        .admin("GET", "/v1/hard-stops", Some(ADMIN_TOKEN), None)
        .await;
    let stops = body["hard_stops"].as_array().unwrap();
    assert_eq!(stops.len(), 1, "{body}");
    assert_eq!(stops[0]["kind"], json!("journal_failure"));
    assert!(stops[0]["reason"].as_str().unwrap().contains("at start-up"));
    let (status, ready) = gw.admin("GET", "/readyz", None, None).await;
    assert_eq!(status, 503, "{ready}");
    assert!(
        ready["reasons"].to_string().contains("journal_failure"),
        "{ready}"
    );
    let c = client(&gw.mcp, TOKEN_A).await.unwrap();
    refused_by_journal_failure(&c, "a-1", "two", "k2").await;
    assert_eq!(executions(&gw.path("a.count")), 1);
}
