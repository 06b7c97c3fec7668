//! Creates a System V IPC object and prints its id, like util-linux
//! `ipcmk` (busybox has no `ipcmk` and no `ipcs`).
//!
//! `ipcmk` (or `ipcmk -M SIZE`) creates a shared memory segment of SIZE
//! bytes (default 4096); `ipcmk -Q` creates a message queue. Both are made
//! with `IPC_PRIVATE` and outlive this program: they belong to the IPC
//! namespace it runs in and stay until `ipcrm`, or until that namespace
//! goes away. List them with `cat /proc/sysvipc/shm` or
//! `cat /proc/sysvipc/msg`, which show the reader's IPC namespace.

use std::env;
use std::io;
use std::process::exit;

const IPC_PRIVATE: i32 = 0;
const IPC_CREAT: i32 = 0o1000;

extern "C" {
    fn shmget(key: i32, size: usize, flags: i32) -> i32;
    fn msgget(key: i32, flags: i32) -> i32;
}

fn usage() -> ! {
    eprintln!("usage: ipcmk [-M SIZE | -Q]");
    exit(2);
}

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (what, id, call) = match args.as_slice() {
        [] | ["-M"] => shm(4096),
        ["-M", size] => shm(size.parse().unwrap_or_else(|_| usage())),
        ["-Q"] => {
            // SAFETY: msgget(2) takes plain integers and touches no memory of ours.
            let id = unsafe { msgget(IPC_PRIVATE, IPC_CREAT | 0o600) };
            ("Message queue", id, "msgget(IPC_PRIVATE, IPC_CREAT|0600)".to_string())
        }
        _ => usage(),
    };
    if id < 0 {
        eprintln!("ipcmk: {call} failed: {}", io::Error::last_os_error());
        exit(1);
    }
    println!("{what} id: {id}");
}

fn shm(size: usize) -> (&'static str, i32, String) {
    // SAFETY: shmget(2) takes plain integers and touches no memory of ours.
    let id = unsafe { shmget(IPC_PRIVATE, size, IPC_CREAT | 0o600) };
    ("Shared memory", id, format!("shmget(IPC_PRIVATE, {size}, IPC_CREAT|0600)"))
}
