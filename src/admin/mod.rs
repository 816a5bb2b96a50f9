//! The admin listener: liveness, readiness, and the operator endpoints for safety, budgets and
//! incidents.

mod budget;
mod export;
mod incidents;
pub mod metrics;
mod ops;
pub mod page;

pub use page::render as render_page;

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited, combinators::BoxBody};
use serde_json::{Value, json};

use crate::clock::Clock;
use crate::config::Config;
use crate::journal::Store;
use crate::safety::SafetyState;
use crate::session::{AuthError, Authenticator};
use crate::upstream::{Status, Upstreams};

/// The body type of every response toolgate itself builds (the same as rmcp's).
pub type Body = BoxBody<Bytes, Infallible>;

/// Largest request body an admin endpoint reads.
const MAX_ADMIN_BODY: usize = 64 * 1024;
/// Largest event batch `POST /v1/events` reads.
const MAX_EVENTS_BODY: usize = 4 * 1024 * 1024;

/// An HTML page response.
fn html_response(html: String) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Full::new(Bytes::from(html)).boxed())
        .expect("static response parts are valid")
}

/// A JSON response with the given status.
pub fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Full::new(Bytes::from(value.to_string())).boxed())
        .expect("static response parts are valid")
}

/// A JSON error body: `{"error": code, "message": ...}`.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    json_response(status, &json!({"error": code, "message": message}))
}

/// What the admin endpoints read.
pub struct AdminState {
    pub cfg: Arc<Config>,
    pub upstreams: Arc<Upstreams>,
    pub auth: Arc<Authenticator>,
    pub journal: Arc<dyn Store>,
    pub safety: Arc<SafetyState>,
    pub budget: Arc<crate::budget::Budget>,
    pub flags: Arc<crate::flags::Flags>,
    pub clock: Arc<dyn Clock>,
}

/// Who is calling an admin endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    Admin,
    Tenant(String),
    /// Neither: no bearer token, or one that matches no tenant and not the admin token. The
    /// 401 says which, so an operator knows whether to send a token or fix the one sent.
    Nobody(AuthError),
}

impl Who {
    /// Whether this caller may see data of `tenant` (`None`: not tied to a tenant, admin only).
    pub fn sees(&self, tenant: Option<&str>) -> bool {
        match self {
            Who::Admin => true,
            Who::Tenant(t) => tenant == Some(t.as_str()),
            Who::Nobody(_) => false,
        }
    }
}

fn who(auth: &Authenticator, req: &Request<hyper::body::Incoming>) -> Who {
    let h = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    if auth.is_admin(h) {
        return Who::Admin;
    }
    match auth.authenticate(h) {
        Ok(c) => Who::Tenant(c.tenant.to_string()),
        Err(e) => Who::Nobody(e),
    }
}

/// Routes one admin request.
pub async fn route(state: Arc<AdminState>, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = req.method().clone();
    // An existing path with another method is a 405 naming the one it takes, the same way on
    // every path: a 404 would tell an operator the endpoint does not exist.
    match allowed_method(&segs) {
        None => {
            return error_response(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("no admin endpoint {method} {path}"),
            );
        }
        Some(allow) if method != allow => {
            let mut r = error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                &format!("{path} takes {allow} only, not {method}"),
            );
            let allow = http::HeaderValue::from_str(allow.as_str())
                .expect("a method name is a valid header value");
            r.headers_mut().insert(header::ALLOW, allow);
            return r;
        }
        Some(_) => {}
    }
    match (&method, segs.as_slice()) {
        (&Method::GET, [""]) => {
            let doc = budget::status(&state, &Who::Admin);
            html_response(page::render(&doc))
        }
        (&Method::GET, ["metrics"]) => {
            let doc = budget::status(&state, &Who::Admin);
            let mut r = Response::new(Full::new(Bytes::from(metrics::render(&doc))).boxed());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        (&Method::GET, ["v1", "status"]) => match who(&state.auth, &req) {
            Who::Nobody(why) => unauthorized("an admin or tenant token", why),
            w => json_response(StatusCode::OK, &budget::status(&state, &w)),
        },
        (&Method::GET, ["v1", "audit", "export"]) => {
            export::export(&state, &who(&state.auth, &req), &query).await
        }
        (&Method::GET, ["v1", "incidents"]) => {
            incidents::list(&state, &who(&state.auth, &req), &query)
        }
        (&Method::GET, ["v1", "incidents", id, "bundle"]) => {
            let id = id.to_string();
            incidents::bundle(&state, &who(&state.auth, &req), &id, &query).await
        }
        (&Method::POST, ["v1", "events"]) => {
            let w = who(&state.auth, &req);
            if let Who::Nobody(why) = w {
                return unauthorized("an admin or tenant token", why);
            }
            match Limited::new(req.into_body(), MAX_EVENTS_BODY)
                .collect()
                .await
            {
                Ok(b) => budget::ingest(&state, &w, &b.to_bytes()).await,
                Err(e) => error_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "invalid_body",
                    &format!("cannot read body (limit {MAX_EVENTS_BODY} bytes): {e}"),
                ),
            }
        }
        (&Method::GET, ["v1", "flags"]) => match who(&state.auth, &req) {
            Who::Nobody(why) => unauthorized("an admin or tenant token", why),
            _ => json_response(StatusCode::OK, &budget::flags(&state)),
        },
        (&Method::PUT, ["v1", "flags", capability]) => {
            let capability = capability.to_string();
            match admin_body(&state, req).await {
                Ok(body) => budget::set_flag(&state, &capability, &body).await,
                Err(resp) => resp,
            }
        }
        (&Method::GET, ["healthz"]) => json_response(StatusCode::OK, &json!({"status": "ok"})),
        (&Method::GET, ["readyz"]) => readyz(&state),
        (&Method::GET, ["v1", "hard-stops"]) => match who(&state.auth, &req) {
            Who::Nobody(why) => unauthorized("an admin or tenant token", why),
            w => ops::list_hard_stops(&state, &w, &query),
        },
        (&Method::POST, ["v1", "hard-stops", id, "clear"]) => {
            let id = id.to_string();
            match admin_body(&state, req).await {
                Ok(body) => ops::clear_hard_stop(&state, &id, &body).await,
                Err(resp) => resp,
            }
        }
        (&Method::POST, ["v1", "idempotency", tenant, key, "resolve"]) => {
            let (tenant, key) = (tenant.to_string(), key.to_string());
            match admin_body(&state, req).await {
                Ok(body) => ops::resolve_key(&state, &tenant, &key, &body).await,
                Err(resp) => resp,
            }
        }
        // Unreachable while `allowed_method` and these arms agree (tests/operator.rs drives
        // every endpoint with its method and another one); a 404 is the safe answer if not.
        _ => error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no admin endpoint {method} {path}"),
        ),
    }
}

/// The one method an admin path takes, or `None` when no endpoint has that path.
fn allowed_method(segs: &[&str]) -> Option<Method> {
    let m = match segs {
        [""] | ["metrics"] | ["healthz"] | ["readyz"] => Method::GET,
        ["v1", "status"] | ["v1", "audit", "export"] | ["v1", "flags"] | ["v1", "hard-stops"] => {
            Method::GET
        }
        ["v1", "incidents"] | ["v1", "incidents", _, "bundle"] => Method::GET,
        ["v1", "events"] => Method::POST,
        ["v1", "flags", _] => Method::PUT,
        ["v1", "hard-stops", _, "clear"] | ["v1", "idempotency", _, _, "resolve"] => Method::POST,
        _ => return None,
    };
    Some(m)
}

/// The 401 of an endpoint that needs `needs`; its message tells a missing token from a wrong
/// one (the code stays `unauthorized` for both, as the admin API schema says).
fn unauthorized(needs: &str, why: AuthError) -> Response<Body> {
    let message = match why {
        AuthError::Missing => format!(
            "no bearer token was sent: this endpoint needs {needs}: Authorization: Bearer <token>"
        ),
        AuthError::Unknown => format!(
            "the bearer token was not accepted: it is neither this gateway's admin token nor \
             any tenant's token (this endpoint needs {needs})"
        ),
    };
    let mut r = error_response(StatusCode::UNAUTHORIZED, "unauthorized", &message);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer"),
    );
    r
}

/// Checks the admin token, then reads a bounded body.
async fn admin_body(
    state: &AdminState,
    req: Request<hyper::body::Incoming>,
) -> Result<Bytes, Response<Body>> {
    match who(&state.auth, &req) {
        Who::Admin => {}
        Who::Tenant(_) => {
            return Err(error_response(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this endpoint needs the admin token",
            ));
        }
        Who::Nobody(_) if !state.auth.has_admin() => {
            return Err(error_response(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "no admin token is configured: set the variable named by admin_token_env and restart",
            ));
        }
        Who::Nobody(why) => return Err(unauthorized("the admin token", why)),
    }
    match Limited::new(req.into_body(), MAX_ADMIN_BODY)
        .collect()
        .await
    {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) => Err(error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_body",
            &format!("cannot read body (limit {MAX_ADMIN_BODY} bytes): {e}"),
        )),
    }
}

/// 200 when the data dir is writable and every required upstream is connected, else 503
/// with the reasons; both carry each upstream's state.
fn readyz(state: &AdminState) -> Response<Body> {
    let mut reasons = Vec::new();
    if let Err(e) = probe_writable(&state.cfg.data_dir) {
        reasons.push(format!(
            "data dir {} is not writable: {e}",
            state.cfg.data_dir.display()
        ));
    }
    let upstreams = state.upstreams.reports();
    for u in upstreams
        .iter()
        .filter(|u| u.required && u.status != Status::Connected)
    {
        let why = u.last_error.as_deref().unwrap_or("not connected yet");
        // The same lowercase word as the report's `status` field, so one grep finds both.
        reasons.push(
            format!(
                "required upstream {} is {}: {why}",
                u.name,
                u.status.as_str()
            )
            .replace('"', ""),
        );
    }
    if let Some(stop) = state.safety.journal_failure() {
        reasons.push(format!(
            "hard stop {} (journal_failure): the journal failed to record a call, so side \
             effects are refused until an operator clears it",
            stop.id
        ));
    }
    let conflicts: Vec<_> = state
        .upstreams
        .catalog()
        .conflicts
        .iter()
        .map(|c| json!({"tool": c.name, "upstreams": c.upstreams}))
        .collect();
    let ready = reasons.is_empty();
    let body = json!({
        "ready": ready,
        "reasons": reasons,
        "upstreams": upstreams,
        "tool_conflicts": conflicts,
        "hard_stops": state.safety.active().len(),
        "journal": state.journal.write_stats(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, &body)
}

/// Creates and removes a probe file: the only honest test of "writable".
fn probe_writable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".readyz-{}", std::process::id()));
    std::fs::write(&probe, b"ok")?;
    std::fs::remove_file(&probe)
}
