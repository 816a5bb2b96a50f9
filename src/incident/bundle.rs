//! The postmortem bundle of one incident: the incident, its timeline, top failure reasons and
//! impacted clients and platforms, as one JSON document.
//!
//! Three steps: [`plan`] takes what the budget engine and the hard stops know (under the
//! engine's lock, bounded work), [`collect`] streams the journal's audit records and runner
//! events of the window from a read connection (memory bounded by `limit`), and [`assemble`]
//! builds the document. Only [`collect`] does I/O; time is always a parameter.

use std::collections::BTreeMap;

use rusqlite::{Connection, params};
use serde_json::{Value, json};

use super::{Incident, Kind};
use crate::budget::{Engine, Scope};
use crate::clock::{Millis, parse_rfc3339, rfc3339};
use crate::journal::{AuditRecord, HardStop, JournalError, Outcome, RecordKind};
use crate::slo::Severity;

/// Version of the bundle document (`bundle_version`).
pub const BUNDLE_VERSION: u64 = 1;
/// Audit records (and, separately, runner events) a bundle holds at most by default.
pub const DEFAULT_LIMIT: usize = 10_000;
/// Time before the start and after the end a bundle covers by default.
pub const DEFAULT_MARGIN_MS: Millis = 15 * 60_000;
/// Longest margin accepted.
pub const MAX_MARGIN_MS: Millis = 24 * 3_600_000;
/// Distinct clients, platforms and reasons counted before the rest share "(other)".
const MAX_KEYS: usize = 1000;
/// Rows listed in each top list.
const TOP: usize = 10;

/// Output format of a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Markdown,
}

impl Format {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "json" => Some(Self::Json),
            "md" | "markdown" => Some(Self::Markdown),
            _ => None,
        }
    }
}

/// A margin: a duration of at most 24h (`0s`… is not a duration; use `1s`).
pub fn parse_margin(v: &str) -> Result<i64, String> {
    let d = crate::config::parse_duration(v).map_err(|e| format!("margin: {e}"))?;
    let ms = d.as_millis().min(i64::MAX as u128) as i64;
    if ms > MAX_MARGIN_MS {
        return Err(format!("margin={v:?}: at most 24h"));
    }
    Ok(ms)
}

/// A record limit in 1..=10000.
pub fn parse_limit(v: &str) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if (1..=DEFAULT_LIMIT).contains(&n) => Ok(n),
        _ => Err(format!(
            "limit={v:?}: expected a number from 1 to {}",
            DEFAULT_LIMIT
        )),
    }
}

/// What a bundle covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub margin_ms: Millis,
    pub limit: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            margin_ms: DEFAULT_MARGIN_MS,
            limit: DEFAULT_LIMIT,
        }
    }
}

/// One timeline entry: its time, an order among entries of the same millisecond, the JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub at_ms: Millis,
    /// Causes first: records (0), hard stops and outages (1), alerts (2), bands (3), markers (4).
    pub rank: u8,
    /// Journal seq of records and events (ties within a rank).
    pub seq: u64,
    pub value: Value,
}

impl Entry {
    fn new(at_ms: Millis, rank: u8, seq: u64, kind: &str, mut fields: Value) -> Self {
        if let Value::Object(m) = &mut fields {
            m.insert("type".into(), kind.into());
            m.insert("at".into(), rfc3339(at_ms).into());
            m.insert("at_ms".into(), at_ms.into());
        }
        Self {
            at_ms,
            rank,
            seq,
            value: fields,
        }
    }
}

/// What [`plan`] decided: the window, which records belong, and the engine's own entries.
#[derive(Debug, Clone)]
pub struct Plan {
    pub incident: Incident,
    pub scope: Scope,
    pub options: Options,
    /// The window with its margins.
    pub from_ms: Millis,
    pub to_ms: Millis,
    /// Records of these tenants only (`None`: any); a tenant scope is always just itself.
    pub tenants: Option<Vec<String>>,
    /// Records of these platforms, or without a platform (`None`: any).
    pub platforms: Option<Vec<String>>,
    pub entries: Vec<Entry>,
}

/// Plans the bundle of `incident` for `scope` at `now`.
pub fn plan(
    e: &Engine,
    stops: &[HardStop],
    incident: Incident,
    scope: &Scope,
    options: Options,
    now: Millis,
) -> Plan {
    let end = incident.end_or(now);
    let lookback = if incident.kind == Kind::PageAlert {
        super::page_lookback(e)
    } else {
        0
    };
    let (from_ms, to_ms) = (
        incident.start_ms - lookback - options.margin_ms,
        end + options.margin_ms,
    );
    let inside = |t: Millis| from_ms <= t && t <= to_ms;
    let mut entries = vec![Entry::new(
        incident.start_ms,
        4,
        0,
        "incident",
        json!({"event": "start", "incident_id": incident.id, "detail": incident.trigger}),
    )];
    if let Some(t) = incident.end_ms {
        entries.push(Entry::new(
            t,
            4,
            0,
            "incident",
            json!({"event": "end", "incident_id": incident.id}),
        ));
    }
    let tenant = match scope {
        Scope::All => None,
        Scope::Tenant(t) => Some(t.as_str()),
    };
    // Hard stops of the window that this scope may see.
    for s in stops {
        if tenant.is_some() && s.tenant.as_deref() != tenant {
            continue;
        }
        let base = json!({"hard_stop_id": s.id, "kind": s.kind, "tenant": s.tenant, "account": s.account, "target": s.target});
        if inside(s.created_ms) {
            let mut v = base.clone();
            v["event"] = "tripped".into();
            v["reason"] = s.reason.clone().into();
            v["audit_id"] = json!(s.audit_id);
            entries.push(Entry::new(s.created_ms, 1, 0, "hard_stop", v));
        }
        if let Some(t) = s.cleared_at.as_deref().and_then(parse_rfc3339)
            && inside(t)
        {
            let mut v = base;
            v["event"] = "cleared".into();
            v["cleared_by"] = json!(s.cleared_by);
            v["clear_reason"] = json!(s.clear_reason);
            entries.push(Entry::new(t, 1, 0, "hard_stop", v));
        }
    }
    for d in e.dependency_incidents() {
        if tenant.is_some() && d.tenant.as_deref() != tenant {
            continue;
        }
        for (t, ev) in [(d.start_ms, "start"), (d.end_ms, "end")] {
            if inside(t) && t <= now {
                entries.push(Entry::new(
                    t,
                    1,
                    0,
                    "dependency_incident",
                    json!({"event": ev, "id": d.id, "tenant": d.tenant, "platform": d.platform}),
                ));
            }
        }
    }
    // Alerts and bands are global figures: the admin's only (as in the status document).
    if tenant.is_none() {
        for ep in e.episodes() {
            let sev = match ep.severity {
                Severity::Page => "page",
                Severity::Ticket => "ticket",
            };
            let marks = [(Some(ep.start_ms), "firing"), (ep.end_ms, "resolved")];
            for (t, ev) in marks {
                if let Some(t) = t
                    && inside(t)
                {
                    entries.push(Entry::new(
                        t,
                        2,
                        0,
                        "alert",
                        json!({"event": ev, "slo": ep.slo, "severity": sev}),
                    ));
                }
            }
        }
        for c in e.band_changes().iter().filter(|c| inside(c.at_ms)) {
            entries.push(Entry::new(
                c.at_ms,
                3,
                0,
                "band_change",
                json!({"from": c.from, "to": c.to, "reasons": c.reasons}),
            ));
        }
    }
    let tenants = match tenant {
        Some(t) => Some(vec![t.to_string()]),
        None if incident.tenants.is_empty() => None,
        None => Some(incident.tenants.clone()),
    };
    // A hard stop's records are its tenant's (or everyone's); an outage's, its platform's.
    let platforms = match incident.kind {
        Kind::DependencyIncident => Some(incident.platforms.clone()),
        _ => None,
    };
    Plan {
        incident,
        scope: scope.clone(),
        options,
        from_ms,
        to_ms,
        tenants,
        platforms,
        entries,
    }
}

/// Counts per key, bounded.
#[derive(Debug, Default, Clone)]
struct Tally(BTreeMap<String, [u64; 3]>);

impl Tally {
    fn add(&mut self, key: &str, slot: usize) {
        let key = if self.0.len() >= MAX_KEYS && !self.0.contains_key(key) {
            "(other)"
        } else {
            key
        };
        self.0.entry(key.to_string()).or_default()[slot] += 1;
    }

    /// Top rows by failures + refusals, then records, then name.
    fn top(&self, name: &str) -> Vec<Value> {
        let mut v: Vec<(&String, &[u64; 3])> = self.0.iter().collect();
        v.sort_by(|a, b| {
            (b.1[1] + b.1[2])
                .cmp(&(a.1[1] + a.1[2]))
                .then(b.1[0].cmp(&a.1[0]))
                .then(a.0.cmp(b.0))
        });
        v.into_iter()
            .take(TOP)
            .map(|(k, n)| json!({name: k, "records": n[0], "failures": n[1], "refused": n[2]}))
            .collect()
    }
}

/// What [`collect`] read from the journal.
#[derive(Debug, Clone, Default)]
pub struct Collected {
    pub entries: Vec<Entry>,
    /// Matching audit records seen, and how many of them the bundle holds.
    pub records_matched: u64,
    pub records_included: u64,
    pub events_matched: u64,
    pub events_included: u64,
    clients: Tally,
    platforms: Tally,
    reasons: BTreeMap<String, u64>,
    /// The audit chain head when the read began: (seq, hash).
    pub chain: (u64, String),
}

fn wanted(list: &Option<Vec<String>>, v: Option<&str>, none_ok: bool) -> bool {
    match (list, v) {
        (None, _) => true,
        (Some(_), None) => none_ok,
        (Some(l), Some(v)) => l.iter().any(|x| x == v),
    }
}

/// Streams the window's audit records and runner events that `plan` selects, in seq order,
/// in one read transaction. Aggregates count every match; the entries stop at the limit.
pub fn collect(conn: &Connection, plan: &Plan) -> Result<Collected, JournalError> {
    let tx = conn.unchecked_transaction()?;
    let (head_seq, head_hash, _) = crate::journal::export::chain_head(&tx)?;
    let mut out = Collected {
        chain: (head_seq, head_hash),
        ..Default::default()
    };
    let scope_tenant = match &plan.scope {
        Scope::All => None,
        Scope::Tenant(t) => Some(t.clone()),
    };
    let limit = plan.options.limit as u64;
    {
        // The tenant condition is in SQL: a tenant's bundle never reads another's rows.
        let mut st = tx.prepare(
            "SELECT seq, record FROM audit WHERE seq <= ?1 AND time_ms >= ?2 AND time_ms <= ?3
               AND (?4 IS NULL OR tenant = ?4) ORDER BY seq",
        )?;
        let mut rows = st.query(params![
            head_seq as i64,
            plan.from_ms,
            plan.to_ms,
            scope_tenant
        ])?;
        while let Some(row) = rows.next()? {
            let seq = row.get::<_, i64>(0)? as u64;
            let text: String = row.get(1)?;
            let r: AuditRecord = serde_json::from_str(&text)
                .map_err(|e| JournalError::Corrupt(format!("audit record {seq}: {e}")))?;
            // Operator actions without a tenant (flag changes, audit-gap trips) concern
            // everyone: they belong to every admin bundle.
            let global_op = r.kind == RecordKind::Operator && r.tenant.is_none();
            if !(global_op
                || (wanted(&plan.tenants, r.tenant.as_deref(), false)
                    && wanted(&plan.platforms, r.platform.as_deref(), true)))
            {
                continue;
            }
            out.records_matched += 1;
            if r.kind != RecordKind::Operator {
                let slot = match r.outcome {
                    Outcome::ErrorResult | Outcome::Failed | Outcome::InDoubt => 1,
                    Outcome::Refused => 2,
                    _ => 0,
                };
                for (tally, key) in [
                    (&mut out.clients, r.tenant.as_deref()),
                    (&mut out.platforms, r.platform.as_deref()),
                ] {
                    let key = key.unwrap_or("(none)");
                    tally.add(key, 0);
                    if slot > 0 {
                        tally.add(key, slot);
                    }
                }
                if slot > 0 {
                    let k = r.failure_summary();
                    if out.reasons.len() < MAX_KEYS || out.reasons.contains_key(&k) {
                        *out.reasons.entry(k).or_default() += 1;
                    } else {
                        *out.reasons.entry("(other)".into()).or_default() += 1;
                    }
                }
            }
            if out.records_included >= limit {
                continue;
            }
            out.records_included += 1;
            let at = parse_rfc3339(&r.time).unwrap_or(plan.from_ms);
            let kind = if r.kind == RecordKind::Operator {
                "operator_action"
            } else {
                "audit_record"
            };
            let record = serde_json::from_str::<Value>(&text)
                .map_err(|e| JournalError::Corrupt(format!("audit record {seq}: {e}")))?;
            out.entries
                .push(Entry::new(at, 0, seq, kind, json!({"record": record})));
        }
    }
    {
        let mut st = tx.prepare(
            "SELECT seq, tenant, type, time_ms, body FROM sli_event
              WHERE time_ms >= ?1 AND time_ms <= ?2 AND (?3 IS NULL OR tenant = ?3) ORDER BY seq",
        )?;
        let mut rows = st.query(params![plan.from_ms, plan.to_ms, scope_tenant])?;
        while let Some(row) = rows.next()? {
            let seq = row.get::<_, i64>(0)? as u64;
            let tenant: String = row.get(1)?;
            let kind: String = row.get(2)?;
            let at: Millis = row.get(3)?;
            let body: Value = serde_json::from_str(&row.get::<_, String>(4)?).unwrap_or_default();
            let platform = body.get("platform").and_then(Value::as_str);
            if !(wanted(&plan.tenants, Some(&tenant), false)
                && wanted(&plan.platforms, platform, true))
            {
                continue;
            }
            out.events_matched += 1;
            if kind == "wrong_account_detected" {
                let d = &body["detail"];
                let k = format!(
                    "wrong_account: {}: {}",
                    d["account"].as_str().unwrap_or(""),
                    d["detail"].as_str().unwrap_or("")
                );
                let k: String = k.chars().take(100).collect();
                *out.reasons.entry(k).or_default() += 1;
            }
            if out.events_included >= limit {
                continue;
            }
            out.events_included += 1;
            out.entries.push(Entry::new(
                at,
                0,
                seq,
                "sli_event",
                json!({"tenant": tenant, "kind": kind, "body": body}),
            ));
        }
    }
    tx.finish()?;
    Ok(out)
}

/// The bundle document.
pub fn assemble(plan: Plan, collected: Collected, now: Millis) -> Value {
    let mut entries = plan.entries;
    entries.extend(collected.entries);
    // Audit records before runner events of the same millisecond and rank, then by seq.
    entries.sort_by(|a, b| {
        (a.at_ms, a.rank, a.value["type"] == "sli_event", a.seq).cmp(&(
            b.at_ms,
            b.rank,
            b.value["type"] == "sli_event",
            b.seq,
        ))
    });
    let mut reasons: Vec<(String, u64)> = collected.reasons.into_iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let limit = plan.options.limit as u64;
    json!({
        "bundle_version": BUNDLE_VERSION,
        "generated_at": rfc3339(now),
        "scope": match &plan.scope { Scope::All => "all".to_string(), Scope::Tenant(t) => format!("tenant:{t}") },
        "incident": plan.incident,
        "window": {
            "from": rfc3339(plan.from_ms), "to": rfc3339(plan.to_ms),
            "margin_s": plan.options.margin_ms / 1000,
            "tenants": plan.tenants, "platforms": plan.platforms,
        },
        "timeline": entries.into_iter().map(|e| e.value).collect::<Vec<_>>(),
        "audit_records": {
            "matched": collected.records_matched, "included": collected.records_included,
            "limit": limit, "truncated": collected.records_matched > collected.records_included,
        },
        "sli_events": {
            "matched": collected.events_matched, "included": collected.events_included,
            "limit": limit, "truncated": collected.events_matched > collected.events_included,
        },
        "top_failure_reasons": reasons.into_iter().take(TOP).map(|(r, n)| json!({"reason": r, "count": n})).collect::<Vec<_>>(),
        "impacted_clients": collected.clients.top("client_id"),
        "impacted_platforms": collected.platforms.top("platform"),
        "chain": {"seq": collected.chain.0, "hash": collected.chain.1},
    })
}
