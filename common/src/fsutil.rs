//! File tree plumbing: copy a root filesystem, remove a container's
//! directory without ever crossing into a mount, list mounts.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown, symlink};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Copies `src` to `dst` (which must not exist) the way `cp -a` would for a
/// root filesystem: directories, regular files, symlinks, owners and modes.
/// Device nodes, fifos and sockets are skipped: a container gets its devices
/// from the runtime, never from an image.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    copy_tree_owned(src, dst, &|uid, gid| (uid, gid))
}

/// [`copy_tree`], with every owner passed through `owner(uid, gid)`: the
/// fallback for kernels without idmapped mounts copies an image with its
/// owners shifted into a user namespace's range.
pub fn copy_tree_owned(src: &Path, dst: &Path, owner: &dyn Fn(u32, u32) -> (u32, u32)) -> Result<()> {
    let meta = fs::symlink_metadata(src).with_context(|| format!("cannot read {}", src.display()))?;
    let kind = meta.file_type();
    if kind.is_dir() {
        fs::create_dir(dst).with_context(|| format!("cannot create {}", dst.display()))?;
        for entry in fs::read_dir(src).with_context(|| format!("cannot list {}", src.display()))? {
            let entry = entry?;
            copy_tree_owned(&entry.path(), &dst.join(entry.file_name()), owner)?;
        }
    } else if kind.is_symlink() {
        symlink(fs::read_link(src)?, dst).with_context(|| format!("cannot create link {}", dst.display()))?;
    } else if kind.is_file() {
        fs::copy(src, dst).with_context(|| format!("cannot copy {} to {}", src.display(), dst.display()))?;
    } else {
        return Ok(());
    }
    let (uid, gid) = owner(meta.uid(), meta.gid());
    lchown(dst, Some(uid), Some(gid)).with_context(|| format!("cannot chown {}", dst.display()))?;
    if !kind.is_symlink() {
        fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    Ok(())
}

/// Removes `path` and everything under it, refusing to descend into another
/// filesystem: if something is still mounted below, that is a bug to report,
/// not a reason to delete the host's files through it.
pub fn remove_tree(path: &Path) -> Result<()> {
    let top = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err).with_context(|| format!("cannot stat {}", path.display())),
    };
    remove_below(path, top.dev())
}

fn remove_below(path: &Path, dev: u64) -> Result<()> {
    let meta = fs::symlink_metadata(path).with_context(|| format!("cannot stat {}", path.display()))?;
    if !meta.is_dir() {
        return fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()));
    }
    if meta.dev() != dev {
        bail!("refusing to remove {}: it is on another filesystem (still mounted?)", path.display());
    }
    for entry in fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))? {
        remove_below(&entry?.path(), dev)?;
    }
    fs::remove_dir(path).with_context(|| format!("cannot remove {}", path.display()))
}

/// Mount points at or below `path` in the mount namespace of process `pid`
/// ("self" for ours), deepest first, read from its mountinfo.
pub fn mounts_under(pid: &str, path: &Path) -> Result<Vec<PathBuf>> {
    let mountinfo = format!("/proc/{pid}/mountinfo");
    let data = fs::read(&mountinfo).with_context(|| format!("cannot read {mountinfo}"))?;
    let mut found = Vec::new();
    for mount in libmount::mountinfo::Parser::new(&data) {
        let mount = mount.with_context(|| format!("cannot parse {mountinfo}"))?;
        let point = PathBuf::from(mount.mount_point.into_owned());
        if point.starts_with(path) {
            found.push(point);
        }
    }
    found.sort_by_key(|point| std::cmp::Reverse(point.components().count()));
    Ok(found)
}

/// Every mountinfo line of process `pid`, for tests that look for a mount by
/// its source or type.
pub fn mountinfo(pid: &str) -> Result<String> {
    fs::read_to_string(format!("/proc/{pid}/mountinfo")).with_context(|| format!("cannot read /proc/{pid}/mountinfo"))
}

/// Fails, naming the directory and the fix, when a process running as
/// `uid`:`gid` (and without privileges, as a user namespace's root is on the
/// host) could not reach `path`: every directory above it must let it search.
pub fn check_reachable(path: &Path, uid: u32, gid: u32) -> Result<()> {
    for dir in path.ancestors().skip(1) {
        let meta = fs::metadata(dir).with_context(|| format!("cannot stat {}", dir.display()))?;
        let bit = if meta.uid() == uid {
            0o100
        } else if meta.gid() == gid {
            0o010
        } else {
            0o001
        };
        if meta.mode() & bit == 0 {
            bail!(
                "the container's root (uid {uid} on the host) cannot reach {}: {} is mode {:04o}; use a --container-dir every user can traverse, or `chmod o+x {}`",
                path.display(),
                dir.display(),
                meta.mode() & 0o7777,
                dir.display()
            );
        }
    }
    Ok(())
}
