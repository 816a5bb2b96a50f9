//! The supervisor's side of a connection: the handshake, liveness pings, the GET event stream
//! and the closing `DELETE`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use rmcp::model::ServerResult;
use serde_json::json;

use super::{
    EVENT_STREAM, HANDSHAKE_VERSIONS, HEADER_PROTOCOL_VERSION, HEADER_SESSION_ID, HttpConn,
    HttpFault, Outgoing, PROTOCOL_VERSION, Session, is_media, transport_fault,
};

impl HttpConn {
    /// Runs the handshake and installs the new session (also after the old one expired).
    pub async fn initialize(&self) -> Result<(), String> {
        let id = self.next_id();
        let body = serde_json::to_vec(&Outgoing {
            jsonrpc: "2.0",
            id,
            method: "initialize",
            params: json!({
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "toolgate", "version": env!("CARGO_PKG_VERSION")},
            }),
        })
        .expect("serializable");
        let attempt = async {
            let req = self.post(None, None, body);
            let resp = self.client.request(req).await.map_err(transport_fault)?;
            let session_id = resp.headers().get(HEADER_SESSION_ID).cloned();
            let result = self.read_answer(resp, id, false).await?;
            Ok::<_, HttpFault>((session_id, result))
        };
        let (session_id, result) = tokio::time::timeout(self.endpoint.timeout, attempt)
            .await
            .map_err(|_| format!("initialize: no answer within {:?}", self.endpoint.timeout))?
            .map_err(|e| format!("initialize: {e}"))?;
        let ServerResult::InitializeResult(init) = result else {
            return Err("initialize: the answer is not an InitializeResult".into());
        };
        let version = init.protocol_version.as_str();
        if !HANDSHAKE_VERSIONS.contains(&version) {
            return Err(format!(
                "initialize: upstream chose protocol version {version}, which toolgate does not speak"
            ));
        }
        let version = HeaderValue::from_str(version)
            .map_err(|_| format!("initialize: bad protocol version {version:?}"))?;
        let note =
            serde_json::to_vec(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
                .expect("serializable");
        let req = self.post(session_id.as_ref(), Some(&version), note);
        let resp = tokio::time::timeout(self.endpoint.timeout, self.client.request(req))
            .await
            .map_err(|_| "notifications/initialized: no answer in time".to_string())?
            .map_err(|e| format!("notifications/initialized: {e}"))?;
        let status = resp.status();
        // Read (and discard) whatever came back so the connection goes back to the pool.
        let _ = tokio::time::timeout(self.endpoint.timeout, resp.into_body().collect()).await;
        if !status.is_success() {
            return Err(format!("notifications/initialized: HTTP {status}"));
        }
        let mut slot = self.session.write().expect("session lock");
        let generation = slot.generation + 1;
        *slot = Arc::new(Session {
            id: session_id,
            version,
            generation,
        });
        Ok(())
    }

    /// The generation of the current session (changes with every handshake).
    pub fn generation(&self) -> u64 {
        self.session().generation
    }

    /// `ping`: is the upstream alive and does it still know our session?
    pub async fn ping(&self) -> Result<(), HttpFault> {
        match self.request("ping", json!({}), None).await {
            Ok(_) => Ok(()),
            // A server that does not implement ping is still alive.
            Err(HttpFault::Rpc(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Opens the GET event stream for server-initiated messages. `Ok(None)` when the
    /// server offers none (405).
    pub async fn open_events(&self) -> Result<Option<Incoming>, HttpFault> {
        let session = self.session();
        let mut req = Request::new(Full::new(Bytes::new()));
        *req.uri_mut() = self.endpoint.uri.clone();
        let h = req.headers_mut();
        h.insert(header::ACCEPT, HeaderValue::from_static(EVENT_STREAM));
        if let Some(a) = &self.endpoint.auth {
            h.insert(header::AUTHORIZATION, a.clone());
        }
        if let Some(s) = &session.id {
            h.insert(HEADER_SESSION_ID, s.clone());
        }
        h.insert(HEADER_PROTOCOL_VERSION, session.version.clone());
        let resp = tokio::time::timeout(self.endpoint.timeout, self.client.request(req))
            .await
            .map_err(|_| HttpFault::Timeout(self.endpoint.timeout))?
            .map_err(transport_fault)?;
        let status = resp.status();
        if status == StatusCode::METHOD_NOT_ALLOWED {
            return Ok(None);
        }
        if status == StatusCode::NOT_FOUND && session.id.is_some() {
            return Err(HttpFault::Expired);
        }
        if !status.is_success() || !is_media(resp.headers().get(header::CONTENT_TYPE), EVENT_STREAM)
        {
            return Err(HttpFault::Protocol(format!(
                "GET event stream: HTTP {status}"
            )));
        }
        Ok(Some(resp.into_body()))
    }

    /// Ends the session on the server (`DELETE`), best effort.
    pub async fn close(&self) {
        let session = self.session();
        let Some(id) = &session.id else {
            return;
        };
        let mut req = Request::new(Full::new(Bytes::new()));
        *req.method_mut() = Method::DELETE;
        *req.uri_mut() = self.endpoint.uri.clone();
        let h = req.headers_mut();
        if let Some(a) = &self.endpoint.auth {
            h.insert(header::AUTHORIZATION, a.clone());
        }
        h.insert(HEADER_SESSION_ID, id.clone());
        h.insert(HEADER_PROTOCOL_VERSION, session.version.clone());
        let _ = tokio::time::timeout(Duration::from_secs(2), self.client.request(req)).await;
    }
}
