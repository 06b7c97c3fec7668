//! The device nodes every container gets in its `/dev`: the same set runc and
//! Docker create (see runc's `libcontainer/specconv` default devices).

/// A character device: `/dev/<name>`, `major:minor`, permission bits.
pub struct Device {
    pub name: &'static str,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
}

pub const DEVICES: &[Device] = &[
    Device { name: "null", major: 1, minor: 3, mode: 0o666 },
    Device { name: "zero", major: 1, minor: 5, mode: 0o666 },
    Device { name: "full", major: 1, minor: 7, mode: 0o666 },
    Device { name: "random", major: 1, minor: 8, mode: 0o666 },
    Device { name: "urandom", major: 1, minor: 9, mode: 0o666 },
    Device { name: "tty", major: 5, minor: 0, mode: 0o666 },
];

/// Symbolic links in `/dev`: `(link name, target)`.
pub const LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];
