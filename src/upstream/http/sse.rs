//! Server-sent events: an incremental `text/event-stream` parser and the GET stream's reader.

use bytes::{Buf, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use rmcp::model::ServerJsonRpcMessage;

use super::MAX_MESSAGE_BYTES;

/// Reads server-sent events from the GET stream, one JSON-RPC message at a time.
pub struct EventReader {
    body: Incoming,
    parser: SseParser,
}

impl EventReader {
    pub fn new(body: Incoming) -> Self {
        Self {
            body,
            parser: SseParser::default(),
        }
    }

    /// The next message; `Err` when the stream ended or broke (with why).
    pub async fn next(&mut self) -> Result<ServerJsonRpcMessage, String> {
        loop {
            while let Some(event) = self.parser.next_event()? {
                if event.is_empty() {
                    continue;
                }
                if let Ok(msg) = serde_json::from_slice::<ServerJsonRpcMessage>(&event) {
                    return Ok(msg);
                }
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.parser.push(&data);
                    }
                }
                Some(Err(e)) => return Err(format!("event stream broke: {e}")),
                None => return Err("event stream ended".into()),
            }
        }
    }
}

/// An incremental `text/event-stream` parser that yields the `data` of each event.
///
/// Lines may end in LF, CRLF or CR and may be split across chunks; several `data:` lines
/// of one event are joined with LF; comments, `event:`, `id:` and `retry:` are skipped.
#[derive(Default)]
pub struct SseParser {
    buf: BytesMut,
    data: Vec<u8>,
    has_data: bool,
    /// The previous chunk ended in CR: a leading LF in the next one belongs to it.
    skip_lf: bool,
}

impl SseParser {
    pub fn push(&mut self, chunk: &[u8]) {
        let mut chunk = chunk;
        if self.skip_lf {
            self.skip_lf = false;
            if chunk.first() == Some(&b'\n') {
                chunk = &chunk[1..];
            }
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The data of the next complete event, if one is buffered (empty for a data-less event).
    pub fn next_event(&mut self) -> Result<Option<Vec<u8>>, String> {
        loop {
            let Some(end) = self.buf.iter().position(|b| *b == b'\n' || *b == b'\r') else {
                if self.buf.len() + self.data.len() > MAX_MESSAGE_BYTES {
                    return Err("SSE event too large".into());
                }
                return Ok(None);
            };
            let line = self.buf.split_to(end).freeze();
            let term = self.buf[0];
            self.buf.advance(1);
            if term == b'\r' {
                if self.buf.is_empty() {
                    self.skip_lf = true;
                } else if self.buf[0] == b'\n' {
                    self.buf.advance(1);
                }
            }
            if line.is_empty() {
                if self.has_data {
                    self.has_data = false;
                    return Ok(Some(std::mem::take(&mut self.data)));
                }
                continue;
            }
            self.field(&line)?;
        }
    }

    fn field(&mut self, line: &[u8]) -> Result<(), String> {
        if line[0] == b':' {
            return Ok(());
        }
        let (name, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        if name == b"data" {
            if self.has_data {
                self.data.push(b'\n');
            }
            self.has_data = true;
            if self.data.len() + value.len() > MAX_MESSAGE_BYTES {
                return Err("SSE event too large".into());
            }
            self.data.extend_from_slice(value);
        }
        Ok(())
    }
}
