//! The OCI commands that come after `create` and `start`, and use nothing
//! new: `delete` and `pause`/`resume` act on the cgroup (step08), `exec`
//! joins the container's namespaces with setns(2) and becomes its process
//! as init did (`become_process`, step07's order).

use std::convert::Infallible;
use std::fs;
use std::os::fd::OwnedFd;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use cgroups_rs::CgroupPid;
use cgroups_rs::fs::Cgroup;
use cgroups_rs::fs::Controller;
use cgroups_rs::fs::memory::MemController;
use common::env::close_range_cloexec;
use common::env::execvpe;
use common::mountapi::send_fd;
use common::status;
use common::sys;
use common::tty::tiocsctty;
use nix::pty::openpty;
use nix::sched::CloneFlags;
use nix::sched::setns;
use nix::sys::prctl::set_child_subreaper;
use nix::sys::signal::Signal;
use nix::sys::socket::AddressFamily;
use nix::sys::socket::SockFlag;
use nix::sys::socket::SockType;
use nix::sys::socket::socketpair;
use nix::sys::termios::Termios;
use nix::sys::wait::WaitPidFlag;
use nix::sys::wait::waitpid;
use nix::unistd::ForkResult;
use nix::unistd::Pid;
use nix::unistd::chdir;
use nix::unistd::dup2_stderr;
use nix::unistd::dup2_stdin;
use nix::unistd::dup2_stdout;
use nix::unistd::fork;
use nix::unistd::setsid;

use crate::DeleteArgs;
use crate::ExecArgs;
use crate::become_process;
use crate::late_seccomp;
use crate::oci;
use crate::oci_child_exit;

/// `delete`: the container's cgroup and state go; one that still runs only
/// with --force (a created one always, as runc). A container that is gone
/// already is no error: engines call delete again after a failure.
pub fn delete(runtime: &oci::Runtime, args: &DeleteArgs) -> Result<i32> {
    let dir = runtime.dir(&args.id)?;
    if !dir.exists() {
        return Ok(0);
    }
    let state = match runtime.load(&args.id) {
        Ok(state) => state,
        // create died before it wrote the record: only the directory is left.
        Err(_) => {
            sys!(fs::remove_dir_all(&dir))?;
            return Ok(0);
        }
    };
    let status = state.status();
    if matches!(status, oci::Status::Running | oci::Status::Paused) && !args.force {
        bail!("container {} is {}: stop it first, or delete --force", args.id, status.name());
    }
    if status == oci::Status::Paused {
        // A frozen process cannot act on SIGKILL until thawed.
        state.freeze(false)?;
    }
    if status != oci::Status::Stopped {
        state.kill(Signal::SIGKILL, true)?;
        // The caller (conmon, the shim) reaps it; we wait until it is dead.
        for _ in 0..1000 {
            if !state.alive() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    // The OOM verdict, for whoever reads the runtime's log: the cgroup's
    // own count, read before it goes (step09's `wait`).
    if let Ok(memory) = common::cgroup::controller::<MemController>(&state.cgroup()) {
        let events = if state.cgroup().v2() { "memory.events" } else { "memory.oom_control" };
        let kills = common::cgroup::oom_kills(&fs::read_to_string(memory.path().join(events)).unwrap_or_default());
        if kills > 0 {
            runtime.note(&format!("container {}: the OOM killer killed {kills} of its processes", args.id));
        }
    }
    let stopped = state.to_json();
    state.remove()?;
    // poststop hooks: after the container is gone; a failure is a warning.
    let hooks = state.hooks.clone().unwrap_or_default();
    oci::run_hooks_warning(runtime, "poststop", hooks.poststop().as_ref(), &stopped);
    Ok(0)
}

/// `pause` and `resume`: the freezer cgroup.
pub fn pause(runtime: &oci::Runtime, id: &str, frozen: bool) -> Result<i32> {
    let state = runtime.load(id)?;
    let status = state.status();
    let wanted = if frozen { oci::Status::Running } else { oci::Status::Paused };
    if status != wanted {
        bail!("container {id} is {}, not {}", status.name(), wanted.name());
    }
    state.freeze(frozen)?;
    Ok(0)
}

/// `exec`: another process in a running container. It enters the
/// container's namespaces with setns(2) (all that differ from ours, user
/// first, mount last) and its cgroup, and becomes what --process says, with
/// the container's seccomp profile. setns(CLONE_NEWPID) only applies to the
/// caller's children, so the joining process forks once more.
pub fn exec(runtime: &oci::Runtime, args: &ExecArgs) -> Result<i32> {
    let state = runtime.load(&args.id)?;
    let status = state.status();
    if status != oci::Status::Running {
        bail!("container {} is {}: exec needs a running container", args.id, status.name());
    }
    let mut process = match &args.process {
        Some(file) => {
            let text = sys!(fs::read_to_string(file))?;
            serde_json::from_str::<oci_spec::runtime::Process>(&text)
                .with_context(|| format!("{} is not a process as config.json has one", file.display()))?
        }
        None if args.command.is_empty() => bail!("exec needs --process FILE or a command"),
        None => {
            let bundle = oci::Bundle::load(&state.bundle)?;
            let mut process = bundle.spec.process().clone().context("config.json has no process")?;
            process.set_args(Some(args.command.clone()));
            process.set_terminal(Some(args.tty));
            process
        }
    };
    if args.tty {
        process.set_terminal(Some(true));
    }
    let console = match (&args.console_socket, process.terminal() == Some(true)) {
        (Some(path), true) => Some(
            std::os::unix::net::UnixStream::connect(path)
                .with_context(|| format!("connect({}) failed: the --console-socket", path.display()))?,
        ),
        (None, true) => bail!("a terminal needs --console-socket: its master would go nowhere"),
        _ => None,
    };
    let mut joins = Vec::new();
    for (kind, flag) in [
        ("user", CloneFlags::CLONE_NEWUSER),
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("cgroup", CloneFlags::CLONE_NEWCGROUP),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ] {
        let theirs = format!("/proc/{}/ns/{kind}", state.pid);
        if sys!(fs::read_link(&theirs))? != sys!(fs::read_link(format!("/proc/self/ns/{kind}")))? {
            joins.push((sys!(fs::File::open(&theirs))?, flag));
        }
    }
    // The profile `create` recorded: config.json may have changed since.
    let seccomp = state.seccomp.as_ref().map(oci::seccomp_filter).transpose()?;
    let cgroup = state.cgroup();
    if !args.detach {
        // The process will be our grandchild: adopt it when its parent exits.
        sys!(set_child_subreaper(true))?;
    }
    let (child_end, our_end) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?;
    // SAFETY: the runtime is single-threaded; the child only joins, forks
    // once more and exits, or execs.
    let joiner = match unsafe { sys!(fork()) }? {
        ForkResult::Child => {
            drop(our_end);
            let joined = exec_join(&cgroup, &joins, &process, seccomp.as_ref(), console.as_ref(), &child_end, args);
            oci_child_exit(joined, &child_end)
        }
        ForkResult::Parent { child } => child,
    };
    drop(child_end);
    let mut pid = None;
    loop {
        let (bytes, _) = sys!(oci::recv_message(&our_end))?;
        match bytes.split_first() {
            Some((b'p', number)) => pid = String::from_utf8_lossy(number).parse::<i32>().ok(),
            Some((b'e', reason)) => {
                let _ = waitpid(joiner, None::<WaitPidFlag>);
                bail!("{}", String::from_utf8_lossy(reason));
            }
            // Closed by the exec (close-on-exec) or by an early end.
            _ => break,
        }
    }
    let _ = waitpid(joiner, None::<WaitPidFlag>);
    let pid = pid.context("the exec'd process never started (see stderr)")?;
    if let Some(file) = &args.pid_file {
        oci::write_pid_file(file, pid as u32)?;
    }
    if args.detach {
        return Ok(0);
    }
    Ok(status::code(sys!(waitpid(Pid::from_raw(pid), None::<WaitPidFlag>))?))
}

/// The first child of `exec`: joins the cgroup and the namespaces, then
/// forks the process that runs in them, and reports its host pid.
fn exec_join(
    cgroup: &Cgroup,
    joins: &[(fs::File, CloneFlags)],
    process: &oci_spec::runtime::Process,
    seccomp: Option<&common::seccomp::Filter>,
    console: Option<&std::os::unix::net::UnixStream>,
    socket: &OwnedFd,
    args: &ExecArgs,
) -> Result<Infallible> {
    sys!(cgroup.add_task_by_tgid(CgroupPid::from(std::process::id() as u64)))?;
    for (file, flag) in joins {
        sys!(setns(file, *flag))?;
    }
    // SAFETY: single-threaded still; the child only sets up and execs.
    match unsafe { sys!(fork()) }? {
        ForkResult::Child => {
            let ran = exec_process(process, seccomp, console, args);
            oci_child_exit(ran, socket)
        }
        ForkResult::Parent { child } => {
            sys!(oci::send_message(socket, format!("p{child}").as_bytes()))?;
            status::quiet_exit(0)
        }
    }
}

/// The exec'd process, inside the container: cwd, terminal, user,
/// capabilities, seccomp, then execve.
fn exec_process(
    process: &oci_spec::runtime::Process,
    seccomp: Option<&common::seccomp::Filter>,
    console: Option<&std::os::unix::net::UnixStream>,
    args: &ExecArgs,
) -> Result<Infallible> {
    let argv = common::env::command_line(process.args().as_deref().unwrap_or_default())?;
    if argv.is_empty() {
        bail!("the process has no args: nothing to run");
    }
    let env = common::env::command_line(process.env().as_deref().unwrap_or_default())?;
    sys!(chdir(process.cwd()))?;
    if let Some(console) = console {
        sys!(setsid())?;
        let terminal = sys!(openpty(None::<&nix::pty::Winsize>, None::<&Termios>))?;
        sys!(send_fd(console, &terminal.master))?;
        sys!(tiocsctty(&terminal.slave))?;
        sys!(dup2_stdin(&terminal.slave))?;
        sys!(dup2_stdout(&terminal.slave))?;
        sys!(dup2_stderr(&terminal.slave))?;
        drop(terminal);
    }
    sys!(close_range_cloexec(3 + args.preserve_fds))?;
    become_process(process, seccomp)?;
    late_seccomp(process, seccomp)?;
    let command = process.args().as_deref().unwrap_or_default().first().cloned().unwrap_or_default();
    sys!(execvpe(&argv[0], &argv, &env)).map_err(|err| status::exec_failed(&command, err))
}
