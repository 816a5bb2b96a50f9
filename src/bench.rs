//! `toolgate bench`: a read-only tools/call measured direct and through toolgate, interleaved.

/// Arguments of `toolgate bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {}

/// Runs the benchmark.
pub async fn run(_args: BenchArgs) -> Result<(), String> {
    Err("not implemented yet".into())
}
