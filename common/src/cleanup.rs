//! `cleanup`: removes exactly what dead runs left behind, the original
//! workshop's cleanup script done right.
//!
//! A run that is killed (SIGKILL, a crash, a power cut) cannot clean up after
//! itself. Its container died with it (PR_SET_PDEATHSIG), but its directory
//! (with the mounts steps 02–04 make on the host) and its cgroups stay. Each
//! run locks its container directory while it lives (see
//! [`crate::container`]), so a directory that can be locked belongs to a
//! dead run, and one that cannot is live and never touched. Everything else
//! is derived from the container's id, never read from a file a container
//! could have written: its cgroups are `docker-from-scratch/<id>`, its
//! mounts are those below its directory. Running it again finds nothing.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use anyhow::{Context, Result};
use cgroups_rs::fs::{Cgroup, hierarchies};
use nix::fcntl::FlockArg;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::container::{STATE_FILE, State, is_id, lock, unmount_below};

/// What `cleanup` takes: the same directories as `run`.
#[derive(clap::Args)]
pub struct Args {
    /// Where images are kept and extracted
    #[arg(long, value_name = "DIR", default_value = crate::IMAGE_DIR)]
    pub image_dir: PathBuf,
    /// Where each container gets its directory while it runs
    #[arg(long, value_name = "DIR", default_value = crate::CONTAINER_DIR)]
    pub container_dir: PathBuf,
}

/// Removes what dead runs left, prints one line per thing removed (or that
/// there was nothing), and returns the exit status: 0, or 125 on an error.
pub fn run(args: &Args) -> Result<i32> {
    crate::errors::require_root()?;
    let mut removed = Vec::new();
    if args.container_dir.is_dir() {
        let container_dir = crate::paths::resolve(&args.container_dir, "--container-dir")?;
        for entry in fs::read_dir(&container_dir).with_context(|| format!("cannot list {}", container_dir.display()))? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            let id = name.strip_prefix('.').and_then(|rest| rest.strip_suffix(".creating")).unwrap_or(&name);
            if is_id(id) {
                removed.extend(remove_dead(&container_dir.join(&name), id)?);
            }
        }
    }
    if args.image_dir.is_dir() {
        removed.extend(crate::image::sweep(&crate::paths::resolve(&args.image_dir, "--image-dir")?)?);
    }
    if removed.is_empty() {
        println!("nothing to clean up: no dead run left anything");
    }
    for line in removed {
        println!("{line}");
    }
    Ok(0)
}

/// Removes one container's remains when its run is dead, and says what went.
fn remove_dead(dir: &Path, id: &str) -> Result<Vec<String>> {
    // Held until the end: a run cannot come back, but a second `cleanup`
    // running at the same time must not work on the same directory.
    let Ok(_dead) = lock(dir, FlockArg::LockExclusiveNonblock) else {
        return Ok(Vec::new());
    };
    let creating = dir.file_name().is_some_and(|name| name.to_string_lossy().starts_with('.'));
    if !creating && !dir.join(STATE_FILE).exists() {
        // Kept on purpose with --keep: the user removes it.
        return Ok(Vec::new());
    }
    let state = State::read(dir);
    let mut removed = Vec::new();
    removed.extend(remove_cgroup(id)?);
    let mounts = crate::fsutil::mounts_under("self", dir)?;
    unmount_below(dir)?;
    for point in mounts {
        removed.push(format!("container {id}: unmounted {}", point.display()));
    }
    crate::fsutil::remove_tree(dir)?;
    let who = if state.runtime_pid > 0 {
        format!(" (left by {} pid {}, which is gone)", state.program, state.runtime_pid)
    } else {
        String::new()
    };
    removed.push(format!("container {id}: removed {}{who}", dir.display()));
    Ok(removed)
}

/// Kills whatever still runs in the container's cgroup, then removes the
/// cgroup (and the project's parent when it is empty).
fn remove_cgroup(id: &str) -> Result<Vec<String>> {
    let name = format!("{}/{id}", crate::CGROUP_PARENT);
    let cgroup = Cgroup::load_with_specified_controllers(
        hierarchies::auto(),
        &name,
        crate::cgroup::controllers().unwrap_or_default(),
    );
    if !cgroup.exists() {
        return Ok(Vec::new());
    }
    let mut lines = Vec::new();
    for _ in 0..100 {
        let procs = cgroup.procs();
        if procs.is_empty() {
            break;
        }
        for pid in procs {
            // A zombie is already dead: it only waits for its new parent.
            let dead = crate::container::is_dead(pid.pid as u32);
            if !dead && kill(Pid::from_raw(pid.pid as i32), Signal::SIGKILL).is_ok() {
                lines.push(format!("container {id}: killed process {} left in its cgroup", pid.pid));
            }
        }
        sleep(Duration::from_millis(10));
    }
    lines.dedup();
    crate::cgroup::remove(&cgroup)?;
    lines.push(format!("container {id}: removed cgroup {name}"));
    Ok(lines)
}
