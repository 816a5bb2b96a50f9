#![forbid(unsafe_code)]

/// mimalloc instead of glibc's allocator: the call path allocates and frees many small
/// buffers on every worker thread; mimalloc cuts the gateway's CPU per call by about a fifth
/// (BENCHMARKS.md). Transparent huge pages are off for it, or a 2 MiB page per segment would
/// show up as resident memory.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    toolgate::cli::main()
}
