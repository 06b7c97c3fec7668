//! tiocsti [TEXT]: tries to type TEXT (default `echo INJECTED`, then a
//! newline) into the terminal on its stdin with TIOCSTI (ioctl_tty(2)), one
//! byte at a time, as an attacker in a container would to make the shell
//! that started it run a command once the container has ended.
//!
//! The kernel accepts TIOCSTI on the caller's own controlling terminal (where
//! `dev.tty.legacy_tiocsti` is 1), and on any other terminal only with
//! CAP_SYS_ADMIN in the host's user namespace. Prints `tiocsti: injected N
//! bytes` and exits 0, or `tiocsti: refused: <error>` and exits 1 at the
//! first byte the kernel refused. It never prints TEXT itself, so that a test
//! can look for TEXT on the terminal.

use std::env;
use std::process::exit;

extern "C" {
    fn ioctl(fd: i32, request: u64, ...) -> i32;
}

/// TIOCSTI in asm-generic/ioctls.h, the value on x86_64 and aarch64.
const TIOCSTI: u64 = 0x5412;

fn main() {
    let text = env::args().nth(1).map_or_else(|| "echo INJECTED\n".to_string(), |text| format!("{text}\n"));
    for byte in text.bytes() {
        // SAFETY: TIOCSTI reads one byte through the pointer, which points
        // at a live local.
        let result = unsafe { ioctl(0, TIOCSTI, &byte as *const u8) };
        if result != 0 {
            println!("tiocsti: refused: {}", std::io::Error::last_os_error());
            exit(1);
        }
    }
    println!("tiocsti: injected {} bytes", text.len());
}
