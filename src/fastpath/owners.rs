//! Which tenant opened each HTTP session: a session answers only to that tenant's token.
//!
//! rmcp's sessions know nothing of tenants, so any valid token with another tenant's
//! `Mcp-Session-Id` could reach that session: close it with DELETE, read its event stream,
//! cancel its requests. Tool calls were never at risk (the caller always comes from the
//! token), but a session is one runner's, and another tenant's token gets the same 404 as a
//! session that does not exist, so it cannot even tell that it does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::admin::Body;

const HEADER_SESSION_ID: &str = "mcp-session-id";
/// Past this many remembered sessions, the ones rmcp has closed are forgotten on the next
/// insert (rmcp ends idle sessions on its own, without telling us).
const PRUNE_ABOVE: usize = 1024;

/// Session id → the tenant whose token opened it.
#[derive(Default)]
pub struct SessionOwners(Mutex<HashMap<Arc<str>, Arc<str>>>);

impl SessionOwners {
    /// `Some(404)` when the request names a session another tenant opened.
    pub fn refuse(&self, tenant: &str, h: &HeaderMap) -> Option<Response<Body>> {
        let sid = h.get(HEADER_SESSION_ID)?.to_str().ok()?;
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let owner = map.get(sid)?;
        if &**owner == tenant {
            return None;
        }
        drop(map);
        tracing::warn!(
            tenant,
            "a request named another tenant's MCP session; answered as an unknown session"
        );
        // rmcp's own answer to an unknown session, byte for byte.
        let mut r = Response::new(Full::new(Bytes::from("Not Found: Session not found")).boxed());
        *r.status_mut() = StatusCode::NOT_FOUND;
        Some(r)
    }

    /// Learns from rmcp's answer: a new session id belongs to the tenant that asked for it;
    /// a closed or unknown one is forgotten. `live` says whether rmcp still has a session
    /// (used only to prune).
    pub fn observe(
        &self,
        tenant: &Arc<str>,
        method: &Method,
        asked: Option<&str>,
        resp: &Response<Body>,
        live: impl Fn(&str) -> bool,
    ) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match asked {
            None => {
                let Some(new) = resp
                    .headers()
                    .get(HEADER_SESSION_ID)
                    .and_then(|v| v.to_str().ok())
                else {
                    return;
                };
                if map.len() >= PRUNE_ABOVE {
                    map.retain(|id, _| live(id));
                }
                map.insert(new.into(), tenant.clone());
            }
            Some(sid) => {
                let closed = *method == Method::DELETE && resp.status().is_success();
                if closed || resp.status() == StatusCode::NOT_FOUND {
                    map.remove(sid);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, sid: Option<&str>) -> Response<Body> {
        let mut r = Response::new(Full::new(Bytes::new()).boxed());
        *r.status_mut() = StatusCode::from_u16(status).unwrap();
        if let Some(s) = sid {
            r.headers_mut()
                .insert(HEADER_SESSION_ID, s.parse().unwrap());
        }
        r
    }

    fn naming(sid: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER_SESSION_ID, sid.parse().unwrap());
        h
    }

    #[test]
    fn a_session_answers_to_the_tenant_that_opened_it_until_it_closes() {
        let o = SessionOwners::default();
        let a: Arc<str> = "a".into();
        o.observe(&a, &Method::POST, None, &answer(200, Some("s1")), |_| true);
        assert!(o.refuse("a", &naming("s1")).is_none());
        let r = o.refuse("b", &naming("s1")).expect("b is refused");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        // Sessions nobody registered (rmcp answers those itself) and requests without one.
        assert!(o.refuse("b", &naming("s2")).is_none());
        assert!(o.refuse("b", &HeaderMap::new()).is_none());
        // A failed DELETE keeps it; a successful one forgets it.
        o.observe(&a, &Method::DELETE, Some("s1"), &answer(400, None), |_| {
            true
        });
        assert!(o.refuse("b", &naming("s1")).is_some());
        o.observe(&a, &Method::DELETE, Some("s1"), &answer(202, None), |_| {
            true
        });
        assert!(o.refuse("b", &naming("s1")).is_none());
    }

    #[test]
    fn closed_sessions_are_pruned_once_many_are_remembered() {
        let o = SessionOwners::default();
        let a: Arc<str> = "a".into();
        for i in 0..PRUNE_ABOVE {
            let sid = format!("s{i}");
            o.observe(&a, &Method::POST, None, &answer(200, Some(&sid)), |_| true);
        }
        // rmcp has closed all but s7.
        o.observe(&a, &Method::POST, None, &answer(200, Some("new")), |id| {
            id == "s7"
        });
        let map = o.0.lock().unwrap();
        let mut ids: Vec<&str> = map.keys().map(|k| &**k).collect();
        ids.sort();
        assert_eq!(ids, ["new", "s7"]);
    }
}
