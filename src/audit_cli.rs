//! `toolgate audit`: export the audit journal, verify an export or the live journal, print the
//! chain head as an anchor. Offline: reads `<data dir>/journal.db` read-only, next to a
//! running gateway if need be (WAL readers do not block the writer).
//!
//! Exit codes: 0 good, 1 broken (the first broken seq and why on stderr), 64 usage errors.

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::json;

use crate::journal::export::{self, Filters, Format, VerifyError};

/// Exit code of a broken chain or export.
pub const EXIT_BROKEN: u8 = 1;
/// Exit code of a usage error (EX_USAGE).
pub const EXIT_USAGE: u8 = 64;

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Export audit records as JSON Lines (verifiable) or CSV, in seq order.
    Export(ExportArgs),
    /// Verify an exported JSON Lines file, or the live journal with --data.
    Verify(VerifyArgs),
    /// Print the chain head as {"seq","hash","time"}: keep it to check later exports.
    Anchor {
        /// Data directory holding journal.db.
        #[arg(long)]
        data: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Data directory holding journal.db.
    #[arg(long)]
    pub data: PathBuf,
    /// Records with time >= this (RFC 3339).
    #[arg(long)]
    pub from: Option<String>,
    /// Records with time < this (RFC 3339).
    #[arg(long)]
    pub to: Option<String>,
    /// Records of this tenant id only.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Records of this platform only (the tool's `platform` in the config, e.g. instagram).
    #[arg(long)]
    pub platform: Option<String>,
    /// Records of this account id only.
    #[arg(long)]
    pub account: Option<String>,
    /// success, error_result, failed, in_doubt, refused or operator.
    #[arg(long)]
    pub outcome: Option<String>,
    /// policy_blocked, platform_rejected, tool_failure, runner_failure or
    /// verification_failed.
    #[arg(long)]
    pub failure_class: Option<String>,
    /// Records of calls with this `_meta.idempotency_key` only.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// jsonl (one JSON object per line, with header and trailer; what `audit verify` reads)
    /// or csv (one row per record, for spreadsheets).
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
    /// Write to this file instead of stdout.
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// An exported JSON Lines file.
    #[arg(conflicts_with = "data")]
    pub file: Option<PathBuf>,
    /// Verify the live journal in this data directory instead.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// SEQ:HASH (from `toolgate audit anchor`): that record, or the chain head, must have
    /// that hash.
    #[arg(long)]
    pub anchor: Option<String>,
}

/// Runs an `audit` subcommand.
pub fn run(cmd: AuditCommand) -> ExitCode {
    match cmd {
        AuditCommand::Export(a) => run_export(a),
        AuditCommand::Verify(a) => run_verify(a),
        AuditCommand::Anchor { data } => run_anchor(&data),
    }
}

fn usage(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("toolgate audit: {msg}");
    ExitCode::from(EXIT_USAGE)
}

fn broken(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("toolgate audit: BROKEN: {msg}");
    ExitCode::from(EXIT_BROKEN)
}

fn run_export(a: ExportArgs) -> ExitCode {
    let filters = Filters {
        from: a.from,
        to: a.to,
        tenant: a.tenant,
        platform: a.platform,
        account: a.account,
        outcome: a.outcome,
        failure_class: a.failure_class,
        idempotency_key: a.idempotency_key,
    };
    if let Err(e) = filters.window() {
        return usage(e);
    }
    let conn = match export::open_read_only(&a.data) {
        Ok(c) => c,
        Err(e) => {
            return usage(format!(
                "cannot open the journal in {}: {e}",
                a.data.display()
            ));
        }
    };
    let mut out: Box<dyn Write> = match &a.output {
        Some(p) => match std::fs::File::create(p) {
            Ok(f) => Box::new(std::io::BufWriter::with_capacity(64 * 1024, f)),
            Err(e) => return usage(format!("cannot create {}: {e}", p.display())),
        },
        None => Box::new(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stdout().lock(),
        )),
    };
    let now = crate::clock::rfc3339(chrono::Utc::now().timestamp_millis());
    match export::export(&conn, &filters, a.format, &now, &mut out) {
        Ok(s) => {
            if a.output.is_some() {
                eprintln!(
                    "exported {} records (seq {}..{}), chain head seq {}",
                    s.count,
                    s.first_seq.map(|v| v.to_string()).unwrap_or("-".into()),
                    s.last_seq.map(|v| v.to_string()).unwrap_or("-".into()),
                    s.head.0
                );
            }
            ExitCode::SUCCESS
        }
        Err(export::ExportError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("toolgate audit export: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_verify(a: VerifyArgs) -> ExitCode {
    let anchor = match a.anchor.as_deref().map(|s| (s, export::parse_anchor(s))) {
        None => None,
        Some((_, Some(an))) => Some(an),
        Some((s, None)) => {
            return usage(format!(
                "--anchor {s:?}: expected SEQ:HASH (a number, a colon, 64 hex digits)"
            ));
        }
    };
    match (a.file, a.data) {
        (Some(file), None) => verify_file(&file, anchor),
        (None, Some(data)) => verify_data(&data, anchor),
        _ => usage("verify needs an exported FILE.jsonl or --data DIR"),
    }
}

fn verify_file(path: &Path, anchor: Option<(u64, String)>) -> ExitCode {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return usage(format!("cannot open {}: {e}", path.display())),
    };
    match export::verify_jsonl(BufReader::with_capacity(64 * 1024, f), anchor) {
        Ok(o) => {
            println!(
                "ok: {} records{} verified (seq {}..{}), chain head seq {} hash {}{}",
                o.count,
                if o.filters.as_object().is_some_and(|m| m.is_empty()) {
                    String::new()
                } else {
                    format!(" (filtered: {})", o.filters)
                },
                o.first_seq.map(|v| v.to_string()).unwrap_or("-".into()),
                o.last_seq.map(|v| v.to_string()).unwrap_or("-".into()),
                o.head.0,
                o.head.1,
                if o.anchored { ", anchor matches" } else { "" },
            );
            ExitCode::SUCCESS
        }
        Err(VerifyError::Broken(b)) => broken(format!("{}: first broken {b}", path.display())),
        Err(VerifyError::Io(e)) => usage(format!("cannot read {}: {e}", path.display())),
    }
}

/// `PRAGMA mmap_size` for `verify --data` (SQLite lowers it to its own maximum).
const VERIFY_MMAP_BYTES: i64 = 1 << 40;

fn verify_data(dir: &Path, anchor: Option<(u64, String)>) -> ExitCode {
    let conn = match export::open_read_only(dir) {
        Ok(c) => c,
        Err(e) => return usage(format!("cannot open the journal in {}: {e}", dir.display())),
    };
    // Verification reads every page once: a memory map spares SQLite the page copies out of
    // the page cache (a third of the time otherwise). The mapped pages are the file's page
    // cache, counted in RSS but not in anonymous (heap) memory. SQLite caps the size at its
    // compile-time maximum (2 GiB); pages beyond it, and those in the WAL, are read as
    // before. Verify only: export is not faster with it.
    match conn.pragma_update_and_check(None, "mmap_size", VERIFY_MMAP_BYTES, |r| r.get::<_, i64>(0))
    {
        Ok(n) => tracing::debug!(mmap_bytes = n, "verify --data: memory-mapped reads"),
        Err(e) => tracing::debug!("verify --data: mmap_size not set: {e}"),
    }
    let report = match crate::journal::sqlite::verify_conn(&conn) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("toolgate audit verify: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(b) = &report.broken {
        return broken(format!(
            "journal {}: first broken seq {}: {} ({} records intact before it)",
            dir.join("journal.db").display(),
            b.seq,
            b.why,
            report.checked
        ));
    }
    // The chain's start: after retention the first kept record links to the pruned head.
    let start = match export::chain_start(&conn) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("toolgate audit verify: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some((seq, hash)) = &anchor {
        let stored = match export::hash_at(&conn, *seq) {
            Ok(Some(h)) => Some(h),
            Ok(None) if start.0 > 1 && *seq == start.0 - 1 => Some(start.1.clone()),
            Ok(None) => None,
            Err(e) => {
                eprintln!("toolgate audit verify: {e}");
                return ExitCode::FAILURE;
            }
        };
        match stored {
            Some(h) if h == *hash => {}
            Some(h) => {
                return broken(format!(
                    "seq {seq}: the journal has hash {h}, the anchor says {hash}"
                ));
            }
            None if *seq < start.0 => {
                return broken(format!(
                    "seq {seq}: the anchor's record was deleted by retention (the chain starts at seq {}); check a newer anchor",
                    start.0
                ));
            }
            None => {
                return broken(format!(
                    "seq {seq}: the anchor's record is not in the journal"
                ));
            }
        }
    }
    let (seq, hash) = report
        .head
        .clone()
        .unwrap_or((0, crate::journal::GENESIS_HASH.into()));
    let pruned = if start.0 > 1 {
        format!(
            " (seq 1..{} deleted by retention; seq {} links to {})",
            start.0 - 1,
            start.0,
            start.1
        )
    } else {
        String::new()
    };
    println!(
        "ok: {} records verified{pruned}, chain head seq {seq} hash {hash}{}",
        report.checked,
        if anchor.is_some() {
            ", anchor matches"
        } else {
            ""
        }
    );
    ExitCode::SUCCESS
}

fn run_anchor(dir: &Path) -> ExitCode {
    let conn = match export::open_read_only(dir) {
        Ok(c) => c,
        Err(e) => return usage(format!("cannot open the journal in {}: {e}", dir.display())),
    };
    match export::chain_head(&conn) {
        Ok((seq, hash, time)) => {
            let time = time.map(crate::clock::rfc3339);
            println!("{}", json!({"seq": seq, "hash": hash, "time": time}));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("toolgate audit anchor: {e}");
            ExitCode::FAILURE
        }
    }
}
