//! Step 02: chroot.
//!
//! The child now runs in its own copy of an image's root filesystem: it
//! mounts /proc, /sys and a tmpfs /dev inside the copy, then chroot(2)s into
//! it, so "/" for the command is the image's "/". There is no mount
//! namespace yet: these mounts are the host's, visible to everyone while the
//! container runs, so the parent unmounts them and removes the copy when the
//! command ends. And chroot only changes how paths are resolved: a root
//! process inside can walk back out (try the image's `breakout`).

use std::convert::Infallible;
use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use clap::Subcommand;
use common::container::Container;
use common::env::execvpe;
use common::image::Image;
use common::status;
use common::sys;
use nix::mount::MsFlags;
use nix::mount::mount;
use nix::sys::wait::WaitPidFlag;
use nix::sys::wait::WaitStatus;
use nix::sys::wait::waitpid;
use nix::unistd::ForkResult;
use nix::unistd::Pid;
use nix::unistd::chdir;
use nix::unistd::chroot;
use nix::unistd::fork;

/// Docker from scratch, one Linux primitive at a time.
#[derive(Parser)]
#[command(name = "step02-chroot", version, after_help = common::cli::EXIT_CODES)]
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
    // Whether the command ran or the start failed half way, the parent
    // unmounts what the child mounted and removes the container's directory.
    container.remove_after(ended)
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
    // A fresh copy of the image per container, as the workshop does before
    // it has overlayfs (step 05): slow for big images, but writes stay ours.
    let rootfs = container.dir.join("rootfs");
    // Its layers are flattened into the copy, each over the ones below.
    common::fsutil::copy_layers(image.layers(), &rootfs)?;
    // The kernel's views a command expects: processes, devices and sysfs.
    // /dev is an empty tmpfs for now; step 03 fills it.
    sys!(mount(Some("proc"), &rootfs.join("proc"), Some("proc"), MsFlags::empty(), None::<&str>))?;
    sys!(mount(Some("sysfs"), &rootfs.join("sys"), Some("sysfs"), MsFlags::empty(), None::<&str>))?;
    sys!(mount(Some("tmpfs"), &rootfs.join("dev"), Some("tmpfs"), MsFlags::MS_NOSUID, Some("mode=755,size=65536k")))?;
    // chroot changes how this process resolves "/"; chdir moves its working
    // directory inside, or "." would still be the host's.
    sys!(chroot(&rootfs))?;
    sys!(chdir("/"))?;
    // The image's WorkingDir, made when missing, as Docker does.
    sys!(std::fs::create_dir_all(image.config.working_dir()))?;
    sys!(chdir(image.config.working_dir()))?;
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
