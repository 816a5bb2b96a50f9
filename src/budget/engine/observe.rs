//! Folding in: committed audit records and runner events become per-SLO good and bad counts.

use super::{
    Counted, DependencyIncident, Engine, HOUR, MAX_PENDING, MAX_SERIES, OTHER, Pending, Series,
};
use crate::budget::events::{Detail, RunnerEvent};
use crate::budget::ring::Ring;
use crate::call::FailureClass;
use crate::clock::Millis;
use crate::journal::{AuditRecord, Outcome, RecordKind};
use crate::slo::{Slo, Source, Tags};

fn pending_key(tenant: &str, key: &str) -> String {
    format!("{tenant}\u{1f}{key}")
}
impl Engine {
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
                    _ => Err(r.failure_summary()),
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
