//! SLO definitions (`slo_definitions.yml`): SLOs, burn-alert tiers, bands and hard-stop rules,
//! parsed and validated with file:line:column errors.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::call::FailureClass;
use crate::config::{Action, ConfigError, Lane, parse_duration};

/// The SLO file shipped with toolgate (policy v1), used when the config names none.
pub const EMBEDDED: &str = include_str!("../slo_definitions.yml");

/// Everything `slo_definitions.yml` defines.
#[derive(Debug, Clone)]
pub struct SloSet {
    pub slos: Vec<Slo>,
    pub alerts: Vec<AlertTier>,
    pub bands: Bands,
    pub hard_stops: HardStopRules,
    pub postmortem_budget_fraction: f64,
}

impl SloSet {
    /// The longest SLO window and the SLO that has it (`None` without SLOs).
    pub fn longest_window(&self) -> Option<(&str, Duration)> {
        self.slos
            .iter()
            .max_by_key(|s| s.window)
            .map(|s| (s.id.as_str(), s.window))
    }
}

/// One service level objective.
#[derive(Debug, Clone)]
pub struct Slo {
    pub id: String,
    pub name: String,
    /// Fraction of good events required, in (0, 1].
    pub target: f64,
    pub window: Duration,
    pub min_events: u64,
    /// Pages (§6.2); otherwise only ticket-severity tiers apply.
    pub paging: bool,
    pub sli: Sli,
    /// Failure classes that consume this SLO's budget.
    pub budget_classes: Vec<FailureClass>,
    pub exclude_dependency_incidents: bool,
}

/// Where an SLO's events come from and which of them it counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Sli {
    pub source: Source,
    /// For `source: event`: which event type.
    pub event: Option<EventKind>,
    pub filter: Filter,
    /// Browser lane (§3 SLO-02): success needs proof.
    pub require_proof: bool,
    /// Latency SLIs: good when within this.
    pub threshold: Option<Duration>,
    /// Latency SLIs per job kind (SLO-04).
    pub threshold_by_kind: BTreeMap<String, Duration>,
}

/// SLI sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Side-effect attempts (one per idempotency key) seen by toolgate.
    ToolCalls,
    /// Successful side effects: good when they carry proof (SLO-08).
    Audit,
    /// Executed side effects against detected wrong-account actions (SLO-07).
    Safety,
    /// Runner-reported events of one type.
    Event,
}

/// Runner event types (POST /v1/events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    JobStarted,
    EpisodeFinished,
    PostVerified,
    InboundVisible,
    AutoReplySent,
    WrongAccountDetected,
    DependencyIncident,
}

/// Tag filters; an empty list matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    #[serde(default)]
    pub client_id: Vec<String>,
    #[serde(default)]
    pub platform: Vec<String>,
    #[serde(default)]
    pub lane: Vec<Lane>,
    #[serde(default)]
    pub action_type: Vec<Action>,
    /// job_started: job kinds.
    #[serde(default)]
    pub kind: Vec<String>,
    /// episode_finished: with or without side effects.
    pub side_effects: Option<bool>,
}

/// Tags an SLI event carries (§12.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags {
    pub client_id: Option<String>,
    pub platform: Option<String>,
    pub lane: Option<Lane>,
    pub action_type: Option<Action>,
}

impl Filter {
    /// Whether an event with these tags is selected.
    pub fn matches(&self, t: &Tags) -> bool {
        fn ok<T: PartialEq>(allowed: &[T], v: Option<&T>) -> bool {
            allowed.is_empty() || v.is_some_and(|v| allowed.contains(v))
        }
        ok(&self.client_id, t.client_id.as_ref())
            && ok(&self.platform, t.platform.as_ref())
            && ok(&self.lane, t.lane.as_ref())
            && ok(&self.action_type, t.action_type.as_ref())
    }
}

/// Alert severity.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Ticket,
    Page,
}

/// One multiwindow burn-rate alert tier.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertTier {
    pub severity: Severity,
    pub long: Duration,
    pub short: Duration,
    /// Fires when both windows burn faster than this.
    pub burn_rate: f64,
}

/// Band thresholds (§7.1).
#[derive(Debug, Clone, PartialEq)]
pub struct Bands {
    pub green_min_remaining: f64,
    pub yellow_min_remaining: f64,
    pub page_sustained: Duration,
    pub ticket_repeats: u32,
    pub ticket_repeat_window: Duration,
}

/// Hard-stop triggers (§7.2).
#[derive(Debug, Clone, PartialEq)]
pub struct HardStopRules {
    pub wrong_account: bool,
    pub spam_loop: bool,
    /// (SLO id, threshold): an audit gap trips when that SLO's SLI falls below it.
    pub audit_completeness: Option<(String, f64)>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    version: Spanned<u32>,
    #[serde(default)]
    defaults: RawDefaults,
    alerts: Option<Vec<Spanned<RawTier>>>,
    bands: Option<RawBands>,
    hard_stops: Option<RawHardStops>,
    slos: Vec<Spanned<RawSlo>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    window: Option<String>,
    min_events: Option<u64>,
    budget_classes: Option<Vec<FailureClass>>,
    exclude_dependency_incidents: Option<bool>,
    postmortem_budget_fraction: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    severity: Severity,
    long: String,
    short: String,
    budget_fraction: Option<f64>,
    burn_rate: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBands {
    green_min_remaining: f64,
    yellow_min_remaining: f64,
    page_sustained: String,
    ticket_repeats: u32,
    ticket_repeat_window: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHardStops {
    #[serde(default = "yes")]
    wrong_account: bool,
    #[serde(default = "yes")]
    spam_loop: bool,
    audit_completeness: Option<RawAuditRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuditRule {
    slo: String,
    below: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlo {
    id: String,
    name: String,
    target: f64,
    window: Option<String>,
    min_events: Option<u64>,
    #[serde(default)]
    paging: bool,
    budget_classes: Option<Vec<FailureClass>>,
    exclude_dependency_incidents: Option<bool>,
    sli: RawSli,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSli {
    source: Source,
    event: Option<EventKind>,
    #[serde(default)]
    filter: Filter,
    #[serde(default)]
    require_proof: bool,
    threshold: Option<String>,
    #[serde(default)]
    threshold_by_kind: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

/// Loads and validates an SLO file.
pub fn load(path: &Path) -> Result<SloSet, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        line: 0,
        column: 0,
        field: "(file)".into(),
        message: format!("cannot read: {e}"),
    })?;
    parse(&text, &file)
}

/// The SLOs shipped with toolgate.
pub fn embedded() -> SloSet {
    parse(EMBEDDED, "<embedded slo_definitions.yml>")
        .expect("the shipped SLO file is valid (unit-tested)")
}

/// Parses and validates SLO definitions from text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<SloSet, ConfigError> {
    let err = |line: u64, column: u64, field: String, message: String| ConfigError {
        file: file.into(),
        line,
        column,
        field,
        message,
    };
    let raw: RawFile = serde_saphyr::from_str(text).map_err(|e| {
        let (l, c) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        err(
            l,
            c,
            "(yaml)".into(),
            e.to_string().lines().next().unwrap_or_default().into(),
        )
    })?;
    let top = raw.version.referenced;
    let at = |f: &str, m: String| err(top.line(), top.column(), f.into(), m);
    if raw.version.value != 1 {
        return Err(at("version", "only version 1 is supported".into()));
    }
    let dur = |field: &str, s: &str| parse_duration(s).map_err(|m| at(field, m));
    let d = raw.defaults;
    let default_window = dur("defaults.window", d.window.as_deref().unwrap_or("28d"))?;
    let default_classes = d.budget_classes.unwrap_or_else(|| {
        vec![
            FailureClass::PlatformRejected,
            FailureClass::ToolFailure,
            FailureClass::RunnerFailure,
            FailureClass::VerificationFailed,
        ]
    });
    let postmortem = d.postmortem_budget_fraction.unwrap_or(0.2);
    if !(postmortem > 0.0 && postmortem <= 1.0) {
        return Err(at(
            "defaults.postmortem_budget_fraction",
            "must be in (0, 1]".into(),
        ));
    }

    let mut slos = Vec::new();
    let mut ids = HashSet::new();
    for (i, s) in raw.slos.into_iter().enumerate() {
        let (line, column) = (s.referenced.line(), s.referenced.column());
        let s = s.value;
        let e = |f: &str, m: String| err(line, column, format!("slos[{i}].{f}"), m);
        if s.id.is_empty() || !ids.insert(s.id.clone()) {
            return Err(e("id", format!("{:?} is empty or declared twice", s.id)));
        }
        if !(s.target > 0.0 && s.target <= 1.0) {
            return Err(e(
                "target",
                format!("{} must be a fraction in (0, 1], e.g. 0.995", s.target),
            ));
        }
        let window = match &s.window {
            Some(w) => parse_duration(w).map_err(|m| e("window", m))?,
            None => default_window,
        };
        if s.sli.source == Source::Event && s.sli.event.is_none() {
            return Err(e("sli.event", "source: event needs event: <type>".into()));
        }
        if s.sli.source != Source::Event && s.sli.event.is_some() {
            return Err(e(
                "sli.event",
                "only source: event takes an event type".into(),
            ));
        }
        let threshold = s
            .sli
            .threshold
            .as_deref()
            .map(|t| parse_duration(t).map_err(|m| e("sli.threshold", m)))
            .transpose()?;
        let mut by_kind = BTreeMap::new();
        for (k, v) in &s.sli.threshold_by_kind {
            by_kind.insert(
                k.clone(),
                parse_duration(v).map_err(|m| e(&format!("sli.threshold_by_kind.{k}"), m))?,
            );
        }
        let timed = matches!(
            s.sli.event,
            Some(
                EventKind::JobStarted
                    | EventKind::PostVerified
                    | EventKind::InboundVisible
                    | EventKind::AutoReplySent
            )
        );
        if timed && threshold.is_none() && by_kind.is_empty() {
            return Err(e(
                "sli.threshold",
                "this event type measures latency: set threshold or threshold_by_kind".into(),
            ));
        }
        slos.push(Slo {
            id: s.id,
            name: s.name,
            target: s.target,
            window,
            min_events: s.min_events.or(d.min_events).unwrap_or(20),
            paging: s.paging,
            sli: Sli {
                source: s.sli.source,
                event: s.sli.event,
                filter: s.sli.filter,
                require_proof: s.sli.require_proof,
                threshold,
                threshold_by_kind: by_kind,
            },
            budget_classes: s.budget_classes.unwrap_or_else(|| default_classes.clone()),
            exclude_dependency_incidents: s
                .exclude_dependency_incidents
                .or(d.exclude_dependency_incidents)
                .unwrap_or(false),
        });
    }
    if slos.is_empty() {
        return Err(at("slos", "no SLOs defined".into()));
    }

    let mut alerts = Vec::new();
    for (i, t) in raw.alerts.unwrap_or_default().into_iter().enumerate() {
        let (line, column) = (t.referenced.line(), t.referenced.column());
        let t = t.value;
        let e = |f: &str, m: String| err(line, column, format!("alerts[{i}].{f}"), m);
        let long = parse_duration(&t.long).map_err(|m| e("long", m))?;
        let short = parse_duration(&t.short).map_err(|m| e("short", m))?;
        if short >= long {
            return Err(e(
                "short",
                "the short window must be shorter than the long one".into(),
            ));
        }
        let burn_rate = match (t.burn_rate, t.budget_fraction) {
            (Some(r), None) if r > 0.0 => r,
            (None, Some(f)) if f > 0.0 && f <= 1.0 => {
                f * default_window.as_secs_f64() / long.as_secs_f64()
            }
            _ => {
                return Err(e(
                    "burn_rate",
                    "set exactly one of burn_rate (> 0) or budget_fraction (0..1]".into(),
                ));
            }
        };
        alerts.push(AlertTier {
            severity: t.severity,
            long,
            short,
            burn_rate,
        });
    }

    let bands = match raw.bands {
        None => Bands {
            green_min_remaining: 0.5,
            yellow_min_remaining: 0.2,
            page_sustained: Duration::from_secs(900),
            ticket_repeats: 3,
            ticket_repeat_window: Duration::from_secs(7 * 86_400),
        },
        Some(b) => {
            if !(0.0 <= b.yellow_min_remaining
                && b.yellow_min_remaining <= b.green_min_remaining
                && b.green_min_remaining <= 1.0)
            {
                return Err(at(
                    "bands",
                    "need 0 ≤ yellow_min_remaining ≤ green_min_remaining ≤ 1".into(),
                ));
            }
            Bands {
                green_min_remaining: b.green_min_remaining,
                yellow_min_remaining: b.yellow_min_remaining,
                page_sustained: dur("bands.page_sustained", &b.page_sustained)?,
                ticket_repeats: b.ticket_repeats,
                ticket_repeat_window: dur("bands.ticket_repeat_window", &b.ticket_repeat_window)?,
            }
        }
    };
    let hard_stops = match raw.hard_stops {
        None => HardStopRules {
            wrong_account: true,
            spam_loop: true,
            audit_completeness: None,
        },
        Some(h) => {
            let audit = match h.audit_completeness {
                Some(r)
                    if slos.iter().any(|s| s.id == r.slo) && r.below > 0.0 && r.below <= 1.0 =>
                {
                    Some((r.slo, r.below))
                }
                Some(r) => {
                    return Err(at(
                        "hard_stops.audit_completeness",
                        format!(
                            "slo {:?} must be a defined SLO and below a fraction in (0, 1]",
                            r.slo
                        ),
                    ));
                }
                None => None,
            };
            HardStopRules {
                wrong_account: h.wrong_account,
                spam_loop: h.spam_loop,
                audit_completeness: audit,
            }
        }
    };
    Ok(SloSet {
        slos,
        alerts,
        bands,
        hard_stops,
        postmortem_budget_fraction: postmortem,
    })
}

#[cfg(test)]
mod tests;
