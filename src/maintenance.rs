//! Background work of a running gateway: the budget feed, the audit-gap rule, key pruning.

use std::sync::Arc;
use std::time::Duration;

use crate::budget::Budget;
use crate::call::FailureClass;
use crate::clock::Clock;
use crate::journal::{AuditRecord, HardStop, HardStopKind, Store};
use crate::safety::SafetyState;
use crate::slo::SloSet;

/// Settled idempotency keys are kept at least this long: the policy's longest SLO window.
const KEY_RETENTION: Duration = Duration::from_secs(28 * 86_400);
/// How often old keys are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How often alerts and bands are re-evaluated.
pub const TICK_EVERY: Duration = Duration::from_millis(500);
/// How often the budget snapshot is saved.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(30);

/// Prunes settled keys older than the longest SLO window (at least 28 days), hourly.
pub fn spawn_key_pruning(journal: Arc<dyn Store>, clock: Arc<dyn Clock>, slos: &SloSet) {
    let keep = slos
        .slos
        .iter()
        .map(|s| s.window)
        .max()
        .unwrap_or(KEY_RETENTION)
        .max(KEY_RETENTION);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PRUNE_EVERY);
        loop {
            tick.tick().await;
            let before = clock.now_ms() - keep.as_millis() as i64;
            match journal.prune_keys(before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    pruned = n,
                    "pruned settled idempotency keys older than the longest SLO window"
                ),
                Err(e) => tracing::warn!(error = %e, "idempotency key pruning failed"),
            }
        }
    });
}

/// Feeds committed writes into the budgets, ticks alerts, and enforces the audit-gap rule.
pub fn spawn_budget(
    budget: Arc<Budget>,
    journal: Arc<dyn Store>,
    safety: Arc<SafetyState>,
    clock: Arc<dyn Clock>,
    slos: &SloSet,
) {
    let feed = journal.subscribe();
    let stops = safety.clone();
    tokio::spawn(budget.clone().run(
        feed,
        journal.clone(),
        clock.clone(),
        move || stops.active().as_ref().clone(),
        TICK_EVERY,
        SNAPSHOT_EVERY,
    ));
    let Some((slo, below)) = slos.hard_stops.audit_completeness.clone() else {
        return;
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            let now = clock.now_ms();
            let Some((sli, valid, min_events)) = budget.sli(&slo, now) else {
                continue;
            };
            let active = safety
                .active()
                .iter()
                .any(|s| s.kind == HardStopKind::AuditGap);
            if sli >= below || valid < min_events || active {
                continue;
            }
            let reason = format!(
                "audit completeness ({slo}) is {:.3}% over {valid} side effects, below {:.1}%",
                sli * 100.0,
                below * 100.0
            );
            let mut rec = AuditRecord::operator("hard_stop.trip", now, "toolgate", &reason);
            rec.failure_class = Some(FailureClass::ToolFailure);
            let stop = HardStop::new(
                HardStopKind::AuditGap,
                None,
                None,
                None,
                reason,
                &rec.id,
                now,
            );
            if let Err(e) = safety.trip(journal.as_ref(), stop, rec).await {
                tracing::error!(error = %e, "could not record an audit-gap hard stop");
            }
        }
    });
}
