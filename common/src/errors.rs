//! How the runtime's own errors end: one line naming what failed, one hint
//! when the failure is a known one, exit status 125.

use anyhow::{Result, bail};
use nix::errno::Errno;
use nix::unistd::Uid;

use crate::EXIT_RUNTIME_ERROR;
use crate::cli::program_name;
use crate::cli::say;

/// Prints the error (with its chain of causes on one line) and, when it is a
/// known failure mode, a hint; then exits 125, or 128+N when a signal
/// stopped the run before the container started.
pub fn die(err: anyhow::Error) -> ! {
    print(&err);
    std::process::exit(crate::signals::exit_code(&err).unwrap_or(EXIT_RUNTIME_ERROR))
}

/// Prints the error the way [`die`] does, without exiting.
pub fn print(err: &anyhow::Error) {
    let program = program_name();
    say(&format!("{program}: error: {err:#}"));
    if let Some(hint) = hint_for(err) {
        say(&format!("{program}: hint: {hint}"));
    }
}

/// The steps from step02 on need root: they mount, chroot, and later create
/// namespaces and cgroups. Say so before trying, instead of failing on EPERM
/// half way through.
pub fn require_root() -> Result<()> {
    if !Uid::effective().is_root() {
        let line: Vec<String> = std::env::args().collect();
        bail!("must run as root (this step mounts filesystems and changes its root): try `sudo {}`", line.join(" "));
    }
    Ok(())
}

/// Known failure modes and what to do about them. Matched against the error
/// message chain and the errno at its root; the first match wins.
const HINTS: &[(&str, Option<Errno>, &str)] = &[
    ("overlay", Some(Errno::ENODEV), "this kernel has no overlay filesystem: load it with `modprobe overlay`"),
    (
        "memory.memsw",
        None,
        "cgroup v1 without swap accounting has no memory.memsw files: boot with swapaccount=1, or leave out --memory-swap",
    ),
    (
        "memory.swap.max",
        None,
        "this cgroup v2 has no swap accounting (memory.swap.max is missing): leave out --memory-swap",
    ),
    (
        "cgroup",
        Some(Errno::ENOENT),
        "a cgroup controller or file is missing: check `cat /proc/cgroups` and that /sys/fs/cgroup is mounted",
    ),
    (
        "mount_setattr",
        Some(Errno::EINVAL),
        "this kernel or filesystem cannot make idmapped mounts (Linux 5.12+, overlay layers 5.19+)",
    ),
    (
        "",
        Some(Errno::EPERM),
        "the kernel refused a privileged operation: run as root on the host, not inside an unprivileged container",
    ),
    (
        "",
        Some(Errno::ENOSPC),
        "out of space, or out of a namespace or cgroup quota (see /proc/sys/user/max_*_namespaces)",
    ),
];

fn hint_for(err: &anyhow::Error) -> Option<&'static str> {
    let text = format!("{err:#}");
    let errno = err.chain().find_map(|cause| cause.downcast_ref::<Errno>()).copied();
    HINTS
        .iter()
        .find(|(needle, want, _)| text.contains(needle) && want.is_none_or(|want| Some(want) == errno))
        .map(|(_, _, hint)| *hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_enodev_gets_the_modprobe_hint() {
        let err = anyhow::Error::new(Errno::ENODEV).context("mount(Some(\"overlay\"), …) failed");
        assert!(hint_for(&err).unwrap().contains("modprobe overlay"));
    }

    #[test]
    fn unknown_failures_get_no_hint() {
        let err = anyhow::Error::new(Errno::EIO).context("read failed");
        assert_eq!(hint_for(&err), None);
    }
}
