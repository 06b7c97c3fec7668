//! `--trace`: every primitive a step calls goes through [`sys!`], which, when
//! tracing is on, prints the call as written in the source, its result and
//! the time it took. When the call fails, the error names the call with the
//! values of its arguments, so a learner sees what was asked of the kernel.

use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

// One write(2) per line, so that the lines of the parent and of the child,
// both writing to the same stderr, never mix.
use crate::cli::say;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns tracing on or off for this process (and its forked children).
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Prints one narrated line when tracing is on, for steps that want to say
/// which of two paths they took.
pub fn note(message: &str) {
    if enabled() {
        say(&format!("trace[{}] # {message}", std::process::id()));
    }
}

/// Called by [`sys!`] before the call: exec never returns, so its line is
/// printed up front.
#[doc(hidden)]
pub fn before(source: &str) {
    if enabled() && source.starts_with("exec") {
        say(&format!("trace[{}] {source} ...", std::process::id()));
    }
}

/// Called by [`sys!`] after the call.
#[doc(hidden)]
pub fn after<T: Debug, E>(
    source: &str,
    started: Instant,
    result: Result<T, E>,
    arguments: impl FnOnce() -> Vec<String>,
) -> anyhow::Result<T>
where
    E: std::error::Error + Debug + Send + Sync + 'static,
{
    let took = started.elapsed();
    if enabled() {
        match &result {
            Ok(value) => say(&format!("trace[{}] {source} = Ok({value:?}) [{took:.1?}]", std::process::id())),
            Err(err) => say(&format!("trace[{}] {source} = Err({err:?}) [{took:.1?}]", std::process::id())),
        }
    }
    result.map_err(|err| {
        let name = source.split('(').next().unwrap_or(source);
        anyhow::Error::new(err).context(format!("{name}({}) failed", arguments().join(", ")))
    })
}

/// An argument shown in an error message: its `Debug` form when it has one
/// (shortened), "…" when it has none (a closure, say). The choice is made at
/// compile time by method resolution: `ViaDebug` is found first when it
/// applies, `ViaOther` (implemented on a reference) otherwise.
#[doc(hidden)]
pub struct Shown<'a, T: ?Sized>(pub &'a T);

#[doc(hidden)]
pub trait ViaDebug {
    fn show(&self) -> String;
}

impl<T: Debug + ?Sized> ViaDebug for Shown<'_, T> {
    fn show(&self) -> String {
        let text = format!("{:?}", self.0);
        match text.char_indices().nth(120) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text,
        }
    }
}

#[doc(hidden)]
pub trait ViaOther {
    fn show(&self) -> String;
}

impl<T: ?Sized> ViaOther for &Shown<'_, T> {
    fn show(&self) -> String {
        "…".to_string()
    }
}

/// Wraps one system call: `sys!(chroot(&rootfs))?`, or one method call
/// that makes system calls: `sys!(memory.set_limit(limit))?`.
///
/// The call itself is written exactly as without the macro, so the step reads
/// like the man page. A failure becomes an `anyhow` error that names the call
/// and its argument values: `chroot("/var/lib/…/rootfs") failed: ENOENT: …`.
/// Arguments are evaluated again only to print them after a failure, so they
/// should be plain values or references (as system call arguments are).
#[macro_export]
macro_rules! sys {
    ($($function:ident)::+ ( $($argument:expr),* $(,)? )) => {{
        let source = format!("{}({})", <[&str]>::join(&[$(stringify!($function)),+], "::"), <[&str]>::join(&[$(stringify!($argument)),*], ", "));
        $crate::trace::before(&source);
        let started = ::std::time::Instant::now();
        let result = $($function)::+($($argument),*);
        $crate::trace::after(&source, started, result, || {
            #[allow(unused_imports)]
            use $crate::trace::{ViaDebug as _, ViaOther as _};
            vec![$((&$crate::trace::Shown(&$argument)).show()),*]
        })
    }};
    ($receiver:ident . $method:ident ( $($argument:expr),* $(,)? )) => {{
        let source = format!("{}.{}({})", stringify!($receiver), stringify!($method), <[&str]>::join(&[$(stringify!($argument)),*], ", "));
        $crate::trace::before(&source);
        let started = ::std::time::Instant::now();
        let result = $receiver.$method($($argument),*);
        $crate::trace::after(&source, started, result, || {
            #[allow(unused_imports)]
            use $crate::trace::{ViaDebug as _, ViaOther as _};
            vec![$((&$crate::trace::Shown(&$argument)).show()),*]
        })
    }};
}
