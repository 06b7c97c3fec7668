//! Container ids and per-container directories, and the record each run
//! keeps in its directory so that `cleanup` can tell a live run from the
//! remains of a dead one.
//!
//! A run holds an exclusive flock(2) on its container's directory for as
//! long as it lives. The kernel drops that lock when the process dies, however
//! it dies (SIGKILL included), so "the lock can be taken" means "the run that
//! made this directory is gone": no pid file to go stale, no pid to be reused.
//! The directory is made under a temporary name, locked, given its `state`
//! record and only then renamed to the container's id, so a directory with an
//! id for a name is always either locked or dead.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::fcntl::{Flock, FlockArg};
use nix::mount::{MntFlags, umount2};

use crate::fsutil;

/// One container's identity and its directory under `--container-dir`.
pub struct Container {
    pub id: String,
    pub dir: PathBuf,
    /// Held while the run lives; see the module's comment.
    _alive: Flock<fs::File>,
}

/// The file in a container's directory that says who made it.
pub const STATE_FILE: &str = "state";

impl Container {
    /// A new id and an empty directory `<container_dir>/<id>`, mode 0700:
    /// no other host user may reach the container's files (a step with a
    /// user namespace hands it to the container's mapped root).
    /// `container_dir` is resolved once, here (relative paths, symlinks,
    /// `..`): every later step uses the resolved path.
    pub fn create(container_dir: &Path, image: &str) -> Result<Container> {
        let container_dir = crate::paths::resolve(container_dir, "--container-dir")?;
        let id = new_id()?;
        let staging = container_dir.join(format!(".{id}.creating"));
        fs::DirBuilder::new().mode(0o700).create(&staging).with_context(|| {
            format!("cannot create a directory in --container-dir {}: is it writable?", container_dir.display())
        })?;
        let made = lock(&staging, FlockArg::LockExclusiveNonblock).and_then(|alive| {
            fs::set_permissions(&staging, fs::Permissions::from_mode(0o700))?;
            fs::write(staging.join(STATE_FILE), State::of_this_run(image).to_string())
                .with_context(|| format!("cannot write {}", staging.join(STATE_FILE).display()))?;
            let dir = container_dir.join(&id);
            fs::rename(&staging, &dir).with_context(|| format!("cannot rename {} to {id}", staging.display()))?;
            Ok(Container { id, dir, _alive: alive })
        });
        if made.is_err() {
            let _ = fsutil::remove_tree(&staging);
        }
        made
    }

    /// Removes everything the container left on the host: first whatever is
    /// still mounted below its directory (as seen from our mount namespace),
    /// then the directory itself.
    pub fn remove(&self) -> Result<()> {
        unmount_below(&self.dir)?;
        // unlinkat(2) of every file below, then rmdir(2): one trace line.
        let shown = [format!("{:?}", self.dir)];
        crate::trace::traced("remove_tree", &shown, || fsutil::remove_tree(&self.dir))
    }
}

/// Unmounts whatever is mounted at or below `dir` in our mount namespace,
/// and checks that nothing is left: removing files through a leftover bind
/// mount would delete the image's (or the host's) files. When something
/// stays mounted, the files are kept and the error says what is mounted where.
pub fn unmount_below(dir: &Path) -> Result<()> {
    for point in fsutil::mounts_under("self", dir)? {
        crate::sys!(umount2(&point, MntFlags::MNT_DETACH))?;
    }
    let left = fsutil::mounts_under("self", dir)?;
    if let Some(point) = left.first() {
        bail!("kept {}: {} is still mounted (unmount it, then run `cleanup`)", dir.display(), point.display());
    }
    Ok(())
}

/// Opens `dir` and flocks it; the lock lasts as long as the returned value.
pub fn lock(dir: &Path, how: FlockArg) -> Result<Flock<fs::File>> {
    let file = fs::File::open(dir).with_context(|| format!("cannot open {}", dir.display()))?;
    Flock::lock(file, how)
        .map_err(|(_, errno)| anyhow::Error::new(errno).context(format!("flock({}) failed", dir.display())))
}

/// Twelve hex digits from the kernel's random pool, like a short Docker id.
pub fn new_id() -> Result<String> {
    let mut bytes = [0u8; 6];
    fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .context("cannot read /dev/urandom for a container id")?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Whether `name` is a container id (twelve lowercase hex digits).
pub fn is_id(name: &str) -> bool {
    name.len() == 12 && name.bytes().all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

/// What a run records about itself as it starts: `key value` lines.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct State {
    /// The runtime's pid and its start time (clock ticks after boot, field
    /// 22 of /proc/PID/stat), which together name one process for good.
    pub runtime_pid: u32,
    pub runtime_start: u64,
    /// The step's binary, the image, and the command the container runs.
    pub program: String,
    pub image: String,
    pub command: String,
}

impl State {
    fn of_this_run(image: &str) -> State {
        let pid = std::process::id();
        State {
            runtime_pid: pid,
            runtime_start: start_time(pid).unwrap_or(0),
            program: crate::cli::program_name(),
            image: image.to_string(),
            command: std::env::args().skip(1).collect::<Vec<_>>().join(" ").replace('\n', " "),
        }
    }

    /// Reads a state file; missing or unknown keys are left at their defaults.
    pub fn read(dir: &Path) -> State {
        let text = fs::read_to_string(dir.join(STATE_FILE)).unwrap_or_default();
        let mut state = State::default();
        for (key, value) in text.lines().filter_map(|line| line.split_once(' ')) {
            match key {
                "runtime_pid" => state.runtime_pid = value.parse().unwrap_or(0),
                "runtime_start" => state.runtime_start = value.parse().unwrap_or(0),
                "program" => state.program = value.to_string(),
                "image" => state.image = value.to_string(),
                "command" => state.command = value.to_string(),
                _ => {}
            }
        }
        state
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "runtime_pid {}", self.runtime_pid)?;
        writeln!(f, "runtime_start {}", self.runtime_start)?;
        writeln!(f, "program {}", self.program)?;
        writeln!(f, "image {}", self.image)?;
        writeln!(f, "command {}", self.command)
    }
}

/// The fields of /proc/PID/stat after the command name, from field 3 (the
/// state) on, as the kernel shows them; `None` when the process is gone.
/// (The command name, field 2, may contain spaces and parentheses, so the
/// fields are counted after its closing parenthesis.)
pub fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(stat.rsplit_once(')')?.1.split_whitespace().map(str::to_string).collect())
}

/// Whether process `pid` is gone, or a zombie (dead, waiting to be reaped).
pub fn is_dead(pid: u32) -> bool {
    stat_fields(pid).is_none_or(|fields| fields.first().is_none_or(|state| state == "Z" || state == "X"))
}

/// Field 22 of /proc/PID/stat: when the process started, in clock ticks
/// after boot.
pub fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
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
    /// files for inspection and says where. The record goes, so `cleanup`
    /// does not take a kept directory for a dead run's remains.
    pub fn keep_after(&self, ended: Result<i32>) -> Result<i32> {
        unmount_below(&self.dir)?;
        let _ = fs::remove_file(self.dir.join(STATE_FILE));
        crate::cli::say(&format!("kept the container's directory: {}", self.dir.display()));
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_reads_back() {
        let state = State {
            runtime_pid: 42,
            runtime_start: 7,
            program: "step09-oom".into(),
            image: "busybox".into(),
            command: "run sh".into(),
        };
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(STATE_FILE), state.to_string()).unwrap();
        assert_eq!(State::read(dir.path()), state);
    }

    #[test]
    fn our_own_start_time_is_read() {
        assert!(start_time(std::process::id()).is_some_and(|ticks| ticks > 0));
    }
}
