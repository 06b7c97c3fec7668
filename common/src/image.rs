//! The image store. An image is `<image-dir>/<name>.tar` or `.tar.gz` in the
//! `docker export` format the workshop uses; it is extracted once into
//! `<image-dir>/<name>/rootfs` and shared by every container started from it.
//!
//! Extraction is atomic: it happens in a temporary directory that is renamed
//! into place, so two containers starting at once never see half an image,
//! and an interrupted extraction leaves nothing that looks like an image.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use tar::{Archive, EntryType, Header};

use crate::DEFAULT_IMAGE;
use crate::fsutil::remove_tree;
use crate::ids::IdMap;

/// The root filesystem of image `name`, extracting it first when needed.
/// The default image is built from the host's static busybox when missing.
pub fn rootfs(image_dir: &Path, name: &str) -> Result<PathBuf> {
    check_name(name)?;
    let unpacked = image_dir.join(name);
    let rootfs = unpacked.join("rootfs");
    if rootfs.is_dir() {
        return Ok(rootfs);
    }
    let tarball = match find_tarball(image_dir, name) {
        Some(tarball) => tarball,
        None if name == DEFAULT_IMAGE => {
            let tarball = image_dir.join(format!("{name}.tar"));
            build_busybox_tar(&tarball)?;
            tarball
        }
        None => bail!(
            "image {name:?} not found: put {name}.tar or {name}.tar.gz (a `docker export`) in {}, or use --image {DEFAULT_IMAGE}",
            image_dir.display()
        ),
    };
    extract(&tarball, image_dir, name)?;
    Ok(rootfs)
}

/// A copy of an image's rootfs with every owner shifted through the given
/// maps (ids the maps do not cover become 65534, "nobody"), kept next to the
/// rootfs and reused: `<image-dir>/<name>/rootfs-<uidmap>-<gidmap>`. Built in
/// a temporary directory and renamed into place, like an extraction.
pub fn mapped_copy(rootfs: &Path, uid_map: &IdMap, gid_map: &IdMap) -> Result<PathBuf> {
    let name = |map: &IdMap| format!("{}:{}:{}", map.inside, map.outside, map.count);
    let copy = rootfs.with_file_name(format!("rootfs-{}-{}", name(uid_map), name(gid_map)));
    if copy.is_dir() {
        return Ok(copy);
    }
    let dir = rootfs.parent().unwrap_or(rootfs);
    remove_stale_temporaries(dir, "rootfs")?;
    let staging = temporary(dir, "rootfs", "mapping");
    let owner = |uid, gid| (uid_map.to_host(uid).unwrap_or(65_534), gid_map.to_host(gid).unwrap_or(65_534));
    let copied = crate::fsutil::copy_tree_owned(rootfs, &staging, &owner);
    match copied.and_then(|()| fs::rename(&staging, &copy).map_err(anyhow::Error::from)) {
        Ok(()) => Ok(copy),
        Err(_) if copy.is_dir() => remove_tree(&staging).map(|()| copy),
        Err(err) => {
            remove_tree(&staging)?;
            Err(err.context(format!("cannot make the uid-shifted copy {}", copy.display())))
        }
    }
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

/// A temporary name `.<name>.<what>.<pid>` in `dir`, owned by this process:
/// stale ones (their process is gone) are removed by the next run that
/// makes one (an extraction, or a uid-shifted copy).
fn temporary(dir: &Path, name: &str, what: &str) -> PathBuf {
    dir.join(format!(".{name}.{what}.{}", std::process::id()))
}

fn remove_stale_temporaries(dir: &Path, name: &str) -> Result<()> {
    let prefix = format!(".{name}.");
    for entry in fs::read_dir(dir)? {
        let file_name = entry?.file_name().to_string_lossy().into_owned();
        let Some(pid) = file_name.strip_prefix(&prefix).and_then(|rest| rest.rsplit('.').next()) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            remove_tree(&dir.join(&file_name))?;
        }
    }
    Ok(())
}

fn extract(tarball: &Path, image_dir: &Path, name: &str) -> Result<()> {
    remove_stale_temporaries(image_dir, name)?;
    let staging = temporary(image_dir, name, "extracting");
    let result = unpack(tarball, &staging.join("rootfs"));
    if let Err(err) = result {
        remove_tree(&staging)?;
        return Err(err);
    }
    match fs::rename(&staging, image_dir.join(name)) {
        Ok(()) => Ok(()),
        // Another container extracted the same image first: use theirs.
        Err(_) if image_dir.join(name).join("rootfs").is_dir() => remove_tree(&staging),
        Err(err) => {
            remove_tree(&staging)?;
            Err(err).with_context(|| format!("cannot move the extracted image into {}", image_dir.join(name).display()))
        }
    }
}

/// Unpacks a tarball into `dest`: owners and modes kept, device nodes
/// skipped, and nothing written outside `dest` (the tar crate's `unpack_in`
/// drops `..` entries, strips leading `/` and refuses symlinked parents that
/// lead out).
pub fn unpack(tarball: &Path, dest: &Path) -> Result<()> {
    fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    fs::set_permissions(dest, fs::Permissions::from_mode(0o755))?;
    let file = fs::File::open(tarball).with_context(|| format!("cannot open {}", tarball.display()))?;
    let reader: Box<dyn Read> =
        if is_gzip(tarball)? { Box::new(flate2::read::GzDecoder::new(file)) } else { Box::new(file) };
    let mut archive = Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_unpack_xattrs(false);
    for entry in archive.entries().with_context(|| format!("cannot read {}", tarball.display()))? {
        let mut entry = entry.with_context(|| format!("{} is not a valid tar archive", tarball.display()))?;
        if matches!(entry.header().entry_type(), EntryType::Char | EntryType::Block) {
            continue;
        }
        let path = entry.path()?.into_owned();
        entry
            .unpack_in(dest)
            .with_context(|| format!("cannot extract {} from {}", path.display(), tarball.display()))?;
    }
    Ok(())
}

fn is_gzip(path: &Path) -> Result<bool> {
    let mut magic = [0u8; 2];
    let mut file = fs::File::open(path)?;
    Ok(file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b])
}

/// The helper programs the workshop's exercises need, built static by
/// `common/build.rs` and shipped in the default image's `/bin`.
pub const HELPERS: &[(&str, &[u8])] = &[
    ("breakout", include_bytes!(concat!(env!("OUT_DIR"), "/breakout"))),
    ("memhog", include_bytes!(concat!(env!("OUT_DIR"), "/memhog"))),
    ("traceme", include_bytes!(concat!(env!("OUT_DIR"), "/traceme"))),
];

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
    let result = write_busybox_tar(&staging, &busybox, &applets);
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
        append(&mut builder, &format!("bin/{name}"), EntryType::Regular, 0o755, bytes, None)?;
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
/// libc for a dynamic one to load.
fn find_static_busybox() -> Result<PathBuf> {
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
            "{} is dynamically linked and cannot run in an image without libc: install a static busybox (`apt-get install busybox-static` on Debian and Ubuntu)",
            path.display()
        ),
        None => bail!(
            "the default image is built from a static busybox, and none was found on PATH or at /bin/busybox: install one (`apt-get install busybox-static` on Debian and Ubuntu)"
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
}

/// Placeholder until the image store's sweep lands: removes nothing.
pub fn sweep(_image_dir: &Path) -> Result<Vec<String>> {
    Ok(Vec::new())
}
