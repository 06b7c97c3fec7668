//! Asks to be traced by its parent, as amicontained does to find out whether
//! ptrace is allowed, then runs its arguments.
//!
//! ptrace(PTRACE_TRACEME) makes the parent the tracer. In a container whose
//! PID 1 this is, the parent is the runtime, which never meant to trace
//! anything: the exec that follows stops the process with SIGTRAP until the
//! tracer lets it go. A runtime that does not expect this waits forever.
//! Prints `traced` once the call returned, then execs the rest.

use std::env;
use std::os::unix::process::CommandExt;
use std::process::{exit, Command};

extern "C" {
    fn ptrace(request: i32, pid: i32, addr: usize, data: usize) -> i64;
}

const PTRACE_TRACEME: i32 = 0;

fn main() {
    // SAFETY: PTRACE_TRACEME takes no pointers; it only marks this process.
    let result = unsafe { ptrace(PTRACE_TRACEME, 0, 0, 0) };
    if result != 0 {
        eprintln!("traceme: ptrace(PTRACE_TRACEME) failed: {}", std::io::Error::last_os_error());
        exit(1);
    }
    println!("traced");
    let args: Vec<String> = env::args().skip(1).collect();
    if let Some((program, rest)) = args.split_first() {
        let err = Command::new(program).args(rest).exec();
        eprintln!("traceme: cannot run {program}: {err}");
        exit(127);
    }
}
