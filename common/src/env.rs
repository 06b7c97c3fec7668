//! The environment a container's command starts with. Like Docker, the
//! host's environment is not passed in: a fixed PATH and HOME, TERM when the
//! host has one, then every `-e`.

use std::ffi::CString;

use anyhow::{Context, Result};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

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
/// Called in the forked child, it also restores SIGPIPE's default action,
/// and makes the container's PATH this process's own: glibc's execvpe searches the PATH of the *calling*
/// process, not the one it passes on, and the command must be looked up
/// where the container would look for it (runc does the same lookup).
pub fn container_env(vars: &[String]) -> Result<Vec<CString>> {
    let env = build_env(vars);
    if let Some((_, path)) = env.iter().find(|(key, _)| key == "PATH") {
        // SAFETY: this runs in the child between fork and exec, where the
        // process has a single thread, so no other thread reads the
        // environment while it changes.
        unsafe { std::env::set_var("PATH", path) };
    }
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
    fn env_without_key_is_rejected() {
        assert!(parse_env("=x").is_err());
        assert!(parse_env("K=V").is_ok());
        assert!(parse_env("HOME").is_ok());
    }
}
