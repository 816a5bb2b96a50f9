//! The durable journal: idempotency keys, audit records and hard stops behind one narrow interface.
//!
//! [`Store`] speaks in domain operations (claim a key, settle it, append a record, trip a hard
//! stop), not SQL, so a PostgreSQL backend shared by a fleet of sidecars is a second
//! implementation. [`sqlite::SqliteJournal`] is the local one: one writer thread that
//! group-commits concurrent writes, and separate read connections.

pub mod access;
pub mod export;
pub mod lock;
pub mod readonly;
pub mod record;
pub mod sqlite;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::oneshot;

pub use record::{AuditRecord, ChainBreak, GENESIS_HASH, Outcome, PRUNE_TOOL, Proof, RecordKind};

use crate::clock::Millis;

/// A journal operation failed; the caller must treat the write as not having happened.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JournalError {
    #[error("journal storage error: {0}")]
    Storage(String),
    #[error("the journal writer has stopped")]
    Closed,
    #[error("journal data is corrupt: {0}")]
    Corrupt(String),
    /// Another process holds the data dir's lock (see [`lock`]).
    #[error(
        "the data dir {lock} is in use by another toolgate process{}; stop that process \
         first, or give this one its own data_dir",
        holder.map(|p| format!(" (pid {p}, from its journal.lock)")).unwrap_or_default()
    )]
    InUse { lock: String, holder: Option<u32> },
}

impl From<rusqlite::Error> for JournalError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Storage(e.to_string())
    }
}

/// The state of an idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Intent recorded, call in flight.
    Dispatching,
    /// The upstream answered with a non-error result.
    Succeeded,
    /// The upstream answered with an error; replayed, never re-executed.
    FailedFinal,
    /// Provably not executed; the same call may run again.
    FailedRetryable,
    /// Sent without a definitive answer; only an operator or a verification resolves it.
    InDoubt,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dispatching => "dispatching",
            Self::Succeeded => "succeeded",
            Self::FailedFinal => "failed_final",
            Self::FailedRetryable => "failed_retryable",
            Self::InDoubt => "in_doubt",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "dispatching" => Self::Dispatching,
            "succeeded" => Self::Succeeded,
            "failed_final" => Self::FailedFinal,
            "failed_retryable" => Self::FailedRetryable,
            "in_doubt" => Self::InDoubt,
            _ => return None,
        })
    }
}

/// A stored idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    pub tenant: String,
    pub key: String,
    pub fingerprint: String,
    pub tool: String,
    pub account: Option<String>,
    pub state: KeyState,
    pub attempt: u32,
    /// For replay: `{"result": CallToolResult}` or `{"error": ErrorData}`.
    pub result: Option<Value>,
    pub audit_id: Option<String>,
    pub updated_ms: Millis,
}

/// A request to record intent for a side effect.
#[derive(Debug, Clone)]
pub struct Intent {
    pub tenant: String,
    pub key: String,
    pub fingerprint: String,
    pub tool: String,
    pub account: Option<String>,
    pub now_ms: Millis,
}

/// Outcome of [`Store::claim`].
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Intent is durable: the key is `dispatching` at this attempt; go ahead.
    Claimed { attempt: u32 },
    /// The key is held in another state; the caller decides what that means.
    Taken(KeyRecord),
}

/// The outcome of a claimed call: the key's new state and the call's audit record, written
/// in one transaction.
#[derive(Debug, Clone)]
pub struct Settle {
    pub tenant: String,
    pub key: String,
    pub state: KeyState,
    pub result: Option<Value>,
    pub audit: AuditRecord,
    pub now_ms: Millis,
}

/// What tripped a hard stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HardStopKind {
    WrongAccount,
    SpamLoop,
    AuditGap,
    /// A write recording a call failed (its side effect may stand unaudited): every side
    /// effect is refused until an operator has looked and cleared it. Held in memory when
    /// the journal cannot take it either.
    JournalFailure,
}

/// A durable hard stop (§7.2): active until an operator clears it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HardStop {
    pub id: String,
    pub kind: HardStopKind,
    pub tenant: Option<String>,
    pub account: Option<String>,
    pub target: Option<String>,
    pub reason: String,
    /// The audit record of the event that tripped it.
    pub audit_id: Option<String>,
    pub created_at: String,
    pub created_ms: Millis,
    pub cleared_at: Option<String>,
    pub cleared_by: Option<String>,
    pub clear_reason: Option<String>,
}

impl HardStop {
    /// A new active hard stop, tripped at `now_ms` by the event recorded as `audit_id`.
    pub fn new(
        kind: HardStopKind,
        tenant: Option<String>,
        account: Option<String>,
        target: Option<String>,
        reason: String,
        audit_id: &str,
        now_ms: Millis,
    ) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            kind,
            tenant,
            account,
            target,
            reason,
            audit_id: Some(audit_id.to_string()),
            created_at: crate::clock::rfc3339(now_ms),
            created_ms: now_ms,
            cleared_at: None,
            cleared_by: None,
            clear_reason: None,
        }
    }
}

/// An operator's resolution of an in-doubt key.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub tenant: String,
    pub key: String,
    /// True: the side effect happened (key → succeeded with `result`); false: it did not
    /// (key → failed_retryable, so the runner may try again).
    pub happened: bool,
    pub result: Option<Value>,
    pub audit: AuditRecord,
    pub now_ms: Millis,
}

/// A side effect dispatched in a time window (rebuilds the spam-loop guard after a restart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    pub account: String,
    pub action: String,
    pub target: String,
    pub at_ms: Millis,
}

/// A runner-reported SLI event as the journal keeps it (the budget layer owns its meaning).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Deduplication id, unique per tenant.
    pub id: String,
    pub tenant: String,
    pub kind: String,
    pub time_ms: Millis,
    pub body: Value,
}

/// Something a committed transaction wrote, in commit order.
#[derive(Debug, Clone)]
pub enum Committed {
    Record(Box<AuditRecord>),
    Event(u64, Box<StoredEvent>),
}

/// Subscribers to committed writes (the budget engine): each gets every commit, in order.
#[derive(Clone, Default)]
pub struct Feed(
    std::sync::Arc<std::sync::Mutex<Vec<tokio::sync::mpsc::UnboundedSender<Committed>>>>,
);

impl Feed {
    /// A new subscription; it sees writes committed from now on.
    pub fn subscribe(&self) -> tokio::sync::mpsc::UnboundedReceiver<Committed> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.0.lock().expect("feed lock").push(tx);
        rx
    }

    pub(crate) fn publish(&self, written: Vec<Committed>) {
        if written.is_empty() {
            return;
        }
        let mut subs = self.0.lock().expect("feed lock");
        subs.retain(|s| !s.is_closed());
        for s in subs.iter() {
            for c in &written {
                let _ = s.send(c.clone());
            }
        }
    }
}

/// Counters of committed writes, and how much of the audit chain retention has pruned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WriteStats {
    pub transactions: u64,
    pub writes: u64,
    /// Seq of the oldest audit record kept (0 while the journal has none).
    pub oldest_seq: u64,
    /// Audit records deleted by retention (every seq before `oldest_seq`).
    pub pruned: u64,
    /// Audit records nobody waited for (read-only calls') that failed to commit since start.
    pub unrecorded: u64,
}

/// What one retention batch ([`Store::prune_audit`]) did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pruned {
    /// Records deleted (0: nothing was old enough, and nothing was written).
    pub deleted: u64,
    /// The deleted range's head, `(seq, hash)`: the first kept record links to it.
    pub through: Option<(u64, String)>,
    /// Seq of the `audit.prune` record written in the same transaction.
    pub record_seq: Option<u64>,
}

/// Result of checking the stored audit chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub checked: u64,
    /// Last intact (seq, hash).
    pub head: Option<(u64, String)>,
    /// The first break, if any.
    pub broken: Option<ChainBreak>,
}

/// Completion of a journal write, acknowledged only after its transaction committed.
pub struct Ack<T>(AckInner<T>);

enum AckInner<T> {
    Pending(oneshot::Receiver<Result<T, JournalError>>),
    Ready(Option<Result<T, JournalError>>),
}

impl<T> Ack<T> {
    pub fn pending(rx: oneshot::Receiver<Result<T, JournalError>>) -> Self {
        Self(AckInner::Pending(rx))
    }
    pub fn ready(r: Result<T, JournalError>) -> Self {
        Self(AckInner::Ready(Some(r)))
    }
}

// The ack never pins its payload: it only holds it until handed out.
impl<T> Unpin for Ack<T> {}

impl<T> Future for Ack<T> {
    type Output = Result<T, JournalError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            AckInner::Pending(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or(Err(JournalError::Closed))),
            AckInner::Ready(r) => Poll::Ready(r.take().unwrap_or(Err(JournalError::Closed))),
        }
    }
}

/// The operations the gateway needs from durable storage. Writes return an [`Ack`] that
/// resolves once the write is durable; reads are synchronous and short.
pub trait Store: Send + Sync {
    /// The stored state of an idempotency key.
    fn key(&self, tenant: &str, key: &str) -> Result<Option<KeyRecord>, JournalError>;
    /// Atomically records intent: inserts the key as `dispatching`, or moves a
    /// `failed_retryable` key with the same fingerprint back to `dispatching` (attempt + 1).
    /// Any other stored state is returned untouched as [`Claim::Taken`].
    fn claim(&self, intent: Intent) -> Ack<Claim>;
    /// Records a claimed call's outcome and its audit record together.
    fn settle(&self, settle: Settle) -> Ack<()>;
    /// Appends an audit record; durable when the ack resolves.
    fn append(&self, audit: AuditRecord) -> Ack<()>;
    /// Appends an audit record without waiting for it: it is committed within a few
    /// milliseconds, with other such records and without its own fsync (a process crash does
    /// not lose it once committed; the next durable commit or checkpoint makes it durable).
    fn append_later(&self, audit: AuditRecord);
    /// Resolves once every write queued before it is committed, `append_later` and `put`
    /// included: what a reader sees afterwards includes them (exports call it first).
    fn flush(&self) -> Ack<()>;
    /// Records a hard stop and the audit record of what tripped it.
    fn trip(&self, stop: HardStop, audit: AuditRecord) -> Ack<()>;
    /// Clears an active hard stop (with the operator's audit record). `None` if no active
    /// hard stop has that id.
    fn clear(&self, id: &str, by: &str, reason: &str, audit: AuditRecord) -> Ack<Option<HardStop>>;
    /// Hard stops, active only or all.
    fn hard_stops(&self, include_cleared: bool) -> Result<Vec<HardStop>, JournalError>;
    /// Resolves an in-doubt key; `None` if the key is not in doubt.
    fn resolve(&self, resolution: Resolution) -> Ack<Option<KeyRecord>>;
    /// Deletes settled idempotency keys last updated before `before_ms`; returns how many.
    fn prune_keys(&self, before_ms: Millis) -> Ack<u64>;
    /// Retention: deletes the oldest audit records, at most `max_rows`, stopping at the first
    /// one whose time is not before `before_ms` (only a prefix of the chain goes, so what
    /// remains is contiguous). In the same transaction it appends an [`PRUNE_TOOL`] operator
    /// record, time `now_ms`, whose target names the deleted prefix's head as `SEQ:HASH`.
    fn prune_audit(&self, before_ms: Millis, now_ms: Millis, max_rows: u64) -> Ack<Pruned>;
    /// Side effects dispatched since `since_ms` whose action is one of `actions`.
    fn dispatches_since(
        &self,
        since_ms: Millis,
        actions: &[&str],
    ) -> Result<Vec<Dispatch>, JournalError>;
    /// Number of keys currently in doubt.
    fn in_doubt(&self) -> Result<u64, JournalError>;
    /// Verifies the whole stored audit chain.
    fn verify(&self) -> Result<VerifyReport, JournalError>;
    /// Transactions committed and writes they carried since start (group commit at work).
    fn write_stats(&self) -> WriteStats;
    /// Stores runner events, deduplicated by (tenant, id); each gets its seq or `None`.
    fn record_events(&self, events: Vec<StoredEvent>) -> Ack<Vec<Option<u64>>>;
    /// Events with seq greater than `after`, in order (at most `limit`).
    fn events_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, StoredEvent)>, JournalError>;
    /// Audit records with seq greater than `after`, in order (at most `limit`).
    fn records_after(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>, JournalError>;
    /// Saves an opaque state blob (budget snapshots) with the next commit.
    fn put(&self, key: &str, value: Vec<u8>);
    /// Reads a state blob.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, JournalError>;
    /// Records a feature flag change with its operator record.
    fn set_flag(&self, capability: &str, enabled: bool, audit: AuditRecord) -> Ack<()>;
    /// Stored feature flag states.
    fn flags(&self) -> Result<Vec<(String, bool)>, JournalError>;
    /// Subscribes to committed writes.
    fn subscribe(&self) -> tokio::sync::mpsc::UnboundedReceiver<Committed>;
}
