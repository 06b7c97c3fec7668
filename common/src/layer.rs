//! One image layer: a tar stream unpacked into a directory in overlayfs's
//! own format, and the digest it is checked against.
//!
//! Image layers mark deletions the way aufs did, with files: `.wh.NAME`
//! says "NAME of the layers below is gone", `.wh..wh..opq` in a directory
//! says "nothing of this directory below shows through" (the OCI image
//! spec, layer.md). Overlayfs has its own marks (Documentation/filesystems/
//! overlayfs.rst): a whiteout is a character device 0/0, an opaque
//! directory carries the xattr `trusted.overlay.opaque=y`, or
//! `user.overlay.opaque=y` on an overlay mounted with `userxattr`, as a user
//! namespace mounts it (step07 on). Docker's overlay2 driver converts them
//! as it unpacks; so do we, setting both xattrs, so that one unpacked layer
//! serves every step.

use std::cell::Cell;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};
use std::rc::Rc;

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use sha2::{Digest, Sha256};
use tar::{Archive, EntryType};

/// The opaque-directory xattrs, for overlays mounted with and without
/// `userxattr`.
pub const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

/// The sha256 of everything `reader` gives, as 64 hex digits.
/// A termination signal stops it between two reads.
pub fn sha256(mut reader: impl Read) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        crate::signals::check()?;
        match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buffer[..n]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// Unpacks the (decompressed) layer tar `reader` into `dest`: owners and
/// modes kept, whiteouts and opaque markers made overlayfs's, device nodes
/// skipped (a container gets its devices from the runtime). `what` names
/// the layer in messages (`image ./a.tar, layer sha256:…`).
///
/// An entry that names a place outside the layer (a `..` part, an absolute
/// path, a hard link to either, or a path through a symlink that leads out)
/// stops the unpacking with an error, as does a tar that is cut short, or
/// empty unless `may_be_empty` (Docker's builder writes empty layers, and
/// their digest proves them whole; an empty rootfs tarball is a mistake);
/// the caller removes the partial directory.
pub fn unpack(reader: Box<dyn Read + '_>, dest: &Path, what: &str, may_be_empty: bool) -> Result<()> {
    fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let ended = Rc::new(Cell::new(false));
    let mut archive = Archive::new(Watched { inner: reader, ended: Rc::clone(&ended) });
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_unpack_xattrs(false);
    let broken =
        |cause: String| anyhow!("{what} is truncated or corrupt ({cause}): copy, export or save the image again");
    let mut entries = 0;
    for entry in archive.entries().map_err(|err| broken(err.to_string()))? {
        crate::signals::check()?;
        let mut entry = entry.map_err(|err| broken(err.to_string()))?;
        entries += 1;
        let path = entry.path().map_err(|err| broken(err.to_string()))?.into_owned();
        check_inside(&path, what)?;
        let kind = entry.header().entry_type();
        if kind == EntryType::Link {
            if let Some(target) = entry.link_name().map_err(|err| broken(err.to_string()))? {
                check_inside(&target, what)?;
            }
        }
        check_no_symlink_on_the_way(dest, &path, what)?;
        let name = path.file_name().map(OsStrExt::as_bytes).unwrap_or_default();
        if let Some(hidden) = name.strip_prefix(b".wh.") {
            let parent = dest.join(path.parent().unwrap_or(Path::new("")));
            fs::create_dir_all(&parent).with_context(|| format!("{what}: cannot create {}", parent.display()))?;
            whiteout(&parent, hidden)
                .with_context(|| format!("{what}: cannot make the whiteout {}", path.display()))?;
            continue;
        }
        if matches!(kind, EntryType::Char | EntryType::Block) {
            continue;
        }
        match entry.unpack_in(dest) {
            Ok(true) => {}
            Ok(false) => bail!(
                "{what} has an entry {} that leads outside the layer: rebuild the image without it",
                path.display()
            ),
            Err(err) => {
                // The tar crate names the entry and the destination; the
                // root cause alone says what went wrong with the tarball.
                let cause = anyhow::Error::new(err);
                if ended.get() {
                    return Err(broken(cause.root_cause().to_string()));
                }
                let cause = cause.root_cause().to_string();
                if cause.contains("outside of destination") {
                    bail!(
                        "{what} has an entry {} that leads outside the layer through a symlink: rebuild the image without it",
                        path.display()
                    );
                }
                bail!("{what}: cannot extract {} ({cause})", path.display());
            }
        }
    }
    if entries == 0 && !may_be_empty {
        bail!("{what} is empty (no files): export or save the image again");
    }
    if ended.get() {
        return Err(broken("no end-of-archive blocks".to_string()));
    }
    Ok(())
}

/// Refuses a path with a `..` part or a leading `/`: Docker cleans such
/// names and unpacks them inside the layer, but no tool that builds images
/// writes them, so an archive that has one was made to escape.
fn check_inside(path: &Path, what: &str) -> Result<()> {
    let escapes = path.components().any(|part| matches!(part, Component::ParentDir | Component::RootDir));
    if escapes {
        bail!("{what} has an entry {} that leads outside the layer: rebuild the image without it", path.display());
    }
    Ok(())
}

/// Refuses an entry whose directory, as unpacked so far, passes through a
/// symlink: the symlink could lead anywhere (`../../..`, `/etc`), and
/// whatever the entry is would land there. Image tools never write such an
/// entry (a layer records the real directories), so one that does was made
/// to escape.
fn check_no_symlink_on_the_way(dest: &Path, path: &Path, what: &str) -> Result<()> {
    let mut dir = dest.to_path_buf();
    let parts: Vec<Component> = path.parent().map(|parent| parent.components().collect()).unwrap_or_default();
    for part in parts {
        let Component::Normal(name) = part else { continue };
        dir.push(name);
        match fs::symlink_metadata(&dir) {
            Ok(meta) if meta.file_type().is_symlink() => bail!(
                "{what} has an entry {} that leads outside the layer through a symlink: rebuild the image without it",
                path.display()
            ),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Ok(())
}

/// `.wh..wh..opq` in `dir` makes it opaque; `.wh.NAME` makes NAME a
/// whiteout (character device 0/0, mode 0). Other `.wh..wh.` names (aufs's
/// own bookkeeping) mean nothing to overlayfs and are dropped.
fn whiteout(dir: &Path, hidden: &[u8]) -> Result<()> {
    if hidden == b".wh..opq" {
        return mark_opaque(dir);
    }
    if hidden.starts_with(b".wh.") || hidden.is_empty() {
        return Ok(());
    }
    let target = dir.join(std::ffi::OsStr::from_bytes(hidden));
    if fs::symlink_metadata(&target).is_ok() {
        crate::fsutil::remove_tree(&target)?;
    }
    mknod(&target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
        .with_context(|| format!("mknod({target:?}, S_IFCHR, 0, makedev(0, 0)) failed"))
}

/// Marks `dir` opaque with both xattrs. A filesystem that keeps no user.*
/// xattrs (tmpfs before Linux 6.6) gets the trusted.* one only, and a note
/// in the trace: there only the overlays without `userxattr` (steps 05 and
/// 06, and `--userns=host`) see the directory as opaque.
pub fn mark_opaque(dir: &Path) -> Result<()> {
    let [trusted, user] = OPAQUE_XATTRS;
    set_xattr(dir, trusted, b"y")?;
    if let Err(err) = set_xattr(dir, user, b"y") {
        if !err.downcast_ref::<nix::errno::Errno>().is_some_and(|errno| *errno == nix::errno::Errno::EOPNOTSUPP) {
            return Err(err);
        }
        crate::trace::note(&format!("image: {} keeps no user.* xattrs: {user} not set", dir.display()));
    }
    Ok(())
}

/// lsetxattr(2): sets `name` on `path` itself (never through a symlink).
pub fn set_xattr(path: &Path, name: &str, value: &[u8]) -> Result<()> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    let c_name = std::ffi::CString::new(name)?;
    // SAFETY: both strings are NUL-terminated and live for the call; the
    // value is a valid slice of the given length.
    let res = unsafe { libc::lsetxattr(c_path.as_ptr(), c_name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    nix::errno::Errno::result(res)
        .map(drop)
        .with_context(|| format!("lsetxattr({path:?}, {name:?}, {:?}) failed", String::from_utf8_lossy(value)))
}

/// lgetxattr(2): the value of `name` on `path` itself, or None when it has
/// none (or the filesystem keeps no xattrs).
pub fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let c_name = std::ffi::CString::new(name).ok()?;
    let mut value = vec![0u8; 256];
    // SAFETY: both strings are NUL-terminated; the buffer is writable for
    // its whole length, which is passed with it.
    let len = unsafe { libc::lgetxattr(c_path.as_ptr(), c_name.as_ptr(), value.as_mut_ptr().cast(), value.len()) };
    let len = usize::try_from(len).ok()?;
    value.truncate(len);
    Some(value)
}

/// A reader that notes when the tar ends or fails under the tar crate.
/// The tar crate reads no further than the archive's end-of-archive zero
/// block, so any end of file it meets means the tar is cut short. It
/// reports one inside an entry, but takes one where a header should start
/// for the end of the archive: a tar cut at an entry boundary would pass
/// for a smaller layer.
struct Watched<R> {
    inner: R,
    ended: Rc<Cell<bool>>,
}

impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let result = self.inner.read(buf);
        match &result {
            Ok(0) if !buf.is_empty() => self.ended.set(true),
            Err(err) if err.kind() != io::ErrorKind::Interrupted => self.ended.set(true),
            _ => {}
        }
        result
    }
}
