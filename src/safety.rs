//! Live safety state: the active hard stops and the spam-loop windows, rebuilt from the journal.
//!
//! The journal is the truth; this is its in-memory index, so that each call's gates read
//! memory instead of disk. Guards are synchronous and never held across `.await`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use dashmap::DashMap;

use crate::call::{Denial, FailureClass};
use crate::clock::Millis;
use crate::config::{Action, Config};
use crate::journal::{AuditRecord, HardStop, HardStopKind, JournalError, KeyState, Settle, Store};
use crate::policy::spam::{self, Limits};

type SpamKey = (String, Action, String);

/// Active hard stops and recent side effects per (account, action, target).
#[derive(Default)]
pub struct SafetyState {
    stops: RwLock<Arc<Vec<HardStop>>>,
    windows: DashMap<SpamKey, VecDeque<Millis>>,
    quarantine: bool,
    limits: Option<(Vec<Action>, Limits)>,
    /// Writes the journal refused, retried until it takes them (see [`Unwritten`]).
    backlog: Mutex<Vec<Unwritten>>,
}

/// A write the journal could not take when it happened, kept so that what happened reaches
/// the journal once it works again (retried every second by the maintenance watch, and
/// before an operator's clear).
#[derive(Debug, Clone)]
pub enum Unwritten {
    /// A hard stop enforced from memory only, with the record of what tripped it.
    Stop(Box<(HardStop, AuditRecord)>),
    /// A side effect that ran but whose outcome could not be settled: its key is still
    /// `dispatching` on disk. Written as `in_doubt` (what a crash leaves) with this record,
    /// so an operator can resolve it instead of it answering `in_flight` until a restart.
    Outcome {
        tenant: String,
        key: String,
        audit: Box<AuditRecord>,
    },
}

/// A slot taken in a spam window; give it back with [`SafetyState::release`] if the call does
/// not go ahead after all.
#[derive(Debug)]
pub struct Slot(SpamKey, Millis);

impl SafetyState {
    /// Loads active hard stops and re-fills the spam windows from recent dispatches.
    pub fn load(cfg: &Config, journal: &dyn Store, now: Millis) -> Result<Self, JournalError> {
        let limits = cfg.safety.spam_loop.as_ref().map(|s| {
            (
                s.actions.clone(),
                Limits {
                    max_repeats: s.max_repeats,
                    within_ms: s.within.as_millis() as Millis,
                },
            )
        });
        let state = Self {
            stops: RwLock::new(Arc::new(journal.hard_stops(false)?)),
            windows: DashMap::new(),
            quarantine: cfg.safety.quarantine_tenant && cfg.safety.hard_stop_on_wrong_account,
            limits,
            backlog: Mutex::default(),
        };
        if let Some((actions, l)) = &state.limits {
            let names: Vec<String> = actions.iter().map(|a| action_name(*a)).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            for d in journal.dispatches_since(now - l.within_ms, &names)? {
                // Folded again: journals written before targets were folded hold them raw.
                let Some(target) = spam::target_key(&d.target) else {
                    continue;
                };
                if let Some(a) = actions.iter().find(|a| action_name(**a) == d.action) {
                    state
                        .windows
                        .entry((d.account, *a, target))
                        .or_default()
                        .push_back(d.at_ms);
                }
            }
        }
        Ok(state)
    }

    /// Active hard stops.
    pub fn active(&self) -> Arc<Vec<HardStop>> {
        self.stops.read().expect("stops lock").clone()
    }

    /// The wrong-account hard stop that quarantines `tenant`, if any.
    pub fn quarantined(&self, tenant: &str) -> Option<HardStop> {
        if !self.quarantine {
            return None;
        }
        self.active()
            .iter()
            .find(|s| s.kind == HardStopKind::WrongAccount && s.tenant.as_deref() == Some(tenant))
            .cloned()
    }

    /// The spam-loop hard stop on (account, target), if any. `target` is folded
    /// ([`spam::target_key`]); so is each stop's, which older journals hold raw.
    pub fn spam_stop(&self, account: &str, target: &str) -> Option<HardStop> {
        self.active()
            .iter()
            .find(|s| {
                s.kind == HardStopKind::SpamLoop
                    && s.account.as_deref() == Some(account)
                    && s.target.as_deref().and_then(spam::target_key).as_deref() == Some(target)
            })
            .cloned()
    }

    /// Whether the spam-loop guard counts `action` (then a tool's target must be countable).
    pub fn watches(&self, action: Action) -> bool {
        self.limits
            .as_ref()
            .is_some_and(|(actions, _)| actions.contains(&action))
    }

    pub fn add_stop(&self, stop: HardStop) {
        let mut guard = self.stops.write().expect("stops lock");
        let mut next = guard.as_ref().clone();
        next.push(stop);
        *guard = Arc::new(next);
    }

    pub fn remove_stop(&self, id: &str) {
        let mut guard = self.stops.write().expect("stops lock");
        let next: Vec<HardStop> = guard.iter().filter(|s| s.id != id).cloned().collect();
        *guard = Arc::new(next);
    }

    /// Records a hard stop with the audit record of what tripped it, and enforces it. It is
    /// enforced from memory even when the journal cannot record it (fail closed: a stop
    /// that is not written still stops), kept in the backlog to be written once the journal
    /// works, and the journal's error is returned.
    pub async fn trip(
        &self,
        journal: &dyn Store,
        stop: HardStop,
        audit: AuditRecord,
    ) -> Result<(), JournalError> {
        self.add_stop(stop.clone());
        self.write_stop(journal, stop, audit).await
    }

    async fn write_stop(
        &self,
        journal: &dyn Store,
        stop: HardStop,
        audit: AuditRecord,
    ) -> Result<(), JournalError> {
        let written = journal.trip(stop.clone(), audit.clone()).await;
        tracing::error!(hard_stop = %stop.id, kind = ?stop.kind, tenant = ?stop.tenant, account = ?stop.account, reason = %stop.reason, recorded = written.is_ok(), "HARD STOP tripped");
        if written.is_err() {
            self.defer(Unwritten::Stop(Box::new((stop, audit))));
        }
        written
    }

    /// Trips the `journal_failure` hard stop unless one holds already: a write recording a
    /// call failed (`reason` says which). Its own write most likely fails too; it holds from
    /// memory either way.
    pub async fn trip_journal_failure(&self, journal: &dyn Store, reason: String, now: Millis) {
        if let Some((stop, rec)) = self.hold_journal_failure(reason, now) {
            let _ = self.write_stop(journal, stop, rec).await;
        }
    }

    /// Puts a `journal_failure` stop in force now, before anything else can run, and leaves
    /// its write to the backlog (the maintenance watch writes it within a second). For
    /// start-up, where nothing may be served ahead of it.
    pub fn hold_journal_failure_now(&self, reason: String, now: Millis) {
        if let Some((stop, rec)) = self.hold_journal_failure(reason, now) {
            tracing::error!(hard_stop = %stop.id, reason = %stop.reason, "HARD STOP tripped");
            self.defer(Unwritten::Stop(Box::new((stop, rec))));
        }
    }

    /// The check and the stop's arrival in memory are one step, so concurrent failures trip
    /// one stop. `None` when one holds already.
    fn hold_journal_failure(&self, reason: String, now: Millis) -> Option<(HardStop, AuditRecord)> {
        let (stop, rec) = system_stop(HardStopKind::JournalFailure, reason, now);
        let mut guard = self.stops.write().expect("stops lock");
        if guard.iter().any(|s| s.kind == HardStopKind::JournalFailure) {
            return None;
        }
        let mut next = guard.as_ref().clone();
        next.push(stop.clone());
        *guard = Arc::new(next);
        Some((stop, rec))
    }

    /// Keeps a write the journal refused, for [`Self::write_backlog`].
    pub fn defer(&self, w: Unwritten) {
        self.backlog
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(w);
    }

    /// Writes what the journal refused earlier, oldest first, stopping at the first write it
    /// still refuses. Returns how many are left.
    pub async fn write_backlog(&self, journal: &dyn Store, now: Millis) -> usize {
        loop {
            let next = self
                .backlog
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .first()
                .cloned();
            let Some(w) = next else { return 0 };
            let written = match &w {
                Unwritten::Stop(b) => journal.trip(b.0.clone(), b.1.clone()).await,
                Unwritten::Outcome { tenant, key, audit } => {
                    journal
                        .settle(Settle {
                            tenant: tenant.clone(),
                            key: key.clone(),
                            state: KeyState::InDoubt,
                            result: None,
                            audit: (**audit).clone(),
                            now_ms: now,
                        })
                        .await
                }
            };
            let mut backlog = self.backlog.lock().unwrap_or_else(PoisonError::into_inner);
            if let Err(e) = written {
                tracing::warn!(error = %e, left = backlog.len(), "the journal still refuses the writes it refused earlier");
                return backlog.len();
            }
            tracing::warn!(write = ?w, "an earlier refused write reached the journal");
            backlog.remove(0);
        }
    }

    /// The active `journal_failure` hard stop, if any: while it holds, no side effect runs.
    pub fn journal_failure(&self) -> Option<HardStop> {
        self.active()
            .iter()
            .find(|s| s.kind == HardStopKind::JournalFailure)
            .cloned()
    }

    /// Takes a slot in the (account, action, target) window, or refuses a spam loop. `Ok(None)`
    /// when the guard does not watch this action.
    pub fn reserve(
        &self,
        account: &str,
        action: Action,
        target: &str,
        now: Millis,
    ) -> Result<Option<Slot>, Denial> {
        let Some((actions, limits)) = &self.limits else {
            return Ok(None);
        };
        if !actions.contains(&action) {
            return Ok(None);
        }
        let key = (account.to_string(), action, target.to_string());
        let mut window = self.windows.entry(key.clone()).or_default();
        spam::check(&mut window, now, limits)?;
        window.push_back(now);
        Ok(Some(Slot(key, now)))
    }

    /// Gives back a slot whose call did not run.
    pub fn release(&self, slot: Slot) {
        if let Some(mut w) = self.windows.get_mut(&slot.0)
            && let Some(i) = w.iter().rposition(|&t| t == slot.1)
        {
            w.remove(i);
        }
    }
}

/// A hard stop toolgate trips on its own (no tenant, account or target), with the operator
/// record of why: `audit_gap`, `journal_failure`.
pub fn system_stop(kind: HardStopKind, reason: String, now: Millis) -> (HardStop, AuditRecord) {
    let mut rec = AuditRecord::operator("hard_stop.trip", now, "toolgate", &reason);
    rec.failure_class = Some(FailureClass::ToolFailure);
    let stop = HardStop::new(kind, None, None, None, reason, &rec.id, now);
    (stop, rec)
}

/// The config/wire name of an action.
pub fn action_name(a: Action) -> String {
    serde_json::to_value(a)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::sqlite::SqliteJournal;

    /// A real journal whose next audit append fails (a foreign row holds seq 1).
    fn failing_journal(dir: &std::path::Path) -> SqliteJournal {
        let (j, _) = SqliteJournal::open(dir, 0).unwrap();
        let conn = rusqlite::Connection::open(dir.join("journal.db")).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        conn.execute(
            "INSERT INTO audit (seq, time_ms, kind, tenant, record, hash) VALUES (1, 0, 'call', 'x', '{}', 'x')",
            [],
        )
        .unwrap();
        j
    }

    #[tokio::test]
    async fn concurrent_journal_failures_trip_one_stop_which_reaches_the_journal_once_it_works() {
        let dir = tempfile::tempdir().unwrap();
        let j = failing_journal(dir.path());
        let safety = SafetyState::default();
        let trips = (0..8).map(|i| safety.trip_journal_failure(&j, format!("failure {i}"), 1_000));
        futures::future::join_all(trips).await;
        let stops = safety.active();
        assert_eq!(stops.len(), 1, "{stops:?}");
        assert_eq!(stops[0].kind, HardStopKind::JournalFailure);
        assert!(
            j.hard_stops(false).unwrap().is_empty(),
            "the journal refused it"
        );
        assert_eq!(safety.write_backlog(&j, 2_000).await, 1, "still refused");

        rusqlite::Connection::open(dir.path().join("journal.db"))
            .unwrap()
            .execute("DELETE FROM audit WHERE tenant = 'x'", [])
            .unwrap();
        assert_eq!(safety.write_backlog(&j, 3_000).await, 0);
        let written = j.hard_stops(false).unwrap();
        assert_eq!(written.len(), 1);
        assert_eq!(written[0].id, stops[0].id);
        assert_eq!(safety.write_backlog(&j, 4_000).await, 0, "written once");
        assert_eq!(j.hard_stops(true).unwrap().len(), 1);
    }
}
