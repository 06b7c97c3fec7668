//! `--ulimit NAME=SOFT[:HARD]`: the resources setrlimit(2) knows, by the
//! names `ulimit` and Docker use.

use nix::sys::resource::Resource;

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
}
