//! User and group ids for the user namespace step: `--uidmap`/`--gidmap`
//! ranges, `--user NAME[:GROUP]` looked up in the image's /etc/passwd and
//! /etc/group, and the capability set a container keeps.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, Result, bail};
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

/// `--user`, as Docker takes it: a user and, after a colon, a group, each a
/// name or a number (`nobody`, `1000`, `nobody:tty`, `1000:5`). Numbers can
/// be checked against the user namespace's map at once ([`check_user`]);
/// names only mean something in the image's `/etc/passwd` and `/etc/group`,
/// so the spec is kept as given and [`UserSpec::resolve`]d inside the
/// container. An image config's `User` string is the same spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserSpec {
    user: String,
    group: Option<String>,
}

/// Docker's default when neither `--user` nor the image names one: root,
/// uid 0, with what the image's files say about it (its home, its groups).
impl Default for UserSpec {
    fn default() -> UserSpec {
        UserSpec { user: "0".to_string(), group: None }
    }
}

impl fmt::Display for UserSpec {
    /// As it was given: `nobody`, `1000:5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.group {
            Some(group) => write!(f, "{}:{group}", self.user),
            None => write!(f, "{}", self.user),
        }
    }
}

impl FromStr for UserSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<UserSpec, String> {
        parse_user(text)
    }
}

/// For clap's `value_parser`: `USER[:GROUP]`, each a name or a number. A
/// name is anything /etc/passwd could hold (no `:`, no control character,
/// no whitespace); a number must fit a uid (Docker takes an all-digit name
/// as a number too).
pub fn parse_user(text: &str) -> Result<UserSpec, String> {
    let invalid = || format!("invalid --user {text:?}: use NAME, UID, NAME:GROUP or UID:GID, like nobody or 1000:1000");
    let (user, group) = match text.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (text, None),
    };
    let valid = |part: &str| {
        !part.is_empty()
            && !part.chars().any(|c| c == ':' || c.is_control() || c.is_whitespace())
            && (!part.bytes().all(|b| b.is_ascii_digit()) || part.parse::<u32>().is_ok())
    };
    if !valid(user) || !group.is_none_or(valid) {
        return Err(invalid());
    }
    Ok(UserSpec { user: user.to_string(), group: group.map(str::to_string) })
}

impl UserSpec {
    /// The uid, when the spec gives it as a number.
    pub fn uid(&self) -> Option<u32> {
        self.user.parse().ok()
    }

    /// The gid, when the spec gives it as a number.
    pub fn gid(&self) -> Option<u32> {
        self.group.as_deref()?.parse().ok()
    }

    /// Looks the spec up in `root`'s `/etc/passwd` and `/etc/group`, as
    /// Docker (moby's `user.GetExecUser`, which runc runs inside the
    /// container) does:
    ///
    /// - the user by name, or a number by uid; the first entry wins. A name
    ///   that no entry has is an error (`unable to find user NAME: no
    ///   matching entries in passwd file`); a number that none has is that
    ///   uid, with gid 0 and home `/`.
    /// - the group, when given, by name or number; otherwise the entry's gid.
    /// - supplementary groups: the primary gid, then, when no group was
    ///   given, every group of /etc/group that lists the user's name.
    /// - home: the entry's, or `/`.
    ///
    /// `root` must be the container's own root, reached after pivot_root
    /// (`/`): the files are the image's, so a symlink among them must
    /// resolve inside the container, never to the host's files. A missing
    /// file is an empty one, as in Docker.
    pub fn resolve(&self, root: &Path) -> Result<User> {
        let passwd = read_image_file(root, "etc/passwd")?.unwrap_or_default();
        let groups = read_image_file(root, "etc/group")?.unwrap_or_default();
        let entry = passwd.lines().filter_map(PasswdEntry::parse).find(|entry| match self.uid() {
            Some(uid) => entry.uid == uid,
            None => entry.name == self.user,
        });
        let (uid, mut gid, home, name) = match (&entry, self.uid()) {
            (Some(entry), _) => (entry.uid, entry.gid, entry.home.to_string(), Some(entry.name)),
            (None, Some(uid)) => (uid, 0, "/".to_string(), None),
            (None, None) => bail!(
                "unable to find user {}: no matching entries in passwd file (the image's /etc/passwd): use a name from it, or a numeric uid",
                self.user
            ),
        };
        let group_entries: Vec<GroupEntry> = groups.lines().filter_map(GroupEntry::parse).collect();
        let mut supplementary = Vec::new();
        match &self.group {
            Some(group) => {
                let found = group_entries.iter().find(|entry| match self.gid() {
                    Some(gid) => entry.gid == gid,
                    None => entry.name == group,
                });
                gid = match (found, self.gid()) {
                    (Some(entry), _) => entry.gid,
                    (None, Some(gid)) => gid,
                    (None, None) => bail!(
                        "unable to find group {group}: no matching entries in group file (the image's /etc/group): use a name from it, or a numeric gid"
                    ),
                };
            }
            None => {
                if let Some(name) = name {
                    let member = |entry: &&GroupEntry| entry.members.split(',').any(|member| member == name);
                    supplementary.extend(group_entries.iter().filter(member).map(|entry| entry.gid));
                }
            }
        }
        let mut all = vec![gid];
        for group in supplementary {
            if !all.contains(&group) {
                all.push(group);
            }
        }
        let home = if home.is_empty() { "/".to_string() } else { home };
        Ok(User { uid, gid, groups: all, home })
    }
}

/// The user a container's command runs as, once the image said who that is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    /// For setgroups(2): the primary gid first, then the others, as Docker
    /// passes them to runc (`AdditionalGids`).
    pub groups: Vec<u32>,
    /// `HOME`, unless `-e HOME=…` says otherwise.
    pub home: String,
}

/// One line of /etc/passwd (passwd(5)): `name:password:uid:gid:gecos:home:shell`.
struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

impl<'a> PasswdEntry<'a> {
    /// None for a line that is not an entry (blank, a comment, a bad number).
    fn parse(line: &'a str) -> Option<PasswdEntry<'a>> {
        let fields: Vec<&str> = line.trim().split(':').collect();
        let name = fields.first().filter(|name| !name.is_empty() && !name.starts_with('#'))?;
        Some(PasswdEntry {
            name,
            uid: fields.get(2)?.parse().ok()?,
            gid: fields.get(3)?.parse().ok()?,
            home: fields.get(5).copied().unwrap_or(""),
        })
    }
}

/// One line of /etc/group (group(5)): `name:password:gid:member,member`.
struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: &'a str,
}

impl<'a> GroupEntry<'a> {
    fn parse(line: &'a str) -> Option<GroupEntry<'a>> {
        let fields: Vec<&str> = line.trim().split(':').collect();
        let name = fields.first().filter(|name| !name.is_empty() && !name.starts_with('#'))?;
        Some(GroupEntry { name, gid: fields.get(2)?.parse().ok()?, members: fields.get(3).copied().unwrap_or("") })
    }
}

/// The most of an image's /etc/passwd or /etc/group that is read.
const MAX_IMAGE_FILE: u64 = 4 << 20;

/// `root/path`, one of the image's own files, read with care: it is
/// untrusted. Only a regular file is read, opened without blocking (a FIFO
/// would stall the start for ever) and no more than [`MAX_IMAGE_FILE`]
/// bytes of it (a symlink to /dev/zero, or to a huge /proc file, would never
/// end). None when it does not exist.
fn read_image_file(root: &Path, path: &str) -> Result<Option<String>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let full = root.join(path);
    let flags = "O_RDONLY|O_NONBLOCK|O_NOCTTY|O_CLOEXEC";
    let opened = crate::trace::traced("open", &[format!("{full:?}"), flags.to_string()], || {
        let mut options = std::fs::OpenOptions::new();
        options.read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
        options.open(&full).with_context(|| format!("open({full:?}, {flags}) failed"))
    });
    let file = match opened {
        Ok(file) => file,
        Err(err)
            if err.root_cause().downcast_ref::<std::io::Error>().map(std::io::Error::kind)
                == Some(std::io::ErrorKind::NotFound) =>
        {
            return Ok(None);
        }
        Err(err) => return Err(err),
    };
    let meta = file.metadata().with_context(|| format!("cannot stat /{path}"))?;
    if !meta.is_file() {
        bail!("the image's /{path} is not a regular file: make it one, or leave it out");
    }
    let mut bytes = Vec::new();
    file.take(MAX_IMAGE_FILE + 1).read_to_end(&mut bytes).with_context(|| format!("cannot read /{path}"))?;
    if bytes.len() as u64 > MAX_IMAGE_FILE {
        bail!("the image's /{path} is larger than {} MiB: not read", MAX_IMAGE_FILE >> 20);
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// Fails, naming the map and the fix, when `--user` names a uid or gid
/// that the user namespace does not map (setuid(2) would fail with EINVAL
/// in the container, after everything was set up), or when a map leaves out
/// the container's root. Only what the spec gives as numbers is known here,
/// before anything is created; a name is checked once resolved
/// ([`check_resolved`]). With `--userns=host` there is no map: any id goes.
pub fn check_user(user: Option<&UserSpec>, userns_host: bool, uid_map: &IdMap, gid_map: &IdMap) -> Result<()> {
    if userns_host {
        return Ok(());
    }
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
    if user.uid().is_some_and(|uid| uid_map.to_host(uid).is_none()) {
        bail!(
            "--user {user} is not mapped: {}; use a uid in that range, or a wider --uidmap",
            ranges("--uidmap", "uids", uid_map)
        );
    }
    if let Some(gid) = user.gid().filter(|gid| gid_map.to_host(*gid).is_none()) {
        bail!(
            "--user {user}: gid {gid} is not mapped: {}; use a gid in that range, or a wider --gidmap",
            ranges("--gidmap", "gids", gid_map)
        );
    }
    Ok(())
}

/// [`check_user`] for what the image said: the uid, the gid and each
/// supplementary group that `spec` resolved to must be mapped.
pub fn check_resolved(spec: &UserSpec, user: &User, userns_host: bool, uid_map: &IdMap, gid_map: &IdMap) -> Result<()> {
    if userns_host {
        return Ok(());
    }
    if uid_map.to_host(user.uid).is_none() {
        bail!(
            "--user {spec}: uid {} (the image's /etc/passwd) is not mapped: {}; use a uid in that range, or a wider --uidmap",
            user.uid,
            ranges("--uidmap", "uids", uid_map)
        );
    }
    if let Some(gid) = user.groups.iter().find(|gid| gid_map.to_host(**gid).is_none()) {
        let which = if *gid == user.gid { "gid" } else { "supplementary group" };
        bail!(
            "--user {spec}: {which} {gid} (the image's /etc/passwd and /etc/group) is not mapped: {}; use a wider --gidmap",
            ranges("--gidmap", "gids", gid_map)
        );
    }
    Ok(())
}

/// `--uidmap 0:100000:65536 maps container uids 0-65535`.
fn ranges(flag: &str, kind: &str, map: &IdMap) -> String {
    format!("{flag} {} maps container {kind} {}-{}", flag_value(map), map.inside, map.inside + (map.count - 1))
}

/// A map as `--uidmap` takes it: `0:100000:65536`.
fn flag_value(map: &IdMap) -> String {
    format!("{}:{}:{}", map.inside, map.outside, map.count)
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
    }

    #[test]
    fn user_specs_parse_as_docker_takes_them() {
        for text in ["1000", "nobody", "1000:1000", "nobody:tty", "www-data:5", "0:staff"] {
            assert_eq!(parse_user(text).unwrap().to_string(), text);
        }
        assert_eq!(parse_user("1:2").unwrap().uid(), Some(1));
        assert_eq!(parse_user("1:2").unwrap().gid(), Some(2));
        assert_eq!(parse_user("nobody:tty").unwrap().uid(), None);
        for bad in ["", ":", "1000:", ":1000", "a:b:c", "no body", "x\ny", "99999999999"] {
            assert!(parse_user(bad).is_err(), "{bad:?}");
        }
        assert_eq!(UserSpec::default().uid(), Some(0));
    }

    /// An image root with these /etc/passwd and /etc/group.
    fn root_with(passwd: &str, group: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/passwd"), passwd).unwrap();
        std::fs::write(root.path().join("etc/group"), group).unwrap();
        root
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n# a comment\n\nbroken:x:zero:0::/:\n\
                          nobody:x:65534:65534:nobody:/nonexistent:/bin/false\nalice:x:1000:1000::/home/alice:/bin/sh\n\
                          nohome:x:1001:1001:::\nalice:x:2000:2000::/second:/bin/sh\n";
    const GROUP: &str =
        "root:x:0:\ntty:x:5:\nstaff:x:50:alice,bob\nusers:x:100:bob,alice\nalice:x:1000:\nnogroup:x:65534:\n";

    fn resolved(root: &tempfile::TempDir, spec: &str) -> Result<User> {
        parse_user(spec).unwrap().resolve(root.path())
    }

    #[test]
    fn names_and_numbers_resolve_as_in_docker() {
        let root = root_with(PASSWD, GROUP);
        let user = |uid, gid, groups: &[u32], home: &str| User { uid, gid, groups: groups.to_vec(), home: home.into() };
        assert_eq!(resolved(&root, "nobody").unwrap(), user(65534, 65534, &[65534], "/nonexistent"));
        // The first entry wins; groups that list the name are supplementary.
        assert_eq!(resolved(&root, "alice").unwrap(), user(1000, 1000, &[1000, 50, 100], "/home/alice"));
        assert_eq!(resolved(&root, "1000").unwrap(), user(1000, 1000, &[1000, 50, 100], "/home/alice"));
        // An explicit group replaces the primary one and drops the others.
        assert_eq!(resolved(&root, "alice:tty").unwrap(), user(1000, 5, &[5], "/home/alice"));
        assert_eq!(resolved(&root, "alice:7").unwrap(), user(1000, 7, &[7], "/home/alice"));
        // A number without an entry: gid 0 and home /, as in Docker.
        assert_eq!(resolved(&root, "4242").unwrap(), user(4242, 0, &[0], "/"));
        assert_eq!(resolved(&root, "4242:4242").unwrap(), user(4242, 4242, &[4242], "/"));
        assert_eq!(resolved(&root, "nohome").unwrap().home, "/");
        assert_eq!(UserSpec::default().resolve(root.path()).unwrap(), user(0, 0, &[0], "/root"));
        let err = resolved(&root, "nosuch").unwrap_err().to_string();
        assert!(err.starts_with("unable to find user nosuch: no matching entries in passwd file"), "{err}");
        let err = resolved(&root, "alice:nosuch").unwrap_err().to_string();
        assert!(err.starts_with("unable to find group nosuch: no matching entries in group file"), "{err}");
        // A line with a bad number is no entry.
        assert!(resolved(&root, "broken").is_err());
    }

    #[test]
    fn an_image_without_passwd_knows_only_numbers() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(
            UserSpec::default().resolve(root.path()).unwrap(),
            User { uid: 0, gid: 0, groups: vec![0], home: "/".into() }
        );
        assert!(resolved(&root, "nobody").is_err());
    }

    #[test]
    fn a_hostile_passwd_is_not_read() {
        let root = root_with("", "");
        let passwd = root.path().join("etc/passwd");
        std::fs::remove_file(&passwd).unwrap();
        nix::unistd::mkfifo(&passwd, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let err = resolved(&root, "nobody").unwrap_err().to_string();
        assert!(err.contains("the image's /etc/passwd is not a regular file"), "{err}");
        std::fs::remove_file(&passwd).unwrap();
        std::fs::write(&passwd, vec![b'x'; (MAX_IMAGE_FILE + 1) as usize]).unwrap();
        let err = resolved(&root, "nobody").unwrap_err().to_string();
        assert!(err.contains("the image's /etc/passwd is larger than 4 MiB"), "{err}");
    }

    #[test]
    fn maps_that_overflow_are_refused() {
        assert!(parse_id_map("4294967295:100000:2").is_err());
        assert!(parse_id_map("0:4294967295:2").is_err());
    }

    #[test]
    fn a_user_outside_the_map_is_refused_naming_the_map() {
        let spec = |text: &str| parse_user(text).unwrap();
        assert!(check_user(Some(&spec("65535")), false, &DEFAULT_MAP, &DEFAULT_MAP).is_ok());
        assert!(check_user(None, false, &DEFAULT_MAP, &DEFAULT_MAP).is_ok());
        // A name is checked once resolved.
        assert!(check_user(Some(&spec("nobody:staff")), false, &DEFAULT_MAP, &DEFAULT_MAP).is_ok());
        let err = check_user(Some(&spec("70000")), false, &DEFAULT_MAP, &DEFAULT_MAP).unwrap_err().to_string();
        assert_eq!(
            err,
            "--user 70000 is not mapped: --uidmap 0:100000:65536 maps container uids 0-65535; use a uid in that range, or a wider --uidmap"
        );
        let err = check_user(Some(&spec("1000:70000")), false, &DEFAULT_MAP, &DEFAULT_MAP).unwrap_err().to_string();
        assert!(err.starts_with("--user 1000:70000: gid 70000 is not mapped: --gidmap 0:100000:65536"), "{err}");
        // Without a user namespace there is no map.
        assert!(check_user(Some(&spec("70000")), true, &DEFAULT_MAP, &DEFAULT_MAP).is_ok());
        let one = IdMap { inside: 0, outside: 0, count: 1 };
        assert!(check_user(Some(&spec("1:0")), false, &one, &one).unwrap_err().to_string().contains("uids 0-0"));
        let rootless = IdMap { inside: 1, outside: 100_000, count: 10 };
        let err = check_user(None, false, &rootless, &DEFAULT_MAP).unwrap_err().to_string();
        assert!(err.contains("--uidmap 1:100000:10 maps container uids 1-10, not 0"), "{err}");
    }

    #[test]
    fn a_resolved_user_outside_the_map_is_refused_naming_the_group() {
        let spec = parse_user("alice").unwrap();
        let user = User { uid: 1000, gid: 1000, groups: vec![1000, 70000], home: "/".into() };
        let err = check_resolved(&spec, &user, false, &DEFAULT_MAP, &DEFAULT_MAP).unwrap_err().to_string();
        assert!(err.starts_with("--user alice: supplementary group 70000 (the image's"), "{err}");
        assert!(check_resolved(&spec, &user, true, &DEFAULT_MAP, &DEFAULT_MAP).is_ok());
        let far = User { uid: 70000, gid: 0, groups: vec![0], home: "/".into() };
        let err = check_resolved(&spec, &far, false, &DEFAULT_MAP, &DEFAULT_MAP).unwrap_err().to_string();
        assert!(err.starts_with("--user alice: uid 70000 (the image's /etc/passwd) is not mapped"), "{err}");
    }

    #[test]
    fn devpts_gets_gid_5_only_where_it_is_mapped() {
        let one = IdMap { inside: 0, outside: 0, count: 1 };
        assert!(devpts_options(&DEFAULT_MAP, false).ends_with(",gid=5"));
        assert!(!devpts_options(&one, false).contains("gid="));
        assert!(devpts_options(&one, true).ends_with(",gid=5"));
    }
}
