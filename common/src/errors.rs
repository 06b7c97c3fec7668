//! How the runtime's own errors end: one line naming what failed, one hint
//! when the failure is a known one, exit status 125.

use anyhow::{Result, bail};
use nix::errno::Errno;
use nix::unistd::Uid;

use crate::EXIT_RUNTIME_ERROR;
use crate::cli::program_name;
use crate::cli::say;

/// Prints the error (with its chain of causes on one line) and, when it is a
/// known failure mode, a hint; then exits 125, or 128+N when a signal
/// stopped the run before the container started.
pub fn die(err: anyhow::Error) -> ! {
    print(&err);
    std::process::exit(crate::signals::exit_code(&err).unwrap_or(EXIT_RUNTIME_ERROR))
}

/// Prints the error the way [`die`] does, without exiting.
pub fn print(err: &anyhow::Error) {
    let program = program_name();
    say(&fit(&format!("{program}: error: {err:#}")));
    if let Some(hint) = hint_for(err) {
        say(&fit(&format!("{program}: hint: {hint}")));
    }
}

/// The longest line [`fit`] lets through, in characters.
pub const MAX_LINE: usize = 300;

/// One error line as a terminal should get it: characters that are not
/// text (control characters such as a newline or ESC, and the invisible
/// ones that reorder text, like U+202E) are escaped the way Rust writes
/// them (`\n`, `\u{1b}`), and a line longer than [`MAX_LINE`] characters
/// keeps its start (what failed) and its end (the reason, the errno) with
/// `…` between them. Whatever a user or a container puts in a path, a
/// command or a value, an error is one readable line. Bytes that are not
/// UTF-8 never get this far raw: `{:?}` shows them as `\xFF`, `display()`
/// as U+FFFD.
pub fn fit(line: &str) -> String {
    // Cut only between escaped characters, never inside one (or inside a
    // multi-byte UTF-8 sequence): the line is built from whole pieces.
    let pieces: Vec<String> = line.chars().map(escape).collect();
    let total: usize = pieces.iter().map(|piece| piece.chars().count()).sum();
    if total <= MAX_LINE {
        return pieces.concat();
    }
    let cut = " … ";
    let tail_budget = MAX_LINE / 3;
    let head_budget = MAX_LINE - tail_budget - cut.chars().count();
    // How many whole pieces fit in `budget` characters.
    let fitting = |pieces: &mut dyn Iterator<Item = &String>, budget: usize| {
        pieces
            .scan(0, |used, piece| {
                *used += piece.chars().count();
                (*used <= budget).then_some(())
            })
            .count()
    };
    let head = fitting(&mut pieces.iter(), head_budget);
    let tail = fitting(&mut pieces.iter().rev(), tail_budget);
    format!("{}{cut}{}", pieces[..head].concat(), pieces[pieces.len() - tail..].concat())
}

fn escape(c: char) -> String {
    // Bidirectional overrides and isolates, and the marks that steer them:
    // invisible, but they make a terminal show the line in another order.
    let reorders =
        matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if c.is_control() {
        c.escape_debug().to_string()
    } else if reorders {
        c.escape_unicode().to_string()
    } else {
        c.to_string()
    }
}

/// The steps from step02 on need root: they mount, chroot, and later create
/// namespaces and cgroups. Say so before trying, instead of failing on EPERM
/// half way through.
pub fn require_root() -> Result<()> {
    if !Uid::effective().is_root() {
        let line: Vec<String> = std::env::args().collect();
        bail!("must run as root (this step mounts filesystems and changes its root): try `sudo {}`", line.join(" "));
    }
    Ok(())
}

/// Known failure modes and what to do about them. Matched against the error
/// message chain and the errno at its root; the first match wins.
const HINTS: &[(&str, Option<Errno>, &str)] = &[
    ("overlay", Some(Errno::ENODEV), "this kernel has no overlay filesystem: load it with `modprobe overlay`"),
    (
        "mount(\"overlay\"",
        Some(Errno::ENOENT),
        "a lower dir is missing, or the options are over one page (4096 bytes, about 35 layers at the image store's paths), which mount(2) cuts short: use an image with fewer layers or a shorter --image-dir",
    ),
    (
        "memory.memsw",
        None,
        "cgroup v1 without swap accounting has no memory.memsw files: boot with swapaccount=1, or leave out --memory-swap",
    ),
    (
        "memory.swap.max",
        None,
        "this cgroup v2 has no swap accounting (memory.swap.max is missing): leave out --memory-swap",
    ),
    (
        "cgroup",
        Some(Errno::ENOENT),
        "a cgroup controller or file is missing: check `cat /proc/cgroups` and that /sys/fs/cgroup is mounted",
    ),
    (
        "mount_setattr",
        Some(Errno::EINVAL),
        "this kernel or filesystem cannot make idmapped mounts (Linux 5.12+, overlay layers 5.19+)",
    ),
    (
        "",
        Some(Errno::EPERM),
        "the kernel refused a privileged operation: run as root on the host, not inside an unprivileged container",
    ),
    (
        "",
        Some(Errno::ENOSPC),
        "out of space, or out of a namespace or cgroup quota (see /proc/sys/user/max_*_namespaces)",
    ),
];

fn hint_for(err: &anyhow::Error) -> Option<&'static str> {
    let text = format!("{err:#}");
    let errno = err.chain().find_map(|cause| cause.downcast_ref::<Errno>()).copied();
    HINTS
        .iter()
        .find(|(needle, want, _)| text.contains(needle) && want.is_none_or(|want| Some(want) == errno))
        .map(|(_, _, hint)| *hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_enodev_gets_the_modprobe_hint() {
        let err = anyhow::Error::new(Errno::ENODEV).context("mount(Some(\"overlay\"), …) failed");
        assert!(hint_for(&err).unwrap().contains("modprobe overlay"));
    }

    #[test]
    fn overlay_enoent_names_the_one_page_limit() {
        let err = anyhow::Error::new(Errno::ENOENT)
            .context("mount(\"overlay\", \"/m\", \"overlay\", MS_NODEV, \"lowerdir=…\") failed");
        assert!(hint_for(&err).unwrap().contains("4096 bytes"));
    }

    #[test]
    fn unknown_failures_get_no_hint() {
        let err = anyhow::Error::new(Errno::EIO).context("read failed");
        assert_eq!(hint_for(&err), None);
    }

    #[test]
    fn lines_keep_their_start_and_end_within_the_limit() {
        assert_eq!(fit("short line"), "short line");
        let line = format!("start {} end: EINVAL", "é".repeat(1000));
        let fitted = fit(&line);
        assert!(fitted.chars().count() <= MAX_LINE, "{} chars", fitted.chars().count());
        assert!(fitted.starts_with("start é") && fitted.ends_with("é end: EINVAL") && fitted.contains(" … "));
    }

    #[test]
    fn bytes_that_are_not_text_are_escaped_and_never_cut() {
        assert_eq!(fit("a\nb\tc\u{1b}[31m\u{202e}d\u{7f}"), "a\\nb\\tc\\u{1b}[31m\\u{202e}d\\u{7f}");
        assert_eq!(fit("naïve ünïcode ✓"), "naïve ünïcode ✓");
        // Bytes that are not UTF-8 arrive as `{:?}` shows a path: escaped.
        let path = std::path::Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"/a\xff\n"));
        assert_eq!(fit(&format!("{path:?}")), "\"/a\\xFF\\n\"");
        // A long run of escapes is cut between escapes, not inside one.
        let fitted = fit(&"\u{1b}".repeat(500));
        assert!(fitted.chars().count() <= MAX_LINE);
        let (head, tail) = fitted.split_once(" … ").unwrap();
        assert!(head.starts_with("\\u{1b}") && head.ends_with("\\u{1b}"), "{head}");
        assert!(tail.starts_with("\\u{1b}") && tail.ends_with("\\u{1b}"), "{tail}");
    }
}
