//! What the runtime does with signals, before and while its container runs.
//!
//! SIGTERM, SIGHUP and SIGINT are caught from the first line of `main`
//! ([`defer_termination`]). One that arrives while the runtime is still
//! extracting an image or copying one is remembered: the slow loops ask
//! [`check`] and stop, the start is abandoned, and the runtime removes what
//! it had made and leaves with 128+N. One that arrives while the container
//! is being set up is passed on as soon as its first process exists, and that
//! process, which has not exec'd yet, gives up. Once the container has been
//! handed over ([`forward_to`]), SIGTERM and SIGHUP are
//! passed on to it, as `docker run` does; Ctrl-C and Ctrl-\ already reach the
//! whole foreground process group, container included, so the runtime ignores
//! them and stays alive to clean up. From step07 on the container has a
//! session of its own (setsid(2)) and no longer gets them from the caller's
//! terminal: the step calls [`forward_keyboard_signals`], and the runtime
//! passes SIGINT and SIGQUIT on too, as `docker run` does without `-t` (its
//! `--sig-proxy`).
//!
//! Signals are sent through a pidfd (pidfd_send_signal(2)), not a pid: after
//! the container has been reaped, its pid may belong to another process, but
//! the pidfd still names the one that is gone, and the kernel answers ESRCH.

use std::fmt;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use anyhow::Result;
use nix::errno::Errno;
use nix::sys::prctl::set_pdeathsig;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, kill, sigaction};
use nix::unistd::Pid;

/// The runtime's own pid: a forked child that has not exec'd yet inherits
/// the handler, and must not act as the runtime.
static RUNTIME: AtomicI32 = AtomicI32::new(0);
/// A pidfd for the container's first process, once it has been handed over.
static CHILD: AtomicI32 = AtomicI32::new(-1);
/// A pidfd for the runtime itself, inherited by its forked child, which
/// watches it to die with the runtime ([`die_with_runtime`]).
static RUNTIME_FD: AtomicI32 = AtomicI32::new(-1);
/// The first termination signal that arrived before the hand-over.
static PENDING: AtomicI32 = AtomicI32::new(0);
/// Whether SIGINT and SIGQUIT are passed on after the hand-over too.
static KEYBOARD: AtomicBool = AtomicBool::new(false);

const TERMINATING: [Signal; 3] = [Signal::SIGTERM, Signal::SIGHUP, Signal::SIGINT];

extern "C" fn on_signal(signal: libc::c_int) {
    // SAFETY: getpid(2) is async-signal-safe.
    if unsafe { libc::getpid() } != RUNTIME.load(Ordering::SeqCst) {
        // A forked child before exec: stop setting up. The default action
        // ends it; as PID 1 of a new PID namespace, which the kernel does not
        // let its own default actions kill, it leaves with 128+N instead.
        // SAFETY: signal(2), raise(3) and _exit(2) are async-signal-safe.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
            libc::_exit(128 + signal);
        }
    }
    let child = CHILD.load(Ordering::SeqCst);
    if child < 0 {
        let _ = PENDING.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    } else if signal != libc::SIGINT || KEYBOARD.load(Ordering::SeqCst) {
        // SAFETY: pidfd_send_signal(2) is a plain system call, async-signal-safe.
        let _ = unsafe {
            libc::syscall(libc::SYS_pidfd_send_signal, child, signal, std::ptr::null::<libc::siginfo_t>(), 0)
        };
    }
}

/// Called as the runtime starts: SIGTERM, SIGHUP and SIGINT are caught from
/// now on. (A forked child gets the default actions back when it execs.)
pub fn defer_termination() {
    RUNTIME.store(std::process::id() as i32, Ordering::SeqCst);
    // SAFETY: pidfd_open(2) returns a new file descriptor (close-on-exec, as
    // every pidfd is), or -1; it is kept open for the runtime's lifetime.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, std::process::id(), 0) };
    RUNTIME_FD.store(fd as i32, Ordering::SeqCst);
    let catch = SigAction::new(SigHandler::Handler(on_signal), SaFlags::SA_RESTART, SigSet::empty());
    for signal in TERMINATING {
        // SAFETY: `on_signal` only touches atomics and makes async-signal-safe
        // system calls.
        let _ = unsafe { sigaction(signal, &catch) };
    }
}

/// The run was stopped by a signal before the container was handed over.
/// The runtime removes what it made and exits with 128+N.
#[derive(Debug, Clone, Copy)]
pub struct Interrupted(pub Signal);

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "interrupted by {} before the container started", self.0.as_str())
    }
}

impl std::error::Error for Interrupted {}

impl Interrupted {
    /// The exit status of a run stopped by this signal: 128+N, as a shell says.
    pub fn exit_code(&self) -> i32 {
        128 + self.0 as i32
    }
}

/// The termination signal that arrived, if one did, before the hand-over.
pub fn interrupted() -> Option<Signal> {
    Signal::try_from(PENDING.load(Ordering::SeqCst)).ok()
}

/// Fails with [`Interrupted`] when a termination signal has arrived: called
/// between the steps of a slow job (extraction, copying), so that it stops
/// within a moment and its caller removes what it made.
pub fn check() -> Result<()> {
    match interrupted() {
        Some(signal) => Err(Interrupted(signal).into()),
        None => Ok(()),
    }
}

/// Called by the parent once the container's first process exists: from now
/// on SIGTERM and SIGHUP go to it. A signal that arrived since the last
/// [`check`] is passed on now: a child still setting up stops at once
/// (see `on_signal`), and so the run ends and the runtime cleans up.
pub fn forward_to(child: Pid) -> Result<()> {
    // SAFETY: pidfd_open(2) returns a new file descriptor, or -1.
    let fd = Errno::result(unsafe { libc::syscall(libc::SYS_pidfd_open, child.as_raw(), 0) })
        .map_err(|errno| anyhow::Error::new(errno).context(format!("pidfd_open({child}, 0) failed")))?;
    // SAFETY: the descriptor is new and ours; it stays open until the runtime
    // exits, so the handler never sees it closed.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    if KEYBOARD.load(Ordering::SeqCst) {
        let catch = SigAction::new(SigHandler::Handler(on_signal), SaFlags::SA_RESTART, SigSet::empty());
        // SAFETY: as in `defer_termination`; the child, cloned before, keeps
        // SIGQUIT's default action.
        unsafe { sigaction(Signal::SIGQUIT, &catch) }?;
    } else {
        let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        // SAFETY: ignoring a signal installs no code to run.
        unsafe { sigaction(Signal::SIGQUIT, &ignore) }?;
    }
    CHILD.store(pidfd.as_raw_fd(), Ordering::SeqCst);
    std::mem::forget(pidfd);
    if let Some(signal) = interrupted() {
        let _ = kill(child, signal);
    }
    Ok(())
}

/// Called by the parent before [`forward_to`] when the container has a
/// session of its own: Ctrl-C and Ctrl-\ at the caller's terminal then reach
/// only the runtime (the terminal signals its own foreground process group,
/// which the container left), so after the hand-over SIGINT and SIGQUIT are
/// passed on to the container's first process like SIGTERM. As in Docker, a
/// first process without a handler for them (PID 1 of its namespace) ignores
/// them; with `-t` the caller's terminal is in raw mode and Ctrl-C travels as
/// a byte instead, to the container's own terminal.
pub fn forward_keyboard_signals() {
    KEYBOARD.store(true, Ordering::SeqCst);
}

/// Called in the child just before exec, after its last change of user (a
/// change of uid or gid clears the setting): when the runtime dies, however
/// it dies, the kernel sends the container SIGKILL (PR_SET_PDEATHSIG), even
/// as PID 1 of its own namespace. A runtime that died before this call would
/// never send it, so the child then checks the runtime's pidfd, which becomes
/// readable when the runtime has exited, and gives up.
pub fn die_with_runtime() -> Result<()> {
    crate::sys!(set_pdeathsig(Signal::SIGKILL))?;
    let fd = RUNTIME_FD.load(Ordering::SeqCst);
    let mut poll = [libc::pollfd { fd, events: libc::POLLIN, revents: 0 }];
    // SAFETY: `poll` is a valid array of one pollfd; a timeout of 0 only looks.
    let ready = unsafe { libc::poll(poll.as_mut_ptr(), 1, 0) };
    if fd >= 0 && ready > 0 {
        crate::status::quiet_exit(crate::EXIT_RUNTIME_ERROR);
    }
    Ok(())
}

/// The exit status for an error: 128+N when the run was interrupted, else
/// None (the caller's own status applies).
pub fn exit_code(err: &anyhow::Error) -> Option<i32> {
    err.chain().find_map(|cause| cause.downcast_ref::<Interrupted>()).map(Interrupted::exit_code)
}
