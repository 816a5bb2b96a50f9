//! The runner's stdin/stdout transport for `serve --stdio`, with a graceful drain on shutdown.
//!
//! rmcp's own stop (cancelling the service) cancels the handlers still running, so a side
//! effect in flight would end in doubt. This transport instead stops *reading* when the
//! drain starts, keeps writing until every request it has read is answered (or the drain
//! timeout passes), and only then reports end of input, which ends the service as a closed
//! stdin would.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::{JsonRpcMessage, RequestId};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::transport::io::{StdioReader, StdioWriter};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Requests read but not answered yet, by id.
type InFlight = watch::Sender<HashSet<RequestId>>;

/// stdin/stdout as an MCP server transport that drains on `drain`.
pub(super) struct DrainingStdio {
    inner: AsyncRwTransport<RoleServer, StdioReader, StdioWriter>,
    drain: CancellationToken,
    timeout: Duration,
    /// When the drain gives up waiting; set when it starts.
    deadline: Option<tokio::time::Instant>,
    in_flight: Arc<InFlight>,
}

impl DrainingStdio {
    pub(super) fn new(drain: CancellationToken, timeout: Duration) -> Self {
        // The non-blocking pipe transport where stdin/stdout are pipes (how runners start
        // stdio servers): a blocking stdin read cannot be cancelled, and would hold the
        // process after the drain until the runner wrote another line.
        let (read, write) = rmcp::transport::io::stdio_pipes();
        Self {
            inner: AsyncRwTransport::new(read, write),
            drain,
            timeout,
            deadline: None,
            in_flight: Arc::new(watch::Sender::new(HashSet::new())),
        }
    }

    /// Waits (cancel-safely: all state lives in `self`) until no request is in flight or
    /// the drain deadline passes.
    async fn drained(&mut self) {
        let deadline = *self
            .deadline
            .get_or_insert_with(|| tokio::time::Instant::now() + self.timeout);
        let mut rx = self.in_flight.subscribe();
        let settled = tokio::time::timeout_at(deadline, rx.wait_for(HashSet::is_empty)).await;
        if settled.is_err() {
            let left = self.in_flight.borrow().len();
            tracing::warn!(
                in_flight = left,
                "requests still running after {:?}; closing stdio",
                self.timeout
            );
        }
    }
}

impl Transport<RoleServer> for DrainingStdio {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let answered = match &item {
            JsonRpcMessage::Response(r) => Some(r.id.clone()),
            JsonRpcMessage::Error(e) => e.id.clone(),
            _ => None,
        };
        let sent = self.inner.send(item);
        let in_flight = self.in_flight.clone();
        async move {
            let r = sent.await;
            // Only once the answer is written does the request stop holding the drain.
            if let Some(id) = answered {
                in_flight.send_if_modified(|s| s.remove(&id));
            }
            r
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        if !self.drain.is_cancelled() {
            let drain = self.drain.clone();
            // Reading a line is cancel-safe (the codec keeps partial input in its buffer).
            tokio::select! {
                m = self.inner.receive() => {
                    if let Some(JsonRpcMessage::Request(r)) = &m {
                        self.in_flight.send_modify(|s| {
                            s.insert(r.id.clone());
                        });
                    }
                    return m;
                }
                _ = drain.cancelled() => {}
            }
        }
        self.drained().await;
        None
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}
