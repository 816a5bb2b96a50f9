//! SLO files that the schema and the parser must both reject, or both accept.

use super::*;

pub(super) fn slo_rejected_by_both() -> Vec<(&'static str, String)> {
    vec![
        // The file.
        ("missing version", SLO_BASE.replace("version: 1\n", "")),
        ("version 2", slo_vary("version: 1", "version: 2")),
        ("version 0", slo_vary("version: 1", "version: 0")),
        ("unknown top-level key", slo_with("owners: []")),
        ("missing slos", "version: 1\n".to_string()),
        ("no slos", "version: 1\nslos: []\n".to_string()),
        ("slos null", "version: 1\nslos: null\n".to_string()),
        (
            "slos as a map",
            "version: 1\nslos: {SLO-01: {name: a, target: 0.9, sli: {source: audit}}}\n"
                .to_string(),
        ),
        // defaults
        ("defaults null", slo_with("defaults: null")),
        ("unknown defaults key", slo_with("defaults: {target: 0.99}")),
        (
            "bad default window",
            slo_with("defaults: {window: a month}"),
        ),
        ("zero default window", slo_with("defaults: {window: 0d}")),
        (
            "negative min_events",
            slo_with("defaults: {min_events: -1}"),
        ),
        (
            "fractional min_events",
            slo_with("defaults: {min_events: 2.5}"),
        ),
        (
            "min_events beyond u64",
            slo_with("defaults: {min_events: 18446744073709551616}"),
        ),
        (
            "unknown failure class",
            slo_with("defaults: {budget_classes: [tool_failure, timeout]}"),
        ),
        (
            "budget_classes not a list",
            slo_with("defaults: {budget_classes: tool_failure}"),
        ),
        (
            "exclude_dependency_incidents not a bool",
            slo_with("defaults: {exclude_dependency_incidents: [yes]}"),
        ),
        (
            "postmortem_budget_fraction 0",
            slo_with("defaults: {postmortem_budget_fraction: 0}"),
        ),
        (
            "postmortem_budget_fraction as a percentage",
            slo_with("defaults: {postmortem_budget_fraction: 20}"),
        ),
        (
            "negative postmortem_budget_fraction",
            slo_with("defaults: {postmortem_budget_fraction: -0.2}"),
        ),
        // alerts
        ("alerts not a list", slo_with(&format!("alerts: {TIER}"))),
        (
            "unknown tier key",
            slo_tier("severity: page", "severity: page, channel: sre"),
        ),
        ("tier without severity", slo_tier("severity: page, ", "")),
        (
            "unknown severity",
            slo_tier("severity: page", "severity: critical"),
        ),
        ("tier without long", slo_tier("long: 1h, ", "")),
        ("tier without short", slo_tier("short: 5m, ", "")),
        ("bad long window", slo_tier("long: 1h", "long: an hour")),
        ("zero short window", slo_tier("short: 5m", "short: 0m")),
        (
            "tier without a rate",
            slo_tier(", budget_fraction: 0.02", ""),
        ),
        (
            "tier with both rates",
            slo_tier(
                "budget_fraction: 0.02",
                "budget_fraction: 0.02, burn_rate: 14",
            ),
        ),
        (
            "burn_rate 0",
            slo_tier("budget_fraction: 0.02", "burn_rate: 0"),
        ),
        (
            "negative burn_rate",
            slo_tier("budget_fraction: 0.02", "burn_rate: -2"),
        ),
        (
            "burn_rate in words",
            slo_tier("budget_fraction: 0.02", "burn_rate: fast"),
        ),
        (
            "budget_fraction 0",
            slo_tier("budget_fraction: 0.02", "budget_fraction: 0"),
        ),
        (
            "budget_fraction as a percentage",
            slo_tier("budget_fraction: 0.02", "budget_fraction: 2"),
        ),
        // bands
        (
            "unknown bands key",
            slo_bands(
                "ticket_repeats: 3",
                "ticket_repeats: 3, red_min_remaining: 0.1",
            ),
        ),
        (
            "bands without ticket_repeat_window",
            slo_bands(", ticket_repeat_window: 7d", ""),
        ),
        (
            "bands without green_min_remaining",
            slo_bands("green_min_remaining: 0.5, ", ""),
        ),
        (
            "green_min_remaining above 1",
            slo_bands("green_min_remaining: 0.5", "green_min_remaining: 1.5"),
        ),
        (
            "negative yellow_min_remaining",
            slo_bands("yellow_min_remaining: 0.2", "yellow_min_remaining: -0.1"),
        ),
        (
            "bands as percentages",
            slo_bands(
                "green_min_remaining: 0.5, yellow_min_remaining: 0.2",
                "green_min_remaining: 50, yellow_min_remaining: 20",
            ),
        ),
        (
            "negative ticket_repeats",
            slo_bands("ticket_repeats: 3", "ticket_repeats: -1"),
        ),
        (
            "fractional ticket_repeats",
            slo_bands("ticket_repeats: 3", "ticket_repeats: 1.5"),
        ),
        (
            "ticket_repeats beyond u32",
            slo_bands("ticket_repeats: 3", "ticket_repeats: 4294967296"),
        ),
        (
            "page_sustained without unit",
            slo_bands("page_sustained: 15m", "page_sustained: 15"),
        ),
        (
            "zero ticket_repeat_window",
            slo_bands("ticket_repeat_window: 7d", "ticket_repeat_window: 0d"),
        ),
        // hard_stops
        (
            "unknown hard_stops key",
            slo_with("hard_stops: {audit_gap: true}"),
        ),
        (
            "wrong_account not a bool",
            slo_with("hard_stops: {wrong_account: [on]}"),
        ),
        (
            "spam_loop not a bool",
            slo_with("hard_stops: {spam_loop: {max_repeats: 3}}"),
        ),
        (
            "audit_completeness without below",
            slo_with("hard_stops: {audit_completeness: {slo: SLO-01}}"),
        ),
        (
            "audit_completeness without slo",
            slo_with("hard_stops: {audit_completeness: {below: 0.999}}"),
        ),
        (
            "unknown audit_completeness key",
            slo_with(
                "hard_stops: {audit_completeness: {slo: SLO-01, below: 0.999, min_events: 5}}",
            ),
        ),
        (
            "audit_completeness below 0",
            slo_with("hard_stops: {audit_completeness: {slo: SLO-01, below: 0}}"),
        ),
        (
            "audit_completeness below as a percentage",
            slo_with("hard_stops: {audit_completeness: {slo: SLO-01, below: 99.9}}"),
        ),
        (
            "audit_completeness with an empty slo",
            slo_with("hard_stops: {audit_completeness: {slo: \"\", below: 0.999}}"),
        ),
        // One SLO.
        (
            "unknown SLO key",
            slo_vary("    window: 28d\n", "    window: 28d\n    owner: sre\n"),
        ),
        (
            "missing id",
            slo_vary("  - id: SLO-01\n    name:", "  - name:"),
        ),
        ("empty id", slo_vary("id: SLO-01", "id: \"\"")),
        ("missing name", slo_vary("    name: Publish success\n", "")),
        ("missing target", slo_vary("    target: 0.995\n", "")),
        (
            "missing sli",
            slo_vary(
                "    sli: {source: tool_calls, filter: {action_type: [publish]}}\n",
                "",
            ),
        ),
        ("target as a percentage", slo_vary("0.995", "99.5")),
        ("target 0", slo_vary("0.995", "0")),
        ("negative target", slo_vary("0.995", "-0.5")),
        ("target above 1", slo_vary("0.995", "1.0001")),
        ("target in words", slo_vary("0.995", "high")),
        ("bad window", slo_vary("28d", "a month")),
        ("window without unit", slo_vary("28d", "28")),
        ("zero window", slo_vary("28d", "0d")),
        ("zero compound window", slo_vary("28d", "0h 0m")),
        ("fraction of a nanosecond", slo_vary("28d", "1.5ns")),
        (
            "negative SLO min_events",
            slo_vary("    window: 28d\n", "    window: 28d\n    min_events: -1\n"),
        ),
        (
            "paging not a bool",
            slo_vary("    window: 28d\n", "    window: 28d\n    paging: [yes]\n"),
        ),
        (
            "paging null",
            slo_vary("    window: 28d\n", "    window: 28d\n    paging: null\n"),
        ),
        (
            "unknown SLO budget class",
            slo_vary(
                "    window: 28d\n",
                "    window: 28d\n    budget_classes: [late]\n",
            ),
        ),
        (
            "SLO exclude_dependency_incidents not a bool",
            slo_vary(
                "    window: 28d\n",
                "    window: 28d\n    exclude_dependency_incidents: {platform: x}\n",
            ),
        ),
        // Its SLI.
        (
            "sli without source",
            slo_sli("{filter: {action_type: [publish]}}"),
        ),
        (
            "unknown source",
            slo_sli("{source: events, event: job_started, threshold: 2m}"),
        ),
        ("unknown sli key", slo_sli("{source: audit, within: 10m}")),
        (
            "event on a tool_calls source",
            slo_sli("{source: tool_calls, event: job_started, threshold: 2m}"),
        ),
        (
            "event on a safety source",
            slo_sli("{source: safety, event: wrong_account_detected}"),
        ),
        ("source event without event", slo_sli("{source: event}")),
        (
            "unknown event type",
            slo_sli("{source: event, event: post_published, threshold: 10m}"),
        ),
        (
            "job_started without threshold",
            slo_sli("{source: event, event: job_started, filter: {kind: [publish]}}"),
        ),
        (
            "post_verified without threshold",
            slo_sli("{source: event, event: post_verified}"),
        ),
        (
            "inbound_visible without threshold",
            slo_sli("{source: event, event: inbound_visible}"),
        ),
        (
            "auto_reply_sent without threshold",
            slo_sli("{source: event, event: auto_reply_sent}"),
        ),
        (
            "latency event with an empty threshold_by_kind",
            slo_sli("{source: event, event: job_started, threshold_by_kind: {}}"),
        ),
        (
            "bad threshold",
            slo_sli("{source: event, event: post_verified, threshold: soon}"),
        ),
        (
            "zero threshold",
            slo_sli("{source: event, event: post_verified, threshold: 0s}"),
        ),
        (
            "bad threshold on a non-latency SLI",
            slo_sli("{source: audit, threshold: soon}"),
        ),
        (
            "bad threshold_by_kind entry",
            slo_sli(
                "{source: event, event: job_started, threshold_by_kind: {publish: 2m, engagement_ingest: 5}}",
            ),
        ),
        (
            "threshold_by_kind not a map",
            slo_sli("{source: event, event: job_started, threshold_by_kind: [2m]}"),
        ),
        (
            "threshold_by_kind null",
            slo_sli("{source: event, event: job_started, threshold: 2m, threshold_by_kind: null}"),
        ),
        (
            "require_proof not a bool",
            slo_sli("{source: tool_calls, require_proof: [yes]}"),
        ),
        (
            "require_proof null",
            slo_sli("{source: tool_calls, require_proof: null}"),
        ),
        ("filter null", slo_sli("{source: audit, filter: null}")),
        (
            "unknown filter key",
            slo_sli("{source: audit, filter: {tenant: [acme]}}"),
        ),
        (
            "unknown lane",
            slo_sli("{source: tool_calls, filter: {lane: [desktop]}}"),
        ),
        (
            "unknown action_type",
            slo_sli("{source: tool_calls, filter: {action_type: [post]}}"),
        ),
        (
            "filter value not a list",
            slo_sli("{source: tool_calls, filter: {platform: instagram}}"),
        ),
        (
            "filter kind null",
            slo_sli("{source: event, event: job_started, threshold: 2m, filter: {kind: null}}"),
        ),
        (
            "side_effects not a bool",
            slo_sli("{source: event, event: episode_finished, filter: {side_effects: [true]}}"),
        ),
    ]
}

pub(super) fn slo_accepted_by_both() -> Vec<(&'static str, String)> {
    vec![
        ("base", SLO_BASE.to_string()),
        ("without window", slo_vary("    window: 28d\n", "")),
        ("target 1", slo_vary("0.995", "1.0")),
        ("integer target 1", slo_vary("0.995", "1")),
        ("tiny target", slo_vary("0.995", "0.000001")),
        ("compound window", slo_vary("28d", "1w 12h")),
        ("fractional window", slo_vary("28d", "1.5d")),
        ("window in words", slo_vary("28d", "4 weeks")),
        (
            "empty name",
            slo_vary("name: Publish success", "name: \"\""),
        ),
        (
            "every SLO key",
            slo_vary(
                "    window: 28d\n",
                "    window: 7d\n    min_events: 0\n    paging: true\n    budget_classes: [policy_blocked, verification_failed]\n    exclude_dependency_incidents: true\n",
            ),
        ),
        (
            "largest min_events, no budget classes",
            slo_vary(
                "    window: 28d\n",
                "    window: 28d\n    min_events: 18446744073709551615\n    budget_classes: []\n",
            ),
        ),
        (
            "several SLOs",
            format!(
                "{SLO_BASE}  - {{id: SLO-07, name: Safety, target: 1, paging: true, min_events: 1, sli: {{source: safety}}}}\n"
            ),
        ),
        // SLIs.
        ("audit source", slo_sli("{source: audit}")),
        ("safety source", slo_sli("{source: safety}")),
        (
            "tool_calls with proof",
            slo_sli("{source: tool_calls, filter: {lane: [browser]}, require_proof: true}"),
        ),
        (
            "episode_finished needs no threshold",
            slo_sli("{source: event, event: episode_finished, filter: {side_effects: true}}"),
        ),
        (
            "wrong_account_detected event",
            slo_sli("{source: event, event: wrong_account_detected}"),
        ),
        (
            "dependency_incident event",
            slo_sli("{source: event, event: dependency_incident}"),
        ),
        (
            "post_verified with threshold",
            slo_sli("{source: event, event: post_verified, threshold: 10m}"),
        ),
        (
            "inbound_visible with threshold",
            slo_sli("{source: event, event: inbound_visible, threshold: 5m}"),
        ),
        (
            "auto_reply_sent with threshold",
            slo_sli("{source: event, event: auto_reply_sent, threshold: 10m}"),
        ),
        (
            "job_started with threshold_by_kind only",
            slo_sli(
                "{source: event, event: job_started, threshold_by_kind: {publish: 2m, engagement_ingest: 5m}}",
            ),
        ),
        (
            "job_started with both thresholds",
            slo_sli(
                "{source: event, event: job_started, threshold: 10m, threshold_by_kind: {publish: 2m}}",
            ),
        ),
        (
            "threshold and an empty threshold_by_kind",
            slo_sli("{source: event, event: job_started, threshold: 2m, threshold_by_kind: {}}"),
        ),
        // Accepted, though only job_started reads threshold_by_kind (README, schema).
        (
            "post_verified with threshold_by_kind only",
            slo_sli("{source: event, event: post_verified, threshold_by_kind: {publish: 10m}}"),
        ),
        (
            "threshold on a non-latency SLI",
            slo_sli("{source: audit, threshold: 5m}"),
        ),
        ("empty filter", slo_sli("{source: audit, filter: {}}")),
        (
            "filter with every key",
            slo_sli(
                "{source: event, event: job_started, threshold: 2m, filter: {client_id: [acme], platform: [instagram, x], lane: [api, browser], action_type: [publish, dm, comment, like, other], kind: [publish], side_effects: false}}",
            ),
        ),
        (
            "empty filter lists",
            slo_sli(
                "{source: tool_calls, filter: {client_id: [], platform: [], lane: [], action_type: [], kind: []}}",
            ),
        ),
        // defaults
        ("empty defaults", slo_with("defaults: {}")),
        (
            "every default",
            slo_with(
                "defaults: {window: 30d, min_events: 1, budget_classes: [tool_failure], exclude_dependency_incidents: true, postmortem_budget_fraction: 1}",
            ),
        ),
        // alerts
        ("no alerts", slo_with("alerts: []")),
        (
            "the shipped page tier",
            slo_with(&format!("alerts: [{TIER}]")),
        ),
        (
            "tier with burn_rate",
            slo_with("alerts: [{severity: ticket, long: 3d, short: 6h, burn_rate: 0.5}]"),
        ),
        (
            "tier spending the whole budget",
            slo_tier("budget_fraction: 0.02", "budget_fraction: 1"),
        ),
        // bands
        ("bands", slo_with(BANDS)),
        (
            "bands at the extremes",
            slo_bands(
                "green_min_remaining: 0.5, yellow_min_remaining: 0.2",
                "green_min_remaining: 1, yellow_min_remaining: 0",
            ),
        ),
        (
            "equal bands",
            slo_bands(
                "green_min_remaining: 0.5, yellow_min_remaining: 0.2",
                "green_min_remaining: 0.3, yellow_min_remaining: 0.3",
            ),
        ),
        (
            "ticket_repeats 0",
            slo_bands("ticket_repeats: 3", "ticket_repeats: 0"),
        ),
        // hard_stops
        ("empty hard_stops", slo_with("hard_stops: {}")),
        (
            "hard stops off",
            slo_with("hard_stops: {wrong_account: false, spam_loop: false}"),
        ),
        (
            "audit_completeness",
            slo_with("hard_stops: {audit_completeness: {slo: SLO-01, below: 1}}"),
        ),
    ]
}
