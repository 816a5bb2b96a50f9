//! The SQLite journal: WAL, `synchronous=FULL`, one writer thread with group commit, pooled readers.
//!
//! Every write is an [`Op`] sent to the writer thread. The thread takes whatever ops are
//! queued, applies them in one `BEGIN IMMEDIATE` transaction (each in its own savepoint, so
//! one bad op does not sink the rest), commits once — one fsync for the whole batch — and only
//! then acknowledges each caller. Under load, batches grow by themselves while a commit runs.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use super::lock::DirLock;
use super::record::AuditRecord;
use super::{
    Ack, Claim, Committed, Dispatch, Feed, HardStop, Intent, JournalError, KeyRecord, KeyState,
    Pruned, Resolution, Settle, Store, StoredEvent, VerifyReport, WriteStats,
};
use crate::clock::Millis;
use writer::{LazyQueue, Op, Writer};

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
    // 2: runner SLI events, state blobs (budget snapshots), feature flags.
    "CREATE TABLE sli_event (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, tenant TEXT NOT NULL,
        type TEXT NOT NULL, time_ms INTEGER NOT NULL, body TEXT NOT NULL, UNIQUE (tenant, id));
     CREATE INDEX sli_event_time ON sli_event(time_ms);
     CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL);
     CREATE TABLE flag (capability TEXT PRIMARY KEY, enabled INTEGER NOT NULL, updated_ms INTEGER NOT NULL);",
    // 3: only open keys are looked up by state (recovery, in-doubt counts); a full index on
    // `state` rewrote an index page on every claim and every settle for nothing.
    "DROP INDEX idempotency_state;
     CREATE INDEX idempotency_dispatching ON idempotency(state) WHERE state = 'dispatching';
     CREATE INDEX idempotency_in_doubt ON idempotency(state) WHERE state = 'in_doubt';",
    // 4: fewer pages per durable write (each is a WAL frame, BENCHMARKS.md session 4). A
    // settled key's stored result (hundreds of bytes) goes to an append-only table instead of
    // growing the key's row, which split leaves of `idempotency` on nearly every settle; and
    // retention finds old keys by creation time, an index no settle rewrites. Rows settled
    // before keep their result inline (`result`), read as before.
    "CREATE TABLE idempotency_result (id INTEGER PRIMARY KEY, result TEXT NOT NULL);
     ALTER TABLE idempotency ADD COLUMN result_id INTEGER;
     CREATE INDEX idempotency_created ON idempotency(created_ms);
     DROP INDEX idempotency_updated;",
    // 5: a leaner audit row (BENCHMARKS.md session 6). Every call writes one, read-only ones
    // included, so its bytes are most of what the writer and the checkpointer copy. The
    // sealed `record` already holds every field: the row keeps beside it only what a query
    // seeks or orders on (seq, time, tenant) and what a reader wants without parsing (kind,
    // hash). Gone: nine copies of record fields, `prev_hash`, the `id` UNIQUE index, which
    // no query ever searched, and the (tenant, time) index: one index fewer is one page
    // fewer per commit. A tenant's bundle, or export with a time window, finds the window
    // by `audit_time` and filters the tenant; a tenant's export without a window reads every
    // row, as an unfiltered export does. Operator records (retention anchors) get a partial
    // index that call records never touch.
    "CREATE TABLE audit_v5 (
        seq INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, kind TEXT NOT NULL, tenant TEXT,
        record TEXT NOT NULL, hash TEXT NOT NULL);
     INSERT INTO audit_v5 (seq, time_ms, kind, tenant, record, hash)
        SELECT seq, time_ms, kind, tenant, record, hash FROM audit ORDER BY seq;
     DROP TABLE audit;
     ALTER TABLE audit_v5 RENAME TO audit;
     CREATE INDEX audit_time ON audit(time_ms);
     CREATE INDEX audit_operator ON audit(seq) WHERE kind = 'operator';",
];

/// The local SQLite journal.
pub struct SqliteJournal {
    path: PathBuf,
    tx: std::sync::mpsc::Sender<Op>,
    /// Writes nobody waits on, handed to the writer without a wake-up each.
    lazy: std::sync::Arc<LazyQueue>,
    readers: Mutex<Vec<Connection>>,
    stats: std::sync::Arc<WriterStats>,
    feed: Feed,
    /// Dropped with the journal (the writer's WAL hook holds the other sender): once both
    /// are gone the checkpointer runs a last checkpoint and exits.
    _stop_checkpoints: std::sync::mpsc::Sender<()>,
}

/// Counters of the writer thread: how well group commit batches.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub commits: std::sync::atomic::AtomicU64,
    pub ops: std::sync::atomic::AtomicU64,
    /// Audit records nobody waited for (read-only calls', unknown tools') that failed to
    /// commit.
    pub unrecorded: std::sync::atomic::AtomicU64,
}

/// What opening found: calls the previous process left in flight, now in doubt.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    pub in_doubt: u64,
    /// Why the newest audit records did not verify at start-up (edited, or appended by
    /// something other than toolgate), if they did not.
    pub broken_tail: Option<String>,
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

/// Creates an empty database file readable by its owner only, unless one exists: SQLite
/// gives the WAL and shared-memory files the database file's permissions, and the journal
/// holds every tenant's stored results. An existing file keeps whatever its owner chose.
fn create_private(path: &Path) -> Result<(), JournalError> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(JournalError::Storage(super::access::describe(
            "create", path, &e,
        ))),
    }
}

/// Brings the schema to the latest version (a fresh file gets every step).
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), JournalError> {
    migrate_to(conn, MIGRATIONS.len())
}

/// Applies the migrations after the file's version up to `target` (tests build old
/// journals with it).
fn migrate_to(conn: &mut Connection, target: usize) -> Result<(), JournalError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let version = version.max(0) as usize;
    if version > MIGRATIONS.len() {
        return Err(JournalError::Corrupt(format!(
            "journal schema version {version} is newer than this toolgate ({}); refusing to run an older binary on it",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS[..target].iter().enumerate().skip(version) {
        // A fresh journal runs every step in microseconds; an upgrade that rewrites a big
        // table (5 copies the audit rows) takes seconds per million rows, during which the
        // gateway is not ready: an operator should see why, before and after.
        let upgrade = version > 0;
        if upgrade {
            tracing::info!(from = i, to = i + 1, "journal schema upgrade starting");
        }
        let started = std::time::Instant::now();
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        if upgrade {
            tracing::info!(
                from = i,
                to = i + 1,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "journal schema upgraded"
            );
        }
    }
    Ok(())
}

impl SqliteJournal {
    /// Opens (creating if needed) `dir/journal.db`, migrates it, and recovers: every key left
    /// `dispatching` by a previous process becomes `in_doubt`, with a recovery audit record.
    ///
    /// Takes the data dir's exclusive lock first ([`DirLock`]); the writer thread holds it
    /// until it has committed its last batch.
    pub fn open(dir: &Path, now_ms: Millis) -> Result<(Self, Recovery), JournalError> {
        let lock = DirLock::acquire(dir)?;
        let path = dir.join("journal.db");
        create_private(&path)?;
        // SQLite's own error ("unable to open database file") does not say why.
        let mut conn = open_conn(&path).map_err(|e| {
            super::access::diagnose_open(dir, &path)
                .map(JournalError::Storage)
                .unwrap_or(e)
        })?;
        migrate(&mut conn)?;
        // Checkpoints run on their own thread (below), never inside a commit: an automatic
        // checkpoint would stall every caller waiting on the writer for a copy and an fsync.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
        // The writer's page cache: 2 MiB holds the pages it rewrites (the right edge of every
        // b-tree); a missed page is a read from the OS cache. At 8 MiB it filled with pages
        // never touched again, +6 MiB of resident memory under load for no measurable gain
        // (BENCHMARKS.md, read-only session 5).
        conn.pragma_update(None, "cache_size", -2048)?;
        // Every statement the writer runs stays prepared (about 25 of them).
        conn.set_prepared_statement_cache_capacity(64);
        // After `wal_autocheckpoint`, which replaces any WAL hook.
        let schedule = checkpoint::Schedule::hook(&mut conn)?;
        let mut writer = Writer::new(conn)?;
        let wal_full = writer.wal_full.clone();
        let recovery = writer.recover(now_ms)?;
        let (tx, rx) = std::sync::mpsc::channel();
        let lazy = std::sync::Arc::new(LazyQueue::default());
        let stats = writer.stats.clone();
        let feed = writer.feed.clone();
        let queue = lazy.clone();
        std::thread::Builder::new()
            .name("toolgate-journal".into())
            .spawn(move || {
                writer.run(rx, queue);
                drop(lock);
            })
            .map_err(|e| JournalError::Storage(format!("cannot start the journal writer: {e}")))?;
        let stop_checkpoints = schedule.spawn(&path, open_conn(&path)?, wal_full)?;
        Ok((
            Self {
                path,
                tx,
                lazy,
                _stop_checkpoints: stop_checkpoints,
                readers: Mutex::new(Vec::new()),
                stats,
                feed,
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

    /// Queues a write nobody waits on. When the writer has stopped (a signal cannot be
    /// delivered), what the queue holds is dropped and counted in an error, so it cannot
    /// grow without bound.
    fn send_lazy(&self, op: Op) {
        if let Some(signal) = self.lazy.push(op)
            && self.tx.send(signal).is_err()
        {
            let dropped = self.lazy.take().len();
            tracing::error!(
                dropped,
                "journal writer stopped: queued audit records and state writes were dropped"
            );
        }
    }
}

pub(super) fn key_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRecord> {
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

/// Reads keys as [`key_from_row`] expects them, with their stored result (inline in rows
/// settled before migration 4, else in `idempotency_result`); add a `WHERE` on `i`.
///
/// A subquery, not a `LEFT JOIN`: SQLite (built with STAT4) re-prepares the join form on
/// every run with new parameter values, which cost more than the lookup itself.
pub(super) const KEY_SELECT: &str =
    "SELECT i.tenant, i.key, i.fingerprint, i.tool, i.account, i.state, i.attempt,
            coalesce(i.result, (SELECT r.result FROM idempotency_result r WHERE r.id = i.result_id)),
            i.audit_id, i.updated_ms
     FROM idempotency i";

pub(super) fn load_key(
    conn: &Connection,
    tenant: &str,
    key: &str,
) -> Result<Option<KeyRecord>, JournalError> {
    let mut st =
        conn.prepare_cached(&format!("{KEY_SELECT} WHERE i.tenant = ?1 AND i.key = ?2"))?;
    Ok(st
        .query_row(params![tenant, key], key_from_row)
        .optional()?)
}

pub(super) fn stop_from_json(s: &str) -> Result<HardStop, JournalError> {
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

    fn flush(&self) -> Ack<()> {
        self.send(Op::Flush)
    }

    fn append_later(&self, audit: AuditRecord) {
        self.send_lazy(Op::Append(Box::new(audit), None));
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

    fn prune_keys(&self, before_ms: Millis) -> Ack<u64> {
        self.send(|r| Op::PruneKeys(before_ms, r))
    }

    fn prune_audit(&self, before_ms: Millis, now_ms: Millis, max_rows: u64) -> Ack<Pruned> {
        self.send(|reply| Op::PruneAudit {
            before_ms,
            now_ms,
            max_rows,
            reply,
        })
    }

    fn dispatches_since(
        &self,
        since_ms: Millis,
        actions: &[&str],
    ) -> Result<Vec<Dispatch>, JournalError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                // Read from the sealed record: schema 5 keeps no copies of these fields.
                "SELECT account, action, target, time_ms FROM (
                   SELECT record ->> '$.account' AS account, record ->> '$.action' AS action,
                          record ->> '$.target' AS target, time_ms, seq,
                          record ->> '$.side_effect' AS side_effect,
                          record ->> '$.outcome' AS outcome
                     FROM audit WHERE time_ms >= ?1 AND kind = 'call')
                 WHERE side_effect = 1 AND target IS NOT NULL AND account IS NOT NULL
                   AND action IS NOT NULL AND outcome IN ('success', 'error_result', 'in_doubt')
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

    fn record_events(&self, events: Vec<StoredEvent>) -> Ack<Vec<Option<u64>>> {
        self.send(|r| Op::Events(events, r))
    }

    fn events_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, StoredEvent)>, JournalError> {
        self.read(|c| {
            let mut st = c.prepare_cached("SELECT seq, id, tenant, type, time_ms, body FROM sli_event WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
            let rows = st.query_map(params![after as i64, limit as i64], |r| {
                let body: String = r.get(5)?;
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    StoredEvent { id: r.get(1)?, tenant: r.get(2)?, kind: r.get(3)?, time_ms: r.get(4)?, body: serde_json::from_str(&body).unwrap_or_default() },
                ))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn records_after(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>, JournalError> {
        self.read(|c| {
            let mut st =
                c.prepare_cached("SELECT record FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
            let rows = st.query_map(params![after as i64, limit as i64], |r| {
                r.get::<_, String>(0)
            })?;
            rows.map(|t| {
                serde_json::from_str(&t?)
                    .map_err(|e| JournalError::Corrupt(format!("audit record: {e}")))
            })
            .collect()
        })
    }

    fn put(&self, key: &str, value: Vec<u8>) {
        self.send_lazy(Op::Put(key.to_string(), value));
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, JournalError> {
        self.read(|c| {
            Ok(
                c.query_row("SELECT value FROM kv WHERE key = ?1", [key], |r| r.get(0))
                    .optional()?,
            )
        })
    }

    fn set_flag(&self, capability: &str, enabled: bool, audit: AuditRecord) -> Ack<()> {
        let capability = capability.to_string();
        self.send(|r| Op::Flag(Box::new((capability, enabled, audit)), r))
    }

    fn flags(&self) -> Result<Vec<(String, bool)>, JournalError> {
        self.read(|c| {
            let mut st =
                c.prepare_cached("SELECT capability, enabled FROM flag ORDER BY capability")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn subscribe(&self) -> tokio::sync::mpsc::UnboundedReceiver<Committed> {
        self.feed.subscribe()
    }

    fn write_stats(&self) -> WriteStats {
        use std::sync::atomic::Ordering::Relaxed;
        // min(seq) of a rowid table is one b-tree descent.
        let oldest = self
            .read(|c| {
                Ok(c.query_row("SELECT min(seq) FROM audit", [], |r| {
                    r.get::<_, Option<i64>>(0)
                })?)
            })
            .ok()
            .flatten()
            .unwrap_or(0) as u64;
        WriteStats {
            transactions: self.stats.commits.load(Relaxed),
            writes: self.stats.ops.load(Relaxed),
            oldest_seq: oldest,
            pruned: oldest.saturating_sub(1),
            unrecorded: self.stats.unrecorded.load(Relaxed),
        }
    }

    fn verify(&self) -> Result<VerifyReport, JournalError> {
        self.read(verify_conn)
    }
}

mod checkpoint;
mod verify;
mod writer;

pub use verify::verify_conn;

#[cfg(test)]
mod tests;
