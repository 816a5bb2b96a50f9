//! The budget engine: committed audit records and runner events in; per-SLO counts, burn
//! alerts and bands out. No I/O and no clock of its own: time is always a parameter.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::events::{Detail, RunnerEvent};
use super::math;
use super::ring::{Counts, Ring};
use crate::call::FailureClass;
use crate::clock::Millis;
use crate::journal::{AuditRecord, Outcome, RecordKind};
use crate::slo::{EventKind, Severity, Slo, SloSet, Source, Tags};

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

fn pending_key(tenant: &str, key: &str) -> String {
    format!("{tenant}\u{1f}{key}")
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

    fn count(
        &mut self,
        i: usize,
        at: Millis,
        tags: &(Option<String>, Option<String>),
        good: bool,
        reason: &str,
        sign: i64,
    ) -> Counted {
        let window = self.set.slos[i].window.as_millis() as i64;
        let span = self.minute_span_ms;
        let st = &mut self.state.slos[i];
        // Tag values come from upstream text and runner events: past a fixed number of
        // distinct values per SLO the rest share one "other" series, so memory stays bounded.
        let bounded = |map_len: usize, has: bool, v: String| {
            if has || map_len < MAX_SERIES {
                v
            } else {
                OTHER.to_string()
            }
        };
        let client = tags.0.clone().unwrap_or_default();
        let client = bounded(st.clients.len(), st.clients.contains_key(&client), client);
        let platform = tags.1.clone().unwrap_or_default();
        let platform = bounded(
            st.platforms.len(),
            st.platforms.contains_key(&platform),
            platform,
        );
        let reason = bounded(
            st.reasons.len(),
            st.reasons.contains_key(reason),
            reason.to_string(),
        );
        let reason = reason.as_str();
        let (g, b) = if good { (sign, 0) } else { (0, sign) };
        st.platforms
            .entry(platform.clone())
            .or_insert_with(|| Series::new(span, window))
            .add(at, g, b);
        st.clients
            .entry(client.clone())
            .or_insert_with(|| Ring::new(HOUR, (window / HOUR + 2) as usize))
            .add(at, g, b);
        if !good {
            st.reasons
                .entry(reason.to_string())
                .or_insert_with(|| Ring::new(HOUR, (window / HOUR + 2) as usize))
                .add(at, 0, sign);
        }
        Counted {
            slo: self.set.slos[i].id.clone(),
            good,
            client_id: client,
            platform,
        }
    }

    /// Folds in one committed audit record (§4: attempts are keys; retries replace earlier
    /// failures of the same key; policy-blocked calls and replays are not attempts).
    pub fn observe_record(&mut self, r: &AuditRecord) -> Vec<Counted> {
        self.state.audit_seq = self.state.audit_seq.max(r.seq);
        let at = crate::clock::parse_rfc3339(&r.time).unwrap_or(0);
        let tenant = r.tenant.clone().unwrap_or_default();
        let pkey = r
            .idempotency_key
            .as_deref()
            .map(|k| pending_key(&tenant, k));
        let mut out = Vec::new();
        if r.kind == RecordKind::Operator {
            // An operator found that an in-doubt side effect happened: its failure is taken back.
            if r.tool == "idempotency.resolve"
                && r.reason
                    .as_deref()
                    .is_some_and(|s| s.starts_with("happened"))
                && let Some(k) = pkey
            {
                out.extend(self.settle_pending(&k, true));
            }
            return out;
        }
        if !r.side_effect || r.replayed || r.outcome == Outcome::Refused {
            return out;
        }
        // A later attempt of a key decides that key's one count, at its first attempt's time.
        let mut origin = at;
        if let Some(k) = &pkey
            && let Some(prev) = self.state.pending.remove(k)
        {
            for p in &prev {
                origin = origin.min(p.at);
                out.push(self.count(p.slo, p.at, &p.tags, false, &p.reason, -1));
            }
        }
        let tags = Tags {
            client_id: Some(tenant.clone()),
            platform: r.platform.clone(),
            lane: r.lane,
            action_type: r.action,
        };
        let key_tags = (Some(tenant), r.platform.clone());
        for i in 0..self.set.slos.len() {
            let slo = &self.set.slos[i];
            if !slo.sli.filter.matches(&tags) {
                continue;
            }
            let verdict = match slo.sli.source {
                Source::ToolCalls => Some(match r.outcome {
                    Outcome::Success if slo.sli.require_proof && r.proof.is_empty() => {
                        Err("proof_missing: no proof captured".to_string())
                    }
                    Outcome::Success => Ok(()),
                    _ => Err(failure_reason(r)),
                }),
                Source::Audit => (r.outcome == Outcome::Success).then(|| {
                    if r.proof_missing {
                        Err("proof_missing".to_string())
                    } else {
                        Ok(())
                    }
                }),
                Source::Safety => (r.outcome == Outcome::Success).then_some(Ok(())),
                Source::Event => None,
            };
            let Some(verdict) = verdict else { continue };
            if let Err(reason) = &verdict
                && let Some(class) = r.failure_class
                && !slo.budget_classes.contains(&class)
            {
                let _ = reason;
                continue;
            }
            match verdict {
                Ok(()) => out.push(self.count(i, origin, &key_tags, true, "", 1)),
                Err(reason) => {
                    out.push(self.count(i, origin, &key_tags, false, &reason, 1));
                    // Only failures a later state of the key can change are remembered: a
                    // final error result is replayed, never re-attempted, so keeping it would
                    // only make this map grow with traffic.
                    let changeable = match r.outcome {
                        Outcome::InDoubt | Outcome::Failed => true,
                        Outcome::ErrorResult => r.reason.as_deref().is_some_and(|s| {
                            s.starts_with(crate::journal::record::RETRYABLE_ERROR_REASON)
                        }),
                        _ => false,
                    };
                    if changeable
                        && self.state.pending.len() < MAX_PENDING
                        && let Some(k) = &pkey
                    {
                        self.state
                            .pending
                            .entry(k.clone())
                            .or_default()
                            .push(Pending {
                                slo: i,
                                at: origin,
                                in_doubt: r.outcome == Outcome::InDoubt,
                                tags: key_tags.clone(),
                                reason,
                            });
                    }
                }
            }
        }
        out
    }

    /// Takes back a key's in-doubt failures, counting them good instead when `happened`.
    fn settle_pending(&mut self, k: &str, happened: bool) -> Vec<Counted> {
        let mut out = Vec::new();
        let Some(all) = self.state.pending.remove(k) else {
            return out;
        };
        let (doubt, rest): (Vec<Pending>, Vec<Pending>) = all.into_iter().partition(|p| p.in_doubt);
        if !rest.is_empty() {
            self.state.pending.insert(k.to_string(), rest);
        }
        for p in doubt {
            out.push(self.count(p.slo, p.at, &p.tags, false, &p.reason, -1));
            out.push(self.count(p.slo, p.at, &p.tags, happened, &p.reason, 1));
        }
        out
    }

    /// Folds in one committed runner event.
    pub fn observe_event(&mut self, e: &RunnerEvent, seq: u64) -> Vec<Counted> {
        self.state.event_seq = self.state.event_seq.max(seq);
        let mut out = Vec::new();
        if let Detail::DependencyIncident {
            platform,
            start_ms,
            end_ms,
        } = &e.detail
        {
            self.state.incidents.push(DependencyIncident {
                id: e.id.clone(),
                tenant: Some(e.tenant.clone()),
                platform: platform.clone(),
                start_ms: *start_ms,
                end_ms: *end_ms,
            });
        }
        if let Detail::PostVerified {
            idempotency_key: Some(k),
            latency_ms: Some(_),
            ..
        } = &e.detail
        {
            out.extend(self.settle_pending(&pending_key(&e.tenant, k), true));
        }
        let tags = e.tags();
        let key_tags = (tags.client_id.clone(), tags.platform.clone());
        for i in 0..self.set.slos.len() {
            let slo = &self.set.slos[i];
            if !slo.sli.filter.matches(&tags) {
                continue;
            }
            let verdict: Option<Result<(), (FailureClass, String)>> =
                match (slo.sli.source, &e.detail) {
                    (Source::Safety, Detail::WrongAccount { account, detail }) => Some(Err((
                        FailureClass::ToolFailure,
                        format!("wrong_account: {account}: {detail}"),
                    ))),
                    (Source::Event, d) if slo.sli.event == Some(e.kind) => event_verdict(slo, d),
                    _ => None,
                };
            match verdict {
                None => {}
                Some(Ok(())) => out.push(self.count(i, e.at_ms, &key_tags, true, "", 1)),
                Some(Err((class, reason))) => {
                    // Safety failures always count: SLO-07 has no excluded classes.
                    if slo.sli.source != Source::Safety && !slo.budget_classes.contains(&class) {
                        continue;
                    }
                    out.push(self.count(i, e.at_ms, &key_tags, false, &reason, 1));
                }
            }
        }
        out
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

    /// Page and ticket alert episodes, oldest first.
    pub fn episodes(&self) -> &[Episode] {
        &self.state.episodes
    }

    /// Declared dependency incidents, in arrival order.
    pub fn dependency_incidents(&self) -> &[DependencyIncident] {
        &self.state.incidents
    }

    /// Changes of the overall band, oldest first.
    pub fn band_changes(&self) -> &[BandChange] {
        &self.state.band_changes
    }

    /// Records the overall band at `now` when it differs from the last one recorded (GREEN
    /// before any); returns whether it changed.
    pub fn note_band(&mut self, band: super::Band, reasons: Vec<String>, now: Millis) -> bool {
        let from = self
            .state
            .band_changes
            .last()
            .map(|c| c.to)
            .unwrap_or(super::Band::Green);
        if from == band {
            return false;
        }
        self.state.band_changes.push(BandChange {
            at_ms: now,
            from,
            to: band,
            reasons,
        });
        let over = self.state.band_changes.len().saturating_sub(MAX_HISTORY);
        self.state.band_changes.drain(..over);
        true
    }

    /// Updates alert state at `now` (call regularly): page episodes and ticket firings.
    pub fn tick(&mut self, now: Millis) {
        for i in 0..self.set.slos.len() {
            let firing = self.firing(i, now);
            let slo_id = self.set.slos[i].id.clone();
            let page = firing.contains(&Severity::Page);
            let ticket = firing.contains(&Severity::Ticket);
            let week = self.set.bands.ticket_repeat_window.as_millis() as i64;
            let st = &mut self.state.slos[i];
            match (page, st.page_since) {
                (true, None) => {
                    st.page_since = Some(now);
                    self.state.episodes.push(Episode {
                        slo: slo_id.clone(),
                        severity: Severity::Page,
                        start_ms: now,
                        end_ms: None,
                    });
                }
                (false, Some(_)) => {
                    st.page_since = None;
                    if let Some(ep) = self.state.episodes.iter_mut().rev().find(|e| {
                        e.slo == slo_id && e.severity == Severity::Page && e.end_ms.is_none()
                    }) {
                        ep.end_ms = Some(now);
                    }
                }
                _ => {}
            }
            let st = &mut self.state.slos[i];
            if ticket && !st.ticket_firing {
                st.ticket_firings.push(now);
                self.state.episodes.push(Episode {
                    slo: slo_id.clone(),
                    severity: Severity::Ticket,
                    start_ms: now,
                    end_ms: None,
                });
            } else if !ticket
                && st.ticket_firing
                && let Some(ep) = self.state.episodes.iter_mut().rev().find(|e| {
                    e.slo == slo_id && e.severity == Severity::Ticket && e.end_ms.is_none()
                })
            {
                ep.end_ms = Some(now);
            }
            let st = &mut self.state.slos[i];
            st.ticket_firing = ticket;
            st.ticket_firings.retain(|t| *t > now - week);
        }
        let keep = self
            .set
            .slos
            .iter()
            .map(|s| s.window.as_millis() as i64)
            .max()
            .unwrap_or(28 * 24 * HOUR);
        self.state
            .episodes
            .retain(|e| e.end_ms.is_none_or(|end| end > now - keep));
        let over = self.state.episodes.len().saturating_sub(MAX_HISTORY);
        if over > 0 {
            // Closed episodes go first; open ones are alert state and stay.
            let mut drop = over;
            self.state.episodes.retain(|e| {
                if drop > 0 && e.end_ms.is_some() {
                    drop -= 1;
                    false
                } else {
                    true
                }
            });
        }
        // The last change stays: it says which band holds now.
        let last = self.state.band_changes.len().saturating_sub(1);
        let mut n = 0;
        self.state.band_changes.retain(|c| {
            n += 1;
            n - 1 == last || c.at_ms > now - keep
        });
        self.state.incidents.retain(|d| d.end_ms > now - keep);
        self.state.pending.retain(|_, v| {
            v.retain(|p| p.at > now - keep);
            !v.is_empty()
        });
    }

    /// Severities of the tiers firing now for SLO `i` (both windows over the rate, enough events).
    pub(super) fn firing(&self, i: usize, now: Millis) -> Vec<Severity> {
        self.tiers(i, now)
            .into_iter()
            .filter(|t| t.firing)
            .map(|t| t.severity)
            .collect()
    }

    /// Every applicable tier of SLO `i` with its burn rates at `now`.
    pub(super) fn tiers(&self, i: usize, now: Millis) -> Vec<TierState> {
        let slo = &self.set.slos[i];
        self.set
            .alerts
            .iter()
            .filter(|t| slo.paging || t.severity == Severity::Ticket)
            .map(|t| {
                let long = self.counts(i, now - t.long.as_millis() as i64, now, now);
                let short = self.counts(i, now - t.short.as_millis() as i64, now, now);
                let (bl, bs) = (
                    math::burn_rate(slo.target, long),
                    math::burn_rate(slo.target, short),
                );
                let firing = long.valid() >= slo.min_events
                    && bl.unwrap_or(0.0) > t.burn_rate
                    && bs.unwrap_or(0.0) > t.burn_rate;
                TierState {
                    severity: t.severity,
                    long: t.long,
                    short: t.short,
                    threshold: t.burn_rate,
                    burn_long: bl,
                    burn_short: bs,
                    firing,
                }
            })
            .collect()
    }
}

/// One alert tier evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct TierState {
    pub severity: Severity,
    pub long: std::time::Duration,
    pub short: std::time::Duration,
    pub threshold: f64,
    pub burn_long: Option<f64>,
    pub burn_short: Option<f64>,
    pub firing: bool,
}

fn failure_reason(r: &AuditRecord) -> String {
    let class = r.failure_class.map(|c| c.as_str()).unwrap_or("failed");
    let detail: String = r.reason.as_deref().unwrap_or("").chars().take(80).collect();
    if detail.is_empty() {
        class.to_string()
    } else {
        format!("{class}: {detail}")
    }
}

/// Good or bad for a latency/outcome event against an SLO's thresholds.
fn event_verdict(slo: &Slo, d: &Detail) -> Option<Result<(), (FailureClass, String)>> {
    let late = |lat: Millis, limit: std::time::Duration, what: &str| {
        if lat <= limit.as_millis() as Millis {
            Ok(())
        } else {
            Err((
                FailureClass::RunnerFailure,
                format!(
                    "{what} after {} s (limit {} s)",
                    lat / 1000,
                    limit.as_secs()
                ),
            ))
        }
    };
    match d {
        Detail::JobStarted {
            kind, latency_ms, ..
        } => {
            if !slo.sli.filter.kind.is_empty() && !slo.sli.filter.kind.contains(kind) {
                return None;
            }
            let limit = slo
                .sli
                .threshold_by_kind
                .get(kind)
                .copied()
                .or(slo.sli.threshold)?;
            Some(late(*latency_ms, limit, &format!("{kind} job started")))
        }
        Detail::EpisodeFinished {
            completed,
            outcome,
            side_effects,
            ..
        } => {
            if slo
                .sli
                .filter
                .side_effects
                .is_some_and(|want| want != *side_effects)
            {
                return None;
            }
            Some(if *completed {
                Ok(())
            } else {
                Err((FailureClass::RunnerFailure, format!("episode {outcome}")))
            })
        }
        Detail::PostVerified { latency_ms, .. } => {
            let limit = slo.sli.threshold?;
            Some(match latency_ms {
                None => Err((
                    FailureClass::VerificationFailed,
                    "verification_failed: post not visible".into(),
                )),
                Some(l) => late(*l, limit, "visible")
                    .map_err(|(_, m)| (FailureClass::VerificationFailed, m)),
            })
        }
        Detail::Latency { latency_ms, .. } => {
            Some(late(*latency_ms, slo.sli.threshold?, "handled"))
        }
        Detail::WrongAccount { .. } | Detail::DependencyIncident { .. } => None,
    }
}

/// The event kinds an SLO set listens to (for validation messages).
pub fn kinds(set: &SloSet) -> Vec<EventKind> {
    set.slos.iter().filter_map(|s| s.sli.event).collect()
}

#[cfg(test)]
mod tests;
