//! Container ids and per-container directories.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::mount::{MntFlags, umount2};

use crate::fsutil;

/// One container's identity and its directory under `--container-dir`.
pub struct Container {
    pub id: String,
    pub dir: PathBuf,
}

impl Container {
    /// A new id and an empty directory `<container_dir>/<id>`, mode 0711 so
    /// that a container root mapped to another uid can still reach its own
    /// files below it.
    pub fn create(container_dir: &Path) -> Result<Container> {
        fs::create_dir_all(container_dir)
            .with_context(|| format!("cannot create the container directory {}", container_dir.display()))?;
        let id = new_id()?;
        let dir = container_dir.join(&id);
        fs::DirBuilder::new().mode(0o711).create(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o711))?;
        Ok(Container { id, dir })
    }

    /// Removes everything the container left on the host: first whatever is
    /// still mounted below its directory (as seen from our mount namespace),
    /// then the directory itself.
    pub fn remove(&self) -> Result<()> {
        self.unmount()?;
        fsutil::remove_tree(&self.dir)
    }

    /// Unmounts whatever is still mounted at or below the container's
    /// directory in our mount namespace, and checks that nothing is left:
    /// removing files through a leftover bind mount would delete the
    /// image's (or the host's) files.
    fn unmount(&self) -> Result<()> {
        for point in fsutil::mounts_under("self", &self.dir)? {
            umount2(&point, MntFlags::MNT_DETACH)
                .with_context(|| format!("umount2({}, MNT_DETACH) failed", point.display()))?;
        }
        let left = fsutil::mounts_under("self", &self.dir)?;
        if !left.is_empty() {
            bail!("still mounted after unmounting: {left:?}");
        }
        Ok(())
    }
}

/// Twelve hex digits from the kernel's random pool, like a short Docker id.
pub fn new_id() -> Result<String> {
    let mut bytes = [0u8; 6];
    fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .context("cannot read /dev/urandom for a container id")?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

impl Container {
    /// Removes the container (see [`Container::remove`]) once it has ended,
    /// or failed to start, and returns how it ended. When both the run and
    /// the removal failed, the run's error is returned and the removal's is
    /// printed, so neither is lost.
    pub fn remove_after(&self, ended: Result<i32>) -> Result<i32> {
        let removed = self.remove();
        match (ended, removed) {
            (Ok(code), Ok(())) => Ok(code),
            (Ok(_), Err(err)) => Err(err),
            (Err(err), Ok(())) => Err(err),
            (Err(err), Err(also)) => {
                crate::errors::print(&also);
                Err(err)
            }
        }
    }

    /// For `--keep`: unmounts what the parent mounted there, leaves the
    /// files for inspection and says where.
    pub fn keep_after(&self, ended: Result<i32>) -> Result<i32> {
        self.unmount()?;
        crate::cli::say(&format!("kept the container's directory: {}", self.dir.display()));
        ended
    }
}
