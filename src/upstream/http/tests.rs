//! Unit tests of the HTTP client's parsing: SSE framing, telling answers from other messages, endpoints.

use super::*;

fn events(chunks: &[&[u8]]) -> Vec<String> {
    let mut p = SseParser::default();
    let mut out = Vec::new();
    for c in chunks {
        p.push(c);
        while let Some(e) = p.next_event().unwrap() {
            out.push(String::from_utf8(e).unwrap());
        }
    }
    out
}

#[test]
fn sse_events_with_split_lines_and_all_line_endings() {
    let whole: &[u8] =
        b": comment\nid: 0\nretry: 3000\ndata:\n\nevent: message\ndata: {\"a\":\ndata: 1}\n\r\ndata:x\r\rdata: y\r\n\r\n";
    let want = vec!["", "{\"a\":\n1}", "x", "y"];
    assert_eq!(events(&[whole]), want);
    // Every split point gives the same events.
    for i in 0..whole.len() {
        assert_eq!(events(&[&whole[..i], &whole[i..]]), want, "split at {i}");
    }
    // Byte by byte.
    let bytes: Vec<&[u8]> = whole.chunks(1).collect();
    assert_eq!(events(&bytes), want);
}

#[test]
fn sse_incomplete_event_waits_for_more() {
    let mut p = SseParser::default();
    p.push(b"data: {\"id\":1");
    assert_eq!(p.next_event().unwrap(), None);
    p.push(b"}\n");
    assert_eq!(p.next_event().unwrap(), None);
    p.push(b"\n");
    assert_eq!(p.next_event().unwrap(), Some(b"{\"id\":1}".to_vec()));
}

#[test]
fn answers_are_told_from_other_messages() {
    let ok = br#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"hi"}],"structuredContent":{"a":1},"isError":false}}"#;
    match parse_message(ok, 7) {
        Parsed::Answer(Ok(ServerResult::CallToolResult(r))) => {
            assert_eq!(r.structured_content, Some(json!({"a": 1})));
        }
        _ => panic!("not read as a tool result"),
    }
    assert!(matches!(parse_message(ok, 8), Parsed::NotOurs));
    let err = br#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"bad"}}"#;
    match parse_message(err, 7) {
        Parsed::Answer(Err(HttpFault::Rpc(e))) => assert_eq!(e.code.0, -32602),
        _ => panic!("not read as an error"),
    }
    let changed = br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#;
    assert!(matches!(
        parse_message(changed, 7),
        Parsed::Other(JsonRpcMessage::Notification(_))
    ));
    let ping = br#"{"jsonrpc":"2.0","id":"s1","method":"ping"}"#;
    assert!(matches!(
        parse_message(ping, 7),
        Parsed::Other(JsonRpcMessage::Request(_))
    ));
    assert!(matches!(parse_message(b"{not json", 7), Parsed::NotOurs));
    let empty = br#"{"jsonrpc":"2.0","id":7,"result":{}}"#;
    assert!(matches!(parse_message(empty, 7), Parsed::Answer(Ok(_))));
}

#[test]
fn tool_results_take_the_direct_route_and_other_results_are_read_as_rmcp_reads_them() {
    let call = br#"{"jsonrpc":"2.0","id":7,"result":{"content":[],"isError":true,"_meta":{"proof":{"url":"u"}}}}"#;
    let Parsed::Answer(Ok(ServerResult::CallToolResult(r))) = parse_message(call, 7) else {
        panic!("not read as a tool result")
    };
    assert_eq!(r.is_error, Some(true));
    assert_eq!(r.meta.unwrap().0["proof"], json!({"url": "u"}));
    // Each message below is read exactly as rmcp's own JsonRpcMessage reads it.
    let others: [&[u8]; 4] = [
        br#"{"jsonrpc":"2.0","id":7,"result":{"tools":[]}}"#,
        br#"{"jsonrpc":"2.0","id":7,"result":{"task":{"taskId":"t1","status":"working","createdAt":"2026-01-01T00:00:00Z","lastUpdatedAt":"2026-01-01T00:00:00Z","ttl":null}}}"#,
        br#"{"jsonrpc":"2.0","id":7,"result":{"resultType":"complete","content":[{"type":"text","text":"x"}]}}"#,
        br#"{"jsonrpc":"2.0","id":7,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"s","version":"1"}}}"#,
    ];
    for msg in others {
        let Ok(JsonRpcMessage::Response(expected)) =
            serde_json::from_slice::<ServerJsonRpcMessage>(msg)
        else {
            panic!("rmcp does not read {}", String::from_utf8_lossy(msg))
        };
        let Parsed::Answer(Ok(got)) = parse_message(msg, 7) else {
            panic!("no answer in {}", String::from_utf8_lossy(msg))
        };
        assert_eq!(
            serde_json::to_value(&got).unwrap(),
            serde_json::to_value(&expected.result).unwrap(),
            "{}",
            String::from_utf8_lossy(msg)
        );
        assert_eq!(
            std::mem::discriminant(&got),
            std::mem::discriminant(&expected.result)
        );
    }
}

#[test]
fn endpoint_checks_scheme_and_token() {
    assert!(Endpoint::new("http://127.0.0.1:1/mcp", None, Duration::from_secs(1), 4).is_ok());
    assert!(Endpoint::new("https://h/mcp", None, Duration::from_secs(1), 4).is_err());
    assert!(
        Endpoint::new(
            "http://h/mcp",
            Some("TOOLGATE_TEST_SURELY_UNSET_VAR"),
            Duration::from_secs(1),
            4
        )
        .is_err()
    );
}
