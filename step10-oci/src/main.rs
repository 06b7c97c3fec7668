//! Step 10: the OCI runtime interface.
//!
//! Until now the runtime did everything in one call: `run` made the
//! container, ran the command and cleaned up. A container engine (podman,
//! containerd, CRI-O, Docker) wants the steps apart, as the OCI runtime spec
//! defines them: `create` makes the container from a bundle (a root
//! filesystem and a config.json with what step09 took as options) and stops
//! its first process just before exec, on a fifo in the state directory;
//! `start` opens the fifo's other end, and the process execs. Between the
//! two, the engine has a process it can see, a pid, namespaces, a cgroup
//! and stdio that are already the container's: it sets up the network,
//! starts its log and exit watcher (conmon, containerd's shim), and only
//! then lets the command run, so that not one byte of output and no early
//! exit is missed. `run` still works as in step09; config.json is mapped
//! onto the same machinery in `oci.rs`.

mod lifecycle;
mod oci;

use std::convert::Infallible;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::path::PathBuf;

use anyhow::Context;
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
use common::limits::Ulimit;
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
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::fcntl::open;
use nix::mount::MntFlags;
use nix::mount::MsFlags;
use nix::mount::mount;
use nix::mount::umount2;
use nix::pty::openpty;
use nix::sched::CloneFlags;
use nix::sched::clone;
use nix::sched::setns;
use nix::sched::unshare;
use nix::sys::prctl::set_keepcaps;
use nix::sys::prctl::set_no_new_privs;
use nix::sys::resource::setrlimit;
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
use nix::unistd::mkfifo;
use nix::unistd::pivot_root;
use nix::unistd::setgid;
use nix::unistd::setgroups;
use nix::unistd::sethostname;
use nix::unistd::setsid;
use nix::unistd::setuid;
use nix::unistd::write;
use oci_spec::runtime::LinuxNamespaceType;

/// Docker from scratch, one Linux primitive at a time.
#[derive(Parser)]
#[command(name = "step10-oci", version, long_version = LONG_VERSION, after_help = common::cli::EXIT_CODES)]
struct Cli {
    /// Where the OCI commands keep each container's state (as runc's --root)
    #[arg(long, value_name = "DIR", default_value = oci::STATE_ROOT)]
    root: PathBuf,
    /// Also write an OCI command's error to FILE, where the engine reads it
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// How --log is written
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Use systemd for cgroups: refused, this runtime writes cgroupfs itself
    #[arg(long)]
    systemd_cgroup: bool,
    /// Accepted, as runc's callers may pass it; --trace is this runtime's
    #[arg(long, hide = true)]
    debug: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run COMMAND in a new container
    Run(Box<Args>),
    /// Remove what killed runs left behind (never a live container's)
    Cleanup(common::cleanup::Args),
    /// List the running containers; with an ID, the processes of an OCI container
    Ps(PsArgs),
    /// List the images in the store
    Images(common::images::Args),
    /// Remove images, and the layers no other image has
    Rmi(common::images::RmiArgs),
    /// OCI: make a bundle's container, its process stopped just before exec
    Create(CreateArgs),
    /// OCI: let a created container's process exec
    Start(IdArgs),
    /// OCI: print a container's state as JSON
    State(IdArgs),
    /// OCI: send a signal to a container (TERM, SIGKILL, 9)
    Kill(KillArgs),
    /// OCI: remove a stopped container (--force: a running one too)
    Delete(DeleteArgs),
    /// OCI: run another process in a running container
    Exec(ExecArgs),
    /// OCI: freeze every process of a container (the freezer cgroup)
    Pause(IdArgs),
    /// OCI: thaw a paused container
    Resume(IdArgs),
    /// OCI: write a default config.json into a bundle (as `runc spec`)
    Spec(SpecArgs),
}

/// `--version`, with the spec version as runc prints it (engines show it).
const LONG_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\nspec: 1.0.2");

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
    /// Never OOM-kill the container: it waits for memory instead (cgroup v1 only)
    #[arg(long)]
    oom_kill_disable: bool,
    /// Make the OOM killer prefer (up to 1000) or spare (down to -1000) the container
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = clap::value_parser!(i32).range(-1000..=1000))]
    oom_score_adj: Option<i32>,
    /// Set a resource limit with setrlimit(2), like `ulimit` (repeatable; as=64m, nofile=1024:2048)
    #[arg(long, value_name = "NAME=SOFT[:HARD]", value_parser = common::limits::parse_ulimit)]
    ulimit: Vec<Ulimit>,
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

#[derive(clap::Args)]
struct PsArgs {
    #[command(flatten)]
    list: common::ps::Args,
    /// With an ID: `table` or `json` (a list of host pids, as runc prints)
    #[arg(short = 'f', long, value_name = "FORMAT", default_value = "table", value_parser = ["table", "json"])]
    format: String,
    /// An OCI container's id: list its processes
    id: Option<String>,
}

#[derive(clap::Args)]
struct CreateArgs {
    /// The bundle: a directory with config.json and the root filesystem
    #[arg(short = 'b', long, value_name = "DIR", default_value = ".")]
    bundle: PathBuf,
    /// Write the host pid of the container's process to FILE
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// With process.terminal: send the terminal's master to this Unix socket
    #[arg(long, value_name = "SOCKET")]
    console_socket: Option<PathBuf>,
    /// Pass N descriptors after stderr (3, 4, ...) on to the container
    #[arg(long, value_name = "N", default_value_t = 0)]
    preserve_fds: u32,
    /// Accepted, as runc's callers may pass it (pivot_root is always used)
    #[arg(long, hide = true)]
    no_pivot: bool,
    /// Accepted, as runc's callers may pass it (no session keyring is made)
    #[arg(long, hide = true)]
    no_new_keyring: bool,
    /// The container's id, unique under --root
    id: String,
}

#[derive(clap::Args)]
struct SpecArgs {
    /// The bundle directory to write config.json into (its root: ./rootfs)
    #[arg(short = 'b', long, value_name = "DIR", default_value = ".")]
    bundle: PathBuf,
    /// The container's command and its arguments (default: sh)
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    command: Vec<String>,
}

#[derive(clap::Args)]
struct IdArgs {
    /// The container's id
    id: String,
}

#[derive(clap::Args)]
struct KillArgs {
    /// Signal every process of the container, not only its first
    #[arg(short = 'a', long)]
    all: bool,
    /// The container's id
    id: String,
    /// The signal: a number (15) or a name (TERM, SIGKILL)
    #[arg(default_value = "TERM", value_parser = oci::parse_signal)]
    signal: Signal,
}

#[derive(clap::Args)]
struct DeleteArgs {
    /// Kill the container first if it still runs
    #[arg(short = 'f', long)]
    force: bool,
    /// The container's id
    id: String,
}

#[derive(clap::Args)]
struct ExecArgs {
    /// The process to run, as config.json's `process` (a JSON file)
    #[arg(short = 'p', long, value_name = "FILE")]
    process: Option<PathBuf>,
    /// Write the host pid of the new process to FILE
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Return once the process runs, instead of waiting for it
    #[arg(short = 'd', long)]
    detach: bool,
    /// Give the process a terminal (also process.terminal in --process)
    #[arg(short = 't', long)]
    tty: bool,
    /// With a terminal: send its master to this Unix socket
    #[arg(long, value_name = "SOCKET")]
    console_socket: Option<PathBuf>,
    /// Pass N descriptors after stderr (3, 4, ...) on to the process
    #[arg(long, value_name = "N", default_value_t = 0)]
    preserve_fds: u32,
    /// The container's id
    id: String,
    /// Without --process: the command to run, and its arguments
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    command: Vec<String>,
}

fn main() {
    let cli = common::cli::parse::<Cli>();
    let runtime = oci::Runtime { root: cli.root.clone(), log: cli.log.clone(), json: cli.log_format == "json" };
    let ended = match cli.command {
        Command::Run(args) => {
            common::trace::enable(args.trace);
            run(&args)
        }
        Command::Cleanup(args) => common::cleanup::run(&args),
        Command::Ps(args) if args.id.is_none() => common::ps::run(&args.list),
        Command::Images(args) => common::images::run(&args),
        Command::Rmi(args) => common::images::rmi(&args),
        command => Ok({
            // The OCI commands: failures are one line, in --log too.
            let ended = if cli.systemd_cgroup {
                Err(anyhow::anyhow!(
                    "--systemd-cgroup: this runtime writes its cgroups itself; configure the engine with cgroup_manager = \"cgroupfs\""
                ))
            } else {
                oci_command(&runtime, command)
            };
            ended.unwrap_or_else(|err| runtime.fail(&err))
        }),
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
    common::limits::check_ulimits(&args.ulimit)?;
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
        spawn(args, &container, &image, &cgroup).and_then(|(pid, console)| wait(pid, &container, console, &cgroup))
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
    if args.oom_kill_disable && v2 {
        bail!(
            "--oom-kill-disable needs cgroup v1: cgroup v2 has no switch to turn the OOM killer off; raise --memory instead"
        );
    } else if args.oom_kill_disable {
        sys!(memory.disable_oom_killer())?;
        common::cgroup::read_back(memory.path(), &["memory.oom_control"]);
    }
    if v2 {
        // One OOM kill takes the whole container, as a container is one unit.
        sys!(fs::write(memory.path().join("memory.oom.group"), "1"))?;
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
    // 0 unless asked otherwise, as Docker: never the runtime's own score,
    // which the container would otherwise inherit.
    let score = args.oom_score_adj.unwrap_or(0);
    let adjusted = |trees| sys!(fs::write(format!("/proc/{pid}/oom_score_adj"), score.to_string())).map(|()| trees);
    match map_user_namespace(args, pid, container, image).and_then(joined).and_then(adjusted) {
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
    for limit in &args.ulimit {
        sys!(setrlimit(limit.resource, limit.soft, limit.hard))?;
    }
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

fn wait(pid: Pid, container: &Container, console: Option<OwnedFd>, cgroup: &ContainerCgroup) -> Result<i32> {
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
    // A SIGKILL is an OOM kill only if the cgroup counted one: read the
    // count now, the cgroup is removed right after.
    let memory: &MemController = common::cgroup::controller(&cgroup.0)?;
    let events = if cgroup.0.v2() { "memory.events" } else { "memory.oom_control" };
    let kills = common::cgroup::oom_kills(&sys!(fs::read_to_string(memory.path().join(events)))?);
    if kills > 0 && status::code(status) == 128 + Signal::SIGKILL as i32 {
        let usage = memory.memory_stat();
        return Ok(status::report_oom(
            &format!("container {}", container.id),
            usage.limit_in_bytes,
            usage.max_usage_in_bytes,
        ));
    }
    if kills > 0 {
        common::cli::say(&format!("container {}: the OOM killer killed {kills} of its processes", container.id));
    }
    Ok(status::report(&format!("container {}", container.id), status))
}

/// The OCI commands, as conmon and containerd's shim call runc.
fn oci_command(runtime: &oci::Runtime, command: Command) -> Result<i32> {
    common::errors::require_root()?;
    match command {
        Command::Create(args) => create(runtime, &args),
        Command::Start(args) => start(runtime, &args.id),
        Command::State(args) => {
            let state = runtime.load(&args.id)?;
            println!("{}", serde_json::to_string_pretty(&state.to_json())?);
            Ok(0)
        }
        Command::Kill(args) => runtime.load(&args.id)?.kill(args.signal, args.all).map(|()| 0),
        Command::Delete(args) => lifecycle::delete(runtime, &args),
        Command::Exec(args) => lifecycle::exec(runtime, &args),
        Command::Pause(args) => lifecycle::pause(runtime, &args.id, true),
        Command::Resume(args) => lifecycle::pause(runtime, &args.id, false),
        Command::Spec(args) => oci::write_default_spec(&args.bundle, &args.command).map(|()| 0),
        Command::Ps(args) => {
            let state = runtime.load(args.id.as_deref().unwrap_or_default())?;
            let pids = state.pids();
            if args.format == "json" {
                println!("{}", serde_json::to_string(&pids)?);
            } else {
                println!("PID");
                pids.iter().for_each(|pid| println!("{pid}"));
            }
            Ok(0)
        }
        Command::Run(_) | Command::Cleanup(_) | Command::Images(_) | Command::Rmi(_) => bail!("not an OCI command"),
    }
}

/// `create`: all that `run` does up to the exec, then a stop. The
/// container's first process (its "init") is cloned by this process, so it
/// stays a descendant of the caller (conmon and containerd's shim are child
/// subreapers, PR_SET_CHILD_SUBREAPER), which reaps it and reads its exit
/// status; `create` itself returns as soon as init waits on the exec fifo.
fn create(runtime: &oci::Runtime, args: &CreateArgs) -> Result<i32> {
    // Bad input is refused before anything is created.
    let bundle = oci::Bundle::load(&args.bundle)?;
    let cgroup_path = bundle.cgroup_path(&args.id)?;
    let process = bundle.spec.process().as_ref().context("config.json has no process")?;
    if process.terminal() == Some(true) && args.console_socket.is_none() {
        bail!("process.terminal is true but no --console-socket was given: the terminal's master would go nowhere");
    }
    let dir = runtime.make_dir(&args.id)?;
    let cgroup_owned = oci::first_missing(&cgroup_path);
    let made = make_container(&bundle, args, &dir, &cgroup_path, &cgroup_owned);
    let pid = match made {
        Ok(pid) => pid,
        Err(err) => {
            let _ = fs::remove_dir_all(&dir);
            return Err(err);
        }
    };
    let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let state = oci::State {
        id: args.id.clone(),
        dir,
        pid,
        start_time: common::container::start_time(pid).unwrap_or_default(),
        bundle: bundle.dir.clone(),
        cgroup: cgroup_path,
        cgroup_owned,
        created: oci::rfc3339(created.as_secs()),
        annotations: bundle.spec.annotations().clone().unwrap_or_default().into_iter().collect(),
        hooks: bundle.spec.hooks().clone(),
        seccomp: bundle.spec.linux().as_ref().and_then(|linux| linux.seccomp().clone()),
    };
    // The prestart and createRuntime hooks run on the host once the
    // container exists (runc runs them before pivot_root; here init is
    // already waiting on the fifo): an engine's network setup, say.
    let hooks = state.hooks.clone().unwrap_or_default();
    let recorded = state
        .save()
        .and_then(|()| oci::run_hooks("prestart", hooks.prestart().as_ref(), &state.to_json()))
        .and_then(|()| oci::run_hooks("createRuntime", hooks.create_runtime().as_ref(), &state.to_json()))
        .and_then(|()| match &args.pid_file {
            Some(file) => oci::write_pid_file(file, pid),
            None => Ok(()),
        });
    if let Err(err) = recorded {
        let _ = state.kill(Signal::SIGKILL, true);
        let _ = state.remove();
        return Err(err);
    }
    Ok(0)
}

/// The exec fifo, the cgroup and init; on failure, what was made is removed.
fn make_container(bundle: &oci::Bundle, args: &CreateArgs, dir: &Path, cgroup_path: &str, owned: &str) -> Result<u32> {
    // The rendezvous of `create` and `start`, two processes that never meet
    // otherwise: a named pipe (fifo(7)). Opening it for writing blocks until
    // someone opens it for reading, so init, stopped in that open(2), is
    // let go by `start` opening the other end. runc's exec.fifo. Mode 0622:
    // the container's user, whoever it is, may open it for writing.
    let fifo = dir.join(oci::EXEC_FIFO);
    sys!(mkfifo(&fifo, Mode::from_bits_truncate(0o622)))?;
    sys!(fs::set_permissions(&fifo, fs::Permissions::from_mode(0o622)))?;
    let cgroup = oci::create_cgroup(bundle, cgroup_path, owned)?;
    let spawned = oci_spawn(bundle, args, &fifo, &cgroup, cgroup_path);
    if spawned.is_err() {
        let _ = oci::remove_cgroup(&cgroup, owned);
    }
    spawned
}

/// The namespace flag of each kind, for setns(2) and clone(2).
fn namespace_flag(kind: LinuxNamespaceType) -> CloneFlags {
    match kind {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::empty(),
    }
}

/// step09's `spawn`, driven by config.json: clone(2) with the namespaces
/// the bundle asks for, ids mapped, the cgroup joined and the OOM score
/// set while the child waits; then, unlike `run`, no wait for the end:
/// `create` waits only until init says it is ready, stopped before exec.
fn oci_spawn(bundle: &oci::Bundle, args: &CreateArgs, fifo: &Path, cgroup: &Cgroup, cgroup_path: &str) -> Result<u32> {
    // Existing namespaces (a `path`, such as the network namespace an
    // engine set up) are joined here, before the clone, so that init starts
    // in them: setns(2). The user and mount namespaces are joined by init
    // itself, since this process still needs the host's view and rights.
    let mut flags = CloneFlags::empty();
    for (kind, path) in bundle.namespaces() {
        match path {
            Some(_) if matches!(kind, LinuxNamespaceType::User | LinuxNamespaceType::Mount) => {}
            Some(path) => {
                let file = sys!(fs::File::open(&path))?;
                sys!(setns(&file, namespace_flag(kind)))?;
            }
            // New ones are made by the clone, as in step09; mount and
            // cgroup namespaces later by init (unshare), as in step09.
            None if matches!(kind, LinuxNamespaceType::Mount | LinuxNamespaceType::Cgroup) => {}
            None => flags |= namespace_flag(kind),
        }
    }
    // With process.terminal, init sends the terminal's master back here,
    // and it goes on to the engine's console socket (SCM_RIGHTS).
    let console = match &args.console_socket {
        Some(path) => Some(
            std::os::unix::net::UnixStream::connect(path)
                .with_context(|| format!("connect({}) failed: the --console-socket", path.display()))?,
        ),
        None => None,
    };
    // init starts in front of the fifo: an O_PATH descriptor, which it
    // reopens for writing through /proc/self/fd once inside the container,
    // where the state directory's path is no longer visible.
    let exec_fifo = sys!(open(fifo, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()))?;
    let (init_end, create_end) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?;
    let mut stack = vec![0u8; STACK_SIZE];
    // On cgroup v1 init joins its cgroup itself, first thing, and on v2 it
    // is born in it, as in `spawn`.
    let tasks = common::cgroup::tasks_files(cgroup)?;
    let dir = if cgroup.v2() {
        Some(sys!(fs::File::open(Path::new(hierarchies::UNIFIED_MOUNTPOINT).join(cgroup.path())))?)
    } else {
        None
    };
    let join = || -> Result<()> {
        tasks.iter().try_for_each(|file| sys!(write(file, b"0")).map(drop))?;
        common::cgroup::read_back_all(cgroup, "cgroup.procs");
        Ok(())
    };
    let start = || join().and_then(|()| oci_child(bundle, args, &exec_fifo, &init_end, &create_end, cgroup_path));
    let born = match &dir {
        // SAFETY: as in `spawn`: single-threaded, the child sets up and execs.
        Some(dir) => match unsafe { sys!(clone_into_cgroup(flags, dir)) } {
            Ok(ForkResult::Child) => oci_child_exit(start(), &init_end),
            Ok(ForkResult::Parent { child }) => Some(child),
            Err(errno) => {
                common::trace::note(&format!("clone3 refused ({errno}): clone(2), then cgroup.procs"));
                None
            }
        },
        None => None,
    };
    let body = || oci_child_exit(start(), &init_end);
    let pid = match born {
        Some(pid) => pid,
        // SAFETY: the runtime is single-threaded, and without CLONE_VM the child
        // gets its own copy of memory, as after fork; it only sets up and execs.
        None => unsafe { sys!(clone(Box::new(body), &mut stack, flags, Some(Signal::SIGCHLD as i32))) }?,
    };
    drop(init_end);
    let handed = hand_over(bundle, pid, cgroup, born.is_some(), &create_end, console.as_ref(), flags);
    if handed.is_err() {
        // Closing the socket unblocks the child, which gives up.
        drop(create_end);
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None::<WaitPidFlag>);
    }
    handed.map(|()| pid.as_raw() as u32)
}

/// What `create` does while init waits: maps its ids, puts it in the
/// cgroup, sets its OOM score, lets it go, then waits for "ready" (or its
/// terminal's master, or the reason it failed).
fn hand_over(
    bundle: &oci::Bundle,
    pid: Pid,
    cgroup: &Cgroup,
    born_in_cgroup: bool,
    socket: &OwnedFd,
    console: Option<&std::os::unix::net::UnixStream>,
    flags: CloneFlags,
) -> Result<()> {
    let linux = bundle.spec.linux().clone().unwrap_or_default();
    if flags.contains(CloneFlags::CLONE_NEWUSER) {
        let lines = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
            maps.iter()
                .flatten()
                .map(|map| format!("{} {} {}\n", map.container_id(), map.host_id(), map.size()))
                .collect::<String>()
        };
        sys!(fs::write(format!("/proc/{pid}/uid_map"), lines(linux.uid_mappings())))?;
        sys!(fs::write(format!("/proc/{pid}/gid_map"), lines(linux.gid_mappings())))?;
    }
    // cgroup v2: init cannot join by itself (see `spawn`); unless clone3
    // made it in its cgroup, it is moved there now.
    if cgroup.v2() && !born_in_cgroup {
        sys!(cgroup.add_task_by_tgid(CgroupPid::from(pid.as_raw() as u64)))?;
        common::cgroup::read_back_all(cgroup, "cgroup.procs");
    }
    if let Some(score) = bundle.spec.process().as_ref().and_then(|process| process.oom_score_adj()) {
        sys!(fs::write(format!("/proc/{pid}/oom_score_adj"), score.to_string()))?;
    }
    sys!(oci::send_message(socket, b"go"))?;
    loop {
        let (bytes, fd) = sys!(oci::recv_message(socket))?;
        if let Some(master) = fd {
            let console = console.context("init sent a terminal but there is no --console-socket")?;
            sys!(send_fd(console, &master))?;
            continue;
        }
        match bytes.split_first() {
            Some((b'r', _)) => return Ok(()),
            Some((b'e', reason)) => bail!("{}", String::from_utf8_lossy(reason)),
            _ => bail!("the container's process ended before it was ready (see its stderr)"),
        }
    }
}

/// The end of init when it did not exec: the reason goes to `create`,
/// which reports it as its own one line; if `create` is gone already (the
/// exec itself failed, after `start`), it goes to the container's stderr.
fn oci_child_exit(result: Result<Infallible>, socket: &OwnedFd) -> ! {
    let err = match result {
        Ok(never) => match never {},
        Err(err) => err,
    };
    if oci::send_message(socket, format!("e{err:#}").as_bytes()).is_ok() {
        status::quiet_exit(common::EXIT_RUNTIME_ERROR);
    }
    status::child_exit(Err(err))
}

/// The container's init: step09's `child`, with every value from
/// config.json, ending in front of the exec fifo instead of at exec.
fn oci_child(
    bundle: &oci::Bundle,
    args: &CreateArgs,
    exec_fifo: &OwnedFd,
    socket: &OwnedFd,
    create_end: &OwnedFd,
    cgroup_path: &str,
) -> Result<Infallible> {
    // Wait for `create` (our copy of its end must be closed, or we would
    // never see the socket close if it died).
    sys!(close(create_end.as_raw_fd()))?;
    let mut go = [0u8; 2];
    if sys!(nix::unistd::read(socket, &mut go))? == 0 {
        status::quiet_exit(common::EXIT_RUNTIME_ERROR);
    }
    let spec = &bundle.spec;
    let process = spec.process().as_ref().context("config.json has no process")?;
    let linux = spec.linux().clone().unwrap_or_default();
    let userns = bundle.namespace(LinuxNamespaceType::User);
    if let Some(Some(path)) = &userns {
        let file = sys!(fs::File::open(path))?;
        sys!(setns(&file, CloneFlags::CLONE_NEWUSER))?;
    }
    // Become the namespace's root, as in step09.
    if userns.is_some() {
        sys!(setgid(Gid::from_raw(0)))?;
        sys!(setuid(Uid::from_raw(0)))?;
    }
    if let Some(Some(path)) = bundle.namespace(LinuxNamespaceType::Mount) {
        let file = sys!(fs::File::open(&path))?;
        sys!(setns(&file, CloneFlags::CLONE_NEWNS))?;
    }
    // Already in our cgroup: from now on it is the root of our cgroup view.
    if bundle.namespace(LinuxNamespaceType::Cgroup) == Some(None) {
        sys!(unshare(CloneFlags::CLONE_NEWCGROUP))?;
    }
    let argv = common::env::command_line(process.args().as_deref().unwrap_or_default())?;
    let env = common::env::command_line(process.env().as_deref().unwrap_or_default())?;
    // The bundle's seccomp profile, compiled before anything is mounted.
    let seccomp = linux.seccomp().as_ref().map(oci::seccomp_filter).transpose()?;
    if bundle.namespace(LinuxNamespaceType::Uts) == Some(None)
        && let Some(hostname) = spec.hostname()
    {
        sys!(sethostname(hostname))?;
    }
    if bundle.namespace(LinuxNamespaceType::Network) == Some(None) {
        common::net::loopback_up()?;
    }
    if bundle.namespace(LinuxNamespaceType::Mount) == Some(None) {
        // A mount namespace of our own; nothing propagates out of it
        // (rootfsPropagation, runc's default rslave: host mounts still come in).
        sys!(unshare(CloneFlags::CLONE_NEWNS))?;
        let propagation = match linux.rootfs_propagation().as_deref() {
            Some("private" | "rprivate") => MsFlags::MS_PRIVATE,
            Some("shared" | "rshared") => MsFlags::MS_SHARED,
            Some("unbindable" | "runbindable") => MsFlags::MS_UNBINDABLE,
            _ => MsFlags::MS_SLAVE,
        };
        sys!(mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | propagation, None::<&str>))?;
        // The engine made the root filesystem (podman's overlay, containerd's
        // snapshot): it is bound onto itself, as pivot_root needs a mount point.
        let rootfs = bundle.rootfs()?;
        sys!(mount(Some(&rootfs), &rootfs, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>))?;
        // pivot_root(2) refuses (EINVAL) a new root, or a parent of it, that
        // is shared (rootfsPropagation "shared"): both are made private, as
        // runc's rootfsParentMountPrivate does.
        for point in [oci::mount_point_of(rootfs.parent().unwrap_or(&rootfs))?, rootfs.clone()] {
            sys!(mount(None::<&str>, &point, None::<&str>, MsFlags::MS_PRIVATE, None::<&str>))?;
        }
        oci::mount_all(bundle, &rootfs, cgroup_path)?;
        oci::make_devices(bundle, &rootfs, userns.is_some())?;
        // pivot_root(".", "."), runc's way: no directory for the old root
        // inside a root filesystem that belongs to the engine; the old root
        // ends up on top of the new one, and is detached from there.
        sys!(chdir(&rootfs))?;
        sys!(pivot_root(".", "."))?;
        sys!(umount2(".", MntFlags::MNT_DETACH))?;
        sys!(chdir("/"))?;
        oci::protect_paths(bundle)?;
    }
    let cwd = process.cwd();
    if fs::metadata(cwd).is_err() {
        sys!(fs::create_dir_all(cwd))?;
    }
    sys!(chdir(cwd))?;
    // Only stdin, stdout, stderr (and --preserve-fds more) cross into the
    // container; marked before the seccomp filter, which may not allow it.
    sys!(close_range_cloexec(3 + args.preserve_fds))?;
    become_process(process, seccomp.as_ref())?;
    // A session of its own (setsid(2)), as in step09.
    sys!(setsid())?;
    if process.terminal() == Some(true) {
        // The container's terminal, made in its own /dev/pts: the master goes
        // to `create`, and on to the engine's console socket; the slave
        // becomes the controlling terminal and stdin, stdout and stderr.
        let terminal = sys!(openpty(None::<&nix::pty::Winsize>, None::<&Termios>))?;
        sys!(send_fd(socket, &terminal.master))?;
        sys!(tiocsctty(&terminal.slave))?;
        sys!(dup2_stdin(&terminal.slave))?;
        sys!(dup2_stdout(&terminal.slave))?;
        sys!(dup2_stderr(&terminal.slave))?;
        drop(terminal);
    }
    // Ready: `create` returns, and the engine may start us.
    sys!(oci::send_message(socket, b"r"))?;
    // The create/start split: this open(2) blocks until `start` opens the
    // fifo's read end. Until then the container exists, with its pid,
    // namespaces, cgroup and stdio, but its command has not run.
    let reopen = format!("/proc/self/fd/{}", exec_fifo.as_raw_fd());
    let options = fs::OpenOptions::new().write(true).clone();
    let mut fifo = sys!(options.open(&reopen))?;
    sys!(std::io::Write::write_all(&mut fifo, b"0"))?;
    drop(fifo);
    late_seccomp(process, seccomp.as_ref())?;
    let command = process.args().as_deref().unwrap_or_default().first().cloned().unwrap_or_default();
    sys!(execvpe(&argv[0], &argv, &env)).map_err(|err| status::exec_failed(&command, err))
}

/// process.user, process.capabilities, rlimits, noNewPrivileges and the
/// seccomp filter, in step09's order: the filter first (while we may still
/// load it without no_new_privs), then the bounding set, the user (keeping
/// capabilities across the change), the capability sets, the limits.
fn become_process(process: &oci_spec::runtime::Process, seccomp: Option<&common::seccomp::Filter>) -> Result<()> {
    let no_new_privs = process.no_new_privileges() == Some(true);
    if let Some(filter) = seccomp.filter(|_| !no_new_privs) {
        sys!(seccomp_set_mode_filter(filter))?;
    }
    let sets = oci::capabilities(process.capabilities().as_ref())?;
    for cap in caps::runtime::thread_all_supported().difference(&sets.bounding) {
        sys!(caps::drop(None::<i32>, CapSet::Bounding, *cap))?;
    }
    let user = process.user();
    sys!(set_keepcaps(true))?;
    let groups: Vec<Gid> = user.additional_gids().iter().flatten().map(|gid| Gid::from_raw(*gid)).collect();
    // In a user namespace whose /proc/self/setgroups says deny, only an
    // empty list could be set, and the namespace starts with none.
    let denied = fs::read_to_string("/proc/self/setgroups").is_ok_and(|text| text.trim() == "deny");
    if !denied {
        sys!(setgroups(&groups))?;
    }
    sys!(setgid(Gid::from_raw(user.gid())))?;
    sys!(setuid(Uid::from_raw(user.uid())))?;
    if let Some(mask) = user.umask() {
        nix::sys::stat::umask(Mode::from_bits_truncate(mask));
    }
    // Leaving uid 0 cleared the effective set: raise it to what is
    // permitted, so that the inheritable set may be written, then narrow
    // everything to what the bundle asks.
    let permitted = sys!(caps::read(None::<i32>, CapSet::Permitted))?;
    sys!(caps::set(None::<i32>, CapSet::Effective, &permitted))?;
    sys!(caps::set(None::<i32>, CapSet::Inheritable, &sets.inheritable))?;
    sys!(caps::set(None::<i32>, CapSet::Effective, &sets.effective))?;
    sys!(caps::set(None::<i32>, CapSet::Permitted, &sets.permitted))?;
    sys!(caps::clear(None::<i32>, CapSet::Ambient))?;
    for cap in &sets.ambient {
        // The kernel refuses one not both permitted and inheritable; runc
        // skips those too.
        let _ = sys!(caps::raise(None::<i32>, CapSet::Ambient, *cap));
    }
    for limit in process.rlimits().iter().flatten() {
        sys!(setrlimit(oci::rlimit_resource(limit)?, limit.soft(), limit.hard()))?;
    }
    if no_new_privs {
        sys!(set_no_new_privs())?;
    }
    Ok(())
}

/// With no_new_privs the seccomp filter needs no privilege, so it goes on
/// as late as possible, just before execve, as runc does: a strict profile
/// then cannot refuse one of the runtime's own calls (close_range, the
/// terminal's ioctls, the fifo's open).
fn late_seccomp(process: &oci_spec::runtime::Process, seccomp: Option<&common::seccomp::Filter>) -> Result<()> {
    match seccomp {
        Some(filter) if process.no_new_privileges() == Some(true) => sys!(seccomp_set_mode_filter(filter)),
        _ => Ok(()),
    }
}

/// `start`: opens the exec fifo's read end, which lets init's open(2)
/// return; init writes one byte and execs. Returns at once.
fn start(runtime: &oci::Runtime, id: &str) -> Result<i32> {
    let state = runtime.load(id)?;
    let status = state.status();
    if status != oci::Status::Created {
        bail!("container {id} is {}: only a created container can be started", status.name());
    }
    let path = state.dir.join(oci::EXEC_FIFO);
    // O_NONBLOCK: if init died meanwhile, a blocking open would wait for a
    // writer for ever.
    let fifo = sys!(open(&path, OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC, Mode::empty()))?;
    let mut byte = [0u8; 1];
    loop {
        match nix::unistd::read(&fifo, &mut byte) {
            Ok(1) => break,
            Ok(_) | Err(Errno::EAGAIN) if state.alive() => std::thread::sleep(std::time::Duration::from_millis(1)),
            Ok(_) | Err(Errno::EAGAIN) => bail!("container {id}'s process ended before it could start"),
            Err(errno) => bail!("read({}) failed: {errno}", path.display()),
        }
    }
    // No fifo: the container is running, as `state` tells from now on.
    sys!(fs::remove_file(&path))?;
    // A failing poststart hook is a warning: the container runs (runtime.md).
    let hooks = state.hooks.clone().unwrap_or_default();
    let started = state.to_json_as(oci::Status::Running);
    oci::run_hooks_warning(runtime, "poststart", hooks.poststart().as_ref(), &started);
    Ok(0)
}
