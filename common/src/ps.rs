//! `ps`: the containers running now, from the record each run keeps in its
//! directory, checked against what the kernel shows. It gives exercises and
//! scripts a safe handle on *their* container (`kill -9 $(step09-oom ps
//! --latest --pid)`), where killing by name would hit everyone's.

use std::fs;
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{Context, Result};
use nix::fcntl::FlockArg;

use crate::container::{STATE_FILE, State, is_id, lock};

/// What `ps` takes.
#[derive(clap::Args)]
pub struct Args {
    /// Where each container gets its directory while it runs
    #[arg(long, value_name = "DIR", default_value = crate::CONTAINER_DIR)]
    pub container_dir: PathBuf,
    /// Only the most recently started container
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Print only the ids
    #[arg(short = 'q', long, conflicts_with = "pid")]
    pub quiet: bool,
    /// Print only the host pid of each container's first process
    #[arg(long)]
    pub pid: bool,
}

/// One running container.
struct Running {
    id: String,
    pid: u32,
    state: State,
    command: String,
    started: SystemTime,
}

pub fn run(args: &Args) -> Result<i32> {
    crate::errors::require_root()?;
    let mut running = list(args)?;
    running.sort_by_key(|container| std::cmp::Reverse(container.started));
    if args.latest {
        running.truncate(1);
    }
    if !args.quiet && !args.pid {
        println!("{:<14}{:<9}{:<16}COMMAND", "CONTAINER ID", "PID", "IMAGE");
    }
    for container in running {
        match (args.quiet, args.pid) {
            (true, _) => println!("{}", container.id),
            (_, true) => println!("{}", container.pid),
            _ => println!("{:<14}{:<9}{:<16}{}", container.id, container.pid, container.state.image, container.command),
        }
    }
    Ok(0)
}

/// The containers whose run is alive (it holds its directory's lock) and
/// whose first process exists.
fn list(args: &Args) -> Result<Vec<Running>> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(&args.container_dir) else { return Ok(found) };
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", args.container_dir.display()))?;
        let id = entry.file_name().to_string_lossy().into_owned();
        let dir = entry.path();
        if !is_id(&id) || lock(&dir, FlockArg::LockSharedNonblock).is_ok() {
            continue;
        }
        let state = State::read(&dir);
        // The container's first process is the runtime's child, as the
        // kernel lists it; the record only names the runtime.
        let children =
            fs::read_to_string(format!("/proc/{0}/task/{0}/children", state.runtime_pid)).unwrap_or_default();
        let Some(pid) = children.split_whitespace().next().and_then(|pid| pid.parse().ok()) else { continue };
        let started =
            fs::metadata(dir.join(STATE_FILE)).and_then(|meta| meta.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
        // What it runs now, as the kernel says (it may have exec'd since).
        let command = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let command = String::from_utf8_lossy(&command).trim_end_matches('\0').replace('\0', " ");
        found.push(Running { id, pid, state, command, started });
    }
    Ok(found)
}
