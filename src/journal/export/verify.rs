//! Offline verification of a JSON Lines export: header, records, trailer, chain start and anchor.

use std::io::BufRead;

use serde_json::Value;

use super::FORMAT_VERSION;
use crate::journal::record::{AuditRecord, GENESIS_HASH, scan};

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
/// `anchor` (seq, hash): the record with that seq, the header's chain head, or (after
/// retention) the pruned prefix's head that the first kept record links to, has that hash.
///
/// The chain's start comes from the header (`chain.first_seq`, `chain.anchor_prev_hash`;
/// seq 1 and the genesis hash when absent): an unfiltered export must begin there, and when
/// it begins after seq 1 its latest `audit.prune` record must name that start, so deleting
/// the oldest records of an export (or a journal) is not mistaken for retention.
pub fn verify_jsonl<R: BufRead>(
    mut reader: R,
    anchor: Option<(u64, String)>,
) -> Result<VerifyOutcome, VerifyError> {
    let brk =
        |seq: Option<u64>, line: u64, why: String| VerifyError::Broken(Broken { seq, line, why });
    // One line buffer for the whole file; `text` never includes the line end.
    let mut buf = String::with_capacity(4096);
    let mut read = |buf: &mut String| -> std::io::Result<bool> {
        buf.clear();
        if reader.read_line(buf)? == 0 {
            return Ok(false);
        }
        if buf.ends_with('\n') {
            buf.pop();
            if buf.ends_with('\r') {
                buf.pop();
            }
        }
        Ok(true)
    };
    let mut n = 0u64;
    // Header.
    if !read(&mut buf)? {
        return Err(brk(None, 1, "the file is empty (no header)".into()));
    }
    n += 1;
    let header: Value = serde_json::from_str(&buf)
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
    // Where the chain starts (older exports, written before retention, have no start).
    let start = match (
        &header["chain"]["first_seq"],
        &header["chain"]["anchor_prev_hash"],
    ) {
        (Value::Null, Value::Null) => (1, GENESIS_HASH.to_string()),
        (s, h) => match (s.as_u64(), h.as_str()) {
            (Some(s), Some(h)) if s >= 1 => (s, h.to_string()),
            _ => {
                let why = "the header's chain.first_seq/anchor_prev_hash are malformed";
                return Err(brk(None, n, why.into()));
            }
        },
    };

    let mut count = 0u64;
    let mut first_seq = None;
    let mut prev: Option<(u64, String)> = None;
    // The latest retention record seen: (seq, the pruned prefix's head it names).
    let mut pruned_to: Option<(u64, (u64, String))> = None;
    let mut anchor_hit = false;
    if let Some((s, h)) = &anchor {
        // The chain head itself, or the pruned prefix's head, may be the anchor.
        let known = if *s == head.0 {
            Some((&head.1, "the chain head's"))
        } else if start.0 > 1 && *s == start.0 - 1 {
            Some((
                &start.1,
                "the pruned prefix's head (the first kept record's prev_hash)",
            ))
        } else {
            None
        };
        match known {
            Some((k, _)) if k == h => anchor_hit = true,
            Some((k, what)) => {
                let why = format!("{what} hash is {k}, not the anchor's {h}");
                return Err(brk(Some(*s), 1, why));
            }
            None if *s < start.0 => {
                let why = format!(
                    "the anchor's seq {s} was deleted by retention (the chain starts at seq {})",
                    start.0
                );
                return Err(brk(Some(*s), 1, why));
            }
            None => {}
        }
    }
    let mut trailer: Option<Value> = None;
    let mut hash_buf: Vec<u8> = Vec::with_capacity(1024);
    while read(&mut buf)? {
        n += 1;
        let after = prev.as_ref().map(|(s, _)| *s);
        if trailer.is_some() {
            return Err(brk(after, n, "a line follows the trailer".into()));
        }
        let rec = match fast_record(&buf, &mut hash_buf) {
            Some(r) => r,
            None => match slow_line(&buf, after, n)? {
                Line::Record(r) => {
                    if !r.hash_matches(&mut hash_buf) {
                        return Err(brk(
                            Some(r.seq),
                            n,
                            "record does not match its hash (a field was changed)".into(),
                        ));
                    }
                    Checked {
                        seq: r.seq,
                        prune: r.prune_anchor(),
                        prev_hash: r.prev_hash,
                        hash: r.hash,
                    }
                }
                Line::Trailer(v) => {
                    trailer = Some(v);
                    continue;
                }
            },
        };
        let seq = rec.seq;
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
        } else if unfiltered && seq != start.0 {
            let why = format!(
                "an unfiltered export must start at the chain's first seq {}, found {seq} \
                 (records are missing)",
                start.0
            );
            return Err(brk(Some(start.0), n, why));
        }
        if seq < start.0 {
            let why = format!("seq {seq} is before the chain's first seq {}", start.0);
            return Err(brk(Some(seq), n, why));
        }
        if seq == start.0 && rec.prev_hash != start.1 {
            let why = if seq == 1 {
                "the first record does not link to the genesis hash".to_string()
            } else {
                "the first kept record does not link to the header's anchor_prev_hash".to_string()
            };
            return Err(brk(Some(seq), n, why));
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
        if let Some(a) = rec.prune {
            pruned_to = Some((seq, a));
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
    // After retention the chain itself must say where it starts (sealed, unlike the header).
    if unfiltered && start.0 > 1 {
        let want = (start.0 - 1, start.1.clone());
        match &pruned_to {
            Some((_, named)) if *named == want => {}
            Some((at, (s, h))) => {
                let why = format!(
                    "the latest audit.prune record (seq {at}) names {s}:{h} as the pruned \
                     prefix's head, the export starts after {}:{}",
                    want.0, want.1
                );
                return Err(brk(Some(start.0), n, why));
            }
            None => {
                let why = format!(
                    "the chain starts at seq {} but no audit.prune record says retention \
                     deleted the records before it",
                    start.0
                );
                return Err(brk(Some(start.0), n, why));
            }
        }
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

/// What the chain checks need of a record whose seal holds.
struct Checked {
    seq: u64,
    prev_hash: String,
    hash: String,
    prune: Option<(u64, String)>,
}

/// The exporter's record line prefix.
const RECORD_PREFIX: &str = "{\"type\":\"record\",";

/// A record line exactly as the exporter writes it (the prefix, then the stored record's own
/// serialisation) whose seal holds, read without deserialising it ([`scan`]); `None` for
/// anything else, which [`slow_line`] then reads and diagnoses.
fn fast_record(line: &str, canon: &mut Vec<u8>) -> Option<Checked> {
    if !line.starts_with(RECORD_PREFIX) {
        return None;
    }
    let s = scan(line, RECORD_PREFIX.len(), canon)?;
    s.sealed.then(|| Checked {
        seq: s.seq,
        prev_hash: s.prev_hash.to_string(),
        hash: s.hash.to_string(),
        prune: s.prune_anchor(),
    })
}

/// A non-header line, read the thorough way.
enum Line {
    Record(Box<AuditRecord>),
    Trailer(Value),
}

/// Parses a line as JSON and classifies it: a record must hold exactly the sealed record's
/// fields and values (besides `type`).
fn slow_line(line: &str, after: Option<u64>, n: u64) -> Result<Line, VerifyError> {
    let brk =
        |seq: Option<u64>, line: u64, why: String| VerifyError::Broken(Broken { seq, line, why });
    let mut v: Value = serde_json::from_str(line).map_err(|e| {
        brk(
            after.map(|s| s + 1),
            n,
            format!("the line is not valid JSON ({e}); the record after seq {after:?} is damaged"),
        )
    })?;
    match v.get("type").and_then(Value::as_str) {
        Some("record") => {}
        Some("trailer") => return Ok(Line::Trailer(v)),
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
    if serde_json::to_value(&rec).ok().as_ref() != Some(&v) {
        return Err(brk(
            Some(rec.seq),
            n,
            "the record has fields or values outside the sealed record".into(),
        ));
    }
    Ok(Line::Record(Box::new(rec)))
}
