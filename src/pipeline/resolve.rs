//! Step 1 of a call: which upstream serves the called name and under which policy, and the
//! answer when that upstream is not connected (retryable: nothing was sent).

use std::sync::Arc;

use rmcp::model::ErrorData;

use super::{CallCtx, Pipeline};
use crate::config::{Config, ToolPolicy};
use crate::error::GatewayError;
use crate::journal::Outcome;
use crate::upstream::catalog::{Catalog, Lookup};

/// What a called name resolves to.
#[derive(Debug)]
pub(super) enum Resolved {
    /// Run the call on `upstream` as `original`, classified by `policy`. The upstream may be
    /// down (its last tool list or the config says what the tool is): the gates still run, so
    /// that replays, refusals and safety events answer as they would with it connected.
    Tool {
        upstream: usize,
        original: Arc<str>,
        policy: ToolPolicy,
    },
    /// Only these not-connected upstreams may serve it, and what kind of tool it is is not
    /// known (not in the config, never listed): answer "not connected" without any gate.
    Down(Vec<usize>),
    /// No upstream, connected or not, can serve it.
    Unknown,
}

/// Resolves `name`: a configured policy wins; else the upstream's `readOnlyHint` decides.
pub(super) fn resolve(cfg: &Config, catalog: &Catalog, name: &str) -> Resolved {
    let policy = |hint: Option<bool>| {
        cfg.tools
            .get(name)
            .cloned()
            .or_else(|| hint.map(ToolPolicy::unclassified))
    };
    match catalog.lookup(name) {
        Lookup::Found(e) => Resolved::Tool {
            upstream: e.upstream,
            original: e.original.clone(),
            policy: policy(Some(e.read_only_hint)).expect("a hint always classifies"),
        },
        Lookup::Down(c) => match (c.as_slice(), policy(c[0].read_only_hint)) {
            ([one], Some(policy)) => Resolved::Tool {
                upstream: one.upstream,
                original: one.original.clone(),
                policy,
            },
            _ => Resolved::Down(c.iter().map(|c| c.upstream).collect()),
        },
        Lookup::Unknown => Resolved::Unknown,
    }
}

impl Pipeline {
    /// A name no upstream can serve: -32602 `unknown_tool`, with a batched record.
    pub(super) fn unknown(&self, cx: CallCtx) -> ErrorData {
        let e = GatewayError::UnknownTool(cx.tool.clone());
        self.journal.append_later(cx.record(
            Outcome::Refused,
            e.failure_class(),
            Some(format!("unknown_tool: {e}")),
        ));
        e.to_error_data(&cx.audit_id)
    }

    /// A call to a name only not-connected upstreams may serve, whose kind is not known:
    /// -32092 retryable, and a record saying nothing was sent (batched like an unknown tool's:
    /// no key or other state was touched).
    pub(super) fn unreachable(&self, mut cx: CallCtx, candidates: &[usize]) -> ErrorData {
        let e = self.upstreams.unreachable(&cx.tool, candidates);
        if let [one] = candidates {
            cx.upstream = Some(self.upstreams.link(*one).cfg.name.clone());
        }
        self.journal.append_later(cx.record(
            Outcome::Failed,
            e.failure_class(),
            Some(format!("{e}; nothing was sent")),
        ));
        tracing::info!(tenant = %cx.tenant, tool = %cx.tool, audit_id = %cx.audit_id, error = %e, "call failed: upstream not connected");
        e.to_error_data(&cx.audit_id)
    }

    /// A side effect that passed its gates while its upstream is not connected: answered
    /// -32092 retryable before the key is claimed, so the key keeps its state (none, or
    /// `failed_retryable`) and a retry executes; the record is durable like every side
    /// effect's.
    pub(super) async fn not_sent(&self, cx: CallCtx, e: GatewayError) -> ErrorData {
        let rec = cx.record(
            Outcome::Failed,
            e.failure_class(),
            Some(format!("{e}; nothing was sent and the key was not claimed")),
        );
        if let Err(err) = self.journal.append(rec).await {
            self.journal_failed(&cx, "an unsent side effect", &err)
                .await;
        }
        tracing::info!(tenant = %cx.tenant, tool = %cx.tool, audit_id = %cx.audit_id, error = %e, "side effect not sent: upstream not connected");
        e.to_error_data(&cx.audit_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::catalog::Catalog;
    use std::path::Path;

    fn cfg() -> Config {
        Config::parse(
            "version: 1
tenants:
  - {id: a, token_env: A, accounts: [{id: a-1, platform: demo}]}
upstreams:
  - {name: d, command: [x]}
  - {name: e, command: [x], prefix: ''}
tools:
  d__publish: {side_effect: true, action: publish}
  publish: {side_effect: true, action: publish}
",
            "t.yml",
            Path::new("."),
        )
        .unwrap()
    }

    #[test]
    fn a_down_upstreams_tool_keeps_its_policy_when_one_is_known() {
        let cfg = cfg();
        let mut c = Catalog::default();
        c.mark_down(0, "d__", None);
        // Configured: the gates run (replays, refusals) and the forward step says "down".
        match resolve(&cfg, &c, "d__publish") {
            Resolved::Tool {
                upstream,
                original,
                policy,
            } => {
                assert_eq!((upstream, &*original), (0, "publish"));
                assert!(policy.side_effect);
            }
            other => panic!("{other:?}"),
        }
        // Neither configured nor listed: its kind is unknown, so no gate can judge it.
        assert!(matches!(resolve(&cfg, &c, "d__other"), Resolved::Down(u) if u == [0]));
        assert!(matches!(resolve(&cfg, &c, "x__y"), Resolved::Unknown));
        // Two empty-prefix upstreams down: which one serves it is unknown, even if configured.
        let mut c = Catalog::default();
        c.mark_down(0, "", None);
        c.mark_down(1, "", None);
        assert!(matches!(resolve(&cfg, &c, "publish"), Resolved::Down(u) if u == [0, 1]));
    }
}
