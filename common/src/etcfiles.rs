//! The three files Docker gives every container, whatever its image holds:
//! `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf`. Docker writes them
//! in the container's own directory (`/var/lib/docker/containers/ID/hosts`,
//! …) and bind-mounts each over the image's file, read-write: the container
//! may edit its copy, and neither the image nor another container sees it.
//!
//! The contents follow Docker's for a container without a network
//! (`--network none`): from step06 a container has a network namespace of
//! its own with only `lo` in it.
//!
//! - `hostname`: the container's hostname and a newline.
//! - `hosts`: Docker's six default lines (libnetwork's `etchosts`), then the
//!   hostname. Docker writes a line for the hostname only for an address the
//!   container has on a network, so with `--network none` it has none and
//!   the container cannot resolve its own name; podman maps the name to
//!   127.0.0.1 there, and so does this: programs that look up their own name
//!   (`hostname -i`, sudo, Java) then work.
//! - `resolv.conf`: the host's, with its loopback nameservers left out (they
//!   would point at the container's own `lo`, where nothing answers), as
//!   Docker's does. On a host with systemd-resolved, whose /etc/resolv.conf
//!   names only its stub, 127.0.0.53, the real servers come from
//!   /run/systemd/resolve/resolv.conf, as in Docker. Docker used to add
//!   Google's servers when none was left; this does not: with only `lo`, no
//!   server can be reached anyway, and a lookup fails at once.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Docker's default /etc/hosts (moby `libnetwork/etchosts`), in its order.
pub const DEFAULT_HOSTS: &[(&str, &str)] = &[
    ("127.0.0.1", "localhost"),
    ("::1", "localhost ip6-localhost ip6-loopback"),
    ("fe00::0", "ip6-localnet"),
    ("ff00::0", "ip6-mcastprefix"),
    ("ff02::1", "ip6-allnodes"),
    ("ff02::2", "ip6-allrouters"),
];

/// The host's resolver configuration, and where systemd-resolved keeps the
/// servers its stub forwards to.
const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";
const SYSTEMD_RESOLV_CONF: &str = "/run/systemd/resolve/resolv.conf";

/// `/etc/hosts` for a container named `hostname`. A name with a domain
/// (`web.example.com`) is listed with its first label too, as Docker does.
pub fn hosts(hostname: &str) -> String {
    let mut text: String = DEFAULT_HOSTS.iter().map(|(address, names)| format!("{address}\t{names}\n")).collect();
    match hostname.split_once('.') {
        Some((short, _)) => text.push_str(&format!("127.0.0.1\t{hostname} {short}\n")),
        None => text.push_str(&format!("127.0.0.1\t{hostname}\n")),
    }
    text
}

/// `/etc/resolv.conf` made from the host's `host` text: every line kept
/// but the nameservers on a loopback address.
pub fn resolv_conf(host: &str) -> String {
    host.lines().filter(|line| !loopback_nameserver(line)).map(|line| format!("{line}\n")).collect()
}

fn nameserver(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace();
    (words.next() == Some("nameserver")).then(|| words.next()).flatten()
}

fn loopback_nameserver(line: &str) -> bool {
    nameserver(line)
        .and_then(|address| address.parse::<std::net::IpAddr>().ok())
        .is_some_and(|address| address.is_loopback())
}

/// The host's resolv.conf as Docker picks it: /etc/resolv.conf, unless its
/// only nameserver is systemd-resolved's stub. A host without one gives an
/// empty file (the resolver then tries the container's own 127.0.0.1).
fn host_resolv_conf() -> String {
    let text = fs::read_to_string(HOST_RESOLV_CONF).unwrap_or_default();
    let servers: Vec<&str> = text.lines().filter_map(nameserver).collect();
    if servers == ["127.0.0.53"]
        && let Ok(upstream) = fs::read_to_string(SYSTEMD_RESOLV_CONF)
    {
        return upstream;
    }
    text
}

/// Writes the three files into `dir`, the container's own directory, and
/// returns, for each, the path it covers in the container and the file.
pub fn write(dir: &Path, hostname: &str) -> Result<Vec<(&'static str, PathBuf)>> {
    let files = [
        ("/etc/hostname", "hostname", format!("{hostname}\n")),
        ("/etc/hosts", "hosts", hosts(hostname)),
        ("/etc/resolv.conf", "resolv.conf", resolv_conf(&host_resolv_conf())),
    ];
    let mut written = Vec::new();
    for (target, name, text) in files {
        let file = dir.join(name);
        let mut opened = create_new(&file)?;
        let shown = [format!("{file:?}"), format!("{text:?}"), text.len().to_string()];
        crate::trace::traced("write", &shown, || {
            std::io::Write::write_all(&mut opened, text.as_bytes()).with_context(|| format!("write({file:?}) failed"))
        })?;
        written.push((target, file));
    }
    Ok(written)
}

/// open(2) with `O_CREAT|O_EXCL`, mode 0644 (as Docker's files: any user in
/// the container reads them): never through a symlink, never over a file
/// that exists. Traced as strace shows it.
fn create_new(path: &Path) -> Result<fs::File> {
    let flags = "O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC";
    let shown = [format!("{path:?}"), flags.to_string(), "0644".to_string()];
    crate::trace::traced("open", &shown, || {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true).mode(0o644);
        options.open(path).with_context(|| format!("open({path:?}, {flags}, 0644) failed"))
    })
}

/// The mount point in `rootfs` (the container's merged root, not yet
/// pivoted to) for the file `path` (`/etc/hosts`): refused, naming it, when
/// the image made any part of it a symlink ([`crate::paths::in_rootfs`]),
/// and made, empty, when the image lacks it (and /etc too, if need be).
/// What is made lands in the container's upper layer, never in the image.
pub fn mount_point(rootfs: &Path, path: &str) -> Result<PathBuf> {
    let target = crate::paths::in_rootfs(rootfs, path)?;
    let parent = target.parent().context("a mount point has a parent")?;
    if let Err(err) = fs::symlink_metadata(parent) {
        if err.kind() != ErrorKind::NotFound {
            return Err(err).with_context(|| format!("cannot stat {}", parent.display()));
        }
        crate::sys!(fs::create_dir(parent))?;
    }
    if let Err(err) = fs::symlink_metadata(&target) {
        if err.kind() != ErrorKind::NotFound {
            return Err(err).with_context(|| format!("cannot stat {}", target.display()));
        }
        create_new(&target)?;
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_is_dockers_with_the_hostname_on_loopback() {
        assert_eq!(
            hosts("web"),
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
             ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n127.0.0.1\tweb\n"
        );
    }

    #[test]
    fn a_name_with_a_domain_is_listed_short_too() {
        assert!(hosts("web.example.com").ends_with("\n127.0.0.1\tweb.example.com web\n"));
    }

    #[test]
    fn loopback_nameservers_are_left_out() {
        let host = "# from DHCP\nsearch example.com\nnameserver 127.0.0.53\nnameserver 10.0.0.2\n\
                    nameserver ::1\nnameserver  127.1.2.3\noptions edns0\nnameserver fd00::1\n";
        assert_eq!(
            resolv_conf(host),
            "# from DHCP\nsearch example.com\nnameserver 10.0.0.2\noptions edns0\nnameserver fd00::1\n"
        );
        assert_eq!(resolv_conf(""), "");
    }

    #[test]
    fn mount_points_are_made_in_the_root_and_symlinks_refused() {
        let rootfs = tempfile::tempdir().unwrap();
        let made = mount_point(rootfs.path(), "/etc/hosts").unwrap();
        assert_eq!(made, rootfs.path().join("etc/hosts"));
        assert!(made.is_file());
        std::fs::write(&made, "kept\n").unwrap();
        assert_eq!(mount_point(rootfs.path(), "/etc/hosts").unwrap(), made);
        assert_eq!(std::fs::read_to_string(&made).unwrap(), "kept\n");
        let outside = tempfile::tempdir().unwrap();
        let escape = outside.path().join("created-outside");
        std::os::unix::fs::symlink(&escape, rootfs.path().join("etc/resolv.conf")).unwrap();
        let err = mount_point(rootfs.path(), "/etc/resolv.conf").unwrap_err().to_string();
        assert!(err.starts_with("the image's /etc/resolv.conf is a symlink"), "{err}");
        assert!(!escape.exists(), "the symlink was followed");
    }
}
