//! The device nodes every container gets in its `/dev`: the same set runc and
//! Docker create (see runc's `libcontainer/specconv` default devices), and
//! the allowlist of devices its cgroup lets it use.

use cgroups_rs::fs::devices::DevicePermissions;
use cgroups_rs::fs::devices::DeviceType;

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

/// One line of a device allowlist, as cgroup v1's `devices.allow` takes it
/// (`c 1:3 rwm`): the kind, major and minor numbers (-1 for any, written
/// `*`), and what is allowed: read, write, mknod.
#[derive(Debug)]
pub struct Rule {
    pub kind: DeviceType,
    pub major: i64,
    pub minor: i64,
    pub access: &'static [DevicePermissions],
}

const RWM: &[DevicePermissions] = &[DevicePermissions::Read, DevicePermissions::Write, DevicePermissions::MkNod];
const M: &[DevicePermissions] = &[DevicePermissions::MkNod];

/// The devices a container may use; everything else is denied. runc's
/// default allowlist (`AllowedDevices` in `libcontainer/specconv`): any
/// device node may be *created* (mknod is harmless while opening it is
/// refused), and only the default nodes, `/dev/console` (5:1), `/dev/ptmx`
/// (5:2) and the container's terminals (136:*, devpts) may be opened. runc
/// also allows `/dev/net/tun` (10:200), for old users; no container here
/// gets that node, so it is not allowed.
pub const ALLOWED: &[Rule] = &[
    Rule { kind: DeviceType::Char, major: -1, minor: -1, access: M },
    Rule { kind: DeviceType::Block, major: -1, minor: -1, access: M },
    Rule { kind: DeviceType::Char, major: 1, minor: 3, access: RWM },
    Rule { kind: DeviceType::Char, major: 1, minor: 5, access: RWM },
    Rule { kind: DeviceType::Char, major: 1, minor: 7, access: RWM },
    Rule { kind: DeviceType::Char, major: 1, minor: 8, access: RWM },
    Rule { kind: DeviceType::Char, major: 1, minor: 9, access: RWM },
    Rule { kind: DeviceType::Char, major: 5, minor: 0, access: RWM },
    Rule { kind: DeviceType::Char, major: 5, minor: 1, access: RWM },
    Rule { kind: DeviceType::Char, major: 5, minor: 2, access: RWM },
    Rule { kind: DeviceType::Char, major: 136, minor: -1, access: RWM },
];

/// Every kind, every number, every access: what `devices.deny` is given
/// first (`a *:* rwm`), so that only [`ALLOWED`] is left.
pub const ALL: Rule = Rule { kind: DeviceType::All, major: -1, minor: -1, access: RWM };

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_node_is_allowed() {
        for device in DEVICES {
            let allowed = ALLOWED.iter().any(|rule| {
                rule.kind == DeviceType::Char
                    && rule.major == device.major as i64
                    && (rule.minor == -1 || rule.minor == device.minor as i64)
                    && rule.access.len() == 3
            });
            assert!(allowed, "/dev/{} is not in the allowlist", device.name);
        }
    }
}
