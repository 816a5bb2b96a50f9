#![forbid(unsafe_code)]
fn main() -> std::process::ExitCode {
    toolgate::cli::main()
}
