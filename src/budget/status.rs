//! The status document (§10): per-SLO budgets, burn rates, alerts and bands, overall band.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::engine::Engine;
use super::math;
use super::ring::Counts;
use crate::clock::{Millis, rfc3339};
use crate::journal::HardStop;
use crate::slo::Severity;

/// Reliability band (§7.1), ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Band {
    Green,
    Yellow,
    Red,
}

impl Band {
    pub fn as_str(self) -> &'static str {
        match self {
            Band::Green => "GREEN",
            Band::Yellow => "YELLOW",
            Band::Red => "RED",
        }
    }
}

/// Which figures a caller sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Tenant(String),
}

/// Windows reported under `burn_rates`.
const BURN_WINDOWS: [(&str, i64); 7] = [
    ("5m", 300_000),
    ("30m", 1_800_000),
    ("1h", 3_600_000),
    ("2h", 7_200_000),
    ("6h", 21_600_000),
    ("1d", 86_400_000),
    ("3d", 259_200_000),
];

fn human(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The band of one SLO and why.
pub(super) fn slo_band(e: &Engine, i: usize, c: Counts, now: Millis) -> (Band, String, bool) {
    let slo = &e.set.slos[i];
    let b = &e.set.bands;
    if c.valid() < slo.min_events {
        let why = if c.valid() == 0 {
            "no data".to_string()
        } else {
            format!("low volume: {} < min_events {}", c.valid(), slo.min_events)
        };
        return (Band::Green, why, true);
    }
    let left = math::remaining_fraction(slo.target, c).unwrap_or(1.0);
    let st = &e.state.slos[i];
    if let Some(since) = st.page_since
        && now - since >= b.page_sustained.as_millis() as Millis
    {
        return (
            Band::Red,
            format!("page alert firing for {} min", (now - since) / 60_000),
            false,
        );
    }
    if left < b.yellow_min_remaining {
        return (
            Band::Red,
            format!("{:.0}% of the budget left", left * 100.0),
            false,
        );
    }
    if st.ticket_firings.len() as u32 >= b.ticket_repeats {
        return (
            Band::Yellow,
            format!(
                "ticket alerts fired {} times in {}",
                st.ticket_firings.len(),
                human(b.ticket_repeat_window)
            ),
            false,
        );
    }
    if left < b.green_min_remaining {
        return (
            Band::Yellow,
            format!("{:.0}% of the budget left", left * 100.0),
            false,
        );
    }
    (
        Band::Green,
        format!("{:.0}% of the budget left", left * 100.0),
        false,
    )
}

/// The overall band: the worst SLO, and RED while any hard stop is active.
pub fn overall(e: &Engine, hard_stops: &[HardStop], now: Millis) -> (Band, Vec<String>) {
    let mut band = Band::Green;
    let mut why = Vec::new();
    if !hard_stops.is_empty() {
        band = Band::Red;
        why.push(format!("{} active hard stop(s)", hard_stops.len()));
    }
    for i in 0..e.set.slos.len() {
        let win = e.set.slos[i].window.as_millis() as i64;
        let (b, reason, _) = slo_band(e, i, e.counts(i, now - win, now, now), now);
        if b > Band::Green {
            why.push(format!("{} {}: {reason}", e.set.slos[i].id, b.as_str()));
        }
        band = band.max(b);
    }
    (band, why)
}

fn top(
    rings: &std::collections::BTreeMap<String, super::ring::Ring>,
    from: Millis,
    to: Millis,
    key: &str,
    value: &str,
    only: Option<&str>,
) -> Vec<Value> {
    let mut v: Vec<(String, u64)> = rings
        .iter()
        .filter(|(k, _)| only.is_none_or(|o| o == k.as_str()))
        .map(|(k, r)| (k.clone(), r.sum(from, to).bad))
        .filter(|(_, n)| *n > 0)
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.into_iter()
        .take(5)
        .map(|(k, n)| json!({key: k, value: n}))
        .collect()
}

/// The status document for `scope` at `now`.
pub fn document(
    e: &Engine,
    scope: &Scope,
    hard_stops: &[HardStop],
    all_stops: &[HardStop],
    in_doubt: u64,
    now: Millis,
) -> Value {
    let tenant = match scope {
        Scope::All => None,
        Scope::Tenant(t) => Some(t.as_str()),
    };
    let visible_stops: Vec<&HardStop> = hard_stops
        .iter()
        .filter(|s| tenant.is_none() || s.tenant.as_deref() == tenant)
        .collect();
    let mut slos = Vec::new();
    for (i, slo) in e.set.slos.iter().enumerate() {
        let win = slo.window.as_millis() as i64;
        let from = now - win;
        let counts = |a: Millis| match tenant {
            None => e.counts(i, a, now, now),
            Some(t) => e.client_counts(i, t, a, now),
        };
        let c = counts(from);
        let burn: serde_json::Map<String, Value> = BURN_WINDOWS
            .iter()
            // A tenant's figures are kept per hour: shorter windows are not meaningful.
            .map(|(name, ms)| {
                (
                    name.to_string(),
                    if tenant.is_some() && *ms < 3_600_000 {
                        Value::Null
                    } else {
                        json!(math::burn_rate(slo.target, counts(now - ms)))
                    },
                )
            })
            .collect();
        let (band, band_reason, low_volume) = if tenant.is_none() {
            slo_band(e, i, c, now)
        } else {
            let left = math::remaining_fraction(slo.target, c).unwrap_or(1.0);
            let b = if c.valid() < slo.min_events {
                Band::Green
            } else if left < e.set.bands.yellow_min_remaining {
                Band::Red
            } else if left < e.set.bands.green_min_remaining {
                Band::Yellow
            } else {
                Band::Green
            };
            (
                b,
                format!("{:.0}% of this tenant's budget left", left * 100.0),
                c.valid() < slo.min_events,
            )
        };
        let alerts: Vec<Value> = if tenant.is_some() {
            Vec::new()
        } else {
            e.tiers(i, now)
                .iter()
                .map(|t| json!({"severity": t.severity, "long": human(t.long), "short": human(t.short), "threshold": t.threshold,
                                 "burn_long": t.burn_long, "burn_short": t.burn_short, "firing": t.firing}))
                .collect()
        };
        let remaining = math::remaining_events(slo.target, c);
        let last_hour = counts(now - 3_600_000);
        let st = &e.state.slos[i];
        let allowed = math::allowed_bad(slo.target, c.valid());
        let postmortem = tenant.is_none()
            && incidents(e, &slo.id, all_stops, now).iter().any(|(a, b)| {
                let bad = e.counts(i, *a, *b, now).bad as f64;
                bad > 0.0 && (allowed <= 0.0 || bad / allowed >= e.set.postmortem_budget_fraction)
            });
        slos.push(json!({
            "id": slo.id, "name": slo.name, "target": slo.target, "window": human(slo.window),
            "good": c.good, "valid": c.valid(), "sli": math::sli(c),
            "budget_remaining": (remaining * 1000.0).round() / 1000.0,
            "budget_remaining_pct": math::remaining_fraction(slo.target, c).map(|f| (f * 10_000.0).round() / 100.0),
            "burn_rates": burn, "alerts": alerts,
            "band": band, "band_reason": band_reason, "low_volume": low_volume,
            "time_to_exhaustion": math::time_to_exhaustion(remaining, last_hour.bad, 3600.0),
            "top_failure_reasons": top(&st.reasons, from, now, "reason", "count", None).into_iter().filter(|_| tenant.is_none()).collect::<Vec<_>>(),
            "top_clients": top(&st.clients, from, now, "client_id", "bad", tenant),
            "top_platforms": if tenant.is_none() { platform_top(e, i, from, now) } else { Vec::new() },
            "postmortem_required": postmortem,
        }));
    }
    let band = match tenant {
        None => overall(e, hard_stops, now).0,
        Some(_) => {
            let worst = slos
                .iter()
                .filter_map(|s| serde_json::from_value::<String>(s["band"].clone()).ok())
                .fold(Band::Green, |acc, b| {
                    acc.max(match b.as_str() {
                        "RED" => Band::Red,
                        "YELLOW" => Band::Yellow,
                        _ => Band::Green,
                    })
                });
            if visible_stops.is_empty() {
                worst
            } else {
                Band::Red
            }
        }
    };
    json!({
        "band": band,
        "evaluated_at": rfc3339(now),
        "scope": match scope { Scope::All => "all".to_string(), Scope::Tenant(t) => format!("tenant:{t}") },
        "hard_stops": visible_stops,
        "in_doubt": in_doubt,
        "slos": slos,
    })
}

fn platform_top(e: &Engine, i: usize, from: Millis, now: Millis) -> Vec<Value> {
    let mut v: Vec<(String, u64)> = e.state.slos[i]
        .platforms
        .iter()
        .map(|(p, s)| {
            (
                if p.is_empty() {
                    "(none)".to_string()
                } else {
                    p.clone()
                },
                s_bad(s, from, now),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.into_iter()
        .take(5)
        .map(|(p, n)| json!({"platform": p, "bad": n}))
        .collect()
}

fn s_bad(s: &super::engine::Series, from: Millis, now: Millis) -> u64 {
    s.sum(from, now, now).bad
}

/// Incident windows relevant to an SLO's postmortem rule: hard stops and its page episodes.
pub(super) fn incidents(
    e: &Engine,
    slo: &str,
    stops: &[HardStop],
    now: Millis,
) -> Vec<(Millis, Millis)> {
    let mut out: Vec<(Millis, Millis)> = stops
        .iter()
        .map(|s| {
            (
                s.created_ms,
                s.cleared_at
                    .as_deref()
                    .and_then(crate::clock::parse_rfc3339)
                    .unwrap_or(now),
            )
        })
        .collect();
    out.extend(
        e.state
            .episodes
            .iter()
            .filter(|ep| ep.slo == slo && ep.severity == Severity::Page)
            .map(|ep| (ep.start_ms, ep.end_ms.unwrap_or(now))),
    );
    out
}
