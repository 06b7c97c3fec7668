//! What of /proc and /sys a container must not read or write: Docker's
//! masked and read-only paths (moby `daemon/pkg/oci/defaults.go`), applied
//! by runc after it mounted /proc and /sys (`maskPaths`, `readonlyPath` in
//! `libcontainer/rootfs_linux.go`).
//!
//! /proc and /sys are not namespaced: most of their files describe the
//! whole machine, and some of them change it. A masked path is covered so
//! that reading it gives nothing: a file by a bind mount of `/dev/null`, a
//! directory by an empty read-only tmpfs. A read-only path stays readable,
//! but no write goes through (EROFS), not even root's. Paths this kernel
//! does not have are skipped.

/// Masked: the kernel's memory (`kcore`), other users' keys, timers and
/// scheduler details that leak what the host runs, hardware and firmware
/// tables, and interfaces that moby's advisories found leaking
/// (GHSA-6fw5-f8r9-fgfm: interrupts; GHSA-jq35-85cj-fj4p: powercap energy
/// counters).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
];

/// Read-only: `/proc/sys` (every sysctl, `kernel.core_pattern` among them:
/// a writable one runs a program of the container's choice as host root on
/// the next crash), `/proc/sysrq-trigger` (reboot, crash), and the bus, fs
/// and irq tables.
pub const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// [`MASKED_PATHS`], plus what Docker adds per possible CPU: its
/// `thermal_throttle` counters (GHSA-6fw5-f8r9-fgfm).
pub fn masked_paths() -> Vec<String> {
    let mut paths: Vec<String> = MASKED_PATHS.iter().map(|path| path.to_string()).collect();
    let possible = std::fs::read_to_string("/sys/devices/system/cpu/possible").unwrap_or_default();
    for cpu in cpu_list(&possible) {
        paths.push(format!("/sys/devices/system/cpu/cpu{cpu}/thermal_throttle"));
    }
    paths
}

/// The CPUs of a kernel CPU list such as `0-3,8,10-11` (cpuset(7), "List
/// format"); what does not parse is left out.
fn cpu_list(text: &str) -> Vec<u32> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|part| !part.is_empty()) {
        let (first, last) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(first), Ok(last)) = (first.parse::<u32>(), last.parse::<u32>()) {
            // A bound on what a typo in the file could make us list.
            cpus.extend((first..=last).take(8192));
        }
    }
    cpus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_are_read_as_the_kernel_writes_them() {
        assert_eq!(cpu_list("0-1\n"), [0, 1]);
        assert_eq!(cpu_list("0-2,5,7-8"), [0, 1, 2, 5, 7, 8]);
        assert_eq!(cpu_list("0"), [0]);
        assert_eq!(cpu_list(""), Vec::<u32>::new());
        assert_eq!(cpu_list("x,3"), [3]);
    }

    #[test]
    fn dockers_lists_are_absolute_and_the_cpus_are_added() {
        let paths = masked_paths();
        assert!(paths.iter().all(|path| path.starts_with('/')));
        assert!(paths.starts_with(&MASKED_PATHS.iter().map(|path| path.to_string()).collect::<Vec<_>>()));
        assert!(paths.iter().any(|path| path == "/sys/devices/system/cpu/cpu0/thermal_throttle"));
        assert!(READONLY_PATHS.contains(&"/proc/sys"));
    }
}
