//! User and group ids for the user namespace step: `--uidmap`/`--gidmap`
//! ranges, `--user UID[:GID]`, and the capability set a container keeps.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use anyhow::{Result, bail};
use caps::Capability;

/// One line of /proc/PID/uid_map or gid_map: ids `inside..inside+count` in
/// the container are `outside..outside+count` on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdMap {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// Docker's userns-remap default range: container 0–65535 is host
/// 100000–165535.
pub const DEFAULT_MAP: IdMap = IdMap { inside: 0, outside: 100_000, count: 65_536 };

impl IdMap {
    /// The host id for container id `id`, when the map covers it.
    pub fn to_host(&self, id: u32) -> Option<u32> {
        let offset = id.checked_sub(self.inside)?;
        (offset < self.count).then(|| self.outside + offset)
    }
}

impl fmt::Display for IdMap {
    /// The line the kernel expects in uid_map: `inside outside count`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.inside, self.outside, self.count)
    }
}

/// For clap's `value_parser`: `CONTAINER:HOST:SIZE`.
pub fn parse_id_map(text: &str) -> Result<IdMap, String> {
    let parts: Vec<Option<u32>> = text.split(':').map(|part| part.parse().ok()).collect();
    match parts[..] {
        [Some(inside), Some(outside), Some(count)]
            if count > 0 && inside.checked_add(count).is_some() && outside.checked_add(count).is_some() =>
        {
            Ok(IdMap { inside, outside, count })
        }
        _ => Err(format!("invalid id map {text:?}: use CONTAINER:HOST:SIZE, like 0:100000:65536")),
    }
}

/// `--user UID[:GID]`, numeric (the image's /etc/passwd is not read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
}

/// For clap's `value_parser`: `UID` or `UID:GID` (GID defaults to UID).
pub fn parse_user(text: &str) -> Result<User, String> {
    let (uid, gid) = text.split_once(':').unwrap_or((text, text));
    match (uid.parse(), gid.parse()) {
        (Ok(uid), Ok(gid)) => Ok(User { uid, gid }),
        _ => Err(format!("invalid --user {text:?}: use numeric UID or UID:GID, like 1000:1000")),
    }
}

/// Fails, naming the map and the fix, when `--user` names a uid or gid
/// that the user namespace does not map (setuid(2) would fail with EINVAL
/// in the container, after everything was set up), or when a map leaves out
/// the container's root. With `--userns=host` there is no map: any id goes.
pub fn check_user(user: Option<User>, userns_host: bool, uid_map: &IdMap, gid_map: &IdMap) -> Result<()> {
    if userns_host {
        return Ok(());
    }
    let ranges = |flag: &str, kind: &str, map: &IdMap| {
        format!("{flag} {} maps container {kind} {}-{}", flag_value(map), map.inside, map.inside + (map.count - 1))
    };
    for (flag, kind, map) in [("--uidmap", "uids", uid_map), ("--gidmap", "gids", gid_map)] {
        if map.to_host(0).is_none() {
            bail!(
                "{}, not 0, the container's root: start the map at 0, like {flag} 0:{}:{}",
                ranges(flag, kind, map),
                map.outside,
                map.count
            );
        }
    }
    let Some(user) = user else { return Ok(()) };
    if uid_map.to_host(user.uid).is_none() {
        bail!(
            "--user {} is not mapped: {}; use a uid in that range, or a wider --uidmap",
            shown_user(user),
            ranges("--uidmap", "uids", uid_map)
        );
    }
    if gid_map.to_host(user.gid).is_none() {
        bail!(
            "--user {}: gid {} is not mapped: {}; use a gid in that range, or a wider --gidmap",
            shown_user(user),
            user.gid,
            ranges("--gidmap", "gids", gid_map)
        );
    }
    Ok(())
}

/// A map as `--uidmap` takes it: `0:100000:65536`.
fn flag_value(map: &IdMap) -> String {
    format!("{}:{}:{}", map.inside, map.outside, map.count)
}

fn shown_user(user: User) -> String {
    if user.uid == user.gid { user.uid.to_string() } else { format!("{}:{}", user.uid, user.gid) }
}

/// The devpts options for a container's /dev/pts. `gid=5` (the `tty` group
/// of most images) makes new terminals owned by that group, but the kernel
/// refuses the mount (EINVAL) when gid 5 has no mapping in the user
/// namespace, as with `--gidmap 0:0:1`: then the terminals keep the gid of
/// the process that opens them.
pub fn devpts_options(gid_map: &IdMap, userns_host: bool) -> &'static str {
    if userns_host || gid_map.to_host(5).is_some() {
        "newinstance,ptmxmode=0666,mode=0620,gid=5"
    } else {
        "newinstance,ptmxmode=0666,mode=0620"
    }
}

/// Docker's default capabilities (moby's `oci/caps/defaults.go`): enough to
/// run ordinary programs as root, none of the ones that administer the host
/// (no SYS_ADMIN, so no mount; no NET_ADMIN, SYS_MODULE, SYS_PTRACE, …).
pub const DEFAULT_CAPS: &[Capability] = &[
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// For clap's `value_parser`: a capability name with or without `CAP_`, any
/// case, or `ALL`.
pub fn parse_capability(text: &str) -> Result<String, String> {
    let name = text.to_ascii_uppercase();
    if name == "ALL" || Capability::from_str(&capability_name(&name)).is_ok() {
        Ok(name)
    } else {
        Err(format!("unknown capability {text:?}: use a name from capabilities(7), like NET_ADMIN, or ALL"))
    }
}

fn capability_name(name: &str) -> String {
    if name.starts_with("CAP_") { name.to_string() } else { format!("CAP_{name}") }
}

/// The set a container keeps: the defaults, minus `--cap-drop`, plus
/// `--cap-add` (Docker applies drops first, so `--cap-drop ALL --cap-add X`
/// keeps only X).
pub fn capabilities(add: &[String], drop: &[String]) -> Result<HashSet<Capability>> {
    let mut keep: HashSet<Capability> = DEFAULT_CAPS.iter().copied().collect();
    for name in drop {
        if name == "ALL" {
            keep.clear();
        } else {
            keep.remove(&named(name)?);
        }
    }
    for name in add {
        if name == "ALL" {
            keep.extend(caps::all());
        } else {
            keep.insert(named(name)?);
        }
    }
    Ok(keep)
}

fn named(name: &str) -> Result<Capability> {
    match Capability::from_str(&capability_name(name)) {
        Ok(cap) => Ok(cap),
        Err(_) => bail!("unknown capability {name:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_defaults_are_the_documented_mask() {
        let mask: u64 = DEFAULT_CAPS.iter().map(|cap| cap.bitmask()).sum();
        assert_eq!(mask, 0xa80425fb);
    }

    #[test]
    fn drop_all_then_add_keeps_only_the_added() {
        let keep = capabilities(&["NET_ADMIN".into()], &["ALL".into()]).unwrap();
        assert_eq!(keep, HashSet::from([Capability::CAP_NET_ADMIN]));
    }

    #[test]
    fn maps_parse_and_translate() {
        let map = parse_id_map("0:100000:65536").unwrap();
        assert_eq!(map, DEFAULT_MAP);
        assert_eq!(map.to_host(0), Some(100_000));
        assert_eq!(map.to_host(65_536), None);
        assert!(parse_id_map("0:100000").is_err());
        assert!(parse_id_map("0:100000:0").is_err());
        assert_eq!(parse_user("1000"), Ok(User { uid: 1000, gid: 1000 }));
        assert_eq!(parse_user("1:2"), Ok(User { uid: 1, gid: 2 }));
        assert!(parse_user("nobody").is_err());
    }

    #[test]
    fn maps_that_overflow_are_refused() {
        assert!(parse_id_map("4294967295:100000:2").is_err());
        assert!(parse_id_map("0:4294967295:2").is_err());
    }

    #[test]
    fn a_user_outside_the_map_is_refused_naming_the_map() {
        let user = |uid, gid| Some(User { uid, gid });
        assert!(check_user(user(65535, 65535), false, &DEFAULT_MAP, &DEFAULT_MAP).is_ok());
        assert!(check_user(None, false, &DEFAULT_MAP, &DEFAULT_MAP).is_ok());
        let err = check_user(user(70000, 70000), false, &DEFAULT_MAP, &DEFAULT_MAP).unwrap_err().to_string();
        assert_eq!(
            err,
            "--user 70000 is not mapped: --uidmap 0:100000:65536 maps container uids 0-65535; use a uid in that range, or a wider --uidmap"
        );
        let err = check_user(user(1000, 70000), false, &DEFAULT_MAP, &DEFAULT_MAP).unwrap_err().to_string();
        assert!(err.starts_with("--user 1000:70000: gid 70000 is not mapped: --gidmap 0:100000:65536"), "{err}");
        // Without a user namespace there is no map.
        assert!(check_user(user(70000, 70000), true, &DEFAULT_MAP, &DEFAULT_MAP).is_ok());
        let one = IdMap { inside: 0, outside: 0, count: 1 };
        assert!(check_user(user(1, 0), false, &one, &one).unwrap_err().to_string().contains("uids 0-0"));
        let rootless = IdMap { inside: 1, outside: 100_000, count: 10 };
        let err = check_user(None, false, &rootless, &DEFAULT_MAP).unwrap_err().to_string();
        assert!(err.contains("--uidmap 1:100000:10 maps container uids 1-10, not 0"), "{err}");
    }

    #[test]
    fn devpts_gets_gid_5_only_where_it_is_mapped() {
        let one = IdMap { inside: 0, outside: 0, count: 1 };
        assert!(devpts_options(&DEFAULT_MAP, false).ends_with(",gid=5"));
        assert!(!devpts_options(&one, false).contains("gid="));
        assert!(devpts_options(&one, true).ends_with(",gid=5"));
    }
}
