//! The budget engine: committed audit records and runner events in; per-SLO counts, burn
//! alerts and bands out. No I/O and no clock of its own: time is always a parameter.
//!
//! Counting lives in `observe`, alert evaluation and history in `alerts`; this module holds
//! the state they share and the queries over it.

mod alerts;
mod observe;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::ring::{Counts, Ring};
use crate::clock::Millis;
use crate::slo::{EventKind, Severity, SloSet};

pub use alerts::TierState;

const MINUTE: i64 = 60_000;
/// Distinct clients, platforms and failure reasons tracked per SLO before "other".
const MAX_SERIES: usize = 64;
/// The series that collects values past [`MAX_SERIES`].
const OTHER: &str = "(other)";
/// Keys whose failure a later state may still change, at most; beyond it a failure simply
/// stays counted (the conservative direction).
const MAX_PENDING: usize = 10_000;
const HOUR: i64 = 3_600_000;

/// Counts of one (SLO, platform): minutes for the alert windows, hours for the whole window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Series {
    minutes: Ring,
    hours: Ring,
}

impl Series {
    fn new(minute_span_ms: i64, window_ms: i64) -> Self {
        Self {
            minutes: Ring::new(MINUTE, (minute_span_ms / MINUTE + 2) as usize),
            hours: Ring::new(HOUR, (window_ms / HOUR + 2) as usize),
        }
    }

    fn add(&mut self, at: Millis, good: i64, bad: i64) {
        self.minutes.add(at, good, bad);
        self.hours.add(at, good, bad);
    }

    /// Sum over `[from, to]`: minute resolution where the minute ring reaches, else hours.
    pub(super) fn sum(&self, from: Millis, to: Millis, now: Millis) -> Counts {
        if from >= now - self.minutes.span_ms() + 2 * MINUTE {
            self.minutes.sum(from, to)
        } else {
            self.hours.sum(from, to)
        }
    }
}

/// A page or ticket alert episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    pub slo: String,
    pub severity: Severity,
    pub start_ms: Millis,
    pub end_ms: Option<Millis>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct SloState {
    pub(super) platforms: BTreeMap<String, Series>,
    pub(super) clients: BTreeMap<String, Ring>,
    pub(super) reasons: BTreeMap<String, Ring>,
    pub(super) page_since: Option<Millis>,
    pub(super) ticket_firing: bool,
    pub(super) ticket_firings: Vec<Millis>,
}

/// A bad count that a later state of the same idempotency key may take back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Pending {
    slo: usize,
    at: Millis,
    /// Sent without a definitive answer: only these are settled by a resolution or a
    /// verification (a final failure stays a failure).
    #[serde(default)]
    in_doubt: bool,
    tags: (Option<String>, Option<String>),
    reason: String,
}

/// A declared dependency incident (§4.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DependencyIncident {
    pub id: String,
    /// The tenant that declared it (absent in snapshots taken before it was kept).
    #[serde(default)]
    pub tenant: Option<String>,
    pub platform: String,
    pub start_ms: Millis,
    pub end_ms: Millis,
}

/// A change of the overall band (§7.1), for incident timelines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BandChange {
    pub at_ms: Millis,
    pub from: super::Band,
    pub to: super::Band,
    /// Why the new band holds (the overall band's reasons at that tick).
    pub reasons: Vec<String>,
}

/// Band changes and alert episodes kept at most (the oldest go first).
const MAX_HISTORY: usize = 1000;

/// The engine's whole state, serialisable as a snapshot.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EngineState {
    pub(super) slos: Vec<SloState>,
    pub(super) pending: HashMap<String, Vec<Pending>>,
    pub(super) incidents: Vec<DependencyIncident>,
    pub(super) episodes: Vec<Episode>,
    #[serde(default)]
    pub(super) band_changes: Vec<BandChange>,
    /// Last journal positions folded in (audit seq, event seq).
    pub audit_seq: u64,
    pub event_seq: u64,
}

/// SLO counting and evaluation.
pub struct Engine {
    pub(super) set: SloSet,
    pub(super) state: EngineState,
    minute_span_ms: i64,
}

/// A counted SLI event, for metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Counted {
    pub slo: String,
    pub good: bool,
    pub client_id: String,
    pub platform: String,
}

impl Engine {
    pub fn new(set: SloSet) -> Self {
        let longest_alert = set
            .alerts
            .iter()
            .map(|t| t.long.as_millis() as i64)
            .max()
            .unwrap_or(3 * 24 * HOUR);
        let state = EngineState {
            slos: vec![SloState::default(); set.slos.len()],
            ..Default::default()
        };
        Self {
            set,
            state,
            minute_span_ms: longest_alert + HOUR,
        }
    }

    /// Restores a snapshot taken with the same SLO ids (others start empty).
    pub fn restore(set: SloSet, snapshot: EngineState, ids: &[String]) -> Self {
        let mut e = Self::new(set);
        for (i, s) in e.set.slos.iter().enumerate() {
            if let Some(j) = ids.iter().position(|id| id == &s.id)
                && let Some(old) = snapshot.slos.get(j)
            {
                e.state.slos[i] = old.clone();
            }
        }
        e.state.incidents = snapshot.incidents;
        e.state.episodes = snapshot.episodes;
        e.state.band_changes = snapshot.band_changes;
        e.state.audit_seq = snapshot.audit_seq;
        e.state.event_seq = snapshot.event_seq;
        e.state.pending = snapshot
            .pending
            .into_iter()
            .filter(|(_, v)| v.iter().all(|p| p.slo < e.set.slos.len()))
            .collect();
        e
    }

    pub fn set(&self) -> &SloSet {
        &self.set
    }

    pub fn state(&self) -> &EngineState {
        &self.state
    }

    /// Counts of SLO `i` over `[from, to]` (dependency incidents excluded when configured).
    pub(crate) fn counts(&self, i: usize, from: Millis, to: Millis, now: Millis) -> Counts {
        let slo = &self.set.slos[i];
        let mut c = Counts::default();
        for (platform, series) in &self.state.slos[i].platforms {
            c += series.sum(from, to, now);
            if slo.exclude_dependency_incidents {
                for inc in self
                    .state
                    .incidents
                    .iter()
                    .filter(|d| &d.platform == platform)
                {
                    let (a, b) = (inc.start_ms.max(from), inc.end_ms.min(to));
                    if a <= b {
                        c.bad = c.bad.saturating_sub(series.sum(a, b, now).bad);
                    }
                }
            }
        }
        c
    }

    /// Counts of SLO `i` for one client over `[from, to]` (hour resolution).
    pub(crate) fn client_counts(&self, i: usize, client: &str, from: Millis, to: Millis) -> Counts {
        self.state.slos[i]
            .clients
            .get(client)
            .map(|r| r.sum(from, to))
            .unwrap_or_default()
    }

    /// Failures of SLO `i` per client over `[from, to]` (hour resolution), non-zero only.
    pub(crate) fn bad_by_client(&self, i: usize, from: Millis, to: Millis) -> Vec<(String, u64)> {
        self.state.slos[i]
            .clients
            .iter()
            .map(|(c, r)| (c.clone(), r.sum(from, to).bad))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Failures of SLO `i` per platform over `[from, to]`, non-zero only.
    pub(crate) fn bad_by_platform(
        &self,
        i: usize,
        from: Millis,
        to: Millis,
        now: Millis,
    ) -> Vec<(String, u64)> {
        self.state.slos[i]
            .platforms
            .iter()
            .map(|(p, s)| (p.clone(), s.sum(from, to, now).bad))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Failures of SLO `i` per reason over `[from, to]` (hour resolution), non-zero only.
    pub(crate) fn bad_by_reason(&self, i: usize, from: Millis, to: Millis) -> Vec<(String, u64)> {
        self.state.slos[i]
            .reasons
            .iter()
            .map(|(r, ring)| (r.clone(), ring.sum(from, to).bad))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Declared dependency incidents, in arrival order.
    pub fn dependency_incidents(&self) -> &[DependencyIncident] {
        &self.state.incidents
    }
}

/// The event kinds an SLO set listens to (for validation messages).
pub fn kinds(set: &SloSet) -> Vec<EventKind> {
    set.slos.iter().filter_map(|s| s.sli.event).collect()
}

#[cfg(test)]
mod tests;
