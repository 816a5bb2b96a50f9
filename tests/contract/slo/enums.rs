//! The SLO schema's enums and durations are the parser's and the gateway config's.

use super::*;

/// The wire name of each SLI source; the match makes a new source fail to compile here until
/// it is listed in `ALL_SOURCES` (and the schema).
fn source_name(s: Source) -> &'static str {
    match s {
        Source::ToolCalls => "tool_calls",
        Source::Audit => "audit",
        Source::Safety => "safety",
        Source::Event => "event",
    }
}

const ALL_SOURCES: [Source; 4] = [
    Source::ToolCalls,
    Source::Audit,
    Source::Safety,
    Source::Event,
];

#[test]
fn slo_schema_enums_are_the_parser_enums() {
    for k in ALL_EVENT_KINDS {
        match k {
            EventKind::JobStarted
            | EventKind::EpisodeFinished
            | EventKind::PostVerified
            | EventKind::InboundVisible
            | EventKind::AutoReplySent
            | EventKind::WrongAccountDetected
            | EventKind::DependencyIncident => {}
        }
    }
    let names = |it: Vec<Value>| -> BTreeSet<String> {
        it.into_iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let first = |text: &str| -> toolgate::slo::Slo {
        parse_slos(text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
            .slos
            .remove(0)
    };

    assert_eq!(
        schema_enum(SLOS, "/$defs/sli/properties/source"),
        ALL_SOURCES
            .iter()
            .map(|s| source_name(*s).to_string())
            .collect(),
        "sources"
    );
    for s in ALL_SOURCES {
        let event = if s == Source::Event {
            ", event: episode_finished"
        } else {
            ""
        };
        let slo = first(&slo_sli(&format!("{{source: {}{event}}}", source_name(s))));
        assert_eq!(slo.sli.source, s);
    }

    let latency: BTreeSet<String> = schema::schema_json(SLOS)
        .pointer("/$defs/sli/allOf/1/if/properties/event/enum")
        .and_then(Value::as_array)
        .expect("the latency events of the sli")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        schema_enum(SLOS, "/$defs/event_kind"),
        names(ALL_EVENT_KINDS.iter().map(wire).collect()),
        "event types"
    );
    for k in ALL_EVENT_KINDS {
        let name = wire(k).as_str().unwrap().to_string();
        let slo = first(&slo_sli(&format!(
            "{{source: event, event: {name}, threshold: 1m}}"
        )));
        assert_eq!(slo.sli.event, Some(k));
        // Latency events are the ones the parser demands a threshold for.
        let bare = parse_slos(&slo_sli(&format!("{{source: event, event: {name}}}")));
        assert_eq!(
            bare.is_err(),
            latency.contains(&name),
            "{name} needs a threshold"
        );
    }

    let severities = [Severity::Ticket, Severity::Page];
    assert_eq!(
        schema_enum(SLOS, "/$defs/alert_tier/properties/severity"),
        names(severities.iter().map(wire).collect()),
        "severities"
    );
    for sev in severities {
        let text = slo_tier(
            "severity: page",
            &format!("severity: {}", wire(sev).as_str().unwrap()),
        );
        assert_eq!(parse_slos(&text).unwrap().alerts[0].severity, sev);
    }

    let classes = ALL_FAILURE_CLASSES;
    assert_eq!(
        schema_enum(SLOS, "/$defs/budget_classes/items"),
        names(classes.iter().map(wire).collect()),
        "failure classes"
    );
    for c in classes {
        let text = slo_with(&format!(
            "defaults: {{budget_classes: [{}]}}",
            wire(c).as_str().unwrap()
        ));
        assert_eq!(first(&text).budget_classes, [c]);
    }

    let lanes = [Lane::Api, Lane::Browser];
    assert_eq!(
        schema_enum(SLOS, "/$defs/filter/properties/lane/items"),
        names(lanes.iter().map(wire).collect()),
        "lanes"
    );
    let actions = [
        Action::Publish,
        Action::Dm,
        Action::Comment,
        Action::Like,
        Action::Other,
    ];
    assert_eq!(
        schema_enum(SLOS, "/$defs/filter/properties/action_type/items"),
        names(actions.iter().map(wire).collect()),
        "action types"
    );
    let filter = first(&slo_sli(&format!(
        "{{source: tool_calls, filter: {{lane: {}, action_type: {}}}}}",
        wire(lanes),
        wire(actions)
    )))
    .sli
    .filter;
    assert_eq!(
        (filter.lane, filter.action_type),
        (lanes.to_vec(), actions.to_vec())
    );
}

/// The SLO file's durations are the gateway config's.
#[test]
fn slo_durations_are_the_config_durations() {
    let slo = schema::schema_json(SLOS);
    let cfg = schema::schema_json("gateway-config.schema.json");
    for pointer in [
        "/$defs/duration/type",
        "/$defs/duration/pattern",
        "/$defs/duration/not/pattern",
    ] {
        assert_eq!(slo.pointer(pointer), cfg.pointer(pointer), "{pointer}");
    }
}
