//! `toolgate bench-side-effects`: durable side-effect calls (`publish_post`) measured direct
//! and through toolgate, interleaved, with the journal's group commit made visible.
//!
//! Every proxied call carries a unique `_meta.idempotency_key`, so it runs the whole side-effect
//! path: account binding, idempotency claim (durable intent, fsync'd group commit), forward,
//! durable outcome and audit record. The journal's commit and write counters come from the
//! gateway's `GET /readyz` before and after each proxied phase; at the end the audit records in
//! `journal.db` are counted and compared with the proxied calls made.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

/// Arguments of `toolgate bench-side-effects`.
#[derive(Debug, clap::Args)]
pub struct BenchSideEffectsArgs {
    /// Concurrency levels (in-flight calls) to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub concurrency: Vec<usize>,
    /// Direct/proxied phase pairs per concurrency level.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Length of one phase, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub phase_ms: u64,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Tokio worker threads of the gateway under test (its `TOOLGATE_WORKER_THREADS`).
    #[arg(long)]
    pub gateway_threads: Option<usize>,
    /// Load generator: `lean` (one pooled session, least CPU) or `rmcp` (one rmcp client per
    /// in-flight call, as a typical runner).
    #[arg(long, value_enum, default_value = "lean")]
    pub client: ClientKind,
    /// Offer calls at this total rate (calls/s; open loop, at most `concurrency` in flight)
    /// instead of back to back: the latency added at a given load rather than at saturation.
    /// Calls that start late because the target fell behind are timed from their scheduled
    /// start.
    #[arg(long)]
    pub rate: Option<f64>,
}

const DIRECT_TOOL: &str = "publish_post";
const PROXIED_TOOL: &str = "up__publish_post";

use crate::bench::{
    JOURNAL_THREAD, Series, TOKEN, cpu_seconds, free_port, run_phase, spawn, start_gateway,
    thread_cpu_seconds,
};
use crate::bench_client::{ClientKind, Load};

/// The journal's (transactions, writes) counters from the gateway's `/readyz` body.
async fn journal_stats(http: &reqwest::Client, admin: SocketAddr) -> Result<(u64, u64), String> {
    let body: Value = http
        .get(format!("http://{admin}/readyz"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let j = &body["journal"];
    match (j["transactions"].as_u64(), j["writes"].as_u64()) {
        (Some(t), Some(w)) => Ok((t, w)),
        _ => Err(format!("/readyz has no journal write stats: {body}")),
    }
}

/// Runs `conc` workers for `phase`, each publishing back to back with a unique text and
/// (proxied) a unique idempotency key drawn from `seq`.
async fn phase(
    load: &Load,
    conc: usize,
    tool: &'static str,
    phase: Duration,
    rate: Option<f64>,
    seq: &Arc<AtomicU64>,
    into: &mut Series,
) {
    let seq = seq.clone();
    run_phase(load, conc, phase, rate, into, move |_, _| {
        let n = seq.fetch_add(1, Ordering::Relaxed);
        let args = json!({"account_id": "bench-1", "text": format!("bench post {n}")});
        let mut p = CallToolRequestParams::new(tool)
            .with_arguments(args.as_object().cloned().unwrap_or_default());
        if tool == PROXIED_TOOL {
            let meta = json!({"idempotency_key": format!("bench-{n}")});
            p.meta = serde_json::from_value(meta).ok();
        }
        p
    })
    .await
}

/// Runs the benchmark and prints a Markdown table (and JSON with `--json`).
pub async fn run(args: BenchSideEffectsArgs) -> Result<(), String> {
    if let Some(rate) = args.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        return Err(format!("--rate {rate}: expected calls per second above 0"));
    }
    let dir = std::env::temp_dir().join(format!("toolgate-bench-se-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let result = measure(&args, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    let report = result?;
    print!("{}", format_table(&report));
    crate::bench::write_json(args.json.as_deref(), &report)?;
    Ok(())
}

async fn measure(args: &BenchSideEffectsArgs, dir: &Path) -> Result<Value, String> {
    let up_addr = free_port()?;
    let upstream = spawn(&["demo-upstream", "--http", &up_addr.to_string()], &[])?;
    let up_url = format!("http://{up_addr}/mcp");
    let data = dir.join("data");
    let cfg_path = write_config(dir, &data, &up_url)?;
    let (gateway, mcp, admin) = start_gateway(&cfg_path, args.gateway_threads).await?;
    let gw_pid = gateway.0.id();
    let gw_url = format!("http://{mcp}/mcp");
    let http = reqwest::Client::new();
    let seq = Arc::new(AtomicU64::new(0));
    // Proxied calls made (successful or not), warm-ups included: each leaves one audit record.
    let mut proxied_calls = 0u64;

    let mut rows = Vec::new();
    for &conc in &args.concurrency {
        let direct = Load::open(args.client, &up_url, None, conc).await?;
        let proxied = Load::open(args.client, &gw_url, Some(TOKEN), conc).await?;
        // Warm-up of both paths (connections, allocator, caches), not recorded.
        let warm = Duration::from_millis(300);
        phase(
            &direct,
            conc,
            DIRECT_TOOL,
            warm,
            args.rate,
            &seq,
            &mut Series::default(),
        )
        .await;
        let mut w = Series::default();
        phase(&proxied, conc, PROXIED_TOOL, warm, args.rate, &seq, &mut w).await;
        proxied_calls += w.attempted();
        let (mut d, mut p) = (Series::default(), Series::default());
        let (mut commits, mut writes) = (0u64, 0u64);
        let (mut cpu, mut journal_cpu) = (0.0, 0.0);
        let phase_len = Duration::from_millis(args.phase_ms);
        for _ in 0..args.rounds {
            phase(
                &direct,
                conc,
                DIRECT_TOOL,
                phase_len,
                args.rate,
                &seq,
                &mut d,
            )
            .await;
            let before = journal_stats(&http, admin).await?;
            let cpu0 = (
                cpu_seconds(gw_pid),
                thread_cpu_seconds(gw_pid, JOURNAL_THREAD),
            );
            phase(
                &proxied,
                conc,
                PROXIED_TOOL,
                phase_len,
                args.rate,
                &seq,
                &mut p,
            )
            .await;
            cpu += cpu_seconds(gw_pid) - cpu0.0;
            journal_cpu += thread_cpu_seconds(gw_pid, JOURNAL_THREAD) - cpu0.1;
            let after = journal_stats(&http, admin).await?;
            commits += after.0 - before.0;
            writes += after.1 - before.1;
        }
        let ok_calls = p.lat_us.len().max(1) as f64;
        let per_call = |s: f64| (s * 1e6 / ok_calls).round();
        proxied_calls += p.attempted();
        let secs = p.busy.as_secs_f64().max(1e-9);
        rows.push(json!({
            "concurrency": conc,
            "direct": {"calls": d.lat_us.len(), "errors": d.errors, "p50_us": d.pct(0.5), "p99_us": d.pct(0.99), "calls_per_s": d.rate().round()},
            "proxied": {"calls": p.lat_us.len(), "errors": p.errors, "p50_us": p.pct(0.5), "p99_us": p.pct(0.99), "calls_per_s": p.rate().round()},
            "added_p50_us": p.pct(0.5) as i64 - d.pct(0.5) as i64,
            "added_p99_us": p.pct(0.99) as i64 - d.pct(0.99) as i64,
            "gateway_cpu_us_per_call": per_call(cpu),
            "journal_cpu_us_per_call": per_call(journal_cpu),
            "journal": {
                "commits": commits,
                "writes": writes,
                "commits_per_s": (commits as f64 / secs).round(),
                "writes_per_s": (writes as f64 / secs).round(),
                "writes_per_commit": (writes as f64 / (commits.max(1) as f64) * 10.0).round() / 10.0,
            },
        }));
        direct.close().await;
        proxied.close().await;
    }
    // Refusals and errors are appended with the next group commit, not awaited by the call:
    // give the writer a moment, then count what is durable.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let audit = count_audit(&data.join("journal.db"))?;
    drop((gateway, upstream));
    Ok(json!({
        "toolgate": env!("CARGO_PKG_VERSION"),
        "rounds": args.rounds,
        "phase_ms": args.phase_ms,
        "client": format!("{:?}", args.client).to_lowercase(),
        "offered_calls_per_s": args.rate,
        "gateway_worker_threads": args.gateway_threads.map_or_else(
            || format!("{} (serve's default)", crate::cli::SERVE_WORKER_THREADS),
            |n| n.to_string(),
        ),
        "results": rows,
        "check": {
            "proxied_calls": proxied_calls,
            "audit_records": audit,
            "ok": audit == proxied_calls,
        },
    }))
}

fn count_audit(db: &Path) -> Result<u64, String> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("cannot open {}: {e}", db.display()))?;
    conn.query_row("SELECT count(*) FROM audit", [], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
        .map_err(|e| e.to_string())
}

fn write_config(dir: &Path, data: &Path, up_url: &str) -> Result<PathBuf, String> {
    let path = dir.join("bench-side-effects.yml");
    let text = format!(
        "version: 1\ndata_dir: {}\ntenants:\n  - id: bench\n    token_env: TOOLGATE_BENCH_TOKEN\n    accounts: [{{id: bench-1, platform: demo}}]\nupstreams:\n  - name: up\n    url: {up_url}\n    max_concurrent_requests: 64\ntools:\n  {PROXIED_TOOL}: {{side_effect: true, action: publish, lane: api, platform: demo, proof: {{post_id: /id, url: /url}}}}\n",
        data.display()
    );
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    Ok(path)
}

/// The report as a Markdown table, followed by the audit check.
pub fn format_table(r: &Value) -> String {
    let pacing = match r["offered_calls_per_s"].as_f64() {
        Some(rate) => format!("offered {rate} calls/s (open loop)"),
        None => "calls back to back (closed loop)".to_string(),
    };
    let mut out = format!(
        "load generator: {}, gateway worker threads: {}, {} rounds of {} ms per target and concurrency, {pacing}\n\n",
        r["client"].as_str().unwrap_or("?"),
        r["gateway_worker_threads"].as_str().unwrap_or("?"),
        r["rounds"],
        r["phase_ms"]
    );
    out.push_str("| conc | direct calls/s | proxied calls/s | direct p50 µs | proxied p50 µs | added p50 µs | direct p99 µs | proxied p99 µs | added p99 µs | gateway CPU µs/call | journal thread CPU µs/call | journal commits/s | journal writes/s | writes/commit | errors |\n");
    out.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for row in r["results"].as_array().into_iter().flatten() {
        let (d, p, j) = (&row["direct"], &row["proxied"], &row["journal"]);
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            row["concurrency"],
            d["calls_per_s"],
            p["calls_per_s"],
            d["p50_us"],
            p["p50_us"],
            row["added_p50_us"],
            d["p99_us"],
            p["p99_us"],
            row["added_p99_us"],
            row["gateway_cpu_us_per_call"],
            row["journal_cpu_us_per_call"],
            j["commits_per_s"],
            j["writes_per_s"],
            j["writes_per_commit"],
            d["errors"].as_u64().unwrap_or(0) + p["errors"].as_u64().unwrap_or(0),
        ));
    }
    let c = &r["check"];
    out.push_str(&format!(
        "\naudit check: {} audit records in journal.db for {} proxied calls (warm-ups included): {}\n",
        c["audit_records"],
        c["proxied_calls"],
        if c["ok"] == true { "ok" } else { "MISMATCH" }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchSideEffectsArgs,
    }

    #[test]
    fn arguments_default_to_1_16_64_and_parse_lists() {
        let a = Cli::parse_from(["x"]).args;
        assert_eq!(a.concurrency, vec![1, 16, 64]);
        let a = Cli::parse_from(["x", "--concurrency", "2,8", "--rounds", "1"]).args;
        assert_eq!((a.concurrency, a.rounds), (vec![2, 8], 1));
    }

    #[test]
    fn table_has_one_row_per_concurrency_and_the_check() {
        let r = json!({
            "client": "lean", "gateway_worker_threads": "2", "rounds": 1, "phase_ms": 100,
            "offered_calls_per_s": 5000.0,
            "results": [{"concurrency": 64, "gateway_cpu_us_per_call": 150.0, "journal_cpu_us_per_call": 50.0, "direct": {"calls_per_s": 9000.0, "p50_us": 5, "p99_us": 9, "errors": 0},
                "proxied": {"calls_per_s": 5000.0, "p50_us": 7, "p99_us": 12, "errors": 1},
                "added_p50_us": 2, "added_p99_us": 3,
                "journal": {"commits_per_s": 500.0, "writes_per_s": 10000.0, "writes_per_commit": 20.0}}],
            "check": {"audit_records": 10, "proxied_calls": 10, "ok": true},
        });
        let t = format_table(&r);
        assert!(
            t.starts_with("load generator: lean, gateway worker threads: 2,"),
            "{t}"
        );
        assert!(t.contains("offered 5000 calls/s (open loop)"), "{t}");
        assert!(
            t.contains(
                "| 64 | 9000.0 | 5000.0 | 5 | 7 | 2 | 9 | 12 | 3 | 150.0 | 50.0 | 500.0 | 10000.0 | 20.0 | 1 |"
            ),
            "{t}"
        );
        assert!(t.contains(
            "10 audit records in journal.db for 10 proxied calls (warm-ups included): ok"
        ));
    }
}
