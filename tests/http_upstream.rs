//! The lean Streamable HTTP upstream client end to end: tool-list changes reach the catalog,
//! and an upstream that restarts (forgetting the session) is reconnected.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn web_only(url: &str) -> String {
    config(
        &format!("  - name: web\n    url: {url}\n    timeout: 5s\n"),
        "  web__add_tool: {side_effect: false}\n",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_upstream_list_changes_and_restart() {
    let web = HttpUpstream::start();
    let gw = Gateway::start(&web_only(&web.url));
    gw.wait_ready().await;
    let c = client(&gw.mcp, TOKEN_A).await.unwrap();

    // tools/list_changed from the upstream refreshes the catalog.
    call(&c, "web__add_tool", json!({"name": "fresh"}), None)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tools = c.peer().list_all_tools().await.unwrap();
        if tools.iter().any(|t| t.name == "web__fresh") {
            break;
        }
        assert!(Instant::now() < deadline, "web__fresh never appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The upstream restarts on the same address with no memory of the gateway's session.
    let addr = web
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_string();
    drop(web);
    let again = Proc::spawn(&["demo-upstream", "--test-tools", "--http", &addr], &[]);
    again.wait_for("demo upstream listening", Duration::from_secs(20));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match call(&c, "web__get_post", json!({"post_id": "back"}), None).await {
            Ok(r) => {
                assert_eq!(structured(&r)["id"], "back");
                break;
            }
            Err(e) => {
                // Not connected (retryable, even while out of the catalog), never a hang.
                assert_eq!(e.code.0, -32092, "{e:?}");
                assert_eq!(e.data.unwrap()["retryable"], true);
                assert!(
                    Instant::now() < deadline,
                    "upstream never came back; log:\n{}",
                    gw.proc.log()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
