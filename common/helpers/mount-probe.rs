//! Calls mount(2) once and says what the kernel answered, by errno name:
//! `mount("dfs-probe", "/mnt", "tmpfs", 0, NULL) failed: EPERM (Operation
//! not permitted)`. busybox `mount` says "permission denied (are you
//! root?)" for both EPERM and EACCES; this one tells them apart.
//!
//! `mount-probe [TARGET]` mounts a tmpfs on TARGET (default `/mnt`), and
//! exits 0 when the mount worked (and leaves it), or with the errno number.

use std::env;
use std::ffi::CString;
use std::io;
use std::process::exit;
use std::ptr;

extern "C" {
    fn mount(source: *const i8, target: *const i8, fstype: *const i8, flags: u64, data: *const u8) -> i32;
}

/// The errno names a mount can answer with (mount(2), ERRORS).
const NAMES: &[(i32, &str)] = &[
    (1, "EPERM"),
    (2, "ENOENT"),
    (13, "EACCES"),
    (16, "EBUSY"),
    (19, "ENODEV"),
    (20, "ENOTDIR"),
    (22, "EINVAL"),
    (30, "EROFS"),
];

fn main() {
    let target = env::args().nth(1).unwrap_or_else(|| "/mnt".to_string());
    let call = format!("mount(\"dfs-probe\", \"{target}\", \"tmpfs\", 0, NULL)");
    let c = |text: &str| CString::new(text).unwrap_or_else(|_| exit(2));
    let (source, path, fstype) = (c("dfs-probe"), c(&target), c("tmpfs"));
    // SAFETY: the three strings are NUL-terminated and outlive the call;
    // data may be NULL for tmpfs.
    let res = unsafe { mount(source.as_ptr(), path.as_ptr(), fstype.as_ptr(), 0, ptr::null()) };
    if res == 0 {
        println!("{call} = 0");
        return;
    }
    let err = io::Error::last_os_error();
    let code = err.raw_os_error().unwrap_or(0);
    let name = NAMES.iter().find(|(known, _)| *known == code).map_or("errno", |(_, name)| name);
    let text = err.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    eprintln!("{call} failed: {name} ({text})");
    exit(code.clamp(1, 255));
}
