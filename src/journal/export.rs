//! Audit export: a streaming, filtered read of the hash chain as JSON Lines or CSV, and the
//! verification of an exported JSON Lines file.
//!
//! An export runs over its own read connection (a WAL reader: it never blocks the writer) in
//! one read transaction, so the header's chain head and the records are one snapshot. Rows are
//! read with a prepared statement and written one line at a time: memory stays constant
//! however large the journal.
//!
//! JSON Lines layout:
//!
//! ```text
//! {"type":"header","format_version":1,"filters":{..},"generated_at":..,"toolgate_version":..,"chain":{"seq":..,"hash":..}}
//! {"type":"record", ...every field of the sealed audit record...}
//! {"type":"trailer","count":N,"first_seq":..,"last_seq":..,"last_hash":..}
//! ```
//!
//! Each record line is the stored record with `"type":"record"` added; removing `type`
//! gives back the exact record whose `hash` seals every other field, so an export can be
//! verified offline ([`verify_jsonl`]). A filtered export keeps each record's `seq`,
//! `prev_hash` and `hash`: links are checked where records are contiguous, and each record's
//! own hash everywhere.

use std::io::{BufRead, Write};
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde_json::{Map, Value, json};

use super::JournalError;
use super::record::{AuditRecord, GENESIS_HASH};
use crate::clock::Millis;

/// Version of the JSON Lines export format (the header's `format_version`).
pub const FORMAT_VERSION: u64 = 1;

/// CSV columns: the audit record's fields in order, `proof` flattened.
pub const CSV_COLUMNS: &[&str] = &[
    "id",
    "seq",
    "time",
    "kind",
    "tenant",
    "account",
    "platform",
    "lane",
    "action",
    "target",
    "tool",
    "upstream",
    "capability",
    "side_effect",
    "idempotency_key",
    "fingerprint",
    "attempt",
    "outcome",
    "failure_class",
    "reason",
    "latency_ms",
    "proof.post_id",
    "proof.url",
    "proof.screenshot",
    "proof_missing",
    "replayed",
    "actor",
    "job_id",
    "episode_id",
    "prev_hash",
    "hash",
];

/// Output format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Jsonl,
    Csv,
}

impl Format {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "jsonl" | "ndjson" => Some(Self::Jsonl),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Jsonl => "application/x-ndjson",
            Self::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// Which records an export includes. `from` is inclusive, `to` exclusive (record `time`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub from: Option<String>,
    pub to: Option<String>,
    pub tenant: Option<String>,
    pub platform: Option<String>,
    pub account: Option<String>,
    pub outcome: Option<String>,
    pub failure_class: Option<String>,
    pub idempotency_key: Option<String>,
}

/// The filter names, as query parameters and header keys.
pub const FILTER_NAMES: &[&str] = &[
    "from",
    "to",
    "tenant",
    "platform",
    "account",
    "outcome",
    "failure_class",
    "idempotency_key",
];

impl Filters {
    /// Sets filter `name` (one of [`FILTER_NAMES`]); `false` for an unknown name.
    pub fn set(&mut self, name: &str, value: String) -> bool {
        let slot = match name {
            "from" => &mut self.from,
            "to" => &mut self.to,
            "tenant" => &mut self.tenant,
            "platform" => &mut self.platform,
            "account" => &mut self.account,
            "outcome" => &mut self.outcome,
            "failure_class" => &mut self.failure_class,
            "idempotency_key" => &mut self.idempotency_key,
            _ => return false,
        };
        *slot = Some(value);
        true
    }

    fn pairs(&self) -> [(&'static str, &Option<String>); 8] {
        [
            ("from", &self.from),
            ("to", &self.to),
            ("tenant", &self.tenant),
            ("platform", &self.platform),
            ("account", &self.account),
            ("outcome", &self.outcome),
            ("failure_class", &self.failure_class),
            ("idempotency_key", &self.idempotency_key),
        ]
    }

    /// Whether no filter is set (a full export: gaps are then deletions).
    pub fn is_empty(&self) -> bool {
        self.pairs().iter().all(|(_, v)| v.is_none())
    }

    /// The set filters as a JSON object (the header's `filters`).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        for (k, v) in self.pairs() {
            if let Some(v) = v {
                m.insert(k.into(), Value::String(v.clone()));
            }
        }
        Value::Object(m)
    }

    /// `from`/`to` as epoch milliseconds; an error names the bad value.
    pub fn window(&self) -> Result<(Option<Millis>, Option<Millis>), String> {
        let parse = |name: &str, v: &Option<String>| match v {
            None => Ok(None),
            Some(s) => crate::clock::parse_rfc3339(s).map(Some).ok_or_else(|| {
                format!("{name}: {s:?} is not an RFC 3339 time (e.g. 2026-05-01T09:30:00Z)")
            }),
        };
        Ok((parse("from", &self.from)?, parse("to", &self.to)?))
    }
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("invalid filter: {0}")]
    Filter(String),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot write the export: {0}")]
    Io(#[from] std::io::Error),
}

impl From<rusqlite::Error> for ExportError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Journal(e.into())
    }
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub count: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub last_hash: Option<String>,
    /// The chain head when the export's snapshot was taken.
    pub head: (u64, String),
}

/// Opens `dir/journal.db` for reading only, next to a running gateway (WAL readers do not
/// block the writer). Fails if the journal does not exist.
pub fn open_read_only(dir: &Path) -> Result<Connection, JournalError> {
    let path = dir.join("journal.db");
    if !path.is_file() {
        return Err(JournalError::Storage(format!(
            "no journal at {}",
            path.display()
        )));
    }
    let probe = |c: Connection| -> Result<Connection, rusqlite::Error> {
        c.busy_timeout(std::time::Duration::from_secs(5))?;
        c.query_row("SELECT count(*) FROM audit WHERE seq < 0", [], |r| {
            r.get::<_, i64>(0)
        })?;
        Ok(c)
    };
    let ro = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .and_then(probe);
    match ro {
        Ok(c) => Ok(c),
        // A read-only handle cannot open a WAL database whose -shm is gone (the gateway is
        // stopped and checkpointed); a writable handle that refuses writes can.
        Err(_) => {
            let c = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            c.pragma_update(None, "query_only", true)?;
            Ok(probe(c)?)
        }
    }
}

/// The chain head: (seq, hash, time_ms) of the last record, or (0, genesis, None).
pub fn chain_head(conn: &Connection) -> Result<(u64, String, Option<Millis>), JournalError> {
    let head = conn
        .query_row(
            "SELECT seq, hash, time_ms FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(head.unwrap_or_else(|| (0, GENESIS_HASH.into(), None)))
}

/// The hash stored for `seq`, if that record exists.
pub fn hash_at(conn: &Connection, seq: u64) -> Result<Option<String>, JournalError> {
    Ok(conn
        .query_row("SELECT hash FROM audit WHERE seq = ?1", [seq as i64], |r| {
            r.get(0)
        })
        .optional()?)
}

/// Writes the export of the records matching `filters` to `out`, one line at a time, in
/// `seq` order. `generated_at` is the header's time (RFC 3339).
pub fn export(
    conn: &Connection,
    filters: &Filters,
    format: Format,
    generated_at: &str,
    out: &mut dyn Write,
) -> Result<ExportSummary, ExportError> {
    let (from, to) = filters.window().map_err(ExportError::Filter)?;
    // One read transaction: the head and the rows are the same snapshot.
    let tx = conn.unchecked_transaction()?;
    let (head_seq, head_hash, _) = chain_head(&tx)?;
    let mut sql = String::from("SELECT seq, record, hash FROM audit WHERE seq <= ?1");
    let mut args: Vec<rusqlite::types::Value> = vec![(head_seq as i64).into()];
    let mut cond = |sql: &mut String, col: &str, op: &str, v: rusqlite::types::Value| {
        args.push(v);
        sql.push_str(&format!(" AND {col} {op} ?{}", args.len()));
    };
    if let Some(f) = from {
        cond(&mut sql, "time_ms", ">=", f.into());
    }
    if let Some(t) = to {
        cond(&mut sql, "time_ms", "<", t.into());
    }
    for (col, v) in [
        ("tenant", &filters.tenant),
        ("platform", &filters.platform),
        ("account", &filters.account),
        ("outcome", &filters.outcome),
        ("failure_class", &filters.failure_class),
        ("idempotency_key", &filters.idempotency_key),
    ] {
        if let Some(v) = v {
            cond(&mut sql, col, "=", v.clone().into());
        }
    }
    sql.push_str(" ORDER BY seq");

    match format {
        Format::Jsonl => {
            let header = json!({
                "type": "header",
                "format_version": FORMAT_VERSION,
                "filters": filters.to_json(),
                "generated_at": generated_at,
                "toolgate_version": env!("CARGO_PKG_VERSION"),
                "chain": {"seq": head_seq, "hash": head_hash},
            });
            writeln!(out, "{header}")?;
        }
        Format::Csv => {
            let row: Vec<String> = CSV_COLUMNS.iter().map(|c| csv_field(c)).collect();
            write!(out, "{}\r\n", row.join(","))?;
        }
    }

    let mut st = tx.prepare(&sql)?;
    let mut rows = st.query(rusqlite::params_from_iter(args.iter()))?;
    let mut summary = ExportSummary {
        count: 0,
        first_seq: None,
        last_seq: None,
        last_hash: None,
        head: (head_seq, head_hash),
    };
    let mut line = String::with_capacity(1024);
    while let Some(row) = rows.next()? {
        let seq = row.get::<_, i64>(0)? as u64;
        let text: String = row.get(1)?;
        let hash: String = row.get(2)?;
        line.clear();
        match format {
            Format::Jsonl => {
                // The stored text verbatim, with `type` spliced in front.
                match text.trim_start().strip_prefix('{') {
                    Some(rest) if rest.trim_start().starts_with('"') => {
                        line.push_str("{\"type\":\"record\",");
                        line.push_str(rest);
                    }
                    _ => {
                        let mut v: Value = serde_json::from_str(&text).map_err(|e| {
                            JournalError::Corrupt(format!("audit record {seq}: {e}"))
                        })?;
                        if let Value::Object(m) = &mut v {
                            m.insert("type".into(), "record".into());
                        }
                        line.push_str(&v.to_string());
                    }
                }
                line.push('\n');
            }
            Format::Csv => {
                let v: Value = serde_json::from_str(&text)
                    .map_err(|e| JournalError::Corrupt(format!("audit record {seq}: {e}")))?;
                for (i, col) in CSV_COLUMNS.iter().enumerate() {
                    if i > 0 {
                        line.push(',');
                    }
                    let cell = match col.split_once('.') {
                        Some((a, b)) => v.get(a).and_then(|p| p.get(b)),
                        None => v.get(*col),
                    };
                    line.push_str(&csv_field(&csv_text(cell)));
                }
                line.push_str("\r\n");
            }
        }
        out.write_all(line.as_bytes())?;
        summary.count += 1;
        summary.first_seq.get_or_insert(seq);
        summary.last_seq = Some(seq);
        summary.last_hash = Some(hash);
    }
    if format == Format::Jsonl {
        let trailer = json!({
            "type": "trailer",
            "count": summary.count,
            "first_seq": summary.first_seq,
            "last_seq": summary.last_seq,
            "last_hash": summary.last_hash,
        });
        writeln!(out, "{trailer}")?;
    }
    out.flush()?;
    drop(rows);
    drop(st);
    tx.finish()?;
    Ok(summary)
}

/// A JSON value as CSV cell text: strings raw, null/absent empty, the rest as JSON.
fn csv_text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// RFC 4180 quoting: a field with a comma, quote, CR or LF is quoted, quotes doubled.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Where and why an exported file does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}line {line}: {why}", .seq.map(|s| format!("seq {s}, ")).unwrap_or_default())]
pub struct Broken {
    /// The first broken record's seq, when the line names one.
    pub seq: Option<u64>,
    /// 1-based line number in the file.
    pub line: u64,
    pub why: String,
}

/// Why verification did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read the export: {0}")]
    Io(#[from] std::io::Error),
    #[error("export broken at {0}")]
    Broken(Broken),
}

/// What a verified export holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOutcome {
    pub count: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub last_hash: Option<String>,
    /// The chain head named by the header.
    pub head: (u64, String),
    pub filters: Value,
    /// Whether the anchor was checked (it always is when given; false without one).
    pub anchored: bool,
}

/// Verifies a JSON Lines export: header and trailer shape, every record's hash, the
/// `prev_hash` link between contiguous records (`seq` = previous + 1), strictly increasing
/// `seq`, no gaps in an unfiltered export, the trailer's count, last seq and last hash, and
/// `anchor` (seq, hash): the record with that seq, or the header's chain head, has that hash.
pub fn verify_jsonl<R: BufRead>(
    reader: R,
    anchor: Option<(u64, String)>,
) -> Result<VerifyOutcome, VerifyError> {
    let brk =
        |seq: Option<u64>, line: u64, why: String| VerifyError::Broken(Broken { seq, line, why });
    let mut lines = reader.lines();
    let mut n = 0u64;
    // Header.
    let Some(first) = lines.next() else {
        return Err(brk(None, 1, "the file is empty (no header)".into()));
    };
    n += 1;
    let header: Value = serde_json::from_str(&first?)
        .map_err(|e| brk(None, n, format!("the header is not JSON: {e}")))?;
    if header["type"] != "header" {
        return Err(brk(None, n, "the first line is not a header".into()));
    }
    if header["format_version"] != FORMAT_VERSION {
        return Err(brk(
            None,
            n,
            format!(
                "unsupported format_version {} (this toolgate reads {FORMAT_VERSION})",
                header["format_version"]
            ),
        ));
    }
    let filters = header["filters"].clone();
    let Some(fmap) = filters.as_object() else {
        return Err(brk(None, n, "the header has no filters object".into()));
    };
    let unfiltered = fmap.is_empty();
    let head = match (
        header["chain"]["seq"].as_u64(),
        header["chain"]["hash"].as_str(),
    ) {
        (Some(s), Some(h)) => (s, h.to_string()),
        _ => return Err(brk(None, n, "the header has no chain {seq, hash}".into())),
    };

    let mut count = 0u64;
    let mut first_seq = None;
    let mut prev: Option<(u64, String)> = None;
    let mut anchor_hit = anchor.as_ref().is_some_and(|(s, h)| {
        // The chain head itself may be the anchor.
        *s == head.0 && *h == head.1
    });
    if let Some((s, h)) = &anchor
        && *s == head.0
        && *h != head.1
    {
        return Err(brk(
            Some(*s),
            1,
            format!("the chain head's hash is {}, not the anchor's {h}", head.1),
        ));
    }
    let mut trailer: Option<Value> = None;
    for line in lines {
        let line = line?;
        n += 1;
        let after = prev.as_ref().map(|(s, _)| *s);
        if trailer.is_some() {
            return Err(brk(after, n, "a line follows the trailer".into()));
        }
        let mut v: Value = serde_json::from_str(&line).map_err(|e| {
            brk(
                after.map(|s| s + 1),
                n,
                format!(
                    "the line is not valid JSON ({e}); the record after seq {after:?} is damaged"
                ),
            )
        })?;
        match v.get("type").and_then(Value::as_str) {
            Some("record") => {}
            Some("trailer") => {
                trailer = Some(v);
                continue;
            }
            other => {
                return Err(brk(
                    after.map(|s| s + 1),
                    n,
                    format!("unexpected line type {other:?}"),
                ));
            }
        }
        if let Value::Object(m) = &mut v {
            m.remove("type");
        }
        let claimed = v.get("seq").and_then(Value::as_u64);
        let rec: AuditRecord = serde_json::from_value(v.clone()).map_err(|e| {
            brk(
                claimed.or(after.map(|s| s + 1)),
                n,
                format!("not an audit record: {e}"),
            )
        })?;
        let seq = rec.seq;
        if serde_json::to_value(&rec).ok().as_ref() != Some(&v) {
            return Err(brk(
                Some(seq),
                n,
                "the record has fields or values outside the sealed record".into(),
            ));
        }
        if rec.compute_hash() != rec.hash {
            return Err(brk(
                Some(seq),
                n,
                "record does not match its hash (a field was changed)".into(),
            ));
        }
        if let Some((pseq, phash)) = &prev {
            if seq <= *pseq {
                return Err(brk(
                    Some(seq),
                    n,
                    format!("seq {seq} after seq {pseq}: records are out of order"),
                ));
            }
            if seq == pseq + 1 {
                if rec.prev_hash != *phash {
                    return Err(brk(
                        Some(seq),
                        n,
                        "prev_hash does not match the previous record's hash".into(),
                    ));
                }
            } else if unfiltered {
                return Err(brk(
                    Some(pseq + 1),
                    n,
                    format!(
                        "expected seq {} in an unfiltered export, found {seq} (records are missing)",
                        pseq + 1
                    ),
                ));
            }
        } else if seq == 1 && rec.prev_hash != GENESIS_HASH {
            return Err(brk(
                Some(1),
                n,
                "the first record does not link to the genesis hash".into(),
            ));
        }
        if seq > head.0 {
            return Err(brk(
                Some(seq),
                n,
                format!("seq {seq} is past the header's chain head {}", head.0),
            ));
        }
        if let Some((s, h)) = &anchor
            && *s == seq
        {
            if rec.hash != *h {
                return Err(brk(
                    Some(seq),
                    n,
                    format!("hash {} does not match the anchor {h}", rec.hash),
                ));
            }
            anchor_hit = true;
        }
        count += 1;
        first_seq.get_or_insert(seq);
        prev = Some((seq, rec.hash));
    }
    let Some(t) = trailer else {
        return Err(brk(
            prev.as_ref().map(|(s, _)| *s),
            n,
            "no trailer: the export is truncated".into(),
        ));
    };
    let (last_seq, last_hash) = match &prev {
        Some((s, h)) => (Some(*s), Some(h.clone())),
        None => (None, None),
    };
    if t["count"].as_u64() != Some(count) {
        return Err(brk(
            last_seq,
            n,
            format!(
                "the trailer counts {} records, the file has {count}",
                t["count"]
            ),
        ));
    }
    if t["last_seq"].as_u64() != last_seq || t["last_hash"].as_str() != last_hash.as_deref() {
        return Err(brk(
            last_seq,
            n,
            "the trailer's last_seq/last_hash do not match the last record".into(),
        ));
    }
    if t["first_seq"].as_u64() != first_seq {
        return Err(brk(
            first_seq,
            n,
            "the trailer's first_seq does not match the first record".into(),
        ));
    }
    if unfiltered && last_seq.unwrap_or(0) != head.0 {
        return Err(brk(
            last_seq.map(|s| s + 1).or(Some(1)),
            n,
            format!(
                "an unfiltered export must end at the chain head seq {}, it ends at {last_seq:?}",
                head.0
            ),
        ));
    }
    if unfiltered && last_seq.is_some() && last_hash.as_deref() != Some(head.1.as_str()) {
        return Err(brk(
            last_seq,
            n,
            "the last record's hash is not the header's chain head".into(),
        ));
    }
    if let Some((s, _)) = &anchor
        && !anchor_hit
    {
        return Err(brk(
            Some(*s),
            n,
            format!("the anchor's seq {s} is neither in the export nor its chain head"),
        ));
    }
    Ok(VerifyOutcome {
        count,
        first_seq,
        last_seq,
        last_hash,
        head,
        filters,
        anchored: anchor.is_some(),
    })
}

/// Parses `SEQ:HASH` (the output of `toolgate audit anchor`, as seq and hash).
pub fn parse_anchor(s: &str) -> Option<(u64, String)> {
    let (seq, hash) = s.split_once(':')?;
    let hash = hash.trim().to_ascii_lowercase();
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((seq.trim().parse().ok()?, hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Outcome, RecordKind};

    fn db(n: u64) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE audit (
                seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, time_ms INTEGER NOT NULL,
                kind TEXT NOT NULL, tenant TEXT, account TEXT, platform TEXT, action TEXT, target TEXT,
                tool TEXT NOT NULL, side_effect INTEGER NOT NULL, outcome TEXT NOT NULL,
                failure_class TEXT, idempotency_key TEXT,
                record TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);",
        )
        .unwrap();
        let mut prev = GENESIS_HASH.to_string();
        for i in 1..=n {
            let mut r = AuditRecord::new(
                format!("id{i}"),
                crate::clock::rfc3339(1_000_000 + i as i64 * 1000),
                RecordKind::Call,
                "t",
                Outcome::Success,
            );
            r.tenant = Some(if i % 2 == 0 { "a" } else { "b" }.into());
            r.target = Some(format!("tricky, \"quoted\"\nline {i}"));
            r.proof.post_id = Some(format!("p{i}"));
            r.seal(i, &prev);
            prev = r.hash.clone();
            conn.execute(
                "INSERT INTO audit VALUES (?1, ?2, ?3, 'call', ?4, NULL, NULL, NULL, ?5, 't', 0, 'success', NULL, NULL, ?6, ?7, ?8)",
                rusqlite::params![
                    i as i64,
                    r.id,
                    crate::clock::parse_rfc3339(&r.time).unwrap(),
                    r.tenant,
                    r.target,
                    serde_json::to_string(&r).unwrap(),
                    r.prev_hash,
                    r.hash
                ],
            )
            .unwrap();
        }
        conn
    }

    fn jsonl(conn: &Connection, f: &Filters) -> String {
        let mut out = Vec::new();
        export(conn, f, Format::Jsonl, "2026-01-01T00:00:00.000Z", &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn verify(s: &str) -> Result<VerifyOutcome, Broken> {
        verify_jsonl(s.as_bytes(), None).map_err(|e| match e {
            VerifyError::Broken(b) => b,
            VerifyError::Io(e) => panic!("{e}"),
        })
    }

    #[test]
    fn csv_columns_are_the_record_fields() {
        let r = AuditRecord::new(
            "x".into(),
            "t".into(),
            RecordKind::Call,
            "t",
            Outcome::Success,
        );
        let v = serde_json::to_value(&r).unwrap();
        let mut fields: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        fields.retain(|f| f != "proof");
        fields.extend(["proof.post_id", "proof.url", "proof.screenshot"].map(String::from));
        let mut cols: Vec<String> = CSV_COLUMNS.iter().map(|s| s.to_string()).collect();
        fields.sort();
        cols.sort();
        assert_eq!(fields, cols);
    }

    #[test]
    fn full_and_filtered_exports_verify() {
        let conn = db(6);
        let full = jsonl(&conn, &Filters::default());
        assert_eq!(full.lines().count(), 8);
        let ok = verify(&full).unwrap();
        assert_eq!((ok.count, ok.last_seq, ok.head.0), (6, Some(6), 6));
        let mut f = Filters::default();
        f.set("tenant", "a".into());
        let part = jsonl(&conn, &f);
        let ok = verify(&part).unwrap();
        assert_eq!((ok.count, ok.first_seq, ok.last_seq), (3, Some(2), Some(6)));
        let mut f = Filters::default();
        f.set("from", crate::clock::rfc3339(1_003_000));
        f.set("to", crate::clock::rfc3339(1_005_000));
        let ok = verify(&jsonl(&conn, &f)).unwrap();
        assert_eq!((ok.first_seq, ok.last_seq), (Some(3), Some(4)));
        // Anchors: a record's hash or the head's.
        let head = ok.head.clone();
        assert!(verify_jsonl(full.as_bytes(), Some(head.clone())).is_ok());
        let bad = Some((head.0, GENESIS_HASH.to_string()));
        assert!(verify_jsonl(full.as_bytes(), bad).is_err());
    }

    #[test]
    fn tampering_deleting_and_reordering_are_detected() {
        let conn = db(5);
        let full = jsonl(&conn, &Filters::default());
        let lines: Vec<&str> = full.lines().collect();
        // Change one byte of record 3's target.
        let t = full.replacen("line 3", "line 9", 1);
        assert_eq!(verify(&t).unwrap_err().seq, Some(3));
        // Delete record 3.
        let mut d = lines.clone();
        d.remove(3);
        assert_eq!(verify(&d.join("\n")).unwrap_err().seq, Some(3));
        // Swap records 2 and 3.
        let mut s = lines.clone();
        s.swap(2, 3);
        assert_eq!(verify(&s.join("\n")).unwrap_err().seq, Some(2));
        // Truncated.
        assert!(verify(&lines[..4].join("\n")).is_err());
        // An added field.
        let a = full.replacen("\"seq\":4,", "\"seq\":4,\"extra\":1,", 1);
        assert_eq!(verify(&a).unwrap_err().seq, Some(4));
    }

    #[test]
    fn csv_quotes_per_rfc_4180() {
        let conn = db(2);
        let mut out = Vec::new();
        export(&conn, &Filters::default(), Format::Csv, "x", &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("id,seq,time,"));
        assert!(s.contains("\"tricky, \"\"quoted\"\"\nline 1\""));
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(parse_anchor("3:zz"), None);
        assert_eq!(
            parse_anchor(&format!("3:{GENESIS_HASH}")),
            Some((3, GENESIS_HASH.into()))
        );
    }
}
