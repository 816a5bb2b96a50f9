//! The SLO definitions schema against the SLO file parser, both ways, and its defaults.

mod cases;
mod enums;

use cases::{slo_accepted_by_both, slo_rejected_by_both};

use super::*;

use toolgate::slo::{EventKind, Severity, Source};

const SLOS: &str = "slo-definitions.schema.json";

/// A small valid SLO file that the cases below vary.
const SLO_BASE: &str = "version: 1
slos:
  - id: SLO-01
    name: Publish success
    target: 0.995
    window: 28d
    sli: {source: tool_calls, filter: {action_type: [publish]}}
";

/// One alert tier and a full `bands` section, for the cases that vary them.
const TIER: &str = "{severity: page, long: 1h, short: 5m, budget_fraction: 0.02}";
const BANDS: &str = "bands: {green_min_remaining: 0.5, yellow_min_remaining: 0.2, page_sustained: 15m, ticket_repeats: 3, ticket_repeat_window: 7d}";

/// `SLO_BASE` with one text replacement (which must apply).
fn slo_vary(from: &str, to: &str) -> String {
    assert!(SLO_BASE.contains(from), "case does not apply: {from:?}");
    SLO_BASE.replacen(from, to, 1)
}

/// `SLO_BASE` whose one SLO has this `sli`.
fn slo_sli(sli: &str) -> String {
    slo_vary(
        "{source: tool_calls, filter: {action_type: [publish]}}",
        sli,
    )
}

/// `SLO_BASE` plus one top-level section.
fn slo_with(section: &str) -> String {
    format!("{SLO_BASE}{section}\n")
}

/// `SLO_BASE` with `TIER`, varied, as its only alert tier.
fn slo_tier(from: &str, to: &str) -> String {
    assert!(TIER.contains(from), "case does not apply: {from:?}");
    slo_with(&format!("alerts: [{}]", TIER.replacen(from, to, 1)))
}

/// `SLO_BASE` with `BANDS`, varied.
fn slo_bands(from: &str, to: &str) -> String {
    assert!(BANDS.contains(from), "case does not apply: {from:?}");
    slo_with(&BANDS.replacen(from, to, 1))
}

fn parse_slos(text: &str) -> Result<toolgate::slo::SloSet, String> {
    toolgate::slo::parse(text, "s.yml").map_err(|e| e.to_string())
}

#[test]
fn shipped_slo_definitions_parse_and_match_the_schema() {
    let text = read("slo_definitions.yml");
    let set = toolgate::slo::parse(&text, "slo_definitions.yml").unwrap_or_else(|e| panic!("{e}"));
    assert!(!set.slos.is_empty());
    assert_eq!(
        text,
        toolgate::slo::EMBEDDED,
        "the binary embeds the shipped file"
    );
    let doc = yaml(&text);
    assert_valid(&validator(SLOS), &doc, "slo_definitions.yml");
    // Every section is present, so the schema is held against each one.
    for key in [
        "version",
        "defaults",
        "alerts",
        "bands",
        "hard_stops",
        "slos",
    ] {
        assert!(doc.get(key).is_some(), "slo_definitions.yml lacks {key}");
    }
    assert!(!set.alerts.is_empty() && set.hard_stops.audit_completeness.is_some());
}

#[test]
fn schema_and_parser_agree_on_slo_definitions() {
    let v = validator(SLOS);
    for (what, text) in slo_rejected_by_both() {
        assert!(
            parse_slos(&text).is_err(),
            "the parser accepts {what}:\n{text}"
        );
        assert!(
            !v.is_valid(&yaml(&text)),
            "the schema accepts {what}, which the parser rejects:\n{text}"
        );
    }
    for (what, text) in slo_accepted_by_both() {
        if let Err(e) = parse_slos(&text) {
            panic!("the parser rejects {what}: {e}\n{text}");
        }
        assert_valid(&v, &yaml(&text), what);
    }
}

/// Cross-field rules proto/README.md lists as parser-only. If the schema starts catching one,
/// move it to `slo_rejected_by_both` and update the README.
#[test]
fn parser_only_slo_rules_are_the_documented_ones() {
    let v = validator(SLOS);
    let cases = [
        (
            "duplicate SLO id",
            format!(
                "{SLO_BASE}  - {{id: SLO-01, name: again, target: 0.9, sli: {{source: audit}}}}\n"
            ),
        ),
        (
            "short window as long as the long one",
            slo_tier("short: 5m", "short: 1h"),
        ),
        (
            "short window longer than the long one",
            slo_tier("short: 5m", "short: 2h"),
        ),
        (
            "yellow above green",
            slo_bands(
                "green_min_remaining: 0.5, yellow_min_remaining: 0.2",
                "green_min_remaining: 0.2, yellow_min_remaining: 0.5",
            ),
        ),
        (
            "audit_completeness naming an undefined SLO",
            slo_with("hard_stops: {audit_completeness: {slo: SLO-08, below: 0.999}}"),
        ),
    ];
    for (what, text) in cases {
        assert!(parse_slos(&text).is_err(), "the parser accepts {what}");
        assert!(
            v.is_valid(&yaml(&text)),
            "the schema now rejects {what}: move the case"
        );
    }
    let readme = read("proto/README.md");
    for phrase in [
        "SLO ids are unique",
        "`short` window is shorter than its `long`",
        "`yellow_min_remaining` ≤ `green_min_remaining`",
        "`hard_stops.audit_completeness.slo` names an SLO",
    ] {
        assert!(
            readme.contains(phrase),
            "proto/README.md no longer documents: {phrase}"
        );
    }
}

/// YAML leniencies of the SLO parser that the schema deliberately does not copy, and what the
/// JSON data model cannot say (README, "SLO definitions"). If the parser changes, drop the case
/// and the README note.
#[test]
fn slo_schema_and_parser_differ_only_where_documented() {
    let v = validator(SLOS);
    let stricter = [
        ("explicit null section", slo_with("alerts: null")),
        (
            "explicit null event",
            slo_sli("{source: audit, event: null}"),
        ),
        (
            "explicit null burn_rate",
            slo_tier(
                "budget_fraction: 0.02",
                "budget_fraction: 0.02, burn_rate: null",
            ),
        ),
        ("explicit null window", slo_vary("28d", "null")),
        (
            "a number where a string is expected",
            slo_vary("id: SLO-01", "id: 101"),
        ),
        ("a quoted number", slo_vary("0.995", "\"0.995\"")),
        ("a quoted version", slo_vary("version: 1", "version: \"1\"")),
        (
            "a quoted boolean",
            slo_vary(
                "    window: 28d\n",
                "    window: 28d\n    paging: \"true\"\n",
            ),
        ),
    ];
    for (what, text) in stricter {
        assert!(
            parse_slos(&text).is_ok(),
            "the parser now rejects {what}: drop the case"
        );
        assert!(!v.is_valid(&yaml(&text)), "the schema accepts {what}");
    }
    // JSON numbers do not keep `20.0` apart from `20`, as the parser's integers do; a pattern
    // cannot do the parser's duration arithmetic.
    let laxer = [
        ("version 1.0", slo_vary("version: 1", "version: 1.0")),
        ("min_events 20.0", slo_with("defaults: {min_events: 20.0}")),
        (
            "a duration beyond 2^64 s",
            slo_vary("28d", "10000000000000y"),
        ),
        ("a fraction of a second in hours", slo_vary("28d", "0.001h")),
        (
            "a fraction of a nanosecond in seconds",
            slo_vary("28d", "0.0000000001s"),
        ),
    ];
    for (what, text) in laxer {
        assert!(
            parse_slos(&text).is_err(),
            "the parser now accepts {what}: drop the case"
        );
        assert!(v.is_valid(&yaml(&text)), "the schema rejects {what}");
    }
    // JSON has no infinity.
    let inf = slo_tier("budget_fraction: 0.02", "burn_rate: .inf");
    assert!(parse_slos(&inf).is_ok(), "the parser now rejects .inf");
    assert!(serde_saphyr::from_str::<Value>(&inf).is_err());

    let readme = read("proto/README.md");
    for phrase in [
        "stricter than the parser",
        "`min_events: 20.0`",
        "2^64 seconds",
        "`0.001h`",
        "`.inf`",
    ] {
        assert!(
            readme.contains(phrase),
            "proto/README.md no longer says {phrase}"
        );
    }
}

/// The `default`s the schema documents are the parser's.
#[test]
fn slo_defaults_are_the_schema_defaults() {
    let s = schema::schema_json(SLOS);
    let dur = |v: &Value| {
        toolgate::config::parse_duration(v.as_str().expect("a duration")).expect("a valid one")
    };
    let minimal = slo_vary("    window: 28d\n", "");
    let set = parse_slos(&minimal).unwrap();
    let slo = &set.slos[0];
    let d = &s["$defs"]["defaults"]["properties"];
    assert_eq!(slo.window, dur(&d["window"]["default"]));
    assert_eq!(json!(slo.min_events), d["min_events"]["default"]);
    assert_eq!(wire(&slo.budget_classes), d["budget_classes"]["default"]);
    assert_eq!(
        json!(slo.exclude_dependency_incidents),
        d["exclude_dependency_incidents"]["default"]
    );
    assert_eq!(
        json!(set.postmortem_budget_fraction),
        d["postmortem_budget_fraction"]["default"]
    );
    assert_eq!(
        json!(slo.paging),
        s["$defs"]["slo"]["properties"]["paging"]["default"]
    );
    assert_eq!(
        json!(slo.sli.require_proof),
        s["$defs"]["sli"]["properties"]["require_proof"]["default"]
    );
    assert!(set.alerts.is_empty(), "no alerts section, no tiers");

    let b = &s["properties"]["bands"]["default"];
    assert_eq!(
        set.bands,
        toolgate::slo::Bands {
            green_min_remaining: b["green_min_remaining"].as_f64().unwrap(),
            yellow_min_remaining: b["yellow_min_remaining"].as_f64().unwrap(),
            page_sustained: dur(&b["page_sustained"]),
            ticket_repeats: b["ticket_repeats"].as_u64().unwrap() as u32,
            ticket_repeat_window: dur(&b["ticket_repeat_window"]),
        }
    );
    assert_valid(
        &def_validator(SLOS, "bands"),
        b,
        "the documented default bands",
    );

    let h = &s["$defs"]["hard_stops"]["properties"];
    for text in [minimal.clone(), format!("{minimal}hard_stops: {{}}\n")] {
        let stops = parse_slos(&text).unwrap().hard_stops;
        assert_eq!(json!(stops.wrong_account), h["wrong_account"]["default"]);
        assert_eq!(json!(stops.spam_loop), h["spam_loop"]["default"]);
        assert_eq!(stops.audit_completeness, None);
    }

    // SLOs take `defaults` unless they say otherwise.
    let text = "version: 1
defaults: {window: 7d, min_events: 5, budget_classes: [tool_failure], exclude_dependency_incidents: true}
slos:
  - {id: A, name: a, target: 0.9, sli: {source: audit}}
  - {id: B, name: b, target: 0.9, window: 1d, min_events: 2, budget_classes: [], exclude_dependency_incidents: false, sli: {source: audit}}
";
    let set = parse_slos(text).unwrap();
    let (a, b) = (&set.slos[0], &set.slos[1]);
    assert_eq!(
        (
            a.window,
            a.min_events,
            a.budget_classes.clone(),
            a.exclude_dependency_incidents
        ),
        (
            Duration::from_secs(7 * 86_400),
            5,
            vec![FailureClass::ToolFailure],
            true
        )
    );
    assert_eq!(
        (
            b.window,
            b.min_events,
            b.budget_classes.clone(),
            b.exclude_dependency_incidents
        ),
        (Duration::from_secs(86_400), 2, vec![], false)
    );

    // budget_fraction → burn rate as described: budget_fraction × defaults.window / long.
    let set = parse_slos(&format!(
        "{SLO_BASE}defaults: {{window: 30d}}\nalerts: [{{severity: page, long: 1h, short: 5m, budget_fraction: 0.02}}]\n"
    ))
    .unwrap();
    assert!((set.alerts[0].burn_rate - 0.02 * 30.0 * 24.0).abs() < 1e-9);
}
