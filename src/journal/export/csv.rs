//! CSV rows of audit records: [`super::CSV_COLUMNS`] in order, `proof` flattened, RFC 4180 quoting.

use serde_json::Value;

use super::CSV_COLUMNS;
use crate::journal::record::AuditRecord;

/// A CSV row of [`CSV_COLUMNS`]: strings raw, null/absent empty, the rest as JSON, each
/// quoted per RFC 4180 when needed.
pub(super) fn csv_line(text: &str, line: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    match serde_json::from_str::<AuditRecord>(text) {
        Ok(r) => csv_record(&r, line),
        // Not today's record shape: go through JSON values, column by column.
        Err(_) => csv_value(&serde_json::from_str(text)?, line),
    }
    line.extend_from_slice(b"\r\n");
    Ok(())
}

/// A record's row from its JSON value: the definition of a row.
pub(super) fn csv_value(v: &Value, line: &mut Vec<u8>) {
    for (i, col) in CSV_COLUMNS.iter().enumerate() {
        if i > 0 {
            line.push(b',');
        }
        let cell = match col.split_once('.') {
            Some((a, b)) => v.get(a).and_then(|p| p.get(b)),
            None => v.get(*col),
        };
        match cell {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => csv_cell(line, s),
            Some(other) => csv_cell(line, &other.to_string()),
        }
    }
}

/// One cell as [`csv_field`] writes it, appended to `line`.
fn csv_cell(line: &mut Vec<u8>, s: &str) {
    if s.contains([',', '"', '\r', '\n']) {
        line.push(b'"');
        for part in s.split('"').enumerate() {
            if part.0 > 0 {
                line.extend_from_slice(b"\"\"");
            }
            line.extend_from_slice(part.1.as_bytes());
        }
        line.push(b'"');
    } else {
        line.extend_from_slice(s.as_bytes());
    }
}

/// A typed record's row, in [`CSV_COLUMNS`] order (the fallback in [`csv_line`] is the
/// definition; a unit test holds the two equal).
pub(super) fn csv_record(r: &AuditRecord, line: &mut Vec<u8>) {
    fn opt(line: &mut Vec<u8>, v: &Option<String>) {
        if let Some(s) = v {
            csv_cell(line, s);
        }
    }
    /// A value serialised as JSON: enum names without their quotes, numbers, booleans.
    fn json<T: serde::Serialize>(line: &mut Vec<u8>, v: &T) {
        let start = line.len();
        let _ = serde_json::to_writer(&mut *line, v);
        if line[start..] == *b"null" {
            line.truncate(start);
        } else if line.len() > start + 1 && line[start] == b'"' {
            // Enum variant names are plain identifiers: drop the quotes.
            line.remove(start);
            line.pop();
        }
    }
    macro_rules! cells {
        ($($cell:expr),+ $(,)?) => {{
            let mut first = true;
            $(
                if !first {
                    line.push(b',');
                }
                first = false;
                $cell;
            )+
            let _ = first;
        }};
    }
    cells!(
        csv_cell(line, &r.id),
        json(line, &r.seq),
        csv_cell(line, &r.time),
        json(line, &r.kind),
        opt(line, &r.tenant),
        opt(line, &r.account),
        opt(line, &r.platform),
        json(line, &r.lane),
        json(line, &r.action),
        opt(line, &r.target),
        csv_cell(line, &r.tool),
        opt(line, &r.upstream),
        opt(line, &r.capability),
        json(line, &r.side_effect),
        opt(line, &r.idempotency_key),
        opt(line, &r.fingerprint),
        json(line, &r.attempt),
        json(line, &r.outcome),
        json(line, &r.failure_class),
        opt(line, &r.reason),
        json(line, &r.latency_ms),
        opt(line, &r.proof.post_id),
        opt(line, &r.proof.url),
        opt(line, &r.proof.screenshot),
        json(line, &r.proof_missing),
        json(line, &r.replayed),
        opt(line, &r.actor),
        opt(line, &r.job_id),
        opt(line, &r.episode_id),
        csv_cell(line, &r.prev_hash),
        csv_cell(line, &r.hash),
    );
}

/// RFC 4180 quoting: a field with a comma, quote, CR or LF is quoted, quotes doubled.
pub fn csv_field(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len() + 2);
    csv_cell(&mut out, s);
    String::from_utf8(out).unwrap_or_default()
}
