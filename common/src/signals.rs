//! What the runtime does with signals while its container runs.
//!
//! Ctrl-C and Ctrl-\ go to the whole foreground process group, so the
//! container already gets them: the runtime ignores them and stays alive to
//! clean up. SIGTERM and SIGHUP are sent to the runtime alone (by `kill`, or a
//! closing terminal): it passes them on to the container, as `docker run`
//! does, and cleans up once the container is gone.

use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::Result;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, kill, sigaction};
use nix::unistd::Pid;

static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(signal: libc::c_int) {
    let child = CHILD.load(Ordering::Relaxed);
    if child > 0
        && let Ok(signal) = Signal::try_from(signal)
    {
        // kill(2) is async-signal-safe.
        let _ = kill(Pid::from_raw(child), signal);
    }
}

/// Called by the parent right after it created the container's first process.
pub fn forward_to(child: Pid) -> Result<()> {
    CHILD.store(child.as_raw(), Ordering::Relaxed);
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    let pass_on = SigAction::new(SigHandler::Handler(forward), SaFlags::SA_RESTART, SigSet::empty());
    for signal in [Signal::SIGINT, Signal::SIGQUIT] {
        // SAFETY: ignoring a signal installs no code to run.
        unsafe { sigaction(signal, &ignore) }?;
    }
    for signal in [Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: `forward` only reads an atomic and calls kill(2), both
        // async-signal-safe.
        unsafe { sigaction(signal, &pass_on) }?;
    }
    Ok(())
}
