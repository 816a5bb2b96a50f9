//! Error budgets in process: SLI events from the journal's commit feed, SLO math, burn alerts,
//! bands, and the snapshot that lets budgets survive a restart without replaying history.
//!
//! The engine sits behind one mutex held only for synchronous, bounded work (never across
//! `.await`). The freeze gate reads a cached band instead of evaluating per call.

pub mod engine;
pub mod events;
pub mod math;
pub mod ring;
pub mod status;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

pub use engine::{BandChange, Counted, DependencyIncident, Engine, EngineState, Episode};
pub use events::RunnerEvent;
pub use status::{Band, Scope};

use crate::clock::{Clock, Millis};
use crate::journal::{Committed, HardStop, JournalError, Store, StoredEvent};
use crate::slo::SloSet;

/// Key of the budget snapshot in the journal's state table.
const SNAPSHOT_KEY: &str = "budget_snapshot";
/// Least time between two snapshots saved because an alert or the band changed.
const CHANGE_SNAPSHOT_GAP: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(serde::Serialize, serde::Deserialize)]
struct Snapshot {
    ids: Vec<String>,
    state: EngineState,
}

/// The journal reads that rebuild budgets: the snapshot and what was committed after it. Every
/// [`Store`] has them; so has a read-only handle on a journal file
/// ([`crate::journal::readonly::ReadOnlyJournal`]), for offline tools next to a running gateway.
pub trait History {
    /// Reads a state blob.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, JournalError>;
    /// Audit records with seq greater than `after`, in order (at most `limit`).
    fn records_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<crate::journal::AuditRecord>, JournalError>;
    /// Events with seq greater than `after`, in order (at most `limit`).
    fn events_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, StoredEvent)>, JournalError>;
}

impl<S: Store + ?Sized> History for S {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, JournalError> {
        Store::get(self, key)
    }
    fn records_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<crate::journal::AuditRecord>, JournalError> {
        Store::records_after(self, after, limit)
    }
    fn events_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, StoredEvent)>, JournalError> {
        Store::events_after(self, after, limit)
    }
}

/// What the budget saw, for observers such as metrics.
pub enum Observed<'a> {
    /// A committed audit record.
    Record(&'a crate::journal::AuditRecord),
    /// An SLI event counted (or taken back) for an SLO.
    Sli(&'a Counted),
}

/// A callback for [`Observed`] values.
pub type Observer = Box<dyn Fn(Observed<'_>) + Send + Sync>;

/// The shared budget handle.
pub struct Budget {
    engine: Mutex<Engine>,
    band: AtomicU8,
    observer: Observer,
}

impl Budget {
    /// Restores the last snapshot and folds in everything the journal committed after it.
    pub fn load<H: History + ?Sized>(
        set: SloSet,
        journal: &H,
        observer: Observer,
    ) -> Result<Self, JournalError> {
        let engine = match journal
            .get(SNAPSHOT_KEY)?
            .and_then(|b| serde_json::from_slice::<Snapshot>(&b).ok())
        {
            Some(s) => Engine::restore(set, s.state, &s.ids),
            None => Engine::new(set),
        };
        let budget = Self {
            engine: Mutex::new(engine),
            band: AtomicU8::new(0),
            observer,
        };
        let (mut audit_seq, mut event_seq) = {
            let e = budget.engine.lock().expect("engine lock");
            (e.state().audit_seq, e.state().event_seq)
        };
        let mut replayed = 0usize;
        loop {
            let records = journal.records_after(audit_seq, 10_000)?;
            if records.is_empty() {
                break;
            }
            for r in &records {
                budget.observe(&Committed::Record(Box::new(r.clone())));
            }
            replayed += records.len();
            audit_seq = records.last().map(|r| r.seq).unwrap_or(audit_seq);
        }
        loop {
            let events = journal.events_after(event_seq, 10_000)?;
            if events.is_empty() {
                break;
            }
            event_seq = events.last().map(|(s, _)| *s).unwrap_or(event_seq);
            for (seq, e) in events {
                budget.observe(&Committed::Event(seq, Box::new(e)));
            }
        }
        if replayed > 0 {
            tracing::info!(
                replayed,
                "budget: folded in audit records written after the last snapshot"
            );
        }
        Ok(budget)
    }

    /// Folds one committed write into the budgets (already-seen positions are skipped).
    pub fn observe(&self, c: &Committed) {
        let counted = {
            let mut e = self.engine.lock().expect("engine lock");
            match c {
                Committed::Record(r) if r.seq > e.state().audit_seq => e.observe_record(r),
                Committed::Event(seq, ev) if *seq > e.state().event_seq => match runner_event(ev) {
                    Some(re) => e.observe_event(&re, *seq),
                    None => Vec::new(),
                },
                _ => Vec::new(),
            }
        };
        if let Committed::Record(r) = c {
            (self.observer)(Observed::Record(r));
        }
        for c in &counted {
            (self.observer)(Observed::Sli(c));
        }
    }

    /// Updates alert state and the cached band at `now`; returns the band.
    pub fn tick(&self, now: Millis, hard_stops: &[HardStop]) -> Band {
        self.tick_changed(now, hard_stops).0
    }

    /// [`Budget::tick`], also saying whether an alert episode or the band changed (worth a
    /// snapshot: incident timelines read them).
    fn tick_changed(&self, now: Millis, hard_stops: &[HardStop]) -> (Band, bool) {
        let mut e = self.engine.lock().expect("engine lock");
        let before = alert_marks(&e);
        e.tick(now);
        let (band, why) = status::overall(&e, hard_stops, now);
        let changed = e.note_band(band, why, now) || alert_marks(&e) != before;
        self.band.store(band as u8, Ordering::Relaxed);
        (band, changed)
    }

    /// Runs `f` on the engine under its lock (keep `f` short and synchronous).
    pub fn with_engine<R>(&self, f: impl FnOnce(&Engine) -> R) -> R {
        let e = self.engine.lock().expect("engine lock");
        f(&e)
    }

    /// The band as of the last tick.
    pub fn band(&self) -> Band {
        match self.band.load(Ordering::Relaxed) {
            0 => Band::Green,
            1 => Band::Yellow,
            _ => Band::Red,
        }
    }

    /// The status document.
    pub fn status(
        &self,
        scope: &Scope,
        active: &[HardStop],
        all: &[HardStop],
        in_doubt: u64,
        now: Millis,
    ) -> Value {
        let e = self.engine.lock().expect("engine lock");
        status::document(&e, scope, active, all, in_doubt, now)
    }

    /// SLI of an SLO over its window with its valid count, for hard-stop rules.
    pub fn sli(&self, slo_id: &str, now: Millis) -> Option<(f64, u64, u64)> {
        let e = self.engine.lock().expect("engine lock");
        let i = e.set().slos.iter().position(|s| s.id == slo_id)?;
        let s = &e.set().slos[i];
        let c = e.counts(i, now - s.window.as_millis() as Millis, now, now);
        math::sli(c).map(|v| (v, c.valid(), s.min_events))
    }

    /// Serialises the engine for [`Budget::load`].
    pub fn snapshot(&self) -> Vec<u8> {
        let e = self.engine.lock().expect("engine lock");
        let snap = Snapshot {
            ids: e.set().slos.iter().map(|s| s.id.clone()).collect(),
            state: e.state().clone(),
        };
        serde_json::to_vec(&snap).unwrap_or_default()
    }

    /// Runs the engine's feed: folds in commits as they land, ticks every `every`, snapshots
    /// every `snapshot_every` (and when the feed closes).
    pub async fn run(
        self: Arc<Self>,
        mut feed: tokio::sync::mpsc::UnboundedReceiver<Committed>,
        journal: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        hard_stops: impl Fn() -> Vec<HardStop> + Send + 'static,
        every: std::time::Duration,
        snapshot_every: std::time::Duration,
    ) {
        let mut tick = tokio::time::interval(every);
        let mut snap = tokio::time::interval(snapshot_every);
        snap.tick().await;
        // Alerts and band changes live in the snapshot: it is saved soon after one so offline
        // readers (`toolgate incident`) and a restart see them, at most once per
        // CHANGE_SNAPSHOT_GAP however much a band flaps.
        let mut dirty = false;
        let mut last_saved = tokio::time::Instant::now();
        loop {
            tokio::select! {
                c = feed.recv() => match c {
                    Some(c) => self.observe(&c),
                    None => break,
                },
                _ = tick.tick() => {
                    dirty |= self.tick_changed(clock.now_ms(), &hard_stops()).1;
                    if dirty && last_saved.elapsed() >= CHANGE_SNAPSHOT_GAP {
                        journal.put(SNAPSHOT_KEY, self.snapshot());
                        (dirty, last_saved) = (false, tokio::time::Instant::now());
                    }
                }
                _ = snap.tick() => {
                    journal.put(SNAPSHOT_KEY, self.snapshot());
                    (dirty, last_saved) = (false, tokio::time::Instant::now());
                }
            }
        }
        journal.put(SNAPSHOT_KEY, self.snapshot());
    }
}

/// Episode count and open/closed marks: changes when an episode starts or ends.
fn alert_marks(e: &Engine) -> (usize, usize, Option<Millis>) {
    let eps = e.episodes();
    (
        eps.len(),
        eps.iter().filter(|x| x.end_ms.is_none()).count(),
        eps.last().map(|x| x.start_ms),
    )
}

/// Decodes a stored event; events stored by this version always decode.
pub fn runner_event(e: &StoredEvent) -> Option<RunnerEvent> {
    serde_json::from_value(e.body.clone()).ok()
}

/// The journal form of a validated runner event. Job starts deduplicate by job id, so a job's
/// first tool call and the runner's own `job_started` count once.
pub fn stored(e: &RunnerEvent) -> StoredEvent {
    let id = match &e.detail {
        events::Detail::JobStarted { job_id, .. } => format!("job:{job_id}"),
        _ => e.id.clone(),
    };
    StoredEvent {
        id,
        tenant: e.tenant.clone(),
        kind: serde_json::to_value(e.kind)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        time_ms: e.at_ms,
        body: serde_json::to_value(e).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests;
