//! The SQLite journal: WAL, `synchronous=FULL`, one writer thread with group commit, pooled readers.
//!
//! Every write is an [`Op`] sent to the writer thread. The thread takes whatever ops are
//! queued, applies them in one `BEGIN IMMEDIATE` transaction (each in its own savepoint, so
//! one bad op does not sink the rest), commits once — one fsync for the whole batch — and only
//! then acknowledges each caller. Under load, batches grow by themselves while a commit runs.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::record::{AuditRecord, GENESIS_HASH, Outcome, RecordKind, verify_chain};
use super::{
    Ack, Claim, Dispatch, HardStop, Intent, JournalError, KeyRecord, KeyState, Resolution, Settle,
    Store, VerifyReport,
};
use crate::call::FailureClass;
use crate::clock::{Millis, rfc3339};

/// Ops applied per transaction at most (bounds commit latency under a flood).
const MAX_BATCH: usize = 1024;

/// Schema migrations, applied in order; `PRAGMA user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    // 1: keys, audit chain, hard stops.
    "CREATE TABLE idempotency (
        tenant TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, tool TEXT NOT NULL,
        account TEXT, state TEXT NOT NULL, attempt INTEGER NOT NULL, result TEXT, audit_id TEXT,
        created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,
        PRIMARY KEY (tenant, key)) WITHOUT ROWID;
     CREATE INDEX idempotency_state ON idempotency(state);
     CREATE INDEX idempotency_updated ON idempotency(updated_ms);
     CREATE TABLE audit (
        seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, time_ms INTEGER NOT NULL,
        kind TEXT NOT NULL, tenant TEXT, account TEXT, platform TEXT, action TEXT, target TEXT,
        tool TEXT NOT NULL, side_effect INTEGER NOT NULL, outcome TEXT NOT NULL,
        failure_class TEXT, idempotency_key TEXT,
        record TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
     CREATE INDEX audit_time ON audit(time_ms);
     CREATE INDEX audit_tenant_time ON audit(tenant, time_ms);
     CREATE TABLE hard_stop (
        id TEXT PRIMARY KEY, created_ms INTEGER NOT NULL, cleared_ms INTEGER, record TEXT NOT NULL);",
];

enum Op {
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
}

/// The local SQLite journal.
pub struct SqliteJournal {
    path: PathBuf,
    tx: mpsc::UnboundedSender<Op>,
    readers: Mutex<Vec<Connection>>,
    stats: std::sync::Arc<WriterStats>,
}

/// Counters of the writer thread: how well group commit batches.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub commits: std::sync::atomic::AtomicU64,
    pub ops: std::sync::atomic::AtomicU64,
}

/// What opening found: calls the previous process left in flight, now in doubt.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    pub in_doubt: u64,
}

fn open_conn(path: &Path) -> Result<Connection, JournalError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit is on disk before it is acknowledged, even across power loss.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), JournalError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let version = version.max(0) as usize;
    if version > MIGRATIONS.len() {
        return Err(JournalError::Corrupt(format!(
            "journal schema version {version} is newer than this toolgate ({}); refusing to run an older binary on it",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

impl SqliteJournal {
    /// Opens (creating if needed) `dir/journal.db`, migrates it, and recovers: every key left
    /// `dispatching` by a previous process becomes `in_doubt`, with a recovery audit record.
    pub fn open(dir: &Path, now_ms: Millis) -> Result<(Self, Recovery), JournalError> {
        let path = dir.join("journal.db");
        let mut conn = open_conn(&path)?;
        migrate(&mut conn)?;
        let mut writer = Writer::new(conn)?;
        let recovery = writer.recover(now_ms)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = writer.stats.clone();
        std::thread::Builder::new()
            .name("toolgate-journal".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| JournalError::Storage(format!("cannot start the journal writer: {e}")))?;
        Ok((
            Self {
                path,
                tx,
                readers: Mutex::new(Vec::new()),
                stats,
            },
            recovery,
        ))
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Group-commit counters.
    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Runs `f` on a pooled read connection (opened on demand, returned after use).
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        let conn = self.readers.lock().expect("reader pool").pop();
        let conn = match conn {
            Some(c) => c,
            None => open_conn(&self.path)?,
        };
        let out = f(&conn);
        let mut pool = self.readers.lock().expect("reader pool");
        if pool.len() < 8 {
            pool.push(conn);
        }
        out
    }

    fn send<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T, JournalError>>) -> Op) -> Ack<T> {
        let (reply, rx) = oneshot::channel();
        match self.tx.send(make(reply)) {
            Ok(()) => Ack::pending(rx),
            Err(_) => Ack::ready(Err(JournalError::Closed)),
        }
    }
}

fn key_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRecord> {
    let state: String = r.get(5)?;
    let result: Option<String> = r.get(7)?;
    Ok(KeyRecord {
        tenant: r.get(0)?,
        key: r.get(1)?,
        fingerprint: r.get(2)?,
        tool: r.get(3)?,
        account: r.get(4)?,
        state: KeyState::parse(&state).unwrap_or(KeyState::InDoubt),
        attempt: r.get(6)?,
        result: result.and_then(|s| serde_json::from_str(&s).ok()),
        audit_id: r.get(8)?,
        updated_ms: r.get(9)?,
    })
}

const KEY_COLUMNS: &str =
    "tenant, key, fingerprint, tool, account, state, attempt, result, audit_id, updated_ms";

fn load_key(conn: &Connection, tenant: &str, key: &str) -> Result<Option<KeyRecord>, JournalError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {KEY_COLUMNS} FROM idempotency WHERE tenant = ?1 AND key = ?2"
    ))?;
    Ok(st
        .query_row(params![tenant, key], key_from_row)
        .optional()?)
}

fn stop_from_json(s: &str) -> Result<HardStop, JournalError> {
    serde_json::from_str(s).map_err(|e| JournalError::Corrupt(format!("hard stop record: {e}")))
}

impl Store for SqliteJournal {
    fn key(&self, tenant: &str, key: &str) -> Result<Option<KeyRecord>, JournalError> {
        self.read(|c| load_key(c, tenant, key))
    }

    fn claim(&self, intent: Intent) -> Ack<Claim> {
        self.send(|r| Op::Claim(intent, r))
    }

    fn settle(&self, settle: Settle) -> Ack<()> {
        self.send(|r| Op::Settle(Box::new(settle), r))
    }

    fn append(&self, audit: AuditRecord) -> Ack<()> {
        self.send(|r| Op::Append(Box::new(audit), Some(r)))
    }

    fn append_later(&self, audit: AuditRecord) {
        if self.tx.send(Op::Append(Box::new(audit), None)).is_err() {
            tracing::error!("journal writer stopped: an audit record was dropped");
        }
    }

    fn trip(&self, stop: HardStop, audit: AuditRecord) -> Ack<()> {
        self.send(|r| Op::Trip(Box::new((stop, audit)), r))
    }

    fn clear(&self, id: &str, by: &str, reason: &str, audit: AuditRecord) -> Ack<Option<HardStop>> {
        let (id, by, reason) = (id.to_string(), by.to_string(), reason.to_string());
        self.send(|reply| Op::Clear {
            id,
            by,
            reason,
            audit: Box::new(audit),
            reply,
        })
    }

    fn hard_stops(&self, include_cleared: bool) -> Result<Vec<HardStop>, JournalError> {
        self.read(|c| {
            let sql = if include_cleared {
                "SELECT record FROM hard_stop ORDER BY created_ms"
            } else {
                "SELECT record FROM hard_stop WHERE cleared_ms IS NULL ORDER BY created_ms"
            };
            let mut st = c.prepare_cached(sql)?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            rows.map(|r| stop_from_json(&r?)).collect()
        })
    }

    fn resolve(&self, resolution: Resolution) -> Ack<Option<KeyRecord>> {
        self.send(|r| Op::Resolve(Box::new(resolution), r))
    }

    fn dispatches_since(
        &self,
        since_ms: Millis,
        actions: &[&str],
    ) -> Result<Vec<Dispatch>, JournalError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT account, action, target, time_ms FROM audit
                 WHERE time_ms >= ?1 AND side_effect = 1 AND kind = 'call' AND target IS NOT NULL
                   AND account IS NOT NULL AND outcome IN ('success', 'error_result', 'in_doubt')
                 ORDER BY seq",
            )?;
            let rows = st.query_map([since_ms], |r| {
                Ok(Dispatch {
                    account: r.get(0)?,
                    action: r.get(1)?,
                    target: r.get(2)?,
                    at_ms: r.get(3)?,
                })
            })?;
            let mut out = Vec::new();
            for d in rows {
                let d = d?;
                if actions.contains(&d.action.as_str()) {
                    out.push(d);
                }
            }
            Ok(out)
        })
    }

    fn in_doubt(&self) -> Result<u64, JournalError> {
        self.read(|c| {
            let n: i64 = c.query_row(
                "SELECT count(*) FROM idempotency WHERE state = 'in_doubt'",
                [],
                |r| r.get(0),
            )?;
            Ok(n as u64)
        })
    }

    fn verify(&self) -> Result<VerifyReport, JournalError> {
        self.read(verify_conn)
    }
}

/// Checks every stored record: its hash, its link to the previous one, and that the indexed
/// columns agree with the sealed record.
pub fn verify_conn(conn: &Connection) -> Result<VerifyReport, JournalError> {
    let mut st = conn.prepare(
        "SELECT seq, tenant, outcome, idempotency_key, record, hash FROM audit ORDER BY seq",
    )?;
    let mut rows = st.query([])?;
    let mut checked = 0u64;
    let mut head: Option<(u64, String)> = None;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let text: String = row.get(4)?;
        let broken = |why: &str| super::ChainBreak {
            seq: seq as u64,
            why: why.into(),
        };
        let rec: AuditRecord = match serde_json::from_str(&text) {
            Ok(r) => r,
            Err(e) => {
                return Ok(VerifyReport {
                    checked,
                    head,
                    broken: Some(broken(&format!("record is not valid JSON ({e})"))),
                });
            }
        };
        let outcome = serde_json::to_value(rec.outcome)
            .ok()
            .and_then(|v| v.as_str().map(String::from));
        if rec.seq != seq as u64
            || row.get::<_, Option<String>>(1)? != rec.tenant
            || row.get::<_, Option<String>>(2)? != outcome
            || row.get::<_, Option<String>>(3)? != rec.idempotency_key
            || row.get::<_, String>(5)? != rec.hash
        {
            return Ok(VerifyReport {
                checked,
                head,
                broken: Some(broken("indexed columns disagree with the sealed record")),
            });
        }
        // Without a pruned prefix the chain starts at genesis; after pruning, the first kept
        // record's prev_hash is the anchor (checked against `toolgate audit anchor` output).
        let anchor = match &head {
            Some((s, h)) => Some((*s, h.as_str())),
            None if rec.seq == 1 => Some((0, GENESIS_HASH)),
            None => None,
        };
        match verify_chain(std::iter::once(rec), anchor) {
            Ok(h) => head = h,
            Err(b) => {
                return Ok(VerifyReport {
                    checked,
                    head,
                    broken: Some(b),
                });
            }
        }
        checked += 1;
    }
    Ok(VerifyReport {
        checked,
        head,
        broken: None,
    })
}

/// The writer thread's state: its connection and the chain head.
struct Writer {
    conn: Connection,
    last_seq: u64,
    last_hash: String,
    stats: std::sync::Arc<WriterStats>,
}

impl Writer {
    fn new(conn: Connection) -> Result<Self, JournalError> {
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
        })
    }

    /// Marks every `dispatching` key `in_doubt`, writing one recovery record per interrupted call
    /// (each call still gets exactly one audit record).
    fn recover(&mut self, now_ms: Millis) -> Result<Recovery, JournalError> {
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
            Self::insert_audit(&tx, &mut self.last_seq, &mut self.last_hash, r)?;
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

    fn insert_audit(
        conn: &Connection,
        last_seq: &mut u64,
        last_hash: &mut String,
        mut r: AuditRecord,
    ) -> Result<(), JournalError> {
        r.seal(*last_seq + 1, last_hash);
        let text = serde_json::to_string(&r).map_err(|e| JournalError::Storage(e.to_string()))?;
        let time_ms = crate::clock::parse_rfc3339(&r.time).unwrap_or(0);
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
        *last_hash = r.hash;
        Ok(())
    }

    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Op>) {
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
        }
        tracing::info!("journal writer stopped");
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
        if committed.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.last_seq = seq0;
            self.last_hash = hash0;
            tracing::error!(error = ?committed, "journal commit failed; every write in the batch is reported failed");
        }
        for reply in replies {
            reply(committed.as_ref().err().cloned());
        }
    }

    /// Applies one op inside a savepoint; returns how to answer its caller once the outer
    /// transaction's fate is known (an op error wins over a commit error).
    fn apply(&mut self, op: Op) -> Box<dyn FnOnce(Option<JournalError>)> {
        let (seq0, hash0) = (self.last_seq, self.last_hash.clone());
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
            Op::Append(r, reply) => finish!(
                Self::insert_audit(&self.conn, &mut self.last_seq, &mut self.last_hash, *r),
                reply
            ),
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
        }
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
        Self::insert_audit(&self.conn, &mut self.last_seq, &mut self.last_hash, s.audit)
    }

    fn trip(&mut self, stop: HardStop, audit: AuditRecord) -> Result<(), JournalError> {
        Self::insert_audit(&self.conn, &mut self.last_seq, &mut self.last_hash, audit)?;
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
        Self::insert_audit(&self.conn, &mut self.last_seq, &mut self.last_hash, audit)?;
        Ok(Some(stop))
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
                Self::insert_audit(&self.conn, &mut self.last_seq, &mut self.last_hash, r.audit)?;
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
    }
}

#[cfg(test)]
mod tests;
