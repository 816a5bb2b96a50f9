//! Operator endpoints for safety: list and clear hard stops, resolve in-doubt idempotency keys.

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{AdminState, Body, Who, error_response, json_response};

use crate::journal::{AuditRecord, Proof, Resolution};

/// `GET /v1/hard-stops[?all=true]`: the admin sees every tenant's, a tenant its own and the
/// stops tied to no tenant.
pub fn list_hard_stops(state: &AdminState, who: &Who, query: &str) -> http::Response<Body> {
    let all = query.split('&').any(|kv| kv == "all=true" || kv == "all=1");
    match state.journal.hard_stops(all) {
        Ok(mut stops) => {
            // A stop the journal could not record is enforced from memory: list it too.
            for s in state.safety.active().iter() {
                if !stops.iter().any(|d| d.id == s.id) {
                    stops.push(s.clone());
                }
            }
            let visible: Vec<_> = stops
                .into_iter()
                // A stop tied to no tenant (journal_failure, audit_gap) refuses or freezes
                // every tenant's calls, so every tenant may see it; its reason names no tenant.
                .filter(|s| {
                    who.sees(s.tenant.as_deref())
                        || (s.tenant.is_none() && matches!(who, Who::Tenant(_)))
                })
                .collect();
            json_response(StatusCode::OK, &json!({"hard_stops": visible}))
        }
        Err(e) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "journal_error",
            &e.to_string(),
        ),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClearBody {
    by: String,
    reason: String,
}

/// `POST /v1/hard-stops/{id}/clear` (admin): clears one hard stop, audited.
pub async fn clear_hard_stop(state: &AdminState, id: &str, body: &[u8]) -> http::Response<Body> {
    let req: ClearBody = match parse(body) {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    if req.by.trim().is_empty() || req.reason.trim().is_empty() {
        return error_response(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "`by` and `reason` must name who clears it and why",
        );
    }
    let now = state.clock.now_ms();
    let mut audit = operator_record("hard_stop.clear", now, &req.by, &req.reason);
    audit.target = Some(id.to_string());
    if let Some(stop) = state.safety.active().iter().find(|s| s.id == id) {
        audit.tenant = stop.tenant.clone();
        audit.account = stop.account.clone();
    }
    // A stop the journal refused when it tripped goes in first, so the clear has a stop to
    // clear and the journal keeps why it tripped.
    state
        .safety
        .write_backlog(state.journal.as_ref(), now)
        .await;
    match state.journal.clear(id, &req.by, &req.reason, audit).await {
        Ok(Some(stop)) => {
            state.safety.remove_stop(id);
            tracing::warn!(hard_stop = %id, by = %req.by, reason = %req.reason, "hard stop cleared by an operator");
            json_response(StatusCode::OK, &json!({"cleared": stop}))
        }
        // Still held in memory only: the journal has refused it and the clear alike.
        Ok(None) if state.safety.active().iter().any(|s| s.id == id) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "journal_error",
            "this hard stop is not in the journal yet (the journal refused it when it \
             tripped, and still does): the clear cannot be recorded, so the stop holds",
        ),
        Ok(None) => error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no active hard stop with id {id}"),
        ),
        Err(e) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "journal_error",
            &e.to_string(),
        ),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    outcome: String,
    #[serde(default)]
    proof: Proof,
    by: String,
    reason: String,
}

/// `POST /v1/idempotency/{tenant}/{key}/resolve` (admin): settles an in-doubt key.
/// `happened` makes later retries replay a result carrying the proof; `not_happened` lets the
/// runner execute the call again.
pub async fn resolve_key(
    state: &AdminState,
    tenant: &str,
    key: &str,
    body: &[u8],
) -> http::Response<Body> {
    let req: ResolveBody = match parse(body) {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let happened = match req.outcome.as_str() {
        "happened" => true,
        "not_happened" => false,
        other => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                &format!("outcome must be happened or not_happened, not {other:?}"),
            );
        }
    };
    if req.by.trim().is_empty() || req.reason.trim().is_empty() {
        return error_response(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "`by` and `reason` must name who resolves it and why",
        );
    }
    let now = state.clock.now_ms();
    let mut audit = operator_record(
        "idempotency.resolve",
        now,
        &req.by,
        &format!("{}: {}", req.outcome, req.reason),
    );
    audit.tenant = Some(tenant.into());
    audit.idempotency_key = Some(key.into());
    audit.proof = req.proof.clone();
    let result = happened.then(|| {
        let structured =
            json!({"resolved_by_operator": true, "outcome": "happened", "proof": req.proof});
        json!({"result": {
            "content": [{"type": "text", "text": structured.to_string()}],
            "structuredContent": structured,
            "isError": false,
            "_meta": {"proof": req.proof}
        }})
    });
    let resolution = Resolution {
        tenant: tenant.into(),
        key: key.into(),
        happened,
        result,
        audit,
        now_ms: now,
    };
    match state.journal.resolve(resolution).await {
        Ok(Some(k)) => json_response(
            StatusCode::OK,
            &json!({"tenant": k.tenant, "key": k.key, "state": k.state, "attempt": k.attempt}),
        ),
        Ok(None) => error_response(
            StatusCode::CONFLICT,
            "not_in_doubt",
            &format!("key {key:?} of tenant {tenant:?} is not in doubt (or does not exist)"),
        ),
        Err(e) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "journal_error",
            &e.to_string(),
        ),
    }
}

fn operator_record(action: &str, now: i64, by: &str, reason: &str) -> AuditRecord {
    AuditRecord::operator(action, now, by, reason)
}

#[allow(clippy::result_large_err)] // the error is the HTTP answer itself, built once per request
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, http::Response<Body>> {
    serde_json::from_slice(body).map_err(|e| invalid_body(&format!("invalid JSON body: {e}")))
}

fn invalid_body(message: &str) -> http::Response<Body> {
    error_response(StatusCode::BAD_REQUEST, "invalid_body", message)
}
