//! Retention on the writer thread: deletes the oldest prefix of the audit chain in bounded
//! batches and seals each deletion with an `audit.prune` record in the same transaction.

use rusqlite::{OptionalExtension, params};

use super::Writer;
use crate::clock::{Millis, rfc3339};
use crate::journal::record::{AuditRecord, PRUNE_TOOL};
use crate::journal::{JournalError, Pruned};

impl Writer {
    /// Deletes at most `max_rows` of the oldest audit records, stopping at the first record
    /// whose time is `before_ms` or later: only a prefix goes, so the rest stays contiguous
    /// and its first record's `prev_hash` is the hash of the last deleted one. Appends an
    /// [`PRUNE_TOOL`] operator record (time `now_ms`, target `SEQ:HASH` of that last deleted
    /// record), so the chain itself says where it now starts and verification can tell
    /// retention from deletion. Nothing is written when nothing is old enough.
    pub(in crate::journal::sqlite) fn prune_audit(
        &mut self,
        before_ms: Millis,
        now_ms: Millis,
        max_rows: u64,
    ) -> Result<Pruned, JournalError> {
        let first: Option<i64> = self
            .conn
            .query_row("SELECT min(seq) FROM audit", [], |r| r.get(0))?;
        let Some(first) = first else {
            return Ok(Pruned::default());
        };
        let last = first.saturating_add(max_rows.max(1) as i64 - 1);
        // The first record of the batch's range that is young enough to keep. `+time_ms`
        // keeps SQLite on the seq range (the time index would scan every younger record).
        let young: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT seq FROM audit WHERE seq BETWEEN ?1 AND ?2 AND +time_ms >= ?3
                 ORDER BY seq LIMIT 1",
            )?
            .query_row(params![first, last, before_ms], |r| r.get(0))
            .optional()?;
        let cut = match young {
            Some(s) => s - 1,
            None => last.min(self.last_seq as i64),
        };
        if cut < first {
            return Ok(Pruned::default());
        }
        let through_hash: String =
            self.conn
                .query_row("SELECT hash FROM audit WHERE seq = ?1", [cut], |r| r.get(0))?;
        let deleted = self
            .conn
            .prepare_cached("DELETE FROM audit WHERE seq BETWEEN ?1 AND ?2")?
            .execute(params![first, cut])? as u64;
        let reason = format!(
            "retention: deleted audit records seq {first}..={cut} ({deleted}), all older than {}; \
             the chain now starts at seq {}, whose prev_hash is the hash of seq {cut}",
            rfc3339(before_ms),
            cut + 1
        );
        let mut rec = AuditRecord::operator(PRUNE_TOOL, now_ms, "toolgate", &reason);
        rec.target = Some(format!("{cut}:{through_hash}"));
        self.append_record(&rec)?;
        Ok(Pruned {
            deleted,
            through: Some((cut as u64, through_hash)),
            record_seq: Some(self.last_seq),
        })
    }
}
