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
use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, BufRead, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use sha2::{Digest, Sha256};
use tar::{Archive, EntryType};

/// The opaque-directory xattrs, for overlays mounted with and without
/// `userxattr`.
pub const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

/// A buffered reader that hands what passes through it to a thread of its
/// own, which computes its sha256: a layer is hashed while it is unpacked,
/// on the other core, rather than read once more before. (sha2 uses SHA-NI
/// where the CPU has it, at about 1.35 GB/s of CPU time, as fast as
/// `openssl speed sha256`; still, the 204 MiB Debian image takes 0.15 s to
/// hash, half of what GNU tar takes to unpack it.) It reads into a chunk,
/// serves the reads above it from there, and hands the chunk over once all
/// of it is served: nothing is copied for the hashing (an earlier version
/// copied every read into a chunk of its own, 204 MB of memcpy for that
/// image). The thread ends in [`Hashed::finish`], or when the reader is
/// dropped: the runtime is single threaded again before it clones or
/// unshares.
pub struct Hashed<R> {
    inner: R,
    /// The chunk being filled and read: `chunk[start..filled]` is read
    /// from `inner` and not yet served.
    chunk: Vec<u8>,
    start: usize,
    filled: usize,
    /// A chunk and how much of it to hash.
    full: Option<mpsc::SyncSender<(Vec<u8>, usize)>>,
    /// Chunks the thread is done with, for reuse.
    empty: mpsc::Receiver<Vec<u8>>,
    thread: Option<thread::JoinHandle<String>>,
}

/// The size of a chunk: with three in use (one being read, one waiting,
/// one being hashed), the first unpack of the Debian image peaks at about
/// 4.7 MiB of RSS (1 MiB chunks made it 9).
const HASH_CHUNK: usize = 256 << 10;

impl<R: Read> Hashed<R> {
    pub fn new(inner: R) -> Hashed<R> {
        // One chunk waits while one is hashed: the reader waits rather
        // than filling memory when hashing is the slower side (it is 2-3
        // times faster than the unpacking, so this is rare; two waiting
        // made the peak RSS 512 KiB higher as often as not).
        let (full, chunks) = mpsc::sync_channel::<(Vec<u8>, usize)>(1);
        let (done, empty) = mpsc::channel();
        let thread = thread::spawn(move || {
            let mut hasher = Sha256::new();
            for (chunk, len) in chunks {
                hasher.update(&chunk[..len]);
                let _ = done.send(chunk);
            }
            format!("{:x}", hasher.finalize())
        });
        Hashed { inner, chunk: vec![0; HASH_CHUNK], start: 0, filled: 0, full: Some(full), empty, thread: Some(thread) }
    }

    /// Reads what is left (a tar's padding after its end-of-archive
    /// blocks, or all of it when nothing read it), and returns the sha256
    /// of everything, as 64 hex digits. A termination signal stops it
    /// between two reads.
    pub fn finish(mut self) -> Result<String> {
        loop {
            crate::signals::check()?;
            match self.fill_buf() {
                Ok([]) => break,
                Ok(rest) => {
                    let len = rest.len();
                    self.consume(len);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err.into()),
            }
        }
        self.hand_over();
        self.full = None;
        let thread = self.thread.take().ok_or_else(|| anyhow!("the hashing thread is gone"))?;
        thread.join().map_err(|_| anyhow!("the hashing thread panicked"))
    }

    /// Sends the chunk, served to its end, to the hashing thread, and
    /// starts a new one.
    fn hand_over(&mut self) {
        if self.filled == 0 {
            return;
        }
        let next = self.empty.try_recv().unwrap_or_else(|_| vec![0; HASH_CHUNK]);
        let chunk = std::mem::replace(&mut self.chunk, next);
        if let Some(full) = &self.full {
            // A send fails only when the thread is gone, which `finish`
            // reports.
            let _ = full.send((chunk, self.filled));
        }
        self.start = 0;
        self.filled = 0;
    }
}

impl<R: Read> BufRead for Hashed<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.start == self.filled {
            if self.filled == self.chunk.len() {
                self.hand_over();
            }
            self.filled += self.inner.read(&mut self.chunk[self.filled..])?;
        }
        Ok(&self.chunk[self.start..self.filled])
    }

    fn consume(&mut self, amount: usize) {
        self.start = (self.start + amount).min(self.filled);
    }
}

impl<R: Read> Read for Hashed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.fill_buf()?.read(buf)?;
        self.consume(n);
        Ok(n)
    }
}

impl<R> Drop for Hashed<R> {
    fn drop(&mut self) {
        self.full = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
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
pub fn unpack(reader: Box<dyn BufRead + '_>, dest: &Path, what: &str, may_be_empty: bool) -> Result<()> {
    fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let ended = Rc::new(Cell::new(false));
    // The reader is buffered (the tar crate reads each 512-byte header on
    // its own): the watch sits above the buffer, where the tar crate's
    // reads are.
    let mut archive = Archive::new(Watched { inner: reader, ended: Rc::clone(&ended) });
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_unpack_xattrs(false);
    let broken =
        |cause: String| anyhow!("{what} is truncated or corrupt ({cause}): copy, export or save the image again");
    let mut layer = Dirs { dest, what, known: HashSet::new() };
    let mut buffer = vec![0; WRITE_BUFFER];
    let mut entries = 0;
    for entry in archive.entries().map_err(|err| broken(err.to_string()))? {
        crate::signals::check()?;
        let mut entry = entry.map_err(|err| broken(err.to_string()))?;
        entries += 1;
        let path = entry.path().map_err(|err| broken(err.to_string()))?.into_owned();
        let relative = inside(&path, what)?;
        let Some(name) = relative.file_name() else {
            // `./`: the layer's own directory, made already.
            continue;
        };
        let parent = relative.parent().unwrap_or(Path::new(""));
        let kind = entry.header().entry_type();
        if let Some(hidden) = name.as_bytes().strip_prefix(b".wh.") {
            layer.directory(parent, true, &path)?;
            layer.replaced(&parent.join(OsStr::from_bytes(hidden)));
            whiteout(&dest.join(parent), hidden)
                .with_context(|| format!("{what}: cannot make the whiteout {}", path.display()))?;
            continue;
        }
        if matches!(kind, EntryType::Char | EntryType::Block) {
            continue;
        }
        layer.directory(parent, true, &path)?;
        if !kind.is_dir() {
            // Whatever the entry is (a file, a symlink), it is not a
            // directory this unpacking checked.
            layer.replaced(&relative);
        }
        let target = dest.join(&relative);
        let unpacked = if kind == EntryType::Link {
            let Some(source) = entry.link_name().map_err(|err| broken(err.to_string()))? else {
                return Err(broken(format!("hard link {} names no target", path.display())));
            };
            let source = inside(&source, what)?;
            // The link's target must be in the layer already, reached
            // through directories only: linkat(2) follows no symlink in
            // the last part (it links the symlink itself), but does in
            // the directories before it.
            layer.directory(source.parent().unwrap_or(Path::new("")), false, &path)?;
            fs::hard_link(dest.join(&source), &target)
        } else if matches!(kind, EntryType::Regular | EntryType::Continuous)
            && !path.as_os_str().as_bytes().ends_with(b"/")
        {
            // A regular file (not old tar's directory with a trailing
            // slash): the same as the tar crate makes, in larger writes.
            write_file(&mut entry, &target, &mut buffer)
        } else {
            // The entry's directory is checked: the tar crate writes the
            // entry itself without following a symlink there (O_EXCL,
            // symlink(2), mkdir(2), a directory checked with lstat).
            entry.unpack(&target).map(drop)
        };
        if let Err(err) = unpacked {
            // A termination signal stops a large file midway (write_file):
            // then the signal is what the run reports.
            crate::signals::check()?;
            // The tar crate names the entry and the destination; the
            // root cause alone says what went wrong with the tarball.
            let cause = anyhow::Error::new(err);
            if ended.get() {
                return Err(broken(cause.root_cause().to_string()));
            }
            bail!("{what}: cannot extract {} ({})", path.display(), cause.root_cause());
        }
        if kind.is_dir() {
            layer.known.insert(relative);
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

/// The largest write(2) of a file's data.
const WRITE_BUFFER: usize = 128 << 10;

/// Writes the regular file `entry` at `target` as the tar crate's
/// `Entry::unpack` does (a new file, O_EXCL, replacing one of the same
/// name; then its mtime, owner and mode, in that order: chown clears the
/// set-uid bits), but in writes of up to [`WRITE_BUFFER`]: the tar crate
/// copies through an 8 KiB buffer: 29,912 write calls for the Debian
/// image, 8,663 this way.
fn write_file<R: Read>(entry: &mut tar::Entry<'_, R>, target: &Path, buffer: &mut [u8]) -> io::Result<()> {
    let header = entry.header();
    let (uid, gid) = (header.uid()?, header.gid()?);
    // What the tar crate leaves as it is when the header has none that
    // parses: the mode and the mtime. Its rule, too: an mtime of 0 becomes
    // 1 (tools that read the tree take 0 for "unknown").
    let mode = header.mode().ok();
    let mtime = header.mtime().ok().map(|mtime| mtime.max(1));
    let too_large = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{what} is too large"));
    let uid = u32::try_from(uid).map_err(|_| too_large("its uid"))?;
    let gid = u32::try_from(gid).map_err(|_| too_large("its gid"))?;
    let size = entry.size();
    let open = || fs::OpenOptions::new().write(true).create_new(true).open(target);
    let mut file = match open() {
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(target)?;
            open()?
        }
        opened => opened?,
    };
    let mut written = 0;
    while written < size {
        if crate::signals::interrupted().is_some() {
            // The caller reports the signal.
            return Err(io::ErrorKind::Interrupted.into());
        }
        let n = match entry.read(buffer) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the tar ends inside the file")),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        file.write_all(&buffer[..n])?;
        written += n as u64;
    }
    if let Some(mtime) = mtime {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
        file.set_times(fs::FileTimes::new().set_accessed(time).set_modified(time))?;
    }
    std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
    match mode {
        Some(mode) => file.set_permissions(fs::Permissions::from_mode(mode)),
        None => Ok(()),
    }
}

/// `path` as a relative path of normal parts (`./etc/` is `etc`). A path
/// with a `..` part or a leading `/` is refused: Docker cleans such names
/// and unpacks them inside the layer, but no tool that builds images
/// writes them, so an archive that has one was made to escape.
fn inside(path: &Path, what: &str) -> Result<PathBuf> {
    let mut relative = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(name) => relative.push(name),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => bail!(
                "{what} has an entry {} that leads outside the layer: rebuild the image without it",
                path.display()
            ),
        }
    }
    Ok(relative)
}

/// The directories of the layer being unpacked that are known to be real
/// directories all the way down from `dest`: made by this unpacking, or
/// found with lstat(2), and not replaced since. An entry inside one of
/// them needs no check; any other entry's directory is walked part by part,
/// once. Before this, every entry cost a realpath(3) of the layer and of
/// its directory in the tar crate (a readlink(2) per part) and an lstat per
/// part of our own: 169,168 readlink calls for a 9,278-entry Debian rootfs.
struct Dirs<'a> {
    dest: &'a Path,
    what: &'a str,
    /// Relative paths; every parent of one is in the set too.
    known: HashSet<PathBuf>,
}

impl Dirs<'_> {
    /// Makes sure `dir` is a directory of the layer, reached from `dest`
    /// through directories only, creating what is missing when `create`
    /// (as `mkdir -p` does), else failing. A part that is a symlink (an
    /// earlier entry could point it anywhere: `../../..`, `/etc`) stops
    /// the unpacking: image tools never write an entry through a symlink
    /// (a layer records the real directories), so one that does was made
    /// to escape.
    fn directory(&mut self, dir: &Path, create: bool, entry: &Path) -> Result<()> {
        if dir.as_os_str().is_empty() || self.known.contains(dir) {
            return Ok(());
        }
        let what = self.what;
        let mut partial = PathBuf::new();
        let mut missing = false;
        for part in dir.components() {
            partial.push(part);
            if !missing && self.known.contains(&partial) {
                continue;
            }
            let full = self.dest.join(&partial);
            if !missing {
                match fs::symlink_metadata(&full) {
                    Ok(meta) if meta.is_dir() => {
                        self.known.insert(partial.clone());
                        continue;
                    }
                    Ok(meta) if meta.file_type().is_symlink() => bail!(
                        "{what} has an entry {} that leads outside the layer through a symlink: rebuild the image without it",
                        entry.display()
                    ),
                    Ok(_) => {
                        bail!("{what}: cannot extract {} ({} is not a directory)", entry.display(), partial.display())
                    }
                    Err(err) if err.kind() == io::ErrorKind::NotFound && create => missing = true,
                    Err(err) => bail!("{what}: cannot extract {} ({}: {err})", entry.display(), partial.display()),
                }
            }
            fs::create_dir(&full).with_context(|| format!("{what}: mkdir({full:?}) failed"))?;
            self.known.insert(partial.clone());
        }
        Ok(())
    }

    /// `path` is about to be something else than the directory it may
    /// have been (a file, a symlink, a whiteout): neither it nor anything
    /// below it is known any more.
    fn replaced(&mut self, path: &Path) {
        if self.known.remove(path) {
            self.known.retain(|dir| !dir.starts_with(path));
        }
    }
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
