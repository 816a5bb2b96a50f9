use super::*;

#[test]
fn shipped_file_has_the_policy_slos_and_scaled_tiers() {
    let set = parse(EMBEDDED, "slo_definitions.yml").unwrap();
    let ids: Vec<_> = set.slos.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "SLO-01", "SLO-02", "SLO-03", "SLO-04", "SLO-05A", "SLO-05B", "SLO-06A", "SLO-06B",
            "SLO-07", "SLO-08"
        ]
    );
    assert!(
        set.slos
            .iter()
            .all(|s| s.window == Duration::from_secs(28 * 86400))
    );
    let rates: Vec<f64> = set
        .alerts
        .iter()
        .map(|t| (t.burn_rate * 1000.0).round() / 1000.0)
        .collect();
    assert_eq!(rates, [13.44, 5.6, 2.8, 0.933]);
    let s4 = &set.slos[3];
    assert_eq!(
        (s4.sli.event, s4.paging),
        (Some(EventKind::JobStarted), true)
    );
    assert_eq!(
        s4.sli.threshold_by_kind["publish"],
        Duration::from_secs(120)
    );
    assert!(
        !set.slos[0]
            .budget_classes
            .contains(&FailureClass::PolicyBlocked)
    );
    assert!(set.slos[1].sli.require_proof);
    assert_eq!(
        set.hard_stops.audit_completeness,
        Some(("SLO-08".into(), 0.999))
    );
    assert_eq!(set.slos[8].min_events, 1);
    assert_eq!(set.bands.page_sustained, Duration::from_secs(900));
}

#[test]
fn errors_are_located() {
    let e = parse(
        "version: 1\nslos:\n  - id: A\n    name: a\n    target: 99.5\n    sli: {source: audit}\n",
        "s.yml",
    )
    .unwrap_err();
    assert_eq!((e.line, e.field.as_str()), (3, "slos[0].target"), "{e}");
    let e = parse("version: 1\nslos:\n  - id: A\n    nmae: a\n", "s.yml").unwrap_err();
    assert_eq!(e.line, 4, "{e}");
    let e = parse(
        "version: 1\nslos:\n  - {id: A, name: a, target: 0.9, sli: {source: event}}\n",
        "s.yml",
    )
    .unwrap_err();
    assert_eq!(e.field, "slos[0].sli.event");
    let e = parse("version: 1\nslos:\n  - {id: A, name: a, target: 0.9, sli: {source: event, event: post_verified}}\n", "s.yml").unwrap_err();
    assert_eq!(e.field, "slos[0].sli.threshold");
    let e = parse(
        "version: 1\nalerts:\n  - {severity: page, long: 5m, short: 1h, burn_rate: 2}\nslos:\n  - {id: A, name: a, target: 0.9, sli: {source: audit}}\n",
        "s.yml",
    )
    .unwrap_err();
    assert_eq!((e.line, e.field.as_str()), (3, "alerts[0].short"));
}

#[test]
fn filters_match_tags() {
    let f = Filter {
        action_type: vec![Action::Publish],
        lane: vec![Lane::Api],
        ..Default::default()
    };
    let tags = |a, l| Tags {
        action_type: Some(a),
        lane: Some(l),
        ..Default::default()
    };
    assert!(f.matches(&tags(Action::Publish, Lane::Api)));
    assert!(!f.matches(&tags(Action::Publish, Lane::Browser)));
    assert!(!f.matches(&tags(Action::Dm, Lane::Api)));
    assert!(Filter::default().matches(&Tags::default()));
}
