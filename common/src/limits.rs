//! `--ulimit NAME=SOFT[:HARD]`: the resources setrlimit(2) knows, by the
//! names `ulimit` and Docker use.

use anyhow::{Context, Result, bail};
use nix::sys::resource::{Resource, getrlimit};

/// One resource limit to set in the container.
#[derive(Clone, Copy, Debug)]
pub struct Ulimit {
    pub resource: Resource,
    pub soft: u64,
    pub hard: u64,
}

const RESOURCES: &[(&str, Resource)] = &[
    ("as", Resource::RLIMIT_AS),
    ("core", Resource::RLIMIT_CORE),
    ("cpu", Resource::RLIMIT_CPU),
    ("data", Resource::RLIMIT_DATA),
    ("fsize", Resource::RLIMIT_FSIZE),
    ("locks", Resource::RLIMIT_LOCKS),
    ("memlock", Resource::RLIMIT_MEMLOCK),
    ("msgqueue", Resource::RLIMIT_MSGQUEUE),
    ("nice", Resource::RLIMIT_NICE),
    ("nofile", Resource::RLIMIT_NOFILE),
    ("nproc", Resource::RLIMIT_NPROC),
    ("rss", Resource::RLIMIT_RSS),
    ("rtprio", Resource::RLIMIT_RTPRIO),
    ("sigpending", Resource::RLIMIT_SIGPENDING),
    ("stack", Resource::RLIMIT_STACK),
];

fn value(text: &str) -> Option<u64> {
    match text {
        "unlimited" | "-1" => Some(libc::RLIM_INFINITY),
        _ => crate::cli::parse_size(text).ok(),
    }
}

/// For clap's `value_parser`: `as=64m`, `nofile=1024:2048`, `core=0`. Sizes
/// take k, m, g; `unlimited` (or -1) for no limit; HARD defaults to SOFT.
pub fn parse_ulimit(text: &str) -> Result<Ulimit, String> {
    let names: Vec<&str> = RESOURCES.iter().map(|(name, _)| *name).collect();
    let bad = || format!("invalid --ulimit {text:?}: use NAME=SOFT[:HARD] with NAME one of {}", names.join(", "));
    let (name, values) = text.split_once('=').ok_or_else(bad)?;
    let resource = RESOURCES.iter().find(|(known, _)| *known == name).map(|(_, resource)| *resource).ok_or_else(bad)?;
    let (soft, hard) = values.split_once(':').unwrap_or((values, values));
    let (Some(soft), Some(hard)) = (value(soft), value(hard)) else { return Err(bad()) };
    if soft > hard {
        return Err(format!("invalid --ulimit {text:?}: the soft limit is above the hard limit"));
    }
    Ok(Ulimit { resource, soft, hard })
}

/// `--ulimit` as the user wrote it, from the parsed values.
fn shown(limit: &Ulimit) -> String {
    let name = RESOURCES.iter().find(|(_, resource)| *resource == limit.resource).map_or("?", |(name, _)| *name);
    if limit.soft == limit.hard {
        format!("{name}={}", shown_value(limit.hard))
    } else {
        format!("{name}={}:{}", shown_value(limit.soft), shown_value(limit.hard))
    }
}

fn shown_value(value: u64) -> String {
    if value == libc::RLIM_INFINITY { "unlimited".to_string() } else { value.to_string() }
}

/// Fails, naming the limit and its maximum, when a `--ulimit` hard limit is
/// above what the container's process may set. It inherits the runtime's
/// limits and may only lower them: raising a hard limit takes
/// CAP_SYS_RESOURCE in the host's user namespace, which a container never
/// has (it is not in Docker's default set, and in a user namespace it does
/// not count for the host). For `nofile` the kernel also caps every hard
/// limit at fs.nr_open, even root's. Docker sets the limits from outside
/// with prlimit(2) instead, as root, so it is held only to fs.nr_open.
pub fn check_ulimits(ulimits: &[Ulimit]) -> Result<()> {
    for limit in ulimits {
        let (_, allowed) =
            getrlimit(limit.resource).with_context(|| format!("getrlimit({:?}) failed", limit.resource))?;
        let name = shown(limit).split('=').next().unwrap_or_default().to_string();
        let nr_open = if limit.resource == Resource::RLIMIT_NOFILE { nr_open() } else { None };
        if let Some(nr_open) = nr_open.filter(|nr_open| limit.hard > *nr_open) {
            bail!(
                "--ulimit {}: nofile is at most fs.nr_open, {nr_open}, the kernel's limit: use at most {allowed} (the runtime's own hard limit)",
                shown(limit)
            );
        }
        if limit.hard > allowed {
            let ceiling = nr_open.map(|nr_open| format!(", up to fs.nr_open {nr_open}")).unwrap_or_default();
            bail!(
                "--ulimit {}: the hard limit for {name} is at most {allowed}, the runtime's own, which a container cannot raise: use at most {allowed}, or raise the runtime's first (as root{ceiling}: prlimit --{name}=:{} --pid $$)",
                shown(limit),
                shown_value(limit.hard)
            );
        }
    }
    Ok(())
}

/// /proc/sys/fs/nr_open: the most file descriptors a process may have.
fn nr_open() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open").ok()?.trim().parse().ok()
}

/// Fails, naming the flags and the fix, when `--memory-swap` cannot go with
/// `--memory` (both as parsed; 0 is "not set" for both, as in Docker): a
/// swap limit counts memory plus swap, so Docker wants a memory limit with
/// it, and no larger. -1 (unlimited swap) goes with anything.
pub fn check_memory(memory: Option<i64>, memory_swap: Option<i64>) -> Result<()> {
    let memory = memory.unwrap_or(0);
    let total = memory_swap.unwrap_or(0);
    if total > 0 && memory == 0 {
        bail!(
            "--memory-swap needs a --memory no larger than it, not --memory-swap {} alone: set both, like -m 64m --memory-swap 128m",
            size(total)
        );
    }
    if total > 0 && total < memory {
        bail!(
            "--memory-swap needs a --memory no larger than it, not -m {} --memory-swap {}: set both, like -m 64m --memory-swap 128m",
            size(memory),
            size(total)
        );
    }
    Ok(())
}

/// A size the way it is written on the command line: `64m`, `1g`, `1000`.
fn size(bytes: i64) -> String {
    match bytes {
        0 => "0".to_string(),
        _ if bytes % (1 << 30) == 0 => format!("{}g", bytes >> 30),
        _ if bytes % (1 << 20) == 0 => format!("{}m", bytes >> 20),
        _ if bytes % (1 << 10) == 0 => format!("{}k", bytes >> 10),
        _ => bytes.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulimits_parse_like_docker() {
        let limit = parse_ulimit("nofile=1024:2048").unwrap();
        assert_eq!((limit.soft, limit.hard), (1024, 2048));
        let limit = parse_ulimit("as=64m").unwrap();
        assert_eq!((limit.soft, limit.hard), (64 << 20, 64 << 20));
        assert!(parse_ulimit("nofile=2048:1024").is_err());
        assert!(parse_ulimit("bogus=1").is_err());
        assert!(parse_ulimit("nofile").is_err());
    }

    #[test]
    fn memory_swap_needs_a_memory_no_larger() {
        assert!(check_memory(None, None).is_ok());
        assert!(check_memory(Some(64 << 20), Some(128 << 20)).is_ok());
        assert!(check_memory(Some(64 << 20), Some(-1)).is_ok());
        assert!(check_memory(None, Some(-1)).is_ok());
        assert!(check_memory(Some(0), Some(0)).is_ok());
        let err = check_memory(None, Some(128 << 20)).unwrap_err().to_string();
        assert!(err.contains("--memory-swap needs a --memory") && err.contains("--memory-swap 128m alone"), "{err}");
        let err = check_memory(Some(0), Some(128 << 20)).unwrap_err().to_string();
        assert!(err.contains("--memory-swap 128m alone"), "{err}");
        let err = check_memory(Some(64 << 20), Some(32 << 20)).unwrap_err().to_string();
        assert!(err.contains("not -m 64m --memory-swap 32m"), "{err}");
    }

    #[test]
    fn a_hard_limit_above_the_runtimes_names_the_limit_and_the_maximum() {
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        let at = |soft: u64, hard: u64| Ulimit { resource: Resource::RLIMIT_NOFILE, soft, hard };
        assert!(check_ulimits(&[at(hard.min(64), hard)]).is_ok());
        let err = check_ulimits(&[at(64, hard + 1)]).unwrap_err().to_string();
        assert!(err.contains(&format!("--ulimit nofile=64:{}", hard + 1)), "{err}");
        assert!(err.contains(&format!("use at most {hard}")), "{err}");
        assert!(!err.contains("root on the host"), "{err}");
        let err = check_ulimits(&[at(libc::RLIM_INFINITY, libc::RLIM_INFINITY)]).unwrap_err().to_string();
        assert!(err.contains("--ulimit nofile=unlimited") && err.contains("fs.nr_open"), "{err}");
    }
}
