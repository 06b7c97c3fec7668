//! Bringing up the loopback interface of a new network namespace. A new
//! network namespace has only `lo`, and it starts down; programs expect
//! 127.0.0.1 to work. This is what `ip link set lo up` does: SIOCSIFFLAGS on
//! any socket. (Connecting the container to the outside world takes a veth
//! pair and routing; the workshop leaves it as an exercise.)

use std::os::fd::AsRawFd;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};

pub fn loopback_up() -> Result<()> {
    let sock = crate::sys!(socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None))?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
    let fd = sock.as_raw_fd();
    // SAFETY: the fd is an open socket and `request` a valid ifreq that
    // outlives the call; SIOCGIFFLAGS fills ifru_flags.
    let got = Errno::result(unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut request) });
    // SAFETY: SIOCGIFFLAGS initialised the flags member of the union (when
    // it failed, the zeroed union reads as no flags).
    let flags = unsafe { request.ifr_ifru.ifru_flags };
    let shown =
        [fd.to_string(), "SIOCGIFFLAGS".to_string(), format!("{{ifr_name=\"lo\", ifr_flags={}}}", names(flags))];
    crate::trace::traced("ioctl", &shown, || got.context("ioctl(SIOCGIFFLAGS, \"lo\") failed"))?;
    let flags = flags | (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    request.ifr_ifru.ifru_flags = flags;
    // SAFETY: as above; SIOCSIFFLAGS reads ifru_flags.
    let set = Errno::result(unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &request) });
    let shown =
        [fd.to_string(), "SIOCSIFFLAGS".to_string(), format!("{{ifr_name=\"lo\", ifr_flags={}}}", names(flags))];
    crate::trace::traced("ioctl", &shown, || set.context("ioctl(SIOCSIFFLAGS, \"lo\", IFF_UP) failed"))?;
    Ok(())
}

/// Interface flags by name, as strace writes them: `IFF_UP|IFF_LOOPBACK|IFF_RUNNING`.
fn names(flags: libc::c_short) -> String {
    const NAMES: &[(libc::c_int, &str)] = &[
        (libc::IFF_UP, "IFF_UP"),
        (libc::IFF_BROADCAST, "IFF_BROADCAST"),
        (libc::IFF_LOOPBACK, "IFF_LOOPBACK"),
        (libc::IFF_POINTOPOINT, "IFF_POINTOPOINT"),
        (libc::IFF_RUNNING, "IFF_RUNNING"),
        (libc::IFF_NOARP, "IFF_NOARP"),
        (libc::IFF_PROMISC, "IFF_PROMISC"),
        (libc::IFF_MULTICAST, "IFF_MULTICAST"),
    ];
    let flags = flags as libc::c_int;
    let mut shown: Vec<String> =
        NAMES.iter().filter(|(bit, _)| flags & bit != 0).map(|(_, name)| name.to_string()).collect();
    let known = NAMES.iter().fold(0, |all, (bit, _)| all | bit);
    if flags & !known & 0xffff != 0 {
        shown.push(format!("{:#x}", flags & !known & 0xffff));
    }
    if shown.is_empty() { "0".to_string() } else { shown.join("|") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_flags_read_by_name() {
        assert_eq!(names(0), "0");
        assert_eq!(
            names((libc::IFF_UP | libc::IFF_LOOPBACK | libc::IFF_RUNNING) as libc::c_short),
            "IFF_UP|IFF_LOOPBACK|IFF_RUNNING"
        );
    }
}
