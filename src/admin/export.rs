//! `GET /v1/audit/export`: the audit export ([`crate::journal::export`]) streamed over HTTP.
//!
//! The query runs on a blocking thread over its own read connection and sends chunks through
//! a bounded channel into the response body: memory stays bounded, a slow client slows the
//! query, and a client that disconnects makes the next send fail, which stops the query.

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::sync::mpsc;

use super::{AdminState, Body, Who, error_response};
use crate::journal::export::{self, Filters, Format};

/// Chunks in flight between the query thread and the response.
const CHANNEL_CHUNKS: usize = 8;
/// Bytes gathered before a chunk is sent.
const CHUNK_BYTES: usize = 32 * 1024;

/// An `io::Write` that sends full chunks into the response channel.
struct ChunkSender {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl ChunkSender {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(CHUNK_BYTES + 4096),
        ));
        self.tx.blocking_send(chunk).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

impl std::io::Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Parses the query string into filters and a format; an error is a 400 message.
fn parse_query(query: &str) -> Result<(Filters, Format), String> {
    let mut filters = Filters::default();
    let mut format = Format::Jsonl;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| format!("query parameter {s:?} is not UTF-8"))
        };
        let (k, v) = (decode(k)?, decode(v)?);
        if k == "format" {
            format =
                Format::parse(&v).ok_or_else(|| format!("format={v:?}: expected jsonl or csv"))?;
        } else if !filters.set(&k, v) {
            return Err(format!(
                "unknown query parameter {k:?}; known: format, {}",
                export::FILTER_NAMES.join(", ")
            ));
        }
    }
    filters.window()?;
    Ok((filters, format))
}

/// Handles `GET /v1/audit/export` for an authenticated caller.
pub(super) async fn export(state: &AdminState, who: &Who, query: &str) -> Response<Body> {
    let (mut filters, format) = match parse_query(query) {
        Ok(q) => q,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, "invalid_query", &e),
    };
    match who {
        Who::Admin => {}
        Who::Tenant(t) => match &filters.tenant {
            None => filters.tenant = Some(t.clone()),
            Some(asked) if asked == t => {}
            Some(asked) => {
                return error_response(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    &format!(
                        "a tenant token exports its own tenant's records only: tenant={asked:?} is not {t:?} (use the admin token for other tenants)"
                    ),
                );
            }
        },
        Who::Nobody(why) => return super::unauthorized("an admin or tenant token", *why),
    }
    // The export reads the journal file: first commit the records still queued, so it holds
    // every call answered before the request.
    if let Err(e) = state.journal.flush().await {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "journal_unavailable",
            &format!("cannot commit the queued audit records: {e}"),
        );
    }
    let dir = state.cfg.data_dir.clone();
    let conn = match tokio::task::spawn_blocking(move || export::open_read_only(&dir)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "journal_unavailable",
                &format!("cannot open the journal: {e}"),
            );
        }
        Err(e) => {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                &format!("export task failed: {e}"),
            );
        }
    };
    let now = crate::clock::rfc3339(state.clock.now_ms());
    let (tx, mut rx) = mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkSender {
            tx,
            buf: Vec::with_capacity(CHUNK_BYTES + 4096),
        };
        match export::export(&conn, &filters, format, &now, &mut out) {
            Ok(s) => tracing::info!(records = s.count, head = s.head.0, "audit export streamed"),
            Err(export::ExportError::Io(e)) => {
                tracing::info!(error = %e, "audit export stopped: the client went away")
            }
            // The response is already under way: ending it without a trailer marks it
            // truncated for `toolgate audit verify`.
            Err(e) => tracing::error!(error = %e, "audit export failed midway"),
        }
    });
    let stream = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|c| c.map(|b| Ok::<_, std::convert::Infallible>(Frame::data(b))))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, format.content_type())
        .header(header::CACHE_CONTROL, "no-store")
        .body(StreamBody::new(stream).boxed())
        .expect("static response parts are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        let (f, fmt) =
            parse_query("tenant=a&from=2026-01-01T00%3A00%3A00Z&format=csv&idempotency_key=k+1")
                .unwrap();
        assert_eq!(fmt, Format::Csv);
        assert_eq!(f.tenant.as_deref(), Some("a"));
        assert_eq!(f.from.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(f.idempotency_key.as_deref(), Some("k 1"));
        assert!(parse_query("bogus=1").is_err());
        assert!(parse_query("from=yesterday").is_err());
        assert!(parse_query("format=xml").is_err());
    }
}
