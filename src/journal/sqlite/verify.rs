//! Verification of the stored audit chain: every record's hash and link, the columns
//! against the sealed record, and where the chain starts (genesis, or a recorded retention cut).

use std::sync::mpsc::{channel, sync_channel};

use rusqlite::{Connection, OptionalExtension};

use crate::journal::record::{AuditRecord, GENESIS_HASH, PRUNE_TOOL, Scanned, scan};
use crate::journal::{ChainBreak, JournalError, VerifyReport};

/// The latest operator record of one action (`?1`), found through the operator records'
/// partial index.
pub(super) const LATEST_OPERATOR_RECORD: &str = "SELECT seq, record FROM audit
     WHERE kind = 'operator' AND json_extract(record, '$.tool') = ?1
     ORDER BY seq DESC LIMIT 1";

/// Where a stored chain must start: `(first seq, its prev_hash)`. Without pruning that is
/// `(1, genesis)`; after retention, the latest [`PRUNE_TOOL`] record names the deleted
/// prefix's head `SEQ:HASH`, so the chain must start at `SEQ + 1` linking to `HASH`.
/// A prune record whose seal is broken is itself the break.
pub fn expected_start(
    conn: &Connection,
) -> Result<Result<(u64, String), ChainBreak>, JournalError> {
    // Walks the operator records' partial index back from the head: the latest prune record
    // is recent (it is written after the records it deletes), so this stops early.
    let latest: Option<(i64, String)> = conn
        .query_row(LATEST_OPERATOR_RECORD, [PRUNE_TOOL], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
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

/// Rows per batch handed from the SQLite reader to the checking thread.
const BATCH_ROWS: usize = 1024;
/// Batches in flight between the two threads (memory stays bounded: a batch is ~1 MiB).
const BATCHES_IN_FLIGHT: usize = 2;

/// A text column as read from SQLite: NULL, text (a range of the batch's `text`), or not
/// readable as text (the error that reading it in place would have given).
enum Col {
    Null,
    Text(usize, usize),
    Bad(JournalError),
}

/// One row: `seq` and the text columns `tenant, kind, record, hash` (query columns 1 to 4).
struct RowData {
    seq: i64,
    cols: [Col; 4],
}

/// Owned copies of consecutive rows; `end` is an error that stopped the reader after them.
#[derive(Default)]
struct Batch {
    text: String,
    rows: Vec<RowData>,
    end: Option<JournalError>,
}

impl Batch {
    fn clear(&mut self) {
        self.text.clear();
        self.rows.clear();
        self.end = None;
    }

    /// Copies `row` in; an error is one the in-place reading would have returned at once.
    fn push(&mut self, row: &rusqlite::Row<'_>) -> Result<(), JournalError> {
        let seq: i64 = row.get(0)?;
        let mut col = |i: usize| match row.get_ref(i).map(|v| v.as_str_or_null()) {
            Ok(Ok(None)) => Col::Null,
            Ok(Ok(Some(t))) => {
                let a = self.text.len();
                self.text.push_str(t);
                Col::Text(a, self.text.len())
            }
            Ok(Err(e)) => Col::Bad(JournalError::Corrupt(format!("audit column {i}: {e}"))),
            Err(e) => Col::Bad(e.into()),
        };
        let cols = [col(1), col(2), col(3), col(4)];
        self.rows.push(RowData { seq, cols });
        Ok(())
    }
}

/// A row of a [`Batch`], read the way the query's row would be.
struct RowView<'a> {
    text: &'a str,
    row: &'a RowData,
}

impl<'a> RowView<'a> {
    /// Column `i` (1 to 4) as text without copying it (`None` for NULL).
    fn text(&self, i: usize) -> Result<Option<&'a str>, JournalError> {
        match &self.row.cols[i - 1] {
            Col::Null => Ok(None),
            Col::Text(a, b) => Ok(Some(&self.text[*a..*b])),
            Col::Bad(e) => Err(e.clone()),
        }
    }

    /// Column `i` as text, `None` for NULL or anything unreadable (the slow path reports it).
    fn text_col(&self, i: usize) -> Option<&'a str> {
        self.text(i).ok().flatten()
    }
}

/// Whether a column agrees with the record's raw JSON token (a string or `null`).
fn same(col: Option<&str>, token: &str) -> bool {
    Scanned::text(token).as_deref() == col
}

/// The thorough reading of a row: the record parsed, its columns (tenant, kind, hash)
/// compared, its seal checked; `Err` says why it is broken.
fn slow(
    row: &RowView<'_>,
    seq: i64,
    text_: &str,
    buf: &mut Vec<u8>,
) -> Result<Result<AuditRecord, String>, JournalError> {
    let rec: AuditRecord = match serde_json::from_str(text_) {
        Ok(r) => r,
        Err(e) => return Ok(Err(format!("record is not valid JSON ({e})"))),
    };
    if rec.seq != seq as u64
        || row.text(1)? != rec.tenant.as_deref()
        || row.text(2)? != Some(rec.kind.as_str())
        || row.text(4)? != Some(rec.hash.as_str())
    {
        return Ok(Err(
            "the row's tenant, kind or hash column disagrees with the sealed record".into(),
        ));
    }
    if !rec.hash_matches(buf) {
        return Ok(Err(
            "record does not match its hash (a field was changed)".into()
        ));
    }
    Ok(Ok(rec))
}

/// Checks every stored record: its hash, its link to the previous one, that the indexed
/// columns agree with the sealed record, and that the first record is where the chain must
/// start ([`expected_start`]): deleting the oldest records without a sealed retention record
/// is a break, and so is a retention record that names another start.
///
/// Two threads: this one steps the SQLite query and copies rows into batches, a second one
/// scans, hashes and links them in order (see [`Checker`]), so page reads and SHA-256
/// overlap. The channel between them is bounded and batches are recycled, so memory stays
/// flat; the result is the same as checking row by row.
pub fn verify_conn(conn: &Connection) -> Result<VerifyReport, JournalError> {
    verify_batched(conn, BATCH_ROWS)
}

pub(super) fn verify_batched(
    conn: &Connection,
    batch_rows: usize,
) -> Result<VerifyReport, JournalError> {
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
    let mut st = tx.prepare("SELECT seq, tenant, kind, record, hash FROM audit ORDER BY seq")?;
    let mut rows = st.query([])?;
    let (full_tx, full_rx) = sync_channel::<Batch>(BATCHES_IN_FLIGHT);
    let (free_tx, free_rx) = channel::<Batch>();
    std::thread::scope(|s| {
        let checker = s.spawn(move || {
            let mut c = Checker::new(start);
            for mut batch in full_rx {
                if let Some(done) = c.batch(&mut batch) {
                    return done;
                }
                batch.clear();
                let _ = free_tx.send(batch);
            }
            Ok(c.report())
        });
        // The reader: stops when the rows end, on an error (passed on in order, after the
        // rows before it), or when the checker has stopped (a break).
        'read: loop {
            let mut batch = free_rx.try_recv().unwrap_or_default();
            let mut last = false;
            while batch.rows.len() < batch_rows {
                match rows.next() {
                    Ok(Some(row)) => {
                        if let Err(e) = batch.push(row) {
                            batch.end = Some(e);
                            last = true;
                            break;
                        }
                    }
                    Ok(None) => {
                        last = true;
                        break;
                    }
                    Err(e) => {
                        batch.end = Some(e.into());
                        last = true;
                        break;
                    }
                }
            }
            if full_tx.send(batch).is_err() || last {
                break 'read;
            }
        }
        drop(full_tx);
        match checker.join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

/// The checking side of [`verify_conn`]: each row's seal and columns, then its link
/// to the one before (or to the expected start).
struct Checker {
    start: (u64, String),
    checked: u64,
    head: Option<(u64, String)>,
    buf: Vec<u8>,
    prev_buf: Option<String>,
}

impl Checker {
    fn new(start: (u64, String)) -> Self {
        Checker {
            start,
            checked: 0,
            head: None,
            buf: Vec::with_capacity(1024),
            prev_buf: None,
        }
    }

    fn report(&mut self) -> VerifyReport {
        VerifyReport {
            checked: self.checked,
            head: self.head.take(),
            broken: None,
        }
    }

    /// Checks a batch's rows in order; `Some` is the end of verification (a break or an
    /// error), `None` asks for the next batch.
    fn batch(&mut self, batch: &mut Batch) -> Option<Result<VerifyReport, JournalError>> {
        for data in &batch.rows {
            let row = RowView {
                text: &batch.text,
                row: data,
            };
            match self.row(&row) {
                Ok(None) => {}
                Ok(Some(why)) => {
                    return Some(Ok(VerifyReport {
                        checked: self.checked,
                        head: self.head.take(),
                        broken: Some(ChainBreak {
                            seq: data.seq as u64,
                            why,
                        }),
                    }));
                }
                Err(e) => return Some(Err(e)),
            }
        }
        batch.end.take().map(Err)
    }

    /// Checks one row; `Some` says why it breaks the chain.
    fn row(&mut self, row: &RowView<'_>) -> Result<Option<String>, JournalError> {
        let seq = row.row.seq;
        let text = row.text(3)?.unwrap_or_default();
        // Fast path: the stored serialisation read in place, sealed, columns agreeing.
        let fast = scan(text, 1, &mut self.buf).filter(|s| {
            s.sealed
                && s.seq == seq as u64
                && same(row.text_col(1), s.tenant)
                && same(row.text_col(2), s.kind)
                && row.text_col(4) == Some(s.hash)
        });
        let (rec_seq, prev_hash, hash) = match fast {
            Some(s) => (s.seq, s.prev_hash, s.hash.to_string()),
            None => match slow(row, seq, text, &mut self.buf)? {
                Ok(r) => (r.seq, self.prev_buf.insert(r.prev_hash).as_str(), r.hash),
                Err(why) => return Ok(Some(why)),
            },
        };
        let (want_seq, want_prev): (u64, &str) = match &self.head {
            Some((s, h)) => (s + 1, h.as_str()),
            None => (self.start.0, self.start.1.as_str()),
        };
        if rec_seq != want_seq {
            let why = if self.head.is_some() {
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
            return Ok(Some(why));
        }
        if prev_hash != want_prev {
            let why = if self.head.is_some() {
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
            return Ok(Some(why));
        }
        self.head = Some((rec_seq, hash));
        self.checked += 1;
        Ok(None)
    }
}
