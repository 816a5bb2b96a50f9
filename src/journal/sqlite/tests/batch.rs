//! Group commit details: a failing op undone alone, lazy writes batched without fsync,
//! flush as a barrier, and a clean stop losing nothing queued.

use super::*;
use crate::journal::sqlite::writer::{Op, Writer};
use tokio::sync::oneshot;

fn writer(dir: &std::path::Path) -> Writer {
    let mut conn = open_conn(&dir.join("journal.db")).unwrap();
    migrate(&mut conn).unwrap();
    Writer::new(conn).unwrap()
}

#[tokio::test]
async fn a_failing_op_is_undone_alone_and_the_rest_of_its_batch_commits() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = writer(dir.path());
    let (claim, claimed) = oneshot::channel();
    let (bad, bad_rx) = oneshot::channel();
    let (append, appended) = oneshot::channel();
    let (good, good_rx) = oneshot::channel();
    w.commit_batch(vec![
        Op::Claim(intent("k1", "f"), claim),
        // Never claimed: not dispatching, so this settle fails (after nothing was written).
        Op::Settle(Box::new(settle("k2", KeyState::Succeeded, None)), bad),
        Op::Append(Box::new(record("a", "t")), Some(append)),
        Op::Settle(Box::new(settle("k1", KeyState::Succeeded, None)), good),
    ]);
    assert_eq!(
        claimed.await.unwrap().unwrap(),
        Claim::Claimed { attempt: 1 }
    );
    let err = bad_rx.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("not dispatching"), "{err}");
    appended.await.unwrap().unwrap();
    good_rx.await.unwrap().unwrap();
    // The first, savepoint-free attempt was rolled back: one commit, by the careful rerun.
    assert_eq!(
        w.stats.commits.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    drop(w);
    let (j, _) = SqliteJournal::open(dir.path(), 0).unwrap();
    assert_eq!(
        j.key("a", "k1").unwrap().unwrap().state,
        KeyState::Succeeded
    );
    assert!(j.key("a", "k2").unwrap().is_none());
    let v = j.verify().unwrap();
    assert_eq!(
        (v.checked, v.broken.is_none()),
        (2, true),
        "gapless chain: {v:?}"
    );
}

#[tokio::test]
async fn lazy_only_batches_skip_the_fsync_and_waited_on_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = writer(dir.path());
    assert_eq!(w.synchronous(), 2, "FULL by default");
    w.commit_batch(vec![
        Op::Append(Box::new(record("a", "t")), None),
        Op::Put("k".into(), b"v".to_vec()),
    ]);
    assert_eq!(
        w.synchronous(),
        1,
        "a batch nobody waits on commits without fsync"
    );
    let (tx, rx) = oneshot::channel();
    w.commit_batch(vec![
        Op::Append(Box::new(record("a", "t")), None),
        Op::Append(Box::new(record("a", "t")), Some(tx)),
    ]);
    rx.await.unwrap().unwrap();
    assert_eq!(
        w.synchronous(),
        2,
        "one waited-on write makes the batch durable"
    );
}

#[tokio::test]
async fn lazy_writes_share_commits_and_flush_makes_them_visible() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = SqliteJournal::open(dir.path(), 0).unwrap();
    for i in 0..300 {
        j.append_later(record("a", &format!("t{i}")));
    }
    j.flush().await.unwrap();
    assert_eq!(j.records_after(0, 1000).unwrap().len(), 300);
    let commits = j.stats().commits.load(std::sync::atomic::Ordering::Relaxed);
    let ops = j.stats().ops.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(ops, 300, "the flush itself is not a write");
    assert!(commits <= 10, "{commits} commits for 300 lazy writes");
    // A waited-on write never waits out the linger: it is answered well within it.
    j.append_later(record("a", "lazy"));
    let started = std::time::Instant::now();
    j.append(record("a", "acked")).await.unwrap();
    assert_eq!(j.records_after(300, 10).unwrap().len(), 2);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn queued_lazy_writes_are_committed_when_the_journal_closes() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (j, _) = SqliteJournal::open(dir.path(), 0).unwrap();
        for i in 0..50 {
            j.append_later(record("a", &format!("t{i}")));
        }
        j.flush().await.unwrap();
        for i in 50..60 {
            j.append_later(record("a", &format!("t{i}")));
        }
        // Dropped here: the writer sees its channel close and commits what is queued.
    }
    // The writer thread finishes on its own; wait for its last commit (bounded).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (j, _) = SqliteJournal::open(dir.path(), 0).unwrap();
        let n = j.records_after(0, 1000).unwrap().len();
        if n == 60 || std::time::Instant::now() > deadline {
            assert_eq!(n, 60);
            break;
        }
        drop(j);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn lazy_writes_to_a_stopped_writer_are_dropped_not_hoarded() {
    let (tx, rx) = std::sync::mpsc::channel();
    drop(rx);
    let (stop, _stopped) = std::sync::mpsc::channel();
    let j = SqliteJournal {
        path: PathBuf::new(),
        tx,
        lazy: Default::default(),
        readers: Mutex::new(Vec::new()),
        stats: Default::default(),
        feed: Default::default(),
        _stop_checkpoints: stop,
    };
    for i in 0..1000 {
        j.append_later(record("a", &format!("t{i}")));
        j.put("k", Vec::new());
    }
    assert!(j.lazy.take().len() < crate::journal::sqlite::writer::LAZY_BATCH);
}
