//! A read-only handle on a journal file, for offline tools next to a running gateway.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::{AuditRecord, HardStop, JournalError, StoredEvent};

/// `<data dir>/journal.db` opened read-only (a WAL reader: it never blocks the writer).
pub struct ReadOnlyJournal {
    conn: Connection,
}

impl ReadOnlyJournal {
    /// Opens the journal in `dir`; fails if there is none.
    pub fn open(dir: &Path) -> Result<Self, JournalError> {
        Ok(Self {
            conn: super::export::open_read_only(dir)?,
        })
    }

    /// The connection, for streaming reads.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Every hard stop, active and cleared, oldest first.
    pub fn hard_stops(&self) -> Result<Vec<HardStop>, JournalError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT record FROM hard_stop ORDER BY created_ms")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|r| super::sqlite::stop_from_json(&r?)).collect()
    }
}

impl crate::budget::History for ReadOnlyJournal {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, JournalError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM kv WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    fn records_after(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>, JournalError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT record FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let rows = st.query_map(params![after as i64, limit as i64], |r| {
            r.get::<_, String>(0)
        })?;
        rows.map(|t| {
            serde_json::from_str(&t?)
                .map_err(|e| JournalError::Corrupt(format!("audit record: {e}")))
        })
        .collect()
    }

    fn events_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, StoredEvent)>, JournalError> {
        let mut st = self.conn.prepare_cached(
            "SELECT seq, id, tenant, type, time_ms, body FROM sli_event WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = st.query_map(params![after as i64, limit as i64], |r| {
            let body: String = r.get(5)?;
            Ok((
                r.get::<_, i64>(0)? as u64,
                StoredEvent {
                    id: r.get(1)?,
                    tenant: r.get(2)?,
                    kind: r.get(3)?,
                    time_ms: r.get(4)?,
                    body: serde_json::from_str(&body).unwrap_or_default(),
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
