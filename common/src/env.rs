//! The environment a container's command starts with. Like Docker, the
//! host's environment is not passed in: a fixed PATH and HOME, TERM when the
//! host has one, then every `-e`.

use std::ffi::CString;

use anyhow::{Context, Result};

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
pub fn container_env(vars: &[String]) -> Result<Vec<CString>> {
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
    env.into_iter()
        .map(|(key, value)| CString::new(format!("{key}={value}")).context("environment variable contains a NUL byte"))
        .collect()
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
        let env = container_env(&["A=1".into(), "PATH=/bin".into(), "A=2".into()]).unwrap();
        let env: Vec<String> = env.into_iter().map(|c| c.into_string().unwrap()).collect();
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
