//! The journal's writer thread: applies queued ops in one transaction per batch (group commit).

use crate::journal::{Committed, Feed, StoredEvent};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::{KEY_COLUMNS, Recovery, WriterStats, key_from_row, load_key, stop_from_json};
use crate::call::FailureClass;
use crate::clock::{Millis, rfc3339};
use crate::journal::record::{AuditRecord, GENESIS_HASH, Outcome, RecordKind};
use crate::journal::{
    Claim, HardStop, Intent, JournalError, KeyRecord, KeyState, Pruned, Resolution, Settle,
};

mod retention;

/// Ops applied per transaction at most (bounds commit latency under a flood).
const MAX_BATCH: usize = 1024;

/// One write, with the channel its caller waits on.
pub(super) enum Op {
    Claim(Intent, oneshot::Sender<Result<Claim, JournalError>>),
    Settle(Box<Settle>, oneshot::Sender<Result<(), JournalError>>),
    Append(
        Box<AuditRecord>,
        Option<oneshot::Sender<Result<(), JournalError>>>,
    ),
    Trip(
        Box<(HardStop, AuditRecord)>,
        oneshot::Sender<Result<(), JournalError>>,
    ),
    Clear {
        id: String,
        by: String,
        reason: String,
        audit: Box<AuditRecord>,
        reply: oneshot::Sender<Result<Option<HardStop>, JournalError>>,
    },
    Resolve(
        Box<Resolution>,
        oneshot::Sender<Result<Option<KeyRecord>, JournalError>>,
    ),
    PruneKeys(Millis, oneshot::Sender<Result<u64, JournalError>>),
    PruneAudit {
        before_ms: Millis,
        now_ms: Millis,
        max_rows: u64,
        reply: oneshot::Sender<Result<Pruned, JournalError>>,
    },
    Events(
        Vec<StoredEvent>,
        oneshot::Sender<Result<Vec<Option<u64>>, JournalError>>,
    ),
    Put(String, Vec<u8>),
    Flag(
        Box<(String, bool, AuditRecord)>,
        oneshot::Sender<Result<(), JournalError>>,
    ),
}

/// The writer thread's state: its connection and the chain head.
pub(super) struct Writer {
    conn: Connection,
    last_seq: u64,
    last_hash: String,
    pub(super) stats: std::sync::Arc<WriterStats>,
    /// What the open transaction wrote, published to subscribers once it commits.
    out: Vec<Committed>,
    pub(super) feed: Feed,
    /// Set by the checkpointer when the WAL outgrew its cap (see `checkpoint_loop`).
    pub(super) wal_full: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Writer {
    pub(super) fn new(conn: Connection) -> Result<Self, JournalError> {
        let head: Option<(i64, String)> = conn
            .query_row(
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (last_seq, last_hash) = head
            .map(|(s, h)| (s as u64, h))
            .unwrap_or((0, GENESIS_HASH.into()));
        Ok(Self {
            conn,
            last_seq,
            last_hash,
            stats: Default::default(),
            out: Vec::new(),
            feed: Feed::default(),
            wal_full: Default::default(),
        })
    }

    /// Marks every `dispatching` key `in_doubt`, writing one recovery record per interrupted call
    /// (each call still gets exactly one audit record).
    pub(super) fn recover(&mut self, now_ms: Millis) -> Result<Recovery, JournalError> {
        // Recovery records are read back from the table by subscribers; nothing to publish.
        let _ = std::mem::take(&mut self.out);
        let interrupted: Vec<KeyRecord> = {
            let mut st = self.conn.prepare(&format!(
                "SELECT {KEY_COLUMNS} FROM idempotency WHERE state = 'dispatching'"
            ))?;
            st.query_map([], key_from_row)?.collect::<Result<_, _>>()?
        };
        if interrupted.is_empty() {
            return Ok(Recovery::default());
        }
        let (seq0, hash0) = (self.last_seq, self.last_hash.clone());
        let tx = self.conn.unchecked_transaction()?;
        for k in &interrupted {
            tx.execute(
                "UPDATE idempotency SET state = 'in_doubt', updated_ms = ?3 WHERE tenant = ?1 AND key = ?2",
                params![k.tenant, k.key, now_ms],
            )?;
            let mut r = AuditRecord::new(
                uuid::Uuid::now_v7().to_string(),
                rfc3339(now_ms),
                RecordKind::Recovery,
                &k.tool,
                Outcome::InDoubt,
            );
            r.tenant = Some(k.tenant.clone());
            r.account = k.account.clone();
            r.side_effect = true;
            r.idempotency_key = Some(k.key.clone());
            r.fingerprint = Some(k.fingerprint.clone());
            r.attempt = Some(k.attempt);
            r.failure_class = Some(FailureClass::RunnerFailure);
            r.reason = Some("gateway_restart: the call was in flight when toolgate stopped".into());
            Self::insert_audit(
                &tx,
                &mut self.last_seq,
                &mut self.last_hash,
                &mut self.out,
                r,
            )?;
        }
        if let Err(e) = tx.commit() {
            self.last_seq = seq0;
            self.last_hash = hash0;
            return Err(e.into());
        }
        tracing::warn!(
            in_doubt = interrupted.len(),
            "recovered calls left in flight by the previous process; their keys are now in doubt"
        );
        Ok(Recovery {
            in_doubt: interrupted.len() as u64,
        })
    }

    /// Seals and inserts an audit record on the writer's connection (the usual case).
    fn append_record(&mut self, r: AuditRecord) -> Result<(), JournalError> {
        Self::insert_audit(
            &self.conn,
            &mut self.last_seq,
            &mut self.last_hash,
            &mut self.out,
            r,
        )
    }

    fn insert_audit(
        conn: &Connection,
        last_seq: &mut u64,
        last_hash: &mut String,
        out: &mut Vec<Committed>,
        mut r: AuditRecord,
    ) -> Result<(), JournalError> {
        r.seal(*last_seq + 1, last_hash);
        let text = serde_json::to_string(&r).map_err(|e| JournalError::Storage(e.to_string()))?;
        let time_ms = crate::clock::parse_rfc3339(&r.time).unwrap_or(0);
        // Enum columns hold the same strings the record's JSON uses.
        let enum_str = |v: Value| v.as_str().map(String::from);
        let mut st = conn.prepare_cached(
            "INSERT INTO audit (seq, id, time_ms, kind, tenant, account, platform, action, target, tool,
                side_effect, outcome, failure_class, idempotency_key, record, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        )?;
        st.execute(params![
            r.seq as i64,
            r.id,
            time_ms,
            enum_str(serde_json::to_value(r.kind).unwrap_or_default()),
            r.tenant,
            r.account,
            r.platform,
            r.action
                .and_then(|a| enum_str(serde_json::to_value(a).unwrap_or_default())),
            r.target,
            r.tool,
            r.side_effect,
            enum_str(serde_json::to_value(r.outcome).unwrap_or_default()),
            r.failure_class.map(|f| f.as_str()),
            r.idempotency_key,
            text,
            r.prev_hash,
            r.hash,
        ])?;
        *last_seq = r.seq;
        *last_hash = r.hash.clone();
        out.push(Committed::Record(Box::new(r)));
        Ok(())
    }

    pub(super) fn run(mut self, mut rx: mpsc::UnboundedReceiver<Op>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            self.commit_batch(&mut batch);
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

    /// Applies a batch in one transaction and acknowledges each op after the commit.
    fn commit_batch(&mut self, batch: &mut Vec<Op>) {
        let (seq0, hash0) = (self.last_seq, self.last_hash.clone());
        let mut replies: Vec<Box<dyn FnOnce(Option<JournalError>)>> =
            Vec::with_capacity(batch.len());
        let began = self.conn.execute_batch("BEGIN IMMEDIATE");
        if let Err(e) = began {
            let err = JournalError::from(e);
            for op in batch.drain(..) {
                fail(op, err.clone());
            }
            return;
        }
        let n = batch.len() as u64;
        for op in batch.drain(..) {
            replies.push(self.apply(op));
        }
        let committed = self
            .conn
            .execute_batch("COMMIT")
            .map_err(JournalError::from);
        self.stats
            .commits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.stats
            .ops
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        let written = std::mem::take(&mut self.out);
        if committed.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.last_seq = seq0;
            self.last_hash = hash0;
            tracing::error!(error = ?committed, "journal commit failed; every write in the batch is reported failed");
        } else {
            self.feed.publish(written);
        }
        for reply in replies {
            reply(committed.as_ref().err().cloned());
        }
    }

    /// Applies one op inside a savepoint; returns how to answer its caller once the outer
    /// transaction's fate is known (an op error wins over a commit error).
    fn apply(&mut self, op: Op) -> Box<dyn FnOnce(Option<JournalError>)> {
        let (seq0, hash0) = (self.last_seq, self.last_hash.clone());
        let out0 = self.out.len();
        if let Err(e) = self.conn.execute_batch("SAVEPOINT op") {
            let err = JournalError::from(e);
            return Box::new(move |_| fail(op, err));
        }
        macro_rules! finish {
            ($result:expr, $reply:expr) => {{
                let result = $result;
                if result.is_ok() {
                    let _ = self.conn.execute_batch("RELEASE op");
                } else {
                    let _ = self.conn.execute_batch("ROLLBACK TO op; RELEASE op");
                    self.last_seq = seq0;
                    self.last_hash = hash0;
                    self.out.truncate(out0);
                }
                let reply = $reply;
                Box::new(move |commit_err: Option<JournalError>| {
                    let out = match (result, commit_err) {
                        (Err(e), _) => Err(e),
                        (Ok(_), Some(e)) => Err(e),
                        (Ok(v), None) => Ok(v),
                    };
                    if let Some(reply) = reply {
                        let _ = reply.send(out);
                    } else if let Err(e) = out {
                        tracing::error!(error = %e, "an unacknowledged audit write failed");
                    }
                })
            }};
        }
        match op {
            Op::Claim(intent, reply) => finish!(self.claim(&intent), Some(reply)),
            Op::Settle(s, reply) => finish!(self.settle(*s), Some(reply)),
            Op::Append(r, reply) => finish!(self.append_record(*r), reply),
            Op::Trip(b, reply) => {
                let (stop, audit) = *b;
                finish!(self.trip(stop, audit), Some(reply))
            }
            Op::Clear {
                id,
                by,
                reason,
                audit,
                reply,
            } => finish!(self.clear(&id, &by, &reason, *audit), Some(reply)),
            Op::Resolve(r, reply) => finish!(self.resolve(*r), Some(reply)),
            Op::PruneKeys(before, reply) => finish!(self.prune_keys(before), Some(reply)),
            Op::PruneAudit {
                before_ms,
                now_ms,
                max_rows,
                reply,
            } => finish!(self.prune_audit(before_ms, now_ms, max_rows), Some(reply)),
            Op::Events(events, reply) => finish!(self.events(events), Some(reply)),
            Op::Put(key, value) => finish!(
                self.put(&key, &value),
                None::<oneshot::Sender<Result<(), JournalError>>>
            ),
            Op::Flag(f, reply) => {
                let (capability, enabled, audit) = *f;
                finish!(self.flag(&capability, enabled, audit), Some(reply))
            }
        }
    }

    /// Inserts events unless their (tenant, id) was seen; returns each one's seq, or `None`
    /// for a duplicate.
    fn events(&mut self, events: Vec<StoredEvent>) -> Result<Vec<Option<u64>>, JournalError> {
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            let n = self
                .conn
                .prepare_cached("INSERT OR IGNORE INTO sli_event (id, tenant, type, time_ms, body) VALUES (?1, ?2, ?3, ?4, ?5)")?
                .execute(params![e.id, e.tenant, e.kind, e.time_ms, e.body.to_string()])?;
            if n == 1 {
                let seq = self.conn.last_insert_rowid() as u64;
                self.out.push(Committed::Event(seq, Box::new(e)));
                out.push(Some(seq));
            } else {
                out.push(None);
            }
        }
        Ok(out)
    }

    fn put(&mut self, key: &str, value: &[u8]) -> Result<(), JournalError> {
        self.conn.prepare_cached("INSERT INTO kv (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value")?.execute(params![key, value])?;
        Ok(())
    }

    fn flag(
        &mut self,
        capability: &str,
        enabled: bool,
        audit: AuditRecord,
    ) -> Result<(), JournalError> {
        let time_ms = crate::clock::parse_rfc3339(&audit.time).unwrap_or(0);
        self.conn.execute(
            "INSERT INTO flag (capability, enabled, updated_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT(capability) DO UPDATE SET enabled = excluded.enabled, updated_ms = excluded.updated_ms",
            params![capability, enabled, time_ms],
        )?;
        self.append_record(audit)
    }

    fn claim(&mut self, i: &Intent) -> Result<Claim, JournalError> {
        match load_key(&self.conn, &i.tenant, &i.key)? {
            None => {
                self.conn
                    .prepare_cached(
                        "INSERT INTO idempotency (tenant, key, fingerprint, tool, account, state, attempt, created_ms, updated_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, 'dispatching', 1, ?6, ?6)",
                    )?
                    .execute(params![i.tenant, i.key, i.fingerprint, i.tool, i.account, i.now_ms])?;
                Ok(Claim::Claimed { attempt: 1 })
            }
            Some(k) if k.state == KeyState::FailedRetryable && k.fingerprint == i.fingerprint => {
                let attempt = k.attempt + 1;
                self.conn
                    .prepare_cached("UPDATE idempotency SET state = 'dispatching', attempt = ?3, updated_ms = ?4 WHERE tenant = ?1 AND key = ?2")?
                    .execute(params![i.tenant, i.key, attempt, i.now_ms])?;
                Ok(Claim::Claimed { attempt })
            }
            Some(k) => Ok(Claim::Taken(k)),
        }
    }

    fn settle(&mut self, s: Settle) -> Result<(), JournalError> {
        let result = s.result.as_ref().map(|v| v.to_string());
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE idempotency SET state = ?3, result = ?4, audit_id = ?5, updated_ms = ?6
                 WHERE tenant = ?1 AND key = ?2 AND state = 'dispatching'",
            )?
            .execute(params![
                s.tenant,
                s.key,
                s.state.as_str(),
                result,
                s.audit.id,
                s.now_ms
            ])?;
        if changed == 0 {
            return Err(JournalError::Corrupt(format!(
                "settle: key {:?} of tenant {:?} is not dispatching",
                s.key, s.tenant
            )));
        }
        self.append_record(s.audit)
    }

    fn trip(&mut self, stop: HardStop, audit: AuditRecord) -> Result<(), JournalError> {
        self.append_record(audit)?;
        let text =
            serde_json::to_string(&stop).map_err(|e| JournalError::Storage(e.to_string()))?;
        self.conn
            .prepare_cached("INSERT INTO hard_stop (id, created_ms, record) VALUES (?1, ?2, ?3)")?
            .execute(params![stop.id, stop.created_ms, text])?;
        Ok(())
    }

    fn clear(
        &mut self,
        id: &str,
        by: &str,
        reason: &str,
        audit: AuditRecord,
    ) -> Result<Option<HardStop>, JournalError> {
        let row: Option<String> = self
            .conn
            .query_row(
                "SELECT record FROM hard_stop WHERE id = ?1 AND cleared_ms IS NULL",
                [id],
                |r| r.get(0),
            )
            .optional()?;
        let Some(text) = row else { return Ok(None) };
        let mut stop = stop_from_json(&text)?;
        let now_ms = crate::clock::parse_rfc3339(&audit.time).unwrap_or(0);
        stop.cleared_at = Some(audit.time.clone());
        stop.cleared_by = Some(by.into());
        stop.clear_reason = Some(reason.into());
        let text =
            serde_json::to_string(&stop).map_err(|e| JournalError::Storage(e.to_string()))?;
        self.conn.execute(
            "UPDATE hard_stop SET cleared_ms = ?2, record = ?3 WHERE id = ?1",
            params![id, now_ms, text],
        )?;
        self.append_record(audit)?;
        Ok(Some(stop))
    }

    /// Deletes settled keys last touched before `before_ms`. Keys in flight or in doubt stay
    /// until they are settled or resolved, however old.
    fn prune_keys(&mut self, before_ms: Millis) -> Result<u64, JournalError> {
        let n = self
            .conn
            .prepare_cached("DELETE FROM idempotency WHERE updated_ms < ?1 AND state IN ('succeeded', 'failed_final', 'failed_retryable')")?
            .execute([before_ms])?;
        Ok(n as u64)
    }

    fn resolve(&mut self, r: Resolution) -> Result<Option<KeyRecord>, JournalError> {
        match load_key(&self.conn, &r.tenant, &r.key)? {
            Some(k) if k.state == KeyState::InDoubt => {
                let state = if r.happened {
                    KeyState::Succeeded
                } else {
                    KeyState::FailedRetryable
                };
                let result = r.result.as_ref().map(|v| v.to_string());
                self.conn.execute(
                    "UPDATE idempotency SET state = ?3, result = ?4, audit_id = ?5, updated_ms = ?6 WHERE tenant = ?1 AND key = ?2",
                    params![r.tenant, r.key, state.as_str(), result, r.audit.id, r.now_ms],
                )?;
                self.append_record(r.audit)?;
                load_key(&self.conn, &r.tenant, &r.key)
            }
            _ => Ok(None),
        }
    }
}

/// Answers an op that never ran.
fn fail(op: Op, e: JournalError) {
    match op {
        Op::Claim(_, r) => drop(r.send(Err(e))),
        Op::Settle(_, r) | Op::Trip(_, r) => drop(r.send(Err(e))),
        Op::Append(_, Some(r)) => drop(r.send(Err(e))),
        Op::Append(_, None) => tracing::error!(error = %e, "an unacknowledged audit write failed"),
        Op::Clear { reply, .. } => drop(reply.send(Err(e))),
        Op::Resolve(_, r) => drop(r.send(Err(e))),
        Op::PruneKeys(_, r) => drop(r.send(Err(e))),
        Op::PruneAudit { reply, .. } => drop(reply.send(Err(e))),
        Op::Events(_, r) => drop(r.send(Err(e))),
        Op::Put(..) => tracing::error!(error = %e, "a journal state write failed"),
        Op::Flag(_, r) => drop(r.send(Err(e))),
    }
}
