//! `GET /v1/incidents` and `GET /v1/incidents/{id}/bundle`: the incident list and postmortem
//! bundles ([`crate::incident`]) over HTTP.
//!
//! The admin token sees every incident; a tenant token only those touching its tenant, with
//! its own figures and, in bundles, only its own tenant's audit records and runner events (the
//! journal query itself is limited to that tenant).

use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full};

use super::{AdminState, Body, Who, error_response, json_response};
use crate::budget::Scope;
use crate::incident;
use crate::incident::bundle::{self, Format, parse_limit, parse_margin};
use crate::session::AuthError;

/// Bundle query parameters: `format` (json | md), `margin` (a duration up to 24h, e.g. 15m),
/// `limit` (1..=10000 records). An error is a 400 message.
pub fn parse_query(query: &str) -> Result<(Format, bundle::Options), String> {
    let mut format = Format::Json;
    let mut opts = bundle::Options::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_encoding::percent_decode_str(v)
            .decode_utf8()
            .map_err(|_| format!("query parameter {k:?} is not UTF-8"))?;
        match k {
            "format" => {
                format = Format::parse(&v)
                    .ok_or_else(|| format!("format={v:?}: expected json or md"))?;
            }
            "margin" => opts.margin_ms = parse_margin(&v)?,
            "limit" => opts.limit = parse_limit(&v)?,
            other => {
                return Err(format!(
                    "unknown query parameter {other:?}; known: format, margin, limit"
                ));
            }
        }
    }
    Ok((format, opts))
}

/// What the caller may see, or why it may see nothing (for its 401).
fn scope(who: &Who) -> Result<Scope, AuthError> {
    match who {
        Who::Admin => Ok(Scope::All),
        Who::Tenant(t) => Ok(Scope::Tenant(t.clone())),
        Who::Nobody(why) => Err(*why),
    }
}

fn journal_error(e: impl std::fmt::Display) -> Response<Body> {
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "journal_unavailable",
        &format!("cannot read the journal: {e}"),
    )
}

/// `GET /v1/incidents`.
pub(super) fn list(state: &AdminState, who: &Who, query: &str) -> Response<Body> {
    let scope = match scope(who) {
        Ok(s) => s,
        Err(why) => return super::unauthorized("an admin or tenant token", why),
    };
    if !query.is_empty() {
        return error_response(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "GET /v1/incidents takes no query parameters",
        );
    }
    let stops = match state.journal.hard_stops(true) {
        Ok(s) => s,
        Err(e) => return journal_error(e),
    };
    let now = state.clock.now_ms();
    let incidents = state
        .budget
        .with_engine(|e| incident::list(e, &stops, &scope, now));
    json_response(
        StatusCode::OK,
        &incident::list_document(&incidents, &scope, now),
    )
}

/// `GET /v1/incidents/{id}/bundle[?format=json|md&margin=15m&limit=10000]`.
pub(super) async fn bundle(state: &AdminState, who: &Who, id: &str, query: &str) -> Response<Body> {
    let scope = match scope(who) {
        Ok(s) => s,
        Err(why) => return super::unauthorized("an admin or tenant token", why),
    };
    let (format, opts) = match parse_query(query) {
        Ok(q) => q,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, "invalid_query", &e),
    };
    // The bundle reads the journal file: first commit the records still queued.
    if let Err(e) = state.journal.flush().await {
        return journal_error(e);
    }
    let stops = match state.journal.hard_stops(true) {
        Ok(s) => s,
        Err(e) => return journal_error(e),
    };
    let now = state.clock.now_ms();
    let plan = state.budget.with_engine(|e| {
        incident::find(e, &stops, &scope, id, now)
            .map(|inc| bundle::plan(e, &stops, inc, &scope, opts, now))
    });
    let Some(plan) = plan else {
        return error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!(
                "no incident {id:?}{} (GET /v1/incidents lists them)",
                if matches!(scope, Scope::Tenant(_)) {
                    " visible to this tenant"
                } else {
                    ""
                }
            ),
        );
    };
    let dir = state.cfg.data_dir.clone();
    let read = tokio::task::spawn_blocking(move || {
        let ro = crate::journal::readonly::ReadOnlyJournal::open(&dir)?;
        let collected = bundle::collect(ro.conn(), &plan)?;
        Ok::<_, crate::journal::JournalError>(bundle::assemble(plan, collected, now))
    })
    .await;
    let doc = match read {
        Ok(Ok(doc)) => doc,
        Ok(Err(e)) => return journal_error(e),
        Err(e) => {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                &format!("bundle task failed: {e}"),
            );
        }
    };
    match format {
        Format::Json => json_response(StatusCode::OK, &doc),
        Format::Markdown => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/markdown; charset=utf-8")
            .header(header::CACHE_CONTROL, "no-store")
            .body(Full::new(bytes::Bytes::from(incident::markdown::render(&doc))).boxed())
            .expect("static response parts are valid"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        let (f, o) = parse_query("format=md&margin=5m&limit=10").unwrap();
        assert_eq!(f, Format::Markdown);
        assert_eq!((o.margin_ms, o.limit), (300_000, 10));
        assert_eq!(parse_query("").unwrap().0, Format::Json);
        for bad in [
            "format=pdf",
            "margin=2d",
            "margin=x",
            "limit=0",
            "limit=10001",
            "x=1",
        ] {
            assert!(parse_query(bad).is_err(), "{bad}");
        }
    }
}
