//! The environment a container's command starts with. Like Docker, the
//! host's environment is not passed in: a fixed PATH and HOME, TERM when the
//! host has one, then every `-e`. From step07, HOME is the user's home from
//! the image's /etc/passwd ([`with_home`]).

use std::convert::Infallible;
use std::ffi::{CStr, CString};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::unistd::execve;

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// For clap's `value_parser`: `KEY=VALUE`, or `KEY` alone to pass the host's
/// value of KEY (as `docker run -e KEY` does).
pub fn parse_env(text: &str) -> Result<String, String> {
    let key = text.split('=').next().unwrap_or("");
    if key.is_empty() || text.contains('\0') {
        return Err(format!("invalid --env {text:?}: use KEY=VALUE"));
    }
    Ok(text.to_string())
}

/// The environment for execvpe: defaults first, then `-e` values in order,
/// later ones replacing earlier ones with the same key.
///
/// Called in the forked child, it also restores SIGPIPE's default action.
pub fn container_env(vars: &[String]) -> Result<Vec<CString>> {
    let env = build_env(vars);
    // Rust ignores SIGPIPE in every program it builds, and an ignored signal
    // stays ignored across exec: give the command the default back, or
    // `yes | head -1` in the container would never end by SIGPIPE.
    // SAFETY: restoring the default action installs no handler.
    let _ =
        unsafe { sigaction(Signal::SIGPIPE, &SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty())) };
    env.into_iter()
        .map(|(key, value)| CString::new(format!("{key}={value}")).context("environment variable contains a NUL byte"))
        .collect()
}

/// execvpe(3) as a container needs it: `file` is looked up on the PATH of
/// the environment the command gets (the container's, where glibc would use
/// the runtime's own), then run with execve(2). Unlike glibc's, a file the
/// kernel refuses with ENOEXEC (no `#!` line, random bytes, a corrupt ELF)
/// is reported as such (exit 126, "exec format error") and never handed to
/// /bin/sh to run as a script. Like runc's lookup, a name with a `/` is
/// taken as it is.
pub fn execvpe(file: &CStr, argv: &[CString], env: &[CString]) -> nix::Result<Infallible> {
    if file.to_bytes().contains(&b'/') {
        return execve(file, argv, env);
    }
    let path = env.iter().find_map(|var| var.to_bytes().strip_prefix(b"PATH=")).unwrap_or(DEFAULT_PATH.as_bytes());
    let mut denied = false;
    for dir in path.split(|byte| *byte == b':') {
        let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
        let Ok(candidate) = CString::new([dir, b"/", file.to_bytes()].concat()) else { continue };
        match execve(&candidate, argv, env) {
            Err(Errno::EACCES) => denied = true,
            Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP | Errno::ENAMETOOLONG) => {}
            Err(errno) => return Err(errno),
            Ok(never) => match never {},
        }
    }
    Err(if denied { Errno::EACCES } else { Errno::ENOENT })
}

/// `vars` (the `-e` values) after `HOME=home`: the user's home, which an
/// `-e HOME=…` then replaces, as in Docker.
pub fn with_home(home: &str, vars: &[String]) -> Vec<String> {
    let mut all = vec![format!("HOME={home}")];
    all.extend(vars.iter().cloned());
    all
}

fn build_env(vars: &[String]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![("PATH".into(), DEFAULT_PATH.into()), ("HOME".into(), "/root".into())];
    if let Ok(term) = std::env::var("TERM") {
        env.push(("TERM".into(), term));
    }
    for var in vars {
        let (key, value) = match var.split_once('=') {
            Some((key, value)) => (key.to_string(), value.to_string()),
            None => match std::env::var(var) {
                Ok(value) => (var.clone(), value),
                Err(_) => continue,
            },
        };
        env.retain(|(existing, _)| *existing != key);
        env.push((key, value));
    }
    env
}

/// The command line as C strings for execvp.
pub fn command_line(command: &[String]) -> Result<Vec<CString>> {
    command
        .iter()
        .map(|arg| CString::new(arg.as_bytes()).with_context(|| format!("argument {arg:?} contains a NUL byte")))
        .collect()
}

/// close_range(first, ~0U, CLOSE_RANGE_CLOEXEC): every descriptor from
/// `first` up closes when the process execs, whoever opened it (the runtime,
/// or the caller that started it), so only stdin, stdout and stderr cross
/// into the container. Marking them instead of closing them now keeps the
/// ones the child still needs until exec working. Linux 5.11+.
pub fn close_range_cloexec(first: u32) -> nix::Result<()> {
    // SAFETY: close_range(2) takes plain integers and touches no memory.
    let res = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    Errno::result(res).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_values_replace_earlier_ones() {
        let env = build_env(&["A=1".into(), "PATH=/bin".into(), "A=2".into()]);
        let env: Vec<String> = env.into_iter().map(|(key, value)| format!("{key}={value}")).collect();
        assert!(env.contains(&"A=2".to_string()));
        assert!(!env.contains(&"A=1".to_string()));
        assert!(env.contains(&"PATH=/bin".to_string()));
        assert_eq!(env.iter().filter(|v| v.starts_with("PATH=")).count(), 1);
    }

    #[test]
    fn the_users_home_gives_way_to_dash_e() {
        let home = |vars: &[&str], home: &str| {
            let vars: Vec<String> = vars.iter().map(|var| var.to_string()).collect();
            let env = build_env(&with_home(home, &vars));
            env.into_iter().filter(|(key, _)| key == "HOME").map(|(_, value)| value).collect::<Vec<_>>()
        };
        assert_eq!(home(&[], "/nonexistent"), ["/nonexistent"]);
        assert_eq!(home(&["HOME=/work"], "/nonexistent"), ["/work"]);
    }

    #[test]
    fn env_without_key_is_rejected() {
        assert!(parse_env("=x").is_err());
        assert!(parse_env("K=V").is_ok());
        assert!(parse_env("HOME").is_ok());
    }
}
