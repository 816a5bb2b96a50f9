//! Build script: links release binaries with their functions in the order `link/toolgate.order` gives.
//!
//! Start-up code goes first, then the request path (see `link/order.sh` for how the list is
//! made and why). The kernel maps machine code in 64 KiB windows, so packing the code an
//! idle gateway has run into few windows cuts its resident memory by ~6 MiB; the code
//! itself is unchanged.
//!
//! Only where the linker is known to be LLD, which takes `--symbol-ordering-file`: release
//! builds for x86_64-unknown-linux-gnu with Rust 1.90 or later (its default linker), unless
//! a linker may have been chosen: cargo's `linker` setting, or RUSTFLAGS that mention linking
//! at all (`-C linker=…`, `-C link-arg=…`, linker features; a conservative test).
//! `TOOLGATE_NO_SYMBOL_ORDER=1` turns it off. `link/order.sh --check` (run by `.ci/run`) fails
//! when a release binary was linked without the list.

use std::{env, path::Path, process::Command};

fn main() {
    println!("cargo:rerun-if-changed=link/toolgate.order");
    println!("cargo:rerun-if-env-changed=TOOLGATE_NO_SYMBOL_ORDER");
    let var = |key: &str| env::var(key).unwrap_or_default();
    let wanted = var("PROFILE") == "release"
        && var("TARGET") == "x86_64-unknown-linux-gnu"
        && var("TOOLGATE_NO_SYMBOL_ORDER").is_empty()
        && !var("CARGO_ENCODED_RUSTFLAGS").contains("link")
        && env::var_os("RUSTC_LINKER").is_none()
        && rustc_minor(&var("RUSTC")).is_some_and(|minor| minor >= 90);
    if !wanted {
        return;
    }
    let order = Path::new(&var("CARGO_MANIFEST_DIR")).join("link/toolgate.order");
    if !order.is_file() {
        println!(
            "cargo:warning=link/toolgate.order is missing: functions keep the compiler's order"
        );
        return;
    }
    // `-Wl,` splits its argument at commas.
    if order.to_string_lossy().contains(',') {
        println!(
            "cargo:warning=the checkout's path has a comma, which -Wl cannot pass: functions \
             keep the compiler's order"
        );
        return;
    }
    println!(
        "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
        order.display()
    );
    // Names the binary no longer has are skipped; a stale list costs memory, not a build.
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
}

/// The minor version of the compiler cargo builds with (`rustc -vV`: `release: 1.95.0`).
fn rustc_minor(rustc: &str) -> Option<u32> {
    let out = Command::new(rustc).arg("-vV").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let release = text.lines().find_map(|l| l.strip_prefix("release: "))?;
    release.split('.').nth(1)?.parse().ok()
}
