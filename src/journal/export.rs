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

use std::io::Write;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde_json::{Map, Value, json};

use super::JournalError;
use super::record::GENESIS_HASH;
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

/// Where the stored chain starts: `(seq, prev_hash)` of its first record, or `(1, genesis)`
/// for an empty journal. After retention, `seq > 1` and `prev_hash` is the anchor: the hash
/// of the last pruned record.
pub fn chain_start(conn: &Connection) -> Result<(u64, String), JournalError> {
    let first = conn
        .query_row(
            "SELECT seq, json_extract(record, '$.prev_hash') FROM audit ORDER BY seq LIMIT 1",
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
        )
        .optional()?;
    Ok(first.unwrap_or_else(|| (1, GENESIS_HASH.into())))
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
    // One read transaction: the head, the start and the rows are the same snapshot.
    let tx = conn.unchecked_transaction()?;
    let (head_seq, head_hash, _) = chain_head(&tx)?;
    let (first_seq, anchor_prev_hash) = chain_start(&tx)?;
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
    // The time window is indexed and `tenant` is a column; the other fields are read from
    // the sealed record, which the row no longer copies (schema 5): an export filtered on
    // them parses each row it scans.
    for (col, v) in [
        ("tenant", &filters.tenant),
        ("json_extract(record, '$.platform')", &filters.platform),
        ("json_extract(record, '$.account')", &filters.account),
        ("json_extract(record, '$.outcome')", &filters.outcome),
        (
            "json_extract(record, '$.failure_class')",
            &filters.failure_class,
        ),
        (
            "json_extract(record, '$.idempotency_key')",
            &filters.idempotency_key,
        ),
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
                "chain": {
                    "seq": head_seq,
                    "hash": head_hash,
                    "first_seq": first_seq,
                    "anchor_prev_hash": anchor_prev_hash,
                },
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
    // Reused for every row: no allocation per record on the common path.
    let mut line: Vec<u8> = Vec::with_capacity(2048);
    let mut last_hash = String::with_capacity(64);
    let corrupt = |seq: u64, e: &dyn std::fmt::Display| {
        ExportError::Journal(JournalError::Corrupt(format!("audit record {seq}: {e}")))
    };
    while let Some(row) = rows.next()? {
        let seq = row.get::<_, i64>(0)? as u64;
        let text = row.get_ref(1)?.as_str().map_err(|e| corrupt(seq, &e))?;
        line.clear();
        match format {
            Format::Jsonl => jsonl_line(text, &mut line).map_err(|e| corrupt(seq, &e))?,
            Format::Csv => csv::csv_line(text, &mut line).map_err(|e| corrupt(seq, &e))?,
        }
        out.write_all(&line)?;
        last_hash.clear();
        last_hash.push_str(row.get_ref(2)?.as_str().map_err(|e| corrupt(seq, &e))?);
        summary.count += 1;
        summary.first_seq.get_or_insert(seq);
        summary.last_seq = Some(seq);
    }
    if summary.count > 0 {
        summary.last_hash = Some(last_hash);
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

/// A record line: the stored text verbatim with `"type":"record"` spliced in front.
fn jsonl_line(text: &str, line: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    match text.trim_start().strip_prefix('{') {
        Some(rest) if rest.trim_start().starts_with('"') => {
            line.extend_from_slice(b"{\"type\":\"record\",");
            line.extend_from_slice(rest.as_bytes());
        }
        _ => {
            let mut v: Value = serde_json::from_str(text)?;
            if let Value::Object(m) = &mut v {
                m.insert("type".into(), "record".into());
            }
            serde_json::to_writer(&mut *line, &v)?;
        }
    }
    line.push(b'\n');
    Ok(())
}

pub use super::record::parse_anchor;
pub use csv::csv_field;
pub use verify::{Broken, VerifyError, VerifyOutcome, verify_jsonl};

mod csv;
mod verify;

#[cfg(test)]
mod tests;
