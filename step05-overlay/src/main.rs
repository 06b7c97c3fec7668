//! Step 05: overlayfs.
//!
//! Copying the whole image for every container is slow and wasteful. An
//! overlay mount stacks a writable directory (upper) on a read-only one
//! (lower, the image's rootfs, shared by every container): reads fall
//! through to the image, writes copy the file up into the container's own
//! upper directory, deletions leave whiteouts there. The merged view becomes
//! the new root; being a mount, it is also the mount point pivot_root needs.
//! The image is never written, so it is extracted once and reused.

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
use nix::sched::unshare;
use nix::sys::stat::Mode;
use nix::sys::stat::SFlag;
use nix::sys::stat::makedev;
use nix::sys::stat::mknod;
use nix::sys::wait::WaitPidFlag;
use nix::sys::wait::WaitStatus;
use nix::sys::wait::waitpid;
use nix::unistd::ForkResult;
use nix::unistd::Pid;
use nix::unistd::chdir;
use nix::unistd::fork;
use nix::unistd::pivot_root;

/// Docker from scratch, one Linux primitive at a time.
#[derive(Parser)]
#[command(name = "step05-overlay", version, after_help = common::cli::EXIT_CODES)]
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

fn spawn(args: &Args, container: &Container, image: &Image) -> Result<Pid> {
    // SAFETY: the runtime is single-threaded, so the child may run any code
    // until it execs or exits; it does nothing else.
    match unsafe { sys!(fork()) }? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => status::child_exit(child(args, container, image)),
    }
}

/// Runs in the forked child: becomes the container's command, or returns
/// the reason it could not.
fn child(args: &Args, container: &Container, image: &Image) -> Result<Infallible> {
    // The image's config gives the defaults, as in `docker run`: a command
    // replaces its Cmd (--entrypoint, its Entrypoint), -e adds to its Env.
    let command = image.config.command(args.entrypoint.as_deref(), &args.command)?;
    let argv = common::env::command_line(&command)?;
    let env = common::env::container_env(&image.config.env(&args.env))?;
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
