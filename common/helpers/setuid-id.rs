//! Prints the real and effective user ids it runs with: `uid=1000 euid=0`.
//!
//! The default image installs it setuid root (mode 4755), like `su` or
//! `passwd`: run by any user, it runs as root, unless no_new_privs is set
//! (`--security-opt no-new-privileges`), in which case exec ignores the
//! setuid bit and it prints the caller's own id twice. In a user namespace,
//! "root" is the container's root, an unprivileged uid on the host.

extern "C" {
    fn getuid() -> u32;
    fn geteuid() -> u32;
}

fn main() {
    // SAFETY: getuid(2) and geteuid(2) take no arguments and cannot fail.
    let (uid, euid) = unsafe { (getuid(), geteuid()) };
    println!("uid={uid} euid={euid}");
}
