//! Budget endpoints: the status document, runner events, feature flags.

use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AdminState, Body, Who, error_response, json_response};
use crate::budget::events::{self, Detail};
use crate::budget::{Band, Scope};

use crate::config::Stage;
use crate::journal::{AuditRecord, HardStop, HardStopKind, Proof, Resolution};
use crate::slo::EventKind;

/// `GET /v1/status` (and the page and metrics): the admin sees everything, a tenant its own.
pub fn status(state: &AdminState, who: &Who) -> Value {
    let now = state.clock.now_ms();
    let scope = match who {
        Who::Tenant(t) => Scope::Tenant(t.clone()),
        _ => Scope::All,
    };
    let active = state.safety.active();
    let all = state.journal.hard_stops(true).unwrap_or_default();
    let mut doc = state.budget.status(
        &scope,
        &active,
        &all,
        state.journal.in_doubt().unwrap_or(0),
        now,
    );
    if matches!(scope, Scope::Tenant(_)) {
        doc["in_doubt"] = Value::Null;
    }
    doc
}

/// `POST /v1/events`: a JSON array of runner events; each is accepted, a duplicate, or
/// rejected with its own error, and nothing else in the batch is lost.
pub async fn ingest(state: &AdminState, who: &Who, body: &[u8]) -> http::Response<Body> {
    let batch: Vec<Value> = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(a)) => a,
        Ok(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "the body must be a JSON array of events",
            );
        }
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                &format!("invalid JSON: {e}"),
            );
        }
    };
    let now = state.clock.now_ms();
    let caller = match who {
        Who::Tenant(t) => Some(t.as_str()),
        _ => None,
    };
    let mut results: Vec<Value> = Vec::with_capacity(batch.len());
    let mut valid = Vec::new();
    for (i, v) in batch.iter().enumerate() {
        match events::parse(v, caller, now) {
            Ok(e) => {
                results.push(json!({"index": i, "id": e.id, "status": "pending"}));
                valid.push((i, e));
            }
            Err(msg) => results
                .push(json!({"index": i, "id": v.get("id"), "status": "rejected", "error": msg})),
        }
    }
    let stored = state
        .journal
        .record_events(
            valid
                .iter()
                .map(|(_, e)| crate::budget::stored(e))
                .collect(),
        )
        .await;
    let seqs = match stored {
        Ok(s) => s,
        Err(e) => {
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "journal_error",
                &format!("events not stored: {e}"),
            );
        }
    };
    for ((i, e), seq) in valid.iter().zip(seqs) {
        if seq.is_none() {
            results[*i]["status"] = json!("duplicate");
            continue;
        }
        results[*i]["status"] = json!("accepted");
        effects(state, e, now).await;
    }
    let count = |s: &str| results.iter().filter(|r| r["status"] == s).count();
    json_response(
        StatusCode::OK,
        &json!({"accepted": count("accepted"), "duplicates": count("duplicate"), "rejected": count("rejected"), "results": results}),
    )
}

/// What an accepted event does beyond counting: a verified post resolves its in-doubt key,
/// a detected wrong-account action trips a hard stop.
async fn effects(state: &AdminState, e: &events::RunnerEvent, now: i64) {
    match (&e.kind, &e.detail) {
        (
            EventKind::PostVerified,
            Detail::PostVerified {
                idempotency_key: Some(key),
                latency_ms: Some(_),
                ..
            },
        ) => {
            let mut audit = AuditRecord::operator(
                "idempotency.resolve",
                now,
                "post_verified event",
                &format!("happened: verified visible (event {})", e.id),
            );
            audit.tenant = Some(e.tenant.clone());
            audit.idempotency_key = Some(key.clone());
            let result = json!({"result": {"content": [{"type": "text", "text": "verified visible"}],
                "structuredContent": {"resolved_by": "post_verified", "event_id": e.id}, "isError": false}});
            let r = Resolution {
                tenant: e.tenant.clone(),
                key: key.clone(),
                happened: true,
                result: Some(result),
                audit,
                now_ms: now,
            };
            if let Ok(Some(k)) = state.journal.resolve(r).await {
                tracing::info!(tenant = %k.tenant, key = %k.key, "in-doubt key resolved by a post_verified event");
            }
        }
        (EventKind::WrongAccountDetected, Detail::WrongAccount { account, detail })
            if state.cfg.safety.hard_stop_on_wrong_account =>
        {
            let mut audit = AuditRecord::operator(
                "hard_stop.trip",
                now,
                "wrong_account_detected event",
                &format!("wrong_account_detected: {detail}"),
            );
            audit.tenant = Some(e.tenant.clone());
            audit.account = Some(account.clone());
            let reason = format!("wrong-account action detected: {detail}");
            let stop = HardStop::new(
                HardStopKind::WrongAccount,
                Some(e.tenant.clone()),
                Some(account.clone()),
                None,
                reason,
                &audit.id,
                now,
            );
            if let Err(err) = state.safety.trip(state.journal.as_ref(), stop, audit).await {
                tracing::error!(error = %err, "could not record a hard stop");
            }
        }
        _ => {}
    }
}

/// `GET /v1/flags`.
pub fn flags(state: &AdminState) -> Value {
    let flags: Vec<Value> = state
        .flags
        .all()
        .into_iter()
        .map(|(c, on)| json!({"capability": c, "enabled": on}))
        .collect();
    json!({"flags": flags})
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlagBody {
    enabled: bool,
    by: String,
    reason: String,
    approved_by: Option<String>,
}

/// `PUT /v1/flags/{capability}` (admin): turns a new capability's flag on or off, audited.
/// In YELLOW or RED, turning one on needs `approved_by` (§8.1).
pub async fn set_flag(state: &AdminState, capability: &str, body: &[u8]) -> http::Response<Body> {
    let req: FlagBody = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                &format!("invalid JSON body: {e}"),
            );
        }
    };
    match state.cfg.capabilities.get(capability) {
        None => {
            return error_response(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("capability {capability:?} is not declared under capabilities:"),
            );
        }
        Some(c) if c.stage == Stage::Established => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "no_flag",
                "established capabilities have no feature flag",
            );
        }
        Some(_) => {}
    }
    if req.by.trim().is_empty() || req.reason.trim().is_empty() {
        return error_response(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "`by` and `reason` must say who changes the flag and why",
        );
    }
    let band = state.budget.band();
    let approval = req
        .approved_by
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty());
    if req.enabled && band != Band::Green && approval.is_none() {
        return error_response(
            StatusCode::CONFLICT,
            "approval_required",
            &format!(
                "reliability is {}: enabling a new capability needs \"approved_by\" (§8.1)",
                band.as_str()
            ),
        );
    }
    let now = state.clock.now_ms();
    let mut audit = AuditRecord::operator("flag.set", now, &req.by, "");
    audit.capability = Some(capability.to_string());
    audit.reason = Some(format!(
        "{} while {}: {}{}",
        if req.enabled { "enabled" } else { "disabled" },
        band.as_str(),
        req.reason,
        approval
            .map(|a| format!(" (approved by {a})"))
            .unwrap_or_default()
    ));
    audit.proof = Proof::default();
    match state.journal.set_flag(capability, req.enabled, audit).await {
        Ok(()) => {
            state.flags.set(capability, req.enabled);
            tracing::warn!(%capability, enabled = req.enabled, by = %req.by, band = band.as_str(), "feature flag changed");
            json_response(
                StatusCode::OK,
                &json!({"capability": capability, "enabled": req.enabled, "band": band}),
            )
        }
        Err(e) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "journal_error",
            &e.to_string(),
        ),
    }
}
