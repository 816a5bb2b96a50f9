//! Background work of a running gateway: the budget feed, the audit-gap rule, key pruning,
//! audit retention, the watch on audit writes nobody waits for.

use std::sync::Arc;
use std::time::Duration;

use crate::budget::Budget;
use crate::clock::{Clock, Millis};
use crate::journal::{HardStopKind, Store};
use crate::safety::SafetyState;
use crate::slo::SloSet;

/// Settled idempotency keys are kept at least this long: the policy's longest SLO window.
const KEY_RETENTION: Duration = Duration::from_secs(28 * 86_400);
/// How often old keys are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Audit records deleted per retention transaction: bounds how long one batch holds the
/// writer (call commits queue behind it) to a few tens of milliseconds.
pub const RETENTION_BATCH: u64 = 10_000;
/// How often audit retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// How often alerts and bands are re-evaluated.
pub const TICK_EVERY: Duration = Duration::from_millis(500);
/// How often the budget snapshot is saved.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(30);

/// How often the count of failed unacknowledged audit writes is checked.
const UNRECORDED_EVERY: Duration = Duration::from_secs(1);

/// Writes what the journal refused earlier once it works again, and trips a
/// `journal_failure` hard stop when an audit write nobody waited for (a read-only call's, an
/// unknown tool's) failed: no caller saw that error, so without this watch a journal that
/// cannot record would go unnoticed while only such calls come in.
pub fn spawn_unrecorded_watch(
    journal: Arc<dyn Store>,
    safety: Arc<SafetyState>,
    clock: Arc<dyn Clock>,
) {
    tokio::spawn(async move {
        let mut seen = 0;
        let mut tick = tokio::time::interval(UNRECORDED_EVERY);
        loop {
            tick.tick().await;
            // What the journal refused before (hard stops held in memory, outcomes it could
            // not settle) goes in as soon as it takes writes again.
            safety.write_backlog(journal.as_ref(), clock.now_ms()).await;
            let failed = journal.write_stats().unrecorded;
            if failed > seen {
                let reason = format!(
                    "{} audit records of calls nobody waited on (read-only calls, unknown \
                     tools) failed to commit; see the log for the journal's error; side effects \
                     are refused until an operator has checked the journal and cleared this stop",
                    failed - seen
                );
                safety
                    .trip_journal_failure(journal.as_ref(), reason, clock.now_ms())
                    .await;
                seen = failed;
            }
        }
    });
}

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

/// What one retention run deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionRun {
    pub deleted: u64,
    pub batches: u64,
    /// Seq of the oldest kept record after the run (when anything was deleted).
    pub oldest_seq: Option<u64>,
}

/// Deletes audit records older than `now_ms - keep`, oldest first, `batch` per transaction
/// through the journal writer (each batch sealed by an `audit.prune` record), until nothing
/// old is left. Call commits interleave between batches.
pub async fn prune_audit(
    journal: &dyn Store,
    now_ms: Millis,
    keep: Duration,
    batch: u64,
) -> Result<RetentionRun, crate::journal::JournalError> {
    let before = now_ms.saturating_sub(keep.as_millis() as Millis);
    let mut run = RetentionRun::default();
    loop {
        let p = journal.prune_audit(before, now_ms, batch).await?;
        if p.deleted == 0 {
            return Ok(run);
        }
        run.deleted += p.deleted;
        run.batches += 1;
        run.oldest_seq = p.through.map(|(s, _)| s + 1);
        if p.deleted < batch {
            return Ok(run);
        }
        tokio::task::yield_now().await;
    }
}

/// Runs audit retention hourly (first at start-up): records older than `keep` go.
pub fn spawn_audit_retention(journal: Arc<dyn Store>, clock: Arc<dyn Clock>, keep: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RETENTION_EVERY);
        loop {
            tick.tick().await;
            match prune_audit(journal.as_ref(), clock.now_ms(), keep, RETENTION_BATCH).await {
                Ok(r) if r.deleted == 0 => {}
                Ok(r) => tracing::info!(
                    deleted = r.deleted,
                    batches = r.batches,
                    oldest_seq = r.oldest_seq,
                    retention = %crate::config::format_duration(keep),
                    "audit retention: deleted records older than the retention period; the first kept record's prev_hash is the chain's anchor"
                ),
                Err(e) => tracing::warn!(error = %e, "audit retention failed; will retry"),
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
            let (stop, rec) = crate::safety::system_stop(HardStopKind::AuditGap, reason, now);
            if let Err(e) = safety.trip(journal.as_ref(), stop, rec).await {
                tracing::error!(error = %e, "could not record an audit-gap hard stop");
            }
        }
    });
}
