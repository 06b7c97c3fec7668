//! cgroup plumbing around cgroups-rs: which controllers a container gets,
//! finding one of them, and removing a container's cgroup reliably.

use std::thread::sleep;
use std::time::Duration;

use anyhow::{Context, Result};
use cgroups_rs::fs::{Cgroup, ControllIdentifier, Controller, Subsystem, hierarchies};

/// The controllers every container's cgroup gets.
pub fn controllers() -> Option<Vec<String>> {
    Some(["memory", "cpu", "pids"].map(String::from).to_vec())
}

/// One controller of `cgroup`, or an error naming it.
pub fn controller<'a, T>(cgroup: &'a Cgroup) -> Result<&'a T>
where
    &'a T: From<&'a Subsystem>,
    T: Controller + ControllIdentifier,
{
    cgroup.controller_of::<T>().with_context(|| {
        format!(
            "the cgroup {} has no {:?} controller: is it enabled in /proc/cgroups?",
            cgroup.path(),
            T::controller_type()
        )
    })
}

/// Held while a container's cgroup is created (with its parent, when that
/// is missing) and while the empty parent is removed: an advisory flock(2)
/// on /sys/fs/cgroup itself, so that no lock file is ever left behind.
/// Released when dropped.
pub struct ParentLock(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

pub fn lock_parent() -> Result<ParentLock> {
    let path = "/sys/fs/cgroup";
    let dir = std::fs::File::open(path).with_context(|| format!("cannot open {path} to lock it"))?;
    nix::fcntl::Flock::lock(dir, nix::fcntl::FlockArg::LockExclusive)
        .map(ParentLock)
        .map_err(|(_, errno)| anyhow::Error::new(errno).context(format!("flock({path}, LOCK_EX) failed")))
}

/// Removes a container's cgroup once its processes are gone, then the
/// project's parent cgroup when no other container is in it. The kernel
/// may answer EBUSY for a short while after the last process exited
/// (cgroup v1 frees it asynchronously), so removal is retried for a second.
pub fn remove(cgroup: &Cgroup) -> Result<()> {
    let mut tries = 0;
    while let Err(err) = cgroup.delete() {
        tries += 1;
        if tries == 100 {
            return Err(err).with_context(|| format!("cannot remove the cgroup {}", cgroup.path()));
        }
        sleep(Duration::from_millis(10));
    }
    // The last container out removes the project's parent too, under the
    // lock that creating a cgroup takes, so that it never disappears between
    // another container's mkdir of the parent and of its own cgroup. While
    // other containers run, rmdir fails (EBUSY) and the parent stays.
    // Plain rmdir(2), not cgroups-rs's delete: that one also removes child
    // cgroups, and would take a just-created one of another container.
    let _lock = lock_parent()?;
    let parent = Cgroup::load(hierarchies::auto(), crate::CGROUP_PARENT);
    for subsystem in parent.subsystems() {
        let _ = std::fs::remove_dir(subsystem.to_controller().path());
    }
    Ok(())
}

/// Whether the kernel accounts swap in this memory cgroup: v1 has
/// memory.memsw.* only with swap accounting on; v2 has memory.swap.max.
pub fn swap_accounted(memory: &cgroups_rs::fs::memory::MemController) -> bool {
    let path = memory.path();
    path.join("memory.memsw.limit_in_bytes").exists() || path.join("memory.swap.max").exists()
}

/// The `oom_kill N` count from memory.events (v2) or memory.oom_control
/// (v1): both files say it the same way.
pub fn oom_kills(events: &str) -> u64 {
    events
        .lines()
        .find_map(|line| line.strip_prefix("oom_kill "))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::oom_kills;

    #[test]
    fn oom_kill_is_read_from_either_file() {
        assert_eq!(oom_kills("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 1\n"), 1);
        assert_eq!(oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"), 3);
        assert_eq!(oom_kills("oom_kill_disable 0\nunder_oom 0\n"), 0);
    }
}
