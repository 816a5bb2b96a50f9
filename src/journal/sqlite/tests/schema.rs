//! The audit table's shape (schema 5): what an upgrade from schema 4 keeps, which indexes a
//! fresh journal has, and that the queries that seek use them.

use super::*;
use crate::journal::{GENESIS_HASH, PRUNE_TOOL};

/// Sealed records 1..=6 whose record 4 is a retention record naming 2 as the pruned head.
fn old_chain() -> Vec<AuditRecord> {
    let mut prev = GENESIS_HASH.to_string();
    let mut out: Vec<AuditRecord> = Vec::new();
    for i in 1..=6u64 {
        let mut r = if i == 4 {
            let mut p = AuditRecord::operator(PRUNE_TOOL, 1_000, "toolgate", "retention");
            p.target = Some(format!("2:{}", out[1].hash));
            p
        } else {
            let mut r = record(if i % 2 == 0 { "a" } else { "b" }, "up__publish_post");
            r.idempotency_key = Some(format!("k{i}"));
            r
        };
        r.seal(i, &prev);
        prev = r.hash.clone();
        out.push(r);
    }
    out
}

#[tokio::test]
async fn a_version_4_journal_keeps_its_pruned_chain_through_the_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let chain = old_chain();
    {
        let mut conn = open_conn(&dir.path().join("journal.db")).unwrap();
        migrate_to(&mut conn, 4).unwrap();
        // Schema 4's row, as that version's writer filled it; records 1 and 2 are already
        // pruned, so the chain starts at 3 and links to record 2's hash.
        for r in &chain[2..] {
            conn.execute(
                "INSERT INTO audit (seq, id, time_ms, kind, tenant, account, platform, action,
                    target, tool, side_effect, outcome, failure_class, idempotency_key, record,
                    prev_hash, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL, NULL, NULL, ?6, ?7, 0, ?8, NULL, ?9, ?10, ?11, ?12)",
                rusqlite::params![
                    r.seq as i64,
                    r.id,
                    crate::clock::parse_rfc3339(&r.time).unwrap(),
                    r.kind.as_str(),
                    r.tenant,
                    r.target,
                    r.tool,
                    r.outcome.as_str(),
                    r.idempotency_key,
                    serde_json::to_string(r).unwrap(),
                    r.prev_hash,
                    r.hash,
                ],
            )
            .unwrap();
        }
    }
    let (j, _) = SqliteJournal::open(dir.path(), 0).unwrap();
    let report = j.verify().unwrap();
    assert_eq!((report.checked, report.broken), (4, None));
    assert_eq!(report.head, Some((6, chain[5].hash.clone())));
    // Records read back whole, and the chain goes on from the migrated head.
    let back = j.records_after(0, 10).unwrap();
    assert_eq!(back, chain[2..].to_vec());
    j.append(record("a", "t")).await.unwrap();
    let report = j.verify().unwrap();
    assert_eq!((report.checked, report.broken), (5, None));
    drop(j);

    let conn = Connection::open(dir.path().join("journal.db")).unwrap();
    let cols = names(
        &conn,
        "SELECT name FROM pragma_table_info('audit') ORDER BY cid",
    );
    assert_eq!(cols, ["seq", "time_ms", "kind", "tenant", "record", "hash"]);
    // Filters on fields that are no longer columns still select the same rows.
    let mut out = Vec::new();
    let filters = crate::journal::export::Filters {
        idempotency_key: Some("k5".into()),
        ..Default::default()
    };
    let summary = crate::journal::export::export(
        &conn,
        &filters,
        crate::journal::export::Format::Jsonl,
        "2026-01-01T00:00:00.000Z",
        &mut out,
    )
    .unwrap();
    assert_eq!(summary.count, 1, "{}", String::from_utf8_lossy(&out));
}

#[test]
fn a_fresh_audit_table_has_no_unused_index_and_its_seeks_use_one() {
    let mut conn = Connection::open_in_memory().unwrap();
    migrate(&mut conn).unwrap();
    let indexes = names(
        &conn,
        "SELECT name FROM pragma_index_list('audit') ORDER BY name",
    );
    assert_eq!(indexes, ["audit_operator", "audit_time"]);
    // The retention anchor's lookup (every verification starts with it), and a tenant's
    // window (exports, incident bundles).
    assert_plan_uses(
        &conn,
        super::verify::LATEST_OPERATOR_RECORD,
        "audit_operator",
    );
    assert_plan_uses(
        &conn,
        "SELECT seq, record FROM audit WHERE tenant = 'a' AND time_ms >= 5 AND time_ms < 9
         ORDER BY seq",
        "audit_time",
    );
}

#[tokio::test]
async fn recent_dispatches_are_read_from_the_sealed_records() {
    use crate::config::Action;
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = SqliteJournal::open(dir.path(), 0).unwrap();
    // (time, side effect, action, target, outcome, kind): only calls that may have happened,
    // with an account and a target, at or after `since`.
    let rows = [
        (
            2_000,
            true,
            Action::Dm,
            Some("u1"),
            Outcome::Success,
            RecordKind::Call,
        ),
        (
            2_100,
            true,
            Action::Dm,
            Some("u1"),
            Outcome::Refused,
            RecordKind::Call,
        ),
        (
            2_200,
            false,
            Action::Dm,
            Some("u1"),
            Outcome::Success,
            RecordKind::Call,
        ),
        (
            2_300,
            true,
            Action::Dm,
            None,
            Outcome::Success,
            RecordKind::Call,
        ),
        (
            2_400,
            true,
            Action::Dm,
            Some("u1"),
            Outcome::Success,
            RecordKind::Recovery,
        ),
        (
            500,
            true,
            Action::Dm,
            Some("u1"),
            Outcome::Success,
            RecordKind::Call,
        ),
        (
            2_500,
            true,
            Action::Comment,
            Some("c\"1"),
            Outcome::InDoubt,
            RecordKind::Call,
        ),
        (
            2_600,
            true,
            Action::Publish,
            Some("p1"),
            Outcome::ErrorResult,
            RecordKind::Call,
        ),
    ];
    for (at, side_effect, action, target, outcome, kind) in rows {
        let mut r = AuditRecord::new(
            uuid::Uuid::now_v7().to_string(),
            rfc3339(at),
            kind,
            "t",
            outcome,
        );
        r.tenant = Some("a".into());
        r.account = Some("a-1".into());
        r.side_effect = side_effect;
        r.action = Some(action);
        r.target = target.map(String::from);
        j.append(r).await.unwrap();
    }
    let got: Vec<(String, String, Millis)> = j
        .dispatches_since(1_000, &["dm", "comment"])
        .unwrap()
        .into_iter()
        .map(|d| {
            assert_eq!(d.account, "a-1");
            (d.action, d.target, d.at_ms)
        })
        .collect();
    assert_eq!(
        got,
        [
            ("dm".into(), "u1".into(), 2_000),
            ("comment".into(), "c\"1".into(), 2_500)
        ]
    );
}
