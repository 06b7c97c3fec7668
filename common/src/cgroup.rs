//! cgroup plumbing around cgroups-rs: which controllers a container gets,
//! checking that its cgroup can be made with them, finding one of them, and
//! removing a container's cgroup reliably.

use std::path::Path;
use std::thread::sleep;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cgroups_rs::fs::{Cgroup, ControllIdentifier, Controller, Subsystem, hierarchies};

/// The controllers every container's cgroup gets: on cgroup v1 also
/// `devices`, for the device allowlist. cgroup v2 has no devices controller:
/// there the allowlist is an eBPF program (see [`crate::bpf`]).
pub fn controllers() -> Option<Vec<String>> {
    let mut names = vec!["memory", "cpu", "pids"];
    if !hierarchies::is_cgroup2_unified_mode() {
        names.push("devices");
    }
    Some(names.into_iter().map(String::from).collect())
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

/// Fails, in one line that names what is wrong and the fix, when a
/// container's cgroup could not be made or could not hold its limits: a
/// controller the kernel lacks or that is not mounted, or a
/// `docker-from-scratch` parent that is in the way. Checked before the run
/// creates anything; [`check_created`] checks the result too. `cpus` is
/// `--cpus`, which an existing parent with a CPU quota of its own may not
/// allow.
pub fn check_usable(cpus: Option<f64>) -> Result<()> {
    let wanted = controllers().unwrap_or_default();
    let hierarchy = hierarchies::auto();
    if hierarchy.v2() {
        return check_v2(Path::new(hierarchies::UNIFIED_MOUNTPOINT), &wanted);
    }
    // cgroup v1: the kernel must have each controller, and each must be
    // mounted as a hierarchy of its own (cgroups-rs finds them in mountinfo).
    if let Ok(table) = std::fs::read_to_string("/proc/cgroups") {
        for name in &wanted {
            let enabled = table.lines().find_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                (fields.first() == Some(&name.as_str())).then(|| fields.get(3) == Some(&"1"))
            });
            match enabled {
                Some(true) => {}
                Some(false) => bail!(
                    "the {name} cgroup controller is disabled (/proc/cgroups): boot without cgroup_disable={name}"
                ),
                None => bail!(
                    "this kernel has no {name} cgroup controller (not in /proc/cgroups): use a kernel built with it"
                ),
            }
        }
    }
    let parent = Cgroup::load_with_specified_controllers(hierarchy, crate::CGROUP_PARENT, wanted.clone());
    for name in &wanted {
        let Some(subsystem) = parent.subsystems().iter().find(|subsystem| subsystem.controller_name() == *name) else {
            return Err(not_mounted(name));
        };
        let path = subsystem.to_controller().path();
        let hierarchy = path.parent().unwrap_or(path);
        let on_cgroupfs = nix::sys::statfs::statfs(hierarchy)
            .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::CGROUP_SUPER_MAGIC);
        if !on_cgroupfs {
            bail!(
                "{} is not a cgroup filesystem (is something mounted over the {name} hierarchy?): unmount it, or mount the {name} controller there",
                hierarchy.display()
            );
        }
        check_parent_dir(path)?;
        if let Some(cpus) = cpus.filter(|cpus| *cpus > 0.0 && name == "cpu") {
            check_parent_quota(path, cpus)?;
        }
    }
    Ok(())
}

/// cgroup v1 refuses (EINVAL) a CFS quota for a child that is larger, as a
/// share of its period, than its parent's: `--cpus` must fit in the parent.
fn check_parent_quota(parent: &Path, cpus: f64) -> Result<()> {
    let read = |file: &str| std::fs::read_to_string(parent.join(file)).ok()?.trim().parse::<i64>().ok();
    let (Some(quota), Some(period)) = (read("cpu.cfs_quota_us"), read("cpu.cfs_period_us")) else { return Ok(()) };
    let allowed = quota as f64 / period as f64;
    if quota > 0 && period > 0 && cpus > allowed {
        bail!(
            "--cpus {cpus} is more than the cgroup parent {} allows (cpu.cfs_quota_us {quota} per {period}): use at most --cpus {:.2}, or lift its quota (echo -1 > {}/cpu.cfs_quota_us)",
            parent.display(),
            (allowed * 100.0).floor() / 100.0,
            parent.display()
        );
    }
    Ok(())
}

fn not_mounted(name: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "the {name} cgroup controller is not mounted: mount it with `mkdir -p /sys/fs/cgroup/{name} && mount -t cgroup -o {name} cgroup /sys/fs/cgroup/{name}`"
    )
}

/// The project's parent cgroup, when it exists, must be a directory.
fn check_parent_dir(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => bail!("the cgroup parent {} is not a directory: remove it (rm {})", path.display(), path.display()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("cannot stat the cgroup parent {}", path.display())),
    }
}

/// cgroup v2: one tree. The root must offer every controller (a controller
/// that a v1 hierarchy holds is not offered), and an existing parent must
/// pass them on to its children, or be able to: the kernel refuses to
/// enable a controller for the children of a cgroup that has processes of
/// its own (the "no internal processes" rule), with EBUSY.
fn check_v2(root: &Path, wanted: &[String]) -> Result<()> {
    let offered = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    for name in wanted {
        if !offered.split_whitespace().any(|have| have == name) {
            bail!(
                "cgroup v2 at {} offers no {name} controller (cgroup.controllers: {:?}): use a kernel with it, and no cgroup v1 hierarchy holding it",
                root.display(),
                offered.trim()
            );
        }
    }
    let parent = root.join(crate::CGROUP_PARENT);
    check_parent_dir(&parent)?;
    if !parent.exists() {
        return Ok(());
    }
    let passed = std::fs::read_to_string(parent.join("cgroup.subtree_control")).unwrap_or_default();
    let missing: Vec<&str> =
        wanted.iter().map(String::as_str).filter(|name| !passed.split_whitespace().any(|have| have == *name)).collect();
    let busy = !std::fs::read_to_string(parent.join("cgroup.procs")).unwrap_or_default().trim().is_empty();
    if !missing.is_empty() && busy {
        bail!(
            "the cgroup parent {} cannot pass {} to its children while processes are in it (cgroup.subtree_control: {:?}): move them out, or remove it (rmdir {})",
            parent.display(),
            missing.join(", "),
            passed.trim(),
            parent.display()
        );
    }
    Ok(())
}

/// Fails, naming the controller and the fix, when a just-created container
/// cgroup did not get every controller: on v2, cgroups-rs enables them in
/// the parents' cgroup.subtree_control but ignores a refusal, which would
/// leave a cgroup without memory.max and friends.
pub fn check_created(cgroup: &Cgroup) -> Result<()> {
    let wanted = controllers().unwrap_or_default();
    let have: Vec<String> = if cgroup.v2() {
        let path = Path::new(hierarchies::UNIFIED_MOUNTPOINT).join(cgroup.path());
        let file = std::fs::read_to_string(path.join("cgroup.controllers")).unwrap_or_default();
        file.split_whitespace().map(String::from).collect()
    } else {
        cgroup.subsystems().iter().map(|subsystem| subsystem.controller_name()).collect()
    };
    if let Some(name) = wanted.iter().find(|name| !have.contains(name)) {
        if !cgroup.v2() {
            return Err(not_mounted(name));
        }
        let parent = Path::new(hierarchies::UNIFIED_MOUNTPOINT).join(crate::CGROUP_PARENT);
        bail!(
            "the cgroup {} got no {name} controller: its parent does not pass it on; enable it with `echo +{name} > {}/cgroup.subtree_control`, or remove {} (rmdir)",
            cgroup.path(),
            parent.display(),
            parent.display()
        );
    }
    // cgroups-rs made the mkdir(2) calls (and, on v2, enabled the
    // controllers in the parents): say what the kernel now has.
    for subsystem in cgroup.subsystems() {
        let path = subsystem.to_controller().path();
        crate::trace::note(&format!("mkdir {} by cgroups-rs: made", path.display()));
        if cgroup.v2() {
            if let Some(parent) = path.parent() {
                read_back(parent, &["cgroup.subtree_control"]);
            }
            break;
        }
    }
    Ok(())
}

/// cgroup v1: the `tasks` file of each hierarchy of a container's cgroup,
/// open for writing, for the container's first process to join its cgroup
/// itself (see step08's `spawn`); none on cgroup v2. Opened by the runtime,
/// as root: the kernel checks the credentials a cgroup file was opened
/// with, not those of the process that writes it.
pub fn tasks_files(cgroup: &Cgroup) -> Result<Vec<std::fs::File>> {
    if cgroup.v2() {
        return Ok(Vec::new());
    }
    cgroup
        .subsystems()
        .iter()
        .map(|subsystem| crate::sys!(open_for_writing(&subsystem.to_controller().path().join("tasks"))))
        .collect()
}

fn open_for_writing(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).open(path)
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
    // cgroups-rs made the rmdir(2) calls: say which directories are gone.
    for subsystem in cgroup.subsystems() {
        let path = subsystem.to_controller().path();
        let gone = if path.exists() { "still there" } else { "gone" };
        crate::trace::note(&format!("rmdir {} by cgroups-rs: {gone} ({tries} EBUSY retries)", path.display()));
    }
    // The last container out removes the project's parent too, under the
    // lock that creating a cgroup takes, so that it never disappears between
    // another container's mkdir of the parent and of its own cgroup. While
    // other containers run, rmdir fails (EBUSY) and the parent stays.
    // Plain rmdir(2), not cgroups-rs's delete: that one also removes child
    // cgroups, and would take a just-created one of another container.
    let _lock = lock_parent()?;
    remove_dir_everywhere(crate::CGROUP_PARENT);
    Ok(())
}

/// What a failed `Cgroup::new_with_specified_controllers` made is removed:
/// cgroups-rs makes the cgroup's directory in one hierarchy after another
/// and stops at the first that refuses, keeping the ones it made (a
/// read-only pids hierarchy left the memory one behind). Removes `name`
/// wherever it is, then the project's parent wherever it is empty. The
/// caller holds [`lock_parent`], as it did for the mkdir.
pub fn remove_made(name: &str) {
    remove_dir_everywhere(name);
    remove_dir_everywhere(crate::CGROUP_PARENT);
}

/// rmdir(2) of the cgroup `name` in every hierarchy where it is; one that
/// is not empty (EBUSY) stays. Plain rmdir, not cgroups-rs's delete, which
/// also removes child cgroups.
fn remove_dir_everywhere(name: &str) {
    for subsystem in Cgroup::load(hierarchies::auto(), name).subsystems() {
        let path = subsystem.to_controller().path();
        if path.exists() {
            let _ = crate::sys!(std::fs::remove_dir(path));
        }
    }
}

/// `--trace` after cgroups-rs wrote a file: the file as the kernel now
/// shows it, `memory.limit_in_bytes = 67108864 (read back)`. `names` are the
/// file's v1 and v2 names (`memory.limit_in_bytes`, `memory.max`): the one
/// that exists in `dir` is read.
pub fn read_back(dir: &Path, names: &[&str]) {
    if !crate::trace::enabled() {
        return;
    }
    for name in names {
        if let Ok(value) = std::fs::read_to_string(dir.join(name)) {
            let value: Vec<&str> = value.lines().collect();
            crate::trace::note(&format!("{name} = {} (read back)", crate::trace::shorten(&value.join(", "), 150)));
            return;
        }
    }
}

/// [`read_back`] of `name` in every hierarchy of `cgroup` (cgroup.procs:
/// cgroup v1 has one directory per controller).
pub fn read_back_all(cgroup: &Cgroup, name: &str) {
    if !crate::trace::enabled() {
        return;
    }
    for subsystem in cgroup.subsystems() {
        let dir = subsystem.to_controller().path();
        if let Ok(value) = std::fs::read_to_string(dir.join(name)) {
            let value: Vec<&str> = value.lines().collect();
            let controller = subsystem.controller_name();
            crate::trace::note(&format!(
                "{controller}: {name} = {} (read back)",
                crate::trace::shorten(&value.join(", "), 150)
            ));
        }
        if cgroup.v2() {
            return;
        }
    }
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

/// A cgroup v1 hierarchy as a container sees it under /sys/fs/cgroup:
/// `name` is its controllers (`memory`, or `cpu,cpuacct` where the host
/// mounts two together), which is both the directory and the mount option
/// that names the hierarchy; `links` are the controllers that get a symlink
/// to it (`cpu -> cpu,cpuacct`), as runc makes them.
#[derive(Debug, PartialEq, Eq)]
pub struct Hierarchy {
    pub name: String,
    pub links: Vec<String>,
}

/// The cgroup v1 hierarchies that hold a container's cgroup: those of
/// [`controllers`], read from our mountinfo (as the host mounted them) and
/// the kernel's list of controllers, /proc/cgroups. Mounted again in the
/// container's cgroup namespace, each shows that cgroup as its root. The
/// others (blkio, freezer, systemd's) are left out: the container is not in
/// a cgroup of its own there, and would see the host's.
pub fn v1_hierarchies() -> Result<Vec<Hierarchy>> {
    let mountinfo = std::fs::read("/proc/self/mountinfo").context("cannot read /proc/self/mountinfo")?;
    let known = std::fs::read_to_string("/proc/cgroups").context("cannot read /proc/cgroups")?;
    let wanted = controllers().unwrap_or_default();
    let mut found: Vec<Hierarchy> = Vec::new();
    for mount in libmount::mountinfo::Parser::new(&mountinfo) {
        let mount = mount.context("cannot parse /proc/self/mountinfo")?;
        if mount.fstype != std::ffi::OsStr::new("cgroup") {
            continue;
        }
        let name = hierarchy_name(&mount.super_options.to_string_lossy(), &known);
        let links: Vec<String> = name.split(',').filter(|controller| *controller != name).map(String::from).collect();
        let ours = name.split(',').any(|controller| wanted.iter().any(|want| want == controller));
        if ours && !found.iter().any(|hierarchy| hierarchy.name == name) {
            found.push(Hierarchy { name, links });
        }
    }
    Ok(found)
}

/// The controllers among a cgroup v1 mount's super options (`rw,cpu,cpuacct`
/// gives `cpu,cpuacct`): the words that /proc/cgroups (`known`) lists.
fn hierarchy_name(super_options: &str, known: &str) -> String {
    let controllers: Vec<&str> = known.lines().filter_map(|line| line.split_whitespace().next()).collect();
    let mine: Vec<&str> = super_options.split(',').filter(|option| controllers.contains(option)).collect();
    mine.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v1_hierarchy_is_named_by_its_controllers() {
        let known = "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t1\t3\t1\ncpuacct\t1\t3\t1\nmemory\t4\t9\t1\n";
        assert_eq!(hierarchy_name("rw,cpu,cpuacct", known), "cpu,cpuacct");
        assert_eq!(hierarchy_name("rw,memory", known), "memory");
        assert_eq!(hierarchy_name("rw,xattr,name=systemd", known), "");
    }

    #[test]
    fn oom_kill_is_read_from_either_file() {
        assert_eq!(oom_kills("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 1\n"), 1);
        assert_eq!(oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"), 3);
        assert_eq!(oom_kills("oom_kill_disable 0\nunder_oom 0\n"), 0);
    }

    /// What a container's cgroup gets on v2, whatever this host has.
    fn wanted() -> Vec<String> {
        ["memory", "cpu", "pids"].map(String::from).to_vec()
    }

    #[test]
    fn a_v2_root_without_a_controller_is_named() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("cgroup.controllers"), "cpuset cpu io memory\n").unwrap();
        let err = check_v2(root.path(), &wanted()).unwrap_err().to_string();
        assert!(err.contains("offers no pids controller") && err.contains("\"cpuset cpu io memory\""), "{err}");
        std::fs::write(root.path().join("cgroup.controllers"), "cpuset cpu io memory pids\n").unwrap();
        assert!(check_v2(root.path(), &wanted()).is_ok());
    }

    #[test]
    fn a_v2_parent_in_the_way_is_named() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        let parent = root.path().join(crate::CGROUP_PARENT);
        // A file where the parent should be.
        std::fs::write(&parent, "").unwrap();
        let err = check_v2(root.path(), &wanted()).unwrap_err().to_string();
        assert!(err.contains(&format!("the cgroup parent {} is not a directory", parent.display())), "{err}");
        // A parent that does not pass the controllers on, with processes in it.
        std::fs::remove_file(&parent).unwrap();
        std::fs::create_dir(&parent).unwrap();
        std::fs::write(parent.join("cgroup.subtree_control"), "cpu\n").unwrap();
        std::fs::write(parent.join("cgroup.procs"), "1234\n").unwrap();
        let err = check_v2(root.path(), &wanted()).unwrap_err().to_string();
        assert!(err.contains("cannot pass memory, pids to its children while processes are in it"), "{err}");
        // Without processes, cgroups-rs can enable them.
        std::fs::write(parent.join("cgroup.procs"), "").unwrap();
        assert!(check_v2(root.path(), &wanted()).is_ok());
        // Or they are enabled already.
        std::fs::write(parent.join("cgroup.subtree_control"), "cpu memory pids\n").unwrap();
        std::fs::write(parent.join("cgroup.procs"), "1234\n").unwrap();
        assert!(check_v2(root.path(), &wanted()).is_ok());
    }

    #[test]
    fn cpus_above_a_v1_parents_quota_are_named() {
        let parent = tempfile::tempdir().unwrap();
        assert!(check_parent_quota(parent.path(), 1.5).is_ok());
        std::fs::write(parent.path().join("cpu.cfs_quota_us"), "50000\n").unwrap();
        std::fs::write(parent.path().join("cpu.cfs_period_us"), "100000\n").unwrap();
        assert!(check_parent_quota(parent.path(), 0.5).is_ok());
        let err = check_parent_quota(parent.path(), 1.5).unwrap_err().to_string();
        assert!(err.contains("--cpus 1.5 is more than") && err.contains("use at most --cpus 0.50"), "{err}");
        std::fs::write(parent.path().join("cpu.cfs_quota_us"), "-1\n").unwrap();
        assert!(check_parent_quota(parent.path(), 1.5).is_ok());
    }
}
