//! Verification of the stored audit chain: every record's hash and link, the indexed columns
//! against the sealed record, and where the chain starts (genesis, or a recorded retention cut).

use rusqlite::{Connection, OptionalExtension};

use crate::journal::record::{AuditRecord, GENESIS_HASH, PRUNE_TOOL, Scanned, scan};
use crate::journal::{ChainBreak, JournalError, VerifyReport};

/// Where a stored chain must start: `(first seq, its prev_hash)`. Without pruning that is
/// `(1, genesis)`; after retention, the latest [`PRUNE_TOOL`] record names the deleted
/// prefix's head `SEQ:HASH`, so the chain must start at `SEQ + 1` linking to `HASH`.
/// A prune record whose seal is broken is itself the break.
pub fn expected_start(
    conn: &Connection,
) -> Result<Result<(u64, String), ChainBreak>, JournalError> {
    // Scans back from the head: the latest prune record is recent (it is written after the
    // records it deletes), so this stops early.
    let latest: Option<(i64, String)> = conn
        .query_row(
            "SELECT seq, record FROM audit WHERE kind = 'operator' AND tool = ?1
             ORDER BY seq DESC LIMIT 1",
            [PRUNE_TOOL],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((seq, text)) = latest else {
        return Ok(Ok((1, GENESIS_HASH.to_string())));
    };
    let broken = |why: &str| {
        Ok(Err(ChainBreak {
            seq: seq as u64,
            why: why.into(),
        }))
    };
    let Ok(rec) = serde_json::from_str::<AuditRecord>(&text) else {
        return broken("record is not valid JSON");
    };
    if !rec.hash_matches(&mut Vec::new()) {
        return broken("record does not match its hash (a field was changed)");
    }
    match rec.prune_anchor() {
        Some((s, hash)) => Ok(Ok((s + 1, hash))),
        None => broken("the audit.prune record's target is not SEQ:HASH"),
    }
}

/// Column `i` as text, `None` for NULL or anything unreadable (the slow path reports it).
fn text_col<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> Option<&'r str> {
    text(row, i).ok().flatten()
}

/// Whether a column agrees with the record's raw JSON token (a string or `null`).
fn same(col: Option<&str>, token: &str) -> bool {
    Scanned::text(token).as_deref() == col
}

/// The thorough reading of a row: the record parsed, its indexed columns compared, its seal
/// checked; `Err` says why it is broken.
fn slow(
    row: &rusqlite::Row<'_>,
    seq: i64,
    text_: &str,
    buf: &mut Vec<u8>,
) -> Result<Result<AuditRecord, String>, JournalError> {
    let rec: AuditRecord = match serde_json::from_str(text_) {
        Ok(r) => r,
        Err(e) => return Ok(Err(format!("record is not valid JSON ({e})"))),
    };
    if rec.seq != seq as u64
        || text(row, 1)? != rec.tenant.as_deref()
        || text(row, 2)? != Some(rec.outcome.as_str())
        || text(row, 3)? != rec.idempotency_key.as_deref()
        || text(row, 5)? != Some(rec.hash.as_str())
    {
        return Ok(Err("indexed columns disagree with the sealed record".into()));
    }
    if !rec.hash_matches(buf) {
        return Ok(Err(
            "record does not match its hash (a field was changed)".into()
        ));
    }
    Ok(Ok(rec))
}

/// Column `i` as text without copying it (`None` for NULL).
fn text<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> Result<Option<&'r str>, JournalError> {
    row.get_ref(i)?
        .as_str_or_null()
        .map_err(|e| JournalError::Corrupt(format!("audit column {i}: {e}")))
}

/// Checks every stored record: its hash, its link to the previous one, that the indexed
/// columns agree with the sealed record, and that the first record is where the chain must
/// start ([`expected_start`]): deleting the oldest records without a sealed retention record
/// is a break, and so is a retention record that names another start.
pub fn verify_conn(conn: &Connection) -> Result<VerifyReport, JournalError> {
    // One read transaction: the expected start and the rows are the same snapshot.
    let tx = conn.unchecked_transaction()?;
    let start = match expected_start(&tx)? {
        Ok(s) => s,
        Err(b) => {
            return Ok(VerifyReport {
                checked: 0,
                head: None,
                broken: Some(b),
            });
        }
    };
    let mut st = tx.prepare(
        "SELECT seq, tenant, outcome, idempotency_key, record, hash FROM audit ORDER BY seq",
    )?;
    let mut rows = st.query([])?;
    let mut checked = 0u64;
    let mut head: Option<(u64, String)> = None;
    let mut buf = Vec::with_capacity(1024);
    let mut prev_buf: Option<String> = None;
    let report = |checked, head, seq: i64, why: String| VerifyReport {
        checked,
        head,
        broken: Some(ChainBreak {
            seq: seq as u64,
            why,
        }),
    };
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let text = text(row, 4)?.unwrap_or_default();
        // Fast path: the stored serialisation read in place, sealed, columns agreeing.
        let fast = scan(text, 1, &mut buf).filter(|s| {
            s.sealed
                && s.seq == seq as u64
                && same(text_col(row, 1), s.tenant)
                && same(text_col(row, 2), s.outcome)
                && same(text_col(row, 3), s.idempotency_key)
                && text_col(row, 5) == Some(s.hash)
        });
        let (rec_seq, prev_hash, hash) = match fast {
            Some(s) => (s.seq, s.prev_hash, s.hash.to_string()),
            None => match slow(row, seq, text, &mut buf)? {
                Ok(r) => (r.seq, prev_buf.insert(r.prev_hash).as_str(), r.hash),
                Err(why) => return Ok(report(checked, head, seq, why)),
            },
        };
        let (want_seq, want_prev): (u64, &str) = match &head {
            Some((s, h)) => (s + 1, h.as_str()),
            None => (start.0, start.1.as_str()),
        };
        if rec_seq != want_seq {
            let why = if head.is_some() {
                format!("expected seq {want_seq} (a record is missing or out of order)")
            } else if want_seq == 1 {
                format!(
                    "the chain starts at seq {rec_seq} but no {PRUNE_TOOL} record says retention \
                     deleted the records before it (they are missing)"
                )
            } else {
                format!(
                    "the latest {PRUNE_TOOL} record says the chain starts at seq {want_seq}, \
                     it starts at {rec_seq} (records are missing)"
                )
            };
            return Ok(report(checked, head, seq, why));
        }
        if prev_hash != want_prev {
            let why = if head.is_some() {
                "prev_hash does not match the previous record's hash".to_string()
            } else if want_seq == 1 {
                "the first record does not link to the genesis hash".to_string()
            } else {
                format!(
                    "prev_hash of the first kept record is not the hash that the latest \
                     {PRUNE_TOOL} record names for seq {}",
                    want_seq - 1
                )
            };
            return Ok(report(checked, head, seq, why));
        }
        head = Some((rec_seq, hash));
        checked += 1;
    }
    Ok(VerifyReport {
        checked,
        head,
        broken: None,
    })
}
