//! End-to-end tests of the spam-loop guard's targets: spellings of one recipient count as one,
//! and a target it cannot count is refused rather than let past it. Real binary, real SQLite
//! file, a real demo upstream that counts executions.

mod common;

use common::*;
use serde_json::{Value, json};

const TOOLS: &str = "  a__send_dm: {side_effect: true, action: dm, platform: demo, target_arg: to, proof: {post_id: /id}}\n";

fn gateway() -> Gateway {
    let up = "  - name: a\n    command: [\"{bin}\", demo-upstream, --test-tools, --count-file, \"{dir}/a.count\"]\n";
    Gateway::start(&config(up, TOOLS))
}

fn dm(to: Value) -> Value {
    json!({"account_id": "a-1", "to": to, "text": "hi!"})
}

fn key(k: &str) -> Option<Value> {
    Some(json!({"idempotency_key": k}))
}

fn reason(e: &rmcp::model::ErrorData) -> String {
    e.data.as_ref().unwrap()["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spellings_of_one_target_count_as_one_and_uncountable_targets_are_refused() {
    let gw = gateway();
    gw.wait_ready().await;
    let c = client(&gw.mcp, TOKEN_A).await.unwrap();
    let count = gw.path("a.count");

    // Three spellings of one recipient use up its three repeats (the default limit) ...
    for (i, to) in ["@Fan", " fan", "ＦＡＮ"].into_iter().enumerate() {
        call(&c, "a__send_dm", dm(json!(to)), key(&format!("d{i}")))
            .await
            .unwrap();
    }
    assert_eq!(executions(&count), 3);
    // ... so a fourth, spelled yet another way, is the loop.
    let e = call(&c, "a__send_dm", dm(json!("fan\u{200b}")), key("d3"))
        .await
        .unwrap_err();
    assert_eq!((e.code.0, reason(&e)), (-32090, "spam_loop".into()));
    assert_eq!(executions(&count), 3);

    // Targets the guard cannot count never reach the upstream.
    let mut uncountable = vec![
        json!(["fan"]),
        json!({"id": "fan"}),
        json!(true),
        json!(""),
        json!(null),
    ];
    uncountable.push(Value::Null);
    for (i, to) in uncountable.iter().enumerate() {
        let mut args = dm(to.clone());
        if i == uncountable.len() - 1 {
            args.as_object_mut().unwrap().remove("to");
        }
        let e = call(&c, "a__send_dm", args, key(&format!("bad{i}")))
            .await
            .unwrap_err();
        assert_eq!(reason(&e), "invalid_target", "to = {to}");
    }
    assert_eq!(executions(&count), 3);
    // A number is a countable target (a numeric user or comment id): the call is forwarded
    // (the demo's `send_dm` then rejects a non-string `to` with an error result).
    call(&c, "a__send_dm", dm(json!(42)), key("n1"))
        .await
        .unwrap();

    // The records hold the folded target, the stop names it, and both survive a restart.
    let records = gw.audit_records();
    assert_eq!(records[0].target.as_deref(), Some("fan"));
    let n1 = records
        .iter()
        .find(|r| r.idempotency_key.as_deref() == Some("n1"))
        .unwrap();
    assert_eq!(n1.target.as_deref(), Some("42"));
    assert_ne!(n1.outcome, toolgate::journal::Outcome::Refused);
    let gw = gw.crash_and_restart();
    gw.wait_ready().await;
    let c = client(&gw.mcp, TOKEN_A).await.unwrap();
    let e = call(&c, "a__send_dm", dm(json!("@FAN")), key("after"))
        .await
        .unwrap_err();
    assert_eq!(reason(&e), "spam_loop");
    let (_, body) = gw
        .admin("GET", "/v1/hard-stops", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(body["hard_stops"][0]["target"], json!("fan"));
    assert_eq!(executions(&gw.path("a.count")), 3);
}
