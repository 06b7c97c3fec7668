//! The image store. An image is a stack of layers and a config, as Docker
//! has them:
//!
//! - `<image-dir>/layers/sha256/<hex>/`: one layer, unpacked once in
//!   overlayfs's format (see [`crate::layer`]) and shared by every image that
//!   has it, keyed by the digest it was checked against: the sha256 of the
//!   blob as an OCI manifest lists it, of the layer tar for `docker save`
//!   (the config's diff_id), or of the file for a root filesystem tarball.
//! - `<image-dir>/<name>/image.json`: an image's format, its layers (bottom
//!   first) and its config (Env, Entrypoint, Cmd, WorkingDir, User);
//!   `source` records the file it came from. A one-layer image also has
//!   `rootfs`, a symlink to its layer, to look at.
//! - `<image-dir>/<name>.tar` (or `.tar.gz`, `.tgz`, `.tar.zst`): what
//!   `--image NAME` unpacks; `--image PATH` (a tarball, a `docker save`
//!   archive, an OCI layout or archive: see [`crate::archive`]) is recorded
//!   as `<image-dir>/@<hash of the path>/`.
//!
//! Every change to the store (unpacking, replacing an image whose source
//! changed, making uid-shifted copies, removing) happens under an exclusive
//! flock(2) on the image directory itself: of ten runs starting at once from
//! a new image, the first unpacks it, and the others wait and then find it
//! done. Before it lets go, a run takes a shared flock on each layer it will
//! use and keeps it, in the returned [`Image`], until it ends. That lock
//! means "in use": `rmi` and `cleanup` leave such a layer alone, and the
//! kernel drops the lock with the last descriptor of the process, so even a
//! run killed with SIGKILL never leaves a layer marked in use (`man 2
//! flock`).
//!
//! Layers and images are made in a temporary directory that is renamed into
//! place, so no run ever sees half of one; a layer is checked against its
//! digest before it is unpacked. When an image's source changes (size,
//! times, inode), it is read again; its layers that did not change are not
//! unpacked again, and the layers no image uses any more go as soon as no
//! run holds them.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::{self, IsTerminal, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, Flock, FlockArg, RenameFlags, renameat2};
use serde::{Deserialize, Serialize};
use tar::{EntryType, Header};

use crate::DEFAULT_IMAGE;
use crate::archive::{self, Digest, Parsed};
use crate::fsutil::remove_tree;
use crate::ids::{IdMap, UserSpec};
use crate::layer::Hashed;
use crate::trace;

/// The image's defaults for a run, as `docker run` uses them: the command
/// (`Entrypoint` then `Cmd`), the environment, the working directory and
/// the user. A root filesystem tarball has none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Config {
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: String,
    pub user: String,
}

impl Config {
    /// The command to run, as Docker builds it: the image's Entrypoint (or
    /// `--entrypoint`, "" for none), then the command line's arguments, or
    /// the image's Cmd when there are none. `--entrypoint` also drops the
    /// image's Cmd, as in Docker. An error when that leaves nothing to run.
    pub fn command(&self, entrypoint: Option<&str>, command: &[String]) -> Result<Vec<String>> {
        let (entrypoint, cmd) = match entrypoint {
            Some("") => (Vec::new(), Vec::new()),
            Some(given) => (vec![given.to_string()], Vec::new()),
            None => (self.entrypoint.clone(), self.cmd.clone()),
        };
        let args = if command.is_empty() { cmd } else { command.to_vec() };
        let argv = [entrypoint, args].concat();
        if argv.is_empty() {
            bail!(
                "no command to run: give a COMMAND after the options (run -- sh), or use an image whose config has a default command (Cmd or Entrypoint)"
            );
        }
        Ok(argv)
    }

    /// The image's Env, then the command line's `-e` values, which replace
    /// the image's for the same key (as in Docker). An image's entry with no
    /// `=` is dropped: `-e KEY` alone passes the host's KEY, and an image
    /// must not reach into the host's environment that way.
    pub fn env(&self, vars: &[String]) -> Vec<String> {
        let image = self.env.iter().filter(|var| var.contains('=')).cloned();
        image.chain(vars.iter().cloned()).collect()
    }

    /// The image's WorkingDir, or `/`.
    pub fn working_dir(&self) -> &str {
        if self.working_dir.is_empty() { "/" } else { &self.working_dir }
    }

    /// The user to run as: `--user` when given, else the image's User
    /// (`UID`, `NAME`, with `:GROUP`), as in Docker; a name is looked up in
    /// the image's /etc/passwd by [`UserSpec::resolve`](crate::ids::UserSpec::resolve).
    pub fn user(&self, given: Option<&UserSpec>) -> Result<Option<UserSpec>> {
        if given.is_some() || self.user.is_empty() {
            return Ok(given.cloned());
        }
        crate::ids::parse_user(&self.user)
            .map(Some)
            .map_err(|err| anyhow!("the image's User {:?} cannot be used: {err}", self.user))
    }
}

/// What `<name>/image.json` records.
#[derive(Serialize, Deserialize)]
struct Record {
    /// What `--image` was: a name, or the path as given.
    name: String,
    format: String,
    /// The file or directory it came from.
    source: PathBuf,
    /// Layer digests (hex), bottom first.
    layers: Vec<String>,
    config: Config,
}

/// An image's layers, bottom first, and its config, with every layer
/// marked in use until dropped: no other run removes them meanwhile.
pub struct Image {
    /// As `--image` named it.
    pub name: String,
    /// How it arrived: `rootfs-tar`, `docker-save`, `oci`.
    pub format: String,
    pub config: Config,
    layers: Vec<PathBuf>,
    store: PathBuf,
    /// A shared flock(2) on each layer's directory, kept for the whole run.
    /// The descriptors are close-on-exec (std opens every file so), so the
    /// container's command never inherits them.
    _in_use: Vec<Flock<fs::File>>,
}

impl Image {
    /// The layers' directories, bottom first: the order they were built
    /// in, and the reverse of overlayfs's `lowerdir=`.
    pub fn layers(&self) -> &[PathBuf] {
        &self.layers
    }

    /// Marks `layers` in use for this run. Called with the store locked,
    /// so it never waits: only a holder of the store lock takes LOCK_EX on a
    /// layer, and only for a moment.
    fn hold(name: &str, record: Record, layers: Vec<PathBuf>, store: &Path) -> Result<Image> {
        let mut in_use = Vec::new();
        for layer in &layers {
            let lock = Flock::lock(open_dir(layer)?, FlockArg::LockShared)
                .map_err(|(_, errno)| anyhow!(errno).context(format!("flock({layer:?}, LOCK_SH) failed")))?;
            in_use.push(lock);
        }
        Ok(Image {
            name: name.to_string(),
            format: record.format,
            config: record.config,
            layers,
            store: store.to_path_buf(),
            _in_use: in_use,
        })
    }
}

/// The layer directories alone, as a trace or an error shows an argument.
impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.layers).finish()
    }
}

/// `<image-dir>/layers/sha256`.
fn layer_dir(image_dir: &Path) -> PathBuf {
    image_dir.join("layers").join("sha256")
}

/// Whether `image` names a path rather than an image in the store: it has
/// a `/`, or it is no image's name and a file or directory has it. Names
/// work as they always did; `./alpine.tar` is always a path.
fn is_path(image_dir: &Path, image: &str) -> bool {
    image.contains('/')
        || (check_name(image).is_err() || !(image == DEFAULT_IMAGE || known(image_dir, image)))
            && Path::new(image).exists()
}

/// Whether the store has image `name`, or its tarball.
fn known(image_dir: &Path, name: &str) -> bool {
    find_tarball(image_dir, name).is_some() || image_dir.join(name).is_dir()
}

/// The directory of an image given by path: `@` and 16 hex digits of the
/// sha256 of its canonical path (no name has `@`).
fn path_key(path: &Path) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(path.as_os_str().as_encoded_bytes());
    format!("@{}", hash.iter().take(8).map(|byte| format!("{byte:02x}")).collect::<String>())
}

/// Image `image` (a name in the store, or a path), unpacked first when it
/// never was or when its source changed since, with its layers marked in
/// use until the returned [`Image`] is dropped. The default image is built
/// from the host's static busybox when missing. `image_dir` is resolved
/// here, once.
pub fn open(image_dir: &Path, image: &str) -> Result<Image> {
    let by_path = is_path(image_dir, image);
    if by_path {
        if let Err(err) = fs::metadata(image) {
            bail!(
                "image {image}: {err}: give a tarball, a docker save archive or an OCI layout, or a NAME in {}",
                image_dir.display()
            );
        }
    } else {
        check_name(image)?;
        // An image that does not exist at all, or a default image that
        // cannot be built: nothing to wait for, and nothing to create.
        if !known(image_dir, image) {
            if image != DEFAULT_IMAGE {
                return Err(not_found(image_dir, image));
            }
            find_static_busybox()?;
        }
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
    let store = lock_store(image_dir)?;
    for removed in remove_leftovers(image_dir)?.into_iter().chain(remove_leftovers(&layer_dir(image_dir))?) {
        trace::note(&format!("image: {removed}"));
    }
    let (key, source) = if by_path {
        let real = fs::canonicalize(image).with_context(|| format!("cannot resolve the image path {image}"))?;
        (path_key(&real), Some(real))
    } else {
        let source = match find_tarball(image_dir, image) {
            Some(tarball) => Some(tarball),
            // Unpacked once, and the tarball deleted since: the image
            // stays, as Docker keeps an image after its export file is gone.
            None if image_dir.join(image).is_dir() => None,
            None if image == DEFAULT_IMAGE => {
                let tarball = image_dir.join(format!("{image}.tar"));
                build_busybox_tar(&tarball)?;
                Some(tarball)
            }
            None => return Err(not_found(image_dir, image)),
        };
        (image.to_string(), source)
    };
    let unpacked = image_dir.join(&key);
    if let Some(source) = source {
        let recorded = fs::read_to_string(unpacked.join("source")).unwrap_or_default();
        if !unpacked.join(RECORD).is_file() || recorded != identity(&source)? {
            import(&source, image_dir, &key, image)?;
        }
    }
    let (record, layers) = read_image(image_dir, &key)?;
    let held = Image::hold(image, record, layers, image_dir)?;
    drop(store);
    Ok(held)
}

/// The record of an image, and its layers' directories (bottom first).
/// A directory with a `rootfs` and no record (made by hand, or by an older
/// version of this store) is a one-layer image.
fn read_image(image_dir: &Path, key: &str) -> Result<(Record, Vec<PathBuf>)> {
    let dir = image_dir.join(key);
    match fs::read(dir.join(RECORD)) {
        Ok(bytes) => {
            let record: Record = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is damaged: remove the image (`rmi`) and run again", dir.display()))?;
            let layers = record.layers.iter().map(|hex| layer_dir(image_dir).join(hex)).collect();
            Ok((record, layers))
        }
        Err(_) if dir.join("rootfs").is_dir() => {
            let record = Record {
                name: key.to_string(),
                format: "rootfs-dir".to_string(),
                source: dir.join("rootfs"),
                layers: Vec::new(),
                config: Config::default(),
            };
            Ok((record, vec![dir.join("rootfs")]))
        }
        Err(_) => Err(not_found(image_dir, key)),
    }
}

/// An image's record file.
const RECORD: &str = "image.json";

/// Copies of an image's layers with every owner shifted through the given
/// maps (ids the maps do not cover become 65534, "nobody"), kept next to
/// each layer and reused: `<layer>-<uidmap>-<gidmap>`. Each is built in a
/// temporary directory and renamed into place, like a layer, and marked in
/// use until the returned [`Image`] is dropped; [`sweep`] removes the copies
/// no run uses. Whiteouts and opaque directories are copied as they are.
pub fn mapped_copy(image: &Image, uid_map: &IdMap, gid_map: &IdMap) -> Result<Image> {
    let name = |map: &IdMap| format!("{}:{}:{}", map.inside, map.outside, map.count);
    let store = lock_store(&image.store)?;
    let mut copies = Vec::new();
    for layer in &image.layers {
        let (Some(parent), Some(file_name)) = (layer.parent(), layer.file_name()) else {
            bail!("{} is not a layer of the image store", layer.display());
        };
        let file_name = file_name.to_string_lossy();
        let copy = parent.join(format!("{file_name}-{}-{}", name(uid_map), name(gid_map)));
        if !copy.is_dir() {
            for removed in remove_leftovers(parent)? {
                trace::note(&format!("image: {removed}"));
            }
            let staging = temporary(parent, &file_name, "mapping");
            let owner = |uid, gid| (uid_map.to_host(uid).unwrap_or(65_534), gid_map.to_host(gid).unwrap_or(65_534));
            let made = crate::fsutil::copy_tree_owned(layer, &staging, &owner).and_then(|()| {
                fs::rename(&staging, &copy).with_context(|| format!("rename({staging:?}, {copy:?}) failed"))
            });
            if let Err(err) = made {
                remove_tree(&staging)?;
                return Err(err.context(format!("cannot make the uid-shifted copy {}", copy.display())));
            }
        }
        copies.push(copy);
    }
    let record = Record {
        name: image.name.clone(),
        format: image.format.clone(),
        source: PathBuf::new(),
        layers: Vec::new(),
        config: image.config.clone(),
    };
    let held = Image::hold(&image.name, record, copies, &image.store)?;
    drop(store);
    Ok(held)
}

/// Removes what no live run needs from the store: interrupted unpackings,
/// builds and copies, layers that no image has any more, and uid-shifted
/// copies, each only when no run holds it. Returns one line per thing
/// removed. Safe to run at any time, and any number of times.
pub fn sweep(image_dir: &Path) -> Result<Vec<String>> {
    match fs::metadata(image_dir) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).with_context(|| format!("cannot stat {}", image_dir.display())),
        Ok(_) => {}
    }
    let _store = lock_store(image_dir)?;
    let mut removed = remove_leftovers(image_dir)?;
    if layer_dir(image_dir).is_dir() {
        removed.extend(remove_leftovers(&layer_dir(image_dir))?);
    }
    for key in image_keys(image_dir)? {
        let dir = image_dir.join(&key);
        removed.extend(remove_leftovers(&dir)?);
        for copy in copies(&dir, "rootfs-") {
            if remove_if_unused(&copy)? {
                removed.push(format!("removed unused uid-shifted copy {}", copy.display()));
            }
        }
    }
    removed.extend(unused_layers(image_dir)?.removed);
    Ok(removed)
}

/// The directories of the store that are images (`<name>/`, `@<hash>/`).
fn image_keys(image_dir: &Path) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    for entry in fs::read_dir(image_dir).with_context(|| format!("cannot list {}", image_dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "layers" || !entry.file_type()?.is_dir() {
            continue;
        }
        keys.push(name);
    }
    keys.sort();
    Ok(keys)
}

/// What [`unused_layers`] did.
struct Collected {
    removed: Vec<String>,
    /// Layers no image has, kept because a running container holds them.
    kept: Vec<String>,
}

/// Removes the layers (and their uid-shifted copies) that no image in the
/// store has, unless a run holds them. Called with the store locked.
fn unused_layers(image_dir: &Path) -> Result<Collected> {
    let mut collected = Collected { removed: Vec::new(), kept: Vec::new() };
    let layers = layer_dir(image_dir);
    let Ok(entries) = fs::read_dir(&layers) else { return Ok(collected) };
    let mut used = BTreeSet::new();
    for key in image_keys(image_dir)? {
        if let Ok((record, _)) = read_image(image_dir, &key) {
            used.extend(record.layers);
        }
    }
    let mut names: Vec<String> =
        entries.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    for name in names.into_iter().filter(|name| !name.starts_with('.')) {
        let path = layers.join(&name);
        if let Some((hex, _maps)) = name.split_once('-') {
            // A uid-shifted copy: kept while a run holds it.
            if remove_if_unused(&path)? {
                collected.removed.push(format!("removed unused uid-shifted copy of layer sha256:{}", short(hex)));
            }
        } else if !used.contains(&name) {
            let size = disk_usage(&path);
            if remove_if_unused(&path)? {
                collected.removed.push(format!("removed layer sha256:{} ({})", short(&name), human(size)));
            } else {
                collected.kept.push(name);
            }
        }
    }
    Ok(collected)
}

/// The first 12 hex digits of a digest, as Docker shows ids.
pub fn short(hex: &str) -> &str {
    &hex[..hex.len().min(12)]
}

fn not_found(image_dir: &Path, name: &str) -> anyhow::Error {
    anyhow!(
        "image {name:?} not found: put {name}.tar or {name}.tar.gz (a `docker export`, `docker save` or OCI archive) in {}, give a path (./{name}.tar), or use --image {DEFAULT_IMAGE}",
        image_dir.display()
    )
}

fn check_name(name: &str) -> Result<()> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !valid {
        bail!(
            "invalid image name {name:?}: use letters, digits, '_', '.' and '-' (like busybox or alpine-3.19), or a path with a '/' (./alpine.tar)"
        );
    }
    if name == "layers" {
        bail!("invalid image name \"layers\": the store keeps its layers under that name; rename the image");
    }
    Ok(())
}

fn find_tarball(image_dir: &Path, name: &str) -> Option<PathBuf> {
    ["tar", "tar.gz", "tgz", "tar.zst"]
        .iter()
        .map(|ext| image_dir.join(format!("{name}.{ext}")))
        .find(|path| path.is_file())
}

/// What `<name>/source` records about the file an image came from (for an
/// image layout directory, about each of its files: index.json,
/// manifest.json, every blob). A new file, a rewrite or a `touch` all change
/// it; so does a chmod, which costs one needless read and nothing else.
fn identity(source: &Path) -> Result<String> {
    let mut files = vec![source.to_path_buf()];
    if source.is_dir() {
        files = ["index.json", "manifest.json", "oci-layout"].iter().map(|name| source.join(name)).collect();
        if let Ok(blobs) = fs::read_dir(source.join("blobs/sha256")) {
            let mut blobs: Vec<PathBuf> = blobs.filter_map(Result::ok).map(|entry| entry.path()).collect();
            blobs.sort();
            files.extend(blobs);
        }
    }
    let mut text = format!("source {}\n", source.display());
    for file in files {
        let Ok(meta) = fs::metadata(&file) else { continue };
        text += &format!(
            "{} size {} mtime {}.{:09} ctime {}.{:09} inode {}:{}\n",
            file.strip_prefix(source).unwrap_or(&file).display(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec(),
            meta.dev(),
            meta.ino()
        );
    }
    Ok(text)
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

/// Removes the leftovers in `dir` (the store, its layers, or one image's
/// directory): interrupted unpackings, builds and copies, and replaced
/// images. Called with the store locked, so nobody is unpacking, building
/// or copying. Returns one line per thing removed.
fn remove_leftovers(dir: &Path) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else { return Ok(removed) };
    for entry in entries {
        let path = entry?.path();
        let file_name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let what = match temporary_kind(&file_name) {
            Some("extracting") => "interrupted extraction",
            Some("building") => "interrupted image build",
            Some("mapping") => "interrupted uid-shifted copy",
            Some("replaced") => "unused replaced image",
            _ => continue,
        };
        // Only a replaced image of an older store can be in use; asking
        // costs little, and is safe whatever went wrong while a name was
        // being changed.
        if remove_if_unused(&path)? {
            removed.push(format!("removed {what} {}", path.display()));
        }
    }
    Ok(removed)
}

/// The uid-shifted copies (`rootfs-<uidmap>-<gidmap>`) that an older store
/// kept in an image's directory.
fn copies(unpacked: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(unpacked) else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(prefix))
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .map(|entry| entry.path())
        .collect()
}

/// Removes a layer's (or a copy's, or an image's) directory when no run
/// holds it: LOCK_EX without waiting succeeds only when no run has a shared
/// lock on it, nor on the `rootfs` or a uid-shifted copy inside it (the
/// layout of an older store). Called with the store locked.
fn remove_if_unused(dir: &Path) -> Result<bool> {
    if !fs::symlink_metadata(dir).is_ok_and(|meta| meta.is_dir()) {
        fs::remove_file(dir).ok();
        return Ok(true);
    }
    let mut held = Vec::new();
    let legacy = Some(dir.join("rootfs")).filter(|rootfs| fs::symlink_metadata(rootfs).is_ok_and(|meta| meta.is_dir()));
    for path in std::iter::once(dir.to_path_buf()).chain(legacy).chain(copies(dir, "rootfs-")) {
        match Flock::lock(open_dir(&path)?, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => held.push(lock),
            Err((_, Errno::EAGAIN)) => return Ok(false),
            Err((_, errno)) => return Err(anyhow!(errno).context(format!("flock({path:?}, LOCK_EX|LOCK_NB) failed"))),
        }
    }
    remove_tree(dir)?;
    Ok(true)
}

/// Every layer unpacked since the tests started, by image directory: the
/// proof that ten runs at once unpack once, and that a shared layer is
/// unpacked once.
#[cfg(test)]
static EXTRACTIONS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Reads the image at `source`, unpacks the layers the store does not have
/// yet, and puts its record in place as `<image-dir>/<key>`. Nothing is left
/// when it fails or is interrupted: no record, and none of the layers it
/// unpacked.
fn import(source: &Path, image_dir: &Path, key: &str, name: &str) -> Result<()> {
    let unpacked = image_dir.join(key);
    trace::note(&format!("image: reading {} into {}", source.display(), unpacked.display()));
    let staging = temporary(image_dir, key, "extracting");
    let mut created = Vec::new();
    let made = fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .with_context(|| format!("mkdir({staging:?}, 0700) failed"))
        .and_then(|()| {
            // Private to root, whatever the umask: no other host user may
            // read the image or run its (setuid) programs. Containers never
            // reach it by path: the runtime mounts it for them.
            fs::set_permissions(&staging, fs::Permissions::from_mode(0o700))?;
            let identity = identity(source)?;
            let parsed = archive::parse(source, &staging)?;
            let layers = layer_dir(image_dir);
            fs::DirBuilder::new().recursive(true).mode(0o700).create(&layers)?;
            let progress = Progress::new(&parsed);
            let mut hexes = Vec::new();
            for index in 0..parsed.layers.len() {
                hexes.push(ensure_layer(&parsed, index, &layers, source, &progress, &mut created)?);
            }
            progress.finish();
            let _ = fs::remove_file(staging.join("archive.tar"));
            if let [one] = &hexes[..] {
                std::os::unix::fs::symlink(Path::new("../layers/sha256").join(one), staging.join("rootfs"))?;
            }
            let record = Record {
                name: name.to_string(),
                format: parsed.format.name().to_string(),
                source: source.to_path_buf(),
                layers: hexes,
                config: parsed.config,
            };
            fs::write(staging.join(RECORD), serde_json::to_vec_pretty(&record)?)?;
            fs::write(staging.join("source"), identity)
                .with_context(|| format!("cannot write {}", staging.join("source").display()))
        })
        .and_then(|()| replace(&staging, &unpacked));
    match made {
        Ok(old) => {
            // The old record goes now, unless a run of an older store holds
            // it (its rootfs inside): then `cleanup` or the next run does.
            if let Some(old) = old {
                remove_if_unused(&old)?;
            }
            // The replaced image's layers that no image has now.
            for removed in unused_layers(image_dir)?.removed {
                trace::note(&format!("image: {removed}"));
            }
            Ok(())
        }
        Err(err) => {
            remove_tree(&staging)?;
            for layer in created {
                remove_tree(&layer)?;
            }
            // The layer store itself, when this was its first image.
            let layers = layer_dir(image_dir);
            if fs::remove_dir(&layers).is_ok() {
                let _ = fs::remove_dir(layers.parent().unwrap_or(&layers));
            }
            Err(err)
        }
    }
}

/// Layer `index` of `parsed` in the store, checked against its digest and
/// unpacked unless the store already has it; returns its digest (hex). A
/// layer it unpacked is added to `created`.
fn ensure_layer(
    parsed: &Parsed,
    index: usize,
    layers: &Path,
    source: &Path,
    progress: &Progress,
    created: &mut Vec<PathBuf>,
) -> Result<String> {
    let layer = &parsed.layers[index];
    let expected = match &layer.digest {
        Digest::Blob(hex) | Digest::DiffId(hex) => Some(hex.clone()),
        Digest::None => None,
    };
    let what = match &expected {
        Some(hex) => format!("image {}, layer sha256:{}", source.display(), short(hex)),
        None => format!("image tarball {}", source.display()),
    };
    if let Some(hex) = expected.as_ref().filter(|hex| layers.join(hex).is_dir()) {
        // Shared with an image the store has already: not unpacked again.
        trace::note(&format!("image: layer sha256:{} is in the store already", short(hex)));
        progress.skip(layer.size);
        return Ok(hex.clone());
    }
    // Checked while it is unpacked, into a staging directory that only a
    // match puts in place (containerd checks a diff_id while it applies a
    // layer too): a layer that does not match its digest is removed before
    // anything uses it, and the layer is read once, not once to check it
    // and again to unpack it. The unpacking refuses a hostile tar whatever
    // its digest says.
    let name = expected.as_deref().unwrap_or("rootfs");
    let staging = temporary(layers, name, "extracting");
    trace::note(&format!("image: unpacking {what} into {}, hashing it as it is read", staging.display()));
    #[cfg(test)]
    EXTRACTIONS.lock().unwrap().push(layers.parent().and_then(Path::parent).unwrap_or(layers).to_path_buf());
    let checked = unpack_checked(parsed, layer, source, progress, &staging, &what, expected.as_deref());
    let hex = match checked {
        Ok(hex) if layers.join(&hex).is_dir() => {
            // A rootfs tarball whose content the store has already, under
            // another name or path.
            remove_tree(&staging)?;
            return Ok(hex);
        }
        Ok(hex) => hex,
        Err(err) => {
            remove_tree(&staging)?;
            return Err(err);
        }
    };
    fs::rename(&staging, layers.join(&hex)).with_context(|| format!("rename({staging:?}, {hex}) failed"))?;
    created.push(layers.join(&hex));
    Ok(hex)
}

/// Unpacks `layer` into `staging` while its bytes are hashed: those of the
/// blob as stored (an OCI layer, a rootfs tarball) or of the decompressed
/// tar (a diff_id). Returns the digest, which matches `expected` if given.
/// A mismatch is the error whatever the unpacking said: a corrupt blob can
/// look like a broken tar as well.
fn unpack_checked(
    parsed: &Parsed,
    layer: &archive::Layer,
    source: &Path,
    progress: &Progress,
    staging: &Path,
    what: &str,
    expected: Option<&str>,
) -> Result<String> {
    fs::create_dir(staging).with_context(|| format!("mkdir({staging:?}) failed"))?;
    fs::set_permissions(staging, fs::Permissions::from_mode(0o755))?;
    let raw = progress.wrap(parsed.open(layer)?);
    let unpack = |reader| crate::layer::unpack(reader, staging, what, expected.is_some());
    let (unpacked, hashed) = match layer.digest {
        Digest::DiffId(_) => {
            let decompressed: Box<dyn Read> = archive::decompressed(archive::buffered(raw), source)?;
            let mut hashed = Hashed::new(decompressed);
            let unpacked = unpack(Box::new(&mut hashed));
            (unpacked, hashed)
        }
        _ => {
            let mut hashed = Hashed::new(raw);
            let unpacked = archive::decompressed(Box::new(&mut hashed), source).and_then(unpack);
            (unpacked, hashed)
        }
    };
    let Some(hex) = expected else {
        // A rootfs tarball: nothing to compare; its digest names the layer.
        unpacked?;
        return hashed.finish();
    };
    if let Err(err) = &unpacked
        && crate::signals::exit_code(err).is_some()
    {
        return unpacked.map(|()| String::new());
    }
    let got = hashed.finish().map_err(|err| {
        if crate::signals::exit_code(&err).is_some() {
            return err;
        }
        anyhow!("{what} cannot be read ({err:#}): copy or save the image again")
    })?;
    if got != hex {
        bail!(
            "{what} does not match its digest (its content hashes to sha256:{}): the image is corrupt or was changed; copy or save it again",
            short(&got)
        );
    }
    unpacked.map(|()| got)
}

/// A progress bar on stderr while a large image is read and unpacked, when
/// stderr is a terminal; nothing at all otherwise (a log, a test, a pipe).
struct Progress(indicatif::ProgressBar);

/// Below this, an image unpacks too fast for a bar to say anything.
const PROGRESS_FROM: u64 = 32 << 20;

impl Progress {
    fn new(parsed: &Parsed) -> Progress {
        let total: u64 = parsed.layers.iter().map(|layer| layer.size).sum();
        if total < PROGRESS_FROM || !io::stderr().is_terminal() || trace::enabled() {
            return Progress(indicatif::ProgressBar::hidden());
        }
        let bar = indicatif::ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "checking and unpacking the image {wide_bar} {decimal_bytes}/{decimal_total_bytes} {eta}",
        ) {
            bar.set_style(style);
        }
        Progress(bar)
    }

    fn wrap<'a>(&self, reader: Box<dyn Read + 'a>) -> Box<dyn Read + 'a> {
        if self.0.is_hidden() { reader } else { Box::new(self.0.wrap_read(reader)) }
    }

    fn skip(&self, size: u64) {
        self.0.inc(size);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// Puts `staging` in place as `unpacked`. An image that was there is
/// renamed to `.<name>.replaced.<pid>` and returned, for the caller to
/// remove: running containers hold their layers, not the record.
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

/// One line of `images`.
pub struct Listed {
    /// What to pass to `--image` (and `rmi`): the name, or the path.
    pub name: String,
    pub format: String,
    pub layers: usize,
    /// Bytes of the layers' files (hard links counted once per layer);
    /// layers shared with other images are counted in each, as Docker does.
    pub size: u64,
}

/// The images in the store, by name.
pub fn list(image_dir: &Path) -> Result<Vec<Listed>> {
    if !image_dir.is_dir() {
        return Ok(Vec::new());
    }
    let _store = lock_store(image_dir)?;
    let mut listed = Vec::new();
    for key in image_keys(image_dir)? {
        let Ok((record, layers)) = read_image(image_dir, &key) else { continue };
        let name = if key.starts_with('@') { record.source.display().to_string() } else { key };
        let size = layers.iter().map(|layer| disk_usage(layer)).sum();
        listed.push(Listed { name, format: record.format, layers: layers.len(), size });
    }
    Ok(listed)
}

/// Removes image `image` (a name, or the path it was run from) and every
/// layer of it that no other image has and no running container holds;
/// the tarball of a named image goes too, as it is the image in this store.
/// Returns one line per thing removed or kept.
pub fn remove(image_dir: &Path, image: &str) -> Result<Vec<String>> {
    let key = if image.contains('/') || (!known(image_dir, image) && Path::new(image).exists()) {
        // The file may be gone: its directory is still there to resolve.
        let path = Path::new(image);
        let real = fs::canonicalize(path).or_else(|_| {
            let parent = path.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
            fs::canonicalize(parent).map(|parent| parent.join(path.file_name().unwrap_or_default()))
        });
        real.map(|real| path_key(&real)).unwrap_or_default()
    } else {
        check_name(image)?;
        image.to_string()
    };
    let missing = || anyhow!("no image {image} in {}: `images` lists them", image_dir.display());
    if key.is_empty() || !image_dir.is_dir() {
        return Err(missing());
    }
    let _store = lock_store(image_dir)?;
    let dir = image_dir.join(&key);
    let tarball = if key.starts_with('@') { None } else { find_tarball(image_dir, &key) };
    if !dir.is_dir() && tarball.is_none() {
        return Err(missing());
    }
    let mine: Vec<String> = read_image(image_dir, &key).map(|(record, _)| record.layers).unwrap_or_default();
    let mut lines = Vec::new();
    // Only an image of an older store (a `rootfs` directory) can be held.
    if dir.is_dir() && !remove_if_unused(&dir)? {
        bail!("image {image} is in use by a running container: stop it, then run rmi again");
    }
    if let Some(tarball) = tarball {
        fs::remove_file(&tarball).with_context(|| format!("cannot remove {}", tarball.display()))?;
        lines.push(format!("removed {}", tarball.display()));
    }
    lines.push(format!("removed image {image}"));
    let collected = unused_layers(image_dir)?;
    lines.extend(collected.removed);
    for hex in collected.kept.iter().filter(|hex| mine.contains(hex)) {
        lines.push(format!(
            "kept layer sha256:{}: a running container uses it (`cleanup` removes it once none does)",
            short(hex)
        ));
    }
    Ok(lines)
}

/// The bytes of the files under `dir` (hard links counted once), as
/// Docker's SIZE counts them.
fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    let mut seen = HashMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.filter_map(Result::ok) {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.nlink() == 1 || seen.insert((meta.dev(), meta.ino()), ()).is_none() {
                total += meta.len();
            }
        }
    }
    total
}

/// A size as Docker prints one: `4.2MB` (powers of 1000).
pub fn human(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < units.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.3}").chars().take(4).collect::<String>().trim_end_matches('.').to_string() + units[unit]
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
    use crate::testing::{Entry, TestImage, layer_tar};
    use std::os::unix::fs::FileTypeExt;
    use std::os::unix::fs::MetadataExt;

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
        fs::write(&out, crate::testing::gzip(&fs::read(path).unwrap())).unwrap();
        fs::remove_file(path).unwrap();
        out
    }

    /// Cuts a file to its first `len` bytes.
    fn cut(path: &Path, len: u64) {
        fs::OpenOptions::new().write(true).open(path).unwrap().set_len(len).unwrap();
    }

    /// The one layer of a one-layer image.
    fn only_layer(image: &Image) -> &Path {
        assert_eq!(image.layers().len(), 1, "{image:?}");
        &image.layers()[0]
    }

    #[test]
    fn nothing_is_written_outside_the_target() {
        for entries in [
            vec![("../outside/dotdot", EntryType::Regular, None), file("fine")],
            vec![("escape", EntryType::Symlink, Some("../outside")), ("escape/through-link", EntryType::Regular, None)],
            vec![("/abs", EntryType::Regular, None)],
            vec![("link", EntryType::Link, Some("../outside/x"))],
        ] {
            let dir = tempfile::tempdir().unwrap();
            let outside = dir.path().join("outside");
            fs::create_dir(&outside).unwrap();
            let archive = tarball(dir.path(), &entries);
            let err = format!("{:#}", open(dir.path(), "test").unwrap_err());
            assert!(err.contains("leads outside the layer") && err.contains(&archive.display().to_string()), "{err}");
            assert_eq!(err.lines().count(), 1, "{err}");
            assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "an entry escaped the layer");
            assert_eq!(names(dir.path()), ["outside", "test.tar"], "a refused image left files");
        }
    }

    /// The unpacking remembers the directories it made or checked, and
    /// checks no entry inside one again: an entry that turns one of them
    /// into something else (a whiteout removes it, a symlink takes its
    /// place) must make it unknown, or a later entry is written through
    /// the symlink.
    #[test]
    fn a_symlink_in_place_of_a_checked_directory_is_not_written_through() {
        for whiteout_first in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let outside = dir.path().join("outside");
            fs::create_dir(&outside).unwrap();
            // An absolute target, so that a write through it would land in
            // `outside` for sure.
            let target = outside.to_str().unwrap();
            let mut entries = vec![("d", EntryType::Directory, None), ("d/x", EntryType::Regular, None)];
            if whiteout_first {
                entries.push((".wh.d", EntryType::Regular, None));
            }
            entries.push(("d", EntryType::Symlink, Some(target)));
            entries.push(("d/through-link", EntryType::Regular, None));
            tarball(dir.path(), &entries);
            let err = format!("{:#}", open(dir.path(), "test").unwrap_err());
            assert!(err.contains("leads outside the layer") || err.contains("cannot extract d "), "{err}");
            assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "an entry escaped the layer: {err}");
            assert_eq!(names(dir.path()), ["outside", "test.tar"], "a refused image left files");
        }
    }

    /// A hard link's target is reached through directories only: linking
    /// `l/secret` where `l` is a symlink to the host would give the layer
    /// (and the chown and chmod of later entries) a host file.
    #[test]
    fn a_hard_link_through_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), "host\n").unwrap();
        let target = outside.to_str().unwrap();
        let archive =
            tarball(dir.path(), &[("l", EntryType::Symlink, Some(target)), ("x", EntryType::Link, Some("l/secret"))]);
        let err = format!("{:#}", open(dir.path(), "test").unwrap_err());
        assert!(
            err.contains("leads outside the layer through a symlink") && err.contains(&archive.display().to_string()),
            "{err}"
        );
        assert_eq!(fs::metadata(outside.join("secret")).unwrap().nlink(), 1, "the host file was linked into the layer");
        assert_eq!(names(dir.path()), ["outside", "test.tar"], "a refused image left files");
    }

    #[test]
    fn device_nodes_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        tarball(dir.path(), &[("dev/sda", EntryType::Block, None), ("dev/null", EntryType::Char, None), file("ok")]);
        let image = open(dir.path(), "test").unwrap();
        let layer = only_layer(&image);
        assert!(layer.join("ok").is_file());
        assert!(!layer.join("dev/sda").exists());
        assert!(!layer.join("dev/null").exists());
    }

    /// The layer's regular files are written by `layer::write_file`, not
    /// by the tar crate: what it makes must be what the tar crate makes
    /// (owner, mode with its set-uid and set-gid bits, mtime with 0 made
    /// 1, content across the write buffer's and the hashing chunk's
    /// boundaries, a name given twice).
    #[test]
    fn regular_files_are_written_as_the_tar_crate_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("files.tar");
        let mut builder = tar::Builder::new(fs::File::create(&path).unwrap());
        let big: Vec<u8> = (0..700_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        // Name, mode, uid, gid, mtime, data.
        let files = [
            ("big", 0o4755, 1000, 42, 1_234_567_890, big.as_slice()),
            ("zero-mtime", 0o640, 0, 0, 0, &b"zero\n"[..]),
            ("empty", 0o600, 7, 7, 5, &b""[..]),
            ("d/group", 0o2750, 0, 42, 99, &b"g\n"[..]),
            ("twice", 0o644, 0, 0, 10, &b"first\n"[..]),
            ("twice", 0o755, 1, 1, 20, &b"second\n"[..]),
        ];
        for (name, mode, uid, gid, mtime, data) in files {
            let mut header = Header::new_ustar();
            header.set_entry_type(EntryType::Regular);
            header.set_mode(mode);
            header.set_uid(uid);
            header.set_gid(gid);
            header.set_mtime(mtime);
            header.set_size(data.len() as u64);
            builder.append_data(&mut header, name, data).unwrap();
        }
        builder.finish().unwrap();
        let ours = dir.path().join("ours");
        let mut hashed = Hashed::new(fs::File::open(&path).unwrap());
        crate::layer::unpack(Box::new(&mut hashed), &ours, "test", false).unwrap();
        let digest = format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(fs::read(&path).unwrap()));
        assert_eq!(hashed.finish().unwrap(), digest, "the digest of what was unpacked");
        let theirs = dir.path().join("theirs");
        let mut archive = tar::Archive::new(fs::File::open(&path).unwrap());
        archive.set_preserve_permissions(true);
        archive.set_preserve_ownerships(true);
        archive.unpack(&theirs).unwrap();
        for name in ["big", "zero-mtime", "empty", "d/group", "twice"] {
            let (a, b) =
                (fs::symlink_metadata(ours.join(name)).unwrap(), fs::symlink_metadata(theirs.join(name)).unwrap());
            let show = |m: &fs::Metadata| (m.mode(), m.uid(), m.gid(), m.mtime(), m.mtime_nsec(), m.size(), m.nlink());
            assert_eq!(
                show(&a),
                show(&b),
                "{name}: ours (mode, uid, gid, mtime, ns, size, links) against the tar crate's"
            );
            assert_eq!(fs::read(ours.join(name)).unwrap(), fs::read(theirs.join(name)).unwrap(), "{name}: content");
        }
        let big_meta = fs::metadata(ours.join("big")).unwrap();
        assert_eq!((big_meta.mode() & 0o7777, big_meta.uid()), (0o4755, 1000), "the set-uid bit outlived the chown");
        assert_eq!(fs::metadata(ours.join("zero-mtime")).unwrap().mtime(), 1);
        assert_eq!(fs::read(ours.join("twice")).unwrap(), b"second\n");
    }

    #[test]
    fn image_names_cannot_be_paths() {
        assert!(check_name("../etc").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name(".hidden").is_err());
        assert!(check_name("layers").is_err());
        assert!(check_name("alpine-3.19").is_ok());
    }

    #[test]
    fn a_missing_image_names_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let err = open(dir.path(), "nosuch").unwrap_err().to_string();
        assert!(err.contains("nosuch.tar"), "{err}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "a failed lookup left files behind");
        let err = open(dir.path(), "./nosuch.tar").unwrap_err().to_string();
        assert!(err.contains("./nosuch.tar") && err.contains("No such file"), "{err}");
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
                        open(dir.path(), "test").unwrap()
                    })
                })
                .collect();
            runs.into_iter().map(|run| run.join().unwrap()).collect()
        });
        assert_eq!(extractions(dir.path()), 1, "ten runs at once extracted the image more than once");
        for image in &images {
            let layer = only_layer(image);
            assert!(layer.starts_with(dir.path().join("layers/sha256")), "{layer:?}");
            assert!(layer.join("file-0").is_file() && layer.join("file-499").is_file());
        }
        assert_eq!(names(dir.path()), ["layers", "test", "test.tar"], "temporary files are left");
        assert!(dir.path().join("test/rootfs/file-0").is_file(), "a one-layer image has no rootfs link");
    }

    #[test]
    fn a_changed_tarball_is_extracted_again_and_the_old_layer_lives_while_held() {
        let dir = tempfile::tempdir().unwrap();
        tarball(dir.path(), &[file("old")]);
        let before = open(dir.path(), "test").unwrap();
        let again = open(dir.path(), "test").unwrap();
        assert_eq!(extractions(dir.path()), 1, "an unchanged tarball was extracted again");
        drop(again);

        tarball(dir.path(), &[file("new"), file("new-too")]);
        let after = open(dir.path(), "test").unwrap();
        assert_eq!(extractions(dir.path()), 2, "a changed tarball was not extracted again");
        assert!(only_layer(&after).join("new").is_file(), "the new tarball's file is missing");
        assert!(!only_layer(&after).join("old").exists(), "the old tarball's file is still there");
        assert!(only_layer(&before).join("old").is_file(), "a layer in use was removed");
        assert_eq!(names(&dir.path().join("layers/sha256")).len(), 2);

        drop(before);
        drop(after);
        assert_eq!(sweep(dir.path()).unwrap().len(), 1, "the replaced layer outlived its last run");
        assert_eq!(names(&dir.path().join("layers/sha256")).len(), 1);
        let _next = open(dir.path(), "test").unwrap();
        assert_eq!(names(dir.path()), ["layers", "test", "test.tar"]);
        assert_eq!(extractions(dir.path()), 2);
    }

    /// Refused with one line naming the input and `what`, and nothing
    /// left in the image directory but the input (and an empty layer store).
    fn assert_refused(dir: &Path, image: &str, input: &Path, what: &str) {
        let err = format!("{:#}", open(dir, image).unwrap_err());
        assert!(err.contains(&input.display().to_string()) && err.contains(what), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        let left: Vec<String> = names(dir).into_iter().filter(|name| name != "layers").collect();
        let expected: Vec<String> = if input.parent() == Some(dir) {
            vec![input.file_name().unwrap().to_string_lossy().into()]
        } else {
            vec![]
        };
        assert_eq!(left, expected, "a refused image left files");
        if dir.join("layers/sha256").is_dir() {
            assert_eq!(names(&dir.join("layers/sha256")), Vec::<String>::new(), "a refused image left layers");
        }
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
    fn a_zstd_tarball_is_read_and_xz_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let plain = tarball(dir.path(), &[file("zstd-file")]);
        let bytes = fs::read(&plain).unwrap();
        fs::remove_file(&plain).unwrap();
        let compressed = ruzstd::encoding::compress_to_vec(&bytes[..], ruzstd::encoding::CompressionLevel::Fastest);
        fs::write(dir.path().join("test.tar.zst"), compressed).unwrap();
        let image = open(dir.path(), "test").unwrap();
        assert!(only_layer(&image).join("zstd-file").is_file());
        drop(image);
        let archive = dir.path().join("xz.tar");
        fs::write(&archive, b"\xfd7zXZ\x00 and more").unwrap();
        let err = format!("{:#}", open(dir.path(), "xz").unwrap_err());
        assert!(err.contains("xz -d"), "{err}");
    }

    #[test]
    fn leftovers_of_killed_runs_are_removed_by_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        tarball(dir.path(), &[file("a")]);
        // A dead pid and our own: holding the store lock, every staging
        // directory is a leftover, whoever's pid it carries.
        for leftover in [".test.extracting.999999999".to_string(), format!(".test.extracting.{}", std::process::id())] {
            fs::create_dir_all(dir.path().join(leftover).join("bin")).unwrap();
        }
        fs::create_dir_all(dir.path().join("layers/sha256/.abc.extracting.999999999/bin")).unwrap();
        fs::write(dir.path().join(".busybox.tar.building.999999999"), b"half").unwrap();
        let image = open(dir.path(), "test").unwrap();
        assert!(only_layer(&image).join("a").is_file());
        assert_eq!(names(dir.path()), ["layers", "test", "test.tar"], "leftovers of killed runs are still there");
        assert_eq!(names(&dir.path().join("layers/sha256")).len(), 1, "a layer's leftover is still there");
    }

    #[test]
    fn sweep_removes_unused_copies_and_keeps_held_ones() {
        if !crate::testing::require_root("sweep_removes_unused_copies_and_keeps_held_ones") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        tarball(dir.path(), &[file("a")]);
        let image = open(dir.path(), "test").unwrap();
        let map = |outside| IdMap { inside: 0, outside, count: 65_536 };
        let held = mapped_copy(&image, &map(100_000), &map(100_000)).unwrap();
        let unused = mapped_copy(&image, &map(200_000), &map(200_000)).unwrap().layers()[0].clone();
        assert_eq!(fs::symlink_metadata(held.layers()[0].join("a")).unwrap().uid(), 100_000);
        let stale = dir.path().join("layers/sha256/.abc.mapping.999999999");
        fs::create_dir_all(stale.join("bin")).unwrap();

        let removed = sweep(dir.path()).unwrap();
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(removed.iter().any(|line| line.contains("unused uid-shifted copy")));
        assert!(!unused.exists() && !stale.exists(), "{removed:?}");
        assert!(held.layers()[0].join("a").is_file(), "sweep removed a copy in use");
        assert!(only_layer(&image).join("a").is_file(), "sweep removed the image");
        assert_eq!(sweep(dir.path()).unwrap(), Vec::<String>::new(), "a second sweep found more");

        drop(held);
        let removed = sweep(dir.path()).unwrap();
        assert_eq!(removed.len(), 1, "{removed:?}");
        assert!(sweep(&dir.path().join("missing")).unwrap().is_empty());
    }

    /// A small two-layer image: the second layer deletes a file, makes a
    /// directory opaque and adds one; its config sets every default.
    fn two_layers() -> TestImage {
        let base = layer_tar(&[
            Entry::Dir("etc"),
            Entry::File("etc/motd", b"base\n"),
            Entry::File("etc/gone", b"deleted above\n"),
            Entry::Dir("data"),
            Entry::File("data/from-base", b"hidden above\n"),
            Entry::Symlink("lib", "usr/lib"),
        ]);
        let top = layer_tar(&[
            Entry::Dir("etc"),
            Entry::Whiteout("etc/gone"),
            Entry::Dir("data"),
            Entry::Opaque("data"),
            Entry::File("data/from-top", b"top\n"),
        ]);
        let mut image = TestImage::new(vec![base, top]);
        image.gzip = vec![true, false];
        image.env = vec!["A=1".into()];
        image.cmd = vec!["sh".into()];
        image.entrypoint = vec!["/bin/entry".into()];
        image.working_dir = "/work".into();
        image.user = "1000:1000".into();
        image
    }

    /// What the two layers of [`two_layers`] look like in the store.
    fn assert_two_layers(image: &Image) {
        let [base, top] = image.layers() else { panic!("{image:?} has not two layers") };
        assert_eq!(fs::read_to_string(base.join("etc/motd")).unwrap(), "base\n");
        assert!(base.join("etc/gone").is_file() && base.join("data/from-base").is_file());
        let whiteout = fs::symlink_metadata(top.join("etc/gone")).unwrap();
        assert!(whiteout.file_type().is_char_device() && whiteout.rdev() == 0, "{whiteout:?} is no whiteout");
        assert!(!top.join("etc/.wh.gone").exists() && !top.join("data/.wh..wh..opq").exists());
        for name in crate::layer::OPAQUE_XATTRS {
            assert_eq!(crate::layer::get_xattr(&top.join("data"), name).as_deref(), Some(&b"y"[..]), "{name}");
        }
        assert_eq!(crate::layer::get_xattr(&base.join("data"), "trusted.overlay.opaque"), None);
        let config = &image.config;
        assert_eq!((config.env.clone(), config.cmd.clone()), (vec!["A=1".to_string()], vec!["sh".to_string()]));
        assert_eq!(config.working_dir(), "/work");
        assert_eq!(config.user(None).unwrap(), Some("1000:1000".parse().unwrap()));
        assert_eq!(config.command(None, &[]).unwrap(), ["/bin/entry", "sh"]);
    }

    #[test]
    fn oci_layouts_and_docker_save_archives_are_read_by_content_and_share_layers() {
        if !crate::testing::require_root("oci_layouts_and_docker_save_archives_are_read_by_content_and_share_layers") {
            return;
        }
        let scratch = tempfile::tempdir().unwrap();
        let store = scratch.path().join("images");
        let image = two_layers();
        // Names that say nothing: the content decides.
        let (layout, archive, saved) =
            (scratch.path().join("a"), scratch.path().join("b.tar.gz"), scratch.path().join("c.zip"));
        image.write_oci_layout(&layout);
        image.write_oci_archive(&archive);
        image.write_docker_save(&saved);
        let gzipped_save = scratch.path().join("d");
        fs::write(&gzipped_save, crate::testing::gzip(&fs::read(&saved).unwrap())).unwrap();

        let from_layout = open(&store, layout.to_str().unwrap()).unwrap();
        assert_eq!(from_layout.format, "oci");
        assert_two_layers(&from_layout);
        assert_eq!(extractions(&store), 2);
        let from_archive = open(&store, archive.to_str().unwrap()).unwrap();
        assert_two_layers(&from_archive);
        assert_eq!(from_archive.layers(), from_layout.layers(), "the same blobs are the same layers");
        assert_eq!(extractions(&store), 2, "an OCI archive of the same blobs unpacked them again");
        // docker save keys layers by their uncompressed digest: the plain
        // top layer is the OCI layout's, the gzipped base is not.
        let from_save = open(&store, saved.to_str().unwrap()).unwrap();
        assert_eq!(from_save.format, "docker-save");
        assert_two_layers(&from_save);
        assert_eq!(from_save.layers()[1], from_layout.layers()[1], "the shared top layer is not shared");
        assert_eq!(extractions(&store), 3, "docker save unpacked a layer the store had");
        let from_gzipped = open(&store, gzipped_save.to_str().unwrap()).unwrap();
        assert_eq!(from_gzipped.layers(), from_save.layers());
        assert_eq!(extractions(&store), 3);

        let listed = list(&store).unwrap();
        assert_eq!(listed.len(), 4, "{:?}", listed.iter().map(|image| &image.name).collect::<Vec<_>>());
        assert!(listed.iter().all(|image| image.layers == 2 && image.size > 0));
        assert!(names(&store).iter().all(|name| !name.starts_with('.')), "{:?}", names(&store));
        assert!(!store.join(path_key(&fs::canonicalize(&gzipped_save).unwrap())).join("archive.tar").exists());
    }

    #[test]
    fn rmi_removes_the_layers_no_other_image_has_and_keeps_held_ones() {
        // The opaque directory's trusted.* xattr needs root (CAP_SYS_ADMIN).
        if !crate::testing::require_root("rmi_removes_the_layers_no_other_image_has_and_keeps_held_ones") {
            return;
        }
        let scratch = tempfile::tempdir().unwrap();
        let store = scratch.path().join("images");
        let image = two_layers();
        let (layout, saved) = (scratch.path().join("layout"), scratch.path().join("saved.tar"));
        image.write_oci_layout(&layout);
        image.write_docker_save(&saved);
        let oci = open(&store, layout.to_str().unwrap()).unwrap().layers().to_vec();
        let held = open(&store, saved.to_str().unwrap()).unwrap();
        // The OCI image's gzipped base is its own; its top is shared.
        let lines = remove(&store, layout.to_str().unwrap()).unwrap();
        assert!(lines[0].starts_with("removed image "), "{lines:?}");
        assert!(lines.iter().any(|line| line.starts_with("removed layer sha256:")), "{lines:?}");
        assert!(!oci[0].exists() && oci[1].exists(), "{lines:?}");
        // The docker save image is in use: its layers stay until it ends.
        let lines = remove(&store, "saved.tar").unwrap_or_else(|_| remove(&store, saved.to_str().unwrap()).unwrap());
        assert_eq!(lines.iter().filter(|line| line.starts_with("kept layer")).count(), 2, "{lines:?}");
        assert!(held.layers().iter().all(|layer| layer.join("etc").is_dir()));
        drop(held);
        assert_eq!(sweep(&store).unwrap().len(), 2);
        assert_eq!(names(&store.join("layers/sha256")), Vec::<String>::new());
        assert!(list(&store).unwrap().is_empty());
        let err = remove(&store, "nosuch").unwrap_err().to_string();
        assert!(err.contains("no image nosuch"), "{err}");
    }

    #[test]
    fn a_layer_that_does_not_match_its_digest_leaves_nothing() {
        // The opaque directory's trusted.* xattr needs root (CAP_SYS_ADMIN).
        if !crate::testing::require_root("a_layer_that_does_not_match_its_digest_leaves_nothing") {
            return;
        }
        let scratch = tempfile::tempdir().unwrap();
        let store = scratch.path().join("images");
        let image = two_layers();
        let layout = scratch.path().join("layout");
        image.write_oci_layout(&layout);
        // The top layer's blob changed after the manifest was written.
        let top = crate::testing::sha256(&image.layers[1]);
        let blob = layout.join("blobs/sha256").join(&top);
        let mut bytes = fs::read(&blob).unwrap();
        bytes.extend_from_slice(&[0; 1024]);
        fs::write(&blob, bytes).unwrap();
        let err = format!("{:#}", open(&store, layout.to_str().unwrap()).unwrap_err());
        assert!(
            err.contains(&format!("layer sha256:{}", short(&top))) && err.contains("does not match its digest"),
            "{err}"
        );
        assert!(err.contains(&layout.display().to_string()) && err.lines().count() == 1, "{err}");
        assert_eq!(names(&store), Vec::<String>::new(), "a refused image left files or its good base layer");

        // docker save: a layer tar that is not its diff_id.
        let mut wrong = two_layers();
        wrong.write_docker_save(&scratch.path().join("saved.tar"));
        wrong.layers[1] = layer_tar(&[Entry::File("other", b"x")]);
        let mut files = Vec::new();
        let mut archive = tar::Archive::new(fs::File::open(scratch.path().join("saved.tar")).unwrap());
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            if name.ends_with("layer.tar") && name.starts_with(&crate::testing::sha256(&image.layers[1])) {
                bytes = wrong.layers[1].clone();
            }
            files.push((name, bytes, entry.header().entry_type()));
        }
        let mut builder = tar::Builder::new(fs::File::create(scratch.path().join("bad.tar")).unwrap());
        for (name, bytes, kind) in files {
            let mut header = Header::new_gnu();
            header.set_entry_type(kind);
            header.set_mode(0o644);
            header.set_size(bytes.len() as u64);
            builder.append_data(&mut header, name, &bytes[..]).unwrap();
        }
        builder.finish().unwrap();
        let bad = scratch.path().join("bad.tar");
        let err = format!("{:#}", open(&store, bad.to_str().unwrap()).unwrap_err());
        assert!(err.contains("does not match its digest"), "{err}");
        assert_eq!(names(&store), Vec::<String>::new());
    }

    #[test]
    fn a_truncated_archive_leaves_nothing() {
        // The opaque directory's trusted.* xattr needs root (CAP_SYS_ADMIN).
        if !crate::testing::require_root("a_truncated_archive_leaves_nothing") {
            return;
        }
        let scratch = tempfile::tempdir().unwrap();
        let store = scratch.path().join("images");
        let saved = scratch.path().join("saved.tar");
        two_layers().write_docker_save(&saved);
        let len = fs::metadata(&saved).unwrap().len();
        for keep in [len / 2, len - 2048, 700] {
            cut(&saved, keep);
            let err = format!("{:#}", open(&store, saved.to_str().unwrap()).unwrap_err());
            assert!(err.contains(&saved.display().to_string()), "{keep}: {err}");
            assert!(
                err.contains("truncated or corrupt") || err.contains("incomplete") || err.contains("does not match"),
                "{keep}: {err}"
            );
            assert_eq!(err.lines().count(), 1, "{err}");
            let left: Vec<String> = names(&store).into_iter().filter(|name| name != "layers").collect();
            assert!(left.is_empty(), "{left:?}");
            if store.join("layers/sha256").is_dir() {
                assert_eq!(names(&store.join("layers/sha256")), Vec::<String>::new());
            }
        }
    }

    #[test]
    fn a_layer_with_an_escaping_path_leaves_nothing() {
        for bad in [Entry::Raw("../../escaped"), Entry::Raw("/etc/escaped")] {
            let scratch = tempfile::tempdir().unwrap();
            let store = scratch.path().join("images");
            let mut image = two_layers();
            image.layers[1] = layer_tar(&[Entry::Dir("etc"), bad]);
            let layout = scratch.path().join("layout");
            image.write_oci_layout(&layout);
            let err = format!("{:#}", open(&store, layout.to_str().unwrap()).unwrap_err());
            assert!(err.contains("leads outside the layer") && err.contains("escaped"), "{err}");
            assert_eq!(names(&store), Vec::<String>::new());
            assert!(!Path::new("/etc/escaped").exists() && !scratch.path().join("escaped").exists());
        }
    }

    #[test]
    fn a_buildx_index_and_a_docker_25_save_are_read() {
        // The opaque directory's trusted.* xattr needs root (CAP_SYS_ADMIN).
        if !crate::testing::require_root("a_buildx_index_and_a_docker_25_save_are_read") {
            return;
        }
        let scratch = tempfile::tempdir().unwrap();
        let store = scratch.path().join("images");
        let mut image = two_layers();
        image.nested_index = true;
        let layout = scratch.path().join("buildx");
        image.write_oci_archive(&layout);
        let opened = open(&store, layout.to_str().unwrap()).unwrap();
        assert_eq!(opened.format, "oci");
        assert_two_layers(&opened);
        let mut image = two_layers();
        image.gzip = vec![false, false];
        image.with_docker_manifest = true;
        let saved = scratch.path().join("docker25.tar");
        image.write_oci_archive(&saved);
        let opened = open(&store, saved.to_str().unwrap()).unwrap();
        assert_eq!(opened.format, "docker-save");
        assert_two_layers(&opened);
    }

    #[test]
    fn a_blob_changed_in_a_layout_directory_is_seen_and_refused() {
        let scratch = tempfile::tempdir().unwrap();
        let store = scratch.path().join("images");
        let image = TestImage::new(vec![layer_tar(&[Entry::File("a", b"a\n")])]);
        let layout = scratch.path().join("layout");
        image.write_oci_layout(&layout);
        drop(open(&store, layout.to_str().unwrap()).unwrap());
        let blob = layout.join("blobs/sha256").join(crate::testing::sha256(&image.layers[0]));
        fs::write(&blob, layer_tar(&[Entry::File("a", b"changed\n")])).unwrap();
        // The store has that digest, checked when it was unpacked: as with
        // `docker pull`, a layer the store has is not read again.
        let again = open(&store, layout.to_str().unwrap()).unwrap();
        assert_eq!(fs::read_to_string(again.layers()[0].join("a")).unwrap(), "a\n");
        drop(again);
        remove(&store, layout.to_str().unwrap()).unwrap();
        let err = format!("{:#}", open(&store, layout.to_str().unwrap()).unwrap_err());
        assert!(err.contains("does not match its digest"), "{err}");
    }

    #[test]
    fn an_empty_layer_is_a_layer() {
        // The opaque directory's trusted.* xattr needs root (CAP_SYS_ADMIN).
        if !crate::testing::require_root("an_empty_layer_is_a_layer") {
            return;
        }
        let scratch = tempfile::tempdir().unwrap();
        let store = scratch.path().join("images");
        let mut image = two_layers();
        // As Docker's classic builder writes for a step that changed no file.
        image.layers.insert(1, layer_tar(&[]));
        image.gzip.insert(1, false);
        let layout = scratch.path().join("layout");
        image.write_oci_layout(&layout);
        let opened = open(&store, layout.to_str().unwrap()).unwrap();
        assert_eq!(opened.layers().len(), 3);
        assert_eq!(names(&opened.layers()[1]), Vec::<String>::new());
    }

    #[test]
    fn config_gives_dockers_defaults() {
        let config = Config {
            env: vec!["A=1".into()],
            entrypoint: vec!["/entry".into()],
            cmd: vec!["default".into()],
            working_dir: String::new(),
            user: String::new(),
        };
        let given = |args: &[&str]| args.iter().map(|arg| arg.to_string()).collect::<Vec<_>>();
        assert_eq!(config.command(None, &[]).unwrap(), ["/entry", "default"]);
        assert_eq!(config.command(None, &given(&["mine"])).unwrap(), ["/entry", "mine"]);
        assert_eq!(config.command(Some("sh"), &[]).unwrap(), ["sh"], "--entrypoint drops the image's Cmd");
        assert_eq!(config.command(Some("sh"), &given(&["-c", "x"])).unwrap(), ["sh", "-c", "x"]);
        assert_eq!(config.command(Some(""), &given(&["ls"])).unwrap(), ["ls"]);
        let err = config.command(Some(""), &[]).unwrap_err().to_string();
        assert!(err.contains("COMMAND"), "{err}");
        assert_eq!(config.env(&given(&["A=2"])), ["A=1", "A=2"]);
        let leaky = Config { env: given(&["HOME", "B=2"]), ..Config::default() };
        assert_eq!(leaky.env(&given(&["PATH"])), ["B=2", "PATH"], "the image named a host variable");
        assert_eq!(config.working_dir(), "/");
        assert_eq!(config.user(None).unwrap(), None);
        let named = Config { user: "nobody".into(), ..Config::default() };
        assert_eq!(named.user(None).unwrap(), Some("nobody".parse().unwrap()), "a name is looked up later");
        let given: UserSpec = "7:8".parse().unwrap();
        assert_eq!(named.user(Some(&given)).unwrap(), Some(given), "--user replaces the image's User");
        let bad = Config { user: "a b".into(), ..Config::default() };
        assert!(bad.user(None).unwrap_err().to_string().contains("the image's User"));
    }
}
