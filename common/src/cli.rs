//! Command-line parsing shared by the steps: clap, but with Docker's exit
//! status for bad input (125) and a short message.

use std::path::Path;

use clap::Parser;
use clap::error::ErrorKind;

/// Parses the command line into `T`, after making SIGTERM and SIGHUP wait
/// for the container (see [`crate::signals`]). `--help` and `--version` print and exit
/// 0; any other problem prints clap's first line plus a pointer to `--help`
/// and exits 125.
pub fn parse<T: Parser>() -> T {
    // First of all, so that a SIGTERM never cuts the runtime off half way.
    crate::signals::defer_termination();
    match T::try_parse() {
        Ok(parsed) => parsed,
        Err(err) if matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = err.print();
            std::process::exit(0)
        }
        Err(err) if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            std::process::exit(crate::EXIT_RUNTIME_ERROR)
        }
        Err(err) => {
            // clap's first paragraph says what is wrong (a missing argument
            // is named on the lines after the first); the usage follows.
            let rendered = err.render().to_string();
            let first: Vec<&str> = rendered.lines().take_while(|line| !line.trim().is_empty()).map(str::trim).collect();
            say(&crate::errors::fit(&format!("{}: {} (see --help)", program_name(), first.join(" "))));
            std::process::exit(crate::EXIT_RUNTIME_ERROR)
        }
    }
}

/// Writes one line to stderr with a single write(2), and ignores failure:
/// `eprintln!` panics when stderr is a closed pipe, and a runtime that panics
/// before its cleanup leaves mounts, directories and cgroups behind.
pub fn say(line: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

/// The running binary's name, for messages (`step02-chroot: error: …`).
pub fn program_name() -> String {
    std::env::args()
        .next()
        .as_deref()
        .map(std::path::Path::new)
        .and_then(|path| path.file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "docker-from-scratch".into())
}

/// A size such as `64m`, `1g`, `512k` or `1048576` (bytes), as Docker takes
/// for `--memory`. For clap's `value_parser`. At most `i64::MAX` bytes: the
/// kernel's cgroup and rlimit values are signed 64-bit numbers, and a size
/// that does not fit would wrap around into a negative one.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (digits, unit) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1u64 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1 << 30),
        _ => (lower, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!("invalid size {text:?}: use bytes or a number with k, m or g (64m)"));
    }
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|bytes| i64::try_from(*bytes).is_ok())
        .ok_or_else(|| format!("size {text:?} is too large: use at most 8589934591g"))
}

/// Docker's smallest memory limit (moby's `linuxMinMemory`): below it a
/// container cannot even start its first process.
pub const MIN_MEMORY: i64 = 6 << 20;

/// `--memory`: a size of at least 6m (Docker's minimum), or 0 for no limit,
/// as in Docker.
pub fn parse_memory(text: &str) -> Result<i64, String> {
    let bytes = parse_size(text)? as i64;
    if bytes != 0 && bytes < MIN_MEMORY {
        return Err(format!("--memory {text:?} is below Docker's minimum of 6m: use at least 6m, or 0 for no limit"));
    }
    Ok(bytes)
}

/// The exit statuses every step documents in its `--help`.
pub const EXIT_CODES: &str = "\
Exit status:
  the command's own status    when the command ran
  128+N                       when the command died of signal N (137 = SIGKILL)
  126                         the command was found but cannot be executed
  127                         the command was not found in the container
  125                         the runtime itself failed (bad option, missing image, not root, ...)";

/// `--memory-swap`: a size (memory plus swap), -1 for unlimited swap, or 0
/// for Docker's default (as much swap as memory).
pub fn parse_swap(text: &str) -> Result<i64, String> {
    if text.trim() == "-1" {
        return Ok(-1);
    }
    parse_size(text)
        .map(|bytes| bytes as i64)
        .map_err(|err| format!("{err}; or -1 for unlimited swap, 0 for as much swap as memory"))
}

/// `--cpus`: a decimal number of CPUs from 0.01 up to the number of CPUs
/// this process may run on (Docker checks the same range, with the same
/// words), or 0 for no limit.
pub fn parse_cpus(text: &str) -> Result<f64, String> {
    cpus_within(text, host_cpus())
}

fn cpus_within(text: &str, host: usize) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(cpus) if cpus == 0.0 || (cpus >= 0.01 && cpus <= host as f64) => Ok(cpus),
        _ => Err(format!(
            "invalid --cpus {text:?}: the range of CPUs is from 0.01 to {host}.00, as there are only {host} CPUs available (0 for no limit)"
        )),
    }
}

/// How many CPUs this process may run on, as Docker counts them (Go's
/// `runtime.NumCPU`: the affinity mask of sched_getaffinity(2)).
fn host_cpus() -> usize {
    match nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
        Ok(set) => (0..nix::sched::CpuSet::count()).filter(|cpu| set.is_set(*cpu).unwrap_or(false)).count().max(1),
        Err(_) => std::thread::available_parallelism().map_or(1, usize::from),
    }
}

/// `--pids-limit`: a number of processes, or 0 or -1 for no limit (Docker's
/// meaning for both).
pub fn parse_pids_limit(text: &str) -> Result<i64, String> {
    match text.trim().parse::<i64>() {
        Ok(limit) if limit >= -1 => Ok(limit),
        _ => Err(format!("invalid --pids-limit {text:?}: use a number of processes, or 0 or -1 for no limit")),
    }
}

/// `--hostname`: what sethostname(2) takes (at most 64 bytes) and what DNS
/// would: letters, digits, '-' and '.'.
pub fn parse_hostname(text: &str) -> Result<String, String> {
    let valid =
        !text.is_empty() && text.len() <= 64 && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if valid {
        Ok(text.to_string())
    } else {
        Err(format!("invalid --hostname {text:?}: use 1 to 64 letters, digits, '-' or '.'"))
    }
}

/// Fails, naming the directory and the fix, when a container's directory
/// could not be made under `dir`: a part of the path that is a file, or a
/// read-only filesystem. Checked before the run creates anything, so that
/// such a `--container-dir` leaves nothing behind (not even the parents that
/// `create_dir_all` would have made before failing).
pub fn check_container_dir(dir: &Path) -> anyhow::Result<()> {
    // The deepest part of the path that exists is where the first mkdir
    // would happen; every part above it must be a directory.
    let mut existing = dir;
    loop {
        match std::fs::metadata(existing) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) => anyhow::bail!(
                "--container-dir {}: {} is not a directory: use a --container-dir whose parts are all directories",
                dir.display(),
                existing.display()
            ),
            Err(err) if matches!(err.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                let parent = match existing.parent() {
                    Some(parent) if parent.as_os_str().is_empty() => Path::new("."),
                    Some(parent) => parent,
                    None => break,
                };
                if parent == existing {
                    break;
                }
                existing = parent;
            }
            Err(err) => anyhow::bail!("--container-dir {}: cannot stat {}: {err}", dir.display(), existing.display()),
        }
    }
    // access(2) answers for the real uid, root here, whose writes only a
    // read-only mount (EROFS) or an immutable directory (EACCES) can stop.
    match nix::unistd::access(existing, nix::unistd::AccessFlags::W_OK) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EROFS) => anyhow::bail!(
            "--container-dir {}: {} is on a read-only filesystem: use a --container-dir on a writable one",
            dir.display(),
            existing.display()
        ),
        Err(errno) => anyhow::bail!(
            "--container-dir {}: {} is not writable ({errno}): use a --container-dir root can write to",
            dir.display(),
            existing.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::{
        check_container_dir, cpus_within, parse_hostname, parse_memory, parse_pids_limit, parse_size, parse_swap,
    };

    #[test]
    fn sizes_take_docker_suffixes() {
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("512kb"), Ok(512 << 10));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn hostnames_fit_sethostname() {
        assert!(parse_hostname("web-1.local").is_ok());
        assert!(parse_hostname("").is_err());
        assert!(parse_hostname(&"h".repeat(65)).is_err());
        assert!(parse_hostname("a b").is_err());
    }

    #[test]
    fn sizes_that_overflow_are_refused_not_wrapped() {
        assert_eq!(parse_size("8589934591g"), Ok(8589934591 << 30));
        assert_eq!(parse_size("9223372036854775807"), Ok(i64::MAX as u64));
        for text in ["8589934592g", "9223372036854775808", "99999999999999999999", "18446744073709551615"] {
            assert!(parse_size(text).unwrap_err().contains("too large"), "{text}");
        }
        assert!(parse_size("+5").is_err());
        assert!(parse_size("m").is_err());
    }

    #[test]
    fn memory_is_dockers_minimum_or_zero_for_no_limit() {
        assert_eq!(parse_memory("0"), Ok(0));
        assert_eq!(parse_memory("6m"), Ok(6 << 20));
        let err = parse_memory("4m").unwrap_err();
        assert!(err.contains("\"4m\"") && err.contains("Docker's minimum of 6m"), "{err}");
        assert!(parse_memory("6291455").is_err());
    }

    #[test]
    fn memory_swap_takes_minus_one_and_sizes() {
        assert_eq!(parse_swap("-1"), Ok(-1));
        assert_eq!(parse_swap("0"), Ok(0));
        assert_eq!(parse_swap("128m"), Ok(128 << 20));
        assert!(parse_swap("-2").unwrap_err().contains("-1 for unlimited swap"));
        assert!(parse_swap("99999999999g").unwrap_err().contains("too large"));
    }

    #[test]
    fn cpus_are_refused_above_the_hosts_with_dockers_range() {
        assert_eq!(cpus_within("0", 4), Ok(0.0));
        assert_eq!(cpus_within("0.01", 4), Ok(0.01));
        assert_eq!(cpus_within("4", 4), Ok(4.0));
        for text in ["4.01", "0.001", "-1", "nan", "inf", "many"] {
            let err = cpus_within(text, 4).unwrap_err();
            assert!(err.contains("from 0.01 to 4.00, as there are only 4 CPUs available"), "{text}: {err}");
        }
    }

    #[test]
    fn pids_limit_zero_and_minus_one_are_no_limit() {
        assert_eq!(parse_pids_limit("0"), Ok(0));
        assert_eq!(parse_pids_limit("-1"), Ok(-1));
        assert_eq!(parse_pids_limit("20"), Ok(20));
        assert!(parse_pids_limit("-2").unwrap_err().contains("0 or -1 for no limit"));
    }

    #[test]
    fn a_container_dir_through_a_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let err = check_container_dir(&file.join("containers")).unwrap_err().to_string();
        assert!(err.contains(&format!("{} is not a directory", file.display())), "{err}");
        assert!(check_container_dir(&file).is_err());
        assert!(check_container_dir(&dir.path().join("new/containers")).is_ok());
        assert!(check_container_dir(std::path::Path::new("relative/containers")).is_ok());
    }
}
