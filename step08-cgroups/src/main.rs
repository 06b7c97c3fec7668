//! Step 08: cgroups.
//!
//! Namespaces limit what a container sees; control groups limit what it
//! uses. The parent creates a cgroup for the container (cgroups(7); cgroup v1
//! keeps one hierarchy per controller, v2 one tree for all, and the
//! cgroups-rs crate speaks both), writes its memory, CPU and process-count
//! limits, and puts the child in it while the child still waits on the socket,
//! so that nothing the container runs is ever outside it. The child then
//! enters a new cgroup namespace, so its /proc/self/cgroup shows "/". The
//! cgroup is removed when the container ends, or when its start fails. The
//! cgroup also holds a device allowlist: cgroup v1's devices controller, or
//! on v2 an eBPF program (bpf(2)), so that no device node the container
//! makes for itself can be opened.

use std::convert::Infallible;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::path::PathBuf;

use anyhow::Result;
use anyhow::bail;
use caps::CapSet;
use cgroups_rs::CgroupPid;
use cgroups_rs::fs::Cgroup;
use cgroups_rs::fs::Controller;
use cgroups_rs::fs::MaxValue;
use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::devices::DevicesController;
use cgroups_rs::fs::hierarchies;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::pid::PidController;
use clap::Parser;
use clap::Subcommand;
use common::bpf::attach_device_filter;
use common::bpf::load_device_filter;
use common::clone3::clone_into_cgroup;
use common::container::Container;
use common::devices::ALL;
use common::devices::ALLOWED;
use common::devices::DEVICES;
use common::devices::LINKS;
use common::env::close_range_cloexec;
use common::env::execvpe;
use common::ids::IdMap;
use common::ids::UserSpec;
use common::image::Image;
use common::mountapi::mount_flags;
use common::mountapi::mount_setattr_idmap;
use common::mountapi::mount_setattr_readonly;
use common::mountapi::move_mount;
use common::mountapi::open_tree_clone;
use common::mountapi::recv_fd;
use common::mountapi::send_fd;
use common::seccomp::seccomp_set_mode_filter;
use common::security::SecurityOpt;
use common::status;
use common::sys;
use common::tty::tiocsctty;
use nix::mount::MntFlags;
use nix::mount::MsFlags;
use nix::mount::mount;
use nix::mount::umount2;
use nix::pty::openpty;
use nix::sched::CloneFlags;
use nix::sched::clone;
use nix::sched::unshare;
use nix::sys::prctl::set_keepcaps;
use nix::sys::prctl::set_no_new_privs;
use nix::sys::signal::Signal;
use nix::sys::socket::AddressFamily;
use nix::sys::socket::SockFlag;
use nix::sys::socket::SockType;
use nix::sys::socket::socketpair;
use nix::sys::stat::Mode;
use nix::sys::stat::SFlag;
use nix::sys::stat::makedev;
use nix::sys::stat::mknod;
use nix::sys::termios::Termios;
use nix::sys::wait::WaitPidFlag;
use nix::sys::wait::WaitStatus;
use nix::sys::wait::waitpid;
use nix::unistd::ForkResult;
use nix::unistd::Gid;
use nix::unistd::Pid;
use nix::unistd::Uid;
use nix::unistd::chdir;
use nix::unistd::chown;
use nix::unistd::close;
use nix::unistd::dup2_stderr;
use nix::unistd::dup2_stdin;
use nix::unistd::dup2_stdout;
use nix::unistd::pivot_root;
use nix::unistd::setgid;
use nix::unistd::setgroups;
use nix::unistd::sethostname;
use nix::unistd::setsid;
use nix::unistd::setuid;
use nix::unistd::write;

/// Docker from scratch, one Linux primitive at a time.
#[derive(Parser)]
#[command(name = "step08-cgroups", version, after_help = common::cli::EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run COMMAND in a new container
    Run(Box<Args>),
    /// Remove what killed runs left behind (never a live container's)
    Cleanup(common::cleanup::Args),
    /// List the running containers
    Ps(common::ps::Args),
    /// List the images in the store
    Images(common::images::Args),
    /// Remove images, and the layers no other image has
    Rmi(common::images::RmiArgs),
}

#[derive(clap::Args)]
struct Args {
    /// Set an environment variable in the container (repeatable)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE", value_parser = common::env::parse_env)]
    env: Vec<String>,
    /// The image to run: a NAME in --image-dir (NAME.tar), or the PATH of a tarball, docker save archive or OCI layout
    #[arg(short = 'i', long, value_name = "NAME|PATH", default_value = common::DEFAULT_IMAGE)]
    image: String,
    /// Where images are kept and extracted
    #[arg(long, value_name = "DIR", default_value = common::IMAGE_DIR)]
    image_dir: PathBuf,
    /// Where each container gets its directory while it runs
    #[arg(long, value_name = "DIR", default_value = common::CONTAINER_DIR)]
    container_dir: PathBuf,
    /// The container's hostname (default: its id)
    #[arg(long, value_name = "NAME", value_parser = common::cli::parse_hostname)]
    hostname: Option<String>,
    /// Give the container a terminal of its own, relayed to this one (as `docker run -it`)
    #[arg(short = 't', long)]
    tty: bool,
    /// Container uids CONTAINER.. are host uids HOST.. (SIZE of them)
    #[arg(long, value_name = "CONTAINER:HOST:SIZE", default_value = "0:100000:65536", value_parser = common::ids::parse_id_map)]
    uidmap: IdMap,
    /// Container gids CONTAINER.. are host gids HOST.. (SIZE of them)
    #[arg(long, value_name = "CONTAINER:HOST:SIZE", default_value = "0:100000:65536", value_parser = common::ids::parse_id_map)]
    gidmap: IdMap,
    /// "host" runs without a user namespace: root inside is root outside
    #[arg(long, value_name = "MODE", value_parser = ["host"])]
    userns: Option<String>,
    /// Use a chowned copy of the image instead of an idmapped mount
    #[arg(long)]
    no_idmap: bool,
    /// Run the command as this user: a name or UID, and a group or GID (looked up in the image)
    #[arg(short = 'u', long, value_name = "USER[:GROUP]", value_parser = common::ids::parse_user)]
    user: Option<UserSpec>,
    /// Add a capability to Docker's default set (repeatable; ALL for every one)
    #[arg(long, value_name = "NAME", value_parser = common::ids::parse_capability)]
    cap_add: Vec<String>,
    /// Drop a capability from Docker's default set (repeatable; ALL for every one)
    #[arg(long, value_name = "NAME", value_parser = common::ids::parse_capability)]
    cap_drop: Vec<String>,
    /// Docker's security options (repeatable): seccomp=unconfined, no-new-privileges[=true|false]
    #[arg(long, value_name = "OPT", value_parser = common::security::parse_security_opt)]
    security_opt: Vec<SecurityOpt>,
    /// Memory limit (bytes, or with k, m or g: 64m; at least 6m; 0 for no limit)
    #[arg(short = 'm', long, value_name = "SIZE", value_parser = common::cli::parse_memory)]
    memory: Option<i64>,
    /// Memory plus swap limit (needs --memory; -1 for unlimited swap; default twice --memory)
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true, value_parser = common::cli::parse_swap)]
    memory_swap: Option<i64>,
    /// Relative CPU weight against other containers (default 1024)
    #[arg(long, value_name = "SHARES", value_parser = clap::value_parser!(u64).range(2..=262144))]
    cpu_shares: Option<u64>,
    /// How many CPUs' worth of time the container may use (1.5; 0 for no limit)
    #[arg(long, value_name = "CPUS", value_parser = common::cli::parse_cpus)]
    cpus: Option<f64>,
    /// Most processes the container may have at once (0 or -1 for no limit)
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = common::cli::parse_pids_limit)]
    pids_limit: Option<i64>,
    /// Keep the container's directory (upper, work, merged) after it ends
    #[arg(long)]
    keep: bool,
    /// Print each system call of this step, its result and how long it took
    #[arg(long)]
    trace: bool,
    /// Run this instead of the image's Entrypoint ("" for none), as `docker run --entrypoint`
    #[arg(long, value_name = "COMMAND")]
    entrypoint: Option<String>,
    /// The command to run in the container, and its arguments (default: the image's Cmd)
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    command: Vec<String>,
}

fn main() {
    let ended = match common::cli::parse::<Cli>().command {
        Command::Run(args) => {
            common::trace::enable(args.trace);
            run(&args)
        }
        Command::Cleanup(args) => common::cleanup::run(&args),
        Command::Ps(args) => common::ps::run(&args),
        Command::Images(args) => common::images::run(&args),
        Command::Rmi(args) => common::images::rmi(&args),
    };
    match ended {
        Ok(code) => std::process::exit(code),
        Err(err) => common::errors::die(err),
    }
}

fn run(args: &Args) -> Result<i32> {
    common::errors::require_root()?;
    // Bad input is refused before anything is created.
    common::cli::check_container_dir(&args.container_dir)?;
    common::ids::check_user(args.user.as_ref(), args.userns.is_some(), &args.uidmap, &args.gidmap)?;
    common::limits::check_memory(args.memory, args.memory_swap)?;
    common::cgroup::check_usable(args.cpus)?;
    let image = common::image::open(&args.image_dir, &args.image)?;
    // The image's User is the default for --user, as in Docker.
    if args.user.is_none() {
        let user = image.config.user(None)?;
        common::ids::check_user(user.as_ref(), args.userns.is_some(), &args.uidmap, &args.gidmap)?;
    }
    let container = Container::create(&args.container_dir, &args.image)?;
    // The cgroup guard removes the cgroup when the closure ends: after the
    // container ended, or as soon as its start failed.
    let ended = create_cgroup(args, &container).and_then(|cgroup| {
        spawn(args, &container, &image, &cgroup).and_then(|(pid, console)| wait(pid, &container, console))
    });
    // The child's mounts died with its mount namespace; the parent still
    // removes the container's directory, unless asked to keep it.
    if args.keep { container.keep_after(ended) } else { container.remove_after(ended) }
}

/// The container's cgroup; dropping it removes the cgroup.
struct ContainerCgroup(Cgroup);

impl Drop for ContainerCgroup {
    fn drop(&mut self) {
        if let Err(err) = common::cgroup::remove(&self.0) {
            common::errors::print(&err);
        }
    }
}

/// Creates `docker-from-scratch/<id>` with the memory, cpu and pids
/// controllers (and devices, on v1), and writes the limits that were asked
/// for and the device allowlist. On cgroup v2 the controllers are first
/// enabled in each parent's cgroup.subtree_control.
fn create_cgroup(args: &Args, container: &Container) -> Result<ContainerCgroup> {
    let name = format!("{}/{}", common::CGROUP_PARENT, container.id);
    // The last container to end removes the shared parent: not while we mkdir.
    let lock = common::cgroup::lock_parent()?;
    let created =
        sys!(Cgroup::new_with_specified_controllers(hierarchies::auto(), &name, common::cgroup::controllers()));
    if created.is_err() {
        common::cgroup::remove_made(&name);
    }
    drop(lock);
    let cgroup = ContainerCgroup(created?);
    common::cgroup::check_created(&cgroup.0)?;
    let v2 = cgroup.0.v2();
    let memory: &MemController = common::cgroup::controller(&cgroup.0)?;
    // -m 0 is no limit, as in Docker.
    let limit = args.memory.filter(|bytes| *bytes > 0);
    if let Some(bytes) = limit {
        sys!(memory.set_limit(bytes))?;
        common::cgroup::read_back(memory.path(), &["memory.limit_in_bytes", "memory.max"]);
    }
    // Without --memory-swap (or with 0), Docker allows as much swap as memory
    // (where the kernel accounts swap at all), so a machine with swap still
    // OOM-kills. A limit too large to double is no swap limit at all (-1).
    let docker_default =
        limit.map(|bytes| bytes.checked_mul(2).unwrap_or(-1)).filter(|_| common::cgroup::swap_accounted(memory));
    if let (Some(bytes), Some(total)) = (limit, args.memory_swap.filter(|total| *total != 0).or(docker_default)) {
        // check_memory made sure that total is -1 or at least bytes, so
        // total - bytes below is never negative.
        // v1 limits memory+swap together; v2 limits swap alone (as runc does).
        let swap = if total < 0 || !v2 { total } else { total - bytes };
        sys!(memory.set_memswap_limit(swap))?;
        common::cgroup::read_back(memory.path(), &["memory.memsw.limit_in_bytes", "memory.swap.max"]);
    }
    let cpu: &CpuController = common::cgroup::controller(&cgroup.0)?;
    if let Some(shares) = args.cpu_shares {
        // v1 cpu.shares is 2..262144; v2 cpu.weight is 1..10000 (runc's mapping).
        sys!(cpu.set_shares(if v2 { 1 + ((shares - 2) * 9999) / 262142 } else { shares }))?;
        common::cgroup::read_back(cpu.path(), &["cpu.shares", "cpu.weight"]);
    }
    if let Some(cpus) = args.cpus.filter(|cpus| *cpus > 0.0) {
        let period = 100_000;
        sys!(cpu.set_cfs_quota_and_period(Some((cpus * period as f64) as i64), Some(period)))?;
        common::cgroup::read_back(cpu.path(), &["cpu.cfs_quota_us", "cpu.max"]);
        common::cgroup::read_back(cpu.path(), &["cpu.cfs_period_us"]);
    }
    let pids: &PidController = common::cgroup::controller(&cgroup.0)?;
    // --pids-limit 0 and -1 are no limit, as in Docker (a new cgroup has none).
    if let Some(limit) = args.pids_limit.filter(|limit| *limit > 0) {
        sys!(pids.set_pid_max(MaxValue::Value(limit)))?;
        common::cgroup::read_back(pids.path(), &["pids.max"]);
    }
    // A device allowlist (runc's default, common/src/devices.rs): any node
    // may be created, only the container's own devices may be opened. A node
    // it makes itself (without a user namespace it has CAP_MKNOD: /dev/kmsg,
    // a disk) cannot be opened (EPERM). v1 has files for it: deny all, then
    // allow each rule. v2 has no devices controller: an eBPF program attached
    // to the cgroup decides, as runc does.
    if v2 {
        let program = sys!(load_device_filter(ALLOWED))?;
        let dir = sys!(fs::File::open(Path::new(hierarchies::UNIFIED_MOUNTPOINT).join(cgroup.0.path())))?;
        sys!(attach_device_filter(&program, &dir))?;
    } else {
        let devices: &DevicesController = common::cgroup::controller(&cgroup.0)?;
        sys!(devices.deny_device(ALL.kind, ALL.major, ALL.minor, ALL.access))?;
        for rule in ALLOWED {
            sys!(devices.allow_device(rule.kind, rule.major, rule.minor, rule.access))?;
        }
        common::cgroup::read_back(devices.path(), &["devices.list"]);
    }
    Ok(cgroup)
}

/// The child's stack for clone(2); the child only sets up and execs.
const STACK_SIZE: usize = 1024 * 1024;

fn spawn(
    args: &Args,
    container: &Container,
    image: &Image,
    cgroup: &ContainerCgroup,
) -> Result<(Pid, Option<OwnedFd>)> {
    let mut flags = CloneFlags::empty();
    flags |= CloneFlags::CLONE_NEWPID;
    flags |= CloneFlags::CLONE_NEWUTS;
    flags |= CloneFlags::CLONE_NEWIPC;
    flags |= CloneFlags::CLONE_NEWNET;
    if args.userns.is_none() {
        flags |= CloneFlags::CLONE_NEWUSER;
    }
    // The child waits on this socket until the parent has set it up, then
    // receives the image over it: a detached mount per layer that only the
    // child's mount namespace will ever have attached, so a crash leaves no
    // host mount.
    let ready = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?;
    let mut stack = vec![0u8; STACK_SIZE];
    // cgroup v1: the child joins its cgroup itself, before anything else, by
    // writing 0 ("the calling thread") to each hierarchy's `tasks` file,
    // opened here. The kernel moves a thread that moves itself without the
    // global lock that moving a whole process takes (cgroup_threadgroup_rwsem,
    // whose writer waits an RCU grace period: 7-15 ms here, most of a run);
    // the child is one thread, so the thread is the process. On cgroup v2 a
    // thread cannot leave its domain that way: the child is born in its
    // cgroup instead (clone3 below, with the cgroup's directory opened here),
    // as crun does; runc writes the child's pid to cgroup.procs.
    let ContainerCgroup(group) = cgroup;
    let tasks = common::cgroup::tasks_files(group)?;
    let dir = if group.v2() {
        Some(sys!(fs::File::open(Path::new(hierarchies::UNIFIED_MOUNTPOINT).join(group.path())))?)
    } else {
        None
    };
    let join = || -> Result<()> {
        tasks.iter().try_for_each(|file| sys!(write(file, b"0")).map(drop))?;
        common::cgroup::read_back_all(group, "cgroup.procs");
        Ok(())
    };
    let start = || join().and_then(|()| child(args, container, image, &ready));
    // cgroup v2: clone3(2) with CLONE_INTO_CGROUP creates the child in its
    // cgroup, so it never runs elsewhere and is never migrated (moving a
    // process takes the lock described above). Without a stack of its own
    // the child runs on a copy of ours, as after fork. Linux 5.7+: where
    // clone3 is refused (an older kernel, a seccomp filter around us), the
    // child is made by clone(2) and the parent writes its pid to cgroup.procs.
    let born = match &dir {
        // SAFETY: the runtime is single-threaded (no thread has been
        // started), so the child may run any code, as after fork; it only
        // sets up and execs, or exits.
        Some(dir) => match unsafe { sys!(clone_into_cgroup(flags, dir)) } {
            Ok(ForkResult::Child) => status::child_exit(start()),
            Ok(ForkResult::Parent { child }) => Some(child),
            Err(errno) => {
                common::trace::note(&format!("clone3 refused ({errno}): clone(2), then cgroup.procs"));
                None
            }
        },
        None => None,
    };
    let body = || status::child_exit(start());
    let pid = match born {
        Some(pid) => pid,
        // SAFETY: the runtime is single-threaded, and without CLONE_VM the child
        // gets its own copy of memory, as after fork; it only sets up and execs.
        // SIGCHLD makes it an ordinary child for waitpid.
        None => unsafe { sys!(clone(Box::new(body), &mut stack, flags, Some(Signal::SIGCHLD as i32))) }?,
    };
    let joined = |trees| {
        if tasks.is_empty() && born.is_none() {
            sys!(group.add_task_by_tgid(CgroupPid::from(pid.as_raw() as u64)))?;
            common::cgroup::read_back_all(group, "cgroup.procs");
        }
        Ok(trees)
    };
    match map_user_namespace(args, pid, container, image).and_then(joined) {
        // With -t the child sends its terminal back over the socket (see
        // `child`): the parent keeps its end for `wait`.
        Ok(trees) => {
            trees.iter().try_for_each(|tree| sys!(send_fd(&ready.1, tree))).map(|()| (pid, args.tty.then_some(ready.1)))
        }
        Err(err) => {
            // Closing the socket unblocks the child, which gives up.
            drop(ready);
            let _ = waitpid(pid, None::<WaitPidFlag>);
            Err(err)
        }
    }
}

/// Runs in the parent while the child waits: writes the child's id maps,
/// hands the container's directory to its root, and makes the image's
/// mounts for the child, one per layer (bottom first), idmapped so that
/// their files belong to that root too.
fn map_user_namespace(args: &Args, pid: Pid, container: &Container, image: &Image) -> Result<Vec<OwnedFd>> {
    if args.userns.is_some() {
        return image.layers().iter().map(|layer| detached_image(layer, None)).collect();
    }
    // A map may name any host ids because the writer, the parent, has
    // CAP_SETUID and CAP_SETGID where the map's host ids live.
    sys!(fs::write(format!("/proc/{pid}/uid_map"), format!("{}\n", args.uidmap)))?;
    sys!(fs::write(format!("/proc/{pid}/gid_map"), format!("{}\n", args.gidmap)))?;
    let (Some(root_uid), Some(root_gid)) = (args.uidmap.to_host(0), args.gidmap.to_host(0)) else {
        bail!("--uidmap and --gidmap must map container id 0, the container's root");
    };
    common::fsutil::check_reachable(&container.dir, root_uid, root_gid)?;
    sys!(chown(&container.dir, Some(Uid::from_raw(root_uid)), Some(Gid::from_raw(root_gid))))?;
    if !args.no_idmap {
        let userns = sys!(fs::File::open(format!("/proc/{pid}/ns/user")))?;
        match image.layers().iter().map(|layer| detached_image(layer, Some(&userns))).collect() {
            Ok(trees) => {
                common::trace::note("image: idmapped mounts, no copy");
                return Ok(trees);
            }
            Err(err) => common::trace::note(&format!("image: no idmapped mount ({err:#}), using a chowned copy")),
        }
    }
    let copy = common::image::mapped_copy(image, &args.uidmap, &args.gidmap)?;
    common::trace::note(&format!("image: chowned copy {copy:?}"));
    // The container runs on the copy: it stays marked in use until the
    // runtime exits, so a `cleanup` meanwhile leaves it alone.
    let trees = copy.layers().iter().map(|layer| detached_image(layer, None)).collect();
    std::mem::forget(copy);
    trees
}

/// The image as a detached mount (open_tree(2)): attached nowhere yet, and
/// read-only, so no container can change the image that others share.
/// Given the child's user namespace, it is also idmapped: owners are
/// translated through the namespace's maps, so files owned by host root
/// appear owned by the container's root. Linux 5.12+; overlayfs accepts an
/// idmapped layer from 5.19.
fn detached_image(image: &Path, userns: Option<&fs::File>) -> Result<OwnedFd> {
    let tree = sys!(open_tree_clone(image))?;
    sys!(mount_setattr_readonly(&tree))?;
    if let Some(userns) = userns {
        sys!(mount_setattr_idmap(&tree, userns))?;
    }
    Ok(tree)
}

/// Runs in the forked child: becomes the container's command, or returns
/// the reason it could not.
fn child(args: &Args, container: &Container, image: &Image, ready: &(OwnedFd, OwnedFd)) -> Result<Infallible> {
    // Wait for the parent (our end is 0; our copy of its end, 1, must be
    // closed or we would never see the socket close if the parent died).
    sys!(close(ready.1.as_raw_fd()))?;
    let mut trees = Vec::new();
    for _ in image.layers() {
        let Some(tree) = sys!(recv_fd(&ready.0))? else {
            status::quiet_exit(common::EXIT_RUNTIME_ERROR);
        };
        trees.push(tree);
    }
    // Become the namespace's root: uid 0 inside, 100000 on the host.
    sys!(setgid(Gid::from_raw(0)))?;
    sys!(setuid(Uid::from_raw(0)))?;
    // Already in our cgroup: from now on it is the root of our cgroup view.
    sys!(unshare(CloneFlags::CLONE_NEWCGROUP))?;
    // The image's config gives the defaults, as in `docker run`: a command
    // replaces its Cmd (--entrypoint, its Entrypoint), -e adds to its Env.
    let command = image.config.command(args.entrypoint.as_deref(), &args.command)?;
    let argv = common::env::command_line(&command)?;
    // The system calls the command may make: Docker's default seccomp
    // profile (common/seccomp/default.profile) for the capabilities the
    // container keeps, compiled to BPF here, before anything is mounted.
    let seccomp = if common::security::seccomp_unconfined(&args.security_opt) {
        None
    } else {
        Some(common::seccomp::default_profile(&common::ids::capabilities(&args.cap_add, &args.cap_drop)?)?)
    };
    // Already in the new UTS and network namespaces: name this one, and
    // bring up its loopback interface (it starts down).
    let hostname = args.hostname.as_deref().unwrap_or(&container.id);
    sys!(sethostname(hostname))?;
    common::net::loopback_up()?;
    // Docker's two sysctls for a private network namespace, safe because
    // the namespace is the container's own: any port may be bound without
    // CAP_NET_BIND_SERVICE, and any group may ping (ICMP echo sockets)
    // without CAP_NET_RAW. /proc/sys/net shows the network namespace of the
    // process that opens it, so this writes ours, not the host's.
    sys!(std::fs::write("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0"))?;
    // In a user namespace the kernel refuses (EINVAL) a range of groups that
    // the namespace does not map, and Docker leaves this one out there.
    if args.userns.is_some() {
        sys!(std::fs::write("/proc/sys/net/ipv4/ping_group_range", "0 2147483647"))?;
    }
    // A mount namespace of our own, and no propagation in or out of it:
    // MS_REC makes every mount private, not just "/".
    sys!(unshare(CloneFlags::CLONE_NEWNS))?;
    sys!(mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>))?;
    // The layers the parent sent are attached here, in our namespace only:
    // lower/0 is the bottom layer.
    let lower = container.dir.join("lower");
    sys!(fs::create_dir(&lower))?;
    let mut layers = Vec::new();
    for (index, tree) in trees.iter().enumerate() {
        let layer = lower.join(index.to_string());
        sys!(fs::create_dir(&layer))?;
        sys!(move_mount(tree, &layer))?;
        layers.push(layer.display().to_string());
    }
    // The image is the read-only lower layer; this container's writes go
    // to upper (work is overlayfs's scratch space on the same filesystem).
    // MS_NODEV: a device node written into the container is never usable.
    let rootfs = container.dir.join("merged");
    for dir in ["upper", "work", "merged"] {
        sys!(std::fs::create_dir(container.dir.join(dir)))?;
    }
    // The image's layers are the lower dirs, stacked as Docker's overlay2
    // stacks them: `lowerdir=` lists the top layer first.
    layers.reverse();
    let layers = format!(
        "lowerdir={},upperdir={},workdir={}",
        layers.join(":"),
        container.dir.join("upper").display(),
        container.dir.join("work").display()
    );
    // In a user namespace overlayfs may not set the trusted.* xattrs that
    // mark opaque directories (EIO on `rm -r` of an image directory), so it
    // is told to use user.* ones.
    let layers = if args.userns.is_none() { layers + ",userxattr" } else { layers };
    // The upper layer goes when the container ends (unless --keep), so
    // writing it to disk is wasted: `volatile` (Linux 5.10) makes overlayfs
    // skip every sync of it, the one at unmount included, which waited for
    // the disk's writeback and a cache flush.
    let layers = if args.keep { layers } else { layers + ",volatile" };
    sys!(mount(Some("overlay"), &rootfs, Some("overlay"), MsFlags::MS_NODEV, Some(layers.as_str())))?;
    // The image decides what its /proc, /sys and /dev are. A symlink there
    // (to /etc, or to ../../../../host/dir) would send a mount outside the
    // container's root (runc's CVE-2019-16884), so every mount target is
    // looked up inside the root, and refused if it is a symlink.
    let procfs = common::paths::in_rootfs(&rootfs, "/proc")?;
    let sysfs = common::paths::in_rootfs(&rootfs, "/sys")?;
    let dev = common::paths::in_rootfs(&rootfs, "/dev")?;
    // The kernel's views a command expects: processes, devices and sysfs.
    // Nothing there is a program, a setuid file or a device node to use
    // (nosuid, nodev, noexec, as Docker mounts them), and /sys is read-only:
    // its files describe and change the host's kernel (transparent
    // hugepages, drop_caches), not the container's.
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    sys!(mount(Some("proc"), &procfs, Some("proc"), flags, None::<&str>))?;
    sys!(mount(Some("sysfs"), &sysfs, Some("sysfs"), flags | MsFlags::MS_RDONLY, None::<&str>))?;
    sys!(mount(Some("tmpfs"), &dev, Some("tmpfs"), MsFlags::MS_NOSUID, Some("mode=755,size=65536k")))?;
    // The container's own cgroup, read-only, where programs look for their
    // limits: /sys/fs/cgroup, as Docker mounts it. Mounted from inside the
    // cgroup namespace, a hierarchy's root is the container's cgroup: its
    // limits show, the host's other cgroups do not. cgroup v2 is one mount;
    // v1 is a tmpfs holding one mount per hierarchy the container is in.
    let cgroupfs = sysfs.join("fs/cgroup");
    if hierarchies::is_cgroup2_unified_mode() {
        sys!(mount(Some("cgroup"), &cgroupfs, Some("cgroup2"), flags | MsFlags::MS_RDONLY, None::<&str>))?;
    } else {
        sys!(mount(Some("tmpfs"), &cgroupfs, Some("tmpfs"), flags, Some("mode=755")))?;
        for hierarchy in common::cgroup::v1_hierarchies()? {
            let dir = cgroupfs.join(&hierarchy.name);
            sys!(fs::create_dir(&dir))?;
            let options = hierarchy.name.as_str();
            sys!(mount(Some("cgroup"), &dir, Some("cgroup"), flags | MsFlags::MS_RDONLY, Some(options)))?;
            for link in &hierarchy.links {
                sys!(symlink(&hierarchy.name, cgroupfs.join(link)))?;
            }
        }
        let remount = flags | MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        sys!(mount(None::<&str>, &cgroupfs, None::<&str>, remount, None::<&str>))?;
    }
    // The devices every container gets, made by hand: the tmpfs is ours,
    // so the host's /dev (disks and all) never shows up inside. Without a
    // user namespace they are the container's own nodes, as in step 06: a
    // chmod inside changes the container's /dev/null, not the host's.
    for device in DEVICES {
        if args.userns.is_some() {
            let mode = Mode::from_bits_truncate(device.mode);
            sys!(mknod(&dev.join(device.name), SFlag::S_IFCHR, mode, makedev(device.major, device.minor)))?;
            // mknod applies our umask; the devices need their exact modes.
            sys!(std::fs::set_permissions(dev.join(device.name), std::fs::Permissions::from_mode(device.mode)))?;
            continue;
        }
        // A user namespace may not mknod (EPERM), so the host's nodes are
        // bind-mounted, as runc does. A bind mount is the host's node itself,
        // but root inside is uid 100000 on the host and does not own it:
        // chmod and chown fail (EPERM). It is remounted nosuid and noexec
        // (runc leaves them as they are), keeping the flags of the host's
        // /dev, which the kernel locks.
        sys!(fs::File::create(dev.join(device.name)))?;
        let host = Path::new("/dev").join(device.name);
        sys!(mount(Some(&host), &dev.join(device.name), None::<&str>, MsFlags::MS_BIND, None::<&str>))?;
        let kept = sys!(mount_flags(&host))?;
        let remount = kept | MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
        sys!(mount(None::<&str>, &dev.join(device.name), None::<&str>, remount, None::<&str>))?;
    }
    for (name, target) in LINKS {
        sys!(symlink(target, dev.join(name)))?;
    }
    // A private devpts instance: the container's terminals are its own.
    sys!(std::fs::create_dir(dev.join("pts")))?;
    let pts = common::paths::in_rootfs(&rootfs, "/dev/pts")?;
    sys!(mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(common::ids::devpts_options(&args.gidmap, args.userns.is_some()))
    ))?;
    // The IPC namespace's own files: POSIX shared memory (shm_open(3)) in
    // /dev/shm, a tmpfs of 64 MiB as Docker gives by default (--shm-size),
    // and message queues (mq_overview(7)) in /dev/mqueue, whose mqueue
    // filesystem is that of the IPC namespace that mounts it: ours.
    sys!(std::fs::create_dir(dev.join("shm")))?;
    let shm = common::paths::in_rootfs(&rootfs, "/dev/shm")?;
    sys!(mount(
        Some("shm"),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k")
    ))?;
    sys!(std::fs::create_dir(dev.join("mqueue")))?;
    let mqueue = common::paths::in_rootfs(&rootfs, "/dev/mqueue")?;
    sys!(mount(
        Some("mqueue"),
        &mqueue,
        Some("mqueue"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>
    ))?;
    // Docker's read-only paths (/proc/sys and others: common/src/masks.rs)
    // are bound onto themselves, then remounted read-only with the flags
    // the mount had (runc's readonlyPath). Then its masked paths: a file is
    // covered by /dev/null, a directory by an empty read-only tmpfs, so
    // reading them tells nothing (runc's maskPaths). What this kernel does
    // not have is skipped.
    for path in common::masks::READONLY_PATHS {
        let target = common::paths::in_rootfs(&rootfs, path)?;
        if std::fs::symlink_metadata(&target).is_err() {
            continue;
        }
        sys!(mount(Some(&target), &target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>))?;
        let kept = sys!(mount_flags(&target))?;
        let remount = kept | MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        sys!(mount(None::<&str>, &target, None::<&str>, remount, None::<&str>))?;
    }
    for path in common::masks::masked_paths() {
        let target = common::paths::in_rootfs(&rootfs, &path)?;
        match std::fs::symlink_metadata(&target) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Ok(meta) if meta.is_dir() => {
                sys!(mount(Some("tmpfs"), &target, Some("tmpfs"), MsFlags::MS_RDONLY, None::<&str>))?
            }
            _ => sys!(mount(Some(&dev.join("null")), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>))?,
        }
    }
    // The files Docker gives every container (common/src/etcfiles.rs): the
    // hostname, an /etc/hosts that resolves localhost and this hostname, and
    // the host's resolver settings. Each is written in the container's
    // directory and bound over the image's file (made, empty, in the upper
    // layer when the image has none), so the image never changes and the
    // container may still edit its own copy, as in Docker.
    for (path, file) in common::etcfiles::write(&container.dir, hostname)? {
        let target = common::etcfiles::mount_point(&rootfs, path)?;
        sys!(mount(Some(&file), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>))?;
    }
    // Swap the namespace's root: the host's root ends up at /.old-root,
    // then is detached (lazily: busy mounts below it go too) and forgotten.
    let old_root = rootfs.join(".old-root");
    sys!(std::fs::create_dir(&old_root))?;
    sys!(pivot_root(&rootfs, &old_root))?;
    sys!(chdir("/"))?;
    // The image's WorkingDir, made when missing, as Docker does.
    sys!(std::fs::create_dir_all(image.config.working_dir()))?;
    sys!(chdir(image.config.working_dir()))?;
    sys!(umount2("/.old-root", MntFlags::MNT_DETACH))?;
    sys!(std::fs::remove_dir("/.old-root"))?;
    // Who the command runs as: --user (or the image's User, root by
    // default) looked up in the image's /etc/passwd and /etc/group, read
    // now that "/" is the image's, so that no symlink among them can reach
    // the host's files. A name can only be checked against the user
    // namespace's map once it is a number.
    let spec = image.config.user(args.user.as_ref())?.unwrap_or_default();
    let user = spec.resolve(Path::new("/"))?;
    common::ids::check_resolved(&spec, &user, args.userns.is_some(), &args.uidmap, &args.gidmap)?;
    // HOME is the user's (or /), unless the image's Env or -e sets it, as
    // in Docker.
    let env = common::env::container_env(&common::env::with_home(&user.home, &image.config.env(&args.env)))?;
    // The filter goes on before privileges are dropped, as runc does when
    // no_new_privs is off: seccomp(2) then needs CAP_SYS_ADMIN, which root
    // still holds here (in our user namespace, or the host's with
    // --userns=host). Every call from here to exec is one the profile allows
    // (prctl, capset, setgroups, setgid, setuid, execve); no mount after it.
    if let Some(filter) = &seccomp {
        sys!(seccomp_set_mode_filter(filter))?;
    }
    // Privileges, in an order that works for every combination: first the
    // bounding set (a ceiling for everything exec'd later), for each
    // capability this kernel knows; then the user, keeping capabilities
    // across the change (leaving uid 0 would clear them, and setgroups needs
    // CAP_SETGID even when the container drops it); then what the process
    // holds. An exec by a user other than root keeps none of them.
    let keep = common::ids::capabilities(&args.cap_add, &args.cap_drop)?;
    for cap in caps::runtime::thread_all_supported().difference(&keep) {
        sys!(caps::drop(None::<i32>, CapSet::Bounding, *cap))?;
    }
    let groups: Vec<Gid> = user.groups.iter().map(|gid| Gid::from_raw(*gid)).collect();
    sys!(set_keepcaps(true))?;
    sys!(setgroups(&groups))?;
    sys!(setgid(Gid::from_raw(user.gid)))?;
    sys!(setuid(Uid::from_raw(user.uid)))?;
    for set in [CapSet::Effective, CapSet::Permitted, CapSet::Inheritable] {
        sys!(caps::set(None::<i32>, set, &keep))?;
    }
    sys!(caps::clear(None::<i32>, CapSet::Ambient))?;
    // Asked for (as Docker, off by default: real images need `su` and
    // `passwd`), no setuid binary or file capability raises privileges
    // after this; in a user namespace a setuid-root program only ever
    // reaches the container's root.
    if common::security::no_new_privileges(&args.security_opt) {
        sys!(set_no_new_privs())?;
    }
    // A session of its own (setsid(2)): the container leaves the caller's
    // session, and so has no controlling terminal. Its stdin, stdout and
    // stderr may still be the caller's terminal (as with `docker run -i`),
    // but the kernel refuses TIOCSTI, typing into a terminal, on one that is
    // not the caller's controlling terminal, unless it has CAP_SYS_ADMIN in
    // the host's user namespace (ioctl_tty(2)), and /dev/tty opens nothing:
    // what runs inside cannot type commands into the shell that started it.
    sys!(setsid())?;
    if args.tty {
        // -t: a terminal of its own, as large as the caller's, made in the
        // container's /dev/pts so that `tty` can name it. The runtime gets
        // the master and relays it (common::tty); the slave becomes this
        // session's controlling terminal and the command's stdin, stdout and
        // stderr. runc's init does the same over its "console socket".
        let size = common::tty::window_size();
        let terminal = sys!(openpty(&size, None::<&Termios>))?;
        sys!(send_fd(&ready.0, &terminal.master))?;
        sys!(tiocsctty(&terminal.slave))?;
        sys!(dup2_stdin(&terminal.slave))?;
        sys!(dup2_stdout(&terminal.slave))?;
        sys!(dup2_stderr(&terminal.slave))?;
        // The slave stays open as 0, 1 and 2; the master is the runtime's.
        drop(terminal);
    }
    // Only stdin, stdout and stderr cross into the container: an inherited
    // descriptor (on the host's "/", say) would be a way out.
    sys!(close_range_cloexec(3))?;
    // From here on, if the runtime dies, however it dies, so does this process.
    common::signals::die_with_runtime()?;
    // execvpe searches PATH like a shell does, then replaces this process's
    // program with the command; on success it never returns.
    sys!(execvpe(&argv[0], &argv, &env)).map_err(|err| status::exec_failed(&command[0], err))
}

fn wait(pid: Pid, container: &Container, console: Option<OwnedFd>) -> Result<i32> {
    // In a session of its own the container no longer gets the keys that
    // signal (Ctrl-C, Ctrl-\) from the caller's terminal: the runtime, which
    // does, passes them on.
    common::signals::forward_keyboard_signals();
    common::signals::forward_to(pid)?;
    // -t: the child sends its terminal's master once it has one (nothing if
    // it gave up before), and the runtime relays it until the container ends.
    let master = match &console {
        Some(socket) => sys!(recv_fd(socket))?,
        None => None,
    };
    let relay = master.map(common::tty::Relay::start).transpose()?;
    // waitpid also returns when the command stops under ptrace (it may have
    // asked the runtime to trace it): detach, and wait on for its end.
    let status = loop {
        match sys!(waitpid(pid, None::<WaitPidFlag>))? {
            WaitStatus::Stopped(pid, signal) => status::detach(pid, signal)?,
            status => break status,
        }
    };
    // The rest of the container's output, and the caller's terminal as it
    // was, before anything else is printed.
    if let Some(relay) = relay {
        relay.finish();
    }
    Ok(status::report(&format!("container {}", container.id), status))
}
