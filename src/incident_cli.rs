//! `toolgate incident list|bundle`: the incident list and postmortem bundles offline, from a
//! data dir, next to a running gateway if need be.
//!
//! The journal is opened read-only and the budget engine rebuilt from it exactly as the gateway
//! does at start-up (its last snapshot plus the records committed after it), so the answers are
//! the gateway's. Alerts and band changes live in that snapshot, which the gateway saves at
//! every alert or band change and every 30 s: they are at most that old here.
//!
//! Exit codes: 0 done, 1 no such incident or the journal could not be read, 64 usage errors.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::budget::{Budget, Scope};
use crate::incident;
use crate::incident::bundle::{self, Format, parse_limit, parse_margin};
use crate::journal::readonly::ReadOnlyJournal;

/// Exit code of a usage error (EX_USAGE).
pub const EXIT_USAGE: u8 = 64;

#[derive(Debug, clap::Subcommand)]
pub enum IncidentCommand {
    /// List incidents (hard stops, page alerts, dependency incidents) as JSON, oldest first.
    List(Source),
    /// Write the postmortem bundle of one incident (JSON, or a Markdown draft with --format md).
    Bundle(BundleArgs),
}

/// Where the journal and the SLO definitions are.
#[derive(Debug, clap::Args)]
pub struct Source {
    /// Data directory holding journal.db.
    #[arg(long)]
    pub data: PathBuf,
    /// The gateway's config file, for its `slo_definitions` (default: the shipped SLOs, as
    /// the gateway uses without one).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct BundleArgs {
    /// Incident id, as listed (hs-…, page-…, dep-…).
    pub id: String,
    #[command(flatten)]
    pub source: Source,
    /// json or md.
    #[arg(long, default_value = "json", value_parser = parse_format)]
    pub format: Format,
    /// Time before the start and after the end to include (at most 24h).
    #[arg(long, default_value = "15m", value_parser = parse_margin)]
    pub margin: i64,
    /// Audit records (and runner events) to include at most, 1 to 10000.
    #[arg(long, default_value = "10000", value_parser = parse_limit)]
    pub limit: usize,
    /// Write to this file instead of stdout.
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
}

fn parse_format(s: &str) -> Result<Format, String> {
    Format::parse(s).ok_or_else(|| format!("{s:?}: expected json or md"))
}

fn usage(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("toolgate incident: {msg}");
    ExitCode::from(EXIT_USAGE)
}

fn failed(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("toolgate incident: {msg}");
    ExitCode::FAILURE
}

/// The journal, its hard stops and the rebuilt budgets.
fn open(
    src: &Source,
) -> Result<(ReadOnlyJournal, Vec<crate::journal::HardStop>, Budget), ExitCode> {
    let slos = match &src.config {
        None => crate::slo::embedded(),
        Some(path) => {
            let cfg = crate::config::Config::load(path)
                .map_err(|e| usage(format!("invalid configuration: {e}")))?;
            match &cfg.slo_definitions {
                Some(p) => crate::slo::load(p)
                    .map_err(|e| usage(format!("invalid SLO definitions: {e}")))?,
                None => crate::slo::embedded(),
            }
        }
    };
    let ro = ReadOnlyJournal::open(&src.data).map_err(|e| {
        usage(format!(
            "cannot open the journal in {}: {e}",
            src.data.display()
        ))
    })?;
    let stops = ro.hard_stops().map_err(failed)?;
    let budget = Budget::load(slos, &ro, Box::new(|_| {})).map_err(failed)?;
    Ok((ro, stops, budget))
}

fn write_out(output: &Option<PathBuf>, text: &str) -> ExitCode {
    let res = match output {
        Some(p) => std::fs::write(p, text),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).and_then(|_| out.flush())
        }
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => failed(format!("cannot write: {e}")),
    }
}

/// Runs an `incident` subcommand.
pub fn run(cmd: IncidentCommand) -> ExitCode {
    let now = chrono::Utc::now().timestamp_millis();
    match cmd {
        IncidentCommand::List(src) => {
            let (_ro, stops, budget) = match open(&src) {
                Ok(x) => x,
                Err(code) => return code,
            };
            let list = budget.with_engine(|e| incident::list(e, &stops, &Scope::All, now));
            let doc = incident::list_document(&list, &Scope::All, now);
            write_out(&None, &format!("{doc:#}\n"))
        }
        IncidentCommand::Bundle(a) => {
            let (ro, stops, budget) = match open(&a.source) {
                Ok(x) => x,
                Err(code) => return code,
            };
            let opts = bundle::Options {
                margin_ms: a.margin,
                limit: a.limit,
            };
            let plan = budget.with_engine(|e| {
                incident::find(e, &stops, &Scope::All, &a.id, now)
                    .map(|inc| bundle::plan(e, &stops, inc, &Scope::All, opts, now))
            });
            let Some(plan) = plan else {
                return failed(format!(
                    "no incident {:?} (toolgate incident list --data {} shows them)",
                    a.id,
                    a.source.data.display()
                ));
            };
            let collected = match bundle::collect(ro.conn(), &plan) {
                Ok(c) => c,
                Err(e) => return failed(e),
            };
            let doc = bundle::assemble(plan, collected, now);
            let text = match a.format {
                Format::Json => format!("{doc:#}\n"),
                Format::Markdown => incident::markdown::render(&doc),
            };
            write_out(&a.output, &text)
        }
    }
}
