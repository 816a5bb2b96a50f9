//! Incidents (§7.2, §7.3, §4.3): hard stops, page-alert episodes and declared dependency
//! incidents as one list, each with its window, trigger, budget consumed and postmortem verdict.
//!
//! Pure functions of the budget engine, the hard stops and `now`: the admin API
//! (`GET /v1/incidents`) and the offline CLI (`toolgate incident`) call the same code, so
//! they agree. [`bundle`] assembles a postmortem bundle, [`markdown`] its Markdown draft.
//!
//! Ids are stable: `hs-<hard stop id>`, `page-<slo>-<start ms>`, `dep-<tenant>:<event id>`.

pub mod bundle;
pub mod markdown;

use std::collections::BTreeSet;

use serde::Serialize;

use crate::budget::{Engine, Scope, math};
use crate::clock::{Millis, parse_rfc3339, rfc3339};
use crate::journal::HardStop;
use crate::slo::Severity;

/// What an incident is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A hard stop (§7.2), from trip to clear.
    HardStop,
    /// A page-severity burn-rate alert episode (§6.1), from firing to resolved.
    PageAlert,
    /// A dependency outage a runner declared (§4.3).
    DependencyIncident,
}

/// Budget one SLO lost during an incident.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Consumption {
    pub slo: String,
    pub name: String,
    /// Valid and bad events inside the incident window.
    pub valid: u64,
    pub bad: u64,
    /// Failures the SLO's budget allows over its whole window (e.g. 28 days) ending now.
    pub allowed_bad: f64,
    /// `bad` as a percentage of `allowed_bad` (100 per failure when the budget is zero).
    pub consumed_pct: f64,
}

/// One incident.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    pub id: String,
    pub kind: Kind,
    pub title: String,
    pub start: String,
    pub start_ms: Millis,
    /// `None` while it is ongoing.
    pub end: Option<String>,
    pub end_ms: Option<Millis>,
    pub ongoing: bool,
    /// Seconds from start to end (to now while ongoing).
    pub duration_s: i64,
    /// What started it, in a sentence.
    pub trigger: String,
    /// Tenants it touched (empty: not tied to tenants, e.g. a platform outage).
    pub tenants: Vec<String>,
    /// Platforms it touched (empty: unknown or all).
    pub platforms: Vec<String>,
    /// The SLO of a page alert.
    pub slo: Option<String>,
    /// The hard stop of a hard-stop incident.
    pub hard_stop: Option<HardStop>,
    /// Scope of the `budget` figures: `all`, or `tenant:<id>` (that tenant's events only).
    pub budget_scope: String,
    /// Budget consumed per SLO during the window (SLOs with events in it), largest first.
    pub budget: Vec<Consumption>,
    /// §7.3: a postmortem with at least one must-do item is mandatory.
    pub postmortem_required: bool,
    /// Why a postmortem is (or is not) required.
    pub postmortem_reasons: Vec<String>,
    /// Other incidents whose windows overlap this one.
    pub related: Vec<String>,
}

impl Incident {
    /// The window's end: its end, or `now` while ongoing.
    pub fn end_or(&self, now: Millis) -> Millis {
        self.end_ms.unwrap_or(now)
    }
}

/// Looks back this far before a page alert fired for the failures that made it fire, when no
/// page tier is configured.
const DEFAULT_LOOKBACK_MS: i64 = 3_600_000;

/// How far before a page alert's start its burn began: the longest page tier's long window.
pub fn page_lookback(e: &Engine) -> Millis {
    e.set()
        .alerts
        .iter()
        .filter(|t| t.severity == Severity::Page)
        .map(|t| t.long.as_millis() as Millis)
        .max()
        .unwrap_or(DEFAULT_LOOKBACK_MS)
}

fn top(mut v: Vec<(String, u64)>, n: usize) -> Vec<(String, u64)> {
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

/// Budget consumed per SLO over `[from, to]` for `scope`.
fn consumption(
    e: &Engine,
    scope: &Scope,
    from: Millis,
    to: Millis,
    now: Millis,
) -> Vec<Consumption> {
    let mut out = Vec::new();
    for (i, slo) in e.set().slos.iter().enumerate() {
        let win = slo.window.as_millis() as Millis;
        let (inside, whole) = match scope {
            Scope::All => (e.counts(i, from, to, now), e.counts(i, now - win, now, now)),
            Scope::Tenant(t) => (
                e.client_counts(i, t, from, to),
                e.client_counts(i, t, now - win, now),
            ),
        };
        if inside.valid() == 0 {
            continue;
        }
        let allowed = math::allowed_bad(slo.target, whole.valid());
        let pct = if inside.bad == 0 {
            0.0
        } else if allowed <= 0.0 {
            100.0 * inside.bad as f64
        } else {
            inside.bad as f64 / allowed * 100.0
        };
        out.push(Consumption {
            slo: slo.id.clone(),
            name: slo.name.clone(),
            valid: inside.valid(),
            bad: inside.bad,
            allowed_bad: (allowed * 1000.0).round() / 1000.0,
            consumed_pct: (pct * 100.0).round() / 100.0,
        });
    }
    out.sort_by(|a, b| {
        b.consumed_pct
            .total_cmp(&a.consumed_pct)
            .then(a.slo.cmp(&b.slo))
    });
    out
}

/// §7.3 over the global figures: an SLO lost at least `postmortem_budget_fraction` of its
/// budget; also every hard stop (an instant freeze, §7.2; SLO-07 has no budget at all).
fn postmortem(
    e: &Engine,
    kind: Kind,
    from: Millis,
    to: Millis,
    now: Millis,
) -> (bool, Vec<String>) {
    let fraction = e.set().postmortem_budget_fraction;
    let mut why: Vec<String> = consumption(e, &Scope::All, from, to, now)
        .into_iter()
        .filter(|c| c.bad > 0 && c.consumed_pct >= fraction * 100.0)
        .map(|c| {
            format!(
                "{} lost {:.1}% of its budget (≥ {:.0}%, §7.3)",
                c.slo,
                c.consumed_pct,
                fraction * 100.0
            )
        })
        .collect();
    if kind == Kind::HardStop {
        why.push("a hard stop is an instant freeze (§7.2)".into());
    }
    if why.is_empty() {
        why.push(format!(
            "no SLO lost {:.0}% of its budget in this window (§7.3)",
            fraction * 100.0
        ));
        return (false, why);
    }
    (true, why)
}

/// Every incident `scope` may see at `now`, oldest first. A tenant sees the hard stops and
/// dependency incidents of its own tenant and the page alerts it had failures in, with budget
/// figures of its own events; page-alert triggers name no failure reasons for it.
pub fn list(e: &Engine, stops: &[HardStop], scope: &Scope, now: Millis) -> Vec<Incident> {
    let tenant = match scope {
        Scope::All => None,
        Scope::Tenant(t) => Some(t.as_str()),
    };
    let budget_scope = match tenant {
        None => "all".to_string(),
        Some(t) => format!("tenant:{t}"),
    };
    let mut out = Vec::new();
    let mut push = |kind: Kind,
                    id: String,
                    title: String,
                    trigger: String,
                    (start, end): (Millis, Option<Millis>),
                    tenants: Vec<String>,
                    platforms: Vec<String>,
                    slo: Option<String>,
                    stop: Option<HardStop>| {
        let to = end.unwrap_or(now);
        let (required, reasons) = postmortem(e, kind, start, to, now);
        out.push(Incident {
            id,
            kind,
            title,
            start: rfc3339(start),
            start_ms: start,
            end: end.map(rfc3339),
            end_ms: end,
            ongoing: end.is_none(),
            duration_s: (to - start).max(0) / 1000,
            trigger,
            tenants,
            platforms,
            slo,
            hard_stop: stop,
            budget_scope: budget_scope.clone(),
            budget: consumption(e, scope, start, to, now),
            postmortem_required: required,
            postmortem_reasons: reasons,
            related: Vec::new(),
        });
    };

    // Hard stops cleared longer ago than the longest SLO window are history, as the engine's
    // episodes and outages are.
    let keep = e
        .set()
        .slos
        .iter()
        .map(|s| s.window.as_millis() as Millis)
        .max()
        .unwrap_or(0);
    for s in stops {
        if tenant.is_some() && s.tenant.as_deref() != tenant {
            continue;
        }
        let end = s.cleared_at.as_deref().and_then(parse_rfc3339);
        if end.is_some_and(|t| t <= now - keep) {
            continue;
        }
        let kind = serde_json::to_value(s.kind)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let who = [
            s.tenant.as_deref().map(|t| format!("tenant {t}")),
            s.account.as_deref().map(|a| format!("account {a}")),
            s.target.as_deref().map(|t| format!("target {t}")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
        push(
            Kind::HardStop,
            format!("hs-{}", s.id),
            format!(
                "{kind} hard stop{}",
                if who.is_empty() {
                    String::new()
                } else {
                    format!(" ({who})")
                }
            ),
            format!("{kind} hard stop tripped: {}", s.reason),
            (s.created_ms, end),
            s.tenant.iter().cloned().collect(),
            Vec::new(),
            None,
            Some(s.clone()),
        );
    }

    let lookback = page_lookback(e);
    for ep in e.episodes().iter().filter(|x| x.severity == Severity::Page) {
        let Some(i) = e.set().slos.iter().position(|s| s.id == ep.slo) else {
            continue;
        };
        let slo = &e.set().slos[i];
        let (from, to) = (ep.start_ms - lookback, ep.end_ms.unwrap_or(now));
        let clients: Vec<String> = top(e.bad_by_client(i, from, to), 64)
            .into_iter()
            .map(|(c, _)| c)
            .filter(|c| !c.is_empty())
            .collect();
        if let Some(t) = tenant
            && !clients.iter().any(|c| c == t)
        {
            continue;
        }
        let platforms: Vec<String> = top(e.bad_by_platform(i, from, to, now), 64)
            .into_iter()
            .map(|(p, _)| p)
            .filter(|p| !p.is_empty())
            .collect();
        let mut trigger = format!(
            "{} ({}) burned its error budget fast enough to page (§6.1)",
            slo.id, slo.name
        );
        if tenant.is_none()
            && let Some((r, n)) = top(e.bad_by_reason(i, from, to), 1).into_iter().next()
        {
            trigger.push_str(&format!("; top failure reason: {r} ({n})"));
        }
        push(
            Kind::PageAlert,
            format!("page-{}-{}", ep.slo, ep.start_ms),
            format!("{} page alert: {}", slo.id, slo.name),
            trigger,
            (ep.start_ms, ep.end_ms),
            match tenant {
                Some(t) => vec![t.to_string()],
                None => clients,
            },
            platforms,
            Some(ep.slo.clone()),
            None,
        );
    }

    for d in e.dependency_incidents() {
        if tenant.is_some() && d.tenant.as_deref() != tenant {
            continue;
        }
        let declared = d.tenant.as_deref().unwrap_or("");
        // A declared incident's end is a claim about the past; one ending later is ongoing.
        let end = (d.end_ms <= now).then_some(d.end_ms);
        push(
            Kind::DependencyIncident,
            format!("dep-{declared}:{}", d.id),
            format!("{} outage (dependency incident)", d.platform),
            format!(
                "dependency incident {:?} declared{} for platform {} (§4.3)",
                d.id,
                if declared.is_empty() {
                    String::new()
                } else {
                    format!(" by tenant {declared}")
                },
                d.platform
            ),
            (d.start_ms, end),
            d.tenant.iter().cloned().collect(),
            vec![d.platform.clone()],
            None,
            None,
        );
    }

    out.sort_by(|a, b| a.start_ms.cmp(&b.start_ms).then(a.id.cmp(&b.id)));
    // Overlaps, among what this scope sees.
    let spans: Vec<(String, Millis, Millis)> = out
        .iter()
        .map(|i| (i.id.clone(), i.start_ms, i.end_or(now)))
        .collect();
    for inc in &mut out {
        let (a, b) = (inc.start_ms, inc.end_or(now));
        inc.related = spans
            .iter()
            .filter(|(id, s, t)| *id != inc.id && *s <= b && a <= *t)
            .map(|(id, _, _)| id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
    }
    out
}

/// The incident with this id, as `scope` sees it.
pub fn find(
    e: &Engine,
    stops: &[HardStop],
    scope: &Scope,
    id: &str,
    now: Millis,
) -> Option<Incident> {
    list(e, stops, scope, now).into_iter().find(|i| i.id == id)
}

/// The list document of `GET /v1/incidents` and `toolgate incident list`.
pub fn list_document(incidents: &[Incident], scope: &Scope, now: Millis) -> serde_json::Value {
    serde_json::json!({
        "generated_at": rfc3339(now),
        "scope": match scope { Scope::All => "all".to_string(), Scope::Tenant(t) => format!("tenant:{t}") },
        "incidents": incidents,
    })
}

#[cfg(test)]
mod tests;
