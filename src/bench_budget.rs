//! `toolgate bench-budget`: the budget engine's cost, in process: per-event accounting, status
//! evaluation with 1M and 10M events in the 28-day window, resident memory, and the restart
//! path (journal open + budget load) over a journal of millions of audit records.
//!
//! Synthetic records look like the gateway's side-effect calls: a few tenants and platforms,
//! API and browser lanes, mostly successes with proof, some final rejections, some in-doubt
//! calls, and failed first attempts that a retry (attempt 2, same key) then settles.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::budget::{Budget, Engine, Scope};
use crate::call::FailureClass;
use crate::clock::{Clock, Millis, SystemClock, rfc3339};
use crate::config::{Action, Lane};
use crate::journal::sqlite::SqliteJournal;
use crate::journal::{AuditRecord, Outcome, Proof, RecordKind, Store};

/// Arguments of `toolgate bench-budget`.
#[derive(Debug, clap::Args)]
pub struct BenchBudgetArgs {
    /// Event counts to load into a fresh engine (each then measured for status cost and RSS).
    #[arg(long, value_delimiter = ',', default_value = "1000000,10000000")]
    pub events: Vec<u64>,
    /// `document()` calls timed per event count.
    #[arg(long, default_value_t = 200)]
    pub status_calls: usize,
    /// Journal sizes (audit records) at which the restart path is timed, built up in order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000000,3000000,10000000"
    )]
    pub journal_records: Vec<u64>,
    /// Skip the next journal size when building it is projected to take longer than this.
    #[arg(long, default_value_t = 600)]
    pub journal_budget_s: u64,
    /// Directory for the journal (a fresh subdirectory is created and removed).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

const DAY: Millis = 24 * 3_600_000;
const TENANTS: [&str; 4] = ["acme", "globex", "initech", "umbrella"];
const PLATFORMS: [&str; 3] = ["demo", "x", "linkedin"];

/// The records of synthetic call `i` of `n` spread over `[start, start + span)`: one record,
/// or a failed first attempt followed by its successful retry a few seconds later.
pub fn synth(i: u64, n: u64, start: Millis, span: Millis) -> Vec<AuditRecord> {
    let at = start + (i as i128 * span as i128 / n.max(1) as i128) as Millis;
    let tenant = TENANTS[(i % 4) as usize];
    let platform = PLATFORMS[(i % 3) as usize];
    let lane = if i.is_multiple_of(5) {
        Lane::Browser
    } else {
        Lane::Api
    };
    let key = format!("k-{i}");
    let record = |at: Millis, attempt: u32, outcome: Outcome, class: Option<FailureClass>| {
        let mut r = AuditRecord::new(
            uuid::Uuid::now_v7().to_string(),
            rfc3339(at),
            RecordKind::Call,
            "up__publish_post",
            outcome,
        );
        r.tenant = Some(tenant.into());
        r.account = Some(format!("{tenant}-1"));
        r.platform = Some(platform.into());
        r.lane = Some(lane);
        r.action = Some(Action::Publish);
        r.upstream = Some("up".into());
        r.side_effect = true;
        r.idempotency_key = Some(key.clone());
        r.fingerprint = Some(format!("{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        r.attempt = Some(attempt);
        r.failure_class = class;
        r.latency_ms = 40.0 + (i % 17) as f64;
        if outcome == Outcome::Success {
            r.proof = Proof {
                post_id: Some(format!("post_{i:x}")),
                url: Some(format!("https://demo.social/{tenant}-1/post/{i:x}")),
                screenshot: (lane == Lane::Browser)
                    .then(|| format!("https://demo.social/p/{i:x}.png")),
            };
        } else {
            r.reason = Some(match class {
                Some(FailureClass::PlatformRejected) => "rate limited".into(),
                _ => "upstream unreachable".into(),
            });
        }
        r
    };
    match i % 100 {
        // Final rejection: never retried.
        0 => vec![record(
            at,
            1,
            Outcome::ErrorResult,
            Some(FailureClass::PlatformRejected),
        )],
        // In doubt: sent, no answer.
        1 => vec![record(
            at,
            1,
            Outcome::InDoubt,
            Some(FailureClass::RunnerFailure),
        )],
        // Provably not executed, then retried successfully.
        2..=4 => vec![
            record(at, 1, Outcome::Failed, Some(FailureClass::ToolFailure)),
            record(at + 5_000, 2, Outcome::Success, None),
        ],
        _ => vec![record(at, 1, Outcome::Success, None)],
    }
}

/// Resident set size of this process in MiB (`VmRSS` from /proc/self/status).
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Loads `n` synthetic calls into a fresh engine, then times status evaluation.
fn engine_run(n: u64, status_calls: usize, now: Millis) -> Value {
    let set = crate::slo::embedded();
    let window = set
        .slos
        .iter()
        .map(|s| s.window.as_millis() as Millis)
        .max()
        .unwrap_or(28 * DAY);
    let rss_before = rss_mib();
    let mut engine = Engine::new(set);
    let (start, span) = (now - window + 60_000, window - 120_000);
    let mut observed = 0u64;
    let mut busy = Duration::ZERO;
    let mut chunk = Vec::with_capacity(20_000);
    let mut i = 0;
    while i < n {
        chunk.clear();
        let end = (i + 10_000).min(n);
        for j in i..end {
            chunk.extend(synth(j, n, start, span));
        }
        let t = Instant::now();
        for r in &chunk {
            engine.observe_record(r);
        }
        busy += t.elapsed();
        observed += chunk.len() as u64;
        i = end;
    }
    drop(chunk);
    let t = Instant::now();
    engine.tick(now);
    let tick_us = t.elapsed().as_secs_f64() * 1e6;
    let mut lat = Vec::with_capacity(status_calls);
    let mut doc_bytes = 0;
    for _ in 0..status_calls {
        let t = Instant::now();
        let doc = crate::budget::status::document(&engine, &Scope::All, &[], &[], 0, now);
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        doc_bytes = doc.to_string().len();
    }
    let state_bytes = serde_json::to_vec(engine.state())
        .map(|v| v.len())
        .unwrap_or(0);
    let rss_after = rss_mib();
    drop(engine);
    json!({
        "calls": n,
        "records": observed,
        "ns_per_record": (busy.as_secs_f64() * 1e9 / observed.max(1) as f64).round(),
        "tick_us": round1(tick_us),
        "status_p50_us": round1(pct(&mut lat, 0.5)),
        "status_p99_us": round1(pct(&mut lat, 0.99)),
        "status_doc_bytes": doc_bytes,
        "engine_state_bytes": state_bytes,
        "rss_before_mib": round1(rss_before),
        "rss_after_mib": round1(rss_after),
    })
}

fn db_size_mib(dir: &Path) -> f64 {
    ["journal.db", "journal.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len() as f64)
        .sum::<f64>()
        / (1024.0 * 1024.0)
}

/// Opens the journal and loads the budget, as `serve` does; returns the journal and seconds.
fn restart(dir: &Path, now: Millis) -> Result<(SqliteJournal, Budget, f64), String> {
    let t = Instant::now();
    let (journal, _) = SqliteJournal::open(dir, now).map_err(|e| e.to_string())?;
    let budget = Budget::load(crate::slo::embedded(), &journal, Box::new(|_| {}))
        .map_err(|e| e.to_string())?;
    Ok((journal, budget, t.elapsed().as_secs_f64()))
}

/// Waits until every write queued before it (such as a `put`) has committed.
async fn flush(journal: &SqliteJournal) -> Result<(), String> {
    journal
        .prune_keys(0)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Builds the journal up to each size in turn and times both restart paths there.
async fn journal_runs(args: &BenchBudgetArgs, dir: &Path, now: Millis) -> Result<Value, String> {
    let window = 28 * DAY;
    let (start, span) = (now - window + 60_000, window - 120_000);
    let target = args.journal_records.iter().copied().max().unwrap_or(0);
    let (mut journal, _) = SqliteJournal::open(dir, now).map_err(|e| e.to_string())?;
    let (mut written, mut i) = (0u64, 0u64);
    let mut build = Duration::ZERO;
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for &size in &args.journal_records {
        if written > 0 {
            let rate = written as f64 / build.as_secs_f64().max(1e-9);
            let projected = (size - written) as f64 / rate;
            if projected > args.journal_budget_s as f64 {
                skipped.push(json!({"records": size, "projected_build_s": projected.round()}));
                continue;
            }
        }
        let t = Instant::now();
        while written < size {
            let mut acks = Vec::with_capacity(10_000);
            while acks.len() < 10_000 && written < size {
                for r in synth(i, target, start, span) {
                    acks.push(journal.append(r));
                    written += 1;
                }
                i += 1;
            }
            for a in acks {
                a.await.map_err(|e| e.to_string())?;
            }
        }
        build += t.elapsed();
        // Worst case: no usable snapshot, every record is folded in.
        journal.put("budget_snapshot", Vec::new());
        flush(&journal).await?;
        drop(journal);
        let (j, budget, cold_s) = restart(dir, now)?;
        // What a restart does: the snapshot the running gateway saved, plus nothing after it.
        j.put("budget_snapshot", budget.snapshot());
        flush(&j).await?;
        drop((j, budget));
        let mut warm = Vec::new();
        let mut last = None;
        for _ in 0..3 {
            // Close the previous journal (its writer) before opening it again.
            drop(last.take());
            let (j, _b, s) = restart(dir, now)?;
            warm.push(s);
            last = Some(j);
        }
        journal = match last {
            Some(j) => j,
            None => SqliteJournal::open(dir, now).map_err(|e| e.to_string())?.0,
        };
        rows.push(json!({
            "records": written,
            "build_s": round1(build.as_secs_f64()),
            "records_per_s_built": (written as f64 / build.as_secs_f64().max(1e-9)).round(),
            "db_mib": round1(db_size_mib(dir)),
            "load_no_snapshot_s": (cold_s * 1000.0).round() / 1000.0,
            "restart_with_snapshot_s": (pct(&mut warm, 0.5) * 1000.0).round() / 1000.0,
            "restart_with_snapshot_max_s": (pct(&mut warm, 1.0) * 1000.0).round() / 1000.0,
        }));
        eprintln!(
            "bench-budget: journal with {written} records measured: {}",
            rows.last().unwrap_or(&Value::Null)
        );
    }
    drop(journal);
    Ok(json!({"results": rows, "skipped": skipped}))
}

/// Runs the benchmark and prints Markdown tables (and JSON with `--json`).
pub async fn run(args: BenchBudgetArgs) -> Result<(), String> {
    let now = SystemClock.now_ms();
    let mut engines = Vec::new();
    for &n in &args.events {
        let row = engine_run(n, args.status_calls, now);
        eprintln!("bench-budget: engine with {n} calls measured: {row}");
        engines.push(row);
    }
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("toolgate-bench-budget-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let journal = journal_runs(&args, &dir, now).await;
    let _ = std::fs::remove_dir_all(&dir);
    let report = json!({
        "toolgate": env!("CARGO_PKG_VERSION"),
        "status_calls": args.status_calls,
        "engine": engines,
        "journal": journal?,
    });
    print!("{}", format_tables(&report));
    crate::bench::write_json(args.json.as_deref(), &report)?;
    Ok(())
}

/// The report as two Markdown tables (engine, restart) and a line per skipped journal size.
pub fn format_tables(r: &Value) -> String {
    let mut out = String::from(
        "| calls in window | records observed | ns/record | tick µs | status p50 µs | status p99 µs | engine state (snapshot) bytes | RSS before MiB | RSS after MiB |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for e in r["engine"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            e["calls"],
            e["records"],
            e["ns_per_record"],
            e["tick_us"],
            e["status_p50_us"],
            e["status_p99_us"],
            e["engine_state_bytes"],
            e["rss_before_mib"],
            e["rss_after_mib"],
        ));
    }
    out.push_str("\n| journal records | journal.db MiB | build s | load without snapshot s | restart with snapshot s (median of 3) | max of 3 |\n|---:|---:|---:|---:|---:|---:|\n");
    for j in r["journal"]["results"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            j["records"],
            j["db_mib"],
            j["build_s"],
            j["load_no_snapshot_s"],
            j["restart_with_snapshot_s"],
            j["restart_with_snapshot_max_s"],
        ));
    }
    for s in r["journal"]["skipped"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\nskipped: journal with {} records (building it was projected to take {} s)\n",
            s["records"], s["projected_build_s"]
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchBudgetArgs,
    }

    #[test]
    fn arguments_parse_lists() {
        let a = Cli::parse_from(["x"]).args;
        assert_eq!(a.events, vec![1_000_000, 10_000_000]);
        let a = Cli::parse_from(["x", "--events", "10,20", "--journal-records", "5"]).args;
        assert_eq!((a.events, a.journal_records), (vec![10, 20], vec![5]));
    }

    #[test]
    fn synthetic_calls_mix_outcomes_and_retries_inside_the_span() {
        let all: Vec<AuditRecord> = (0..100)
            .flat_map(|i| synth(i, 100, 1_000, 10_000))
            .collect();
        assert_eq!(all.len(), 103);
        assert!(all.iter().any(|r| r.outcome == Outcome::ErrorResult));
        assert!(
            all.iter()
                .any(|r| r.attempt == Some(2) && r.outcome == Outcome::Success)
        );
        for r in &all {
            let at = crate::clock::parse_rfc3339(&r.time).unwrap();
            assert!((1_000..11_000 + 5_000).contains(&at), "{}", r.time);
        }
    }

    #[test]
    fn tables_show_engine_rows_and_skipped_sizes() {
        let r = json!({
            "engine": [{"calls": 10, "records": 11, "ns_per_record": 900.0, "tick_us": 1.0, "status_p50_us": 2.0,
                "status_p99_us": 3.0, "engine_state_bytes": 4, "rss_before_mib": 5.0, "rss_after_mib": 6.0}],
            "journal": {"results": [], "skipped": [{"records": 7, "projected_build_s": 8.0}]},
        });
        let t = format_tables(&r);
        assert!(
            t.contains("| 10 | 11 | 900.0 | 1.0 | 2.0 | 3.0 | 4 | 5.0 | 6.0 |"),
            "{t}"
        );
        assert!(t.contains("skipped: journal with 7 records"), "{t}");
    }

    #[tokio::test]
    async fn a_tiny_run_measures_every_part() {
        let dir = std::env::temp_dir().join(format!("tg-bb-test-{}", std::process::id()));
        let args = BenchBudgetArgs {
            events: vec![200],
            status_calls: 2,
            journal_records: vec![150],
            journal_budget_s: 60,
            dir: Some(dir.clone()),
            json: None,
        };
        let now = SystemClock.now_ms();
        let e = engine_run(200, 2, now);
        assert_eq!(e["records"], 206);
        std::fs::create_dir_all(&dir).unwrap();
        let j = journal_runs(&args, &dir, now).await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(j["results"][0]["records"], 150, "{j}");
    }
}
