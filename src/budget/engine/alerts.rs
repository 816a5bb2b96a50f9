//! Alert evaluation and history: burn-rate tiers, page and ticket episodes, band changes, and
//! the tick that keeps them and ages out old state.

use super::{BandChange, Engine, Episode, HOUR, MAX_HISTORY};
use crate::budget::Band;
use crate::budget::math;
use crate::clock::Millis;
use crate::slo::Severity;

impl Engine {
    /// Page and ticket alert episodes, oldest first.
    pub fn episodes(&self) -> &[Episode] {
        &self.state.episodes
    }

    /// Changes of the overall band, oldest first.
    pub fn band_changes(&self) -> &[BandChange] {
        &self.state.band_changes
    }

    /// Records the overall band at `now` when it differs from the last one recorded (GREEN
    /// before any); returns whether it changed.
    pub fn note_band(&mut self, band: Band, reasons: Vec<String>, now: Millis) -> bool {
        let from = self
            .state
            .band_changes
            .last()
            .map(|c| c.to)
            .unwrap_or(Band::Green);
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
    pub(in crate::budget) fn firing(&self, i: usize, now: Millis) -> Vec<Severity> {
        self.tiers(i, now)
            .into_iter()
            .filter(|t| t.firing)
            .map(|t| t.severity)
            .collect()
    }

    /// Every applicable tier of SLO `i` with its burn rates at `now`.
    pub(in crate::budget) fn tiers(&self, i: usize, now: Millis) -> Vec<TierState> {
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
