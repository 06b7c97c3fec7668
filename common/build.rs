//! Builds the helper programs that the default `busybox` image carries
//! (`breakout`, `memhog`, `tiocsti`, `traceme`, `setuid-id`,
//! `ipcmk`, `mount-probe`). The image has no libc, so they are linked
//! statically; each is a single file using only `std`, compiled with the same
//! rustc and for the same target as the steps.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const HELPERS: &[&str] = &["breakout", "memhog", "tiocsti", "traceme", "setuid-id", "ipcmk", "mount-probe"];

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = env::var("TARGET").expect("cargo sets TARGET");
    for name in HELPERS {
        let source = format!("helpers/{name}.rs");
        println!("cargo:rerun-if-changed={source}");
        let status = Command::new(&rustc)
            .args(["--edition=2021", "-O", "--target", &target])
            .args(["-C", "target-feature=+crt-static"])
            .args(["-C", "panic=abort", "-C", "strip=symbols"])
            .arg("-o")
            .arg(out.join(name))
            .arg(&source)
            .status()
            .unwrap_or_else(|e| panic!("cannot run rustc for {source}: {e}"));
        assert!(status.success(), "building the static helper {source} failed");
    }
}
