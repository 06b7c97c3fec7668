//! The state directories a user names (`--image-dir`, `--container-dir`),
//! resolved once as a run starts; and mount targets inside an image's root,
//! which must stay inside it.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Creates `dir` when missing and returns its canonical path: absolute, no
/// symlink, no `.` or `..`. Every later step uses this path, so the cleanup
/// unmounts and removes exactly what the start made, whatever route the
/// user's path took. Characters that an overlay option string cannot carry
/// (`,` separates options, `:` layers, `\` escapes) are refused, as are
/// control characters.
pub fn resolve(dir: &Path, flag: &str) -> Result<PathBuf> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {flag} {}", dir.display()))?;
    let resolved = fs::canonicalize(dir).with_context(|| format!("cannot resolve {flag} {}", dir.display()))?;
    if !resolved.is_dir() {
        bail!("{flag} {} is not a directory: name a directory", dir.display());
    }
    let text = resolved.to_string_lossy();
    if let Some(bad) = text.chars().find(|c| matches!(c, ',' | ':' | '\\') || c.is_control()) {
        bail!(
            "{flag} {:?} contains {bad:?}, which an overlay mount's options cannot carry: use a directory without ',', ':', '\\' or control characters",
            resolved
        );
    }
    Ok(resolved)
}

/// `rootfs` joined with `path` (a container path such as `/proc`), or an
/// error naming the image's symlink when any part of it is one.
///
/// The image decides what its `/proc`, `/sys` and `/dev` are. A symlink
/// there (to `/etc`, or to `../../../../host/dir`) would be followed by
/// mount(2), which would then cover a directory outside the container's
/// root: runc's CVE-2019-16884 class. runc resolves such targets inside the
/// root (openat2 with RESOLVE_IN_ROOT); refusing them is simpler and loses
/// nothing a real image needs. The check is made before anything of the
/// container runs, so nothing can swap the path between check and mount. A
/// missing part is left for the mount to report (ENOENT).
pub fn in_rootfs(rootfs: &Path, path: &str) -> Result<PathBuf> {
    let mut target = rootfs.to_path_buf();
    let mut shown = PathBuf::from("/");
    for part in Path::new(path).components() {
        match part {
            std::path::Component::RootDir => continue,
            std::path::Component::Normal(name) => {
                target.push(name);
                shown.push(name);
            }
            _ => bail!("mount target {path:?} is not a plain absolute path: name it without `.` or `..`"),
        }
        match fs::symlink_metadata(&target) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let to = fs::read_link(&target).unwrap_or_default();
                bail!(
                    "the image's {} is a symlink (to {}): a mount there could land outside the container; make {} a directory in the image",
                    shown.display(),
                    to.display(),
                    shown.display()
                );
            }
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => break,
            Err(err) => return Err(err).with_context(|| format!("cannot stat {}", target.display())),
        }
    }
    Ok(rootfs.join(path.trim_start_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_symlinked_and_dotdot_paths_resolve_to_one_place() {
        let base = tempfile::tempdir().unwrap();
        let real = base.path().join("real");
        fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, base.path().join("link")).unwrap();
        let canonical = fs::canonicalize(&real).unwrap();
        assert_eq!(resolve(&base.path().join("link"), "--x").unwrap(), canonical);
        assert_eq!(resolve(&base.path().join("real/../real/."), "--x").unwrap(), canonical);
    }

    #[test]
    fn overlay_separators_are_refused() {
        let base = tempfile::tempdir().unwrap();
        for name in ["a,b", "a:b", "a\\b", "a\nb"] {
            let err = resolve(&base.path().join(name), "--container-dir").unwrap_err().to_string();
            assert!(err.contains("--container-dir") && err.contains("cannot carry"), "{err}");
        }
    }

    #[test]
    fn a_symlinked_mount_target_is_refused_naming_it() {
        let rootfs = tempfile::tempdir().unwrap();
        fs::create_dir(rootfs.path().join("sys")).unwrap();
        std::os::unix::fs::symlink("/etc", rootfs.path().join("proc")).unwrap();
        std::os::unix::fs::symlink("../../../host", rootfs.path().join("dev")).unwrap();
        assert_eq!(in_rootfs(rootfs.path(), "/sys").unwrap(), rootfs.path().join("sys"));
        assert_eq!(in_rootfs(rootfs.path(), "/sys/firmware").unwrap(), rootfs.path().join("sys/firmware"));
        let err = in_rootfs(rootfs.path(), "/proc").unwrap_err().to_string();
        assert!(err.starts_with("the image's /proc is a symlink (to /etc)"), "{err}");
        let err = in_rootfs(rootfs.path(), "/dev/pts").unwrap_err().to_string();
        assert!(err.starts_with("the image's /dev is a symlink (to ../../../host)"), "{err}");
        assert!(in_rootfs(rootfs.path(), "/sys/../proc").is_err());
    }
}
