//! Every way a call ends without a fresh upstream result: a replay from the journal, a
//! refusal, a tripped hard stop, a journal that cannot record.

use rmcp::model::{CallToolResponse, CallToolResult, ErrorData};
use serde_json::{Map, Value, json};

use super::record::{CallCtx, proof};
use super::{Answer, Pipeline, respond};
use crate::call::{Denial, FailureClass};
use crate::error::GatewayError;
use crate::journal::{HardStop, HardStopKind, JournalError, KeyRecord, KeyState, Outcome};

impl Pipeline {
    /// Answers from the journal: no upstream call, a fresh audit record marked replayed.
    pub(super) async fn replay(&self, mut cx: CallCtx, k: KeyRecord) -> Answer {
        cx.attempt = Some(k.attempt);
        let stored = k.result.unwrap_or(Value::Null);
        let result: Option<CallToolResult> = stored
            .get("result")
            .and_then(|r| serde_json::from_value(r.clone()).ok());
        let (outcome, class) = match (k.state, &result) {
            (KeyState::Succeeded, _) => (Outcome::Success, None),
            (_, Some(_)) => (Outcome::ErrorResult, Some(FailureClass::PlatformRejected)),
            _ => (Outcome::ErrorResult, Some(FailureClass::ToolFailure)),
        };
        let mut rec = cx.record(
            outcome,
            class,
            Some(format!("replayed: key is {}", k.state.as_str())),
        );
        rec.replayed = true;
        if let (Some(r), Some(p)) = (&result, &cx.policy) {
            rec.proof = proof(r, &p.proof);
        }
        if let Err(e) = self.journal.append(rec).await {
            self.journal_failed(&cx, "a replay", &e).await;
        }
        match result {
            Some(r) => respond(
                Ok(CallToolResponse::Complete(r)),
                &cx,
                Some((k.attempt, true)),
            ),
            None => {
                let mut e: ErrorData = stored
                    .get("error")
                    .and_then(|e| serde_json::from_value(e.clone()).ok())
                    .unwrap_or_else(|| ErrorData::internal_error("stored result is missing", None));
                let mut data = match e.data.take() {
                    Some(Value::Object(m)) => m,
                    Some(other) => [("upstream_data".to_string(), other)].into_iter().collect(),
                    None => Map::new(),
                };
                data.insert("upstream".into(), json!(cx.upstream));
                data.insert("audit_id".into(), json!(cx.audit_id));
                data.insert("replayed".into(), json!(true));
                e.data = Some(Value::Object(data));
                Err(e)
            }
        }
    }

    /// Refuses with an audit record; a wrong-account or cross-tenant attempt also trips a hard stop.
    pub(super) async fn refuse(&self, cx: CallCtx, d: Denial) -> Answer {
        if d.reason.is_safety_event() && self.cfg.safety.hard_stop_on_wrong_account {
            return self.trip(cx, HardStopKind::WrongAccount, d).await;
        }
        let rec = cx.record(
            Outcome::Refused,
            Some(FailureClass::PolicyBlocked),
            Some(format!("{}: {}", d.reason.as_str(), d.detail)),
        );
        if let Err(e) = self.journal.append(rec).await {
            self.journal_failed(&cx, "a refusal", &e).await;
        }
        tracing::info!(tenant = %cx.tenant, tool = %cx.tool, audit_id = %cx.audit_id, reason = d.reason.as_str(), detail = %d.detail, "call refused");
        Err(GatewayError::Refused(d).to_error_data(&cx.audit_id))
    }

    /// Refuses and trips a durable hard stop, recorded with the refusal in one transaction.
    pub(super) async fn trip(&self, cx: CallCtx, kind: HardStopKind, d: Denial) -> Answer {
        let rec = cx.record(
            Outcome::Refused,
            Some(FailureClass::PolicyBlocked),
            Some(format!("{}: {}", d.reason.as_str(), d.detail)),
        );
        let target = (kind == HardStopKind::SpamLoop)
            .then(|| cx.target.clone())
            .flatten();
        let stop = HardStop::new(
            kind,
            Some(cx.tenant.clone()),
            cx.account.clone(),
            target,
            d.detail.clone(),
            &cx.audit_id,
            cx.now_ms,
        );
        // Refuse either way: failing to record a safety event must not let the call through
        // (the stop holds from memory), and the failure stops every side effect.
        if let Err(e) = self.safety.trip(self.journal.as_ref(), stop, rec).await {
            self.journal_failed(&cx, "a hard stop", &e).await;
        }
        Err(GatewayError::Refused(d).to_error_data(&cx.audit_id))
    }

    /// The journal failed before anything was sent: refuse rather than act unrecorded.
    pub(super) async fn fail_closed(&self, cx: CallCtx, why: String) -> Answer {
        tracing::error!(audit_id = %cx.audit_id, error = %why, "journal unavailable; side effect refused");
        let e = GatewayError::Internal(format!("journal unavailable, nothing was sent: {why}"));
        self.journal.append_later(cx.record(
            Outcome::Failed,
            Some(FailureClass::ToolFailure),
            Some(e.to_string()),
        ));
        Err(e.to_error_data(&cx.audit_id))
    }

    /// A write recording a call failed, so a call (perhaps a side effect that ran) has no
    /// audit record. Fail closed: trip a `journal_failure` hard stop, held in memory if the
    /// journal cannot take it either, which refuses every side effect until an operator has
    /// looked and cleared it. One such stop at a time.
    pub(super) async fn journal_failed(&self, cx: &CallCtx, what: &str, e: &JournalError) {
        tracing::error!(audit_id = %cx.audit_id, tenant = %cx.tenant, tool = %cx.tool, error = %e, "could not record {what}");
        let reason = format!(
            "the journal could not record {what} (audit record {}): {e}; side effects are \
             refused until an operator has checked the journal and cleared this stop",
            cx.audit_id
        );
        self.safety
            .trip_journal_failure(self.journal.as_ref(), reason, self.clock.now_ms())
            .await;
    }
}
