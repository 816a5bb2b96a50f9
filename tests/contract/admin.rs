//! Admin API request, response and error bodies against the admin-api schema.

use super::*;

/// The admin request bodies. Their parsers (src/admin/ops.rs) are private; these cases mirror
/// them and tests/safety.rs drives the real endpoints.
#[test]
fn admin_request_and_error_bodies_match_the_schema() {
    let clear = format!("{ADMIN}#/$defs/clear_request");
    let resolve = format!("{ADMIN}#/$defs/resolve_request");
    let error = format!("{ADMIN}#/$defs/error");
    schema::assert_valid(
        &clear,
        &json!({"by": "oncall@acme", "reason": "checked the account"}),
    );
    for bad in [
        json!({"by": "ops"}),
        json!({"by": " ", "reason": "x"}),
        json!({"by": "ops", "reason": ""}),
        json!({"by": "ops", "reason": "x", "force": true}),
        json!({"by": 7, "reason": "x"}),
    ] {
        schema::assert_invalid(&clear, &bad);
    }
    for good in [
        json!({"outcome": "happened", "by": "ops", "reason": "seen"}),
        json!({"outcome": "happened", "proof": {"post_id": "p1", "url": "https://x/p1", "screenshot": "s.png"}, "by": "ops", "reason": "seen"}),
        json!({"outcome": "not_happened", "proof": {}, "by": "ops", "reason": "not there"}),
    ] {
        schema::assert_valid(&resolve, &good);
    }
    for bad in [
        json!({"outcome": "maybe", "by": "ops", "reason": "x"}),
        json!({"by": "ops", "reason": "x"}),
        json!({"outcome": "happened", "proof": null, "by": "ops", "reason": "x"}),
        json!({"outcome": "happened", "proof": {"id": "p"}, "by": "ops", "reason": "x"}),
        json!({"outcome": "happened", "by": "ops", "reason": "x", "tenant": "acme"}),
    ] {
        schema::assert_invalid(&resolve, &bad);
    }
    for code in [
        "unauthorized",
        "forbidden",
        "not_found",
        "invalid_body",
        "not_in_doubt",
        "journal_error",
        "method_not_allowed",
    ] {
        schema::assert_valid(&error, &json!({"error": code, "message": "a sentence"}));
    }
    schema::assert_invalid(&error, &json!({"error": "not_found"}));
    // The state enum is the journal's.
    let states = [
        KeyState::Dispatching,
        KeyState::Succeeded,
        KeyState::FailedFinal,
        KeyState::FailedRetryable,
        KeyState::InDoubt,
    ];
    for s in states {
        match s {
            KeyState::Dispatching
            | KeyState::Succeeded
            | KeyState::FailedFinal
            | KeyState::FailedRetryable
            | KeyState::InDoubt => {}
        }
        assert_eq!(wire(s), s.as_str());
    }
    let names: BTreeSet<String> = states.iter().map(|s| s.as_str().to_string()).collect();
    assert_eq!(schema_enum(ADMIN, "/$defs/key_state"), names);
    // Every body validates against the top level too.
    schema::assert_valid(ADMIN, &json!({"by": "ops", "reason": "x"}));
    schema::assert_invalid(ADMIN, &json!({"hard_stops": [{}]}));
}

/// The bodies of `POST /v1/events` and the flag endpoints. The handlers (src/admin/budget.rs)
/// are private; these mirror them, and tests/budget.rs drives the real endpoints.
#[test]
fn events_and_flag_bodies_match_the_schema() {
    let events = format!("{ADMIN}#/$defs/events_response");
    let results = json!([
        {"index": 0, "id": "e1", "status": "accepted"},
        {"index": 1, "id": "e1", "status": "duplicate"},
        {"index": 2, "id": null, "status": "rejected", "error": "id is required"},
        {"index": 3, "id": 7, "status": "rejected", "error": "id must be a non-empty string (≤ 512 bytes)"},
    ]);
    let good = json!({"accepted": 1, "duplicates": 1, "rejected": 2, "results": results});
    schema::assert_valid(&events, &good);
    schema::assert_valid(ADMIN, &good);
    for bad in [
        json!({"accepted": 0, "duplicates": 0, "rejected": 1,
               "results": [{"index": 0, "id": null, "status": "rejected"}]}),
        json!({"accepted": 1, "duplicates": 0, "rejected": 0,
               "results": [{"index": 0, "id": "e", "status": "accepted", "error": "x"}]}),
        json!({"accepted": 1, "duplicates": 0, "rejected": 0,
               "results": [{"index": 0, "id": "e", "status": "pending"}]}),
        json!({"accepted": 1, "duplicates": 0, "rejected": 0,
               "results": [{"index": 0, "id": null, "status": "accepted"}]}),
        json!({"accepted": 1, "duplicates": 0, "results": []}),
    ] {
        schema::assert_invalid(&events, &bad);
    }
    let flags = format!("{ADMIN}#/$defs/flags_response");
    schema::assert_valid(
        &flags,
        &json!({"flags": [{"capability": "dm_send", "enabled": false}]}),
    );
    schema::assert_invalid(&flags, &json!({"flags": [{"capability": "dm_send"}]}));
    let req = format!("{ADMIN}#/$defs/flag_request");
    for good in [
        json!({"enabled": true, "by": "ops", "reason": "canary passed"}),
        json!({"enabled": true, "by": "ops", "reason": "canary passed", "approved_by": "reliability owner"}),
        json!({"enabled": false, "by": "ops", "reason": "rollback", "approved_by": null}),
    ] {
        schema::assert_valid(&req, &good);
    }
    for bad in [
        json!({"enabled": "yes", "by": "ops", "reason": "x"}),
        json!({"enabled": true, "by": " ", "reason": "x"}),
        json!({"enabled": true, "reason": "x"}),
        json!({"enabled": true, "by": "ops", "reason": "x", "force": true}),
    ] {
        schema::assert_invalid(&req, &bad);
    }
    let resp = format!("{ADMIN}#/$defs/flag_response");
    for band in [
        toolgate::budget::Band::Green,
        toolgate::budget::Band::Yellow,
        toolgate::budget::Band::Red,
    ] {
        schema::assert_valid(
            &resp,
            &json!({"capability": "dm_send", "enabled": true, "band": band}),
        );
        assert_eq!(wire(band), band.as_str());
    }
    assert_eq!(
        schema_enum(STATUS, "/$defs/band"),
        schema_enum(ADMIN, "/$defs/flag_response/properties/band")
    );
    for code in ["approval_required", "no_flag"] {
        schema::assert_valid(
            &format!("{ADMIN}#/$defs/error"),
            &json!({"error": code, "message": "a sentence"}),
        );
    }
}
