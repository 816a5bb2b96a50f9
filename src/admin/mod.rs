//! The admin listener: liveness, readiness (and later status, metrics, export, events).

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use serde_json::{Value, json};

use crate::config::Config;
use crate::upstream::{Status, Upstreams};

/// The body type of every response toolgate itself builds (the same as rmcp's).
pub type Body = BoxBody<Bytes, Infallible>;

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
}

/// Routes one admin request.
pub async fn route<B>(state: Arc<AdminState>, req: Request<B>) -> Response<Body> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => json_response(StatusCode::OK, &json!({"status": "ok"})),
        (&Method::GET, "/readyz") => readyz(&state),
        (_, "/healthz" | "/readyz") => error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "use GET",
        ),
        (_, path) => error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no admin endpoint at {path}"),
        ),
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
        reasons.push(
            format!("required upstream {} is {:?}: {why}", u.name, u.status).replace('"', ""),
        );
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
