//! File tree plumbing: copy a root filesystem, remove a container's
//! directory without ever crossing into a mount, list mounts.

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt, lchown, symlink};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, OFlag, openat};
use nix::sys::stat::{FchmodatFlags, Mode, fchmod, fchmodat};
use nix::unistd::{UnlinkatFlags, Whence, lseek, unlinkat};

/// Copies `src` to `dst` (which must not exist) the way `cp -a` would for a
/// root filesystem: directories, regular files, symlinks, owners and modes.
/// Device nodes, fifos and sockets are skipped: a container gets its devices
/// from the runtime, never from an image.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    copy_entry(src, dst, &|uid, gid| (uid, gid), false, &mut HashMap::new())
}

/// Copies an image's layers (bottom first) into `dst` as one tree, the way
/// overlayfs would show them stacked: each layer over the ones below, its
/// whiteouts (character devices 0/0) deleting what they name, its opaque
/// directories hiding everything below them. For the steps that copy the
/// image (02 to 04) before they have overlayfs.
pub fn copy_layers(layers: &[PathBuf], dst: &Path) -> Result<()> {
    let Some((bottom, above)) = layers.split_first() else {
        bail!("cannot copy an image with no layers to {}", shown(dst));
    };
    copy_tree(bottom, dst)?;
    for layer in above {
        merge_layer(layer, dst, &mut HashMap::new())?;
    }
    Ok(())
}

/// Puts the layer directory `src` over the tree `dst` (see [`copy_layers`]).
fn merge_layer(src: &Path, dst: &Path, linked: &mut HashMap<(u64, u64), PathBuf>) -> Result<()> {
    let same = |uid, gid| (uid, gid);
    if is_opaque(src) {
        for name in names(dst)? {
            remove_tree(&dst.join(name))?;
        }
    }
    for name in names(src)? {
        crate::signals::check()?;
        let (from, to) = (src.join(&name), dst.join(&name));
        let meta = fs::symlink_metadata(&from).with_context(|| format!("cannot read {}", shown(&from)))?;
        let below = fs::symlink_metadata(&to).ok();
        if is_whiteout(&meta) {
            remove_tree(&to)?;
        } else if meta.is_dir() && below.as_ref().is_some_and(fs::Metadata::is_dir) {
            merge_layer(&from, &to, linked)?;
            // The directory as the upper layer has it, as overlayfs shows it.
            lchown(&to, Some(meta.uid()), Some(meta.gid()))
                .with_context(|| format!("lchown({}, {}, {}) failed", shown(&to), meta.uid(), meta.gid()))?;
            fs::set_permissions(&to, fs::Permissions::from_mode(meta.mode() & 0o7777))
                .with_context(|| format!("chmod({}, {:04o}) failed", shown(&to), meta.mode() & 0o7777))?;
        } else {
            if below.is_some() {
                remove_tree(&to)?;
            }
            copy_entry(&from, &to, &same, false, linked)?;
        }
    }
    Ok(())
}

/// The names in a directory.
fn names(dir: &Path) -> Result<Vec<std::ffi::OsString>> {
    fs::read_dir(dir)
        .and_then(|dir| dir.map(|entry| entry.map(|entry| entry.file_name())).collect::<io::Result<Vec<_>>>())
        .with_context(|| format!("cannot list {}", shown(dir)))
}

/// An overlayfs whiteout: a character device 0/0.
fn is_whiteout(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Whether a layer's directory is opaque (either xattr says so).
fn is_opaque(dir: &Path) -> bool {
    crate::layer::OPAQUE_XATTRS.iter().any(|name| crate::layer::get_xattr(dir, name).is_some_and(|value| value == b"y"))
}

/// [`copy_tree`], with every owner passed through `owner(uid, gid)`: the
/// fallback for kernels without idmapped mounts copies an image with its
/// owners shifted into a user namespace's range.
///
/// Hard links stay linked (busybox is one binary under 400 names: copied
/// unlinked, it would be 400 binaries) and sparse files stay sparse. A
/// termination signal stops the copy between two entries
/// ([`crate::signals::check`]); the caller removes the partial copy. It
/// copies layers: whiteouts (character devices 0/0) and the opaque xattrs
/// of directories are kept, overlayfs needs them.
pub fn copy_tree_owned(src: &Path, dst: &Path, owner: &dyn Fn(u32, u32) -> (u32, u32)) -> Result<()> {
    copy_entry(src, dst, owner, true, &mut HashMap::new())
}

/// One entry of [`copy_tree_owned`]. `layer`: keep whiteouts and opaque
/// xattrs. `linked` maps the (st_dev, st_ino) of a source file with more
/// than one link to its first copy.
fn copy_entry(
    src: &Path,
    dst: &Path,
    owner: &dyn Fn(u32, u32) -> (u32, u32),
    layer: bool,
    linked: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    crate::signals::check()?;
    let meta = fs::symlink_metadata(src).with_context(|| format!("cannot read {}", shown(src)))?;
    let kind = meta.file_type();
    if kind.is_dir() {
        fs::create_dir(dst).with_context(|| format!("cannot create {}", shown(dst)))?;
        // Listed before going down, so that no directory stays open while
        // its subdirectories are copied.
        let entries = fs::read_dir(src)
            .and_then(|dir| dir.map(|entry| entry.map(|entry| entry.file_name())).collect::<io::Result<Vec<_>>>())
            .with_context(|| format!("cannot list {}", shown(src)))?;
        for name in entries {
            copy_entry(&src.join(&name), &dst.join(&name), owner, layer, linked)?;
        }
        if layer && is_opaque(src) {
            crate::layer::mark_opaque(dst)?;
        }
    } else if kind.is_symlink() {
        let target = fs::read_link(src).with_context(|| format!("cannot read the link {}", shown(src)))?;
        symlink(target, dst).with_context(|| format!("cannot create the link {}", shown(dst)))?;
    } else if kind.is_file() {
        if meta.nlink() > 1 {
            if let Some(first) = linked.get(&(meta.dev(), meta.ino())) {
                // Same inode: its owner and mode were set with the first name.
                return fs::hard_link(first, dst)
                    .with_context(|| format!("link({}, {}) failed", shown(first), shown(dst)));
            }
            linked.insert((meta.dev(), meta.ino()), dst.to_path_buf());
        }
        copy_data(src, dst, meta.len()).with_context(|| format!("cannot copy {} to {}", shown(src), shown(dst)))?;
    } else if layer && is_whiteout(&meta) {
        nix::sys::stat::mknod(dst, nix::sys::stat::SFlag::S_IFCHR, Mode::empty(), 0)
            .with_context(|| format!("mknod({}, S_IFCHR, 0, makedev(0, 0)) failed", shown(dst)))?;
    } else {
        return Ok(());
    }
    let (uid, gid) = owner(meta.uid(), meta.gid());
    lchown(dst, Some(uid), Some(gid)).with_context(|| format!("lchown({}, {uid}, {gid}) failed", shown(dst)))?;
    // After chown, which clears the setuid and setgid bits.
    if !kind.is_symlink() {
        fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .with_context(|| format!("chmod({}, {:04o}) failed", shown(dst), meta.mode() & 0o7777))?;
    }
    Ok(())
}

/// Copies the first `len` bytes of `src` into the new file `dst` and leaves
/// holes where `src` has holes (found with lseek's SEEK_DATA and SEEK_HOLE,
/// man 2 lseek) or blocks of zeros: `fs::copy` would write them all out, and
/// a sparse 1 GiB disk image would take 1 GiB in every copy.
fn copy_data(src: &Path, dst: &Path, len: u64) -> Result<()> {
    // Holes are allocated in whole blocks; 4 KiB is the usual block size.
    const BLOCK: usize = 4096;
    let input = fs::File::open(src).with_context(|| format!("cannot open {}", shown(src)))?;
    let output = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dst)
        .with_context(|| format!("cannot create {}", shown(dst)))?;
    let mut buffer = vec![0u8; 32 * BLOCK];
    let mut offset = 0;
    while offset < len {
        let data = match lseek(&input, offset as i64, Whence::SeekData) {
            Ok(data) => data as u64,
            // No data after `offset`: the rest is one hole.
            Err(Errno::ENXIO) => break,
            // A filesystem that cannot say where its holes are: read it all,
            // the zero blocks still become holes below.
            Err(Errno::EINVAL | Errno::EOPNOTSUPP) => offset,
            Err(errno) => {
                return Err(errno).with_context(|| format!("lseek({}, {offset}, SEEK_DATA) failed", shown(src)));
            }
        };
        let hole = match lseek(&input, data as i64, Whence::SeekHole) {
            Ok(hole) => (hole as u64).min(len),
            Err(_) => len,
        };
        offset = data;
        while offset < hole {
            let want = buffer.len().min((hole - offset) as usize);
            let got =
                input.read_at(&mut buffer[..want], offset).with_context(|| format!("cannot read {}", shown(src)))?;
            if got == 0 {
                // The file shrank while it was copied: copy what there is.
                break;
            }
            let chunk = &buffer[..got];
            let mut start = 0;
            while start < chunk.len() {
                let end = (start + BLOCK).min(chunk.len());
                if chunk[start..end].iter().any(|&byte| byte != 0) {
                    output
                        .write_all_at(&chunk[start..end], offset + start as u64)
                        .with_context(|| format!("cannot write {}", shown(dst)))?;
                }
                start = end;
            }
            offset += got as u64;
        }
        offset = offset.max(hole);
    }
    // The trailing hole, if any: only the size makes it.
    output.set_len(len).with_context(|| format!("ftruncate({}, {len}) failed", shown(dst)))
}

/// Removes `path` and everything under it, and never anything on another
/// mount: if something is still mounted below (even a bind mount of a
/// directory of the same filesystem, such as the shared image), that is a bug
/// to report, not a reason to delete the files through it. The error names
/// the mount point, and nothing below it is touched. A missing `path` is
/// fine.
///
/// The walk goes by file descriptor (openat, statx, unlinkat: the names are
/// bytes, a newline or a `\xff` in one is just a byte), one directory open at
/// a time, so that a 2,100-deep tree made by a container neither runs out of
/// descriptors (the usual limit is 1,024) nor of path length (PATH_MAX).
/// Mount points are found with statx(2)'s `stx_mnt_id`, which needs Linux
/// 5.8 or later: `st_dev` alone cannot tell a bind mount of the same
/// filesystem from a plain directory. `rm -rf --one-file-system` has that
/// blind spot; runc's cleanup unmounts first and then relies on EBUSY.
pub fn remove_tree(path: &Path) -> Result<()> {
    remove(path, refuse_listed_mounts)
}

/// [`remove_tree`], with the check of mountinfo done by `listed_first`
/// (tests leave it out, to see that the walk alone stops at a mount).
fn remove(path: &Path, listed_first: fn(&Path) -> Result<()>) -> Result<()> {
    let Some(name) = path.file_name() else {
        bail!("refusing to remove {}: name the directory itself, not / or ..", shown(path));
    };
    let parent_path = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let name = CString::new(name.as_bytes()).with_context(|| format!("invalid path {}", shown(path)))?;
    // O_PATH: the parent only serves as the anchor of the *at calls, and
    // needs no read permission.
    let parent =
        match openat(AT_FDCWD, parent_path, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty()) {
            Ok(parent) => parent,
            Err(Errno::ENOENT) => return Ok(()),
            Err(errno) => return Err(failed(errno, format!("open(\"{}\", O_PATH|O_DIRECTORY)", shown(parent_path)))),
        };
    let outer = statx_fd(parent.as_fd()).map_err(|errno| statx_failed(errno, parent_path, None))?;
    let top = match statx_at(parent.as_fd(), &name) {
        Ok(top) => top,
        Err(Errno::ENOENT) => return Ok(()),
        Err(errno) => return Err(statx_failed(errno, parent_path, Some(&name))),
    };
    if top.mnt_id != outer.mnt_id || top.mount_root {
        return Err(mounted_at(path));
    }
    if !top.is_dir() {
        return match unlinkat(&parent, name.as_c_str(), UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(errno) => {
                Err(failed(errno, format!("unlinkat(\"{}\", \"{}\", 0)", shown(parent_path), shown_name(&name))))
            }
        };
    }
    listed_first(path)?;
    remove_by_fd(parent.as_fd(), &name, path, top)
}

/// The cheap first check of [`remove_tree`]: a mount point listed below
/// `path` in this thread's mountinfo stops the removal before it deletes
/// anything at all. (The walk itself checks every entry, and also catches
/// what this list cannot show by path.) /proc may be missing, as in a
/// chroot: then the walk alone decides.
fn refuse_listed_mounts(path: &Path) -> Result<()> {
    let Ok(mounted) = mounts_under("thread-self", path) else {
        return Ok(());
    };
    match &mounted[..] {
        [] => Ok(()),
        [one] => Err(mounted_at(one)),
        // Deepest first: the last one is the nearest to `path`.
        [.., nearest] => bail!(
            "refusing to remove {}: another filesystem is mounted at {}, and at {} more places below it (unmount them first)",
            shown(path),
            shown(nearest),
            mounted.len() - 1
        ),
    }
}

/// The error for a mount point the removal will not enter.
fn mounted_at(point: &Path) -> anyhow::Error {
    anyhow::anyhow!("refusing to remove {}: another filesystem is mounted there (unmount it first)", shown(point))
}

/// A directory the walk of [`remove_by_fd`] is in: its name in its parent,
/// its (st_dev, st_ino) to recognise it when coming back up through "..",
/// and the subdirectories still to remove.
struct Level {
    name: CString,
    id: ((u32, u32), u64),
    pending: Vec<CString>,
}

/// Removes the directory `name` in `parent` (the tree that [`remove_tree`]
/// was asked to remove, known as `path` in messages): depth first, with at
/// most three descriptors open (the parent, the current directory, and one
/// being opened or listed). It goes down with openat(name) and back up with
/// openat(".."), and checks on the way up that ".." is the directory it came
/// from: if the tree was moved under it, it stops.
fn remove_by_fd(parent: BorrowedFd<'_>, name: &CStr, path: &Path, top: Node) -> Result<()> {
    let walk = Walk { top: path, mnt_id: top.mnt_id, dev: top.dev };
    let mut stack = vec![Level { name: name.to_owned(), id: top.id(), pending: Vec::new() }];
    let Some(mut current) = walk.enter(parent, name, &stack[..0], Some(top.id()))? else {
        return Ok(());
    };
    stack[0].pending = walk.scan(current.as_fd(), &stack)?;
    // A directory that is not empty when its turn comes (something kept
    // writing to it) is gone through again, a bounded number of times.
    let mut retries = 0;
    loop {
        let level = stack.last_mut().expect("the top level is popped last");
        if let Some(child) = level.pending.pop() {
            let Some(entered) = walk.enter(current.as_fd(), &child, &stack, None)? else {
                continue;
            };
            let node =
                statx_fd(entered.as_fd()).map_err(|errno| statx_failed(errno, &walk.path(&stack), Some(&child)))?;
            stack.push(Level { name: child, id: node.id(), pending: Vec::new() });
            current = entered;
            let pending = walk.scan(current.as_fd(), &stack)?;
            stack.last_mut().expect("just pushed").pending = pending;
            continue;
        }
        let done = stack.pop().expect("the loop ends when the stack is empty");
        let Some(above) = stack.last() else {
            drop(current);
            return match unlinkat(parent, done.name.as_c_str(), UnlinkatFlags::RemoveDir) {
                Ok(()) | Err(Errno::ENOENT) => Ok(()),
                Err(errno) => Err(failed(errno, format!("rmdir({})", shown(path)))),
            };
        };
        let up = openat(&current, "..", OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|errno| failed(errno, format!("openat(\"{}\", \"..\")", shown(&walk.path(&stack)))))?;
        let node = statx_fd(up.as_fd()).map_err(|errno| statx_failed(errno, &walk.path(&stack), None))?;
        if node.id() != above.id || node.mnt_id != walk.mnt_id {
            bail!(
                "stopped removing {}: {} was moved while it was being removed",
                shown(path),
                shown(&walk.path(&stack).join(OsStr::from_bytes(done.name.to_bytes())))
            );
        }
        current = up;
        match walk.unlink(current.as_fd(), &done.name, true, &stack) {
            Err(err) if retries < 16 && err.downcast_ref::<Errno>().is_some_and(|e| *e == Errno::ENOTEMPTY) => {
                retries += 1;
                stack.last_mut().expect("not the top").pending.push(done.name);
            }
            result => result?,
        }
    }
}

/// What every step of a walk compares against: the mount and device of the
/// top directory, and its path for messages.
struct Walk<'a> {
    top: &'a Path,
    mnt_id: u64,
    dev: (u32, u32),
}

impl Walk<'_> {
    /// The path of the directory the walk is in, for messages only: the
    /// top's parent before it has entered the top.
    fn path(&self, stack: &[Level]) -> PathBuf {
        if stack.is_empty() {
            return self.top.parent().unwrap_or(Path::new(".")).to_path_buf();
        }
        let mut path = self.top.to_path_buf();
        for level in stack.iter().skip(1) {
            path.push(OsStr::from_bytes(level.name.to_bytes()));
        }
        path
    }

    fn entry(&self, stack: &[Level], name: &CStr) -> PathBuf {
        self.path(stack).join(OsStr::from_bytes(name.to_bytes()))
    }

    /// Fails unless `node` is on the top's mount (and, a directory, on its
    /// device: overlayfs may report the device of a lower layer for a file,
    /// never for a directory).
    fn check(&self, node: &Node, path: impl FnOnce() -> PathBuf) -> Result<()> {
        if node.mnt_id != self.mnt_id || node.mount_root {
            return Err(mounted_at(&path()));
        }
        if node.is_dir() && node.dev != self.dev {
            let ((major, minor), (top_major, top_minor)) = (node.dev, self.dev);
            bail!(
                "refusing to remove {}: it is on device {major}:{minor}, not {top_major}:{top_minor} as {} (a btrfs subvolume?)",
                shown(&path()),
                shown(self.top)
            );
        }
        Ok(())
    }

    /// Opens the subdirectory `name` of `dir` and checks that it is on the
    /// top's mount (and, when given, the expected (dev, ino)). None when it
    /// is gone already.
    fn enter(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        stack: &[Level],
        expected: Option<((u32, u32), u64)>,
    ) -> Result<Option<OwnedFd>> {
        // O_NOFOLLOW: a symlink put in place of a directory is not followed;
        // the open fails with ELOOP instead.
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let opened = match openat(dir, name, flags, Mode::empty()) {
            Err(Errno::EACCES) => {
                self.make_searchable(dir, name, stack)?;
                openat(dir, name, flags, Mode::empty())
            }
            opened => opened,
        };
        let fd = match opened {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(errno) => {
                return Err(failed(
                    errno,
                    format!(
                        "openat(\"{}\", \"{}\", O_RDONLY|O_DIRECTORY|O_NOFOLLOW)",
                        shown(&self.path(stack)),
                        shown_name(name)
                    ),
                ));
            }
        };
        let node = statx_fd(fd.as_fd()).map_err(|errno| statx_failed(errno, &self.path(stack), Some(name)))?;
        self.check(&node, || self.entry(stack, name))?;
        if expected.is_some_and(|id| id != node.id()) {
            bail!(
                "stopped removing {}: {} was replaced while it was being removed",
                shown(self.top),
                shown(&self.entry(stack, name))
            );
        }
        Ok(Some(fd))
    }

    /// Without CAP_DAC_OVERRIDE (a runtime that dropped it, or a user's own
    /// tree), a directory of mode 000 cannot be listed: make it its owner's
    /// (mode 0700) before entering it. It is about to go anyway. The chmod
    /// goes through an O_PATH descriptor checked to be on the top's mount,
    /// never through the name, which could meanwhile be a symlink.
    fn make_searchable(&self, dir: BorrowedFd<'_>, name: &CStr, stack: &[Level]) -> Result<()> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let handle = openat(dir, name, flags, Mode::empty()).map_err(|errno| {
            failed(errno, format!("openat(\"{}\", \"{}\", O_PATH)", shown(&self.path(stack)), shown_name(name)))
        })?;
        let node = statx_fd(handle.as_fd()).map_err(|errno| statx_failed(errno, &self.path(stack), Some(name)))?;
        self.check(&node, || self.entry(stack, name))?;
        // fchmod(2) does not take an O_PATH descriptor; its /proc link does.
        let link = format!("/proc/self/fd/{}", handle.as_raw_fd());
        fchmodat(AT_FDCWD, link.as_str(), Mode::S_IRWXU, FchmodatFlags::FollowSymlink)
            .map_err(|errno| failed(errno, format!("chmod({}, 0700)", shown(&self.entry(stack, name)))))
    }

    /// Lists `dir`, checks every entry's mount before removing any (so a
    /// mount point found here leaves its siblings alone too), unlinks all
    /// but the subdirectories, and returns those.
    fn scan(&self, dir: BorrowedFd<'_>, stack: &[Level]) -> Result<Vec<CString>> {
        // Read in full and closed before anything is unlinked: readdir(3)
        // does not promise to return every entry of a directory that
        // changes while it is read.
        let mut names = Vec::new();
        {
            let mut listing =
                Dir::openat(dir, ".", OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
                    .map_err(|errno| failed(errno, format!("opendir({})", shown(&self.path(stack)))))?;
            for entry in listing.iter() {
                let entry = entry.map_err(|errno| failed(errno, format!("readdir({})", shown(&self.path(stack)))))?;
                let name = entry.file_name();
                if name != c"." && name != c".." {
                    names.push(name.to_owned());
                }
            }
        }
        let mut directories = Vec::new();
        let mut others = Vec::new();
        for name in names {
            let node = match statx_at(dir, &name) {
                Ok(node) => node,
                Err(Errno::ENOENT) => continue,
                Err(errno) => return Err(statx_failed(errno, &self.path(stack), Some(&name))),
            };
            self.check(&node, || self.entry(stack, &name))?;
            if node.is_dir() { directories.push(name) } else { others.push(name) }
        }
        for name in others {
            self.unlink(dir, &name, false, stack)?;
        }
        Ok(directories)
    }

    /// unlinkat(2) of `name` in `dir`, which the walk has checked to be on
    /// the top's mount. Without CAP_DAC_OVERRIDE, a directory of mode 0500
    /// cannot lose entries: it is made writable (mode 0700) once.
    fn unlink(&self, dir: BorrowedFd<'_>, name: &CStr, remove_dir: bool, stack: &[Level]) -> Result<()> {
        let call =
            || unlinkat(dir, name, if remove_dir { UnlinkatFlags::RemoveDir } else { UnlinkatFlags::NoRemoveDir });
        let mut result = call();
        if result == Err(Errno::EACCES) && fchmod(dir, Mode::S_IRWXU).is_ok() {
            result = call();
        }
        match result {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(errno) => Err(failed(
                errno,
                format!(
                    "unlinkat(\"{}\", \"{}\", {})",
                    shown(&self.path(stack)),
                    shown_name(name),
                    if remove_dir { "AT_REMOVEDIR" } else { "0" }
                ),
            )),
        }
    }
}

/// What the removal needs to know of a file, from statx(2).
#[derive(Clone, Copy, Debug)]
struct Node {
    mode: u16,
    dev: (u32, u32),
    ino: u64,
    /// The id of the mount the file was found on (`stx_mnt_id`, Linux 5.8).
    mnt_id: u64,
    /// STATX_ATTR_MOUNT_ROOT: the file is the root of a mount.
    mount_root: bool,
}

impl Node {
    fn is_dir(&self) -> bool {
        u32::from(self.mode) & libc::S_IFMT == libc::S_IFDIR
    }

    fn id(&self) -> ((u32, u32), u64) {
        (self.dev, self.ino)
    }
}

/// statx(2) of `name` in `dir`, without following a symlink or triggering an
/// automount. The mount id is required: without it, the removal could not
/// tell a bind mount from a directory, so its absence is ENOSYS.
fn statx_at(dir: BorrowedFd<'_>, name: &CStr) -> nix::Result<Node> {
    statx(dir, name, libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT)
}

/// statx(2) of an open descriptor (AT_EMPTY_PATH).
fn statx_fd(fd: BorrowedFd<'_>) -> nix::Result<Node> {
    statx(fd, c"", libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT)
}

fn statx(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int) -> nix::Result<Node> {
    let want = libc::STATX_TYPE | libc::STATX_INO | libc::STATX_MNT_ID;
    // SAFETY: `struct statx` is plain integers, for which all zeros is a
    // valid value.
    let mut buf: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is NUL-terminated and `buf` is a `struct statx` the
    // kernel may write; both outlive the call.
    Errno::result(unsafe { libc::statx(dir.as_raw_fd(), name.as_ptr(), flags, want, &mut buf) })?;
    if buf.stx_mask & libc::STATX_MNT_ID == 0 {
        return Err(Errno::ENOSYS);
    }
    let root = libc::STATX_ATTR_MOUNT_ROOT as u64;
    Ok(Node {
        mode: buf.stx_mode,
        dev: (buf.stx_dev_major, buf.stx_dev_minor),
        ino: buf.stx_ino,
        mnt_id: buf.stx_mnt_id,
        mount_root: buf.stx_attributes_mask & root != 0 && buf.stx_attributes & root != 0,
    })
}

fn statx_failed(errno: Errno, dir: &Path, name: Option<&CStr>) -> anyhow::Error {
    let call = match name {
        Some(name) => format!("statx(\"{}\", \"{}\", STATX_MNT_ID)", shown(dir), shown_name(name)),
        None => format!("statx(\"{}\", AT_EMPTY_PATH, STATX_MNT_ID)", shown(dir)),
    };
    let err = failed(errno, call);
    if errno == Errno::ENOSYS {
        // statx(2) arrived in Linux 4.11, its mount id in 5.8.
        return err.context("removing a directory safely needs statx's mount id (Linux 5.8 or later)");
    }
    err
}

/// An error that names the call and its arguments, with the errno as cause:
/// "unlinkat(…) failed: EBUSY: Device or resource busy".
fn failed(errno: Errno, call: String) -> anyhow::Error {
    anyhow::Error::new(errno).context(format!("{call} failed"))
}

/// A path as one line of an error may show it: control characters (a name
/// may hold a newline) and bytes that are not UTF-8 escaped, and the middle
/// of a very long path (a 2,100-deep one) cut out, so that the line stays
/// short.
fn shown(path: &Path) -> String {
    shown_bytes(path.as_os_str().as_bytes())
}

fn shown_name(name: &CStr) -> String {
    shown_bytes(name.to_bytes())
}

fn shown_bytes(bytes: &[u8]) -> String {
    const HEAD: usize = 40;
    const TAIL: usize = 80;
    let mut text = String::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                text.extend(c.escape_default());
            } else {
                text.push(c);
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(text, "\\x{byte:02x}");
        }
    }
    let count = text.chars().count();
    if count <= HEAD + TAIL + 1 {
        return text;
    }
    let head: String = text.chars().take(HEAD).collect();
    let tail: String = text.chars().skip(count - TAIL).collect();
    format!("{head}…{tail}")
}

/// Mount points at or below `path` in the mount namespace of process `pid`
/// ("self" for ours, "thread-self" for this thread's), deepest first, read
/// from its mountinfo. The kernel writes mount points resolved, so `path` is
/// resolved too (symlinks, `..`, in our own namespace): given through a
/// symlink, it must not hide what is mounted below it.
pub fn mounts_under(pid: &str, path: &Path) -> Result<Vec<PathBuf>> {
    let mountinfo = format!("/proc/{pid}/mountinfo");
    let data = fs::read(&mountinfo).with_context(|| format!("cannot read {mountinfo}"))?;
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    points_under(&data, &path).with_context(|| format!("cannot parse {mountinfo}"))
}

/// The mount points of mountinfo `data` at or below `path`, deepest first.
/// The kernel escapes space, tab, newline and backslash in a mount point as
/// `\040`, `\011`, `\012` and `\134` (mangle() in fs/proc_namespace.c);
/// libmount's parser turns them back into bytes (its tests pin that), so a
/// point compares with `path` byte for byte. `Path::starts_with` compares
/// whole components: `/x/ab` is not below `/x/a`.
fn points_under(data: &[u8], path: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for mount in libmount::mountinfo::Parser::new(data) {
        let point = PathBuf::from(mount?.mount_point.into_owned());
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

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;

    use nix::mount::{MntFlags, MsFlags, mount, umount2};
    use nix::sched::{CloneFlags, unshare};
    use nix::sys::resource::{Resource, setrlimit};
    use nix::sys::stat::mkdirat;
    use nix::sys::wait::{WaitStatus, waitpid};
    use nix::unistd::{ForkResult, fork, mkfifo, pipe, symlinkat};

    use super::*;
    use crate::testing::require_root;

    /// Runs `body` on a thread of its own, in a mount namespace of its own
    /// in which every mount is private: what it mounts, no other thread or
    /// process sees, and it all goes away with the thread, even when an
    /// assertion fails. (unshare(CLONE_NEWNS) works for one thread: it
    /// unshares the thread's filesystem context, not the process's.) Its
    /// mountinfo is /proc/thread-self/mountinfo.
    fn in_private_mount_namespace(body: impl FnOnce() + Send + 'static) {
        let outcome = std::thread::spawn(move || {
            unshare(CloneFlags::CLONE_NEWNS).expect("unshare(CLONE_NEWNS) failed");
            mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
                .expect("mount(\"/\", MS_REC|MS_PRIVATE) failed");
            body();
        })
        .join();
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }

    fn bind(source: &Path, target: &Path) {
        mount(Some(source), target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .unwrap_or_else(|e| panic!("mount({source:?}, {target:?}, MS_BIND) failed: {e}"));
    }

    fn unmount(target: &Path) {
        umount2(target, MntFlags::empty()).unwrap_or_else(|e| panic!("umount2({target:?}) failed: {e}"));
    }

    fn message(result: Result<()>) -> String {
        format!("{:#}", result.expect_err("the removal should have been refused"))
    }

    /// A small tree standing for an image: the files a removal must never
    /// reach.
    fn make_image(image: &Path) {
        fs::create_dir_all(image.join("bin")).unwrap();
        fs::create_dir_all(image.join("etc")).unwrap();
        fs::write(image.join("bin/sh"), "busybox").unwrap();
        fs::write(image.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    }

    fn assert_image_intact(image: &Path) {
        assert_eq!(fs::read_to_string(image.join("bin/sh")).unwrap(), "busybox", "the image lost bin/sh");
        assert_eq!(fs::read_to_string(image.join("etc/passwd")).unwrap(), "root:x:0:0::/root:/bin/sh\n");
    }

    /// Runs `job` in a forked child that may have at most `limit` files
    /// open, and returns its error text when it failed.
    fn in_child_with_fd_limit(limit: u64, job: impl FnOnce() -> Result<()>) -> Result<(), String> {
        let (reader, writer) = pipe().unwrap();
        // SAFETY: the child only makes file system calls and allocations
        // (which glibc keeps working after a fork), takes no lock another
        // test thread could hold, and leaves with _exit.
        match unsafe { fork() }.expect("fork failed") {
            ForkResult::Child => {
                // Only stdin, stdout, stderr and the pipe (as fd 3) stay
                // open: the files the parent's other test threads had open
                // must not count against the limit.
                // SAFETY: dup2 and close_range only renumber and close
                // descriptors; nothing in the child uses the closed ones.
                unsafe {
                    libc::dup2(writer.as_raw_fd(), 3);
                    libc::syscall(libc::SYS_close_range, 4, u32::MAX, 0);
                }
                let outcome =
                    setrlimit(Resource::RLIMIT_NOFILE, limit, limit).map_err(anyhow::Error::from).and_then(|()| job());
                let code = match outcome {
                    Ok(()) => 0,
                    Err(err) => {
                        let text = format!("{err:#}");
                        // SAFETY: writes from a live buffer to the pipe.
                        unsafe { libc::write(3, text.as_ptr().cast(), text.len()) };
                        1
                    }
                };
                // SAFETY: _exit(2) ends the child without running the
                // destructors and exit handlers it shares with the parent.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => {
                drop(writer);
                let mut text = String::new();
                fs::File::from(reader).read_to_string(&mut text).unwrap();
                match waitpid(child, None).unwrap() {
                    WaitStatus::Exited(_, 0) => Ok(()),
                    status => Err(format!("{status:?}: {text}")),
                }
            }
        }
    }

    #[test]
    fn a_missing_path_is_already_removed() {
        let scratch = tempfile::tempdir().unwrap();
        remove_tree(&scratch.path().join("never-made")).unwrap();
        remove_tree(&scratch.path().join("no/such/parent")).unwrap();
    }

    #[test]
    fn removes_a_tree_2100_directories_deep_with_a_few_descriptors() {
        let scratch = tempfile::tempdir().unwrap();
        let outside = scratch.path().join("outside");
        fs::write(&outside, "kept").unwrap();
        let top = scratch.path().join("deep");
        fs::create_dir(&top).unwrap();
        // Made by descriptor, as a container would: the path of the deepest
        // level (4,200 bytes and more) is longer than PATH_MAX.
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let mut dir = openat(AT_FDCWD, &top, flags, Mode::empty()).unwrap();
        for _ in 0..2100 {
            let file = OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC;
            drop(openat(&dir, "f", file, Mode::from_bits_truncate(0o644)).unwrap());
            mkdirat(&dir, "d", Mode::from_bits_truncate(0o755)).unwrap();
            dir = openat(&dir, "d", flags, Mode::empty()).unwrap();
        }
        symlinkat(&outside, &dir, "escape").unwrap();
        drop(dir);
        // One descriptor per level would stop at the 16th.
        in_child_with_fd_limit(16, || remove_tree(&top)).unwrap_or_else(|err| panic!("remove_tree failed: {err}"));
        assert!(fs::symlink_metadata(&top).is_err(), "{top:?} is still there");
        assert_eq!(fs::read_to_string(&outside).unwrap(), "kept");
    }

    /// A tree with names holding newlines and bytes that are not UTF-8,
    /// files and directories of every awkward mode, a fifo, and symlinks
    /// that point out of it (which must not be followed). Returns the file
    /// outside that a symlink points to.
    fn make_awkward_tree(top: &Path, outside: &Path) {
        fs::create_dir_all(outside.join("dir")).unwrap();
        fs::write(outside.join("file"), "kept").unwrap();
        fs::write(outside.join("dir/file"), "kept").unwrap();
        fs::create_dir(top).unwrap();
        let long = "n".repeat(255);
        let names: [&OsStr; 7] = [
            OsStr::new("new\nline"),
            OsStr::new("tab\tand space"),
            OsStr::new("back\\134slash"),
            OsStr::from_bytes(b"\xff\xfe not utf-8"),
            OsStr::new("-rf"),
            OsStr::new("..."),
            OsStr::new(&long),
        ];
        for name in names {
            let dir = top.join(name);
            fs::create_dir(&dir).unwrap();
            fs::write(dir.join(name), "data").unwrap();
            fs::write(dir.join("mode-0000"), "data").unwrap();
            fs::set_permissions(dir.join("mode-0000"), fs::Permissions::from_mode(0o000)).unwrap();
            fs::write(dir.join("mode-7777"), "data").unwrap();
            fs::set_permissions(dir.join("mode-7777"), fs::Permissions::from_mode(0o7777)).unwrap();
        }
        let locked = top.join("locked");
        fs::create_dir_all(locked.join("inner")).unwrap();
        fs::write(locked.join("inner/file"), "data").unwrap();
        fs::set_permissions(locked.join("inner"), fs::Permissions::from_mode(0o000)).unwrap();
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
        let read_only = top.join("read-only");
        fs::create_dir(&read_only).unwrap();
        fs::write(read_only.join("file"), "data").unwrap();
        fs::set_permissions(&read_only, fs::Permissions::from_mode(0o500)).unwrap();
        mkfifo(&top.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        symlink(outside.join("dir"), top.join("link-to-a-directory")).unwrap();
        symlink(outside.join("file"), top.join("link-to-a-file")).unwrap();
        symlink("/nowhere", top.join("dangling")).unwrap();
    }

    fn assert_removed_and_outside_kept(top: &Path, outside: &Path) {
        assert!(fs::symlink_metadata(top).is_err(), "{top:?} is still there");
        assert_eq!(fs::read_to_string(outside.join("file")).unwrap(), "kept");
        assert_eq!(fs::read_to_string(outside.join("dir/file")).unwrap(), "kept");
    }

    #[test]
    fn removes_names_with_newlines_and_odd_bytes_and_modes() {
        let scratch = tempfile::tempdir().unwrap();
        let (top, outside) = (scratch.path().join("tree"), scratch.path().join("outside"));
        make_awkward_tree(&top, &outside);
        remove_tree(&top).unwrap();
        assert_removed_and_outside_kept(&top, &outside);
    }

    #[test]
    fn removes_mode_000_directories_without_cap_dac_override() {
        let scratch = tempfile::tempdir().unwrap();
        let (top, outside) = (scratch.path().join("tree"), scratch.path().join("outside"));
        make_awkward_tree(&top, &outside);
        let removed = top.clone();
        std::thread::spawn(move || {
            // Capabilities belong to a thread: this one alone loses them.
            for cap in [caps::Capability::CAP_DAC_OVERRIDE, caps::Capability::CAP_DAC_READ_SEARCH] {
                caps::drop(None, caps::CapSet::Effective, cap).unwrap();
            }
            remove_tree(&removed).unwrap();
        })
        .join()
        .unwrap();
        assert_removed_and_outside_kept(&top, &outside);
    }

    #[test]
    fn refuses_slash_and_dot_dot() {
        assert!(message(remove_tree(Path::new("/"))).contains("name the directory itself"));
        assert!(message(remove_tree(Path::new("/tmp/.."))).contains("name the directory itself"));
    }

    /// Issue 7: a container's `lower` was a bind mount of the shared image,
    /// on the same filesystem (same st_dev), and the removal of the
    /// container's directory deleted the image through it.
    #[test]
    fn a_bind_mount_of_the_shared_image_on_the_same_filesystem_is_never_entered() {
        if !require_root("a_bind_mount_of_the_shared_image_on_the_same_filesystem_is_never_entered") {
            return;
        }
        let scratch = tempfile::tempdir().unwrap();
        let root = scratch.path().to_path_buf();
        in_private_mount_namespace(move || {
            let image = root.join("image");
            make_image(&image);
            let container = root.join("container");
            let lower = container.join("lower");
            fs::create_dir_all(&lower).unwrap();
            fs::create_dir_all(container.join("upper/etc")).unwrap();
            fs::write(container.join("upper/etc/hostname"), "box\n").unwrap();
            bind(&image, &lower);
            assert_eq!(fs::metadata(&image).unwrap().dev(), fs::metadata(&lower).unwrap().dev());

            let refused = message(remove_tree(&container));
            let expected = format!("refusing to remove {}: another filesystem is mounted there", lower.display());
            assert!(refused.contains(&expected), "{refused}");
            assert_image_intact(&image);
            assert_eq!(fs::read_to_string(container.join("upper/etc/hostname")).unwrap(), "box\n");

            // The walk alone, as when /proc is not there to list the mounts.
            let refused = message(remove(&container, |_| Ok(())));
            assert!(refused.contains(&expected), "{refused}");
            assert_image_intact(&image);
            unmount(&lower);

            // A file bind-mounted over a file, further down.
            let passwd = container.join("upper/etc/passwd");
            fs::write(&passwd, "").unwrap();
            bind(&image.join("etc/passwd"), &passwd);
            let refused = message(remove(&container, |_| Ok(())));
            assert!(refused.contains(&format!("refusing to remove {}:", passwd.display())), "{refused}");
            assert_image_intact(&image);
            unmount(&passwd);

            // The directory itself a mount point.
            bind(&container, &container);
            let refused = message(remove_tree(&container));
            assert!(refused.contains(&format!("refusing to remove {}:", container.display())), "{refused}");
            unmount(&container);

            remove_tree(&container).unwrap();
            assert!(!container.exists());
            assert_image_intact(&image);
            assert_eq!(mounts_under("thread-self", &root).unwrap(), Vec::<PathBuf>::new());
        });
    }

    #[test]
    fn removes_a_tree_from_a_full_filesystem() {
        if !require_root("removes_a_tree_from_a_full_filesystem") {
            return;
        }
        let scratch = tempfile::tempdir().unwrap();
        let root = scratch.path().to_path_buf();
        in_private_mount_namespace(move || {
            let full = root.join("full");
            fs::create_dir(&full).unwrap();
            mount(Some("tmpfs"), &full, Some("tmpfs"), MsFlags::empty(), Some("size=64k,nr_inodes=64")).unwrap();
            let top = full.join("container");
            fs::create_dir_all(top.join("a/b")).unwrap();
            // Out of blocks, then out of inodes.
            let block = vec![7u8; 4096];
            let mut blocks = fs::File::create(top.join("a/b/big")).unwrap();
            while io::Write::write_all(&mut blocks, &block).is_ok() {}
            drop(blocks);
            let made = (0..64).take_while(|n| fs::write(top.join(format!("a/{n}")), "").is_ok()).count();
            assert!(made < 64, "the tmpfs was not filled");
            remove_tree(&top).unwrap();
            assert!(!top.exists());
            unmount(&full);
        });
    }

    #[test]
    fn mounts_under_unescapes_space_tab_newline_and_backslash() {
        let data = b"22 1 0:21 / / rw shared:1 - ext4 /dev/vda rw\n\
            36 22 0:50 / /tmp/a\\040b rw,relatime shared:20 - tmpfs tmpfs rw\n\
            37 36 0:51 / /tmp/a\\040b/c\\011d\\012e\\134f rw shared:21 - tmpfs tmpfs rw\n\
            38 22 0:52 / /tmp/a\\040bc rw - tmpfs tmpfs rw\n\
            39 22 0:53 / /tmp/a rw - tmpfs tmpfs rw\n";
        let found = points_under(data, Path::new("/tmp/a b")).unwrap();
        assert_eq!(found, [PathBuf::from("/tmp/a b/c\td\ne\\f"), PathBuf::from("/tmp/a b")]);
        let found = points_under(data, Path::new("/tmp/a")).unwrap();
        assert_eq!(found, [PathBuf::from("/tmp/a")], "prefixes must match whole components");
    }

    #[test]
    fn mounts_under_finds_a_mount_point_named_with_a_space_tab_newline_and_backslash() {
        if !require_root("mounts_under_finds_a_mount_point_named_with_a_space_tab_newline_and_backslash") {
            return;
        }
        let scratch = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(scratch.path()).unwrap();
        in_private_mount_namespace(move || {
            let tree = root.join("tree");
            let point = tree.join("a b\tc\nd\\e");
            fs::create_dir_all(&point).unwrap();
            fs::create_dir(root.join("x")).unwrap();
            symlink(&tree, root.join("via-a-symlink")).unwrap();
            mount(Some("tmpfs"), &point, Some("tmpfs"), MsFlags::empty(), None::<&str>).unwrap();
            assert!(mountinfo("thread-self").unwrap().contains("a\\040b\\011c\\012d\\134e"));
            for asked in [tree.clone(), root.join("via-a-symlink"), root.join("x/../tree")] {
                assert_eq!(mounts_under("thread-self", &asked).unwrap(), [point.as_path()], "asked for {asked:?}");
            }
            let refused = message(remove_tree(&tree));
            assert!(refused.contains("another filesystem is mounted there"), "{refused}");
            assert!(refused.contains("a b\\tc\\nd\\e"), "the path is not escaped on one line: {refused}");
            assert!(point.exists());
            unmount(&point);
            remove_tree(&tree).unwrap();
            assert!(!tree.exists());
        });
    }

    #[test]
    fn copy_tree_keeps_hard_links_linked_and_sparse_files_sparse() {
        let scratch = tempfile::tempdir().unwrap();
        let (src, dst) = (scratch.path().join("src"), scratch.path().join("dst"));
        fs::create_dir_all(src.join("bin")).unwrap();
        fs::write(src.join("bin/busybox"), "busybox").unwrap();
        fs::set_permissions(src.join("bin/busybox"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::hard_link(src.join("bin/busybox"), src.join("bin/sh")).unwrap();
        fs::hard_link(src.join("bin/busybox"), src.join("ls")).unwrap();
        mkfifo(&src.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        let sparse = fs::File::create(src.join("disk.img")).unwrap();
        sparse.set_len(64 << 20).unwrap();
        sparse.write_all_at(b"head", 0).unwrap();
        sparse.write_all_at(b"middle", 32 << 20).unwrap();
        sparse.sync_all().unwrap();
        drop(sparse);

        copy_tree(&src, &dst).unwrap();

        let busybox = fs::metadata(dst.join("bin/busybox")).unwrap();
        assert_eq!(busybox.nlink(), 3, "hard links were copied as separate files");
        assert_eq!(fs::metadata(dst.join("bin/sh")).unwrap().ino(), busybox.ino());
        assert_eq!(fs::metadata(dst.join("ls")).unwrap().ino(), busybox.ino());
        assert_ne!(fs::metadata(src.join("bin/busybox")).unwrap().ino(), busybox.ino());
        assert_eq!(busybox.mode() & 0o7777, 0o4755);
        assert!(fs::symlink_metadata(dst.join("fifo")).is_err(), "a fifo was copied");
        assert!(fs::symlink_metadata(src.join("fifo")).unwrap().file_type().is_fifo());

        let (original, copy) =
            (fs::metadata(src.join("disk.img")).unwrap(), fs::metadata(dst.join("disk.img")).unwrap());
        assert_eq!(copy.len(), original.len());
        assert!(original.blocks() * 512 < 1 << 20, "this filesystem does not keep holes: {original:?}");
        assert!(
            copy.blocks() <= original.blocks(),
            "the copy takes {} blocks, the original {}",
            copy.blocks(),
            original.blocks()
        );
        let copied = fs::File::open(dst.join("disk.img")).unwrap();
        let mut middle = [0u8; 6];
        copied.read_exact_at(&mut middle, 32 << 20).unwrap();
        assert_eq!(&middle, b"middle");
        let mut head = [0u8; 4];
        copied.read_exact_at(&mut head, 0).unwrap();
        assert_eq!(&head, b"head");
    }

    #[test]
    fn copy_tree_owned_shifts_owners_and_keeps_the_setuid_bit() {
        if !require_root("copy_tree_owned_shifts_owners_and_keeps_the_setuid_bit") {
            return;
        }
        let scratch = tempfile::tempdir().unwrap();
        let (src, dst) = (scratch.path().join("src"), scratch.path().join("dst"));
        fs::create_dir_all(src.join("bin")).unwrap();
        fs::write(src.join("bin/su"), "su").unwrap();
        fs::set_permissions(src.join("bin/su"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::hard_link(src.join("bin/su"), src.join("bin/login")).unwrap();
        symlink("su", src.join("bin/link")).unwrap();
        lchown(src.join("bin/link"), Some(7), Some(8)).unwrap();

        copy_tree_owned(&src, &dst, &|uid, gid| (uid + 100_000, gid + 100_000)).unwrap();

        let su = fs::metadata(dst.join("bin/su")).unwrap();
        assert_eq!((su.uid(), su.gid()), (100_000, 100_000));
        assert_eq!(su.mode() & 0o7777, 0o4755, "chown cleared the setuid bit and it was not set again");
        assert_eq!(fs::metadata(dst.join("bin/login")).unwrap().ino(), su.ino());
        let link = fs::symlink_metadata(dst.join("bin/link")).unwrap();
        assert_eq!((link.uid(), link.gid()), (100_007, 100_008));
        let top = fs::metadata(&dst).unwrap();
        assert_eq!((top.uid(), top.gid()), (100_000, 100_000));
    }
}
