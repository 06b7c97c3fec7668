//! What the runtime does with signals while its container runs.
//!
//! Ctrl-C and Ctrl-\ go to the whole foreground process group, so the
//! container already gets them: the runtime ignores them and stays alive to
//! clean up. SIGTERM and SIGHUP are sent to the runtime alone (by `kill`, or a
//! closing terminal): it passes them on to the container, as `docker run`
//! does, and cleans up once the container is gone. Their handler is
//! installed as the runtime starts ([`defer_termination`]): one that arrives
//! before the container exists is kept and passed on as soon as it does, so
//! the runtime is never killed half way through making mounts, directories
//! and cgroups it would then leave behind.

use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::Result;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, kill, sigaction};
use nix::unistd::Pid;

static CHILD: AtomicI32 = AtomicI32::new(0);
static PENDING: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(signal: libc::c_int) {
    let child = CHILD.load(Ordering::SeqCst);
    if child <= 0 {
        PENDING.store(signal, Ordering::SeqCst);
    } else if let Ok(signal) = Signal::try_from(signal) {
        // kill(2) is async-signal-safe.
        let _ = kill(Pid::from_raw(child), signal);
    }
}

/// Called as the runtime starts: SIGTERM and SIGHUP are caught from now on.
/// (A forked child gets the default action back when it execs.)
pub fn defer_termination() {
    let pass_on = SigAction::new(SigHandler::Handler(forward), SaFlags::SA_RESTART, SigSet::empty());
    for signal in [Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: `forward` only touches atomics and calls kill(2), both
        // async-signal-safe.
        let _ = unsafe { sigaction(signal, &pass_on) };
    }
}

/// Called by the parent right after it created the container's first
/// process: passes on what arrived before, and from now on ignores what the
/// terminal sends the whole process group.
pub fn forward_to(child: Pid) -> Result<()> {
    CHILD.store(child.as_raw(), Ordering::SeqCst);
    let pending = PENDING.swap(0, Ordering::SeqCst);
    if let Ok(signal) = Signal::try_from(pending) {
        let _ = kill(child, signal);
    }
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    for signal in [Signal::SIGINT, Signal::SIGQUIT] {
        // SAFETY: ignoring a signal installs no code to run.
        unsafe { sigaction(signal, &ignore) }?;
    }
    defer_termination();
    Ok(())
}
