//! Export and offline verification on an in-memory journal: layout, filters, tampering, CSV.

use super::*;
use crate::journal::record::AuditRecord;
use crate::journal::{Outcome, RecordKind};

fn db(n: u64) -> Connection {
    // The journal's own schema, so these tests follow its migrations.
    let mut conn = Connection::open_in_memory().unwrap();
    crate::journal::sqlite::migrate(&mut conn).unwrap();
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
            "INSERT INTO audit (seq, time_ms, kind, tenant, record, hash) VALUES (?1, ?2, 'call', ?3, ?4, ?5)",
            rusqlite::params![
                i as i64,
                crate::clock::parse_rfc3339(&r.time).unwrap(),
                r.tenant,
                serde_json::to_string(&r).unwrap(),
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

#[test]
fn typed_csv_rows_equal_the_json_value_rows() {
    use crate::call::FailureClass;
    use crate::config::{Action, Lane};
    let mut full = AuditRecord::new(
        "id,1".into(),
        "2026-01-01T00:00:00.000Z".into(),
        RecordKind::Recovery,
        "up__publish_post",
        Outcome::InDoubt,
    );
    full.tenant = Some("t\"q\"".into());
    full.account = Some("a".into());
    full.platform = Some("x".into());
    full.lane = Some(Lane::Browser);
    full.action = Some(Action::Dm);
    full.target = Some("line\r\nbreak".into());
    full.upstream = Some("up".into());
    full.capability = Some("cap".into());
    full.side_effect = true;
    full.idempotency_key = Some("k".into());
    full.fingerprint = Some("f".into());
    full.attempt = Some(2);
    full.failure_class = Some(FailureClass::RunnerFailure);
    full.reason = Some("why, because".into());
    full.latency_ms = 12.0;
    full.proof.post_id = Some("p".into());
    full.proof.url = Some("u".into());
    full.proof.screenshot = Some("s".into());
    full.proof_missing = true;
    full.replayed = true;
    full.actor = Some("op".into());
    full.job_id = Some("j".into());
    full.episode_id = Some("e".into());
    full.seal(7, GENESIS_HASH);
    let mut sparse = AuditRecord::operator("audit.prune", 0, "toolgate", "r");
    sparse.latency_ms = f64::NAN;
    sparse.seal(8, &full.hash);
    for r in [full, sparse] {
        let (mut typed, mut value) = (Vec::new(), Vec::new());
        csv::csv_record(&r, &mut typed);
        csv::csv_value(&serde_json::to_value(&r).unwrap(), &mut value);
        assert_eq!(
            String::from_utf8(typed).unwrap(),
            String::from_utf8(value).unwrap()
        );
    }
}
