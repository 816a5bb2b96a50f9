//! The writer's queue items: one write with the channel its caller waits on, what it produced,
//! and how its caller is answered.

use std::sync::{Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::clock::Millis;
use crate::journal::record::AuditRecord;
use crate::journal::{
    Claim, HardStop, Intent, JournalError, KeyRecord, Pruned, Resolution, Settle, StoredEvent,
};

/// How a caller waits for its write: the commit's fate (or the op's own error).
pub(in crate::journal::sqlite) type Reply<T> = oneshot::Sender<Result<T, JournalError>>;

/// One write, with the channel its caller waits on.
pub(in crate::journal::sqlite) enum Op {
    Claim(Intent, Reply<Claim>),
    Settle(Box<Settle>, Reply<()>),
    /// An audit record; without a reply nobody waits for its commit (a read-only call's).
    Append(Box<AuditRecord>, Option<Reply<()>>),
    Trip(Box<(HardStop, AuditRecord)>, Reply<()>),
    Clear {
        id: String,
        by: String,
        reason: String,
        audit: Box<AuditRecord>,
        reply: Reply<Option<HardStop>>,
    },
    Resolve(Box<Resolution>, Reply<Option<KeyRecord>>),
    PruneKeys(Millis, Reply<u64>),
    PruneAudit {
        before_ms: Millis,
        now_ms: Millis,
        max_rows: u64,
        reply: Reply<Pruned>,
    },
    Events(Vec<StoredEvent>, Reply<Vec<Option<u64>>>),
    /// A state blob (budget snapshot); nobody waits for it.
    Put(String, Vec<u8>),
    Flag(Box<(String, bool, AuditRecord)>, Reply<()>),
    /// Writes nothing: answered once everything queued before it is committed.
    Flush(Reply<()>),
    /// Wakes the writer: the lazy queue went from empty to not empty.
    Nudge,
    /// The lazy queue holds [`LAZY_BATCH`] writes: commit them now.
    Full,
}

impl Op {
    /// Nobody waits on this op's commit, so it may wait for company and skip the fsync.
    pub(in crate::journal::sqlite) fn is_lazy(&self) -> bool {
        matches!(
            self,
            Op::Append(_, None) | Op::Put(..) | Op::Nudge | Op::Full
        )
    }
}

/// What an op produced, handed to its caller once the transaction's fate is known.
pub(in crate::journal::sqlite) enum Done {
    Unit,
    Claim(Claim),
    Stop(Option<HardStop>),
    Key(Option<KeyRecord>),
    Count(u64),
    Pruned(Pruned),
    Seqs(Vec<Option<u64>>),
}

/// Answers `op`'s caller with `result`: the op's own error, the commit's error, or what it
/// produced.
pub(in crate::journal::sqlite) fn answer(op: Op, result: Result<Done, JournalError>) {
    fn send<T>(
        reply: Reply<T>,
        result: Result<Done, JournalError>,
        pick: impl FnOnce(Done) -> Option<T>,
    ) {
        let out = result.and_then(|done| {
            pick(done).ok_or_else(|| {
                JournalError::Storage("journal writer: an op produced the wrong result".into())
            })
        });
        // A caller that stopped waiting (its call was cancelled) needs no answer.
        let _ = reply.send(out);
    }
    let unit = |d: Done| matches!(d, Done::Unit).then_some(());
    match op {
        Op::Claim(_, r) => send(r, result, |d| match d {
            Done::Claim(c) => Some(c),
            _ => None,
        }),
        Op::Settle(_, r) | Op::Trip(_, r) | Op::Flag(_, r) | Op::Flush(r) => send(r, result, unit),
        Op::Append(_, Some(r)) => send(r, result, unit),
        Op::Append(_, None) => {
            if let Err(e) = result {
                tracing::error!(error = %e, "an unacknowledged audit write failed");
            }
        }
        Op::Put(key, _) => {
            if let Err(e) = result {
                tracing::error!(error = %e, key, "a journal state write failed");
            }
        }
        Op::Nudge | Op::Full => {}
        Op::Clear { reply, .. } => send(reply, result, |d| match d {
            Done::Stop(s) => Some(s),
            _ => None,
        }),
        Op::Resolve(_, r) => send(r, result, |d| match d {
            Done::Key(k) => Some(k),
            _ => None,
        }),
        Op::PruneKeys(_, r) => send(r, result, |d| match d {
            Done::Count(n) => Some(n),
            _ => None,
        }),
        Op::PruneAudit { reply, .. } => send(reply, result, |d| match d {
            Done::Pruned(p) => Some(p),
            _ => None,
        }),
        Op::Events(_, r) => send(r, result, |d| match d {
            Done::Seqs(s) => Some(s),
            _ => None,
        }),
    }
}

/// Lazy writes queued past this many are committed without waiting out the linger: a
/// commit's size (its burst of CPU on the writer thread, the memory held until it) stays
/// bounded under load, while a light load still gets one commit per linger.
pub(in crate::journal::sqlite) const LAZY_BATCH: usize = 64;

/// Lazy writes (see [`Op::is_lazy`]), queued without waking the writer for each one: the
/// first write into an empty queue sends one [`Op::Nudge`], every [`LAZY_BATCH`]-th one an
/// [`Op::Full`], and the writer takes the whole queue when it next commits. (Signalling at
/// every multiple, not only the first, is how a stopped writer is noticed: the queue never
/// holds more than one batch unsignalled.)
#[derive(Default)]
pub(in crate::journal::sqlite) struct LazyQueue(Mutex<Vec<Op>>);

impl LazyQueue {
    /// Queues `op`; returns the signal the caller must send the writer, if any.
    pub(in crate::journal::sqlite) fn push(&self, op: Op) -> Option<Op> {
        let mut q = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        q.push(op);
        match q.len() {
            1 => Some(Op::Nudge),
            n if n % LAZY_BATCH == 0 => Some(Op::Full),
            _ => None,
        }
    }

    /// Everything queued so far, oldest first.
    pub(in crate::journal::sqlite) fn take(&self) -> Vec<Op> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}
