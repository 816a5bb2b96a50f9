//! Group commit on the writer thread: gathers queued ops into batches, runs each batch in one
//! transaction (with savepoints only when an op fails), and answers every caller after it.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::Writer;
use super::op::{Done, LazyQueue, Op, answer};
use crate::journal::JournalError;

/// Ops applied per transaction at most (bounds commit latency under a flood).
const MAX_BATCH: usize = 1024;

/// How long lazy writes (read-only calls' audit records, state blobs) wait for company
/// before they are committed on their own. Nobody waits on them, so the wait costs no call
/// anything, and one commit then carries a whole run of records instead of one each: at a
/// few thousand read-only calls a second, tens of commits a second instead of hundreds,
/// whose page writes on a small machine land in the tail of concurrent calls (BENCHMARKS.md,
/// session 3). Under more load [`LAZY_BATCH`](super::op::LAZY_BATCH) ends the wait sooner.
/// The price: a process killed within this window loses those records (a clean stop, an
/// export or a waited-on write commits them first).
const LINGER: Duration = Duration::from_millis(50);

/// A batch nobody waits on gives up the CPU this often: see [`Writer::transaction`].
const LAZY_SLICE: Duration = Duration::from_micros(50);

impl Writer {
    pub(in crate::journal::sqlite) fn run(mut self, rx: Receiver<Op>, lazy: Arc<LazyQueue>) {
        let mut batch: Vec<Op> = Vec::with_capacity(MAX_BATCH);
        loop {
            let open = match rx.recv() {
                Ok(op) => {
                    batch.push(op);
                    true
                }
                Err(_) => false,
            };
            drain(&rx, &mut batch);
            if open && batch.iter().all(Op::is_lazy) {
                linger(&rx, &mut batch);
            }
            // Lazy writes were queued before the nudge that woke us: they go first.
            let mut ops = lazy.take();
            ops.extend(
                batch
                    .drain(..)
                    .filter(|op| !matches!(op, Op::Nudge | Op::Full)),
            );
            if !ops.is_empty() {
                self.commit_batch(ops);
            }
            if !open {
                break;
            }
            if self
                .wal_full
                .swap(false, std::sync::atomic::Ordering::Relaxed)
            {
                self.finish_checkpoint();
            }
        }
        tracing::info!("journal writer stopped");
    }

    /// Checkpoints from the writer itself, between batches (callers of the last batch are
    /// already answered). The checkpointer thread copies frames while commits keep appending
    /// more, so under sustained load it never reaches the end of the WAL, and SQLite only
    /// starts the WAL over once every frame is in the database file: here nothing appends
    /// while the last frames are copied, so the next transaction starts the WAL from the top.
    fn finish_checkpoint(&mut self) {
        let started = std::time::Instant::now();
        match self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            }) {
            Ok((log, done)) => tracing::debug!(
                frames = log,
                checkpointed = done,
                ms = started.elapsed().as_millis() as u64,
                "journal WAL folded back by the writer"
            ),
            Err(e) => tracing::warn!(error = %e, "journal checkpoint by the writer failed"),
        }
    }

    /// Applies a batch in one transaction and answers each op after the commit.
    ///
    /// The batch first runs without savepoints; if an op fails, the transaction is rolled
    /// back and the batch runs again with one savepoint per op, so a failing op is undone
    /// alone and the others still commit. Savepoints are not free (SQLite copies each page an
    /// op touches into a statement journal), and a failing op is rare.
    pub(in crate::journal::sqlite) fn commit_batch(&mut self, batch: Vec<Op>) {
        // Nobody waits on a batch of lazy writes: skip the fsync. A later durable commit's
        // fsync covers them (one WAL file), and a killed process loses nothing the OS has.
        let durable = !batch.iter().all(Op::is_lazy);
        let results = match self.transaction(&batch, durable, false) {
            Some(results) => results,
            None => self
                .transaction(&batch, durable, true)
                .expect("a careful transaction answers every op"),
        };
        for (op, result) in batch.into_iter().zip(results) {
            // A failed write nobody waits on must still be noticed: the gateway trips a
            // journal_failure hard stop when this count moves (maintenance.rs).
            if result.is_err() && matches!(op, Op::Append(_, None)) {
                self.stats
                    .unrecorded
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            answer(op, result);
        }
    }

    /// One transaction over `batch`: each op's result, or `None` when an op failed outside
    /// `careful` mode (the transaction is then rolled back).
    ///
    /// A batch nobody waits on (read-only calls' records: 64 of them take ~1 ms) yields the
    /// CPU every [`LAZY_SLICE`]. On a small machine the scheduler lets a running thread
    /// finish its slice (~1.5 ms on 2 cores) before a thread it just woke gets the CPU, so a
    /// call's next step (the gateway's worker, the upstream, the client) could wait out the
    /// whole batch; yielding hands them the CPU within ~50 µs. (BENCHMARKS.md, session 4:
    /// this was the journal's share of the p99 of read-only calls at concurrency 1.) Not
    /// when the batch is over twice [`LAZY_BATCH`](super::op::LAZY_BATCH): under saturation a
    /// yielding writer fell behind and its queue grew (c16 peak RSS +0.5–4 MiB).
    fn transaction(
        &mut self,
        batch: &[Op],
        durable: bool,
        careful: bool,
    ) -> Option<Vec<Result<Done, JournalError>>> {
        let (seq0, hash0) = (self.last_seq, self.last_hash.clone());
        if let Err(e) = self
            .set_durable(durable)
            .and_then(|()| self.sql("BEGIN IMMEDIATE"))
        {
            return Some(batch.iter().map(|_| Err(e.clone())).collect());
        }
        let mut results = Vec::with_capacity(batch.len());
        let mut slice = Instant::now();
        // A lazy batch much over its bound means the writer is falling behind: catch up
        // instead of yielding (the queue, and the memory it holds, would only grow).
        let yielding = !durable && batch.len() <= 2 * super::op::LAZY_BATCH;
        for op in batch {
            let result = if careful {
                self.exec_alone(op)
            } else {
                self.exec(op)
            };
            if result.is_err() && !careful {
                self.abandon(seq0, hash0);
                return None;
            }
            results.push(result);
            if yielding && slice.elapsed() >= LAZY_SLICE {
                std::thread::yield_now();
                slice = Instant::now();
            }
        }
        let committed = self.sql("COMMIT");
        let ops = batch
            .iter()
            .filter(|op| !matches!(op, Op::Flush(_)))
            .count();
        self.stats
            .commits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.stats
            .ops
            .fetch_add(ops as u64, std::sync::atomic::Ordering::Relaxed);
        match committed {
            Ok(()) => {
                self.feed.publish(std::mem::take(&mut self.out));
                Some(results)
            }
            Err(e) => {
                self.abandon(seq0, hash0);
                tracing::error!(error = %e, "journal commit failed; every write in the batch is reported failed");
                Some(results.into_iter().map(|r| r.and(Err(e.clone()))).collect())
            }
        }
    }

    /// Rolls the open transaction back and forgets what it wrote.
    fn abandon(&mut self, seq0: u64, hash0: String) {
        // An I/O error may already have rolled it back; then there is nothing to undo.
        let _ = self.sql("ROLLBACK");
        self.last_seq = seq0;
        self.last_hash = hash0;
        self.out.clear();
    }

    /// Runs one statement without parameters, prepared once.
    fn sql(&self, sql: &str) -> Result<(), JournalError> {
        self.conn.prepare_cached(sql)?.execute([])?;
        Ok(())
    }

    /// Sets whether commits wait for fsync (only between transactions).
    fn set_durable(&mut self, durable: bool) -> Result<(), JournalError> {
        if self.durable != durable {
            self.sql(if durable {
                "PRAGMA synchronous = FULL"
            } else {
                "PRAGMA synchronous = NORMAL"
            })?;
            self.durable = durable;
        }
        Ok(())
    }

    /// Runs one op inside its own savepoint, undoing it alone if it fails.
    fn exec_alone(&mut self, op: &Op) -> Result<Done, JournalError> {
        let (seq0, hash0) = (self.last_seq, self.last_hash.clone());
        let out0 = self.out.len();
        self.sql("SAVEPOINT op")?;
        let result = self.exec(op);
        if result.is_ok() {
            self.sql("RELEASE op")?;
        } else {
            let _ = self.sql("ROLLBACK TO op");
            let _ = self.sql("RELEASE op");
            self.last_seq = seq0;
            self.last_hash = hash0;
            self.out.truncate(out0);
        }
        result
    }

    /// Applies one op inside the open transaction.
    fn exec(&mut self, op: &Op) -> Result<Done, JournalError> {
        let unit = |()| Done::Unit;
        match op {
            Op::Claim(intent, _) => self.claim(intent).map(Done::Claim),
            Op::Settle(s, _) => self.settle(s).map(unit),
            Op::Append(r, _) => self.append_record(r).map(unit),
            Op::Trip(b, _) => self.trip(&b.0, &b.1).map(unit),
            Op::Clear {
                id,
                by,
                reason,
                audit,
                ..
            } => self.clear(id, by, reason, audit).map(Done::Stop),
            Op::Resolve(r, _) => self.resolve(r).map(Done::Key),
            Op::PruneKeys(before, _) => self.prune_keys(*before).map(Done::Count),
            Op::PruneAudit {
                before_ms,
                now_ms,
                max_rows,
                ..
            } => self
                .prune_audit(*before_ms, *now_ms, *max_rows)
                .map(Done::Pruned),
            Op::Events(events, _) => self.events(events).map(Done::Seqs),
            Op::Put(key, value) => self.put(key, value).map(unit),
            Op::Flag(f, _) => self.flag(&f.0, f.1, &f.2).map(unit),
            Op::Flush(_) | Op::Nudge | Op::Full => Ok(Done::Unit),
        }
    }
}

/// Moves whatever is already queued into `batch` (up to [`MAX_BATCH`]).
fn drain(rx: &Receiver<Op>, batch: &mut Vec<Op>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(op) => batch.push(op),
            Err(_) => break,
        }
    }
}

/// Waits up to [`LINGER`] for an op someone waits on, so a run of lazy writes shares one
/// commit; stops at once when one arrives (its caller must not wait for the linger) or when
/// the lazy queue is full.
fn linger(rx: &Receiver<Op>, batch: &mut Vec<Op>) {
    let deadline = Instant::now() + LINGER;
    if batch.iter().any(|op| matches!(op, Op::Full)) {
        return;
    }
    while batch.len() < MAX_BATCH {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(op) => {
                let stop = !op.is_lazy() || matches!(op, Op::Full);
                batch.push(op);
                if stop {
                    drain(rx, batch);
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return,
        }
    }
}

#[cfg(test)]
impl Writer {
    /// The connection's `PRAGMA synchronous` (1 = NORMAL, 2 = FULL).
    pub(in crate::journal::sqlite) fn synchronous(&self) -> i64 {
        self.conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .expect("PRAGMA synchronous")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::sqlite::writer::op::LAZY_BATCH;

    fn lazy() -> Op {
        Op::Put("k".into(), Vec::new())
    }

    #[test]
    fn the_lazy_queue_signals_its_first_write_and_when_it_is_full() {
        let q = LazyQueue::default();
        assert!(matches!(q.push(lazy()), Some(Op::Nudge)));
        for _ in 2..LAZY_BATCH {
            assert!(q.push(lazy()).is_none());
        }
        assert!(matches!(q.push(lazy()), Some(Op::Full)));
        for _ in 1..LAZY_BATCH {
            assert!(q.push(lazy()).is_none());
        }
        assert!(
            matches!(q.push(lazy()), Some(Op::Full)),
            "again at every multiple, so a stopped writer is noticed"
        );
        assert!(q.push(lazy()).is_none());
        assert_eq!(q.take().len(), 2 * LAZY_BATCH + 1);
        assert!(matches!(q.push(lazy()), Some(Op::Nudge)), "empty again");
    }

    #[test]
    fn the_linger_ends_at_a_full_queue_or_a_waited_on_write_not_at_a_lazy_one() {
        let (tx, rx) = std::sync::mpsc::channel();
        // Only lazy company: waits the whole linger for more.
        let started = Instant::now();
        let mut batch = vec![Op::Nudge];
        tx.send(lazy()).unwrap();
        linger(&rx, &mut batch);
        assert!(started.elapsed() >= LINGER);
        assert_eq!(batch.len(), 2);
        // A full queue, already signalled or arriving: no wait (the bound is generous).
        let started = Instant::now();
        linger(&rx, &mut vec![Op::Full]);
        tx.send(Op::Full).unwrap();
        linger(&rx, &mut vec![Op::Nudge]);
        let (flush, _answer) = tokio::sync::oneshot::channel();
        tx.send(Op::Flush(flush)).unwrap();
        tx.send(lazy()).unwrap();
        let mut batch = vec![Op::Nudge];
        linger(&rx, &mut batch);
        assert_eq!(batch.len(), 3, "the flush and what was queued behind it");
        assert!(started.elapsed() < LINGER * 3, "{:?}", started.elapsed());
    }
}
