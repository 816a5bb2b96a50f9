//! The fast path of verification: reads a record serialised exactly as toolgate writes it
//! (members in declaration order, serde_json's own formatting) without deserialising it, and
//! checks its seal from the raw value slices.
//!
//! The canonical JSON that `hash` seals is the same values with the keys sorted (see
//! [`super::hash`]); for a record written by serde_json, each raw value slice already is its
//! canonical form, so the canonical bytes are the slices re-ordered. If any slice were not
//! canonical (another escape, another number form), the bytes would differ and the hash
//! would not match: the caller then takes the slow path (full parse, exact diagnosis). A
//! match is a proof, a mismatch only a reason to look closer.

use sha2::{Digest, Sha256};

/// Members of a serialised [`super::AuditRecord`], in declaration order.
const FIELDS: [&str; 29] = [
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
    "proof",
    "proof_missing",
    "replayed",
    "actor",
    "job_id",
    "episode_id",
    "prev_hash",
    "hash",
];

/// [`super::PRUNE_TOOL`] as a JSON token.
const PRUNE_TOKEN: &str = "\"audit.prune\"";

const PROOF: usize = 21;
const HASH: usize = 28;

/// Indexes into [`FIELDS`] in key order, without `hash` (the canonical order).
const SORTED: [usize; 28] = [
    5, 8, 24, 16, 12, 26, 18, 15, 0, 14, 25, 3, 7, 20, 17, 6, 27, 21, 22, 19, 23, 1, 13, 9, 4, 2,
    10, 11,
];

/// A record read by [`scan`]: raw JSON tokens (strings with their quotes) of the members the
/// verifiers look at, and whether the seal holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanned<'a> {
    pub seq: u64,
    /// Hex, without quotes.
    pub prev_hash: &'a str,
    /// Hex, without quotes.
    pub hash: &'a str,
    pub kind: &'a str,
    pub tool: &'a str,
    pub target: &'a str,
    pub tenant: &'a str,
    /// `hash` is the SHA-256 of the canonical form.
    pub sealed: bool,
}

impl Scanned<'_> {
    /// The raw token as an optional string: `null` → `None`; a string without escapes is
    /// borrowed as is; one with escapes is decoded.
    pub fn text(token: &str) -> Option<std::borrow::Cow<'_, str>> {
        if token == "null" {
            return None;
        }
        let inner = token.strip_prefix('"')?.strip_suffix('"')?;
        if inner.contains('\\') {
            serde_json::from_str::<String>(token).ok().map(Into::into)
        } else {
            Some(inner.into())
        }
    }

    /// For an `audit.prune` record: the pruned prefix's head (as [`super::AuditRecord::prune_anchor`]).
    pub fn prune_anchor(&self) -> Option<(u64, String)> {
        if self.kind != "\"operator\"" || self.tool != PRUNE_TOKEN {
            return None;
        }
        super::parse_anchor(&Self::text(self.target)?)
    }
}

/// Whether `hex` is the lower-case hex form of `digest` (encoding beats decoding: no
/// per-digit validation, one comparison).
fn hex_eq(digest: &[u8; 32], hex: &[u8]) -> bool {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (i, b) in digest.iter().enumerate() {
        out[2 * i] = DIGITS[(b >> 4) as usize];
        out[2 * i + 1] = DIGITS[(b & 15) as usize];
    }
    out[..] == *hex
}

/// The end of the JSON value starting at `i` (a string, number, `true`, `false`, `null`;
/// no arrays or objects), or `None` for anything else.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => {
            let mut j = i + 1;
            loop {
                match *b.get(j)? {
                    b'"' => return Some(j + 1),
                    b'\\' => j += 2,
                    c if c < 0x20 => return None,
                    _ => j += 1,
                }
            }
        }
        b'-' | b'0'..=b'9' => {
            let mut j = i + 1;
            while j < b.len() && matches!(b[j], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') {
                j += 1;
            }
            Some(j)
        }
        _ => [&b"true"[..], b"false", b"null"]
            .into_iter()
            .find(|lit| b[i..].starts_with(lit))
            .map(|lit| i + lit.len()),
    }
}

/// Expects `"name":` at `i`; returns the index after it.
fn key(b: &[u8], i: usize, name: &str) -> Option<usize> {
    let n = name.len();
    (b.get(i) == Some(&b'"')
        && b.get(i + 1..i + 1 + n)? == name.as_bytes()
        && b.get(i + 1 + n..i + 3 + n)? == b"\":")
        .then_some(i + 3 + n)
}

/// Reads the record whose members start at byte `start` of `text` (just after its `{`, or
/// after an export line's `{"type":"record",`) and ends the text. `None` unless every
/// member is there, in order, once, with nothing else; `canon` is scratch space.
pub fn scan<'a>(text: &'a str, start: usize, canon: &mut Vec<u8>) -> Option<Scanned<'a>> {
    let b = text.as_bytes();
    let mut raw: [(usize, usize); 29] = [(0, 0); 29];
    // proof members in serialised order: post_id, url, screenshot.
    let mut proof: [Option<(usize, usize)>; 3] = [None; 3];
    let mut i = start;
    for (k, name) in FIELDS.iter().enumerate() {
        if k > 0 {
            (b.get(i) == Some(&b',')).then_some(())?;
            i += 1;
        }
        i = key(b, i, name)?;
        if k == PROOF {
            (b.get(i) == Some(&b'{')).then_some(())?;
            i += 1;
            let mut first = true;
            for (p, pname) in ["post_id", "url", "screenshot"].iter().enumerate() {
                let at = if first { i } else { i + 1 };
                if !first && b.get(i) != Some(&b',') {
                    continue;
                }
                let Some(v) = key(b, at, pname) else {
                    continue;
                };
                (b.get(v) == Some(&b'"')).then_some(())?;
                let end = value_end(b, v)?;
                proof[p] = Some((v, end));
                i = end;
                first = false;
            }
            (b.get(i) == Some(&b'}')).then_some(())?;
            i += 1;
            continue;
        }
        let end = value_end(b, i)?;
        raw[k] = (i, end);
        i = end;
    }
    (i + 1 == b.len() && b[i] == b'}').then_some(())?;

    canon.clear();
    canon.push(b'{');
    for (n, &k) in SORTED.iter().enumerate() {
        if n > 0 {
            canon.push(b',');
        }
        canon.push(b'"');
        canon.extend_from_slice(FIELDS[k].as_bytes());
        canon.extend_from_slice(b"\":");
        if k == PROOF {
            canon.push(b'{');
            let mut first = true;
            // Canonical order: post_id, screenshot, url.
            for (p, pname) in [(0, "post_id"), (2, "screenshot"), (1, "url")] {
                if let Some((s, e)) = proof[p] {
                    if !first {
                        canon.push(b',');
                    }
                    first = false;
                    canon.push(b'"');
                    canon.extend_from_slice(pname.as_bytes());
                    canon.extend_from_slice(b"\":");
                    canon.extend_from_slice(&b[s..e]);
                }
            }
            canon.push(b'}');
        } else {
            let (s, e) = raw[k];
            canon.extend_from_slice(&b[s..e]);
        }
    }
    canon.push(b'}');

    let tok = |k: usize| &text[raw[k].0..raw[k].1];
    let hex = |k: usize| {
        let t = tok(k);
        t.strip_prefix('"')?.strip_suffix('"')
    };
    let hash = hex(HASH)?;
    let sealed = hex_eq(&Sha256::digest(canon.as_slice()).into(), hash.as_bytes());
    Some(Scanned {
        seq: tok(1).parse().ok()?,
        prev_hash: hex(27)?,
        hash,
        kind: tok(3),
        tool: tok(10),
        target: tok(9),
        tenant: tok(4),
        sealed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::record::{AuditRecord, GENESIS_HASH, Outcome, PRUNE_TOOL, RecordKind};

    #[test]
    fn hex_eq_is_exact_lower_case_hex() {
        let d: [u8; 32] = Sha256::digest(b"x").into();
        let h = hex::encode(d);
        assert!(hex_eq(&d, h.as_bytes()));
        assert!(!hex_eq(&d, h.to_ascii_uppercase().as_bytes()));
        assert!(!hex_eq(&d, &h.as_bytes()[1..]));
    }

    #[test]
    fn sorted_is_the_key_order_without_hash() {
        assert_eq!(PRUNE_TOKEN, format!("\"{PRUNE_TOOL}\""));
        let mut names: Vec<&str> = FIELDS.iter().copied().filter(|f| *f != "hash").collect();
        names.sort_unstable();
        let sorted: Vec<&str> = SORTED.iter().map(|&k| FIELDS[k]).collect();
        assert_eq!(sorted, names);
        let r = AuditRecord::new(
            String::new(),
            String::new(),
            RecordKind::Call,
            "",
            Outcome::Success,
        );
        let v = serde_json::to_value(&r).unwrap();
        let mut members: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut fields = FIELDS.to_vec();
        members.sort_unstable();
        fields.sort_unstable();
        assert_eq!(
            members, fields,
            "FIELDS must list every member of AuditRecord"
        );
    }

    fn sealed(mut r: AuditRecord) -> (AuditRecord, String) {
        r.seal(9, GENESIS_HASH);
        let text = serde_json::to_string(&r).unwrap();
        (r, text)
    }

    #[test]
    fn serialised_records_scan_sealed_and_changes_do_not() {
        let mut canon = Vec::new();
        let mut r = AuditRecord::operator(PRUNE_TOOL, 5, "toolgate", "é \"quoted\"\n\u{1}");
        r.target = Some(format!("8:{}", "ab".repeat(32)));
        r.latency_ms = 12.5;
        r.proof.url = Some("https://x/\\y".into());
        r.proof.screenshot = Some("s".into());
        let mut plain = AuditRecord::new(
            "i".into(),
            "t".into(),
            RecordKind::Call,
            "x",
            Outcome::Failed,
        );
        plain.tenant = Some("acme".into());
        plain.proof.post_id = Some("p".into());
        plain.attempt = Some(2);
        for rec in [r, plain] {
            let (rec, text) = sealed(rec);
            let s = scan(&text, 1, &mut canon).unwrap();
            assert!(s.sealed, "{text}");
            assert_eq!(
                (s.seq, s.hash, s.prev_hash),
                (9, rec.hash.as_str(), GENESIS_HASH)
            );
            assert_eq!(s.prune_anchor(), rec.prune_anchor());
            assert_eq!(Scanned::text(s.tenant).as_deref(), rec.tenant.as_deref());
            assert_eq!(Scanned::text(s.kind).as_deref(), Some(rec.kind.as_str()));
            // The export line form.
            let line = text.replacen('{', "{\"type\":\"record\",", 1);
            assert!(scan(&line, 17, &mut canon).unwrap().sealed);
            // A changed value: read, not sealed. An extra or missing member: not read.
            let changed = text.replacen("\"seq\":9", "\"seq\":8", 1);
            assert!(!scan(&changed, 1, &mut canon).unwrap().sealed);
            let extra = text.replacen("\"seq\":9,", "\"seq\":9,\"x\":1,", 1);
            assert_eq!(scan(&extra, 1, &mut canon), None);
            let missing = text.replacen("\"replayed\":false,", "", 1);
            assert_eq!(scan(&missing, 1, &mut canon), None);
            assert_eq!(scan(&format!("{text} "), 1, &mut canon), None);
            // Another escape of the same string: read, not sealed (the slow path decides).
            let escaped = text.replacen("\"time\":\"", "\"time\":\"\\u0074", 1);
            if escaped != text {
                assert!(!scan(&escaped, 1, &mut canon).is_some_and(|s| s.sealed));
            }
        }
    }
}
