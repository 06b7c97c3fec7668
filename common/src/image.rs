//! The image store. An image is `<image-dir>/<name>.tar` or `.tar.gz` in the
//! `docker export` format the workshop uses; it is extracted once into
//! `<image-dir>/<name>/rootfs` and shared by every container started from it.
//!
//! Every change to the store (extracting, replacing an image whose tarball
//! changed, making a uid-shifted copy, removing leftovers) happens under an
//! exclusive flock(2) on the image directory itself: of ten runs starting at
//! once from a new image, the first extracts it, and the others wait and then
//! find it done. Before it lets go, a run takes a shared flock on the image
//! it will use and keeps it, in the returned [`Image`], until it ends. That
//! lock means "in use": the kernel drops it with the last descriptor of the
//! process, so even a run killed with SIGKILL never leaves an image marked in
//! use (`man 2 flock`).
//!
//! Extraction happens in a temporary directory that is renamed into place,
//! so no run ever sees half an image. `<name>/source` records which tarball
//! (path, size, times, inode) the rootfs came from; when the tarball changes,
//! the image is extracted again and swapped in, and the old one is removed
//! as soon as no run uses it. Docker's image store keys layers by content
//! digest instead; comparing metadata costs nothing per run and still sees
//! every way of replacing a file, since no program can set a file's ctime
//! (short of changing the clock).

use std::cell::Cell;
use std::fmt;
use std::fs;
use std::io::{self, Read, Seek, Write};
use std::ops::Deref;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, Flock, FlockArg, RenameFlags, renameat2};
use tar::{Archive, EntryType, Header};

use crate::DEFAULT_IMAGE;
use crate::fsutil::remove_tree;
use crate::ids::IdMap;
use crate::trace;

/// An image's root filesystem (or a uid-shifted copy of it), marked in use
/// until dropped: no other run removes it meanwhile. It derefs to its path,
/// so `&image` goes wherever a `&Path` does.
pub struct Image {
    path: PathBuf,
    /// A shared flock(2) on the directory that holds the files, kept for the
    /// whole run. Its descriptor is close-on-exec (std opens every file so),
    /// so the container's command never inherits it.
    _in_use: Flock<fs::File>,
}

impl Image {
    /// Marks `dir` in use for this run. Called with the store locked, so it
    /// never waits: only a holder of the store lock takes LOCK_EX on an
    /// image, and only for a moment.
    fn hold(path: PathBuf, dir: &Path) -> Result<Image> {
        let in_use = Flock::lock(open_dir(dir)?, FlockArg::LockShared)
            .map_err(|(_, errno)| anyhow!(errno).context(format!("flock({dir:?}, LOCK_SH) failed")))?;
        Ok(Image { path, _in_use: in_use })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Deref for Image {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for Image {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

/// The path alone, as a trace or an error shows an argument.
impl fmt::Debug for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.path, f)
    }
}

/// The root filesystem of image `name`, extracted first when it never was or
/// when its tarball changed since, and marked in use until the returned
/// [`Image`] is dropped. The default image is built from the host's static
/// busybox when missing. `image_dir` is resolved here, once.
pub fn rootfs(image_dir: &Path, name: &str) -> Result<Image> {
    check_name(name)?;
    let unpacked = image_dir.join(name);
    let rootfs = unpacked.join("rootfs");
    // An image that does not exist at all, or a default image that cannot
    // be built: nothing to wait for, and nothing to create.
    if find_tarball(image_dir, name).is_none() && !rootfs.is_dir() {
        if name != DEFAULT_IMAGE {
            return Err(not_found(image_dir, name));
        }
        find_static_busybox()?;
    }
    // The state directory above (the default's /var/lib/docker-from-scratch)
    // must let a container's mapped root through to its own container's
    // directory; the image store itself is root's alone.
    if let Some(parent) = image_dir.parent() {
        fs::DirBuilder::new().recursive(true).mode(0o711).create(parent).ok();
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(image_dir)
        .with_context(|| format!("cannot create the image directory {}", image_dir.display()))?;
    // Resolved once (relative paths, symlinks, `..`): the overlay's options
    // and every later step see the one real path.
    let image_dir = &crate::paths::resolve(image_dir, "--image-dir")?;
    let unpacked = image_dir.join(name);
    let rootfs = unpacked.join("rootfs");
    let store = lock_store(image_dir)?;
    for removed in remove_leftovers(image_dir)? {
        trace::note(&format!("image: {removed}"));
    }
    let tarball = match find_tarball(image_dir, name) {
        Some(tarball) => Some(tarball),
        // Extracted once, and the tarball deleted since: the image stays, as
        // Docker keeps an image after its export file is gone.
        None if rootfs.is_dir() => None,
        None if name == DEFAULT_IMAGE => {
            let tarball = image_dir.join(format!("{name}.tar"));
            build_busybox_tar(&tarball)?;
            Some(tarball)
        }
        None => return Err(not_found(image_dir, name)),
    };
    if let Some(tarball) = tarball {
        let now = fs::metadata(&tarball).with_context(|| format!("cannot stat {}", tarball.display()))?;
        let recorded = fs::read_to_string(unpacked.join("source")).unwrap_or_default();
        if !rootfs.is_dir() || recorded != identity(&tarball, &now) {
            extract(&tarball, image_dir, name)?;
        }
    }
    let image = Image::hold(rootfs, &unpacked)?;
    drop(store);
    Ok(image)
}

/// A copy of an image's rootfs with every owner shifted through the given
/// maps (ids the maps do not cover become 65534, "nobody"), kept next to the
/// rootfs and reused: `<image-dir>/<name>/rootfs-<uidmap>-<gidmap>`. Built in
/// a temporary directory and renamed into place, like an extraction, and
/// marked in use until the returned [`Image`] is dropped; [`sweep`] removes
/// the copies no run uses.
pub fn mapped_copy(rootfs: &Path, uid_map: &IdMap, gid_map: &IdMap) -> Result<Image> {
    let (Some(unpacked), Some(image_dir)) = (rootfs.parent(), rootfs.parent().and_then(Path::parent)) else {
        bail!("{} is not an image's rootfs (<image-dir>/<name>/rootfs)", rootfs.display());
    };
    let name = |map: &IdMap| format!("{}:{}:{}", map.inside, map.outside, map.count);
    let copy = unpacked.join(format!("rootfs-{}-{}", name(uid_map), name(gid_map)));
    let store = lock_store(image_dir)?;
    if !copy.is_dir() {
        for removed in remove_leftovers(unpacked)? {
            trace::note(&format!("image: {removed}"));
        }
        let staging = temporary(unpacked, "rootfs", "mapping");
        let owner = |uid, gid| (uid_map.to_host(uid).unwrap_or(65_534), gid_map.to_host(gid).unwrap_or(65_534));
        let made = crate::fsutil::copy_tree_owned(rootfs, &staging, &owner).and_then(|()| {
            fs::rename(&staging, &copy).with_context(|| format!("rename({staging:?}, {copy:?}) failed"))
        });
        if let Err(err) = made {
            remove_tree(&staging)?;
            return Err(err.context(format!("cannot make the uid-shifted copy {}", copy.display())));
        }
    }
    let image = Image::hold(copy.clone(), &copy)?;
    drop(store);
    Ok(image)
}

/// Removes what no live run needs from the store: interrupted extractions,
/// builds and copies, images replaced since their tarball changed, and
/// uid-shifted copies, each only when no run holds it. Returns one line per
/// thing removed. Safe to run at any time, and any number of times.
pub fn sweep(image_dir: &Path) -> Result<Vec<String>> {
    match fs::metadata(image_dir) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).with_context(|| format!("cannot stat {}", image_dir.display())),
        Ok(_) => {}
    }
    let _store = lock_store(image_dir)?;
    let mut removed = remove_leftovers(image_dir)?;
    for entry in fs::read_dir(image_dir).with_context(|| format!("cannot list {}", image_dir.display()))? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') || !entry.file_type()?.is_dir() {
            continue;
        }
        removed.extend(remove_leftovers(&entry.path())?);
        for copy in copies(&entry.path()) {
            if remove_if_unused(&copy)? {
                removed.push(format!("removed unused uid-shifted copy {}", copy.display()));
            }
        }
    }
    Ok(removed)
}

fn not_found(image_dir: &Path, name: &str) -> anyhow::Error {
    anyhow!(
        "image {name:?} not found: put {name}.tar or {name}.tar.gz (a `docker export`) in {}, or use --image {DEFAULT_IMAGE}",
        image_dir.display()
    )
}

fn check_name(name: &str) -> Result<()> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !valid {
        bail!("invalid image name {name:?}: use letters, digits, '_', '.' and '-' (like busybox or alpine-3.19)");
    }
    Ok(())
}

fn find_tarball(image_dir: &Path, name: &str) -> Option<PathBuf> {
    ["tar", "tar.gz", "tgz"].iter().map(|ext| image_dir.join(format!("{name}.{ext}"))).find(|path| path.is_file())
}

/// What `<name>/source` records about the tarball an image came from. A new
/// file, a rewrite or a `touch` all change it; so does a chmod, which costs
/// one needless extraction and nothing else.
fn identity(tarball: &Path, meta: &fs::Metadata) -> String {
    format!(
        "tarball {}\nsize {}\nmtime {}.{:09}\nctime {}.{:09}\ninode {}:{}\n",
        tarball.display(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
        meta.dev(),
        meta.ino()
    )
}

/// A directory opened to be locked: read-only, which is all flock(2) needs,
/// and close-on-exec.
fn open_dir(dir: &Path) -> Result<fs::File> {
    fs::File::open(dir).with_context(|| format!("open({dir:?}, O_RDONLY|O_CLOEXEC) failed"))
}

/// The exclusive lock on the whole store. It is polled rather than waited
/// for: flock(2) is restarted after our SA_RESTART signal handler runs, so a
/// run blocked in it would not see a SIGTERM until the run holding the lock
/// was done; polling lets it stop within a moment (see `signals`).
fn lock_store(image_dir: &Path) -> Result<Flock<fs::File>> {
    let mut dir = open_dir(image_dir)?;
    let mut waited = false;
    loop {
        match Flock::lock(dir, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((again, Errno::EAGAIN)) => {
                if !waited {
                    trace::note(&format!("image: {} is locked by another run, waiting", image_dir.display()));
                    waited = true;
                }
                crate::signals::check()?;
                std::thread::sleep(Duration::from_millis(20));
                dir = again;
            }
            Err((_, errno)) => {
                return Err(anyhow!(errno).context(format!("flock({image_dir:?}, LOCK_EX|LOCK_NB) failed")));
            }
        }
    }
}

/// A temporary name `.<name>.<what>.<pid>` in `dir`, not yet taken. Only made
/// and removed under the store lock, so whoever holds the lock knows that
/// every such name it finds is a leftover, whatever its pid says (pids are
/// reused; a flock is not).
fn temporary(dir: &Path, name: &str, what: &str) -> PathBuf {
    let pid = std::process::id();
    let mut path = dir.join(format!(".{name}.{what}.{pid}"));
    let mut next = 1;
    while fs::symlink_metadata(&path).is_ok() {
        path = dir.join(format!(".{name}.{what}.{pid}-{next}"));
        next += 1;
    }
    path
}

/// The `<what>` of a name that [`temporary`] made, else None.
fn temporary_kind(file_name: &str) -> Option<&str> {
    let mut parts = file_name.strip_prefix('.')?.rsplitn(3, '.');
    let (pid, what, _name) = (parts.next()?, parts.next()?, parts.next()?);
    pid.starts_with(|c: char| c.is_ascii_digit()).then_some(what)
}

/// Removes the leftovers in `dir` (the store, or one image's directory):
/// interrupted extractions, builds and copies, and replaced images that no
/// run holds any more. Called with the store locked, so nobody is extracting,
/// building or copying. Returns one line per thing removed.
fn remove_leftovers(dir: &Path) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        let file_name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let what = match temporary_kind(&file_name) {
            Some("extracting") => "interrupted extraction",
            Some("building") => "interrupted image build",
            Some("mapping") => "interrupted uid-shifted copy",
            Some("replaced") => "unused replaced image",
            _ => continue,
        };
        // Only a replaced image can be in use; asking costs little, and is
        // safe whatever went wrong while a name was being changed.
        if remove_if_unused(&path)? {
            removed.push(format!("removed {what} {}", path.display()));
        }
    }
    Ok(removed)
}

/// The uid-shifted copies (`rootfs-<uidmap>-<gidmap>`) in an image's directory.
fn copies(unpacked: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(unpacked) else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("rootfs-"))
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .map(|entry| entry.path())
        .collect()
}

/// Removes an image's (or a copy's) directory when no run holds it: LOCK_EX
/// without waiting succeeds only when no run has a shared lock on it, nor on
/// a uid-shifted copy inside it. Called with the store locked.
fn remove_if_unused(dir: &Path) -> Result<bool> {
    let mut held = Vec::new();
    for path in std::iter::once(dir.to_path_buf()).chain(copies(dir)) {
        match Flock::lock(open_dir(&path)?, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => held.push(lock),
            Err((_, Errno::EAGAIN)) => return Ok(false),
            Err((_, errno)) => return Err(anyhow!(errno).context(format!("flock({path:?}, LOCK_EX|LOCK_NB) failed"))),
        }
    }
    remove_tree(dir)?;
    Ok(true)
}

/// Every extraction since the tests started, by image directory: the proof
/// that ten runs at once extract once.
#[cfg(test)]
static EXTRACTIONS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Extracts `tarball` into a staging directory, then swaps it in as
/// `<image-dir>/<name>`. Nothing is left when it fails or is interrupted.
fn extract(tarball: &Path, image_dir: &Path, name: &str) -> Result<()> {
    let unpacked = image_dir.join(name);
    trace::note(&format!("image: extracting {} into {}", tarball.display(), unpacked.display()));
    let staging = temporary(image_dir, name, "extracting");
    let made = fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .with_context(|| format!("mkdir({staging:?}, 0700) failed"))
        .and_then(|()| {
            // Private to root, whatever the umask: no other host user may
            // read the image or run its (setuid) programs. Containers never
            // reach it by path: the runtime mounts it for them.
            fs::set_permissions(&staging, fs::Permissions::from_mode(0o700))?;
            let source = unpack_tarball(tarball, &staging.join("rootfs"))?;
            fs::write(staging.join("source"), identity(tarball, &source))
                .with_context(|| format!("cannot write {}", staging.join("source").display()))
        })
        .and_then(|()| replace(&staging, &unpacked));
    #[cfg(test)]
    EXTRACTIONS.lock().unwrap().push(image_dir.to_path_buf());
    match made {
        Ok(Some(old)) => {
            if remove_if_unused(&old)? {
                trace::note(&format!("image: removed unused replaced image {}", old.display()));
            }
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(err) => {
            remove_tree(&staging)?;
            Err(err)
        }
    }
}

/// Puts `staging` in place as `unpacked`. An image that was there is
/// renamed to `.<name>.replaced.<pid>` and returned: running containers
/// keep using it (a mount holds on to its directories, not to their names).
fn replace(staging: &Path, unpacked: &Path) -> Result<Option<PathBuf>> {
    if fs::symlink_metadata(unpacked).is_err() {
        fs::rename(staging, unpacked).with_context(|| format!("rename({staging:?}, {unpacked:?}) failed"))?;
        return Ok(None);
    }
    let dir = unpacked.parent().unwrap_or(Path::new("/"));
    let name = unpacked.file_name().unwrap_or_default().to_string_lossy();
    let old = temporary(dir, &name, "replaced");
    // RENAME_EXCHANGE swaps the two names at once (renameat2(2)): a run that
    // looks the image up meanwhile finds the old one or the new one, never
    // neither. Filesystems without it get two renames.
    match renameat2(AT_FDCWD, staging, AT_FDCWD, unpacked, RenameFlags::RENAME_EXCHANGE) {
        // `staging` now holds the old image, which a running container may
        // use: if it cannot be renamed, it stays under that name, for
        // remove_if_unused to decide, and is never removed as a failed
        // extraction would be.
        Ok(()) => return Ok(Some(fs::rename(staging, &old).map_or_else(|_| staging.to_path_buf(), |()| old))),
        Err(Errno::EINVAL) => {
            fs::rename(unpacked, &old).with_context(|| format!("rename({unpacked:?}, {old:?}) failed"))?;
            if let Err(err) = fs::rename(staging, unpacked) {
                let _ = fs::rename(&old, unpacked);
                return Err(err).with_context(|| format!("rename({staging:?}, {unpacked:?}) failed"));
            }
        }
        Err(errno) => {
            return Err(anyhow!(errno).context(format!("renameat2({staging:?}, {unpacked:?}, RENAME_EXCHANGE) failed")));
        }
    }
    Ok(Some(old))
}

/// Unpacks a tarball into `dest`: owners and modes kept, device nodes
/// skipped, and nothing written outside `dest` (the tar crate's `unpack_in`
/// drops `..` entries, strips leading `/` and refuses symlinked parents that
/// lead out). An empty or truncated tarball is refused.
pub fn unpack(tarball: &Path, dest: &Path) -> Result<()> {
    unpack_tarball(tarball, dest).map(drop)
}

/// Compressions recognised by their magic bytes, to refuse them by name
/// rather than as a corrupt tarball.
const UNSUPPORTED: &[(&[u8], &str)] = &[(b"\x28\xb5\x2f\xfd", "zstd"), (b"\xfd7zXZ\x00", "xz"), (b"BZh", "bzip2")];

/// [`unpack`], returning the tarball's metadata as it was when opened.
fn unpack_tarball(tarball: &Path, dest: &Path) -> Result<fs::Metadata> {
    fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    fs::set_permissions(dest, fs::Permissions::from_mode(0o755))?;
    let mut file = fs::File::open(tarball).with_context(|| format!("cannot open {}", tarball.display()))?;
    let meta = file.metadata().with_context(|| format!("cannot stat {}", tarball.display()))?;
    let mut magic = Vec::new();
    (&mut file).take(6).read_to_end(&mut magic).with_context(|| format!("cannot read {}", tarball.display()))?;
    file.rewind()?;
    if let Some((_, kind)) = UNSUPPORTED.iter().find(|(bytes, _)| magic.starts_with(bytes)) {
        bail!("image tarball {} is {kind}-compressed: decompress it to a plain .tar (`{kind} -d`)", tarball.display());
    }
    let reader: Box<dyn Read> =
        if magic.starts_with(&[0x1f, 0x8b]) { Box::new(flate2::read::GzDecoder::new(file)) } else { Box::new(file) };
    let ended = Rc::new(Cell::new(false));
    let mut archive = Archive::new(Watched { inner: reader, ended: Rc::clone(&ended) });
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_unpack_xattrs(false);
    let broken = |cause: String| {
        anyhow!("image tarball {} is truncated or corrupt ({cause}): copy or export it again", tarball.display())
    };
    let mut entries = 0;
    for entry in archive.entries().map_err(|err| broken(err.to_string()))? {
        crate::signals::check()?;
        let mut entry = entry.map_err(|err| broken(err.to_string()))?;
        entries += 1;
        if matches!(entry.header().entry_type(), EntryType::Char | EntryType::Block) {
            continue;
        }
        let path = entry.path().map_err(|err| broken(err.to_string()))?.into_owned();
        if let Err(err) = entry.unpack_in(dest) {
            // The tar crate names the entry and the destination; the root
            // cause alone says what went wrong with the tarball.
            let cause = anyhow::Error::new(err);
            if ended.get() {
                return Err(broken(cause.root_cause().to_string()));
            }
            return Err(cause.context(format!("cannot extract {} from {}", path.display(), tarball.display())));
        }
    }
    if entries == 0 {
        bail!("image tarball {} is empty (no files): export the image again", tarball.display());
    }
    if ended.get() {
        return Err(broken("no end-of-archive blocks".to_string()));
    }
    Ok(meta)
}

/// A reader that notes when the tarball ends or fails under the tar crate.
/// The tar crate reads no further than the archive's end-of-archive zero
/// block, so any end of file it meets means the tarball is cut short. It
/// reports one inside an entry, but takes one where a header should start
/// for the end of the archive: a tarball cut at an entry boundary would pass
/// for a smaller image.
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

/// The helper programs the workshop's exercises need, built static by
/// `common/build.rs` and shipped in the default image's `/bin`.
pub const HELPERS: &[(&str, &[u8])] = &[
    ("breakout", include_bytes!(concat!(env!("OUT_DIR"), "/breakout"))),
    ("memhog", include_bytes!(concat!(env!("OUT_DIR"), "/memhog"))),
    ("tiocsti", include_bytes!(concat!(env!("OUT_DIR"), "/tiocsti"))),
    ("traceme", include_bytes!(concat!(env!("OUT_DIR"), "/traceme"))),
    ("setuid-id", include_bytes!(concat!(env!("OUT_DIR"), "/setuid-id"))),
    ("ipcmk", include_bytes!(concat!(env!("OUT_DIR"), "/ipcmk"))),
    ("mount-probe", include_bytes!(concat!(env!("OUT_DIR"), "/mount-probe"))),
];

/// The helper installed setuid root, like `su` or `passwd` in a real image.
const SETUID_HELPER: &str = "setuid-id";

/// Builds the default image as a tarball at `out` (atomically): the host's
/// static busybox with every applet linked, the helpers, and a minimal `/etc`.
pub fn build_busybox_tar(out: &Path) -> Result<()> {
    let busybox = find_static_busybox()?;
    if let Some(dir) = out.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("cannot create the image directory {}", dir.display()))?;
    }
    let listing = Command::new(&busybox)
        .arg("--list-full")
        .output()
        .with_context(|| format!("cannot run {} --list-full", busybox.display()))?;
    if !listing.status.success() {
        bail!("{} --list-full failed: is it a full busybox?", busybox.display());
    }
    let applets = String::from_utf8_lossy(&listing.stdout).into_owned();
    let staging = out.with_file_name(format!(
        ".{}.building.{}",
        out.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let result = write_busybox_tar(&staging, &busybox, &applets)
        .and_then(|()| Ok(fs::set_permissions(&staging, fs::Permissions::from_mode(0o644))?));
    if let Err(err) = result.and_then(|()| fs::rename(&staging, out).context("cannot move the built image into place"))
    {
        let _ = fs::remove_file(&staging);
        return Err(err.context(format!("building the busybox image at {} failed", out.display())));
    }
    Ok(())
}

/// A fixed timestamp: the same busybox always gives the same tarball.
const MTIME: u64 = 1_700_000_000;

fn write_busybox_tar(path: &Path, busybox: &Path, applets: &str) -> Result<()> {
    let mut builder = tar::Builder::new(io::BufWriter::new(fs::File::create(path)?));
    for dir in [
        "bin", "dev", "etc", "home", "mnt", "opt", "proc", "root", "run", "sbin", "sys", "usr", "usr/bin", "usr/sbin",
        "var", "var/tmp",
    ] {
        append(&mut builder, dir, EntryType::Directory, 0o755, &[], None)?;
    }
    append(&mut builder, "tmp", EntryType::Directory, 0o1777, &[], None)?;
    append(&mut builder, "bin/busybox", EntryType::Regular, 0o755, &fs::read(busybox)?, None)?;
    for (name, bytes) in HELPERS {
        let mode = if *name == SETUID_HELPER { 0o4755 } else { 0o755 };
        append(&mut builder, &format!("bin/{name}"), EntryType::Regular, mode, bytes, None)?;
    }
    let files: &[(&str, &str)] = &[
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
        ("etc/group", "root:x:0:\ntty:x:5:\nnobody:x:65534:\n"),
        ("etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost\n"),
        ("etc/os-release", "NAME=\"docker-from-scratch busybox\"\nID=busybox\n"),
    ];
    for (name, text) in files {
        append(&mut builder, name, EntryType::Regular, 0o644, text.as_bytes(), None)?;
    }
    for applet in applets.lines().map(|line| line.trim().trim_start_matches('/')) {
        if applet.is_empty() || applet == "bin/busybox" || applet == "linuxrc" || !applet.contains('/') {
            continue;
        }
        append(&mut builder, applet, EntryType::Symlink, 0o777, &[], Some("/bin/busybox"))?;
    }
    builder.into_inner()?.flush()?;
    Ok(())
}

fn append<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &str,
    kind: EntryType,
    mode: u32,
    data: &[u8],
    link: Option<&str>,
) -> Result<()> {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(MTIME);
    header.set_size(data.len() as u64);
    if let Some(target) = link {
        header.set_link_name(target)?;
    }
    builder.append_data(&mut header, path, data)?;
    Ok(())
}

/// The host's busybox, which must be statically linked: the image has no
/// libc for a dynamic one to load. The error names the package to install.
pub fn find_static_busybox() -> Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).map(|dir| dir.join("busybox")).collect::<Vec<_>>())
        .unwrap_or_default();
    let candidates = on_path.into_iter().chain([PathBuf::from("/bin/busybox"), PathBuf::from("/usr/bin/busybox")]);
    let mut dynamic = None;
    for candidate in candidates.filter(|path| path.is_file()) {
        if is_static_elf(&candidate)? {
            return Ok(candidate);
        }
        dynamic.get_or_insert(candidate);
    }
    match dynamic {
        Some(path) => bail!(
            "{} is dynamically linked, and the default image has no libc for it: run `apt-get install busybox-static`",
            path.display()
        ),
        None => bail!(
            "no static busybox on PATH, in /bin or /usr/bin to build the default image from: run `apt-get install busybox-static`"
        ),
    }
}

/// True when the ELF file has no program interpreter (PT_INTERP), that is,
/// it needs no dynamic loader. Reads only the ELF64 header and program
/// headers.
fn is_static_elf(path: &Path) -> Result<bool> {
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let field = |at: usize, len: usize| -> Option<u64> {
        let slice = bytes.get(at..at + len)?;
        Some(slice.iter().rev().fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte)))
    };
    if bytes.get(..5) != Some(b"\x7fELF\x02") {
        bail!("{} is not a 64-bit ELF executable", path.display());
    }
    const PT_INTERP: u64 = 3;
    let (offset, size, count) = (field(0x20, 8), field(0x36, 2), field(0x38, 2));
    let (Some(offset), Some(size), Some(count)) = (offset, size, count) else {
        bail!("{} has a truncated ELF header", path.display());
    };
    Ok((0..count).all(|index| field((offset + index * size) as usize, 4) != Some(PT_INTERP)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tarball(dir: &Path, entries: &[(&str, EntryType, Option<&str>)]) -> PathBuf {
        let path = dir.join("test.tar");
        let mut builder = tar::Builder::new(fs::File::create(&path).unwrap());
        for (name, kind, link) in entries {
            let mut header = Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_mode(0o755);
            header.set_uid(0);
            header.set_gid(0);
            header.set_size(if *kind == EntryType::Regular { 2 } else { 0 });
            if let Some(link) = link {
                header.set_link_name(link).unwrap();
            }
            let data: &[u8] = if *kind == EntryType::Regular { b"x\n" } else { b"" };
            // append_data would refuse "..": write the raw name like a hostile archive.
            header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
            header.set_cksum();
            builder.append(&header, data).unwrap();
        }
        builder.finish().unwrap();
        path
    }

    /// A regular file entry, for the image tests.
    fn file(name: &str) -> (&str, EntryType, Option<&str>) {
        (name, EntryType::Regular, None)
    }

    /// What is in a directory, sorted, by name.
    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    fn extractions(image_dir: &Path) -> usize {
        EXTRACTIONS.lock().unwrap().iter().filter(|dir| *dir == image_dir).count()
    }

    /// `path` gzip-compressed into `path.gz`.
    fn gzip(path: &Path) -> PathBuf {
        let out = path.with_extension("tar.gz");
        let mut encoder = flate2::write::GzEncoder::new(fs::File::create(&out).unwrap(), flate2::Compression::fast());
        encoder.write_all(&fs::read(path).unwrap()).unwrap();
        encoder.finish().unwrap();
        fs::remove_file(path).unwrap();
        out
    }

    /// Cuts a file to its first `len` bytes.
    fn cut(path: &Path, len: u64) {
        fs::OpenOptions::new().write(true).open(path).unwrap().set_len(len).unwrap();
    }

    #[test]
    fn nothing_is_written_outside_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let archive = tarball(
            dir.path(),
            &[
                ("../outside/dotdot", EntryType::Regular, None),
                ("escape", EntryType::Symlink, Some("../outside")),
                ("escape/through-link", EntryType::Regular, None),
                ("fine", EntryType::Regular, None),
            ],
        );
        let dest = dir.path().join("rootfs");
        let _ = unpack(&archive, &dest);
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "an entry escaped the rootfs");
    }

    #[test]
    fn device_nodes_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let archive = tarball(
            dir.path(),
            &[
                ("dev/sda", EntryType::Block, None),
                ("dev/null", EntryType::Char, None),
                ("ok", EntryType::Regular, None),
            ],
        );
        let dest = dir.path().join("rootfs");
        unpack(&archive, &dest).unwrap();
        assert!(dest.join("ok").is_file());
        assert!(!dest.join("dev/sda").exists());
        assert!(!dest.join("dev/null").exists());
    }

    #[test]
    fn image_names_cannot_be_paths() {
        assert!(check_name("../etc").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name(".hidden").is_err());
        assert!(check_name("alpine-3.19").is_ok());
    }

    #[test]
    fn a_missing_image_names_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let err = rootfs(dir.path(), "nosuch").unwrap_err().to_string();
        assert!(err.contains("nosuch.tar"), "{err}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "a failed lookup left files behind");
    }

    #[test]
    fn ten_runs_at_once_extract_a_new_image_once() {
        let dir = tempfile::tempdir().unwrap();
        // Enough entries that the runs overlap: without the lock, each of
        // them would find no image and extract it.
        let files: Vec<String> = (0..500).map(|n| format!("file-{n}")).collect();
        tarball(dir.path(), &files.iter().map(|name| file(name)).collect::<Vec<_>>());
        let start = std::sync::Barrier::new(10);
        let images: Vec<Image> = std::thread::scope(|scope| {
            let runs: Vec<_> = (0..10)
                .map(|_| {
                    scope.spawn(|| {
                        start.wait();
                        rootfs(dir.path(), "test").unwrap()
                    })
                })
                .collect();
            runs.into_iter().map(|run| run.join().unwrap()).collect()
        });
        assert_eq!(extractions(dir.path()), 1, "ten runs at once extracted the image more than once");
        for image in &images {
            assert_eq!(image.path(), dir.path().join("test/rootfs"));
            assert!(image.join("file-0").is_file() && image.join("file-499").is_file());
        }
        assert_eq!(names(dir.path()), ["test", "test.tar"], "temporary files are left");
    }

    #[test]
    fn a_changed_tarball_is_extracted_again_and_the_old_image_lives_while_held() {
        let dir = tempfile::tempdir().unwrap();
        tarball(dir.path(), &[file("old")]);
        let before = rootfs(dir.path(), "test").unwrap();
        let again = rootfs(dir.path(), "test").unwrap();
        assert_eq!(extractions(dir.path()), 1, "an unchanged tarball was extracted again");
        drop(again);

        tarball(dir.path(), &[file("new"), file("new-too")]);
        let after = rootfs(dir.path(), "test").unwrap();
        assert_eq!(extractions(dir.path()), 2, "a changed tarball was not extracted again");
        assert!(after.join("new").is_file(), "the new tarball's file is missing");
        assert!(!after.join("old").exists(), "the old tarball's file is still there");
        // The earlier run's image was renamed, not removed: its locked
        // directory, reached through its descriptor, still has the old file.
        let held = format!("/proc/self/fd/{}/rootfs/old", std::os::fd::AsRawFd::as_raw_fd(&*before._in_use));
        assert!(Path::new(&held).is_file(), "an image in use was removed");
        assert_eq!(names(dir.path()).len(), 3, "expected test, test.tar and the replaced image");

        drop(before);
        drop(after);
        let _next = rootfs(dir.path(), "test").unwrap();
        assert_eq!(names(dir.path()), ["test", "test.tar"], "the replaced image outlived its last run");
        assert_eq!(extractions(dir.path()), 2);
    }

    /// Refused with one line naming the tarball and `what`, and nothing
    /// left in the image directory but the tarball.
    fn assert_refused(dir: &Path, name: &str, tarball: &Path, what: &str) {
        let err = format!("{:#}", rootfs(dir, name).unwrap_err());
        assert!(err.contains(&tarball.display().to_string()) && err.contains(what), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        let left = names(dir);
        assert_eq!(left, [tarball.file_name().unwrap().to_string_lossy()], "a refused tarball left files");
    }

    #[test]
    fn an_empty_tarball_is_refused_and_nothing_is_cached() {
        let dir = tempfile::tempdir().unwrap();
        let archive = tarball(dir.path(), &[]);
        assert_refused(dir.path(), "test", &archive, "is empty");
        fs::write(&archive, b"").unwrap();
        assert_refused(dir.path(), "test", &archive, "is empty");
    }

    #[test]
    fn a_tarball_truncated_at_an_entry_boundary_is_refused_and_nothing_is_cached() {
        let dir = tempfile::tempdir().unwrap();
        // Each entry is a 512-byte header and one 512-byte block of data:
        // keep the first entry whole, lose the second and the end blocks.
        let archive = tarball(dir.path(), &[file("first"), file("second")]);
        cut(&archive, 1024);
        assert_refused(dir.path(), "test", &archive, "is truncated or corrupt");
        let compressed = gzip(&archive);
        assert_refused(dir.path(), "test", &compressed, "is truncated or corrupt");
    }

    #[test]
    fn a_tarball_truncated_inside_an_entry_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let archive = tarball(dir.path(), &[file("first"), file("second")]);
        cut(&archive, 1024 + 512 + 1);
        assert_refused(dir.path(), "test", &archive, "is truncated or corrupt");
        let whole = tarball(dir.path(), &[file("first"), file("second")]);
        let compressed = gzip(&whole);
        let len = fs::metadata(&compressed).unwrap().len();
        cut(&compressed, len / 2);
        assert_refused(dir.path(), "test", &compressed, "is truncated or corrupt");
    }

    #[test]
    fn a_zstd_tarball_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("test.tar");
        fs::write(&archive, b"\x28\xb5\x2f\xfd and more").unwrap();
        assert_refused(dir.path(), "test", &archive, "zstd -d");
    }

    #[test]
    fn leftovers_of_killed_runs_are_removed_by_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        tarball(dir.path(), &[file("a")]);
        // A dead pid and our own: holding the store lock, every staging
        // directory is a leftover, whoever's pid it carries.
        for leftover in [".test.extracting.999999999".to_string(), format!(".test.extracting.{}", std::process::id())] {
            fs::create_dir_all(dir.path().join(leftover).join("rootfs/bin")).unwrap();
        }
        fs::write(dir.path().join(".busybox.tar.building.999999999"), b"half").unwrap();
        let image = rootfs(dir.path(), "test").unwrap();
        assert!(image.join("a").is_file());
        assert_eq!(names(dir.path()), ["test", "test.tar"], "leftovers of killed runs are still there");
    }

    #[test]
    fn sweep_removes_unused_copies_and_keeps_held_ones() {
        if !crate::testing::require_root("sweep_removes_unused_copies_and_keeps_held_ones") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        tarball(dir.path(), &[file("a")]);
        let image = rootfs(dir.path(), "test").unwrap();
        let map = |outside| IdMap { inside: 0, outside, count: 65_536 };
        let held = mapped_copy(&image, &map(100_000), &map(100_000)).unwrap();
        let unused = mapped_copy(&image, &map(200_000), &map(200_000)).unwrap().path().to_path_buf();
        assert_eq!(fs::symlink_metadata(held.join("a")).unwrap().uid(), 100_000);
        let stale = dir.path().join("test/.rootfs.mapping.999999999");
        fs::create_dir_all(stale.join("bin")).unwrap();

        let removed = sweep(dir.path()).unwrap();
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(removed.iter().any(|line| line.contains("unused uid-shifted copy") && line.contains("200000")));
        assert!(!unused.exists() && !stale.exists(), "{removed:?}");
        assert!(held.join("a").is_file(), "sweep removed a copy in use");
        assert!(image.join("a").is_file(), "sweep removed the image");
        assert_eq!(sweep(dir.path()).unwrap(), Vec::<String>::new(), "a second sweep found more");

        drop(held);
        let removed = sweep(dir.path()).unwrap();
        assert_eq!(removed.len(), 1, "{removed:?}");
        assert!(sweep(&dir.path().join("missing")).unwrap().is_empty());
    }
}
