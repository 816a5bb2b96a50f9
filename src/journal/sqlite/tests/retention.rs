//! Retention on a real journal file with explicit times: prefix-only deletion in batches,
//! the sealed `audit.prune` record, verification of what remains, restart, tampering.

use super::*;
use crate::journal::{GENESIS_HASH, PRUNE_TOOL};
use crate::maintenance::prune_audit;

const DAY: Millis = 86_400_000;

/// A call record at `at_ms`.
fn at(at_ms: Millis, tool: &str) -> AuditRecord {
    let mut r = record("a", tool);
    r.time = rfc3339(at_ms);
    r
}

/// A journal holding `times.len()` records, record `i + 1` at `times[i]`.
async fn journal(dir: &Path, times: &[Millis]) -> SqliteJournal {
    let (j, _) = SqliteJournal::open(dir, 0).unwrap();
    for (i, t) in times.iter().enumerate() {
        j.append(at(*t, &format!("t{}", i + 1))).await.unwrap();
    }
    j
}

fn seqs(j: &SqliteJournal) -> Vec<u64> {
    j.records_after(0, 1000)
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect()
}

#[tokio::test]
async fn old_prefix_goes_in_batches_and_what_remains_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let now = 200 * DAY;
    // 20 records 100 days old, 5 from yesterday; keep 90 days.
    let mut times = vec![100 * DAY; 20];
    times.extend([now - DAY; 5]);
    let j = journal(dir.path(), &times).await;
    let keep = std::time::Duration::from_secs(90 * 86_400);
    let run = prune_audit(&j, now, keep, 8).await.unwrap();
    assert_eq!(
        (run.deleted, run.batches, run.oldest_seq),
        (20, 3, Some(21))
    );
    // Kept: 21..=25, then one audit.prune record per batch (26, 27, 28).
    assert_eq!(seqs(&j), (21..=28).collect::<Vec<_>>());
    let kept = j.records_after(0, 1000).unwrap();
    let last = kept.last().unwrap();
    assert_eq!(
        (last.tool.as_str(), last.time.clone()),
        (PRUNE_TOOL, rfc3339(now))
    );
    let (cut, hash) = last.prune_anchor().unwrap();
    assert_eq!((cut, &hash), (20, &kept[0].prev_hash));
    let v = j.verify().unwrap();
    assert_eq!(v.broken, None);
    assert_eq!((v.checked, v.head.unwrap().0), (8, 28));
    let stats = j.write_stats();
    assert_eq!((stats.oldest_seq, stats.pruned), (21, 20));
    // Nothing old is left: a second run deletes and writes nothing.
    assert_eq!(prune_audit(&j, now, keep, 8).await.unwrap().deleted, 0);
    assert_eq!(seqs(&j).len(), 8);

    // After a restart the chain goes on from the head, and the budget rebuild reads what is kept.
    drop(j);
    let (j, _) = SqliteJournal::open(dir.path(), now).unwrap();
    j.append(at(now, "after")).await.unwrap();
    assert_eq!(j.verify().unwrap().head.unwrap().0, 29);
    assert_eq!(j.verify().unwrap().broken, None);
    let budget = crate::budget::Budget::load(crate::slo::embedded(), &j, Box::new(|_| {})).unwrap();
    drop(budget);
}

#[tokio::test]
async fn a_young_record_stops_the_prefix_and_all_old_records_can_go() {
    let dir = tempfile::tempdir().unwrap();
    let now = 200 * DAY;
    let keep = std::time::Duration::from_secs(90 * 86_400);
    // Record 3 is young (a clock step back while it was written): only 1..=2 may go.
    let j = journal(dir.path(), &[DAY, DAY, now, DAY, DAY]).await;
    let run = prune_audit(&j, now, keep, 100).await.unwrap();
    assert_eq!((run.deleted, run.oldest_seq), (2, Some(3)));
    assert_eq!(j.verify().unwrap().broken, None);
    drop(j);

    // Every record old: all go; the prune record (the new head) keeps the chain alive.
    let dir = tempfile::tempdir().unwrap();
    let j = journal(dir.path(), &[DAY, DAY, DAY]).await;
    let run = prune_audit(&j, now, keep, 100).await.unwrap();
    assert_eq!(run.deleted, 3);
    assert_eq!(seqs(&j), vec![4]);
    assert_eq!(j.verify().unwrap().broken, None);
    drop(j);
    let (j, _) = SqliteJournal::open(dir.path(), now).unwrap();
    j.append(at(now, "next")).await.unwrap();
    let v = j.verify().unwrap();
    assert_eq!((v.broken, v.checked), (None, 2));
}

#[tokio::test]
async fn deletion_and_tampering_after_retention_are_still_found() {
    let dir = tempfile::tempdir().unwrap();
    let now = 200 * DAY;
    let keep = std::time::Duration::from_secs(90 * 86_400);
    let mut times = vec![DAY; 4];
    times.extend([now; 4]);
    let j = journal(dir.path(), &times).await;
    prune_audit(&j, now, keep, 100).await.unwrap();
    // Kept: 5..=8 and the prune record 9.
    assert_eq!(seqs(&j), (5..=9).collect::<Vec<_>>());
    let raw = Connection::open(j.path()).unwrap();

    // The oldest kept record deleted: retention did not say so.
    raw.execute_batch(
        "CREATE TEMP TABLE saved AS SELECT * FROM audit WHERE seq = 5;
         DELETE FROM audit WHERE seq = 5;",
    )
    .unwrap();
    let b = j.verify().unwrap().broken.unwrap();
    assert_eq!(b.seq, 6, "{}", b.why);
    assert!(b.why.contains("starts at seq 5"), "{}", b.why);
    raw.execute_batch("INSERT INTO audit SELECT * FROM saved;")
        .unwrap();
    assert_eq!(j.verify().unwrap().broken, None);

    // A kept record changed.
    raw.execute(
        "UPDATE audit SET record = replace(record, '\"t7\"', '\"tx\"') WHERE seq = 7",
        [],
    )
    .unwrap();
    assert_eq!(j.verify().unwrap().broken.unwrap().seq, 7);
    raw.execute(
        "UPDATE audit SET record = replace(record, '\"tx\"', '\"t7\"') WHERE seq = 7",
        [],
    )
    .unwrap();

    // The prune record rewritten to cover a deeper cut: its own hash breaks.
    raw.execute(
        "UPDATE audit SET record = replace(record, '\"target\":\"4:', '\"target\":\"5:') WHERE seq = 9",
        [],
    )
    .unwrap();
    assert_eq!(j.verify().unwrap().broken.unwrap().seq, 9);
}

/// Exports the journal in `dir` as JSON Lines.
fn export_jsonl(dir: &Path) -> String {
    use crate::journal::export::{Filters, Format, export, open_read_only};
    let conn = open_read_only(dir).unwrap();
    let mut out = Vec::new();
    export(&conn, &Filters::default(), Format::Jsonl, "x", &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn exports_of_a_pruned_journal_verify_from_their_anchor() {
    use crate::journal::export::verify_jsonl;
    let dir = tempfile::tempdir().unwrap();
    let now = 200 * DAY;
    let keep = std::time::Duration::from_secs(90 * 86_400);
    let mut times = vec![DAY; 4];
    times.extend([now; 3]);
    let j = journal(dir.path(), &times).await;
    let before = export_jsonl(dir.path());
    let old_anchor = {
        let h: Value = serde_json::from_str(before.lines().nth(4).unwrap()).unwrap();
        (4u64, h["hash"].as_str().unwrap().to_string())
    };
    prune_audit(&j, now, keep, 100).await.unwrap();
    let full = export_jsonl(dir.path());
    let header: Value = serde_json::from_str(full.lines().next().unwrap()).unwrap();
    assert_eq!(header["chain"]["first_seq"], 5);
    assert_eq!(header["chain"]["anchor_prev_hash"], old_anchor.1.as_str());
    let ok = verify_jsonl(full.as_bytes(), None).unwrap();
    assert_eq!((ok.count, ok.first_seq, ok.last_seq), (4, Some(5), Some(8)));
    // An anchor taken before pruning still checks the pruned prefix's head.
    assert!(verify_jsonl(full.as_bytes(), Some(old_anchor.clone())).is_ok());
    let wrong = Some((4, GENESIS_HASH.to_string()));
    assert!(verify_jsonl(full.as_bytes(), wrong).is_err());
    let gone = verify_jsonl(full.as_bytes(), Some((2, old_anchor.1.clone()))).unwrap_err();
    assert!(gone.to_string().contains("deleted by retention"), "{gone}");

    // The first kept record cut from the file (header adjusted to match): the sealed prune
    // record still names seq 4 as the pruned head.
    let lines: Vec<&str> = full.lines().collect();
    let second: AuditRecord =
        serde_json::from_str(&lines[2].replacen("\"type\":\"record\",", "", 1)).unwrap();
    let forged_header = lines[0]
        .replace("\"first_seq\":5", "\"first_seq\":6")
        .replace(&old_anchor.1, &second.prev_hash);
    let mut cut = vec![forged_header.as_str()];
    cut.extend(&lines[2..lines.len() - 1]);
    let trailer = lines
        .last()
        .unwrap()
        .replace("\"count\":4", "\"count\":3")
        .replace("\"first_seq\":5", "\"first_seq\":6");
    cut.push(&trailer);
    let b = verify_jsonl(cut.join("\n").as_bytes(), None).unwrap_err();
    assert!(b.to_string().contains("audit.prune"), "{b}");
    // Without the header change, the missing first record is found at once.
    let mut cut = vec![lines[0]];
    cut.extend(&lines[2..]);
    assert!(verify_jsonl(cut.join("\n").as_bytes(), None).is_err());
}
