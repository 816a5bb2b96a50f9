//! Runner-reported SLI events (`POST /v1/events`): parsed and validated one by one.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::{Millis, parse_rfc3339};
use crate::config::{Action, Lane};
use crate::slo::{EventKind, Tags};

/// One validated runner event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunnerEvent {
    pub id: String,
    pub kind: EventKind,
    pub tenant: String,
    pub client_id: Option<String>,
    pub platform: Option<String>,
    pub lane: Option<Lane>,
    pub action_type: Option<Action>,
    /// When it happened (the time its SLI counts at).
    pub at_ms: Millis,
    pub detail: Detail,
}

/// The type-specific part of an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Detail {
    JobStarted {
        job_id: String,
        kind: String,
        latency_ms: Millis,
    },
    EpisodeFinished {
        episode_id: String,
        completed: bool,
        outcome: String,
        side_effects: bool,
    },
    PostVerified {
        audit_id: Option<String>,
        idempotency_key: Option<String>,
        latency_ms: Option<Millis>,
    },
    Latency {
        event_id: String,
        latency_ms: Millis,
    },
    WrongAccount {
        account: String,
        detail: String,
    },
    DependencyIncident {
        platform: String,
        start_ms: Millis,
        end_ms: Millis,
    },
}

impl RunnerEvent {
    pub fn tags(&self) -> Tags {
        Tags {
            client_id: self.client_id.clone().or_else(|| Some(self.tenant.clone())),
            platform: self.platform.clone(),
            lane: self.lane,
            action_type: self.action_type,
        }
    }
}

fn text(v: &Value, k: &str) -> Result<String, String> {
    match v.get(k) {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 512 => Ok(s.clone()),
        Some(_) => Err(format!("{k} must be a non-empty string (≤ 512 bytes)")),
        None => Err(format!("{k} is required")),
    }
}

fn opt_text(v: &Value, k: &str) -> Result<Option<String>, String> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => text(v, k).map(Some),
    }
}

fn time(v: &Value, k: &str) -> Result<Millis, String> {
    let s = text(v, k)?;
    parse_rfc3339(&s).ok_or_else(|| format!("{k} must be an RFC 3339 timestamp, got {s:?}"))
}

fn opt_time(v: &Value, k: &str) -> Result<Option<Millis>, String> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => time(v, k).map(Some),
    }
}

fn enum_tag<T: serde::de::DeserializeOwned>(tags: &Value, k: &str) -> Result<Option<T>, String> {
    match tags.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|_| format!("tags.{k} has an unknown value {v}")),
    }
}

/// Validates one event. `tenant` is the caller's tenant (a tenant token), or the event's
/// `tenant` field when the admin posts it.
pub fn parse(v: &Value, caller_tenant: Option<&str>, now: Millis) -> Result<RunnerEvent, String> {
    if !v.is_object() {
        return Err("an event must be a JSON object".into());
    }
    let id = text(v, "id")?;
    let kind: EventKind = serde_json::from_value(v.get("type").cloned().unwrap_or(Value::Null))
        .map_err(|_| format!("type must be one of job_started, episode_finished, post_verified, inbound_visible, auto_reply_sent, wrong_account_detected, dependency_incident; got {}", v.get("type").unwrap_or(&Value::Null)))?;
    let tenant = match caller_tenant {
        Some(t) => {
            if let Some(claimed) = opt_text(v, "tenant")?
                && claimed != t
            {
                return Err(format!("tenant {claimed:?} is not the caller's tenant"));
            }
            t.to_string()
        }
        None => text(v, "tenant")
            .map_err(|e| format!("{e} (the admin token must name the event's tenant)"))?,
    };
    let tags = v.get("tags").cloned().unwrap_or(Value::Null);
    if !(tags.is_null() || tags.is_object()) {
        return Err("tags must be an object".into());
    }
    let (at_ms, detail) = match kind {
        EventKind::JobStarted => {
            let (scheduled, started) = (time(v, "scheduled_at")?, time(v, "started_at")?);
            let kind = text(v, "kind")?;
            (
                started,
                Detail::JobStarted {
                    job_id: text(v, "job_id")?,
                    kind,
                    latency_ms: (started - scheduled).max(0),
                },
            )
        }
        EventKind::EpisodeFinished => {
            let outcome = text(v, "outcome")?;
            if !matches!(
                outcome.as_str(),
                "completed" | "human_intervention" | "failed"
            ) {
                return Err("outcome must be completed, human_intervention or failed".into());
            }
            let side_effects = match v.get("side_effects") {
                Some(Value::Bool(b)) => *b,
                Some(Value::Number(n)) => {
                    n.as_u64()
                        .ok_or("side_effects must be a boolean or a count")?
                        > 0
                }
                _ => return Err("side_effects is required (boolean or count)".into()),
            };
            let at = opt_time(v, "finished_at")?.unwrap_or(now);
            (
                at,
                Detail::EpisodeFinished {
                    episode_id: text(v, "episode_id")?,
                    completed: outcome == "completed",
                    outcome,
                    side_effects,
                },
            )
        }
        EventKind::PostVerified => {
            let (audit_id, key) = (opt_text(v, "audit_id")?, opt_text(v, "idempotency_key")?);
            if audit_id.is_none() && key.is_none() {
                return Err("post_verified needs audit_id or idempotency_key".into());
            }
            let published = time(v, "published_at")?;
            if !v.as_object().is_some_and(|o| o.contains_key("visible_at")) {
                return Err(
                    "visible_at is required (a timestamp, or null when the post was not found)"
                        .into(),
                );
            }
            let visible = opt_time(v, "visible_at")?;
            (
                published,
                Detail::PostVerified {
                    audit_id,
                    idempotency_key: key,
                    latency_ms: visible.map(|t| (t - published).max(0)),
                },
            )
        }
        EventKind::InboundVisible | EventKind::AutoReplySent => {
            let created = time(v, "created_at")?;
            let done_key = if kind == EventKind::InboundVisible {
                "visible_at"
            } else {
                "sent_at"
            };
            let done = time(v, done_key)?;
            (
                created,
                Detail::Latency {
                    event_id: text(v, "event_id")?,
                    latency_ms: (done - created).max(0),
                },
            )
        }
        EventKind::WrongAccountDetected => {
            let at = opt_time(v, "at")?.unwrap_or(now);
            (
                at,
                Detail::WrongAccount {
                    account: text(v, "account")?,
                    detail: text(v, "detail")?,
                },
            )
        }
        EventKind::DependencyIncident => {
            let (start, end) = (time(v, "start")?, time(v, "end")?);
            if end < start {
                return Err("end is before start".into());
            }
            (
                start,
                Detail::DependencyIncident {
                    platform: text(v, "platform")?,
                    start_ms: start,
                    end_ms: end,
                },
            )
        }
    };
    if at_ms > now + 300_000 {
        return Err("the event's time is more than 5 minutes in the future".into());
    }
    // Figures are kept per client; a tenant reports for itself only.
    let client_id = opt_text(&tags, "client_id")?;
    if let Some(c) = &client_id
        && c != &tenant
    {
        return Err(format!(
            "tags.client_id {c:?} is not the event's tenant {tenant:?}"
        ));
    }
    Ok(RunnerEvent {
        id,
        kind,
        tenant,
        client_id,
        platform: opt_text(&tags, "platform")?,
        lane: enum_tag(&tags, "lane")?,
        action_type: enum_tag(&tags, "action_type")?,
        at_ms,
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: Millis = 1_800_000_000_000;

    #[test]
    fn job_started_measures_start_latency() {
        let e = parse(
            &json!({"id": "e1", "type": "job_started", "job_id": "j1", "kind": "publish",
                    "scheduled_at": "2027-01-15T08:00:00Z", "started_at": "2027-01-15T08:03:00Z",
                    "tags": {"platform": "instagram", "lane": "api"}}),
            Some("acme"),
            NOW,
        )
        .unwrap();
        assert_eq!(
            e.detail,
            Detail::JobStarted {
                job_id: "j1".into(),
                kind: "publish".into(),
                latency_ms: 180_000
            }
        );
        assert_eq!((e.tenant.as_str(), e.lane), ("acme", Some(Lane::Api)));
        assert_eq!(e.tags().client_id.as_deref(), Some("acme"));
    }

    #[test]
    fn bad_events_say_why() {
        let cases = [
            (json!({"type": "job_started"}), "id is required"),
            (json!({"id": "x", "type": "nope"}), "type must be"),
            (
                json!({"id": "x", "type": "post_verified", "published_at": "2027-01-15T08:00:00Z", "visible_at": null}),
                "audit_id or idempotency_key",
            ),
            (
                json!({"id": "x", "type": "post_verified", "audit_id": "a", "published_at": "2027-01-15T08:00:00Z"}),
                "visible_at is required",
            ),
            (
                json!({"id": "x", "type": "episode_finished", "episode_id": "e", "outcome": "meh", "side_effects": 1}),
                "outcome must be",
            ),
            (
                json!({"id": "x", "type": "inbound_visible", "event_id": "i", "created_at": "yesterday", "visible_at": "2027-01-15T08:00:00Z"}),
                "RFC 3339",
            ),
            (
                json!({"id": "x", "type": "wrong_account_detected", "account": "a", "detail": "d", "tenant": "other"}),
                "not the caller's tenant",
            ),
            (json!([1]), "JSON object"),
        ];
        for (v, want) in cases {
            let e = parse(&v, Some("acme"), NOW).unwrap_err();
            assert!(e.contains(want), "{v}: {e}");
        }
        assert!(parse(&json!({"id": "x", "type": "wrong_account_detected", "account": "a", "detail": "d"}), None, NOW).unwrap_err().contains("admin token"));
    }

    #[test]
    fn post_not_found_has_no_latency() {
        let e = parse(
            &json!({"id": "v", "type": "post_verified", "idempotency_key": "k", "published_at": "2027-01-15T08:00:00Z", "visible_at": null}),
            Some("acme"),
            NOW,
        )
        .unwrap();
        assert!(matches!(
            e.detail,
            Detail::PostVerified {
                latency_ms: None,
                ..
            }
        ));
    }
}
