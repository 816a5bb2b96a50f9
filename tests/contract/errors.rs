//! JSON-RPC error data: every gateway error and refusal reason against the error-data schema.

use super::*;

/// One of each variant, and each upstream fault; the match makes a new variant a compile error
/// here until it is covered.
fn every_gateway_error() -> Vec<GatewayError> {
    let faults = [
        UpstreamFault::NotConnected,
        UpstreamFault::ConnectionLost,
        UpstreamFault::Protocol,
        UpstreamFault::Timeout(Duration::from_secs(30)),
        UpstreamFault::Cancelled,
    ];
    for f in faults {
        match f {
            UpstreamFault::NotConnected
            | UpstreamFault::ConnectionLost
            | UpstreamFault::Protocol
            | UpstreamFault::Timeout(_)
            | UpstreamFault::Cancelled => {}
        }
    }
    let upstream_error = |data: Option<Value>| GatewayError::UpstreamError {
        upstream: "social".into(),
        error: ErrorData::new(ErrorCode::INVALID_PARAMS, "bad arguments", data),
    };
    let mut out = vec![
        GatewayError::UnknownTool("social__nope".into()),
        GatewayError::InvalidRequest("arguments must be an object".into()),
        GatewayError::Internal("journal unavailable".into()),
        upstream_error(None),
        upstream_error(Some(json!({"field": "text", "hint": "too long"}))),
        upstream_error(Some(json!(3))),
        upstream_error(Some(json!(["a", "b"]))),
        upstream_error(Some(json!("text"))),
        upstream_error(Some(json!(null))),
        // Members named like toolgate's are replaced.
        upstream_error(Some(json!({"upstream": 7, "audit_id": false}))),
        // A toolgate upstream of a toolgate: its data has toolgate's own shapes.
        upstream_error(Some(
            json!({"failure_class": "tool_failure", "retryable": true}),
        )),
        upstream_error(Some(json!({"reason": "wrong_account", "retryable": false}))),
    ];
    for reason in ALL_REASONS {
        out.push(GatewayError::Refused(Denial::new(reason, "because")));
    }
    for fault in faults {
        for retryable in [false, true] {
            out.push(GatewayError::Upstream {
                upstream: "social".into(),
                fault,
                retryable,
                detail: "no answer".into(),
            });
        }
    }
    for e in &out {
        match e {
            GatewayError::UnknownTool(_)
            | GatewayError::InvalidRequest(_)
            | GatewayError::Refused(_)
            | GatewayError::Upstream { .. }
            | GatewayError::UpstreamError { .. }
            | GatewayError::Internal(_) => {}
        }
    }
    out
}

/// Every refusal reason; the match makes a new reason fail to compile until it is listed.
const ALL_REASONS: [Reason; 16] = [
    Reason::MissingIdempotencyKey,
    Reason::InvalidMeta,
    Reason::UnknownAccount,
    Reason::WrongAccount,
    Reason::TenantMismatch,
    Reason::TenantQuarantined,
    Reason::JournalFailure,
    Reason::InvalidTarget,
    Reason::SpamLoop,
    Reason::HardStop,
    Reason::Frozen,
    Reason::CanaryOnly,
    Reason::FlagDisabled,
    Reason::KeyConflict,
    Reason::InFlight,
    Reason::InDoubt,
];

#[test]
fn all_reasons_is_exhaustive() {
    for r in ALL_REASONS {
        match r {
            Reason::MissingIdempotencyKey
            | Reason::InvalidMeta
            | Reason::UnknownAccount
            | Reason::WrongAccount
            | Reason::TenantMismatch
            | Reason::TenantQuarantined
            | Reason::JournalFailure
            | Reason::InvalidTarget
            | Reason::SpamLoop
            | Reason::HardStop
            | Reason::Frozen
            | Reason::CanaryOnly
            | Reason::FlagDisabled
            | Reason::KeyConflict
            | Reason::InFlight
            | Reason::InDoubt => {}
        }
    }
}

#[test]
fn every_error_data_matches_the_schema() {
    let any = validator("error-data.schema.json");
    let upstream_failure = def_validator("error-data.schema.json", "upstream_failure");
    let refusal = def_validator("error-data.schema.json", "refusal");
    let passthrough = def_validator("error-data.schema.json", "upstream_error");
    let audit_id = "0196f0c2-7a3e-7c1b-9d2e-5f4a3b2c1d0e";
    for e in every_gateway_error() {
        let err = e.to_error_data(audit_id);
        let data = err
            .data
            .clone()
            .unwrap_or_else(|| panic!("{e:?}: error without data"));
        let shown = format!("data of {e:?}");
        assert_valid(&any, &data, &shown);
        assert_eq!(data["audit_id"], audit_id, "{shown}");
        // The code decides the shape (README), so each code must produce its own shape.
        let (code, v, name) = match &e {
            GatewayError::Upstream { .. } => {
                (UPSTREAM_FAILURE, &upstream_failure, "upstream_failure")
            }
            GatewayError::UnknownTool(_) | GatewayError::InvalidRequest(_) => {
                (ErrorCode::INVALID_PARAMS.0, &refusal, "refusal")
            }
            GatewayError::Internal(_) => (ErrorCode::INTERNAL_ERROR.0, &refusal, "refusal"),
            GatewayError::Refused(d) => {
                let code = if d.reason.is_idempotency() {
                    -32091
                } else {
                    -32090
                };
                assert_eq!(data["reason"], d.reason.as_str(), "{shown}");
                (code, &refusal, "refusal")
            }
            GatewayError::UpstreamError { error, .. } => {
                assert_eq!(
                    (err.code, &err.message),
                    (error.code, &error.message),
                    "{shown}: passed through"
                );
                assert_eq!(data["upstream"], "social", "{shown}");
                // README: upstream data that has exactly the upstream_failure shape (a toolgate
                // behind toolgate) validates as that; the code tells the two apart.
                if upstream_failure.is_valid(&data) {
                    assert!(!passthrough.is_valid(&data), "{shown}: oneOf overlap");
                    continue;
                }
                (error.code.0, &passthrough, "upstream_error")
            }
        };
        assert_eq!(err.code.0, code, "{shown}: code");
        assert_valid(v, &data, &format!("{shown} as $defs/{name}"));
    }
}

#[test]
fn error_codes_and_reasons_are_documented() {
    let readme = read("proto/README.md");
    for code in [REFUSED_BY_POLICY, IDEMPOTENCY, UPSTREAM_FAILURE] {
        assert!(
            readme.contains(&code.to_string()),
            "proto/README.md lacks code {code}"
        );
    }
    assert_eq!(
        (REFUSED_BY_POLICY, IDEMPOTENCY, UPSTREAM_FAILURE),
        (-32090, -32091, -32092)
    );
    let v = validator("error-data.schema.json");
    assert!(!v.is_valid(&json!({"reason": "made_up", "retryable": false, "audit_id": "a"})));
    assert!(
        !v.is_valid(&json!({"failure_class": "tool_failure", "retryable": true, "audit_id": "a"}))
    );
    assert!(!v.is_valid(&json!({"retryable": true})));
    assert!(!v.is_valid(&json!("not an object")));
    // `retryable` follows from the reason.
    let refusal = def_validator("error-data.schema.json", "refusal");
    for (reason, retryable) in [
        ("in_doubt", true),
        ("in_flight", false),
        ("internal", false),
    ] {
        let data = json!({"reason": reason, "retryable": retryable, "audit_id": "a"});
        assert!(
            !refusal.is_valid(&data),
            "{reason} with retryable {retryable}"
        );
    }
}

/// A repeat of a key whose first call got an upstream JSON-RPC error gets that error again,
/// with `replayed: true` and the replay's own audit id (src/pipeline.rs, `replay`). The replay
/// needs live upstreams to run, so the data is built here the way the README describes it.
#[test]
fn replayed_upstream_error_data_matches_the_schema() {
    let passthrough = def_validator("error-data.schema.json", "upstream_error");
    for data in [None, Some(json!({"field": "text"})), Some(json!([1, 2]))] {
        let first = GatewayError::UpstreamError {
            upstream: "social".into(),
            error: ErrorData::new(ErrorCode::INVALID_PARAMS, "bad arguments", data),
        }
        .to_error_data("0196f0c2-7a3e-7c1b-9d2e-5f4a3b2c1d0e");
        let mut replayed = first.data.unwrap();
        replayed["audit_id"] = json!("0196f0c2-7a3e-7c1b-9d2e-5f4a3b2c1d0f");
        replayed["replayed"] = json!(true);
        assert_valid(
            &validator("error-data.schema.json"),
            &replayed,
            "replayed error data",
        );
        assert_valid(
            &passthrough,
            &replayed,
            "replayed error data as upstream_error",
        );
        replayed["replayed"] = json!(false);
        assert!(
            !passthrough.is_valid(&replayed),
            "replayed is only ever true"
        );
    }
}
