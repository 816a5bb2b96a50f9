//! Live safety state: the active hard stops and the spam-loop windows, rebuilt from the journal.
//!
//! The journal is the truth; this is its in-memory index, so that each call's gates read
//! memory instead of disk. Guards are synchronous and never held across `.await`.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};

use dashmap::DashMap;

use crate::call::{Denial, FailureClass};
use crate::clock::Millis;
use crate::config::{Action, Config};
use crate::journal::{AuditRecord, HardStop, HardStopKind, JournalError, Store};
use crate::policy::spam::{self, Limits};

type SpamKey = (String, Action, String);

/// Active hard stops and recent side effects per (account, action, target).
#[derive(Default)]
pub struct SafetyState {
    stops: RwLock<Arc<Vec<HardStop>>>,
    windows: DashMap<SpamKey, VecDeque<Millis>>,
    quarantine: bool,
    limits: Option<(Vec<Action>, Limits)>,
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
    /// that is not written still stops), and the journal's error is returned; such a stop
    /// lasts until an operator clears it or the process ends.
    pub async fn trip(
        &self,
        journal: &dyn Store,
        stop: HardStop,
        audit: AuditRecord,
    ) -> Result<(), JournalError> {
        let written = journal.trip(stop.clone(), audit).await;
        tracing::error!(hard_stop = %stop.id, kind = ?stop.kind, tenant = ?stop.tenant, account = ?stop.account, reason = %stop.reason, recorded = written.is_ok(), "HARD STOP tripped");
        self.add_stop(stop);
        written
    }

    /// Trips the `journal_failure` hard stop unless one holds already: a write recording a
    /// call failed (`reason` says which). Its own write most likely fails too; it holds from
    /// memory either way (see [`Self::trip`]).
    pub async fn trip_journal_failure(&self, journal: &dyn Store, reason: String, now: Millis) {
        if self.journal_failure().is_some() {
            return;
        }
        let mut rec = AuditRecord::operator("hard_stop.trip", now, "toolgate", &reason);
        rec.failure_class = Some(FailureClass::ToolFailure);
        let stop = HardStop::new(
            HardStopKind::JournalFailure,
            None,
            None,
            None,
            reason,
            &rec.id,
            now,
        );
        let _ = self.trip(journal, stop, rec).await;
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

/// The config/wire name of an action.
pub fn action_name(a: Action) -> String {
    serde_json::to_value(a)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}
