//! Step 06: the PID, UTS, IPC and network namespaces.
//!
//! The child is now created with clone(2) directly in new namespaces, one
//! flag each: PID (the command is PID 1 and sees only its own processes in
//! the /proc it mounts; when it exits, the kernel kills everything left in
//! the namespace), UTS (its own hostname), IPC (its own System V IPC and
//! POSIX message queues) and network (its own interfaces: only `lo`). A new
//! PID namespace applies to the children a process creates after it, which
//! is why this is clone(CLONE_NEWPID) and not unshare in the child.

use std::convert::Infallible;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use clap::Subcommand;
use common::container::Container;
use common::devices::DEVICES;
use common::devices::LINKS;
use common::env::execvpe;
use common::image::Image;
use common::status;
use common::sys;
use nix::mount::MntFlags;
use nix::mount::MsFlags;
use nix::mount::mount;
use nix::mount::umount2;
use nix::sched::CloneFlags;
use nix::sched::clone;
use nix::sched::unshare;
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::sys::stat::SFlag;
use nix::sys::stat::makedev;
use nix::sys::stat::mknod;
use nix::sys::wait::WaitPidFlag;
use nix::sys::wait::WaitStatus;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use nix::unistd::chdir;
use nix::unistd::pivot_root;
use nix::unistd::sethostname;

/// Docker from scratch, one Linux primitive at a time.
#[derive(Parser)]
#[command(name = "step06-pid-ns", version, after_help = common::cli::EXIT_CODES)]
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
    let image = common::image::open(&args.image_dir, &args.image)?;
    let container = Container::create(&args.container_dir, &args.image)?;
    let ended = spawn(args, &container, &image).and_then(|pid| wait(pid, &container));
    // The child's mounts died with its mount namespace; the parent still
    // removes the container's directory, unless asked to keep it.
    if args.keep { container.keep_after(ended) } else { container.remove_after(ended) }
}

/// The child's stack for clone(2); the child only sets up and execs.
const STACK_SIZE: usize = 1024 * 1024;

fn spawn(args: &Args, container: &Container, image: &Image) -> Result<Pid> {
    let mut flags = CloneFlags::empty();
    flags |= CloneFlags::CLONE_NEWPID;
    flags |= CloneFlags::CLONE_NEWUTS;
    flags |= CloneFlags::CLONE_NEWIPC;
    flags |= CloneFlags::CLONE_NEWNET;
    let mut stack = vec![0u8; STACK_SIZE];
    let body = || status::child_exit(child(args, container, image));
    // SAFETY: the runtime is single-threaded, and without CLONE_VM the child
    // gets its own copy of memory, as after fork; it only sets up and execs.
    // SIGCHLD makes it an ordinary child for waitpid.
    unsafe { sys!(clone(Box::new(body), &mut stack, flags, Some(Signal::SIGCHLD as i32))) }
}

/// Runs in the forked child: becomes the container's command, or returns
/// the reason it could not.
fn child(args: &Args, container: &Container, image: &Image) -> Result<Infallible> {
    // The image's config gives the defaults, as in `docker run`: a command
    // replaces its Cmd (--entrypoint, its Entrypoint), -e adds to its Env.
    let command = image.config.command(args.entrypoint.as_deref(), &args.command)?;
    let argv = common::env::command_line(&command)?;
    let env = common::env::container_env(&image.config.env(&args.env))?;
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
    sys!(std::fs::write("/proc/sys/net/ipv4/ping_group_range", "0 2147483647"))?;
    // A mount namespace of our own, and no propagation in or out of it:
    // MS_REC makes every mount private, not just "/".
    sys!(unshare(CloneFlags::CLONE_NEWNS))?;
    sys!(mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>))?;
    // The image is the read-only lower layer; this container's writes go
    // to upper (work is overlayfs's scratch space on the same filesystem).
    // MS_NODEV: a device node written into the container is never usable.
    let rootfs = container.dir.join("merged");
    for dir in ["upper", "work", "merged"] {
        sys!(std::fs::create_dir(container.dir.join(dir)))?;
    }
    // The image's layers are the lower dirs, stacked as Docker's overlay2
    // stacks them: `lowerdir=` lists the top layer first. (The options must
    // fit in one page, 4 KiB: about 35 layers of the store's paths; Docker
    // links its layers under short names for that, we do not.)
    let lower: Vec<String> = image.layers().iter().rev().map(|layer| layer.display().to_string()).collect();
    let layers = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        container.dir.join("upper").display(),
        container.dir.join("work").display()
    );
    // The upper layer goes when the container ends (unless --keep), so
    // writing it to disk is wasted: `volatile` (Linux 5.10) makes overlayfs
    // skip every sync of it, the one at unmount included, which waited for
    // the disk's writeback and a cache flush.
    let layers = if args.keep { layers } else { layers + ",volatile" };
    sys!(mount(Some("overlay"), &rootfs, Some("overlay"), MsFlags::MS_NODEV, Some(layers.as_str())))?;
    // The kernel's views a command expects: processes, devices and sysfs.
    sys!(mount(Some("proc"), &rootfs.join("proc"), Some("proc"), MsFlags::empty(), None::<&str>))?;
    sys!(mount(Some("sysfs"), &rootfs.join("sys"), Some("sysfs"), MsFlags::empty(), None::<&str>))?;
    sys!(mount(Some("tmpfs"), &rootfs.join("dev"), Some("tmpfs"), MsFlags::MS_NOSUID, Some("mode=755,size=65536k")))?;
    // The devices every container gets, made by hand: the tmpfs is ours,
    // so the host's /dev (disks and all) never shows up inside.
    let dev = rootfs.join("dev");
    for device in DEVICES {
        let mode = Mode::from_bits_truncate(device.mode);
        sys!(mknod(&dev.join(device.name), SFlag::S_IFCHR, mode, makedev(device.major, device.minor)))?;
        // mknod applies our umask; the devices need their exact modes.
        sys!(std::fs::set_permissions(dev.join(device.name), std::fs::Permissions::from_mode(device.mode)))?;
    }
    for (name, target) in LINKS {
        sys!(symlink(target, dev.join(name)))?;
    }
    // A private devpts instance: the container's terminals are its own.
    sys!(std::fs::create_dir(dev.join("pts")))?;
    sys!(mount(
        Some("devpts"),
        &dev.join("pts"),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5")
    ))?;
    // The IPC namespace's own files: POSIX shared memory (shm_open(3)) in
    // /dev/shm, a tmpfs of 64 MiB as Docker gives by default (--shm-size),
    // and message queues (mq_overview(7)) in /dev/mqueue, whose mqueue
    // filesystem is that of the IPC namespace that mounts it: ours.
    sys!(std::fs::create_dir(dev.join("shm")))?;
    sys!(mount(
        Some("shm"),
        &dev.join("shm"),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k")
    ))?;
    sys!(std::fs::create_dir(dev.join("mqueue")))?;
    sys!(mount(
        Some("mqueue"),
        &dev.join("mqueue"),
        Some("mqueue"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>
    ))?;
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
    // From here on, if the runtime dies, however it dies, so does this process.
    common::signals::die_with_runtime()?;
    // execvpe searches PATH like a shell does, then replaces this process's
    // program with the command; on success it never returns.
    sys!(execvpe(&argv[0], &argv, &env)).map_err(|err| status::exec_failed(&command[0], err))
}

fn wait(pid: Pid, container: &Container) -> Result<i32> {
    common::signals::forward_to(pid)?;
    // waitpid also returns when the command stops under ptrace (it may have
    // asked the runtime to trace it): detach, and wait on for its end.
    let status = loop {
        match sys!(waitpid(pid, None::<WaitPidFlag>))? {
            WaitStatus::Stopped(pid, signal) => status::detach(pid, signal)?,
            status => break status,
        }
    };
    Ok(status::report(&format!("container {}", container.id), status))
}
