//! Step 01: fork and exec.
//!
//! Every container starts life as an ordinary process. The runtime forks a
//! copy of itself; the copy (the child) replaces itself with the container's
//! command by calling execvp; the runtime (the parent) waits for it to end and
//! reports how it ended. Everything the later steps add happens in the child,
//! between fork and exec. See fork(2), execve(2), waitpid(2).

use std::convert::Infallible;

use anyhow::Result;
use clap::Parser;
use clap::Subcommand;
use common::env::execvpe;
use common::status;
use common::sys;
use nix::sys::wait::WaitPidFlag;
use nix::sys::wait::WaitStatus;
use nix::sys::wait::waitpid;
use nix::unistd::ForkResult;
use nix::unistd::Pid;
use nix::unistd::fork;

/// Docker from scratch, one Linux primitive at a time.
#[derive(Parser)]
#[command(name = "step01-fork-exec", version, after_help = common::cli::EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run COMMAND in a new container
    Run(Args),
}

#[derive(clap::Args)]
struct Args {
    /// Set an environment variable in the container (repeatable)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE", value_parser = common::env::parse_env)]
    env: Vec<String>,
    /// Print each system call of this step, its result and how long it took
    #[arg(long)]
    trace: bool,
    /// The command to run in the container, and its arguments
    #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND")]
    command: Vec<String>,
}

fn main() {
    let Command::Run(args) = common::cli::parse::<Cli>().command;
    common::trace::enable(args.trace);
    match run(&args) {
        Ok(code) => std::process::exit(code),
        Err(err) => common::errors::die(err),
    }
}

fn run(args: &Args) -> Result<i32> {
    let pid = spawn(args)?;
    wait(pid)
}

fn spawn(args: &Args) -> Result<Pid> {
    // SAFETY: the runtime is single-threaded, so the child may run any code
    // until it execs or exits; it does nothing else.
    match unsafe { sys!(fork()) }? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => status::child_exit(child(args)),
    }
}

/// Runs in the forked child: becomes the container's command, or returns
/// the reason it could not.
fn child(args: &Args) -> Result<Infallible> {
    let argv = common::env::command_line(&args.command)?;
    let env = common::env::container_env(&args.env)?;
    // From here on, if the runtime dies, however it dies, so does this process.
    common::signals::die_with_runtime()?;
    // execvpe searches PATH like a shell does, then replaces this process's
    // program with the command; on success it never returns.
    sys!(execvpe(&argv[0], &argv, &env)).map_err(|err| status::exec_failed(&args.command[0], err))
}

fn wait(pid: Pid) -> Result<i32> {
    common::signals::forward_to(pid)?;
    // waitpid also returns when the command stops under ptrace (it may have
    // asked the runtime to trace it): detach, and wait on for its end.
    let status = loop {
        match sys!(waitpid(pid, None::<WaitPidFlag>))? {
            WaitStatus::Stopped(pid, signal) => status::detach(pid, signal)?,
            status => break status,
        }
    };
    Ok(status::report(&format!("process {pid}"), status))
}
