//! The operator status page (`GET /` on the admin listener): the `/v1/status` document as one
//! server-rendered HTML page, with inline CSS, no JavaScript and no external assets.

use std::fmt::Write;
use std::time::Duration;

use serde_json::Value;

/// Shown wherever the document has no value.
const NO_DATA: &str = "no data";

const STYLE: &str = "
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
main{padding:16px 24px}
h2{font-size:1.05rem;margin:22px 0 8px}
#band{padding:22px 24px;color:#fff}
#band .label{font-size:2.6rem;font-weight:800;letter-spacing:.06em;display:block}
#band .meta{font-size:.95rem;opacity:.92}
.band-green{background:#1f8a4c}.band-yellow{background:#c99700}.band-red{background:#c0262d}
.band-unknown{background:#6b7280}
table{border-collapse:collapse;width:100%;background:#fff;font-size:.88rem}
th,td{border-bottom:1px solid #e3e5ea;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#eceef2;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.badge{display:inline-block;padding:1px 8px;border-radius:9px;color:#fff;font-weight:700;font-size:.78rem}
.bar{width:140px;height:12px;background:#e3e5ea;border-radius:6px;overflow:hidden}
.fill{height:100%}
.muted{color:#6b7280}.hot{color:#c0262d;font-weight:700}
.tag{display:inline-block;margin-left:6px;padding:0 6px;border:1px solid #9ca3af;border-radius:4px;font-size:.72rem;color:#4b5563}
ul{margin:0;padding-left:16px}
footer{padding:12px 24px;color:#6b7280;font-size:.8rem}
";

/// Renders the status document as an HTML page. Every string from the document is escaped;
/// missing or null fields show as "no data".
pub fn render(status: &Value) -> String {
    let band = band_name(&status["band"]);
    let mut h = String::with_capacity(16 * 1024);
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str("<meta http-equiv=\"refresh\" content=\"10\">");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    let _ = writeln!(
        h,
        "<title>toolgate: {}</title><style>{STYLE}</style></head><body>",
        esc(band.unwrap_or(NO_DATA))
    );
    let _ = write!(
        h,
        "<header id=\"band\" class=\"{}\"><span class=\"label\">{}</span>\
         <span class=\"meta\">scope {} · evaluated {} · {} in doubt</span></header>\n<main>\n",
        band_class(band),
        esc(band.unwrap_or(NO_DATA)),
        text(&status["scope"]),
        text(&status["evaluated_at"]),
        text(&status["in_doubt"]),
    );
    hard_stops(&mut h, &status["hard_stops"]);
    slos(&mut h, &status["slos"]);
    h.push_str("</main>\n<footer>toolgate status page · refreshes every 10 s · JSON at /v1/status</footer>\n</body></html>\n");
    h
}

fn hard_stops(h: &mut String, stops: &Value) {
    let stops = stops.as_array().map(Vec::as_slice).unwrap_or_default();
    let _ = writeln!(h, "<h2>Active hard stops ({})</h2>", stops.len());
    h.push_str(
        "<table id=\"hard-stops\"><thead><tr><th>ID</th><th>Kind</th><th>Tenant</th>\
                <th>Account</th><th>Target</th><th>Reason</th><th>Since</th></tr></thead><tbody>\n",
    );
    if stops.is_empty() {
        h.push_str("<tr><td colspan=\"7\" class=\"muted\">No active hard stops.</td></tr>\n");
    }
    for s in stops {
        h.push_str("<tr class=\"hard-stop\">");
        for f in [
            "id",
            "kind",
            "tenant",
            "account",
            "target",
            "reason",
            "created_at",
        ] {
            let _ = write!(h, "<td>{}</td>", text(&s[f]));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table>\n");
}

fn slos(h: &mut String, slos: &Value) {
    let slos = slos.as_array().map(Vec::as_slice).unwrap_or_default();
    let _ = writeln!(h, "<h2>Service level objectives ({})</h2>", slos.len());
    h.push_str(
        "<table id=\"slos\"><thead><tr><th>SLO</th><th>Band</th><th>Target</th><th>SLI</th>\
         <th>Budget</th><th>Budget left</th><th>Burn 1h</th><th>Burn 6h</th><th>Burn 1d</th>\
         <th>Burn 3d</th><th>Firing alerts</th><th>Top failure reasons</th></tr></thead><tbody>\n",
    );
    if slos.is_empty() {
        h.push_str("<tr><td colspan=\"12\" class=\"muted\">No SLOs: no data.</td></tr>\n");
    }
    for s in slos {
        slo_row(h, s);
    }
    h.push_str("</tbody></table>\n");
}

fn slo_row(h: &mut String, s: &Value) {
    let band = band_name(&s["band"]);
    let class = band_class(band);
    let _ = write!(
        h,
        "<tr class=\"slo\" data-slo=\"{}\"><td><strong>{}</strong> {}",
        esc(s["id"].as_str().unwrap_or_default()),
        text(&s["id"]),
        text(&s["name"]),
    );
    if s["low_volume"].as_bool() == Some(true) {
        h.push_str("<span class=\"tag\">low volume</span>");
    }
    if s["postmortem_required"].as_bool() == Some(true) {
        h.push_str("<span class=\"tag\">postmortem required</span>");
    }
    let _ = write!(
        h,
        "</td><td><span class=\"badge {class}\">{}</span><br><span class=\"muted\">{}</span></td>",
        esc(band.unwrap_or(NO_DATA)),
        text(&s["band_reason"]),
    );
    let _ = write!(
        h,
        "<td class=\"num\">{}</td><td class=\"num\">{}</td>",
        pct(s["target"].as_f64(), 2),
        pct(s["sli"].as_f64(), 3),
    );
    let left = s["budget_remaining_pct"].as_f64();
    let width = left.unwrap_or(0.0).clamp(0.0, 100.0);
    let _ = write!(
        h,
        "<td><div class=\"bar\" title=\"{}\"><div class=\"fill {class}\" style=\"width:{width:.1}%\"></div></div></td>",
        match left {
            Some(p) => format!("{p:.1}% of the budget left"),
            None => NO_DATA.into(),
        }
    );
    let events = match s["budget_remaining"].as_f64() {
        Some(e) => format!("{e:.1} events"),
        None => NO_DATA.into(),
    };
    let left_pct = match left {
        Some(p) => format!("{p:.1}%"),
        None => NO_DATA.into(),
    };
    let _ = write!(
        h,
        "<td class=\"num\">{left_pct}<br><span class=\"muted\">{events}</span>"
    );
    if let Some(secs) = s["time_to_exhaustion"]
        .as_f64()
        .filter(|t| t.is_finite() && *t >= 0.0)
    {
        let mins = Duration::from_secs((secs / 60.0).ceil() as u64 * 60);
        let _ = write!(
            h,
            "<br><span class=\"hot\">gone in {}</span>",
            humantime::format_duration(mins)
        );
    }
    h.push_str("</td>");
    for w in ["1h", "6h", "1d", "3d"] {
        h.push_str(&burn_cell(&s["burn_rates"][w]));
    }
    h.push_str("<td>");
    alerts(h, &s["alerts"]);
    h.push_str("</td><td>");
    reasons(h, &s["top_failure_reasons"]);
    h.push_str("</td></tr>\n");
}

fn burn_cell(v: &Value) -> String {
    match v.as_f64() {
        Some(b) if b > 1.0 => format!("<td class=\"num hot\">{b:.2}×</td>"),
        Some(b) => format!("<td class=\"num\">{b:.2}×</td>"),
        None => format!("<td class=\"num muted\">{NO_DATA}</td>"),
    }
}

fn alerts(h: &mut String, alerts: &Value) {
    let Some(all) = alerts.as_array() else {
        h.push_str("<span class=\"muted\">no data</span>");
        return;
    };
    let firing: Vec<&Value> = all.iter().filter(|a| a["firing"] == true).collect();
    if firing.is_empty() {
        h.push_str("<span class=\"muted\">none</span>");
        return;
    }
    h.push_str("<ul>");
    for a in firing {
        let _ = write!(
            h,
            "<li class=\"alert\"><strong>{}</strong> {}/{} &gt; {}× (now {}× / {}×)</li>",
            text(&a["severity"]),
            text(&a["long"]),
            text(&a["short"]),
            num(&a["threshold"]),
            num(&a["burn_long"]),
            num(&a["burn_short"]),
        );
    }
    h.push_str("</ul>");
}

fn reasons(h: &mut String, reasons: &Value) {
    let list = reasons.as_array().map(Vec::as_slice).unwrap_or_default();
    if list.is_empty() {
        h.push_str("<span class=\"muted\">none</span>");
        return;
    }
    h.push_str("<ul>");
    for r in list.iter().take(5) {
        let _ = write!(
            h,
            "<li>{} <span class=\"muted\">×{}</span></li>",
            text(&r["reason"]),
            text(&r["count"])
        );
    }
    h.push_str("</ul>");
}

/// The band as written when it is one of the three; `None` otherwise.
fn band_name(v: &Value) -> Option<&'static str> {
    match v.as_str()?.to_ascii_uppercase().as_str() {
        "GREEN" => Some("GREEN"),
        "YELLOW" => Some("YELLOW"),
        "RED" => Some("RED"),
        _ => None,
    }
}

fn band_class(band: Option<&str>) -> &'static str {
    match band {
        Some("GREEN") => "band-green",
        Some("YELLOW") => "band-yellow",
        Some("RED") => "band-red",
        _ => "band-unknown",
    }
}

/// A fraction as a percentage with `digits` decimals, or "no data".
fn pct(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(f) => format!("{:.*}%", digits, f * 100.0),
        None => NO_DATA.into(),
    }
}

/// A number with two decimals, or "no data".
fn num(v: &Value) -> String {
    v.as_f64()
        .map(|f| format!("{f:.2}"))
        .unwrap_or_else(|| NO_DATA.into())
}

/// Any scalar from the document, escaped; null or missing is "no data".
fn text(v: &Value) -> String {
    match v {
        Value::Null => NO_DATA.into(),
        Value::String(s) => esc(s),
        Value::Array(_) | Value::Object(_) => esc(&v.to_string()),
        other => esc(&other.to_string()),
    }
}

/// Escapes text for HTML element content and double- or single-quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "band": "YELLOW", "evaluated_at": "2026-11-27T22:50:02.000Z", "scope": "all",
            "hard_stops": [{"id": "hs-1", "kind": "spam_loop", "tenant": "acme", "account": "acme-ig",
                "target": "<b>@x</b>", "reason": "loop \"detected\"", "created_at": "2026-11-27T22:00:00Z"}],
            "in_doubt": 2,
            "slos": [
                {"id": "SLO-01", "name": "Publish success (API lane)", "target": 0.995, "window": "28d",
                 "good": 990, "valid": 1000, "sli": 0.99, "budget_remaining": -5.0,
                 "budget_remaining_pct": -100.0,
                 "burn_rates": {"5m": 2.0, "30m": null, "1h": 14.5, "2h": null, "6h": 6.0, "1d": 0.5, "3d": null},
                 "alerts": [{"severity": "page", "long": "1h", "short": "5m", "threshold": 13.44,
                             "burn_long": 14.5, "burn_short": 20.0, "firing": true},
                            {"severity": "ticket", "long": "1d", "short": "2h", "threshold": 2.8,
                             "burn_long": 0.5, "burn_short": 0.1, "firing": false}],
                 "band": "RED", "band_reason": "budget exhausted", "low_volume": false,
                 "time_to_exhaustion": 3599.0,
                 "top_failure_reasons": [{"reason": "<script>alert('x')</script>", "count": 3}],
                 "top_clients": [], "top_platforms": [], "postmortem_required": true},
                {"id": "SLO-02", "name": "Publish success (browser lane)", "target": 0.985,
                 "sli": null, "budget_remaining_pct": null, "band": "GREEN", "low_volume": true}
            ]
        })
    }

    #[test]
    fn escapes_every_string_from_the_document() {
        let html = render(&doc());
        assert!(!html.contains("<script>"), "raw script tag leaked");
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(html.contains("&lt;b&gt;@x&lt;/b&gt;"));
        assert!(html.contains("loop &quot;detected&quot;"));
        let evil =
            json!({"band": "RED", "slos": [{"id": "\"><img src=x onerror=1>", "band": "RED"}]});
        let html = render(&evil);
        assert!(!html.contains("<img"));
        assert!(html.contains("data-slo=\"&quot;&gt;&lt;img src=x onerror=1&gt;\""));
        assert_eq!(esc("a&b<c>'\""), "a&amp;b&lt;c&gt;&#39;&quot;");
    }

    #[test]
    fn banner_carries_the_band_and_its_class() {
        let html = render(&doc());
        assert!(html.contains(
            "<header id=\"band\" class=\"band-yellow\"><span class=\"label\">YELLOW</span>"
        ));
        for (band, class) in [
            ("GREEN", "band-green"),
            ("red", "band-red"),
            ("bogus", "band-unknown"),
        ] {
            let html = render(&json!({"band": band}));
            assert!(
                html.contains(&format!("id=\"band\" class=\"{class}\"")),
                "{band}"
            );
        }
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"10\">"));
        assert!(!html.contains("<script"), "the page has no JavaScript");
    }

    #[test]
    fn one_row_per_slo_with_budget_bar_burns_and_firing_alerts() {
        let html = render(&doc());
        assert_eq!(html.matches("<tr class=\"slo\"").count(), 2);
        assert!(html.contains("<tr class=\"slo\" data-slo=\"SLO-01\">"));
        assert!(html.contains("<tr class=\"slo\" data-slo=\"SLO-02\">"));
        // Overspent: the bar is empty, red, and the text says how far below zero.
        assert!(html.contains("<div class=\"fill band-red\" style=\"width:0.0%\">"));
        assert!(html.contains("-100.0%") && html.contains("-5.0 events"));
        assert!(html.contains("gone in 1h"));
        assert!(html.contains("14.50×") && html.contains("6.00×") && html.contains("0.50×"));
        assert!(html.contains("<strong>page</strong> 1h/5m &gt; 13.44×"));
        assert!(
            !html.contains("<strong>ticket</strong>"),
            "non-firing alerts are not listed"
        );
        assert!(html.contains("postmortem required") && html.contains("low volume"));
        assert!(html.contains("<tr class=\"hard-stop\">"));
        let full = render(
            &json!({"band": "GREEN", "slos": [{"id": "S", "band": "GREEN", "budget_remaining_pct": 250.0}]}),
        );
        assert!(full.contains("style=\"width:100.0%\""));
    }

    #[test]
    fn missing_and_null_fields_show_no_data() {
        let html = render(&doc());
        let row2 = &html[html.find("data-slo=\"SLO-02\"").unwrap()..];
        let row2 = &row2[..row2.find("</tr>").unwrap()];
        assert!(row2.matches(NO_DATA).count() >= 6, "{row2}");
        assert!(row2.contains("style=\"width:0.0%\""));
        // An empty or non-object document still renders a complete page.
        for v in [
            json!({}),
            Value::Null,
            json!({"slos": "nope", "hard_stops": 3, "band": 7}),
        ] {
            let html = render(&v);
            assert!(html.contains("id=\"band\" class=\"band-unknown\""));
            assert!(html.contains("id=\"hard-stops\"") && html.contains("No active hard stops."));
            assert!(html.ends_with("</html>\n"));
        }
    }
}
