//! clone3(2) with `CLONE_INTO_CGROUP`, which nix does not wrap: a thin
//! function returning `nix::Result` so that a step can call it through
//! `sys!`, as `mountapi` does for the new mount API.

use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::ForkResult;
use nix::unistd::Pid;

/// `CLONE_INTO_CGROUP` from <linux/sched.h>: a clone3-only flag (it does
/// not fit in clone(2)'s int).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` from <linux/sched.h>, up to `cgroup`
/// (CLONE_ARGS_SIZE_VER2, 88 bytes: Linux 5.7).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// clone3({flags | CLONE_INTO_CGROUP, exit_signal = SIGCHLD, cgroup}): a
/// child created directly in the cgroup v2 directory `cgroup` (an open
/// descriptor of it), so that it never runs anywhere else and no migration
/// is needed (Linux 5.7+). With no stack given, the child runs on a copy of
/// the caller's, as after fork(2): it returns here too, with
/// `ForkResult::Child`. An older kernel answers ENOSYS (no clone3) or E2BIG
/// (no `cgroup` field), and a seccomp filter around the runtime (Docker's
/// default profile) ENOSYS or EPERM; a cgroup v1 directory is EBADF.
///
/// # Safety
///
/// As for fork(2): the caller must be single-threaded, or the child must
/// only call async-signal-safe functions until it execs or exits. This is
/// the raw system call, not glibc's fork: no atfork handlers run, and glibc's
/// own record of the thread (its tid, its robust-mutex list) is still the
/// parent's, which only pthread mutexes of the robust or error-checking kind
/// would notice (Rust's std uses neither). Go's os/exec makes the same raw
/// call for `SysProcAttr.UseCgroupFD` (syscall/exec_linux.go).
pub unsafe fn clone_into_cgroup(flags: CloneFlags, cgroup: &impl AsRawFd) -> nix::Result<ForkResult> {
    let args = CloneArgs {
        // The bits of an int: no sign extension into the clone3-only flags.
        flags: u64::from(flags.bits() as u32) | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid clone_args of the size passed, alive for the
    // call; the kernel reads it and writes nothing back (no pidfd, no tids).
    // The caller has taken on fork's conditions (see above).
    let pid = unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, size_of::<CloneArgs>()) };
    match Errno::result(pid)? {
        0 => Ok(ForkResult::Child),
        pid => Ok(ForkResult::Parent { child: Pid::from_raw(pid as libc::pid_t) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_args_is_the_kernels_ver2_size() {
        // CLONE_ARGS_SIZE_VER2 in <linux/sched.h>.
        assert_eq!(size_of::<CloneArgs>(), 88);
    }
}
