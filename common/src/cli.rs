//! Command-line parsing shared by the steps: clap, but with Docker's exit
//! status for bad input (125) and a short message.

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
            say(&format!("{}: {} (see --help)", program_name(), first.join(" ")));
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
/// for `--memory`. For clap's `value_parser`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (digits, unit) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1u64 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1 << 30),
        _ => (lower, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("invalid size {text:?}: use bytes or a number with k, m or g (64m)"))
}

/// The exit statuses every step documents in its `--help`.
pub const EXIT_CODES: &str = "\
Exit status:
  the command's own status    when the command ran
  128+N                       when the command died of signal N (137 = SIGKILL)
  126                         the command was found but cannot be executed
  127                         the command was not found in the container
  125                         the runtime itself failed (bad option, missing image, not root, ...)";

/// `--memory-swap`: a size, or -1 for unlimited swap.
pub fn parse_swap(text: &str) -> Result<i64, String> {
    if text.trim() == "-1" {
        return Ok(-1);
    }
    parse_size(text).map(|bytes| bytes as i64)
}

/// `--cpus`: a positive decimal number of CPUs (0.5, 2).
pub fn parse_cpus(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(cpus) if cpus >= 0.01 && cpus.is_finite() => Ok(cpus),
        _ => Err(format!("invalid --cpus {text:?}: use a number of CPUs of at least 0.01, like 1.5")),
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

#[cfg(test)]
mod tests {
    use super::{parse_hostname, parse_size};

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
}
