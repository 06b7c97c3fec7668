//! How a container ended, in Docker's exit statuses: the command's own
//! status; 128+N when it died of signal N; 127 when the command is not found
//! in the container, 126 when it is found but cannot be executed; 125 when the
//! runtime itself failed before the command started.

use std::convert::Infallible;
use std::fmt;

use nix::errno::Errno;
use nix::sys::wait::WaitStatus;

use crate::EXIT_RUNTIME_ERROR;

/// The command could not be executed: execvp failed with `errno`.
#[derive(Debug)]
pub struct NotRunnable {
    pub command: String,
    pub errno: Errno,
}

impl NotRunnable {
    pub fn exit_code(&self) -> i32 {
        match self.errno {
            Errno::ENOENT | Errno::ENOTDIR => 127,
            _ => 126,
        }
    }
}

impl fmt::Display for NotRunnable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.exit_code() {
            127 => write!(f, "{:?}: command not found ({})", self.command, self.errno),
            _ if self.errno == Errno::ENOEXEC => {
                write!(
                    f,
                    "{:?}: cannot be executed: exec format error (not a program for this machine, and no #! line)",
                    self.command
                )
            }
            _ => write!(f, "{:?}: cannot be executed ({})", self.command, self.errno),
        }
    }
}

impl std::error::Error for NotRunnable {}

/// Turns a failed exec of `command` into a [`NotRunnable`] error.
pub fn exec_failed(command: &str, err: anyhow::Error) -> anyhow::Error {
    let errno = err.chain().find_map(|cause| cause.downcast_ref::<Errno>()).copied();
    anyhow::Error::new(NotRunnable { command: command.to_string(), errno: errno.unwrap_or(Errno::UnknownErrno) })
}

/// The end of every forked child: it only gets here when exec did not
/// happen. Prints why and leaves with 127, 126 or 125, without running the
/// parent's exit handlers a second time (`_exit`).
pub fn child_exit(result: anyhow::Result<Infallible>) -> ! {
    let err = match result {
        Ok(never) => match never {},
        Err(err) => err,
    };
    let code = err.downcast_ref::<NotRunnable>().map_or(EXIT_RUNTIME_ERROR, NotRunnable::exit_code);
    crate::errors::print(&err);
    quiet_exit(code)
}

/// Leaves a forked child at once and silently, when the parent already
/// reports why (it gave up on the start and closed the socket).
pub fn quiet_exit(code: i32) -> ! {
    // SAFETY: _exit(2) ends the process at once; it touches no Rust state.
    unsafe { libc::_exit(code) }
}

/// waitpid(2) also returns when the command stops under a tracer, and the
/// runtime is its tracer if it called ptrace(PTRACE_TRACEME) (amicontained
/// does, to see whether it may): the runtime never meant to trace it, so it
/// detaches, passing on the signal that stopped it (not the SIGTRAP of a
/// traced exec), and keeps waiting.
pub fn detach(pid: nix::unistd::Pid, signal: nix::sys::signal::Signal) -> anyhow::Result<()> {
    use nix::sys::signal::Signal;
    let pass_on = (signal != Signal::SIGTRAP).then_some(signal);
    match crate::sys!(nix::sys::ptrace::detach(pid, pass_on)) {
        // It was stopped by job control, not traced, or it died meanwhile:
        // either way, waiting goes on.
        Err(err) if err.chain().any(|cause| matches!(cause.downcast_ref(), Some(Errno::ESRCH))) => Ok(()),
        other => other,
    }
}

/// Prints the last line of a run (`container 1a2b3c exited with status 0`)
/// and returns the exit status the runtime should leave with.
pub fn report(who: &str, status: WaitStatus) -> i32 {
    let (line, code) = describe(status);
    crate::cli::say(&format!("{who} {line}"));
    code
}

/// The exit status Docker would give for `status` (see [`report`]).
pub fn code(status: WaitStatus) -> i32 {
    describe(status).1
}

/// The last line for a container the OOM killer ended; the status is
/// 137, as for any SIGKILL.
pub fn report_oom(who: &str, limit: i64, peak: u64) -> i32 {
    let mib = |bytes: f64| format!("{:.1} MiB", bytes / (1 << 20) as f64);
    let limit = if limit <= 0 || limit == i64::MAX { "none".to_string() } else { mib(limit as f64) };
    let peak = if peak == 0 { "unknown".to_string() } else { mib(peak as f64) };
    crate::cli::say(&format!("{who} was killed by the OOM killer: memory limit {limit}, peak usage {peak}"));
    128 + nix::sys::signal::Signal::SIGKILL as i32
}

fn describe(status: WaitStatus) -> (String, i32) {
    match status {
        WaitStatus::Exited(_, code) => (format!("exited with status {code}"), code),
        WaitStatus::Signaled(_, signal, core) => {
            let core = if core { ", core dumped" } else { "" };
            (format!("was killed by signal {} ({}){core}", signal as i32, signal.as_str()), 128 + signal as i32)
        }
        other => (format!("ended in an unexpected state: {other:?}"), EXIT_RUNTIME_ERROR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;
    use nix::unistd::Pid;

    #[test]
    fn a_signal_is_128_plus_its_number() {
        let (line, code) = describe(WaitStatus::Signaled(Pid::from_raw(1), Signal::SIGKILL, false));
        assert_eq!(code, 137);
        assert_eq!(line, "was killed by signal 9 (SIGKILL)");
    }

    #[test]
    fn exec_errors_map_to_docker_codes() {
        let not_found = NotRunnable { command: "nope".into(), errno: Errno::ENOENT };
        let not_executable = NotRunnable { command: "/etc".into(), errno: Errno::EACCES };
        assert_eq!(not_found.exit_code(), 127);
        assert_eq!(not_executable.exit_code(), 126);
    }
}
