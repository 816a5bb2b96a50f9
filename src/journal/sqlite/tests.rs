use super::*;
use crate::clock::rfc3339;
use crate::journal::{HardStopKind, Outcome, RecordKind};
use serde_json::Value;
use std::sync::Arc;

fn record(tenant: &str, tool: &str) -> AuditRecord {
    let mut r = AuditRecord::new(
        uuid::Uuid::now_v7().to_string(),
        rfc3339(1_000),
        RecordKind::Call,
        tool,
        Outcome::Success,
    );
    r.tenant = Some(tenant.into());
    r
}

fn intent(key: &str, fp: &str) -> Intent {
    Intent {
        tenant: "a".into(),
        key: key.into(),
        fingerprint: fp.into(),
        tool: "t".into(),
        account: Some("a-1".into()),
        now_ms: 1_000,
    }
}

fn settle(key: &str, state: KeyState, result: Option<Value>) -> Settle {
    let mut audit = record("a", "t");
    audit.idempotency_key = Some(key.into());
    Settle {
        tenant: "a".into(),
        key: key.into(),
        state,
        result,
        audit,
        now_ms: 2_000,
    }
}

#[tokio::test]
async fn claim_settle_and_retry_states() {
    let dir = tempfile::tempdir().unwrap();
    let (j, rec) = SqliteJournal::open(dir.path(), 0).unwrap();
    assert_eq!(rec.in_doubt, 0);
    assert_eq!(
        j.claim(intent("k1", "f1")).await.unwrap(),
        Claim::Claimed { attempt: 1 }
    );
    // A second claim while dispatching is refused with the stored record.
    let Claim::Taken(k) = j.claim(intent("k1", "f1")).await.unwrap() else {
        panic!()
    };
    assert_eq!(k.state, KeyState::Dispatching);
    j.settle(settle("k1", KeyState::FailedRetryable, None))
        .await
        .unwrap();
    // Retryable with the same fingerprint: claimed again, attempt 2; another fingerprint: taken.
    assert!(matches!(
        j.claim(intent("k1", "other")).await.unwrap(),
        Claim::Taken(_)
    ));
    assert_eq!(
        j.claim(intent("k1", "f1")).await.unwrap(),
        Claim::Claimed { attempt: 2 }
    );
    j.settle(settle(
        "k1",
        KeyState::Succeeded,
        Some(serde_json::json!({"result": {"content": []}})),
    ))
    .await
    .unwrap();
    let k = j.key("a", "k1").unwrap().unwrap();
    assert_eq!((k.state, k.attempt), (KeyState::Succeeded, 2));
    assert_eq!(
        k.result.unwrap()["result"]["content"],
        serde_json::json!([])
    );
    // Settling a key that is not dispatching is an error and writes nothing.
    assert!(
        j.settle(settle("k1", KeyState::Succeeded, None))
            .await
            .is_err()
    );
    let v = j.verify().unwrap();
    assert_eq!((v.checked, v.broken), (2, None));
}

#[tokio::test]
async fn concurrent_writes_are_group_committed() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = SqliteJournal::open(dir.path(), 0).unwrap();
    let j = Arc::new(j);
    let tasks: Vec<_> = (0..400)
        .map(|i| {
            let j = j.clone();
            tokio::spawn(async move { j.append(record("a", &format!("t{i}"))).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let (commits, ops) = (
        j.stats().commits.load(std::sync::atomic::Ordering::Relaxed),
        j.stats().ops.load(std::sync::atomic::Ordering::Relaxed),
    );
    assert_eq!(ops, 400);
    assert!(
        commits < 400,
        "no batching: {commits} commits for {ops} ops"
    );
    let v = j.verify().unwrap();
    assert_eq!((v.checked, v.head.unwrap().0, v.broken), (400, 400, None));
}

#[tokio::test]
async fn restart_marks_dispatching_in_doubt_with_a_recovery_record() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (j, _) = SqliteJournal::open(dir.path(), 0).unwrap();
        j.claim(intent("k1", "f")).await.unwrap();
        j.claim(intent("k2", "f")).await.unwrap();
        j.settle(settle("k2", KeyState::Succeeded, None))
            .await
            .unwrap();
    }
    let (j, rec) = SqliteJournal::open(dir.path(), 5_000).unwrap();
    assert_eq!(rec.in_doubt, 1);
    assert_eq!(j.key("a", "k1").unwrap().unwrap().state, KeyState::InDoubt);
    assert_eq!(j.in_doubt().unwrap(), 1);
    assert!(matches!(
        j.claim(intent("k1", "f")).await.unwrap(),
        Claim::Taken(KeyRecord {
            state: KeyState::InDoubt,
            ..
        })
    ));
    let v = j.verify().unwrap();
    assert_eq!((v.checked, v.broken), (2, None));
    // An operator says it did not happen: the key may run again.
    let mut audit = record("a", "resolve");
    audit.kind = RecordKind::Operator;
    let r = Resolution {
        tenant: "a".into(),
        key: "k1".into(),
        happened: false,
        result: None,
        audit,
        now_ms: 6_000,
    };
    assert_eq!(
        j.resolve(r).await.unwrap().unwrap().state,
        KeyState::FailedRetryable
    );
    assert_eq!(
        j.claim(intent("k1", "f")).await.unwrap(),
        Claim::Claimed { attempt: 2 }
    );
}

#[tokio::test]
async fn hard_stops_trip_clear_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let stop = HardStop {
        id: "hs1".into(),
        kind: HardStopKind::WrongAccount,
        tenant: Some("a".into()),
        account: Some("b-1".into()),
        target: None,
        reason: "wrong account".into(),
        audit_id: None,
        created_at: rfc3339(1_000),
        created_ms: 1_000,
        cleared_at: None,
        cleared_by: None,
        clear_reason: None,
    };
    {
        let (j, _) = SqliteJournal::open(dir.path(), 0).unwrap();
        j.trip(stop.clone(), record("a", "x")).await.unwrap();
    }
    let (j, _) = SqliteJournal::open(dir.path(), 0).unwrap();
    assert_eq!(j.hard_stops(false).unwrap(), vec![stop]);
    let cleared = j
        .clear("hs1", "ops", "checked", record("a", "clear"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cleared.cleared_by.as_deref(), Some("ops"));
    assert!(j.hard_stops(false).unwrap().is_empty());
    assert_eq!(j.hard_stops(true).unwrap().len(), 1);
    assert!(
        j.clear("hs1", "ops", "again", record("a", "clear"))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn tampering_in_the_database_is_found_at_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = SqliteJournal::open(dir.path(), 0).unwrap();
    for i in 0..5 {
        j.append(record("a", &format!("t{i}"))).await.unwrap();
    }
    let raw = Connection::open(j.path()).unwrap();
    raw.execute(
        "UPDATE audit SET record = replace(record, '\"t2\"', '\"t9\"') WHERE seq = 3",
        [],
    )
    .unwrap();
    let v = j.verify().unwrap();
    assert_eq!(v.broken.unwrap().seq, 3);
    raw.execute(
        "UPDATE audit SET record = replace(record, '\"t9\"', '\"t2\"') WHERE seq = 3",
        [],
    )
    .unwrap();
    raw.execute("UPDATE audit SET tenant = 'b' WHERE seq = 4", [])
        .unwrap();
    assert_eq!(j.verify().unwrap().broken.unwrap().seq, 4);
    raw.execute("UPDATE audit SET tenant = 'a' WHERE seq = 4", [])
        .unwrap();
    raw.execute("DELETE FROM audit WHERE seq = 2", []).unwrap();
    assert_eq!(j.verify().unwrap().broken.unwrap().seq, 3);
}

#[tokio::test]
async fn verification_in_batches_reports_as_row_by_row() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = SqliteJournal::open(dir.path(), 0).unwrap();
    for i in 0..10 {
        j.append(record("a", &format!("t{i}"))).await.unwrap();
    }
    let raw = Connection::open(j.path()).unwrap();
    // Every batch size gives the row-by-row answer (batch size 1), break or error alike.
    let check = |want_seq: Option<u64>| {
        let one = format!("{:?}", verify::verify_batched(&raw, 1));
        for n in [2, 3, 4, 7, 10, 1024] {
            assert_eq!(
                format!("{:?}", verify::verify_batched(&raw, n)),
                one,
                "batch {n}"
            );
        }
        let v = verify::verify_batched(&raw, 3);
        match want_seq {
            Some(s) => assert_eq!(v.unwrap().broken.unwrap().seq, s),
            None => assert!(v.is_err(), "{v:?}"),
        }
    };
    let ok = verify::verify_batched(&raw, 3).unwrap();
    assert_eq!((ok.checked, ok.broken, ok.head.unwrap().0), (10, None, 10));
    // A record that is not text: an error, once the rows before it are checked.
    raw.execute("UPDATE audit SET record = X'00ff' WHERE seq = 7", [])
        .unwrap();
    check(None);
    raw.execute("UPDATE audit SET tenant = 'b' WHERE seq = 4", [])
        .unwrap();
    check(Some(4));
    raw.execute("UPDATE audit SET tenant = 'a' WHERE seq = 4", [])
        .unwrap();
    raw.execute("DELETE FROM audit WHERE seq = 7", []).unwrap();
    check(Some(8));
    raw.execute("DELETE FROM audit WHERE seq = 1", []).unwrap();
    check(Some(2));
}

#[tokio::test]
async fn pruning_keeps_recent_and_unsettled_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = SqliteJournal::open(dir.path(), 0).unwrap();
    for k in ["old", "doubt", "recent"] {
        j.claim(intent(k, "f")).await.unwrap();
    }
    j.settle(settle("old", KeyState::Succeeded, None))
        .await
        .unwrap();
    j.settle(settle("doubt", KeyState::InDoubt, None))
        .await
        .unwrap();
    let mut late = settle("recent", KeyState::Succeeded, None);
    late.now_ms = 10_000;
    j.settle(late).await.unwrap();
    assert_eq!(j.prune_keys(5_000).await.unwrap(), 1);
    assert!(j.key("a", "old").unwrap().is_none());
    assert!(j.key("a", "doubt").unwrap().is_some());
    assert!(j.key("a", "recent").unwrap().is_some());
}

#[tokio::test]
async fn stored_results_live_outside_the_key_row_and_go_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = SqliteJournal::open(dir.path(), 0).unwrap();
    let raw = Connection::open(dir.path().join("journal.db")).unwrap();
    let results = || -> i64 {
        raw.query_row("SELECT count(*) FROM idempotency_result", [], |r| r.get(0))
            .unwrap()
    };
    let ok = serde_json::json!({"result": {"content": [], "structuredContent": {"id": "p1"}}});
    j.claim(intent("k1", "f")).await.unwrap();
    j.settle(settle("k1", KeyState::Succeeded, Some(ok.clone())))
        .await
        .unwrap();
    assert_eq!(j.key("a", "k1").unwrap().unwrap().result, Some(ok.clone()));
    let inline: Option<String> = raw
        .query_row("SELECT result FROM idempotency WHERE key = 'k1'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!((inline, results()), (None, 1), "out of the key's row");

    // A key settled before migration 4 keeps its result inline and reads the same.
    raw.execute(
        "INSERT INTO idempotency (tenant, key, fingerprint, tool, state, attempt, result, created_ms, updated_ms)
         VALUES ('a', 'legacy', 'f', 't', 'failed_retryable', 1, ?1, 1000, 1000)",
        [ok.to_string()],
    )
    .unwrap();
    assert_eq!(
        j.key("a", "legacy").unwrap().unwrap().result,
        Some(ok.clone())
    );
    // A retry drops the failed attempt's result, wherever it was; its settle stores the new one.
    let err = serde_json::json!({"result": {"content": [], "isError": true}});
    j.claim(intent("k2", "f")).await.unwrap();
    j.settle(settle("k2", KeyState::FailedRetryable, Some(err)))
        .await
        .unwrap();
    assert_eq!(results(), 2);
    for k in ["legacy", "k2"] {
        assert_eq!(
            j.claim(intent(k, "f")).await.unwrap(),
            Claim::Claimed { attempt: 2 }
        );
        assert_eq!(j.key("a", k).unwrap().unwrap().result, None, "{k}");
    }
    assert_eq!(results(), 1);
    j.settle(settle("k2", KeyState::Succeeded, Some(ok.clone())))
        .await
        .unwrap();
    assert_eq!(j.key("a", "k2").unwrap().unwrap().result, Some(ok));
    // Pruning a key deletes its result.
    assert_eq!(results(), 2);
    assert_eq!(j.prune_keys(5_000).await.unwrap(), 2, "k1 and k2");
    assert_eq!(results(), 0);
}

#[test]
fn key_lookups_stay_prepared() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = SqliteJournal::open(dir.path(), 0).unwrap();
    drop(j);
    let conn = open_conn(&dir.path().join("journal.db")).unwrap();
    for key in ["k1", "k2", "k3"] {
        load_key(&conn, "a", key).unwrap();
    }
    let st = conn
        .prepare_cached(&format!("{KEY_SELECT} WHERE i.tenant = ?1 AND i.key = ?2"))
        .unwrap();
    assert_eq!(
        st.get_status(rusqlite::StatementStatus::RePrepare),
        0,
        "re-prepared on every lookup: a parse per call"
    );
}

#[tokio::test]
async fn a_version_3_journal_upgrades_with_its_keys_and_results() {
    let dir = tempfile::tempdir().unwrap();
    let ok = serde_json::json!({"result": {"content": [], "structuredContent": {"id": "p1"}}});
    {
        let mut conn = open_conn(&dir.path().join("journal.db")).unwrap();
        migrate_to(&mut conn, 3).unwrap();
        conn.execute(
            "INSERT INTO idempotency (tenant, key, fingerprint, tool, state, attempt, result, created_ms, updated_ms)
             VALUES ('a', 'old', 'f', 't', 'succeeded', 1, ?1, 1000, 1000)",
            [ok.to_string()],
        )
        .unwrap();
    }
    let (j, _) = SqliteJournal::open(dir.path(), 0).unwrap();
    let k = j.key("a", "old").unwrap().unwrap();
    assert_eq!((k.state, k.result), (KeyState::Succeeded, Some(ok)));
    assert_eq!(j.prune_keys(5_000).await.unwrap(), 1);
}

#[tokio::test]
async fn open_keys_have_partial_indexes_and_recovery_uses_them() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = SqliteJournal::open(dir.path(), 0).unwrap();
    drop(j);
    let conn = Connection::open(dir.path().join("journal.db")).unwrap();
    let indexes = names(
        &conn,
        "SELECT name FROM pragma_index_list('idempotency') ORDER BY name",
    );
    for gone in ["idempotency_state", "idempotency_updated"] {
        assert!(!indexes.contains(&gone.to_string()), "{indexes:?}");
    }
    for (query, index) in [
        (
            "SELECT * FROM idempotency WHERE state = 'dispatching'",
            "idempotency_dispatching",
        ),
        (
            "SELECT count(*) FROM idempotency WHERE state = 'in_doubt'",
            "idempotency_in_doubt",
        ),
        (
            "DELETE FROM idempotency WHERE created_ms < 5 AND updated_ms < 5 AND state = 'succeeded'",
            "idempotency_created",
        ),
    ] {
        assert_plan_uses(&conn, query, index);
    }
}

/// The first column of every row of `sql`, as text.
fn names(conn: &Connection, sql: &str) -> Vec<String> {
    conn.prepare(sql)
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Asserts that SQLite plans `query` (its parameters bound to NULL) with `index`.
fn assert_plan_uses(conn: &Connection, query: &str, index: &str) {
    let mut st = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {query}"))
        .unwrap();
    let nulls = vec![rusqlite::types::Null; st.parameter_count()];
    let plan: String = st
        .query_row(rusqlite::params_from_iter(nulls), |r| r.get(3))
        .unwrap();
    assert!(plan.contains(index), "{query}: {plan}");
}

#[tokio::test]
async fn the_checkpointer_folds_the_wal_into_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = SqliteJournal::open(dir.path(), 0).unwrap();
    let db = dir.path().join("journal.db");
    let before = std::fs::metadata(&db).unwrap().len();
    for _ in 0..300 {
        j.append(record("a", "t")).await.unwrap();
    }
    // Commits only reach the WAL; the database file grows when a checkpoint copies them.
    // (The timer is off in unit tests: the WAL hook's frame count triggers this one.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::fs::metadata(&db).unwrap().len() < before + 64 * 1024 {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint within 5 s: journal.db is still {} bytes",
            std::fs::metadata(&db).unwrap().len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

mod batch;
mod retention;
mod schema;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_starts_over_under_sustained_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = SqliteJournal::open(dir.path(), 0).unwrap();
    let j = Arc::new(j);
    let wal = dir.path().join("journal.db-wal");
    // Writers that never pause: without the writer finishing checkpoints, the checkpointer
    // never reaches the end of the WAL and the file only grows (to ~26 MiB here).
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let j = j.clone();
            tokio::spawn(async move {
                for _ in 0..250 {
                    j.append(record("a", "t")).await.unwrap();
                }
            })
        })
        .collect();
    let mut largest = 0;
    for t in tasks {
        while !t.is_finished() {
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        t.await.unwrap();
    }
    // Seen: ~3 MiB with the writer finishing checkpoints, ~26 MiB without.
    let cap = 8 << 20;
    assert!(largest < cap, "the WAL grew to {largest} bytes (cap {cap})");
    assert_eq!(j.verify().unwrap().checked, 32 * 250);
}
