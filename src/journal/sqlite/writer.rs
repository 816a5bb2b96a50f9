//! The journal's writer thread: applies queued ops in one transaction per batch (group commit).

use crate::journal::{Committed, Feed, StoredEvent};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::{KEY_SELECT, Recovery, WriterStats, key_from_row, load_key, stop_from_json};
use crate::call::FailureClass;
use crate::clock::{Millis, rfc3339};
use crate::journal::record::{AuditRecord, GENESIS_HASH, Outcome, RecordKind};
use crate::journal::{
    Claim, HardStop, Intent, JournalError, KeyRecord, KeyState, Resolution, Settle,
};

mod batch;
mod op;
mod retention;

#[cfg(test)]
pub(super) use op::LAZY_BATCH;
pub(super) use op::{LazyQueue, Op};

/// The writer thread's state: its connection and the chain head.
pub(super) struct Writer {
    conn: Connection,
    last_seq: u64,
    last_hash: String,
    pub(super) stats: std::sync::Arc<WriterStats>,
    /// What the open transaction wrote, published to subscribers once it commits.
    out: Vec<Committed>,
    pub(super) feed: Feed,
    /// Set by the checkpointer when the WAL outgrew its cap (see `checkpoint::run`).
    pub(super) wal_full: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Whether commits currently wait for fsync (`synchronous=FULL`).
    durable: bool,
    /// Why the newest records did not verify at start-up, if they did not.
    broken_tail: Option<String>,
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
        let broken_tail = tail_break(&conn)?;
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
            durable: true,
            broken_tail,
        })
    }

    /// Marks every `dispatching` key `in_doubt`, writing one recovery record per interrupted call
    /// (each call still gets exactly one audit record).
    pub(super) fn recover(&mut self, now_ms: Millis) -> Result<Recovery, JournalError> {
        // Recovery records are read back from the table by subscribers; nothing to publish.
        let _ = std::mem::take(&mut self.out);
        let interrupted: Vec<KeyRecord> = {
            let mut st = self
                .conn
                .prepare(&format!("{KEY_SELECT} WHERE i.state = 'dispatching'"))?;
            st.query_map([], key_from_row)?.collect::<Result<_, _>>()?
        };
        if interrupted.is_empty() {
            return Ok(Recovery {
                in_doubt: 0,
                broken_tail: self.broken_tail.clone(),
            });
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
            broken_tail: self.broken_tail.clone(),
        })
    }

    /// Seals and inserts an audit record on the writer's connection (the usual case).
    fn append_record(&mut self, r: &AuditRecord) -> Result<(), JournalError> {
        Self::insert_audit(
            &self.conn,
            &mut self.last_seq,
            &mut self.last_hash,
            &mut self.out,
            r.clone(),
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
        let mut st = conn.prepare_cached(
            "INSERT INTO audit (seq, time_ms, kind, tenant, record, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        st.execute(params![
            r.seq as i64,
            time_ms,
            r.kind.as_str(),
            r.tenant,
            text,
            r.hash,
        ])?;
        *last_seq = r.seq;
        *last_hash = r.hash.clone();
        out.push(Committed::Record(Box::new(r)));
        Ok(())
    }

    /// Inserts events unless their (tenant, id) was seen; returns each one's seq, or `None`
    /// for a duplicate.
    fn events(&mut self, events: &[StoredEvent]) -> Result<Vec<Option<u64>>, JournalError> {
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            let n = self
                .conn
                .prepare_cached("INSERT OR IGNORE INTO sli_event (id, tenant, type, time_ms, body) VALUES (?1, ?2, ?3, ?4, ?5)")?
                .execute(params![e.id, e.tenant, e.kind, e.time_ms, e.body.to_string()])?;
            if n == 1 {
                let seq = self.conn.last_insert_rowid() as u64;
                self.out.push(Committed::Event(seq, Box::new(e.clone())));
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
        audit: &AuditRecord,
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
                // The failed attempt's result goes (its row here, an inline one or the link in
                // the same UPDATE); this attempt's replaces it when it settles.
                self.drop_result(&i.tenant, &i.key)?;
                self.conn
                    .prepare_cached("UPDATE idempotency SET state = 'dispatching', attempt = ?3, result = NULL, result_id = NULL, updated_ms = ?4 WHERE tenant = ?1 AND key = ?2")?
                    .execute(params![i.tenant, i.key, attempt, i.now_ms])?;
                Ok(Claim::Claimed { attempt })
            }
            Some(k) => Ok(Claim::Taken(k)),
        }
    }

    /// Stores a key's result in `idempotency_result` (appended: the last page, shared by the
    /// batch); the id for the key's `result_id`.
    fn store_result(&mut self, result: Option<&Value>) -> Result<Option<i64>, JournalError> {
        let Some(v) = result else { return Ok(None) };
        self.conn
            .prepare_cached("INSERT INTO idempotency_result (result) VALUES (?1)")?
            .execute([v.to_string()])?;
        Ok(Some(self.conn.last_insert_rowid()))
    }

    /// Deletes a key's stored result row, before the key gets a new result; the caller's
    /// UPDATE of the key clears its link (and any inline result from before migration 4).
    fn drop_result(&mut self, tenant: &str, key: &str) -> Result<(), JournalError> {
        self.conn
            .prepare_cached(
                "DELETE FROM idempotency_result WHERE id =
                 (SELECT result_id FROM idempotency WHERE tenant = ?1 AND key = ?2)",
            )?
            .execute(params![tenant, key])?;
        Ok(())
    }

    fn settle(&mut self, s: &Settle) -> Result<(), JournalError> {
        // Only a dispatching key settles, and a claim dropped any earlier result's row; an
        // inline one (a row from before migration 4) is cleared here so it can never win.
        let result_id = self.store_result(s.result.as_ref())?;
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE idempotency SET state = ?3, result = NULL, result_id = ?4, audit_id = ?5, updated_ms = ?6
                 WHERE tenant = ?1 AND key = ?2 AND state = 'dispatching'",
            )?
            .execute(params![
                s.tenant,
                s.key,
                s.state.as_str(),
                result_id,
                s.audit.id,
                s.now_ms
            ])?;
        if changed == 0 {
            return Err(JournalError::Corrupt(format!(
                "settle: key {:?} of tenant {:?} is not dispatching",
                s.key, s.tenant
            )));
        }
        self.append_record(&s.audit)
    }

    fn trip(&mut self, stop: &HardStop, audit: &AuditRecord) -> Result<(), JournalError> {
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
        audit: &AuditRecord,
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

    /// Deletes settled keys last touched before `before_ms`, with their stored results. Keys
    /// in flight or in doubt stay until they are settled or resolved, however old. (Found by
    /// creation time, which the index has: a key is touched after it is created.)
    fn prune_keys(&mut self, before_ms: Millis) -> Result<u64, JournalError> {
        const OLD: &str = "created_ms < ?1 AND updated_ms < ?1
            AND state IN ('succeeded', 'failed_final', 'failed_retryable')";
        self.conn
            .prepare_cached(&format!(
                "DELETE FROM idempotency_result WHERE id IN
                 (SELECT result_id FROM idempotency WHERE {OLD} AND result_id IS NOT NULL)"
            ))?
            .execute([before_ms])?;
        let n = self
            .conn
            .prepare_cached(&format!("DELETE FROM idempotency WHERE {OLD}"))?
            .execute([before_ms])?;
        Ok(n as u64)
    }

    fn resolve(&mut self, r: &Resolution) -> Result<Option<KeyRecord>, JournalError> {
        match load_key(&self.conn, &r.tenant, &r.key)? {
            Some(k) if k.state == KeyState::InDoubt => {
                let state = if r.happened {
                    KeyState::Succeeded
                } else {
                    KeyState::FailedRetryable
                };
                // An in-doubt key has no result row (its claim dropped any); a row from before
                // migration 4 may still hold one inline, cleared here.
                let result_id = self.store_result(r.result.as_ref())?;
                self.conn.execute(
                    "UPDATE idempotency SET state = ?3, result = NULL, result_id = ?4, audit_id = ?5, updated_ms = ?6 WHERE tenant = ?1 AND key = ?2",
                    params![r.tenant, r.key, state.as_str(), result_id, r.audit.id, r.now_ms],
                )?;
                self.append_record(&r.audit)?;
                load_key(&self.conn, &r.tenant, &r.key)
            }
            _ => Ok(None),
        }
    }
}

/// Records checked at start-up, newest first: a chain whose newest records do not verify
/// (edited, or appended by something other than this writer) must not be extended as if
/// nothing happened. A full check is `toolgate audit verify`.
const TAIL_CHECK: usize = 2;

/// Why the newest records do not verify (each seals itself, carries its row's seq and
/// hash, and the newer links to the older), or `None` when they do.
fn tail_break(conn: &Connection) -> Result<Option<String>, JournalError> {
    let mut st = conn.prepare("SELECT seq, record, hash FROM audit ORDER BY seq DESC LIMIT ?1")?;
    let rows: Vec<(i64, String, String)> = st
        .query_map([TAIL_CHECK as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut newer: Option<AuditRecord> = None;
    let mut buf = Vec::new();
    for (seq, text, hash) in rows {
        let r: AuditRecord = match serde_json::from_str(&text) {
            Ok(r) => r,
            Err(e) => return Ok(Some(format!("audit record {seq} is not a record: {e}"))),
        };
        if r.seq != seq as u64 || r.hash != hash || !r.hash_matches(&mut buf) {
            return Ok(Some(format!(
                "audit record {seq} does not verify (its seal, seq or hash column disagree)"
            )));
        }
        if let Some(n) = &newer
            && (n.seq != r.seq + 1 || n.prev_hash != r.hash)
        {
            return Ok(Some(format!(
                "audit record {} does not link to record {}",
                n.seq, r.seq
            )));
        }
        newer = Some(r);
    }
    Ok(None)
}
