//! The one function every `tools/call` runs through, top to bottom.
//!
//! Side effects: resolve the tool → binding gate → idempotency gate → status gate → is the
//! upstream connected? → spam-loop gate → durable intent → forward → durable outcome + audit
//! record → respond. Read-only calls skip the gates and get a batched audit record. Every path
//! ends in exactly one audit record.

mod malformed;
mod record;
mod refusal;
mod resolve;

use std::sync::Arc;

use rmcp::model::{CallToolRequestParams, CallToolResponse, ErrorData, RequestMetaObject};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub use malformed::params_fault;
use record::{CallCtx, classify, hop_meta, stamp};
pub use record::{META_ATTEMPT, META_AUDIT_FAILED, META_AUDIT_ID, META_REPLAYED, META_UPSTREAM};
use resolve::{Resolved, resolve};

use crate::budget::Budget;
use crate::call::{Caller, Denial, FailureClass, Reason};
use crate::clock::{Clock, rfc3339};
use crate::config::Config;
use crate::error::{GatewayError, UpstreamFault};
use crate::flags::Flags;
use crate::journal::{Claim, HardStopKind, Intent, Outcome, RecordKind, Settle, Store};
use crate::policy::freeze::{self, Freeze};
use crate::policy::{binding, idempotency, idempotency::Permit, meta, spam};
use crate::safety::{SafetyState, Unwritten};
use crate::upstream::Upstreams;

/// Shared state of the call path.
pub struct Pipeline {
    cfg: Arc<Config>,
    upstreams: Arc<Upstreams>,
    journal: Arc<dyn Store>,
    safety: Arc<SafetyState>,
    budget: Arc<Budget>,
    flags: Arc<Flags>,
    clock: Arc<dyn Clock>,
}

type Answer = Result<CallToolResponse, ErrorData>;

impl Pipeline {
    /// The shared state a call reads: config, upstreams, journal, and the gates' inputs.
    pub fn new(
        cfg: Arc<Config>,
        upstreams: Arc<Upstreams>,
        journal: Arc<dyn Store>,
        safety: Arc<SafetyState>,
        budget: Arc<Budget>,
        flags: Arc<Flags>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            cfg,
            upstreams,
            journal,
            safety,
            budget,
            flags,
            clock,
        }
    }

    /// Runs one `tools/call` for `caller`. `meta` is the request's `_meta` (rmcp lifts it out
    /// of the params); `ct` fires when the runner cancels the request.
    pub async fn call_tool(
        self: &Arc<Self>,
        caller: &Caller,
        params: CallToolRequestParams,
        meta: RequestMetaObject,
        ct: CancellationToken,
    ) -> Answer {
        let mut cx = CallCtx::new(&caller.tenant, &params.name, self.clock.now_ms());

        // 1. Resolve: which upstream owns the exposed name, and how is the tool classified?
        //    A name of an upstream that is down is not unknown: its call fails retryably.
        let (upstream, original) = match resolve(&self.cfg, &self.upstreams.catalog(), &params.name)
        {
            Resolved::Tool {
                upstream,
                original,
                policy,
            } => {
                cx.policy = Some(policy);
                (upstream, original)
            }
            Resolved::Down(candidates) => return Err(self.unreachable(cx, &candidates)),
            Resolved::Unknown => return Err(self.unknown(cx)),
        };
        cx.upstream = Some(self.upstreams.link(upstream).cfg.name.clone());
        let mut forwarded = params;
        forwarded.name = original.to_string().into();
        forwarded.meta = None;

        self.job_start(&cx, &meta);
        if !cx.side_effect() {
            return self.read_only(cx, upstream, forwarded, meta, ct).await;
        }
        // A side effect runs to completion in its own task even if the runner goes away,
        // so its key always settles and its audit record is always written.
        let this = self.clone();
        let audit_id = cx.audit_id.clone();
        match tokio::spawn(async move { this.side_effect(cx, upstream, forwarded, meta, ct).await })
            .await
        {
            Ok(answer) => answer,
            Err(e) => Err(
                GatewayError::Internal(format!("side-effect task failed: {e}"))
                    .to_error_data(&audit_id),
            ),
        }
    }

    /// A job's first tool call with `_meta.job_id` and `_meta.scheduled_at` is its start (SLO-04);
    /// the journal keeps only the first per job. Publishing tools start publish jobs, read-only
    /// tools engagement-ingest jobs; other calls do not say which kind of job they belong to.
    fn job_start(&self, cx: &CallCtx, meta: &RequestMetaObject) {
        let Ok(m) = meta::parse(&meta.0.0) else {
            return;
        };
        let (Some(job), Some(scheduled)) = (m.job_id, m.scheduled_at) else {
            return;
        };
        let Some(policy) = &cx.policy else { return };
        let kind = match (policy.side_effect, policy.action) {
            (true, crate::config::Action::Publish) => "publish",
            (false, _) => "engagement_ingest",
            _ => return,
        };
        let event = json!({"id": format!("job:{job}"), "type": "job_started", "job_id": job, "kind": kind,
            "scheduled_at": scheduled, "started_at": rfc3339(cx.now_ms),
            "tags": {"platform": policy.platform, "lane": policy.lane, "action_type": policy.action}});
        match crate::budget::events::parse(&event, Some(&cx.tenant), cx.now_ms) {
            // Queued with the next commit; nothing waits on it.
            Ok(e) => drop(self.journal.record_events(vec![crate::budget::stored(&e)])),
            Err(e) => tracing::debug!(error = %e, "job start not derived"),
        }
    }

    /// A read-only call: forward, record (batched, not awaited), respond.
    async fn read_only(
        &self,
        cx: CallCtx,
        upstream: usize,
        params: CallToolRequestParams,
        meta: RequestMetaObject,
        ct: CancellationToken,
    ) -> Answer {
        let link = self.upstreams.link(upstream);
        // A read-only call runs in the runner's connection task (no spawn: the fast path),
        // so a runner that hangs up drops it mid-call; the guard still records it.
        let mut pending = Unanswered {
            journal: self.journal.as_ref(),
            cx: Some(cx),
        };
        let mut answer = link.call(params, hop_meta(meta), &ct).await;
        let cx = pending.cx.take().expect("taken only here");
        if let Err(GatewayError::Upstream {
            fault, retryable, ..
        }) = &mut answer
        {
            // Repeating a read-only call is harmless unless the runner itself gave up.
            *retryable = *fault != UpstreamFault::Cancelled;
        }
        let s = classify(&answer, &Default::default());
        self.journal
            .append_later(cx.record(s.outcome, s.failure_class, s.reason));
        respond(answer, &cx, None)
    }

    /// A side effect, gate by gate.
    async fn side_effect(
        self: Arc<Self>,
        mut cx: CallCtx,
        upstream: usize,
        params: CallToolRequestParams,
        meta: RequestMetaObject,
        ct: CancellationToken,
    ) -> Answer {
        let policy = cx.policy.clone().expect("resolved before dispatch");
        let args = params.arguments.clone().unwrap_or_default();
        cx.account = text(args.get(&policy.account_arg));
        cx.target = policy
            .target_arg
            .as_ref()
            .and_then(|a| spam::target_of(args.get(a)));
        let call_meta = match meta::parse(&meta.0.0) {
            Ok(m) => m,
            Err(d) => return self.refuse(cx, d).await,
        };
        cx.job_id = call_meta.job_id.clone();
        cx.episode_id = call_meta.episode_id.clone();
        // On every record of this call, refusals before the key gate included, so that a
        // postmortem can tie a refused attempt to the runner's job and retries.
        cx.key = call_meta.idempotency_key.clone();

        // 2. Binding gate: nothing acts while the journal cannot record (a `journal_failure`
        //    stop), a quarantined tenant acts on nothing, and the account must be the
        //    caller's own, on the tool's platform.
        if let Some(stop) = self.safety.journal_failure() {
            let d = Denial::new(
                Reason::JournalFailure,
                format!(
                    "hard stop {}: the journal failed to record a call; no side effect runs until an operator clears it",
                    stop.id
                ),
            );
            return self.refuse(cx, d).await;
        }
        if let Some(stop) = self.safety.quarantined(&cx.tenant) {
            let d = Denial::new(
                Reason::TenantQuarantined,
                format!(
                    "tenant is quarantined by hard stop {} until an operator clears it",
                    stop.id
                ),
            );
            return self.refuse(cx, d).await;
        }
        match binding::check(&self.cfg, &cx.tenant, &policy, &args, &call_meta) {
            Ok(bound) => cx.platform = bound.platform,
            Err(d) => return self.refuse(cx, d).await,
        }
        let account = cx.account.clone().unwrap_or_default();

        // 3. Idempotency gate.
        let Some(key) = call_meta.idempotency_key else {
            let d = Denial::new(
                Reason::MissingIdempotencyKey,
                "side-effect calls need _meta.idempotency_key (1–255 printable ASCII)",
            );
            return self.refuse(cx, d).await;
        };
        let fingerprint = idempotency::fingerprint(&cx.tool, &args, &account);
        cx.fingerprint = Some(fingerprint.clone());
        let stored = match self.journal.key(&cx.tenant, &key) {
            Ok(s) => s,
            Err(e) => return self.fail_closed(cx, e.to_string()).await,
        };
        match idempotency::check(stored.as_ref(), &fingerprint) {
            Ok(Permit::Execute) => {}
            Ok(Permit::Replay(k)) => return self.replay(cx, k).await,
            Err(d) => return self.refuse(cx, d).await,
        }

        // 4. Status gate: new capabilities freeze in RED or under a hard stop, run for canary
        //    tenants only in YELLOW, and need their feature flag.
        let capability = policy
            .capability
            .as_deref()
            .and_then(|c| self.cfg.capabilities.get(c).map(|k| (c, k.stage)));
        let stops = self.safety.active();
        let freeze = Freeze {
            capability,
            flag_enabled: capability.is_some_and(|(c, _)| self.flags.enabled(c)),
            band: self.budget.band(),
            hard_stop: stops.first().map(|s| s.id.as_str()),
            canary_tenant: self.cfg.tenant(&cx.tenant).is_some_and(|t| t.canary),
        };
        if let Err(d) = freeze::check(&freeze) {
            return self.refuse(cx, d).await;
        }

        // An upstream that is not connected gets nothing: answer before the spam gate counts
        // the call and before the key is claimed, so that a retry after recovery executes.
        if let Some(e) = self.upstreams.link(upstream).unreachable() {
            return Err(self.not_sent(cx, e).await);
        }

        // 5. Spam-loop gate: a watched tool needs a countable target (fail closed: a target
        //    the guard cannot count would slip past it); then an active spam hard stop, or one
        //    repeat too many, refuses.
        if let Some(arg) = &policy.target_arg
            && cx.target.is_none()
            && self.safety.watches(policy.action)
        {
            let d = Denial::new(
                Reason::InvalidTarget,
                format!(
                    "the target argument {arg:?} must be a non-empty string or a number: the spam-loop guard counts this tool's calls per target"
                ),
            );
            return self.refuse(cx, d).await;
        }
        let mut slot = None;
        if let Some(target) = cx.target.clone() {
            if let Some(stop) = self.safety.spam_stop(&account, &target) {
                let d = Denial::new(
                    Reason::SpamLoop,
                    format!(
                        "spam-loop hard stop {} is active for this account and target",
                        stop.id
                    ),
                );
                return self.refuse(cx, d).await;
            }
            match self
                .safety
                .reserve(&account, policy.action, &target, cx.now_ms)
            {
                Ok(s) => slot = s,
                Err(d) => return self.trip(cx, HardStopKind::SpamLoop, d).await,
            }
        }

        // 6. Durable intent: the key is `dispatching` on disk before anything is sent.
        let intent = Intent {
            tenant: cx.tenant.clone(),
            key: key.clone(),
            fingerprint: fingerprint.clone(),
            tool: cx.tool.clone(),
            account: Some(account),
            now_ms: cx.now_ms,
        };
        let attempt = match self.journal.claim(intent).await {
            Ok(Claim::Claimed { attempt }) => attempt,
            other => {
                if let Some(s) = slot {
                    self.safety.release(s);
                }
                return match other {
                    // Another call got there between our read and the claim.
                    Ok(Claim::Taken(k)) => match idempotency::check(Some(&k), &fingerprint) {
                        Ok(Permit::Replay(k)) => self.replay(cx, k).await,
                        Ok(Permit::Execute) => {
                            self.refuse(
                                cx,
                                Denial::new(
                                    Reason::InFlight,
                                    "the key changed state concurrently; retry",
                                ),
                            )
                            .await
                        }
                        Err(d) => self.refuse(cx, d).await,
                    },
                    Err(e) => self.fail_closed(cx, e.to_string()).await,
                    Ok(Claim::Claimed { .. }) => unreachable!("handled above"),
                };
            }
        };
        cx.attempt = Some(attempt);

        // 7. Forward.
        let answer = self
            .upstreams
            .link(upstream)
            .call(params, hop_meta(meta), &ct)
            .await;

        // 8. Durable outcome and audit record, in one transaction.
        let s = classify(&answer, &policy.proof);
        let mut rec = cx.record(s.outcome, s.failure_class, s.reason);
        rec.proof_missing = s.outcome == Outcome::Success && s.proof.is_empty();
        rec.proof = s.proof;
        let settle = Settle {
            tenant: cx.tenant.clone(),
            key,
            state: s.state,
            result: s.stored,
            audit: rec,
            now_ms: self.clock.now_ms(),
        };
        let recorded = self.journal.settle(settle).await;
        let mut answer = respond(answer, &cx, Some((attempt, false)));
        if let Err(e) = recorded {
            // The intent is durable, so the key stays `dispatching` and becomes `in_doubt` at
            // the next start: a retry is refused, never re-executed. The runner still gets
            // what happened, told that it went unrecorded.
            self.journal_failed(&cx, "a side effect's outcome", &e)
                .await;
            // Once the journal works again its key goes `in_doubt` with this record, as after
            // a crash, so an operator can resolve it (the runner holds the real result).
            let mut orphan = cx.record(
                Outcome::InDoubt,
                Some(FailureClass::ToolFailure),
                Some(
                    "journal_failure: the side effect ran, but its outcome could not be \
                     recorded (the runner got its result, marked toolgate/audit_failed); in \
                     doubt until an operator resolves the key"
                        .into(),
                ),
            );
            orphan.kind = RecordKind::Recovery;
            self.safety.defer(Unwritten::Outcome {
                tenant: cx.tenant.clone(),
                key: cx.key.clone().unwrap_or_default(),
                audit: Box::new(orphan),
            });
            if let Ok(CallToolResponse::Complete(r)) = &mut answer {
                r.meta
                    .get_or_insert_with(Default::default)
                    .insert(META_AUDIT_FAILED.into(), Value::Bool(true));
            }
        }
        answer
    }
}

/// The audit record of a read-only call whose runner went away while it was forwarded
/// (its future dropped before the answer): written on drop unless the call got that far.
struct Unanswered<'a> {
    journal: &'a dyn Store,
    cx: Option<CallCtx>,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if let Some(cx) = self.cx.take() {
            self.journal.append_later(
                cx.record(
                    Outcome::InDoubt,
                    Some(FailureClass::RunnerFailure),
                    Some(
                        "the runner closed the connection before the answer; the call may have \
                     reached the upstream"
                            .into(),
                    ),
                ),
            );
        }
    }
}

/// Stamps a forwarded answer or maps its error; one place for both call kinds.
fn respond(
    answer: Result<CallToolResponse, GatewayError>,
    cx: &CallCtx,
    attempt: Option<(u32, bool)>,
) -> Answer {
    let upstream = cx.upstream.as_deref().unwrap_or_default();
    match answer {
        Ok(mut response) => {
            stamp(&mut response, &cx.audit_id, upstream, attempt);
            Ok(response)
        }
        Err(e) => {
            tracing::info!(tenant = %cx.tenant, tool = %cx.tool, audit_id = %cx.audit_id, error = %e, "call failed");
            Err(e.to_error_data(&cx.audit_id))
        }
    }
}

/// A string argument (numbers are accepted as their decimal text).
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
