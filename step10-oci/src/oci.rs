//! The OCI runtime spec, mapped onto what step09 already does. The spec
//! (<https://github.com/opencontainers/runtime-spec>) is the contract between
//! a container engine (podman, containerd, CRI-O, Docker) and a runtime
//! (runc, crun, youki, this step): the engine prepares a *bundle*, a
//! directory with the root filesystem and a `config.json` that says
//! everything step09 took as options, and calls the runtime's `create`,
//! `start`, `state`, `kill` and `delete`.
//!
//! What is here is the bookkeeping: reading the bundle, the state directory
//! of each container (`--root`, runc's layout), the container's status, the
//! cgroup and its limits from `linux.resources`, mount options, the seccomp
//! profile of `linux.seccomp`, errors in the form the engine reads back
//! (`--log`). The create/start split itself, and the system calls, are in
//! `main.rs`.

use std::collections::BTreeMap;
use std::fs;
use std::io::IoSliceMut;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::fd::FromRawFd;
use std::os::fd::OwnedFd;
use std::os::fd::RawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::path::PathBuf;
use std::str::FromStr;
use std::thread::sleep;
use std::time::Duration;
use std::time::SystemTime;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use caps::Capability;
use cgroups_rs::fs::Cgroup;
use cgroups_rs::fs::Controller;
use cgroups_rs::fs::MaxValue;
use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::cpuset::CpuSetController;
use cgroups_rs::fs::devices::DevicePermissions;
use cgroups_rs::fs::devices::DeviceType;
use cgroups_rs::fs::devices::DevicesController;
use cgroups_rs::fs::hierarchies;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::pid::PidController;
use common::devices::Rule;
use common::mountapi::mount_flags;
use common::sys;
use nix::mount::MsFlags;
use nix::mount::mount;
use nix::sys::resource::Resource;
use nix::sys::signal::Signal;
use nix::sys::socket::ControlMessageOwned;
use nix::sys::socket::MsgFlags;
use nix::sys::socket::recvmsg;
use nix::sys::stat::Mode;
use nix::sys::stat::SFlag;
use nix::sys::stat::makedev;
use nix::sys::stat::mknod;
use nix::unistd::Gid;
use nix::unistd::Uid;
use nix::unistd::chown;
use oci_spec::runtime::Hook;
use oci_spec::runtime::Hooks;
use oci_spec::runtime::LinuxCapabilities;
use oci_spec::runtime::LinuxDeviceCgroup;
use oci_spec::runtime::LinuxDeviceType;
use oci_spec::runtime::LinuxNamespaceType;
use oci_spec::runtime::LinuxSeccomp;
use oci_spec::runtime::LinuxSeccompAction;
use oci_spec::runtime::LinuxSeccompOperator;
use oci_spec::runtime::Mount;
use oci_spec::runtime::PosixRlimit;
use oci_spec::runtime::Spec;
use seccompiler::SeccompAction;
use seccompiler::SeccompCmpArgLen;
use seccompiler::SeccompCmpOp;
use seccompiler::SeccompCondition;
use seccompiler::SeccompFilter;
use seccompiler::SeccompRule;
use seccompiler::TargetArch;
use serde_json::json;

/// Where each container's state lives unless `--root` says otherwise. Fixed,
/// as runc's `/run/runc`: podman never passes `--root`, and every later call
/// (`start`, `kill`) must find what `create` wrote. /run is a tmpfs: after a
/// reboot no container is left, and neither is its state.
pub const STATE_ROOT: &str = "/run/docker-from-scratch-oci";
/// The version of the runtime spec this step implements (runc 1.1's).
pub const OCI_VERSION: &str = "1.0.2";
/// The fifo the container's init blocks on, just before exec (runc's name).
pub const EXEC_FIFO: &str = "exec.fifo";
/// What `create` records for the other commands.
const STATE_FILE: &str = "state.json";

/// The global options every OCI command gets, before the subcommand.
pub struct Runtime {
    pub root: PathBuf,
    pub log: Option<PathBuf>,
    pub json: bool,
}

impl Runtime {
    /// A failed command's one line: on stderr, and in `--log` where the
    /// engine reads it back (conmon and containerd's shim show its `msg`).
    pub fn fail(&self, err: &anyhow::Error) -> ! {
        let line = common::errors::fit(&format!("{}: error: {err:#}", common::cli::program_name()));
        common::cli::say(&line);
        self.log("error", &format!("{err:#}"));
        std::process::exit(1)
    }

    /// A line for whoever reads the runtime's output: stderr and --log.
    pub fn note(&self, message: &str) {
        common::cli::say(&common::errors::fit(&format!("{}: {message}", common::cli::program_name())));
        self.log("warning", message);
    }

    fn log(&self, level: &str, message: &str) {
        let Some(path) = &self.log else { return };
        let Ok(mut file) = fs::OpenOptions::new().create(true).append(true).open(path) else { return };
        let time = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
        let line = if self.json {
            json!({ "level": level, "msg": message, "time": rfc3339(time) }).to_string()
        } else {
            format!("time=\"{}\" level={level} msg={message:?}", rfc3339(time))
        };
        let _ = writeln!(file, "{line}");
    }

    /// The state directory of container `id`, refusing ids that are not names.
    pub fn dir(&self, id: &str) -> Result<PathBuf> {
        let valid = !id.is_empty()
            && id.len() <= 1024
            && id != "."
            && id != ".."
            && id.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"._-+".contains(&byte));
        if !valid {
            bail!("invalid container id {id:?}: use letters, digits, `.`, `_`, `-` and `+`");
        }
        Ok(self.root.join(id))
    }

    /// Makes the state directory of a new container, refusing an id in use.
    pub fn make_dir(&self, id: &str) -> Result<PathBuf> {
        let dir = self.dir(id)?;
        sys!(fs::create_dir_all(&self.root))?;
        match fs::create_dir(&dir) {
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                bail!("container {id} exists already: delete it first ({} delete {id})", common::cli::program_name())
            }
            other => other.with_context(|| format!("mkdir {} failed", dir.display()))?,
        }
        Ok(dir)
    }

    /// The record `create` wrote, or an error naming the id.
    pub fn load(&self, id: &str) -> Result<State> {
        let dir = self.dir(id)?;
        let text = match fs::read_to_string(dir.join(STATE_FILE)) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                bail!("container {id} does not exist (no {})", dir.join(STATE_FILE).display())
            }
            other => other.with_context(|| format!("cannot read {}", dir.join(STATE_FILE).display()))?,
        };
        let record: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", dir.join(STATE_FILE).display()))?;
        let field = |name: &str| record[name].as_str().unwrap_or_default().to_string();
        let annotations = record["annotations"]
            .as_object()
            .map(|map| {
                map.iter().map(|(key, value)| (key.clone(), value.as_str().unwrap_or_default().into())).collect()
            })
            .unwrap_or_default();
        Ok(State {
            id: id.to_string(),
            dir,
            pid: record["pid"].as_u64().unwrap_or_default() as u32,
            start_time: record["start_time"].as_u64().unwrap_or_default(),
            bundle: PathBuf::from(field("bundle")),
            cgroup: field("cgroup"),
            cgroup_owned: field("cgroup_owned"),
            created: field("created"),
            annotations,
            hooks: serde_json::from_value(record["hooks"].clone()).ok().flatten(),
            seccomp: serde_json::from_value(record["seccomp"].clone()).ok().flatten(),
        })
    }
}

/// What `create` records about a container, for the later commands.
pub struct State {
    pub id: String,
    pub dir: PathBuf,
    /// The host pid of the container's init (its first process).
    pub pid: u32,
    /// Its start time (/proc/PID/stat), so that a recycled pid is not it.
    pub start_time: u64,
    pub bundle: PathBuf,
    /// The cgroup, relative to each hierarchy's root.
    pub cgroup: String,
    /// The topmost directory of `cgroup` that `create` made (parents it
    /// made on the way, as `a` of `a/b`): `delete` removes up to it.
    pub cgroup_owned: String,
    pub created: String,
    pub annotations: BTreeMap<String, String>,
    /// config.json's hooks as `create` read them: later edits of the file
    /// must not change the container (runtime.md).
    pub hooks: Option<Hooks>,
    /// config.json's seccomp profile, for `exec`, for the same reason.
    pub seccomp: Option<LinuxSeccomp>,
}

/// The spec's four states (runtime-spec `runtime.md`), and runc's fifth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `create` is done: init waits on the exec fifo.
    Created,
    /// `start` let init exec the process, which still runs.
    Running,
    /// Frozen by `pause` (the freezer cgroup).
    Paused,
    /// The process has exited (or was never reaped into a recycled pid).
    Stopped,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl State {
    /// Writes the record, atomically (a rename): `state` may read it meanwhile.
    pub fn save(&self) -> Result<()> {
        let record = json!({
            "pid": self.pid,
            "start_time": self.start_time,
            "bundle": self.bundle,
            "cgroup": self.cgroup,
            "cgroup_owned": self.cgroup_owned,
            "created": self.created,
            "annotations": self.annotations,
            "hooks": self.hooks,
            "seccomp": self.seccomp,
        });
        let temporary = self.dir.join(format!("{STATE_FILE}.new"));
        sys!(fs::write(&temporary, record.to_string()))?;
        sys!(fs::rename(&temporary, self.dir.join(STATE_FILE)))?;
        Ok(())
    }

    /// Whether init is still this container's (alive, and not a recycled pid).
    pub fn alive(&self) -> bool {
        self.pid != 0
            && !common::container::is_dead(self.pid)
            && common::container::start_time(self.pid) == Some(self.start_time)
    }

    /// The status as the kernel shows it now: nothing is stored that could
    /// go stale when the process dies on its own.
    pub fn status(&self) -> Status {
        if !self.alive() {
            Status::Stopped
        } else if self.dir.join(EXEC_FIFO).exists() {
            Status::Created
        } else if self.frozen() {
            Status::Paused
        } else {
            Status::Running
        }
    }

    /// The spec's state JSON, as `state` prints it.
    pub fn to_json(&self) -> serde_json::Value {
        self.to_json_as(self.status())
    }

    /// The state JSON with `status` as given: a poststart hook is told
    /// "running" even when the command has already exited (runtime.md).
    pub fn to_json_as(&self, status: Status) -> serde_json::Value {
        json!({
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "status": status.name(),
            "pid": if status == Status::Stopped { 0 } else { self.pid },
            "bundle": self.bundle,
            "rootfs": self.rootfs().unwrap_or_default(),
            "created": self.created,
            "annotations": self.annotations,
        })
    }

    fn rootfs(&self) -> Option<PathBuf> {
        let spec = Spec::load(self.bundle.join("config.json")).ok()?;
        Some(self.bundle.join(spec.root().as_ref()?.path()))
    }

    /// The container's cgroup, with the controllers this step uses.
    pub fn cgroup(&self) -> Cgroup {
        Cgroup::load_with_specified_controllers(hierarchies::auto(), &self.cgroup, controllers().unwrap_or_default())
    }

    /// The host pids of every process in the container's cgroup.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.cgroup().procs().iter().map(|pid| pid.pid as u32).collect();
        if pids.is_empty() && self.alive() {
            pids.push(self.pid);
        }
        pids
    }

    fn freezer_file(&self) -> PathBuf {
        if hierarchies::is_cgroup2_unified_mode() {
            Path::new(hierarchies::UNIFIED_MOUNTPOINT).join(&self.cgroup).join("cgroup.freeze")
        } else {
            Path::new("/sys/fs/cgroup/freezer").join(&self.cgroup).join("freezer.state")
        }
    }

    fn frozen(&self) -> bool {
        let state = fs::read_to_string(self.freezer_file()).unwrap_or_default();
        matches!(state.trim(), "FROZEN" | "FREEZING" | "1")
    }

    /// Freezes (`pause`) or thaws (`resume`) every process of the container:
    /// freezer.state on cgroup v1, cgroup.freeze on v2. The kernel stops
    /// them where they are, even in a system call; nothing is signalled.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        let v2 = hierarchies::is_cgroup2_unified_mode();
        let value = match (v2, frozen) {
            (true, true) => "1",
            (true, false) => "0",
            (false, true) => "FROZEN",
            (false, false) => "THAWED",
        };
        let file = self.freezer_file();
        sys!(fs::write(&file, value))?;
        // v1 answers FREEZING until every task has stopped.
        for _ in 0..500 {
            if self.frozen() == frozen && !fs::read_to_string(&file).unwrap_or_default().contains("FREEZING") {
                return Ok(());
            }
            sleep(Duration::from_millis(10));
        }
        bail!("{} did not become {value} within 5 s", file.display())
    }

    /// Sends `signal` to init, or with `all` to every process of the cgroup.
    pub fn kill(&self, signal: Signal, all: bool) -> Result<()> {
        if !self.alive() {
            bail!("container {} is not running (its process has exited)", self.id);
        }
        let targets = if all { self.pids() } else { vec![self.pid] };
        for pid in targets {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            match sys!(nix::sys::signal::kill(pid, signal)) {
                Err(err) if err.downcast_ref::<nix::errno::Errno>() == Some(&nix::errno::Errno::ESRCH) => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// Removes what `create` made: the cgroup (once empty) and the state
    /// directory. The processes must be gone already.
    pub fn remove(&self) -> Result<()> {
        remove_cgroup(&self.cgroup(), &self.cgroup_owned)?;
        sys!(fs::remove_dir_all(&self.dir))?;
        Ok(())
    }
}

/// An RFC 3339 time in UTC for `seconds` after the epoch (`state`'s
/// `created`, log lines), without a date crate: days to a civil date.
pub fn rfc3339(seconds: u64) -> String {
    let days = (seconds / 86400) as i64;
    let rest = seconds % 86400;
    // Howard Hinnant's days_from_civil, inverted.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest / 60 % 60, rest % 60)
}

/// A signal by number (`9`) or name (`KILL`, `SIGKILL`, `kill`), as `kill` takes it.
pub fn parse_signal(text: &str) -> Result<Signal, String> {
    if let Ok(number) = text.parse::<i32>() {
        return Signal::try_from(number).map_err(|_| format!("{text} is not a signal number"));
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    Signal::from_str(&name).map_err(|_| format!("{text} is not a signal name (TERM, KILL, SIGHUP, ...)"))
}

/// A bundle: its directory (absolute) and its config.json.
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: Spec,
}

impl Bundle {
    /// Reads and checks `DIR/config.json` before anything is made.
    pub fn load(dir: &Path) -> Result<Bundle> {
        let dir = fs::canonicalize(dir).with_context(|| format!("bundle {} cannot be opened", dir.display()))?;
        let config = dir.join("config.json");
        let text = fs::read_to_string(&config).with_context(|| format!("{} cannot be read", config.display()))?;
        let mut value: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", config.display()))?;
        // A capability this runtime does not know is skipped, as runc skips
        // (with a warning) those its kernel lacks; the rest of the file is
        // read strictly.
        let sets = value.pointer_mut("/process/capabilities").and_then(serde_json::Value::as_object_mut);
        for list in sets.into_iter().flat_map(|sets| sets.values_mut()).filter_map(serde_json::Value::as_array_mut) {
            list.retain(|name| {
                let known = serde_json::from_value::<oci_spec::runtime::Capability>(name.clone()).is_ok();
                if !known {
                    common::trace::note(&format!("capability {name} unknown: skipped"));
                }
                known
            });
        }
        let spec: Spec =
            serde_json::from_value(value).with_context(|| format!("{} is not a runtime spec", config.display()))?;
        let bundle = Bundle { dir, spec };
        bundle.check()?;
        Ok(bundle)
    }

    fn check(&self) -> Result<()> {
        let version = self.spec.version();
        if !version.starts_with("1.") {
            bail!("config.json has ociVersion {version:?}: this runtime reads version 1 of the runtime spec");
        }
        let process = self.spec.process().as_ref().context("config.json has no process: nothing to run")?;
        if process.args().as_ref().is_none_or(Vec::is_empty) {
            bail!("config.json's process.args is empty: nothing to run");
        }
        let rootfs = self.rootfs()?;
        if !rootfs.is_dir() {
            bail!("the bundle's root {} is not a directory", rootfs.display());
        }
        let hooks = self.spec.hooks().clone().unwrap_or_default();
        if hooks.create_container().is_some() || hooks.start_container().is_some() {
            common::trace::note(
                "config.json has createContainer or startContainer hooks: this runtime does not run them",
            );
        }
        for namespace in self.namespaces() {
            if namespace.0 == LinuxNamespaceType::Time {
                bail!("config.json asks for a time namespace: this runtime does not make one");
            }
        }
        Ok(())
    }

    /// root.path, relative to the bundle unless absolute.
    pub fn rootfs(&self) -> Result<PathBuf> {
        let root = self.spec.root().as_ref().context("config.json has no root")?;
        Ok(self.dir.join(root.path()))
    }

    /// Every namespace the container gets: (kind, path to join or None for a new one).
    pub fn namespaces(&self) -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
        let linux = self.spec.linux().as_ref();
        let list = linux.and_then(|linux| linux.namespaces().as_ref());
        list.map(|list| list.iter().map(|ns| (ns.typ(), ns.path().clone())).collect()).unwrap_or_default()
    }

    /// Whether the container gets namespace `kind`, and its path if it joins one.
    pub fn namespace(&self, kind: LinuxNamespaceType) -> Option<Option<PathBuf>> {
        self.namespaces().into_iter().find(|(typ, _)| *typ == kind).map(|(_, path)| path)
    }

    /// The cgroup path, relative to each hierarchy's root. An absolute
    /// cgroupsPath is taken as it is; a relative or missing one goes under
    /// the project's own parent, never under the caller's cgroup (the spec
    /// lets the runtime choose, and the caller's belongs to its tooling).
    pub fn cgroup_path(&self, id: &str) -> Result<String> {
        let path = self.spec.linux().as_ref().and_then(|linux| linux.cgroups_path().clone()).unwrap_or_default();
        let text = path.to_string_lossy().to_string();
        if text.contains(':') {
            bail!(
                "cgroupsPath {text:?} is systemd's slice:prefix:name form: this runtime manages cgroups itself; configure the engine with cgroup_manager = \"cgroupfs\""
            );
        }
        let relative = text.trim_start_matches('/');
        if relative.split('/').any(|part| part == "..") {
            bail!("cgroupsPath {text:?} has `..`: name a cgroup below the hierarchy's root");
        }
        Ok(match (path.is_absolute(), relative.is_empty()) {
            (true, false) => relative.to_string(),
            (false, false) => format!("{}/{relative}", common::CGROUP_PARENT),
            (_, true) => format!("{}/{id}", common::CGROUP_PARENT),
        })
    }
}

/// The controllers a container's cgroup gets: step09's, plus freezer (v1)
/// for `pause`; cpuacct, where it is a hierarchy of its own, for stats.
fn controllers() -> Option<Vec<String>> {
    let mut names = common::cgroup::controllers().unwrap_or_default();
    if !hierarchies::is_cgroup2_unified_mode() {
        names.push("freezer".into());
        // cpuset (cpus, mems) and blkio, where mounted: runtime-tools checks
        // that the container is in them.
        for name in ["cpuset", "blkio"] {
            if Path::new("/sys/fs/cgroup").join(name).is_dir() {
                names.push(name.into());
            }
        }
        if Path::new("/sys/fs/cgroup/cpuacct").is_dir() && !Path::new("/sys/fs/cgroup/cpu/cpuacct.usage").exists() {
            names.push("cpuacct".into());
        }
    }
    Some(names)
}

/// Creates the container's cgroup and writes `linux.resources` into it:
/// step09's `create_cgroup`, with the values from config.json instead of
/// Docker's options.
pub fn create_cgroup(bundle: &Bundle, path: &str, owned: &str) -> Result<Cgroup> {
    let lock = common::cgroup::lock_parent()?;
    let created = sys!(Cgroup::new_with_specified_controllers(hierarchies::auto(), path, controllers()));
    drop(lock);
    let cgroup = created?;
    let applied = apply_resources(bundle, &cgroup);
    if applied.is_err() {
        let _ = remove_cgroup(&cgroup, owned);
    }
    applied.map(|()| cgroup)
}

fn apply_resources(bundle: &Bundle, cgroup: &Cgroup) -> Result<()> {
    common::cgroup::check_created(cgroup)?;
    let v2 = cgroup.v2();
    let resources = bundle.spec.linux().as_ref().and_then(|linux| linux.resources().clone()).unwrap_or_default();
    let memory: &MemController = common::cgroup::controller(cgroup)?;
    if v2 {
        // One OOM kill takes the whole container, as in step09.
        sys!(fs::write(memory.path().join("memory.oom.group"), "1"))?;
    }
    if let Some(limits) = resources.memory() {
        if let Some(bytes) = limits.limit().filter(|bytes| *bytes > 0) {
            sys!(memory.set_limit(bytes))?;
            common::cgroup::read_back(memory.path(), &["memory.limit_in_bytes", "memory.max"]);
            // The spec's swap is memory+swap, as v1's memsw; v2 limits swap alone.
            if let Some(total) = limits.swap().filter(|total| *total != 0)
                && common::cgroup::swap_accounted(memory)
            {
                let swap = if total < 0 || !v2 { total } else { (total - bytes).max(0) };
                sys!(memory.set_memswap_limit(swap))?;
            }
        }
        if let Some(bytes) = limits.reservation().filter(|bytes| *bytes > 0) {
            sys!(memory.set_soft_limit(bytes))?;
        }
        if limits.disable_oom_killer() == Some(true) && !v2 {
            sys!(memory.disable_oom_killer())?;
        }
    }
    if let Some(limits) = resources.memory().as_ref().filter(|_| !v2) {
        if let Some(swappiness) = limits.swappiness() {
            sys!(memory.set_swappiness(swappiness))?;
        }
        if let Some(bytes) = limits.kernel_tcp() {
            sys!(memory.set_tcp_limit(bytes))?;
        }
        // Kernel memory limits are gone from recent kernels (EOPNOTSUPP
        // since 5.16); runc 1.1 ignores them too.
        if let Some(bytes) = limits.kernel()
            && let Err(err) = sys!(memory.set_kmem_limit(bytes))
        {
            common::trace::note(&format!("linux.resources.memory.kernel ignored: {err:#}"));
        }
    }
    if let Some(limits) = resources.cpu() {
        let cpu: &CpuController = common::cgroup::controller(cgroup)?;
        // Real-time time slices: the period first, as runc writes them.
        if let Some(period) = limits.realtime_period().filter(|_| !v2) {
            sys!(cpu.set_rt_period_us(period))?;
        }
        if let Some(runtime) = limits.realtime_runtime().filter(|_| !v2) {
            sys!(cpu.set_rt_runtime(runtime))?;
        }
        if limits.cpus().is_some() || limits.mems().is_some() {
            let cpuset: &CpuSetController = common::cgroup::controller(cgroup)?;
            if let Some(cpus) = limits.cpus() {
                sys!(cpuset.set_cpus(cpus))?;
            }
            if let Some(mems) = limits.mems() {
                sys!(cpuset.set_mems(mems))?;
            }
        }
        if let Some(shares) = limits.shares().filter(|shares| *shares >= 2) {
            sys!(cpu.set_shares(if v2 { 1 + ((shares.min(262_144) - 2) * 9999) / 262_142 } else { shares }))?;
        }
        if let Some(quota) = limits.quota().filter(|quota| *quota > 0) {
            sys!(cpu.set_cfs_quota_and_period(Some(quota), Some(limits.period().unwrap_or(100_000))))?;
            common::cgroup::read_back(cpu.path(), &["cpu.cfs_quota_us", "cpu.max"]);
        }
    }
    if let Some(limits) = resources.pids() {
        let pids: &PidController = common::cgroup::controller(cgroup)?;
        if limits.limit() > 0 {
            sys!(pids.set_pid_max(MaxValue::Value(limits.limit())))?;
            common::cgroup::read_back(pids.path(), &["pids.max"]);
        }
    }
    v1_extras(&resources, cgroup.path(), v2)?;
    // The device allowlist: the bundle's rules in order (engines send "deny
    // all" first, then what they allow), then runc's defaults
    // (common::devices::ALLOWED), which runc adds to every container.
    let mut rules: Vec<(Rule, bool)> = resources.devices().iter().flatten().filter_map(device_rule).collect();
    if v2 {
        // The eBPF program allows what an allow rule matches; deny rules
        // only undo allows, and the program denies by default.
        rules.retain(|(_, allow)| *allow);
        let mut allowed: Vec<Rule> = rules.into_iter().map(|(rule, _)| rule).collect();
        allowed.extend(common::devices::ALLOWED.iter().map(copy_rule));
        let program = sys!(common::bpf::load_device_filter(&allowed))?;
        let dir = sys!(fs::File::open(Path::new(hierarchies::UNIFIED_MOUNTPOINT).join(cgroup.path())))?;
        sys!(common::bpf::attach_device_filter(&program, &dir))?;
    } else {
        let devices: &DevicesController = common::cgroup::controller(cgroup)?;
        let all = &common::devices::ALL;
        sys!(devices.deny_device(all.kind, all.major, all.minor, all.access))?;
        for (rule, allow) in
            rules.into_iter().chain(common::devices::ALLOWED.iter().map(|rule| (copy_rule(rule), true)))
        {
            if allow {
                sys!(devices.allow_device(rule.kind, rule.major, rule.minor, rule.access))?;
            } else {
                sys!(devices.deny_device(rule.kind, rule.major, rule.minor, rule.access))?;
            }
        }
        common::cgroup::read_back(devices.path(), &["devices.list"]);
    }
    Ok(())
}

/// blockIO, network and hugepageLimits, on cgroup v1, written to the
/// controllers' files directly (cgroups-rs has no blkio setters for all of
/// them). A limit the host cannot hold (no such controller, no such file:
/// blkio.weight needs the BFQ scheduler) is an error, as in runc: silently
/// running without a limit that was asked for would be worse.
fn v1_extras(resources: &oci_spec::runtime::LinuxResources, path: &str, v2: bool) -> Result<()> {
    let write = |controller: &str, file: &str, value: String| -> Result<()> {
        let dir = Path::new("/sys/fs/cgroup").join(controller);
        if v2 || !dir.is_dir() {
            bail!(
                "{file} was asked for, but there is no {controller} cgroup controller here (cgroup v1, /sys/fs/cgroup/{controller})"
            );
        }
        sys!(fs::write(dir.join(path).join(file), value))?;
        Ok(())
    };
    if let Some(io) = resources.block_io() {
        if let Some(weight) = io.weight() {
            write("blkio", "blkio.weight", weight.to_string())?;
        }
        if let Some(weight) = io.leaf_weight() {
            write("blkio", "blkio.leaf_weight", weight.to_string())?;
        }
        for device in io.weight_device().iter().flatten() {
            if let Some(weight) = device.weight() {
                write("blkio", "blkio.weight_device", format!("{}:{} {weight}", device.major(), device.minor()))?;
            }
            if let Some(weight) = device.leaf_weight() {
                write("blkio", "blkio.leaf_weight_device", format!("{}:{} {weight}", device.major(), device.minor()))?;
            }
        }
        for (file, devices) in [
            ("blkio.throttle.read_bps_device", io.throttle_read_bps_device()),
            ("blkio.throttle.write_bps_device", io.throttle_write_bps_device()),
            ("blkio.throttle.read_iops_device", io.throttle_read_iops_device()),
            ("blkio.throttle.write_iops_device", io.throttle_write_iops_device()),
        ] {
            for device in devices.iter().flatten() {
                write("blkio", file, format!("{}:{} {}", device.major(), device.minor(), device.rate()))?;
            }
        }
    }
    if let Some(network) = resources.network() {
        if let Some(class) = network.class_id() {
            write("net_cls", "net_cls.classid", class.to_string())?;
        }
        for priority in network.priorities().iter().flatten() {
            write("net_prio", "net_prio.ifpriomap", format!("{} {}", priority.name(), priority.priority()))?;
        }
    }
    for limit in resources.hugepage_limits().iter().flatten() {
        write("hugetlb", &format!("hugetlb.{}.limit_in_bytes", limit.page_size()), limit.limit().to_string())?;
    }
    Ok(())
}

fn copy_rule(rule: &Rule) -> Rule {
    Rule { kind: rule.kind, major: rule.major, minor: rule.minor, access: rule.access }
}

/// One `linux.resources.devices` entry as a cgroup rule, and whether it allows.
fn device_rule(entry: &LinuxDeviceCgroup) -> Option<(Rule, bool)> {
    let kind = match entry.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => DeviceType::All,
        LinuxDeviceType::C | LinuxDeviceType::U => DeviceType::Char,
        LinuxDeviceType::B => DeviceType::Block,
        LinuxDeviceType::P => return None,
    };
    let access = entry.access().clone().unwrap_or_else(|| "rwm".into());
    let access: &'static [DevicePermissions] = ACCESS
        .iter()
        .find(|(letters, _)| letters.chars().all(|c| access.contains(c)) && access.chars().all(|c| letters.contains(c)))
        .map(|(_, access)| *access)?;
    Some((Rule { kind, major: entry.major().unwrap_or(-1), minor: entry.minor().unwrap_or(-1), access }, entry.allow()))
}

use DevicePermissions::MkNod as M;
use DevicePermissions::Read as R;
use DevicePermissions::Write as W;
/// Every combination of `rwm`, as the 'static slices a `Rule` holds.
const ACCESS: &[(&str, &[DevicePermissions])] =
    &[("rwm", &[R, W, M]), ("rw", &[R, W]), ("rm", &[R, M]), ("wm", &[W, M]), ("r", &[R]), ("w", &[W]), ("m", &[M])];

/// Removes a container's cgroup (step09's removal: retried while the kernel
/// says EBUSY; the project's parent goes too when empty). The processes in
/// it are killed first: after `delete`, nothing of the container runs.
pub fn remove_cgroup(cgroup: &Cgroup, owned: &str) -> Result<()> {
    let removed = remove_leaf(cgroup);
    // The parents `create` made (a/b/c: a and b), then the project's
    // parent, when empty: rmdir(2) refuses one that is not.
    let mut dir = Path::new(cgroup.path()).parent().map(Path::to_path_buf);
    while let Some(relative) = dir.filter(|relative| relative.starts_with(owned) && !owned.is_empty()) {
        for root in hierarchy_roots() {
            let _ = fs::remove_dir(root.join(&relative));
        }
        dir = relative.parent().map(Path::to_path_buf);
    }
    let _lock = common::cgroup::lock_parent()?;
    for root in hierarchy_roots() {
        let _ = fs::remove_dir(root.join(common::CGROUP_PARENT));
    }
    removed
}

/// The root of every cgroup hierarchy: each v1 controller's directory, or
/// the single v2 one.
fn hierarchy_roots() -> Vec<PathBuf> {
    if hierarchies::is_cgroup2_unified_mode() {
        return vec![PathBuf::from(hierarchies::UNIFIED_MOUNTPOINT)];
    }
    let dirs = fs::read_dir("/sys/fs/cgroup").map(|dirs| dirs.filter_map(Result::ok).map(|entry| entry.path()));
    dirs.map(|dirs| dirs.filter(|dir| dir.join("cgroup.procs").exists()).collect()).unwrap_or_default()
}

/// The topmost missing directory on the way to cgroup `path` (`a` for
/// `a/b/c` when `a` does not exist yet), below the project's own parent:
/// what `create` is about to make, and `delete` will remove.
pub fn first_missing(path: &str) -> String {
    let root = hierarchy_roots().into_iter().find(|root| root.ends_with("memory")).unwrap_or_else(|| {
        hierarchy_roots().into_iter().next().unwrap_or_else(|| PathBuf::from(hierarchies::UNIFIED_MOUNTPOINT))
    });
    let mut prefix = PathBuf::new();
    for part in Path::new(path).components() {
        prefix.push(part);
        if prefix == Path::new(common::CGROUP_PARENT) {
            continue;
        }
        if !root.join(&prefix).exists() {
            return prefix.to_string_lossy().into_owned();
        }
    }
    path.to_string()
}

/// The container's own cgroup, once its processes are gone.
fn remove_leaf(cgroup: &Cgroup) -> Result<()> {
    if !cgroup.exists() {
        return Ok(());
    }
    for _ in 0..500 {
        let procs = cgroup.procs();
        if procs.is_empty() {
            break;
        }
        for pid in procs {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid.pid as i32), Signal::SIGKILL);
        }
        sleep(Duration::from_millis(10));
    }
    common::cgroup::remove(cgroup)
}

/// One entry of config.json's `mounts`, as mount(2) takes it.
pub struct MountPlan {
    pub flags: MsFlags,
    /// MS_SHARED, MS_PRIVATE... (with MS_REC), applied by a second mount(2).
    pub propagation: MsFlags,
    /// What is left of the options: the filesystem's own (`mode=755`).
    pub data: String,
    pub bind: bool,
}

/// Splits a mount's options into flags, propagation and the filesystem's
/// own data, as runc's `parseMountOptions` does.
pub fn mount_plan(mount: &Mount) -> MountPlan {
    let mut plan =
        MountPlan { flags: MsFlags::empty(), propagation: MsFlags::empty(), data: String::new(), bind: false };
    let mut data = Vec::new();
    for option in mount.options().iter().flatten() {
        let (set, clear, propagation): (MsFlags, MsFlags, MsFlags) = match option.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty(), MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY, MsFlags::empty()),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty(), MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID, MsFlags::empty()),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty(), MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV, MsFlags::empty()),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty(), MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC, MsFlags::empty()),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty(), MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty(), MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty(), MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty(), MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME, MsFlags::empty()),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty(), MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty(), MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty(), MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME, MsFlags::empty()),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty(), MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty(), MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty(), MsFlags::empty()),
            "private" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_PRIVATE),
            "rprivate" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_PRIVATE | MsFlags::MS_REC),
            "shared" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_SHARED),
            "rshared" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_SHARED | MsFlags::MS_REC),
            "slave" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_SLAVE),
            "rslave" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_SLAVE | MsFlags::MS_REC),
            "unbindable" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_UNBINDABLE),
            "runbindable" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_UNBINDABLE | MsFlags::MS_REC),
            // SELinux relabelling and podman's tmpfs copy-up: nothing to do here.
            "z" | "Z" | "tmpcopyup" | "notmpcopyup" | "copy-symlink" => continue,
            other => {
                data.push(other.to_string());
                continue;
            }
        };
        plan.flags.insert(set);
        plan.flags.remove(clear);
        plan.propagation.insert(propagation);
    }
    plan.bind = plan.flags.contains(MsFlags::MS_BIND) || mount.typ().as_deref() == Some("bind");
    if plan.bind {
        plan.flags.insert(MsFlags::MS_BIND);
    }
    plan.data = data.join(",");
    plan
}

/// setrlimit(2)'s resource number for the spec's name (`RLIMIT_NOFILE`).
pub fn rlimit_resource(limit: &PosixRlimit) -> Result<Resource> {
    let name = limit.typ().to_string();
    Ok(match name.as_str() {
        "RLIMIT_CPU" => Resource::RLIMIT_CPU,
        "RLIMIT_FSIZE" => Resource::RLIMIT_FSIZE,
        "RLIMIT_DATA" => Resource::RLIMIT_DATA,
        "RLIMIT_STACK" => Resource::RLIMIT_STACK,
        "RLIMIT_CORE" => Resource::RLIMIT_CORE,
        "RLIMIT_RSS" => Resource::RLIMIT_RSS,
        "RLIMIT_NPROC" => Resource::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => Resource::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => Resource::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => Resource::RLIMIT_AS,
        "RLIMIT_LOCKS" => Resource::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => Resource::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => Resource::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => Resource::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => Resource::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => Resource::RLIMIT_RTTIME,
        other => bail!("unknown rlimit {other}"),
    })
}

/// The capability sets of `process.capabilities`, as the caps crate names them.
pub struct CapSets {
    pub bounding: caps::CapsHashSet,
    pub effective: caps::CapsHashSet,
    pub permitted: caps::CapsHashSet,
    pub inheritable: caps::CapsHashSet,
    pub ambient: caps::CapsHashSet,
}

pub fn capabilities(spec: Option<&LinuxCapabilities>) -> Result<CapSets> {
    let convert = |set: Option<&oci_spec::runtime::Capabilities>| -> Result<caps::CapsHashSet> {
        let mut out = caps::CapsHashSet::new();
        for cap in set.into_iter().flatten() {
            let name = format!("CAP_{cap}");
            match Capability::from_str(&name) {
                Ok(cap) => {
                    out.insert(cap);
                }
                // A capability this kernel's caps crate does not know is
                // skipped, as runc skips those the kernel lacks.
                Err(_) => common::trace::note(&format!("capability {name} unknown here: skipped")),
            }
        }
        Ok(out)
    };
    let Some(spec) = spec else {
        let none = caps::CapsHashSet::new;
        return Ok(CapSets {
            bounding: none(),
            effective: none(),
            permitted: none(),
            inheritable: none(),
            ambient: none(),
        });
    };
    Ok(CapSets {
        bounding: convert(spec.bounding().as_ref())?,
        effective: convert(spec.effective().as_ref())?,
        permitted: convert(spec.permitted().as_ref())?,
        inheritable: convert(spec.inheritable().as_ref())?,
        ambient: convert(spec.ambient().as_ref())?,
    })
}

/// `linux.seccomp` compiled to classic BPF with seccompiler, the compiler
/// common::seccomp uses for Docker's profile. seccompiler gives a filter one
/// answer for what it matches and one for the rest, so the profile becomes
/// several filters, as in common::seccomp: the first answers the default
/// action for every call not listed; each other one answers its own action
/// for its calls and allows the rest. The kernel keeps the most restrictive
/// answer of all filters (man 2 seccomp), and among errnos the last loaded.
pub fn seccomp_filter(profile: &LinuxSeccomp) -> Result<common::seccomp::Filter> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => TargetArch::x86_64,
        "aarch64" => TargetArch::aarch64,
        other => bail!("no seccomp support for {other} here: x86_64 and aarch64 only"),
    };
    let default_errno = profile.default_errno_ret().unwrap_or(libc::EPERM as u32);
    let default = action(profile.default_action(), default_errno)?;
    // For each distinct action: call number → the argument tests of which
    // any one matches (None: whatever the arguments).
    type Calls = BTreeMap<i64, Option<Vec<SeccompRule>>>;
    let mut groups: Vec<(SeccompAction, Calls)> = Vec::new();
    let mut listed: Calls = BTreeMap::new();
    let mut errnos = Vec::new();
    for entry in profile.syscalls().iter().flatten() {
        let answer = action(entry.action(), entry.errno_ret().unwrap_or(libc::EPERM as u32))?;
        if answer == default {
            continue;
        }
        let mut conditions = Vec::new();
        for arg in entry.args().iter().flatten() {
            let (op, value) = match arg.op() {
                LinuxSeccompOperator::ScmpCmpNe => (SeccompCmpOp::Ne, arg.value()),
                LinuxSeccompOperator::ScmpCmpLt => (SeccompCmpOp::Lt, arg.value()),
                LinuxSeccompOperator::ScmpCmpLe => (SeccompCmpOp::Le, arg.value()),
                LinuxSeccompOperator::ScmpCmpEq => (SeccompCmpOp::Eq, arg.value()),
                LinuxSeccompOperator::ScmpCmpGe => (SeccompCmpOp::Ge, arg.value()),
                LinuxSeccompOperator::ScmpCmpGt => (SeccompCmpOp::Gt, arg.value()),
                // libseccomp's MASKED_EQ: (arg & value) == valueTwo.
                LinuxSeccompOperator::ScmpCmpMaskedEq => {
                    (SeccompCmpOp::MaskedEq(arg.value()), arg.value_two().unwrap_or(0))
                }
            };
            conditions.push(SeccompCondition::new(arg.index() as u8, SeccompCmpArgLen::Qword, op, value)?);
        }
        let index = match groups.iter().position(|(existing, _)| *existing == answer) {
            Some(index) => index,
            None => {
                groups.push((answer.clone(), BTreeMap::new()));
                groups.len() - 1
            }
        };
        for name in entry.names() {
            let Some(number) = syscall_number(name) else { continue };
            for calls in [&mut groups[index].1, &mut listed] {
                let tests = calls.entry(number).or_insert_with(|| Some(Vec::new()));
                match (tests, conditions.is_empty()) {
                    (tests @ Some(_), true) => *tests = None,
                    (Some(tests), false) => tests.push(SeccompRule::new(conditions.clone())?),
                    (None, _) => {}
                }
            }
            if let SeccompAction::Errno(errno) = answer {
                errnos.push(format!("{name}: {}", nix::errno::Errno::from_raw(errno as i32)));
            }
        }
    }
    let rules = |calls: Calls| -> BTreeMap<i64, Vec<SeccompRule>> {
        calls.into_iter().map(|(number, tests)| (number, tests.unwrap_or_default())).collect()
    };
    let mut programs = Vec::new();
    // The first filter: the default action for whatever no entry names.
    // (A profile that allows by default, a deny list, needs none.)
    let allowed = listed.len();
    if default != SeccompAction::Allow {
        let filter = SeccompFilter::new(rules(listed), default.clone(), SeccompAction::Allow, arch)?;
        programs.push(filter.try_into()?);
    }
    for (answer, calls) in groups {
        if answer == SeccompAction::Allow {
            continue;
        }
        let filter = SeccompFilter::new(rules(calls), SeccompAction::Allow, answer, arch)?;
        programs.push(filter.try_into()?);
    }
    Ok(common::seccomp::Filter::from_programs(programs, allowed, errnos))
}

fn action(action: LinuxSeccompAction, errno: u32) -> Result<SeccompAction> {
    Ok(match action {
        LinuxSeccompAction::ScmpActAllow => SeccompAction::Allow,
        LinuxSeccompAction::ScmpActErrno => SeccompAction::Errno(errno),
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => SeccompAction::KillThread,
        LinuxSeccompAction::ScmpActKillProcess => SeccompAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => SeccompAction::Trap,
        LinuxSeccompAction::ScmpActLog => SeccompAction::Log,
        LinuxSeccompAction::ScmpActTrace => SeccompAction::Trace(errno),
        LinuxSeccompAction::ScmpActNotify => {
            bail!("seccomp action SCMP_ACT_NOTIFY needs a listener: this runtime does not support it")
        }
    })
}

/// A call's number on this architecture; None for one it does not have
/// (profiles list calls of every architecture, as libseccomp skips them).
fn syscall_number(name: &str) -> Option<i64> {
    match std::env::consts::ARCH {
        "x86_64" => syscalls::x86_64::Sysno::from_str(name).ok().map(|call| call.id().into()),
        "aarch64" => syscalls::aarch64::Sysno::from_str(name).ok().map(|call| call.id().into()),
        _ => None,
    }
}

/// Opens `path` for writing a pid file atomically: conmon and containerd
/// read it as soon as `create` returns, and must never see half a number.
pub fn write_pid_file(path: &Path, pid: u32) -> Result<()> {
    let temporary = path.with_extension("tmp-step10");
    let options = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o644).clone();
    let mut file = sys!(options.open(&temporary))?;
    sys!(file.write_all(pid.to_string().as_bytes()))?;
    sys!(fs::rename(&temporary, path))?;
    Ok(())
}

/// A message from the container's first process to `create` over their
/// socket: a byte of data, and maybe a descriptor (the terminal's master).
pub fn recv_message(socket: &impl AsRawFd) -> nix::Result<(Vec<u8>, Option<OwnedFd>)> {
    let mut buffer = vec![0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buffer)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let message = recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let mut fd = None;
    for cmsg in message.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            // SAFETY: the kernel just installed these descriptors for us.
            fd = fds.first().map(|raw| unsafe { OwnedFd::from_raw_fd(*raw) });
        }
    }
    let length = message.bytes;
    buffer.truncate(length);
    Ok((buffer, fd))
}

/// Sends one message; MSG_NOSIGNAL: a gone reader is EPIPE, not SIGPIPE.
pub fn send_message(socket: &impl AsRawFd, bytes: &[u8]) -> nix::Result<usize> {
    nix::sys::socket::send(socket.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL)
}

/// The bundle's `mounts`, in order, inside `rootfs` (before pivot_root, so
/// that a bind mount's source is the host's path). `cgroup` is the
/// container's cgroup, for a `cgroup` mount; `userns`: the kernel locks
/// the flags of the host's mounts, so a remount keeps them.
pub fn mount_all(bundle: &Bundle, rootfs: &Path, cgroup: &str) -> Result<()> {
    for entry in bundle.spec.mounts().iter().flatten() {
        let destination = entry.destination().to_string_lossy().to_string();
        let target = common::paths::in_rootfs(rootfs, &destination)?;
        let plan = mount_plan(entry);
        let typ = entry.typ().clone().unwrap_or_else(|| "none".into());
        if typ == "cgroup" || typ == "cgroup2" {
            mount_cgroup(&target, cgroup, &plan)?;
            continue;
        }
        let source = entry.source().clone().unwrap_or_else(|| PathBuf::from(&typ));
        if plan.bind {
            // A relative source is the bundle's (runtime-spec config.md).
            let source = bundle.dir.join(source);
            if source.is_dir() {
                sys!(fs::create_dir_all(&target))?;
            } else if fs::symlink_metadata(&target).is_err() {
                if let Some(parent) = target.parent() {
                    sys!(fs::create_dir_all(parent))?;
                }
                sys!(fs::File::create(&target))?;
            }
            let rec = plan.flags & MsFlags::MS_REC;
            sys!(mount(Some(&source), &target, None::<&str>, MsFlags::MS_BIND | rec, None::<&str>))?;
            // A bind mount ignores every other flag: they take a remount,
            // which must repeat the flags the kernel locked (step09's /dev).
            let others = plan.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
            if !others.is_empty() {
                let kept = sys!(mount_flags(&target))?;
                let remount = kept | others | MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
                sys!(mount(None::<&str>, &target, None::<&str>, remount, None::<&str>))?;
            }
        } else {
            sys!(fs::create_dir_all(&target))?;
            let data = (!plan.data.is_empty()).then_some(plan.data.as_str());
            let flags = plan.flags - MsFlags::MS_REMOUNT;
            let mounted = sys!(mount(Some(&source), &target, Some(typ.as_str()), flags, data));
            match mounted {
                // sysfs needs a network namespace of the container's own
                // user namespace; otherwise the host's, read-only, as runc does.
                Err(_) if typ == "sysfs" => {
                    let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
                    sys!(mount(Some("/sys"), &target, None::<&str>, bind, None::<&str>))?;
                }
                other => other?,
            }
        }
        if !plan.propagation.is_empty() {
            sys!(mount(None::<&str>, &target, None::<&str>, plan.propagation, None::<&str>))?;
        }
    }
    Ok(())
}

/// A `cgroup` mount: on v2 the container's cgroup namespace shows its own
/// cgroup as the root of a cgroup2 mount. On v1, a tmpfs with one directory
/// per hierarchy, each a bind mount of the container's own cgroup there
/// (runc's way: the container sees its limits, and nothing above them).
fn mount_cgroup(target: &Path, cgroup: &str, plan: &MountPlan) -> Result<()> {
    sys!(fs::create_dir_all(target))?;
    let flags = plan.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if hierarchies::is_cgroup2_unified_mode() {
        match sys!(mount(Some("cgroup2"), target, Some("cgroup2"), flags, None::<&str>)) {
            Ok(()) => return Ok(()),
            Err(_) => {
                let own = Path::new(hierarchies::UNIFIED_MOUNTPOINT).join(cgroup);
                let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
                sys!(mount(Some(&own), target, None::<&str>, bind, None::<&str>))?;
                return Ok(());
            }
        }
    }
    let writable = flags - MsFlags::MS_RDONLY;
    sys!(mount(Some("tmpfs"), target, Some("tmpfs"), writable, Some("mode=755")))?;
    let mountinfo = sys!(fs::read_to_string("/proc/self/mountinfo"))?;
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else { continue };
        if !right.starts_with("cgroup ") {
            continue;
        }
        let Some(point) = left.split_whitespace().nth(4) else { continue };
        let Some(name) = point.strip_prefix("/sys/fs/cgroup/") else { continue };
        let inside = target.join(name);
        sys!(fs::create_dir_all(&inside))?;
        let own = Path::new(point).join(cgroup);
        // A hierarchy the container has no cgroup in shows its root.
        let source = if own.is_dir() { own } else { PathBuf::from(point) };
        sys!(mount(Some(&source), &inside, None::<&str>, MsFlags::MS_BIND, None::<&str>))?;
        let kept = sys!(mount_flags(&inside))?;
        let remount = kept | flags | MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
        sys!(mount(None::<&str>, &inside, None::<&str>, remount, None::<&str>))?;
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        let remount = flags | MsFlags::MS_REMOUNT;
        sys!(mount(None::<&str>, target, None::<&str>, remount, None::<&str>))?;
    }
    Ok(())
}

/// The device nodes every container gets (step09's, from common::devices)
/// plus the bundle's `linux.devices`, in a /dev that the bundle mounts as a
/// tmpfs. Without a user namespace they are made with mknod(2); in one,
/// the host's nodes are bind-mounted, as in step09 and runc.
pub fn make_devices(bundle: &Bundle, rootfs: &Path, userns: bool) -> Result<()> {
    let dev_mounted = bundle.spec.mounts().iter().flatten().any(|entry| {
        entry.destination() == Path::new("/dev") && entry.typ().as_deref() != Some("bind") && !mount_plan(entry).bind
    });
    if !dev_mounted {
        return Ok(());
    }
    let dev = common::paths::in_rootfs(rootfs, "/dev")?;
    let mut nodes: Vec<(PathBuf, SFlag, u32, u64, u64, u32, u32)> = common::devices::DEVICES
        .iter()
        .map(|device| {
            (PathBuf::from("/dev").join(device.name), SFlag::S_IFCHR, device.mode, device.major, device.minor, 0, 0)
        })
        .collect();
    for device in bundle.spec.linux().as_ref().and_then(|linux| linux.devices().as_ref()).into_iter().flatten() {
        let kind = match device.typ() {
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            _ => SFlag::S_IFCHR,
        };
        nodes.retain(|node| node.0 != *device.path());
        let mode = device.file_mode().unwrap_or(0o666) & 0o7777;
        let (major, minor) = (device.major() as u64, device.minor() as u64);
        nodes.push((
            device.path().clone(),
            kind,
            mode,
            major,
            minor,
            device.uid().unwrap_or(0),
            device.gid().unwrap_or(0),
        ));
    }
    for (path, kind, mode, major, minor, uid, gid) in nodes {
        let target = common::paths::in_rootfs(rootfs, &path.to_string_lossy())?;
        if let Some(parent) = target.parent() {
            sys!(fs::create_dir_all(parent))?;
        }
        if fs::symlink_metadata(&target).is_ok() {
            continue;
        }
        if userns {
            sys!(fs::File::create(&target))?;
            let bind = MsFlags::MS_BIND;
            sys!(mount(Some(&path), &target, None::<&str>, bind, None::<&str>))?;
            continue;
        }
        sys!(mknod(&target, kind, Mode::from_bits_truncate(mode), makedev(major, minor)))?;
        sys!(fs::set_permissions(&target, fs::Permissions::from_mode(mode)))?;
        sys!(chown(&target, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid))))?;
    }
    for (name, link) in common::devices::LINKS {
        if fs::symlink_metadata(dev.join(name)).is_err() {
            sys!(symlink(link, dev.join(name)))?;
        }
    }
    Ok(())
}

/// After pivot_root: `linux.sysctl`, then `readonlyPaths` and
/// `maskedPaths` (step09's loops, with the bundle's lists instead of
/// Docker's), then a read-only root if `root.readonly`.
pub fn protect_paths(bundle: &Bundle) -> Result<()> {
    let linux = bundle.spec.linux().clone().unwrap_or_default();
    for (key, value) in linux.sysctl().iter().flatten() {
        let file = Path::new("/proc/sys").join(key.replace('.', "/"));
        sys!(fs::write(&file, value))?;
    }
    for path in linux.readonly_paths().iter().flatten() {
        let target = Path::new(path);
        if fs::symlink_metadata(target).is_err() {
            continue;
        }
        sys!(mount(Some(target), target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>))?;
        let kept = sys!(mount_flags(target))?;
        let remount = kept | MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        sys!(mount(None::<&str>, target, None::<&str>, remount, None::<&str>))?;
    }
    for path in linux.masked_paths().iter().flatten() {
        let target = Path::new(path);
        match fs::symlink_metadata(target) {
            Err(_) => continue,
            Ok(meta) if meta.is_dir() => {
                sys!(mount(Some("tmpfs"), target, Some("tmpfs"), MsFlags::MS_RDONLY, None::<&str>))?
            }
            _ => sys!(mount(Some("/dev/null"), target, None::<&str>, MsFlags::MS_BIND, None::<&str>))?,
        }
    }
    if bundle.spec.root().as_ref().and_then(|root| root.readonly()) == Some(true) {
        let kept = sys!(mount_flags(Path::new("/")))?;
        let remount = kept | MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        sys!(mount(None::<&str>, "/", None::<&str>, remount, None::<&str>))?;
    }
    Ok(())
}

/// `spec`: a default config.json (oci-spec's default, which follows
/// `runc spec`: new pid, network, ipc, uts and mount namespaces, the usual
/// mounts, masked and read-only paths, a few capabilities), with `command`
/// as the process. Refuses to overwrite one.
pub fn write_default_spec(bundle: &Path, command: &[String]) -> Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        bail!("{} exists already: remove it first", path.display());
    }
    let mut spec = Spec::default();
    spec.set_version(OCI_VERSION.into());
    spec.set_hostname(Some("container".into()));
    if !command.is_empty() {
        let mut process = spec.process().clone().unwrap_or_default();
        process.set_args(Some(command.to_vec()));
        spec.set_process(Some(process));
    }
    spec.save(&path).map_err(|err| anyhow::anyhow!("cannot write {}: {err}", path.display()))
}

/// The mount point of the mount that holds `path` (the longest mount point
/// in /proc/self/mountinfo that is a prefix of it).
pub fn mount_point_of(path: &Path) -> Result<PathBuf> {
    let mountinfo = sys!(fs::read_to_string("/proc/self/mountinfo"))?;
    let best = mountinfo
        .lines()
        .filter_map(|line| line.split_whitespace().nth(4))
        .map(PathBuf::from)
        .filter(|point| path.starts_with(point))
        .max_by_key(|point| point.as_os_str().len());
    Ok(best.unwrap_or_else(|| PathBuf::from("/")))
}

/// Runs hooks whose failure is only a warning (poststart, poststop): each
/// one runs, whatever the ones before did (runtime.md, lifecycle).
pub fn run_hooks_warning(runtime: &Runtime, kind: &str, hooks: Option<&Vec<Hook>>, state: &serde_json::Value) {
    for hook in hooks.into_iter().flatten() {
        if let Err(err) = run_hooks(kind, Some(&vec![hook.clone()]), state) {
            runtime.note(&format!("warning: {err:#}"));
        }
    }
}

/// Runs the `kind` hooks (config.md, POSIX-platform hooks): programs on the
/// host, each given the container's state as JSON on its stdin, one after
/// the other, each within its timeout. The first failure is the error.
pub fn run_hooks(kind: &str, hooks: Option<&Vec<Hook>>, state: &serde_json::Value) -> Result<()> {
    for hook in hooks.into_iter().flatten() {
        let path = hook.path().display().to_string();
        let args = hook.args().clone().unwrap_or_default();
        let mut command = std::process::Command::new(hook.path());
        if let Some((first, rest)) = args.split_first() {
            std::os::unix::process::CommandExt::arg0(&mut command, first);
            command.args(rest);
        }
        command.env_clear();
        for var in hook.env().iter().flatten() {
            if let Some((key, value)) = var.split_once('=') {
                command.env(key, value);
            }
        }
        command.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::null());
        let mut child = command.spawn().with_context(|| format!("{kind} hook {path} cannot be started"))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(state.to_string().as_bytes());
        }
        let deadline =
            hook.timeout().map(|seconds| std::time::Instant::now() + Duration::from_secs(seconds.max(0) as u64));
        let status = loop {
            if let Some(status) = child.try_wait().with_context(|| format!("waiting for {kind} hook {path}"))? {
                break status;
            }
            if deadline.is_some_and(|deadline| std::time::Instant::now() > deadline) {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{kind} hook {path} did not end within its timeout ({} s)", hook.timeout().unwrap_or_default());
            }
            sleep(Duration::from_millis(2));
        };
        if !status.success() {
            bail!("{kind} hook {path} failed: {status}");
        }
    }
    Ok(())
}
