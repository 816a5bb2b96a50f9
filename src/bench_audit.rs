//! `toolgate bench-audit`: builds a journal of N realistic audit records through the real
//! journal writer, then times the real `toolgate audit export` (JSON Lines and CSV, to a file)
//! and `toolgate audit verify` (of the export and of `--data`) as child processes, with each
//! child's peak resident memory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::bench_budget::synth;
use crate::clock::{Clock, Millis, SystemClock};
use crate::journal::Store;
use crate::journal::sqlite::SqliteJournal;

/// Arguments of `toolgate bench-audit`.
#[derive(Debug, clap::Args)]
pub struct BenchAuditArgs {
    /// Audit records in the journal.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Runs of each command (the table shows the best and the median).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Directory for the journal and the exports (a fresh subdirectory, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Reuse the journal in this data directory if it already holds --records records (and
    /// keep it afterwards); otherwise it is built there.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

const DAY: Millis = 24 * 3_600_000;

/// Appends `n` synthetic side-effect records (bench-budget's mix) through the journal
/// writer, 10,000 in flight; returns seconds.
async fn build(dir: &Path, n: u64, now: Millis) -> Result<f64, String> {
    let (journal, _) = SqliteJournal::open(dir, now).map_err(|e| e.to_string())?;
    let (start, span) = (now - 27 * DAY, 26 * DAY);
    let t = Instant::now();
    let (mut written, mut i) = (0u64, 0u64);
    while written < n {
        let mut acks = Vec::with_capacity(10_000);
        while acks.len() < 10_000 && written < n {
            for r in synth(i, n, start, span) {
                if written < n {
                    acks.push(journal.append(r));
                    written += 1;
                }
            }
            i += 1;
        }
        for a in acks {
            a.await.map_err(|e| e.to_string())?;
        }
    }
    Ok(t.elapsed().as_secs_f64())
}

/// Peak resident memory (`VmHWM`) and current anonymous resident memory (`RssAnon`: heap and
/// stacks, without file-backed pages such as a memory-mapped database) of process `pid` in
/// KiB, if it is still there.
fn mem_kib(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
    };
    Some((field("VmHWM:")?, field("RssAnon:").unwrap_or(0)))
}

/// Runs `toolgate ARGS` (this binary) to completion: (seconds, peak RSS MiB, peak anonymous
/// RSS MiB, stdout).
fn timed(args: &[&str]) -> Result<(f64, f64, f64, String), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let t = Instant::now();
    let mut child = Command::new(exe)
        .args(["--log-level", "warn"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    // VmHWM only grows; the last reading before the child exits is its peak. RssAnon is
    // the current value, its peak the largest sample (every 2 ms, so a spike in the final
    // 2 ms could be missed).
    let (mut peak, mut anon) = (0u64, 0u64);
    let status = loop {
        if let Some((k, a)) = mem_kib(child.id()) {
            peak = peak.max(k);
            anon = anon.max(a);
        }
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break st;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let secs = t.elapsed().as_secs_f64();
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !status.success() {
        return Err(format!(
            "toolgate {} failed ({status}): {}{}",
            args.join(" "),
            stdout,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok((secs, peak as f64 / 1024.0, anon as f64 / 1024.0, stdout))
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Times one command `runs` times; the row of the table.
fn measure(
    what: &str,
    args: &[&str],
    n: u64,
    runs: usize,
    file: Option<&Path>,
) -> Result<Value, String> {
    let (mut secs, mut rss, mut anon) = (Vec::new(), Vec::new(), Vec::new());
    let mut stdout = String::new();
    for _ in 0..runs.max(1) {
        let (s, r, a, o) = timed(args)?;
        secs.push(s);
        rss.push(r);
        anon.push(a);
        stdout = o;
    }
    let best = secs.iter().copied().fold(f64::INFINITY, f64::min);
    let med = median(&mut secs.clone());
    let row = json!({
        "what": what,
        "command": format!("toolgate {}", args.join(" ")),
        "runs": secs.len(),
        "best_s": round(best, 3),
        "median_s": round(med, 3),
        "records_per_s_best": (n as f64 / best).round() as u64,
        "records_per_s_median": (n as f64 / med).round() as u64,
        "peak_rss_mib_max": round(rss.iter().copied().fold(0.0, f64::max), 1),
        "peak_anon_mib_max": round(anon.iter().copied().fold(0.0, f64::max), 1),
        "file_mib": file.and_then(|f| std::fs::metadata(f).ok()).map(|m| round(m.len() as f64 / 1048576.0, 1)),
        "output": stdout.trim(),
    });
    eprintln!("bench-audit: {row}");
    Ok(row)
}

/// Runs the benchmark and prints a Markdown table (and JSON with `--json`).
pub async fn run(args: BenchAuditArgs) -> Result<(), String> {
    let now = SystemClock.now_ms();
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = base.join(format!("toolgate-bench-audit-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let data = args.data.clone().unwrap_or_else(|| work.join("data"));
    std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
    let result = bench(&args, &data, &work, now).await;
    let _ = std::fs::remove_dir_all(&work);
    let report = result?;
    print!("{}", format_table(&report));
    crate::bench::write_json(args.json.as_deref(), &report)?;
    Ok(())
}

async fn bench(
    args: &BenchAuditArgs,
    data: &Path,
    work: &Path,
    now: Millis,
) -> Result<Value, String> {
    let n = args.records;
    let existing = match crate::journal::export::open_read_only(data) {
        Ok(c) => crate::journal::export::chain_head(&c)
            .map(|h| h.0)
            .unwrap_or(0),
        Err(_) => 0,
    };
    let build_s = if existing == n {
        eprintln!(
            "bench-audit: reusing the {n}-record journal in {}",
            data.display()
        );
        None
    } else if existing == 0 {
        let s = build(data, n, now).await?;
        eprintln!("bench-audit: built {n} records in {s:.1} s");
        Some(s)
    } else {
        return Err(format!(
            "{} holds {existing} records, not {n}",
            data.display()
        ));
    };
    let d = data.to_str().ok_or("data dir is not UTF-8")?;
    let jsonl = work.join("export.jsonl");
    let csv = work.join("export.csv");
    let (j, c) = (
        jsonl.to_str().unwrap_or_default(),
        csv.to_str().unwrap_or_default(),
    );
    let runs = args.runs;
    let rows = vec![
        measure(
            "export JSON Lines to a file",
            &["audit", "export", "--data", d, "-o", j],
            n,
            runs,
            Some(&jsonl),
        )?,
        measure(
            "export CSV to a file",
            &["audit", "export", "--data", d, "--format", "csv", "-o", c],
            n,
            runs,
            Some(&csv),
        )?,
        measure(
            "verify the JSON Lines export",
            &["audit", "verify", j],
            n,
            runs,
            None,
        )?,
        measure(
            "verify --data (the SQLite journal)",
            &["audit", "verify", "--data", d],
            n,
            runs,
            None,
        )?,
    ];
    let db_mib = ["journal.db", "journal.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(data.join(f)).ok())
        .map(|m| m.len() as f64)
        .sum::<f64>()
        / 1048576.0;
    Ok(json!({
        "toolgate": env!("CARGO_PKG_VERSION"),
        "records": n,
        "build_s": build_s.map(|s| round(s, 1)),
        "db_mib": round(db_mib, 1),
        "results": rows,
    }))
}

/// The report as a Markdown table.
pub fn format_table(r: &Value) -> String {
    let mut out = format!(
        "journal: {} audit records, {} MiB (build {} s)\n\n| what | best s | median s | records/s (best) | records/s (median) | peak RSS MiB | peak anon MiB | file MiB |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
        r["records"], r["db_mib"], r["build_s"]
    );
    for row in r["results"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            row["what"].as_str().unwrap_or_default(),
            row["best_s"],
            row["median_s"],
            row["records_per_s_best"],
            row["records_per_s_median"],
            row["peak_rss_mib_max"],
            if row["peak_anon_mib_max"].is_null() {
                "-".to_string()
            } else {
                row["peak_anon_mib_max"].to_string()
            },
            if row["file_mib"].is_null() {
                "-".to_string()
            } else {
                row["file_mib"].to_string()
            },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_every_row() {
        let r = json!({"records": 10, "db_mib": 1.0, "build_s": 0.1, "results": [
            {"what": "export", "best_s": 1.0, "median_s": 1.0, "records_per_s_best": 10.0,
             "records_per_s_median": 10.0, "peak_rss_mib_max": 5.0, "file_mib": 2.0},
            {"what": "verify", "best_s": 1.0, "median_s": 1.0, "records_per_s_best": 10.0,
             "records_per_s_median": 10.0, "peak_rss_mib_max": 5.0, "file_mib": null}]});
        let t = format_table(&r);
        assert!(
            t.contains("| export | 1.0 |") && t.contains("| verify |"),
            "{t}"
        );
        assert!(t.contains("| - |"), "{t}");
    }

    #[tokio::test]
    async fn a_small_journal_is_built_through_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemClock.now_ms();
        build(dir.path(), 250, now).await.unwrap();
        let conn = crate::journal::export::open_read_only(dir.path()).unwrap();
        assert_eq!(crate::journal::export::chain_head(&conn).unwrap().0, 250);
        let v = crate::journal::sqlite::verify_conn(&conn).unwrap();
        assert_eq!((v.checked, v.broken), (250, None));
    }
}
