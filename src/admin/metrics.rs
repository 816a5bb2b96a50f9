//! `GET /metrics`: Prometheus/OpenMetrics text via prometheus-client.
//!
//! Counters follow committed audit records and counted SLI events; budget gauges are set
//! from the status document at scrape time, so they are never stale.

use std::sync::OnceLock;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde_json::Value;
use std::sync::atomic::AtomicU64;

use crate::budget::Observed;

type Labels = Vec<(&'static str, String)>;

struct Metrics {
    registry: Registry,
    sli: Family<Labels, Counter>,
    calls: Family<Labels, Counter>,
    latency: Family<Labels, Histogram>,
    burn: Family<Labels, Gauge<f64, AtomicU64>>,
    remaining: Family<Labels, Gauge<f64, AtomicU64>>,
    slo_band: Family<Labels, Gauge>,
    band: Gauge,
    hard_stops: Gauge,
    in_doubt: Gauge,
}

fn metrics() -> &'static std::sync::Mutex<Metrics> {
    static M: OnceLock<std::sync::Mutex<Metrics>> = OnceLock::new();
    M.get_or_init(|| {
        let mut registry = Registry::with_prefix("toolgate");
        let sli = Family::<Labels, Counter>::default();
        registry.register(
            "sli_events",
            "SLI events counted per SLO (outcome good|bad)",
            sli.clone(),
        );
        let calls = Family::<Labels, Counter>::default();
        registry.register(
            "calls",
            "Tool calls by kind, outcome and failure class",
            calls.clone(),
        );
        let latency = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ])
        });
        registry.register(
            "call_latency_seconds",
            "Tool call latency through the gateway",
            latency.clone(),
        );
        let burn = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "slo_burn_rate",
            "Burn rate per SLO and window",
            burn.clone(),
        );
        let remaining = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "slo_budget_remaining_ratio",
            "Error budget left (1 = untouched, < 0 overspent)",
            remaining.clone(),
        );
        let slo_band = Family::<Labels, Gauge>::default();
        registry.register(
            "slo_band",
            "Band per SLO: 0 GREEN, 1 YELLOW, 2 RED",
            slo_band.clone(),
        );
        let band = Gauge::default();
        registry.register(
            "band",
            "Overall band: 0 GREEN, 1 YELLOW, 2 RED",
            band.clone(),
        );
        let hard_stops = Gauge::default();
        registry.register("hard_stops_active", "Active hard stops", hard_stops.clone());
        let in_doubt = Gauge::default();
        registry.register(
            "in_doubt_keys",
            "Idempotency keys in doubt",
            in_doubt.clone(),
        );
        std::sync::Mutex::new(Metrics {
            registry,
            sli,
            calls,
            latency,
            burn,
            remaining,
            slo_band,
            band,
            hard_stops,
            in_doubt,
        })
    })
}

/// The budget's observer: counts records and SLI events.
pub fn observe(o: Observed<'_>) {
    let m = metrics().lock().expect("metrics lock");
    match o {
        Observed::Sli(c) => {
            let labels = vec![
                ("slo", c.slo.clone()),
                ("outcome", if c.good { "good" } else { "bad" }.to_string()),
                ("client_id", c.client_id.clone()),
                ("platform", c.platform.clone()),
            ];
            m.sli.get_or_create(&labels).inc();
        }
        Observed::Record(r) => {
            let kind = if r.side_effect {
                "side_effect"
            } else {
                "read_only"
            };
            let outcome = serde_json::to_value(r.outcome)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            let labels = vec![
                ("kind", kind.to_string()),
                ("outcome", outcome),
                (
                    "failure_class",
                    r.failure_class
                        .map(|f| f.as_str().to_string())
                        .unwrap_or_default(),
                ),
            ];
            m.calls.get_or_create(&labels).inc();
            m.latency
                .get_or_create(&vec![("kind", kind.to_string())])
                .observe(r.latency_ms / 1000.0);
        }
    }
}

fn band_value(v: &Value) -> i64 {
    match v.as_str() {
        Some("RED") => 2,
        Some("YELLOW") => 1,
        _ => 0,
    }
}

/// Renders the registry after setting the gauges from `status` (an all-scope document).
pub fn render(status: &Value) -> String {
    let m = metrics().lock().expect("metrics lock");
    m.band.set(band_value(&status["band"]));
    m.hard_stops.set(
        status["hard_stops"]
            .as_array()
            .map_or(0, |a| a.len() as i64),
    );
    m.in_doubt.set(status["in_doubt"].as_i64().unwrap_or(0));
    for slo in status["slos"].as_array().into_iter().flatten() {
        let id = slo["id"].as_str().unwrap_or_default().to_string();
        m.slo_band
            .get_or_create(&vec![("slo", id.clone())])
            .set(band_value(&slo["band"]));
        if let Some(r) = slo["budget_remaining_pct"].as_f64() {
            m.remaining
                .get_or_create(&vec![("slo", id.clone())])
                .set(r / 100.0);
        }
        for (w, v) in slo["burn_rates"].as_object().into_iter().flatten() {
            if let Some(v) = v.as_f64() {
                m.burn
                    .get_or_create(&vec![("slo", id.clone()), ("window", w.clone())])
                    .set(v);
            }
        }
    }
    let mut out = String::new();
    if encode(&mut out, &m.registry).is_err() {
        out = "# metrics encoding failed\n".into();
    }
    out
}
