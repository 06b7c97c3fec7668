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
pub fn before(name: &str, arguments: &[String]) {
    if enabled() && name.starts_with("exec") {
        say(&format!("trace[{}] {} ...", std::process::id(), call(name, arguments)));
    }
}

/// Called by [`sys!`] after the call: one line, as strace would print it,
/// `mount("proc", "/…/merged/proc", "proc", MsFlags(0x0), None) = Ok(()) [12.0µs]`.
#[doc(hidden)]
pub fn after<T: Debug, E>(name: &str, arguments: &[String], started: Instant, result: Result<T, E>) -> anyhow::Result<T>
where
    E: std::error::Error + Debug + Send + Sync + 'static,
{
    let took = started.elapsed();
    if enabled() {
        let outcome = match &result {
            Ok(value) => format!("Ok({})", shorten(&strace_style(&format!("{value:?}")), 40)),
            Err(err) => format!("Err({})", errno_style(err)),
        };
        say(&format!("trace[{}] {} = {outcome} [{took:.1?}]", std::process::id(), call(name, arguments)));
    }
    result.map_err(|err| anyhow::Error::new(err).context(format!("{} failed", call(name, arguments))))
}

/// Traces a call that `common` makes with a helper of its own rather than
/// one system call (`remove_tree`, which unlinks a whole tree): one line, as
/// [`sys!`] prints, with the arguments given and the result.
pub fn traced<T: Debug>(
    name: &str,
    arguments: &[String],
    run: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let started = Instant::now();
    let result = run();
    let took = started.elapsed();
    if enabled() {
        let outcome = match &result {
            Ok(value) => format!("Ok({})", shorten(&strace_style(&format!("{value:?}")), 40)),
            Err(err) => format!("Err({})", shorten(&format!("{err:#}"), 80)),
        };
        say(&format!("trace[{}] {} = {outcome} [{took:.1?}]", std::process::id(), call(name, arguments)));
    }
    result
}

/// `name(argument, …)`, kept to about 160 characters: when the arguments
/// are too long together, the longest ones lose their middle (never their
/// ends: a path keeps its start and its last components).
fn call(name: &str, arguments: &[String]) -> String {
    let shown: Vec<String> = arguments
        .iter()
        .enumerate()
        .map(|(index, argument)| by_position(name, index, &strace_style(argument)))
        .collect();
    let mut budget = 160usize.saturating_sub(name.len());
    let mut lengths: Vec<usize> = shown.iter().map(|argument| argument.chars().count()).collect();
    lengths.sort_unstable();
    // The share each argument may keep: the short ones keep all of theirs,
    // the rest split what is left evenly.
    let mut share = usize::MAX;
    for (index, length) in lengths.iter().enumerate() {
        let fair = budget / (lengths.len() - index);
        if *length > fair {
            share = fair.max(24);
            break;
        }
        budget -= length;
    }
    let shown: Vec<String> = shown.iter().map(|argument| shorten(argument, share)).collect();
    format!("{name}({})", shown.join(", "))
}

/// An error as strace shows it: `ENOENT (No such file or directory)` for an
/// OS error, rather than `Os { code: 2, kind: NotFound, … }`.
fn errno_style<E: std::error::Error + Debug + 'static>(err: &E) -> String {
    let io = (err as &dyn std::error::Error).downcast_ref::<std::io::Error>();
    match io.and_then(std::io::Error::raw_os_error) {
        Some(code) => format!("{:?} ({})", nix::errno::Errno::from_raw(code), nix::errno::Errno::from_raw(code).desc()),
        None => format!("{err:?}"),
    }
}

/// What strace knows from a call's signature: mknod's fourth argument is a
/// device number, shown as `makedev(1, 3)` rather than 259.
fn by_position(name: &str, index: usize, shown: &str) -> String {
    match (name, index, shown.parse::<u64>()) {
        ("mknod", 3, Ok(dev)) => {
            // major and minor as glibc's gnu_dev_major/minor split them.
            let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff);
            let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0xff);
            format!("makedev({major}, {minor})")
        }
        // The permission bits of a nix `Mode`, in octal: `0666`.
        ("mknod", 2, _) if shown.starts_with("S_I") => {
            const BITS: &[(&str, u32)] = &[
                ("S_ISUID", 0o4000),
                ("S_ISGID", 0o2000),
                ("S_ISVTX", 0o1000),
                ("S_IRWXU", 0o700),
                ("S_IRUSR", 0o400),
                ("S_IWUSR", 0o200),
                ("S_IXUSR", 0o100),
                ("S_IRWXG", 0o70),
                ("S_IRGRP", 0o40),
                ("S_IWGRP", 0o20),
                ("S_IXGRP", 0o10),
                ("S_IRWXO", 0o7),
                ("S_IROTH", 0o4),
                ("S_IWOTH", 0o2),
                ("S_IXOTH", 0o1),
            ];
            let bits = shown.split('|').map(|name| BITS.iter().find(|(known, _)| *known == name).map(|(_, bit)| *bit));
            match bits.collect::<Option<Vec<u32>>>() {
                Some(bits) => format!("0{:03o}", bits.iter().fold(0, |all, bit| all | bit)),
                None => shown.to_string(),
            }
        }
        // socket(2)'s domain and type by their C names, protocol 0.
        ("socket", 0, _) => format!("AF_{}", shown.to_uppercase()),
        ("socket", 1, _) => match shown {
            "Stream" => "SOCK_STREAM".to_string(),
            "Datagram" => "SOCK_DGRAM".to_string(),
            "Raw" => "SOCK_RAW".to_string(),
            other => other.to_string(),
        },
        ("socket", 3, _) if shown == "NULL" => "0".to_string(),
        // write(2)'s buffer as strace shows it: `"0"`, not `[48]`.
        ("write", 1, _) => text_of_bytes(shown).unwrap_or_else(|| shown.to_string()),
        // cgroups-rs's hierarchy: which cgroup version, not its fields.
        ("Cgroup::new_with_specified_controllers", 0, _) if shown.starts_with("V1") => "cgroup_v1".to_string(),
        ("Cgroup::new_with_specified_controllers", 0, _) if shown.starts_with("V2") => "cgroup_v2".to_string(),
        // A v1 device rule as the devices.allow / devices.deny file takes
        // it: `c 1:3 rwm` is written as (c, 1, 3, rwm).
        (name, _, _) if name.ends_with("allow_device") || name.ends_with("deny_device") => {
            device_rule_part(index, shown)
        }
        _ => shown.to_string(),
    }
}

/// `[48, 10]` (a byte slice's `Debug` form) as `"0\n"`, when every byte is
/// printable ASCII or a newline.
fn text_of_bytes(shown: &str) -> Option<String> {
    let inner = shown.strip_prefix('[')?.strip_suffix(']')?;
    let bytes: Vec<u8> = inner.split(", ").map(|byte| byte.parse().ok()).collect::<Option<_>>()?;
    let text =
        String::from_utf8(bytes).ok().filter(|text| text.chars().all(|c| c == '\n' || (' '..='~').contains(&c)))?;
    Some(format!("{:?}", text))
}

/// One part of a cgroup v1 device rule in the file's own notation: the type
/// (`a`, `b`, `c`), a number or `*` for any, the access (`rwm`).
fn device_rule_part(index: usize, shown: &str) -> String {
    match index {
        0 => match shown {
            "All" => "a",
            "Block" => "b",
            "Char" => "c",
            other => other,
        }
        .to_string(),
        1 | 2 if shown == "-1" => "*".to_string(),
        3 => {
            let letters = [("Read", 'r'), ("Write", 'w'), ("MkNod", 'm')];
            letters.iter().filter(|(name, _)| shown.contains(name)).map(|(_, letter)| *letter).collect()
        }
        _ => shown.to_string(),
    }
}

/// A `Debug` form as strace would write the value: `Some("proc")` is
/// `"proc"`, `None` is `NULL`, `MsFlags(MS_REC | MS_PRIVATE)` is
/// `MS_REC|MS_PRIVATE`, `Pid(42)` is `42`, `OwnedFd { fd: 7 }` is `7`, and a
/// `File { fd: 8, path: "/x", .. }` is `8</x>` (strace -y).
fn strace_style(text: &str) -> String {
    if text == "None" {
        return "NULL".to_string();
    }
    // A pid inside a larger value (`Exited(Pid(42), 0)`) is its number too.
    if let Some(at) = text.find("Pid(").filter(|at| *at > 0)
        && let Some(end) = text[at + 4..].find(')')
    {
        let number = &text[at + 4..at + 4 + end];
        if !number.is_empty() && number.chars().all(|c| c.is_ascii_digit()) {
            return strace_style(&format!("{}{number}{}", &text[..at], &text[at + 5 + end..]));
        }
    }
    // std's Permissions: `Permissions(FilePermissions { mode: 0o000666 })` is `0666`.
    if let Some(mode) =
        text.strip_prefix("Permissions(FilePermissions { mode: 0o").and_then(|rest| rest.strip_suffix(" })"))
        && let Ok(bits) = u32::from_str_radix(mode, 8)
    {
        return format!("0{bits:03o}");
    }
    if let Some(inner) = text.strip_prefix("Some(").and_then(|rest| rest.strip_suffix(')')) {
        return strace_style(inner);
    }
    let named = text.find(['(', ' ']).filter(|at| *at > 0 && text[..*at].chars().all(|c| c.is_ascii_alphanumeric()));
    if let Some(at) = named {
        let rest = &text[at..];
        if let Some(inner) = rest.strip_prefix('(').and_then(|rest| rest.strip_suffix(')')) {
            let flags = !inner.is_empty()
                && inner.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || "_| x".contains(c));
            if flags || inner.chars().all(|c| c.is_ascii_digit()) {
                return if inner == "0x0" { "0".to_string() } else { inner.replace(" | ", "|") };
            }
        }
        if let Some(fields) = rest.strip_prefix(" { ").and_then(|rest| rest.strip_suffix(" }")) {
            let field = |key: &str| fields.split(", ").find_map(|pair| pair.strip_prefix(key)).map(str::to_string);
            if let Some(fd) = field("fd: ") {
                return match field("path: ") {
                    Some(path) => format!("{fd}<{}>", path.trim_matches('"')),
                    None => fd,
                };
            }
            if let Some(pid) = field("pid: ").filter(|_| !fields.contains(',')) {
                return pid;
            }
        }
        // No struct dumps: a long structure is shown by its type's name.
        if text.len() > 60 {
            return format!("{}{{…}}", &text[..at]);
        }
    }
    if text.len() > 60 && text.starts_with('[') {
        return "[…]".to_string();
    }
    text.to_string()
}

/// `text` with its middle replaced by "…" when it is longer than `most`
/// characters.
pub(crate) fn shorten(text: &str, most: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= most {
        return text.to_string();
    }
    let keep = most.saturating_sub(1) / 2;
    let head: String = chars[..keep].iter().collect();
    let tail: String = chars[chars.len() - keep..].iter().collect();
    format!("{head}…{tail}")
}

/// An argument as a trace line or an error shows it: a long byte buffer as
/// `[…]` without reading it, its `Debug` form when it has one, "…" when it
/// has none (a closure, say). The choice is made at compile time by method
/// resolution: `sys!` calls `(&&&Shown(&arg)).show()`, which finds `ViaBytes`
/// (implemented on `&&Shown`) first when it applies, then, one dereference
/// on, `ViaDebug` (on `&Shown`), then `ViaOther` (on `Shown`).
#[doc(hidden)]
pub struct Shown<'a, T: ?Sized>(pub &'a T);

#[doc(hidden)]
pub trait ViaBytes {
    fn show(&self) -> String;
}

/// A byte buffer's length, for [`ViaBytes`].
#[doc(hidden)]
pub trait Bytes {
    fn bytes(&self) -> usize;
}

impl Bytes for [u8] {
    fn bytes(&self) -> usize {
        self.len()
    }
}

impl Bytes for Vec<u8> {
    fn bytes(&self) -> usize {
        self.len()
    }
}

impl<B: Bytes + ?Sized> Bytes for &B {
    fn bytes(&self) -> usize {
        (**self).bytes()
    }
}

impl<B: Bytes + ?Sized> Bytes for &mut B {
    fn bytes(&self) -> usize {
        (**self).bytes()
    }
}

/// The longest byte buffer that is formatted; a longer one is `[…]`, as
/// [`strace_style`] would show its `Debug` form anyway. clone(2)'s stack is
/// 1 MiB: its `Debug` form visits every byte even after the writer has said
/// "enough" (`DebugList` skips the writing, not the walk), a million calls
/// that were a quarter of the runtime's own CPU time at a container start.
const BYTES_SHOWN_MOST: usize = 1024;

impl<T: Bytes + Debug + ?Sized> ViaBytes for &&Shown<'_, T> {
    fn show(&self) -> String {
        if self.0.bytes() > BYTES_SHOWN_MOST {
            return "[…]".to_string();
        }
        capped_debug(self.0)
    }
}

#[doc(hidden)]
pub trait ViaDebug {
    fn show(&self) -> String;
}

impl<T: Debug + ?Sized> ViaDebug for &Shown<'_, T> {
    fn show(&self) -> String {
        capped_debug(self.0)
    }
}

/// `value`'s `Debug` form, up to [`SHOWN_MOST`] bytes of it.
fn capped_debug(value: &(impl Debug + ?Sized)) -> String {
    let mut shown = Capped(String::new());
    // An error here is only Capped saying "enough".
    let _ = std::fmt::Write::write_fmt(&mut shown, format_args!("{value:?}"));
    shown.0
}

/// The most of an argument's `Debug` form that is kept. Every `sys!` call
/// formats its arguments, traced or not (an error names them too), and no
/// trace line or error shows more than a path's worth of one; without a cap,
/// clone(2)'s 1 MiB stack was formatted in full on every run, as
/// `[0, 0, 0, …]`: 3 MiB of memory and milliseconds, to print `[…]`.
const SHOWN_MOST: usize = 16 * 1024;

/// A `fmt::Write` that keeps the first [`SHOWN_MOST`] bytes, then fails,
/// which stops the `Debug` implementation that is writing.
struct Capped(String);

impl std::fmt::Write for Capped {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        let room = SHOWN_MOST - self.0.len();
        if text.len() <= room {
            self.0.push_str(text);
            return Ok(());
        }
        let cut = (0..=room).rev().find(|at| text.is_char_boundary(*at)).unwrap_or(0);
        self.0.push_str(&text[..cut]);
        Err(std::fmt::Error)
    }
}

#[doc(hidden)]
pub trait ViaOther {
    fn show(&self) -> String;
}

impl<T: ?Sized> ViaOther for Shown<'_, T> {
    fn show(&self) -> String {
        "…".to_string()
    }
}

/// Wraps one system call: `sys!(chroot(&rootfs))?`, or one method call
/// that makes system calls: `sys!(memory.set_limit(limit))?`.
///
/// The call itself is written exactly as without the macro, so the step reads
/// like the man page. Each argument is evaluated once, before the call; its
/// value is what `--trace` prints and what an error names:
/// `chroot("/var/lib/…/rootfs") failed: ENOENT: …`.
#[macro_export]
macro_rules! sys {
    // Binds the arguments one by one, in order. Each expansion's `value` is
    // a name of its own (macro hygiene), and a temporary made by an argument
    // (`&rootfs.join("proc")`) lives until the call is over.
    (@bind $call:tt [$($bound:ident)*]) => {
        $crate::sys!(@call $call [$($bound)*])
    };
    (@bind $call:tt [$($bound:ident)*] $first:expr $(, $rest:expr)*) => {
        match $first {
            value => $crate::sys!(@bind $call [$($bound)* value] $($rest),*),
        }
    };
    (@call (function $($function:ident)::+) [$($bound:ident)*]) => {{
        let name = <[&str]>::join(&[$(stringify!($function)),+], "::");
        $crate::sys!(@run name, $($function)::+($($bound),*), [$($bound)*])
    }};
    (@call (method $receiver:ident $method:ident) [$($bound:ident)*]) => {{
        let name = format!("{}.{}", stringify!($receiver), stringify!($method));
        $crate::sys!(@run name, $receiver.$method($($bound),*), [$($bound)*])
    }};
    (@run $name:ident, $call:expr, [$($bound:ident)*]) => {{
        #[allow(unused_imports)]
        use $crate::trace::{ViaBytes as _, ViaDebug as _, ViaOther as _};
        let shown: ::std::vec::Vec<::std::string::String> = ::std::vec![$((&&&$crate::trace::Shown(&$bound)).show()),*];
        $crate::trace::before(&$name, &shown);
        let started = ::std::time::Instant::now();
        let result = $call;
        $crate::trace::after(&$name, &shown, started, result)
    }};
    ($($function:ident)::+ ( $($argument:expr),* $(,)? )) => {
        $crate::sys!(@bind (function $($function)::+) [] $($argument),*)
    };
    ($receiver:ident . $method:ident ( $($argument:expr),* $(,)? )) => {
        $crate::sys!(@bind (method $receiver $method) [] $($argument),*)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    // `&&&Shown(…)` is what `sys!` writes: the borrows pick the impl.
    #[allow(clippy::needless_borrow)]
    fn a_large_argument_is_formatted_only_as_far_as_shown() {
        let long = "x".repeat(1024 * 1024);
        let shown = (&&&Shown(&long)).show();
        assert_eq!(shown.len(), SHOWN_MOST);
        let mut stack = vec![0u8; 1024 * 1024];
        let stack = &mut stack;
        assert_eq!((&&&Shown(&stack)).show(), "[…]");
        assert_eq!(strace_style(&capped_debug(&stack)), "[…]");
        let zero: &[u8] = b"0";
        assert_eq!((&&&Shown(&zero)).show(), "[48]");
        assert_eq!((&&&Shown(&"/var/lib/x")).show(), "\"/var/lib/x\"");
        let closure = || ();
        assert_eq!((&&&Shown(&closure)).show(), "…");
    }

    #[test]
    fn values_read_as_strace_writes_them() {
        assert_eq!(strace_style("Some(\"proc\")"), "\"proc\"");
        assert_eq!(strace_style("None"), "NULL");
        assert_eq!(by_position("write", 1, "[48]"), "\"0\"");
        assert_eq!(by_position("write", 1, "[0, 255]"), "[0, 255]");
        assert_eq!(strace_style("MsFlags(MS_REC | MS_PRIVATE)"), "MS_REC|MS_PRIVATE");
        assert_eq!(strace_style("MsFlags(0x0)"), "0");
        assert_eq!(strace_style("Pid(4242)"), "4242");
        assert_eq!(strace_style("Exited(Pid(4242), 0)"), "Exited(4242, 0)");
        assert_eq!(strace_style("Signaled(Pid(7), SIGKILL, false)"), "Signaled(7, SIGKILL, false)");
        assert_eq!(strace_style("OwnedFd { fd: 7 }"), "7");
        assert_eq!(
            strace_style("File { fd: 8, path: \"/proc/1/ns/user\", read: true, write: false }"),
            "8</proc/1/ns/user>"
        );
        assert_eq!(strace_style("\"/var/lib\""), "\"/var/lib\"");
        assert_eq!(strace_style("Permissions(FilePermissions { mode: 0o000666 })"), "0666");
        assert_eq!(strace_style("Permissions(FilePermissions { mode: 0o001777 })"), "01777");
        assert_eq!(strace_style(&format!("Cgroup {{ subsystems: [{}] }}", "Mem, ".repeat(20))), "Cgroup{…}");
    }

    #[test]
    fn a_device_number_reads_as_makedev() {
        let dev = nix::sys::stat::makedev(1, 3).to_string();
        let line = call("mknod", &["\"/dev/null\"".into(), "S_IFCHR".into(), "Mode(S_IRUSR)".into(), dev]);
        assert_eq!(line, "mknod(\"/dev/null\", S_IFCHR, 0400, makedev(1, 3))");
        let mode = "Mode(S_IRUSR | S_IWUSR | S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)".to_string();
        let line = call("mknod", &["\"/dev/null\"".into(), "SFlag(S_IFCHR)".into(), mode, "259".into()]);
        assert_eq!(line, "mknod(\"/dev/null\", S_IFCHR, 0666, makedev(1, 3))");
        let dev = nix::sys::stat::makedev(136, 300).to_string();
        assert!(call("mknod", &["\"/x\"".into(), "S_IFCHR".into(), "0".into(), dev]).ends_with("makedev(136, 300))"));
    }

    #[test]
    fn sockets_cgroups_and_device_rules_read_as_their_c_names() {
        let args = ["Inet".into(), "Datagram".into(), "SOCK_CLOEXEC".into(), "NULL".into()];
        assert_eq!(call("socket", &args), "socket(AF_INET, SOCK_DGRAM, SOCK_CLOEXEC, 0)");
        let args = ["Char".into(), "1".into(), "3".into(), "[Read, Write, MkNod]".into()];
        assert_eq!(call("devices.allow_device", &args), "devices.allow_device(c, 1, 3, rwm)");
        let args = ["All".into(), "-1".into(), "-1".into(), "[Read, Write, MkNod]".into()];
        assert_eq!(call("devices.deny_device", &args), "devices.deny_device(a, *, *, rwm)");
        let args = ["V1 { subsystems: [] }".into(), "\"docker-from-scratch/x\"".into()];
        assert_eq!(
            call("Cgroup::new_with_specified_controllers", &args),
            "Cgroup::new_with_specified_controllers(cgroup_v1, \"docker-from-scratch/x\")"
        );
    }

    #[test]
    fn an_os_error_reads_as_errno() {
        assert_eq!(errno_style(&std::io::Error::from_raw_os_error(2)), "ENOENT (No such file or directory)");
    }

    #[test]
    fn a_long_call_keeps_its_short_arguments_and_fits() {
        let path = format!("\"/var/lib/docker-from-scratch/containers/{}/merged/proc\"", "0123456789ab".repeat(8));
        let line = call(
            "mount",
            &["Some(\"proc\")".into(), path, "Some(\"proc\")".into(), "MsFlags(0x0)".into(), "None".into()],
        );
        assert!(line.chars().count() <= 170, "{line}");
        assert!(
            line.starts_with("mount(\"proc\", \"/var/lib/") && line.ends_with("/merged/proc\", \"proc\", 0, NULL)"),
            "{line}"
        );
    }
}
