//! Bringing up the loopback interface of a new network namespace. A new
//! network namespace has only `lo`, and it starts down; programs expect
//! 127.0.0.1 to work. This is what `ip link set lo up` does: SIOCSIFFLAGS on
//! any socket. (Connecting the container to the outside world takes a veth
//! pair and routing; the workshop leaves it as an exercise.)

use std::os::fd::AsRawFd;

use anyhow::{Context, Result};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};

pub fn loopback_up() -> Result<()> {
    let sock = socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)
        .context("socket(AF_INET, SOCK_DGRAM) for the loopback ioctl failed")?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: the fd is an open socket and `request` a valid ifreq that
    // outlives the call; SIOCGIFFLAGS fills ifru_flags.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) } < 0 {
        return Err(std::io::Error::last_os_error()).context("ioctl(SIOCGIFFLAGS, \"lo\") failed");
    }
    // SAFETY: SIOCGIFFLAGS above initialised the flags member of the union.
    unsafe { request.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: as above; SIOCSIFFLAGS reads ifru_flags.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &request) } < 0 {
        return Err(std::io::Error::last_os_error()).context("ioctl(SIOCSIFFLAGS, \"lo\", IFF_UP) failed");
    }
    Ok(())
}
