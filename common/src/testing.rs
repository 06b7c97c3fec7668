//! Helpers for the steps' integration tests: a private image and container
//! directory per test (so tests run in parallel and never touch a user's),
//! running the step's binary, and the root check that skips loudly, or fails
//! under `CI=true`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::fsutil;

/// True when the test may go on. Not root: prints a loud SKIPPED line and
/// returns false, or panics when `CI=true`, because a CI run that skipped
/// the checks proved nothing.
pub fn require_root(test: &str) -> bool {
    if nix::unistd::Uid::effective().is_root() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|value| value == "true") {
        panic!("{test} needs root, and CI=true does not allow skipping it");
    }
    // Written to the real stderr: the test harness captures eprintln! of a
    // passing test, which would make the skip silent.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("SKIPPED {test}: needs root (run the tests with sudo)\n").as_bytes(),
    );
    false
}

/// Says loudly, on the real stderr, that `test` checked nothing on this
/// machine and why: a check that passes by asserting nothing must not look
/// like one that passed.
pub fn skipped(test: &str, why: &str) {
    let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("SKIPPED {test}: {why}\n").as_bytes());
}

/// A test that needs root: `as_root!(name, { … })` is a `#[test] fn name`
/// that runs its body only after [`require_root`] said it may.
#[macro_export]
macro_rules! as_root {
    ($name:ident, $body:expr) => {
        #[test]
        fn $name() {
            if !$crate::testing::require_root(stringify!($name)) {
                return;
            }
            $body
        }
    };
}

/// Fails the test with one line naming the command that fixes it when this
/// machine cannot build the default image. A sandbox starts without images,
/// so a test's first run builds it from the host's static busybox; without
/// one, every check would fail further down with the runtime's exit 125.
pub fn require_default_image() {
    static FOUND: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let found = FOUND.get_or_init(|| crate::image::find_static_busybox().map(drop).map_err(|err| format!("{err:#}")));
    if let Err(err) = found {
        panic!("cannot run this test: {err}");
    }
}

/// A temporary state directory for one test, removed when dropped.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub images: PathBuf,
    pub containers: PathBuf,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::Builder::new().prefix("dfs-test-").tempdir().expect("cannot create a temporary directory");
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o711)).unwrap();
        let images = dir.path().join("images");
        let containers = dir.path().join("containers");
        Sandbox { dir, images, containers }
    }

    /// `BINARY run --image-dir … --container-dir … ARGS…`.
    pub fn command(&self, binary: &str, args: &[&str]) -> Command {
        if !args.contains(&"--image") {
            require_default_image();
        }
        let mut command = Command::new(binary);
        command.arg("run").arg("--image-dir").arg(&self.images).arg("--container-dir").arg(&self.containers).args(args);
        command
    }

    /// Fails when a container directory or a mount below the sandbox is
    /// left over.
    pub fn assert_clean(&self) {
        let left: Vec<_> = std::fs::read_dir(&self.containers)
            .map(|dir| dir.filter_map(Result::ok).map(|entry| entry.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "container directories left behind: {left:?}");
        let mounts = fsutil::mounts_under("self", self.dir.path()).expect("cannot read mountinfo");
        assert!(mounts.is_empty(), "mounts left behind: {mounts:?}");
    }

    /// The extracted root filesystem of the default image: its one layer
    /// in the store (`busybox/rootfs` links to it).
    pub fn image_rootfs(&self) -> PathBuf {
        let link = self.images.join(crate::DEFAULT_IMAGE).join("rootfs");
        std::fs::canonicalize(&link).unwrap_or(link)
    }
}

/// Standard output as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The exit status, with a readable panic when the process was killed.
pub fn code(output: &Output) -> i32 {
    output
        .status
        .code()
        .unwrap_or_else(|| panic!("the runtime itself was killed: {:?}\n{}", output.status, stderr(output)))
}

/// The target of a namespace link such as `/proc/self/ns/mnt`.
pub fn namespace(pid: &str, kind: &str) -> String {
    std::fs::read_link(Path::new("/proc").join(pid).join("ns").join(kind))
        .map(|target| target.to_string_lossy().into_owned())
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/ns/{kind}: {e}"))
}

// ---------------------------------------------------------------------------
// Checks shared by the steps' tests. Each one runs the step's binary and
// asserts what the kernel shows (exit statuses, mountinfo, namespace links,
// device numbers, files), so a step's `tests/` file only lists what that step
// proves.

/// How a test starts a step's binary. Step01 runs its command on the host
/// and takes no image or container directory; from step02 on, every run gets
/// the sandbox's.
#[derive(Clone, Copy)]
pub struct Step {
    pub binary: &'static str,
    images: bool,
}

impl Step {
    /// Step01: `BINARY run ARGS…`; the command runs on the host.
    pub const fn on_host(binary: &'static str) -> Step {
        Step { binary, images: false }
    }

    /// Step02 on: `BINARY run --image-dir … --container-dir … ARGS…`.
    pub const fn in_image(binary: &'static str) -> Step {
        Step { binary, images: true }
    }

    /// The command line for one run, not started yet.
    pub fn command(&self, sandbox: &Sandbox, args: &[&str]) -> Command {
        if self.images {
            sandbox.command(self.binary, args)
        } else {
            let mut command = Command::new(self.binary);
            command.arg("run").args(args);
            command
        }
    }

    /// Runs to completion and checks that nothing was left behind.
    pub fn run(&self, sandbox: &Sandbox, args: &[&str]) -> Output {
        finished(self.command(sandbox, args), sandbox)
    }

    /// The first word of the runtime's last line.
    fn who(&self) -> &'static str {
        if self.images { "container" } else { "process" }
    }

    fn expect_images(&self, check: &str) {
        assert!(self.images, "{check} needs a step that runs an image (step02 on)");
    }
}

/// Runs `command` to completion, then checks that it left no container
/// directory and no mount below the sandbox.
pub fn finished(mut command: Command, sandbox: &Sandbox) -> Output {
    let output = command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    sandbox.assert_clean();
    output
}

impl Sandbox {
    /// A name no other sandbox uses, for mounts and files a test looks for.
    pub fn unique(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.dir.path().file_name().unwrap_or_default().to_string_lossy())
    }

    /// A file that exists on the host only: a container that can see it is
    /// looking at the host's files.
    pub fn host_only_file(&self) -> PathBuf {
        let path = self.dir.path().join("host-only");
        std::fs::write(&path, "host\n").expect("cannot write the host-only file");
        path
    }
}

/// The last line the runtime printed on stderr, trace lines aside: with
/// `--trace`, the cleanup after the report is traced too.
pub fn last_line(output: &Output) -> String {
    stderr(output).lines().rfind(|line| !line.starts_with("trace[")).unwrap_or_default().to_string()
}

/// Asserts the exit status and the runtime's last line: `process PID …` for
/// step01, `container ID …` (twelve hex digits) after it, then `ending`.
pub fn assert_ended(step: Step, output: &Output, status: i32, ending: &str) {
    let context = format!("stdout:\n{}\nstderr:\n{}", stdout(output), stderr(output));
    assert_eq!(code(output), status, "{context}");
    let last = last_line(output);
    let words: Vec<&str> = last.splitn(3, ' ').collect();
    let [who, id, rest] = words[..] else { panic!("last line {last:?} is not `{} ID {ending}`", step.who()) };
    assert_eq!(who, step.who(), "last line {last:?}");
    let id_ok = if step.images {
        id.len() == 12 && id.chars().all(|c| c.is_ascii_hexdigit())
    } else {
        id.parse::<u32>().is_ok()
    };
    assert!(id_ok, "{id:?} in {last:?} is not a {}", if step.images { "container id" } else { "pid" });
    assert_eq!(rest, ending, "{context}");
}

/// Docker's exit statuses: the command's own, 127 when it is missing, 126
/// when it cannot be executed, 128+9 when it died of SIGKILL.
pub fn check_exit_codes(step: Step) {
    let sandbox = Sandbox::new();
    check_own_exit_codes(step, &sandbox);
    let output = step.run(&sandbox, &["sh", "-c", "kill -9 $$"]);
    assert_ended(step, &output, 137, "was killed by signal 9 (SIGKILL)");
}

/// The statuses that do not involve a signal: 0, 3, 127 and 126, the
/// last two with an error that names the command.
fn check_own_exit_codes(step: Step, sandbox: &Sandbox) {
    let cases: &[(&[&str], i32)] =
        &[(&["true"], 0), (&["sh", "-c", "exit 3"], 3), (&["dfs-no-such-command"], 127), (&["/etc"], 126)];
    for (args, status) in cases {
        let output = step.run(sandbox, args);
        assert_ended(step, &output, *status, &format!("exited with status {status}"));
        if (126..=127).contains(status) {
            assert!(stderr(&output).contains(args[0]), "the error does not name {:?}: {}", args[0], stderr(&output));
        }
    }
}

/// The command is looked up on the container's PATH (the default one, or
/// `-e PATH=…`), as Docker does, not on the runtime's own PATH.
pub fn check_command_is_found_on_the_containers_path(step: Step) {
    let sandbox = Sandbox::new();
    let mut command = step.command(&sandbox, &["sh", "-c", "echo found"]);
    command.env("PATH", "/nowhere");
    let output = finished(command, &sandbox);
    assert_ended(step, &output, 0, "exited with status 0");
    assert_eq!(stdout(&output), "found\n");
    let output = step.run(&sandbox, &["-e", "PATH=/nowhere", "sh", "-c", "echo found"]);
    assert_ended(step, &output, 127, "exited with status 127");
}

/// `-e KEY=VALUE` and `-e KEY` (the host's value) reach the command; the
/// rest of the runtime's environment does not.
pub fn check_env(step: Step) {
    let sandbox = Sandbox::new();
    let mut command = step.command(&sandbox, &["-e", "DFS_GREETING=hello world", "-e", "DFS_FROM_HOST", "env"]);
    command.env("DFS_FROM_HOST", "passed on").env("DFS_HOST_ONLY", "leaked");
    let output = finished(command, &sandbox);
    assert_ended(step, &output, 0, "exited with status 0");
    let out = stdout(&output);
    let env: Vec<&str> = out.lines().collect();
    assert!(env.contains(&"DFS_GREETING=hello world"), "-e KEY=VALUE is missing: {env:?}");
    assert!(env.contains(&"DFS_FROM_HOST=passed on"), "-e KEY is missing: {env:?}");
    assert!(!env.iter().any(|var| var.starts_with("DFS_HOST_ONLY=")), "the host's environment leaked in: {env:?}");
}

/// A bad option ends with status 125 and one line on stderr, before anything
/// is created.
pub fn check_bad_option(step: Step) {
    let sandbox = Sandbox::new();
    let output = step.run(&sandbox, &["--bogus", "true"]);
    assert_eq!(code(&output), 125, "{}", stderr(&output));
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "expected one line: {err}");
    assert!(err.contains("--bogus"), "the error does not name --bogus: {err}");
    assert!(!sandbox.images.exists() && !sandbox.containers.exists(), "a rejected command line created directories");
}

/// `run` without a command ends with status 125 and one line that says
/// what is missing.
pub fn check_missing_command_is_named(step: Step) {
    let sandbox = Sandbox::new();
    let output = step.run(&sandbox, &[]);
    assert_eq!(code(&output), 125, "{}", stderr(&output));
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "expected one line: {err}");
    assert!(err.contains("COMMAND"), "the error does not name the missing COMMAND: {err}");
}

/// `--image nosuch`: status 125, one line naming the file to provide, and
/// nothing created.
pub fn check_missing_image(step: Step) {
    step.expect_images("check_missing_image");
    let sandbox = Sandbox::new();
    let output = step.run(&sandbox, &["--image", "nosuch", "true"]);
    assert_eq!(code(&output), 125, "{}", stderr(&output));
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "expected one line: {err}");
    assert!(err.contains("nosuch.tar"), "the error does not name nosuch.tar: {err}");
    let images: Vec<_> = std::fs::read_dir(&sandbox.images).map(|dir| dir.flatten().collect()).unwrap_or_default();
    assert!(images.is_empty(), "a missing image left files: {images:?}");
}

/// A start that fails half way (the image has /proc and /sys but no /dev, so
/// mounting /dev fails after the others succeeded) ends with status 125 and
/// leaves no mount and no container directory.
pub fn check_failed_start_leaves_nothing(step: Step) {
    step.expect_images("check_failed_start_leaves_nothing");
    let sandbox = Sandbox::new();
    let rootfs = sandbox.images.join("nodev").join("rootfs");
    for dir in ["proc", "sys", "bin"] {
        std::fs::create_dir_all(rootfs.join(dir)).unwrap();
    }
    let output = step.run(&sandbox, &["--image", "nodev", "true"]);
    assert_eq!(code(&output), 125, "{}", stderr(&output));
    assert!(stderr(&output).contains("ENOENT"), "expected the missing /dev to fail the start: {}", stderr(&output));
}

/// Mounts the command makes and does not unmount are gone once it ends.
pub fn check_mounts_made_inside_are_removed(step: Step) {
    step.expect_images("check_mounts_made_inside_are_removed");
    let sandbox = Sandbox::new();
    let source = sandbox.unique("dfs-left");
    let script = format!("mount -t tmpfs {source} /mnt && grep -q {source} /proc/self/mountinfo");
    let output = step.run(&sandbox, &["sh", "-c", &script]);
    assert_ended(step, &output, 0, "exited with status 0");
    let host = fsutil::mountinfo("self").unwrap();
    assert!(!host.contains(&source), "the command's mount is still there:\n{host}");
}

/// "/" is the image's: its /etc/os-release, and none of the host's files.
pub fn check_root_is_the_image(step: Step) {
    step.expect_images("check_root_is_the_image");
    let sandbox = Sandbox::new();
    let host_file = sandbox.host_only_file();
    let output =
        step.run(&sandbox, &["sh", "-c", &format!("cat /etc/os-release; {}", IS_VISIBLE), "sh", utf8(&host_file)]);
    assert_ended(step, &output, 0, "exited with status 0");
    let out = stdout(&output);
    assert!(out.contains("docker-from-scratch busybox"), "not the image's /etc/os-release: {out}");
    assert!(out.contains("HOST-HIDDEN\n"), "the host's {} is visible inside: {out}", host_file.display());
}

/// The container's root overlay is mounted `volatile` (overlayfs skips
/// every sync of the upper layer, which is removed at the end anyway), and
/// not with `--keep`, whose upper layer outlives the run. Read from the
/// kernel's mountinfo inside the container.
pub fn check_overlay_is_volatile_unless_kept(step: Step) {
    step.expect_images("check_overlay_is_volatile_unless_kept");
    let sandbox = Sandbox::new();
    let volatile = |args: &[&str]| {
        let output = step.command(&sandbox, args).output().unwrap();
        assert_eq!(code(&output), 0, "{}", stderr(&output));
        let inside = stdout(&output);
        let mounts = parse_mountinfo(&inside);
        let root = mounts.iter().rev().find(|mount| mount.point == "/").expect("no mount on / inside");
        assert_eq!(root.fstype, "overlay", "{inside}");
        // Linux 6.1 shows `volatile`; later kernels name it `fsync=volatile`.
        root.super_options.split(',').any(|option| option == "volatile" || option == "fsync=volatile")
    };
    assert!(volatile(&["cat", "/proc/self/mountinfo"]), "the root overlay is not volatile");
    assert!(!volatile(&["--keep", "cat", "/proc/self/mountinfo"]), "the root overlay of --keep is volatile");
    for kept in std::fs::read_dir(&sandbox.containers).unwrap() {
        crate::fsutil::remove_tree(&kept.unwrap().path()).unwrap();
    }
    sandbox.assert_clean();
}

/// Prints HOST-VISIBLE or HOST-HIDDEN, for a file given as "$1".
pub const IS_VISIBLE: &str = r#"if [ -e "$1" ]; then echo HOST-VISIBLE; else echo HOST-HIDDEN; fi"#;

/// The image's `breakout` (chroot, then `..` until the real root) prints
/// ESCAPED, and the host's files are visible from where it ended.
pub fn check_breakout_escapes(step: Step) {
    assert_eq!(breakout(step), "ESCAPED\nHOST-VISIBLE\n");
}

/// The image's `breakout` prints CONTAINED, and the host's files are not
/// visible from where it ended.
pub fn check_breakout_is_contained(step: Step) {
    assert_eq!(breakout(step), "CONTAINED\nHOST-HIDDEN\n");
}

fn breakout(step: Step) -> String {
    step.expect_images("breakout");
    let sandbox = Sandbox::new();
    let host_file = sandbox.host_only_file();
    let output = step.run(&sandbox, &["breakout", "sh", "-c", IS_VISIBLE, "sh", utf8(&host_file)]);
    assert_ended(step, &output, 0, "exited with status 0");
    stdout(&output)
}

/// The command's mount namespace, as `readlink /proc/self/ns/mnt` inside
/// shows it, and the test's own.
pub fn mount_namespaces(step: Step) -> (String, String) {
    step.expect_images("mount_namespaces");
    let sandbox = Sandbox::new();
    let output = step.run(&sandbox, &["readlink", "/proc/self/ns/mnt"]);
    assert_ended(step, &output, 0, "exited with status 0");
    let inside = stdout(&output).trim().to_string();
    assert!(inside.starts_with("mnt:["), "readlink /proc/self/ns/mnt gave {inside:?}");
    (inside, namespace("self", "mnt"))
}

/// The command has a mount namespace of its own.
pub fn check_own_mount_namespace(step: Step) {
    let (inside, host) = mount_namespaces(step);
    assert_ne!(inside, host, "the container shares the host's mount namespace");
}

/// /dev has the usual character devices, with their kernel numbers, and no
/// block device of the host's.
pub fn check_devices(step: Step) {
    step.expect_images("check_devices");
    let sandbox = Sandbox::new();
    let script = "stat -c '%n %F %t:%T' /dev/null /dev/zero /dev/urandom && echo x > /dev/null && \
                  echo blocks: $(find /dev -type b)";
    let output = step.run(&sandbox, &["sh", "-c", script]);
    assert_ended(step, &output, 0, "exited with status 0");
    assert_eq!(
        stdout(&output),
        "/dev/null character special file 1:3\n\
         /dev/zero character special file 1:5\n\
         /dev/urandom character special file 1:9\n\
         blocks:\n"
    );
}

/// The only mounts the command can see are its root and the kernel views on
/// it: the host's old root is gone, not just hidden by a chroot.
pub fn check_only_the_containers_mounts(step: Step) {
    step.expect_images("check_only_the_containers_mounts");
    let sandbox = Sandbox::new();
    let output = step.run(&sandbox, &["cat", "/proc/self/mountinfo"]);
    assert_ended(step, &output, 0, "exited with status 0");
    let out = stdout(&output);
    let points: Vec<&str> = parse_mountinfo(&out).iter().map(|mount| mount.point).collect();
    assert!(points.contains(&"/"), "\"/\" is not a mount point inside: {points:?}");
    for point in &points {
        assert!(["/", "/proc", "/sys", "/dev", "/dev/pts"].contains(point), "{point} is mounted inside:\n{out}");
    }
}

/// One line of `/proc/PID/mountinfo` (see proc_pid_mountinfo(5)).
pub struct Mount<'a> {
    pub point: &'a str,
    /// The mount's own options: `rw,nosuid,nodev,noexec,relatime`.
    pub options: &'a str,
    /// `shared:N`, `master:N`, … (empty for a private mount).
    pub propagation: Vec<&'a str>,
    pub fstype: &'a str,
    pub source: &'a str,
    pub super_options: &'a str,
}

/// Parses mountinfo text. Paths are left escaped (`\040` for a space).
pub fn parse_mountinfo(text: &str) -> Vec<Mount<'_>> {
    text.lines()
        .filter_map(|line| {
            let (mount, fs) = line.split_once(" - ")?;
            let fields: Vec<&str> = mount.split(' ').collect();
            let fs: Vec<&str> = fs.split(' ').collect();
            Some(Mount {
                point: fields.get(4)?,
                options: fields.get(5)?,
                propagation: fields.get(6..).unwrap_or_default().to_vec(),
                fstype: fs.first()?,
                source: fs.get(1)?,
                super_options: fs.get(2).copied().unwrap_or_default(),
            })
        })
        .collect()
}

/// The mount that holds `path` in a mount table: the last one mounted on the
/// longest prefix of it.
pub fn mount_holding<'a>(mounts: &'a [Mount<'a>], path: &Path) -> &'a Mount<'a> {
    mounts
        .iter()
        .filter(|mount| path.starts_with(mount.point))
        .max_by_key(|mount| Path::new(mount.point).components().count())
        .unwrap_or_else(|| panic!("no mount holds {}", path.display()))
}

/// The runtime's own mount table (`/proc/PID/mountinfo`) at the moment its
/// command has mounted a tmpfs named `source` on /mnt and waits.
///
/// The runtime runs under `unshare --mount --propagation shared` (which execs
/// it, so the pid is the runtime's): a mount namespace of its own where
/// every mount is shared, as on a systemd host, so that a mount that is not
/// kept inside the container propagates to it. The test's own mounts stay
/// as they are. Asserts that "/" and the mount holding the sandbox are
/// shared there, or the experiment would prove nothing.
pub fn mountinfo_while_mounted(step: Step, sandbox: &Sandbox, source: &str) -> String {
    step.expect_images("mountinfo_while_mounted");
    let script =
        format!("mount -t tmpfs {source} /mnt && grep -q {source} /proc/self/mountinfo && echo mounted && read line");
    let inner = step.command(sandbox, &["sh", "-c", &script]);
    let mut command = Command::new("unshare");
    command.args(["--mount", "--propagation", "shared"]).arg(inner.get_program()).args(inner.get_args());
    let running = Running::start(command, "mounted");
    let host = fsutil::mountinfo(&running.pid().to_string()).unwrap();
    let output = running.finish();
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    sandbox.assert_clean();
    let mounts = parse_mountinfo(&host);
    for path in [Path::new("/"), sandbox.dir.path()] {
        let holder = mount_holding(&mounts, path);
        assert!(
            holder.propagation.iter().any(|field| field.starts_with("shared:")),
            "{} (on {}) is not shared in the runtime's namespace:\n{host}",
            path.display(),
            holder.point
        );
    }
    host
}

/// A mount made inside the container does not show on the host while the
/// container runs, even where the host's mounts are shared; neither do the
/// container's own /proc, /sys and /dev.
pub fn check_mounts_stay_inside(step: Step) {
    let sandbox = Sandbox::new();
    let source = sandbox.unique("dfs-probe");
    let host = mountinfo_while_mounted(step, &sandbox, &source);
    let mounts = parse_mountinfo(&host);
    assert!(!mounts.iter().any(|mount| mount.source == source), "the container's tmpfs shows on the host:\n{host}");
    let under: Vec<&str> = mounts
        .iter()
        .filter(|mount| Path::new(mount.point).starts_with(&sandbox.containers))
        .map(|m| m.point)
        .collect();
    assert!(under.is_empty(), "the container's mounts show on the host: {under:?}");
}

/// SIGTERM sent to the runtime reaches the command (143 = 128+15), and the
/// runtime still cleans up.
pub fn check_sigterm_is_passed_on(step: Step) {
    let sandbox = Sandbox::new();
    let mut running = Running::start(step.command(&sandbox, &["sh", "-c", "echo ready && read line"]), "ready");
    let pid = running.pid();
    // The runtime installs its handler after the fork; wait until the kernel
    // shows it (SigCgt has bit SIGTERM-1), or the signal would kill it.
    wait_for(&format!("runtime {pid} to catch SIGTERM"), || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let caught = status.lines().find_map(|line| line.strip_prefix("SigCgt:")).unwrap_or("0");
        u64::from_str_radix(caught.trim(), 16).unwrap_or(0) & (1 << (libc::SIGTERM - 1)) != 0
    });
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let output = running.wait();
    sandbox.assert_clean();
    assert_ended(step, &output, 143, "was killed by signal 15 (SIGTERM)");
}

/// How long a test waits for a container to get somewhere before failing.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(20);

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// A runtime started with piped stdio whose command has printed a given
/// line and now waits for one on stdin. Dropping it closes stdin, so the
/// command ends (and the runtime cleans up) even when the test fails half way.
pub struct Running {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
    stdout: String,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Running {
    /// Starts `command` and returns once it printed the line `ready`.
    pub fn start(mut command: Command, ready: &str) -> Running {
        use std::io::{BufRead, Read};
        use std::process::Stdio;
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
        let (send, lines) = std::sync::mpsc::channel();
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().unwrap();
        let collect_stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        });
        let stdin = child.stdin.take();
        let mut running = Running { child, stdin, lines, stdout: String::new(), stderr: Some(collect_stderr) };
        loop {
            match running.lines.recv_timeout(PATIENCE) {
                Ok(line) if line == ready => break,
                Ok(line) => running.stdout.push_str(&format!("{line}\n")),
                Err(_) => {
                    running.stdin = None;
                    let output = running.wait();
                    panic!("the command never printed {ready:?}: {output:?}\nstderr:\n{}", stderr(&output));
                }
            }
        }
        running
    }

    /// The runtime's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends the line the command waits for, then waits for the end.
    pub fn finish(mut self) -> Output {
        use std::io::Write;
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        self.wait()
    }

    /// Waits for the runtime to end (stdin stays open), failing after a while.
    pub fn wait(&mut self) -> Output {
        let child = &mut self.child;
        let mut status = None;
        wait_for("the runtime to end", || {
            status = child.try_wait().expect("cannot wait for the runtime");
            status.is_some()
        });
        let status = status.unwrap();
        let mut stdout = std::mem::take(&mut self.stdout);
        while let Ok(line) = self.lines.recv_timeout(std::time::Duration::from_secs(1)) {
            stdout.push_str(&format!("{line}\n"));
        }
        let stderr = self.stderr.take().map(|thread| thread.join().unwrap_or_default()).unwrap_or_default();
        Output { status, stdout: stdout.into_bytes(), stderr: stderr.into_bytes() }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stdin = None;
        if matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(std::time::Duration::from_millis(500));
            if matches!(self.child.try_wait(), Ok(None)) {
                let _ = self.child.kill();
            }
            let _ = self.child.wait();
        }
    }
}

fn utf8(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

// ---------------------------------------------------------------------------
// From step06 the command is PID 1 of its own PID namespace: the kernel
// delivers to it, from inside the namespace, no signal it has no handler
// for, not even SIGKILL. These checks kill it from the host instead.

/// The host's pid of the container's first process, once it has exec'd
/// (its executable is no longer the runtime's).
pub fn container_init(runtime: u32) -> u32 {
    let runtime_exe = std::fs::read_link(format!("/proc/{runtime}/exe")).ok();
    let mut init = 0;
    wait_for("the container's first process to exec", || {
        let children = std::fs::read_to_string(format!("/proc/{runtime}/task/{runtime}/children")).unwrap_or_default();
        init = children.split_whitespace().next().and_then(|pid| pid.parse().ok()).unwrap_or(0);
        let exe = std::fs::read_link(format!("/proc/{init}/exe")).ok();
        init != 0 && exe.is_some() && exe != runtime_exe
    });
    init
}

/// Exit statuses for a command that is PID 1: its own status, 127, 126, and
/// 128+9 when the host kills it; `kill -9 $$` from inside is ignored.
pub fn check_exit_codes_as_pid1(step: Step) {
    let sandbox = Sandbox::new();
    check_own_exit_codes(step, &sandbox);
    let output = step.run(&sandbox, &["sh", "-c", "kill -9 $$; echo still here"]);
    assert_ended(step, &output, 0, "exited with status 0");
    assert_eq!(stdout(&output), "still here\n", "PID 1 died of a SIGKILL sent from inside its namespace");
    let mut running = Running::start(step.command(&sandbox, &["sh", "-c", "echo ready && read line"]), "ready");
    let init = container_init(running.pid());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(init as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    let output = running.wait();
    sandbox.assert_clean();
    assert_ended(step, &output, 137, "was killed by signal 9 (SIGKILL)");
}

/// The command's namespaces of these kinds are not the host's.
pub fn check_own_namespaces(step: Step, kinds: &[&str]) {
    let sandbox = Sandbox::new();
    for kind in kinds {
        let output = step.run(&sandbox, &["readlink", &format!("/proc/self/ns/{kind}")]);
        assert_ended(step, &output, 0, "exited with status 0");
        let inside = stdout(&output).trim().to_string();
        assert!(inside.starts_with(&format!("{kind}:[")), "{inside:?}");
        assert_ne!(inside, namespace("self", kind), "the {kind} namespace is the host's");
    }
}

/// One field of /proc/self/status as the command sees it.
pub fn status_field(step: Step, args: &[&str], field: &str) -> String {
    let sandbox = Sandbox::new();
    let mut all = args.to_vec();
    all.extend(["cat", "/proc/self/status"]);
    let output = step.run(&sandbox, &all);
    assert_ended(step, &output, 0, "exited with status 0");
    stdout(&output)
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .map(|value| value.trim().to_string())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// The container's cgroup directories (v1: one per controller; v2: one),
/// read from the host's view of /proc/PID/cgroup.
pub fn cgroup_dirs(init: u32) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap();
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            if v2 {
                return controllers.is_empty().then(|| PathBuf::from(format!("/sys/fs/cgroup{path}")));
            }
            ["memory", "cpu", "pids"]
                .iter()
                .find(|c| controllers.split(',').any(|have| have == **c))
                .map(|c| PathBuf::from(format!("/sys/fs/cgroup/{c}{path}")))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The lifecycle: no input loses data, no crash leaves anything that
// `cleanup` cannot remove.

/// Every file, link and directory below `root` with its size, mode, owner
/// and a hash of its contents: equal fingerprints mean an untouched image.
pub fn fingerprint(root: &Path) -> Vec<String> {
    use std::hash::{Hash, Hasher};
    use std::os::unix::fs::MetadataExt;
    let mut found = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(path) = todo.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("cannot stat {}: {e}", path.display()));
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        if meta.is_file() {
            std::fs::read(&path).unwrap().hash(&mut hasher);
        } else if meta.file_type().is_symlink() {
            std::fs::read_link(&path).unwrap().hash(&mut hasher);
        } else if meta.is_dir() {
            todo.extend(std::fs::read_dir(&path).unwrap().map(|entry| entry.unwrap().path()));
        }
        let relative = path.strip_prefix(root).unwrap().display().to_string();
        found.push(format!(
            "{relative} {} {:o} {}:{} {:x}",
            meta.len(),
            meta.mode(),
            meta.uid(),
            meta.gid(),
            hasher.finish()
        ));
    }
    found.sort();
    found
}

/// `--container-dir` given through a symlink, relative and with `..`: each
/// run ends with the command's status, leaves nothing, and the shared image
/// has the same files with the same contents afterwards, although the
/// command deleted and changed files in its root.
pub fn check_container_dir_spellings(step: Step, extra: &[&str]) {
    step.expect_images("check_container_dir_spellings");
    let sandbox = Sandbox::new();
    let output = step.run(&sandbox, &["true"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let before = fingerprint(&sandbox.image_rootfs());
    assert!(before.len() > 100, "the image has only {} entries", before.len());
    std::fs::create_dir_all(&sandbox.containers).unwrap();
    std::os::unix::fs::symlink(&sandbox.containers, sandbox.dir.path().join("link")).unwrap();
    std::fs::create_dir(sandbox.dir.path().join("sub")).unwrap();
    let spellings = [
        sandbox.dir.path().join("link").display().to_string(),
        "containers".to_string(),
        "sub/../containers/.".to_string(),
        sandbox.dir.path().join("sub/../link/../containers").display().to_string(),
    ];
    for spelling in spellings {
        let mut command = Command::new(step.binary);
        command.current_dir(sandbox.dir.path());
        command.args(["run", "--image-dir"]).arg(&sandbox.images).args(["--container-dir", &spelling]).args(extra);
        command.args(["sh", "-c", "rm -rf /bin /etc; echo changed > /root/new; exit 3"]);
        let output = finished(command, &sandbox);
        assert_eq!(code(&output), 3, "--container-dir {spelling}: {}", stderr(&output));
        assert_eq!(fingerprint(&sandbox.image_rootfs()), before, "--container-dir {spelling} changed the image");
    }
}

/// `BINARY cleanup` for the sandbox's directories.
pub fn cleanup(step: Step, sandbox: &Sandbox) -> Output {
    let mut command = Command::new(step.binary);
    command.arg("cleanup").arg("--image-dir").arg(&sandbox.images).arg("--container-dir").arg(&sandbox.containers);
    let output = command.output().unwrap();
    assert_eq!(code(&output), 0, "cleanup failed: {}", stderr(&output));
    output
}

/// The project's cgroup directories for the container `id`, as the kernel
/// shows them under /sys/fs/cgroup.
pub fn cgroups_of(id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").unwrap().map(|entry| entry.unwrap().path()) {
        for dir in [
            hierarchy.join(crate::CGROUP_PARENT).join(id),
            Path::new("/sys/fs/cgroup").join(crate::CGROUP_PARENT).join(id),
        ] {
            if dir.is_dir() && !found.contains(&dir) {
                found.push(dir);
            }
        }
    }
    found
}

/// The runtime killed with SIGKILL while its container runs: the container
/// dies with it, its directory (and cgroups) stay until `cleanup`, which
/// removes them all and says so; a second `cleanup` finds nothing.
pub fn check_killed_runtime_is_cleaned_up(step: Step, extra: &[&str]) {
    step.expect_images("check_killed_runtime_is_cleaned_up");
    let sandbox = Sandbox::new();
    let mut args = extra.to_vec();
    args.extend(["sh", "-c", "echo ready && read line"]);
    let mut running = Running::start(step.command(&sandbox, &args), "ready");
    let runtime = running.pid();
    let init = container_init(runtime);
    let ids: Vec<String> = std::fs::read_dir(&sandbox.containers)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let [id] = &ids[..] else { panic!("expected one container directory, found {ids:?}") };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(runtime as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    let _ = running.wait();
    wait_for("the container to die with its runtime", || crate::container::is_dead(init));
    assert!(sandbox.containers.join(id).is_dir(), "the killed runtime's directory is already gone");
    let output = cleanup(step, &sandbox);
    assert!(stdout(&output).contains(&format!("container {id}: removed")), "{}", stdout(&output));
    sandbox.assert_clean();
    assert_eq!(cgroups_of(id), Vec::<PathBuf>::new(), "cgroups left after cleanup");
    let again = cleanup(step, &sandbox);
    assert!(stdout(&again).starts_with("nothing to clean up"), "a second cleanup did something: {}", stdout(&again));
}

/// `cleanup` while a container runs leaves it alone: it goes on, ends with
/// its own status, and cleans up after itself.
pub fn check_cleanup_spares_a_live_container(step: Step) {
    step.expect_images("check_cleanup_spares_a_live_container");
    let sandbox = Sandbox::new();
    let running = Running::start(step.command(&sandbox, &["sh", "-c", "echo ready && read line && exit 7"]), "ready");
    let output = cleanup(step, &sandbox);
    assert!(
        stdout(&output).starts_with("nothing to clean up"),
        "cleanup touched a live container: {}",
        stdout(&output)
    );
    let output = running.finish();
    sandbox.assert_clean();
    assert_ended(step, &output, 7, "exited with status 7");
}

/// While the container runs, nothing of it is mounted in the host's mount
/// namespace: a crash cannot leave a host mount behind.
pub fn check_no_host_mount_while_running(step: Step, extra: &[&str]) {
    step.expect_images("check_no_host_mount_while_running");
    let sandbox = Sandbox::new();
    let mut args = extra.to_vec();
    args.extend(["sh", "-c", "echo ready && read line"]);
    let running = Running::start(step.command(&sandbox, &args), "ready");
    let mounts = fsutil::mounts_under("self", sandbox.dir.path()).unwrap();
    let output = running.finish();
    assert!(mounts.is_empty(), "the host sees the container's mounts: {mounts:?}");
    assert_ended(step, &output, 0, "exited with status 0");
}

/// Writes an image `name` (an extracted rootfs, no tarball) with the
/// directories a container mounts on and the given files, mode 0755.
pub fn custom_image(sandbox: &Sandbox, name: &str, files: &[(&str, &[u8])]) {
    use std::os::unix::fs::PermissionsExt;
    let rootfs = sandbox.images.join(name).join("rootfs");
    for dir in ["proc", "sys", "dev", "bin", "tmp", "root"] {
        std::fs::create_dir_all(rootfs.join(dir)).unwrap();
    }
    for (path, bytes) in files {
        let path = rootfs.join(path);
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// An executable file that is not a program (no `#!`, random bytes, a cut
/// ELF header) exits 126 with "exec format error", and is never handed to
/// /bin/sh as a script (glibc's execvpe would: "pwned" would be printed).
pub fn check_exec_format_error(step: Step) {
    let sandbox = Sandbox::new();
    let files: &[(&str, &[u8])] = &[
        ("bin/script", b"echo pwned\n"),
        ("bin/random", b"\x13\x37\xfe\xed\x00\x01garbage"),
        ("bin/cut-elf", b"\x7fELF\x02\x01\x01\x00"),
        ("bin/sh", b"#!/nonexistent\n"),
    ];
    let names: Vec<String> = if step.images {
        custom_image(&sandbox, "junk", files);
        files
            .iter()
            .take(3)
            .flat_map(|(path, _)| [format!("/{path}"), path.trim_start_matches("bin/").to_string()])
            .collect()
    } else {
        let dir = sandbox.dir.path();
        custom_image(&sandbox, "junk", files);
        files.iter().take(3).map(|(path, _)| dir.join("images/junk/rootfs").join(path).display().to_string()).collect()
    };
    for name in names {
        let mut args = if step.images { vec!["--image", "junk"] } else { vec![] };
        args.push(&name);
        let output = step.run(&sandbox, &args);
        assert_eq!(code(&output), 126, "{name}: {}", stderr(&output));
        assert!(stderr(&output).contains("exec format error"), "{name}: {}", stderr(&output));
        assert!(!stdout(&output).contains("pwned"), "{name} was run as a shell script");
    }
}

/// A command that calls ptrace(PTRACE_TRACEME), as amicontained does,
/// makes the runtime its tracer: the runtime detaches, the command goes on,
/// and the run ends with the command's own status, leaving nothing.
pub fn check_traceme_is_let_go(step: Step) {
    let sandbox = Sandbox::new();
    let command = if step.images { "traceme".to_string() } else { helper_on_host(&sandbox, "traceme") };
    let mut running = Running::start(step.command(&sandbox, &[&command, "sh", "-c", "echo done; exit 5"]), "traced");
    let output = running.wait();
    sandbox.assert_clean();
    assert_ended(step, &output, 5, "exited with status 5");
    assert_eq!(stdout(&output), "done\n");
}

/// Writes one of the image's helper programs to the sandbox, for step01,
/// which runs its command on the host.
fn helper_on_host(sandbox: &Sandbox, name: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let (_, bytes) = crate::image::HELPERS.iter().find(|(helper, _)| *helper == name).expect("no such helper");
    let path = sandbox.dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Another test thread that forks while the file is open for writing
    // keeps it open in its child until that child execs, and exec of the
    // file fails with ETXTBSY meanwhile: wait until it runs (without
    // arguments, each helper only checks what it can and exits).
    wait_for(&format!("{} to be executable (ETXTBSY)", path.display()), || {
        let ran = Command::new(&path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        !matches!(ran, Err(err) if err.raw_os_error() == Some(libc::ETXTBSY))
    });
    path.display().to_string()
}

/// A tarball of `files` small files (and the directories a container
/// mounts on) at `path`, for tests that need an extraction to take a while.
pub fn write_big_image(path: &Path, files: usize) {
    let mut builder = tar::Builder::new(std::io::BufWriter::new(std::fs::File::create(path).unwrap()));
    let mut append = |name: &str, kind: tar::EntryType, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(if kind == tar::EntryType::Directory { 0o755 } else { 0o644 });
        header.set_size(data.len() as u64);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_700_000_000);
        builder.append_data(&mut header, name, data).unwrap();
    };
    for dir in ["proc", "sys", "dev", "bin", "data"] {
        append(dir, tar::EntryType::Directory, &[]);
    }
    let block = [7u8; 4096];
    for index in 0..files {
        if index % 1000 == 0 {
            append(&format!("data/{}", index / 1000), tar::EntryType::Directory, &[]);
        }
        append(&format!("data/{}/{index}", index / 1000), tar::EntryType::Regular, &block);
    }
    builder.into_inner().unwrap();
}

/// A tarball of one file of `size` zero bytes (and the directories a
/// container mounts on), for a test that needs one file to take seconds
/// to write. The file's data is a hole in the tarball: it takes no disk.
pub fn write_huge_file_image(path: &Path, size: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let mut builder = tar::Builder::new(std::fs::File::create(path).unwrap());
    for dir in ["proc", "sys", "dev", "bin"] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_700_000_000);
        builder.append_data(&mut header, dir, std::io::empty()).unwrap();
    }
    let mut file = builder.into_inner().unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_path("huge").unwrap();
    header.set_mode(0o644);
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_700_000_000);
    header.set_cksum();
    // Over the end-of-archive blocks the builder wrote; the zeros after the
    // data (its padding and two blocks) end the archive again.
    let end = file.seek(SeekFrom::End(-1024)).unwrap();
    file.write_all(header.as_bytes()).unwrap();
    file.set_len(end + 512 + size.div_ceil(512) * 512 + 1024).unwrap();
}

/// SIGTERM, SIGHUP or SIGINT while the image is being extracted stops the
/// run within a second, with 128+N, and leaves nothing: no half-extracted
/// image, no staging directory, no container directory. Between two files
/// of many small ones, and in the middle of one of 4 GiB.
pub fn check_signal_during_extraction_stops_the_run(step: Step) {
    use nix::sys::signal::Signal;
    step.expect_images("check_signal_during_extraction_stops_the_run");
    let shared = Sandbox::new();
    let tarball = shared.dir.path().join("big.tar");
    write_big_image(&tarball, 40_000);
    let huge = shared.dir.path().join("huge.tar");
    write_huge_file_image(&huge, 4 << 30);
    for (signal, tarball) in
        [(Signal::SIGTERM, &tarball), (Signal::SIGHUP, &tarball), (Signal::SIGINT, &tarball), (Signal::SIGTERM, &huge)]
    {
        let what = format!("{signal} during {}", tarball.file_name().unwrap().to_string_lossy());
        let sandbox = Sandbox::new();
        std::fs::create_dir_all(&sandbox.images).unwrap();
        std::fs::hard_link(tarball, sandbox.images.join("big.tar")).unwrap();
        let mut child =
            step.command(&sandbox, &["--image", "big", "true"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
        wait_for("the extraction to start", || {
            std::fs::read_dir(&sandbox.images).unwrap().count() > 1 || child.try_wait().unwrap().is_some()
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        if child.try_wait().unwrap().is_some() {
            panic!("{what}: the run ended before the signal: {}", stderr(&child.wait_with_output().unwrap()));
        }
        let sent = std::time::Instant::now();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        let output = child.wait_with_output().unwrap();
        let took = sent.elapsed();
        assert_eq!(output.status.code(), Some(128 + signal as i32), "{what}: {}", stderr(&output));
        assert!(took < std::time::Duration::from_secs(1), "{what}: the run took {took:?} to stop");
        let left: Vec<_> =
            std::fs::read_dir(&sandbox.images).unwrap().map(|entry| entry.unwrap().file_name()).collect();
        assert_eq!(left, ["big.tar"], "{what}: the extraction left files behind");
        sandbox.assert_clean();
    }
}

/// What a container leaves in its writable layer cannot defeat the removal
/// of its directory: a 2,100-deep tree (deeper than PATH_MAX) and names
/// with newlines and non-UTF-8 bytes still end in a clean removal and the
/// command's own exit status.
pub fn check_hostile_tree_is_removed(step: Step) {
    step.expect_images("check_hostile_tree_is_removed");
    let sandbox = Sandbox::new();
    // Two chains of 1,050 directories, each within PATH_MAX, one moved to
    // the bottom of the other: 2,100 deep, more than any path can name.
    let script = r#"cd /root && mkdir "$(printf 'new\nline')" "$(printf 'bad\377byte')" && p=d && i=1 &&
        while [ $i -lt 1050 ]; do p=$p/d; i=$((i+1)); done && q=$(echo $p | tr d e) &&
        mkdir -p $p $q && touch $q/deepest && mv e $p/ && exit 4"#;
    let output = step.run(&sandbox, &["sh", "-c", script]);
    assert_ended(step, &output, 4, "exited with status 4");
}

/// A container that fills its disk (its container directory on a small
/// tmpfs) still ends with its own exit status and a clean removal: removing
/// by file descriptor needs no space.
pub fn check_full_disk_is_removed(step: Step) {
    use nix::mount::{MntFlags, MsFlags, mount, umount2};
    step.expect_images("check_full_disk_is_removed");
    let sandbox = Sandbox::new();
    let small = sandbox.dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    mount(Some("tmpfs"), &small, Some("tmpfs"), MsFlags::empty(), Some("size=16m,mode=0711")).unwrap();
    let containers = small.join("containers");
    let mut command = Command::new(step.binary);
    command.args(["run", "--image-dir"]).arg(&sandbox.images).arg("--container-dir").arg(&containers);
    command.args(["sh", "-c", "cat /dev/zero > /root/fill; df /root >&2; exit 6"]);
    let output = command.output().unwrap();
    let left: Vec<_> =
        std::fs::read_dir(&containers).map(|dir| dir.map(|e| e.unwrap().path()).collect()).unwrap_or_default();
    umount2(&small, MntFlags::MNT_DETACH).unwrap();
    assert_ended(step, &output, 6, "exited with status 6");
    assert!(left.is_empty(), "left in the full container dir: {left:?}");
    sandbox.assert_clean();
}

// ---------------------------------------------------------------------------
// Hardening, tried from inside (and from the host as another user): each
// check fails if the attack works.

/// A descriptor the caller left open (here fd 3, on the host's "/") does
/// not cross into the container: only 0, 1 and 2 do.
pub fn check_inherited_fd_does_not_cross(step: Step, extra: &[&str]) {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let sandbox = Sandbox::new();
    let host_root = std::fs::File::open("/").unwrap();
    let fd = host_root.as_raw_fd();
    let mut args = extra.to_vec();
    args.extend(["sh", "-c", "ls /proc/$$/fd; ls /proc/$$/fd/3/ && echo ESCAPED"]);
    let mut command = step.command(&sandbox, &args);
    // SAFETY: dup2(2) is async-signal-safe; it gives the runtime an fd 3
    // without close-on-exec, as a careless caller would.
    unsafe {
        command.pre_exec(move || if libc::dup2(fd, 3) < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) });
    }
    let output = finished(command, &sandbox);
    let inside = stdout(&output);
    assert!(!inside.contains("ESCAPED"), "fd 3 crossed into the container: {inside}");
    assert_eq!(inside.lines().collect::<Vec<_>>(), ["0", "1", "2"], "descriptors inside: {inside}");
}

/// `--cap-drop ALL --user 1000 -- id -u` prints 1000: privileges are
/// dropped in an order that works for every combination.
pub fn check_cap_drop_all_with_a_user(step: Step, extra: &[&str]) {
    let sandbox = Sandbox::new();
    let mut args = extra.to_vec();
    args.extend(["--cap-drop", "ALL", "--user", "1000", "--", "sh", "-c", "id -u; grep CapEff /proc/self/status"]);
    let output = step.run(&sandbox, &args);
    assert_ended(step, &output, 0, "exited with status 0");
    assert_eq!(stdout(&output), "1000\nCapEff:\t0000000000000000\n");
}

/// The image store and the container's directory are private: another host
/// user (nobody, 65534) cannot run the image's setuid-root program, and the
/// container's root on the host (uid 100000) cannot change the shared image.
pub fn check_storage_is_private(step: Step) {
    use std::os::unix::process::CommandExt;
    let sandbox = Sandbox::new();
    let running = Running::start(step.command(&sandbox, &["sh", "-c", "echo ready && read line"]), "ready");
    let rootfs = sandbox.image_rootfs();
    let setuid = rootfs.join("bin/setuid-id");
    let as_nobody = Command::new(&setuid).uid(65_534).gid(65_534).output();
    assert!(as_nobody.is_err(), "host user 65534 ran the image's setuid program: {as_nobody:?}");
    let passwd = rootfs.join("etc/passwd");
    let script = format!("echo pwned >> {} && echo WROTE", passwd.display());
    let as_mapped_root = Command::new("/bin/sh").args(["-c", &script]).uid(100_000).gid(100_000).output().unwrap();
    assert!(!stdout(&as_mapped_root).contains("WROTE"), "host uid 100000 wrote to the image");
    for dir in std::fs::read_dir(&sandbox.containers).unwrap() {
        let dir = dir.unwrap().path();
        let listing = Command::new("/bin/ls").arg(&dir).uid(65_534).gid(65_534).output().unwrap();
        assert!(!listing.status.success(), "host user 65534 listed {}: {}", dir.display(), stdout(&listing));
    }
    let output = running.finish();
    assert_ended(step, &output, 0, "exited with status 0");
}

/// `ps` lists the running container with the host pid of its first process
/// (as the kernel shows it), `ps -q` its id, `ps --latest --pid` its pid;
/// once it ended, nothing.
pub fn check_ps_lists_the_running_container(step: Step) {
    step.expect_images("check_ps_lists_the_running_container");
    let sandbox = Sandbox::new();
    let running = Running::start(step.command(&sandbox, &["sh", "-c", "echo ready && read line"]), "ready");
    let init = container_init(running.pid());
    let ps = |args: &[&str]| {
        let output = Command::new(step.binary)
            .arg("ps")
            .arg("--container-dir")
            .arg(&sandbox.containers)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(code(&output), 0, "ps failed: {}", stderr(&output));
        stdout(&output)
    };
    let id = ps(&["-q"]).trim().to_string();
    assert!(crate::container::is_id(&id), "ps -q printed {id:?}");
    assert_eq!(ps(&["--latest", "--pid"]).trim(), init.to_string());
    let table = ps(&[]);
    let row = table.lines().nth(1).unwrap_or_default().to_string();
    assert!(
        row.starts_with(&format!("{id}  {init} "))
            && row.contains("busybox")
            && row.ends_with("sh -c echo ready && read line"),
        "{table}"
    );
    let output = running.finish();
    assert_ended(step, &output, 0, "exited with status 0");
    assert_eq!(ps(&["-q"]), "", "ps lists a container that ended");
}

/// A state directory that does not exist yet (like the default
/// /var/lib/docker-from-scratch on a fresh machine) is created so that the
/// container's root can still reach its own directory, and the image store
/// stays root's alone.
pub fn check_a_fresh_state_dir_works(step: Step) {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    let state = sandbox.dir.path().join("fresh/state");
    let mut command = Command::new(step.binary);
    command
        .arg("run")
        .arg("--image-dir")
        .arg(state.join("images"))
        .arg("--container-dir")
        .arg(state.join("containers"));
    let output = command.arg("true").output().unwrap();
    assert_ended(step, &output, 0, "exited with status 0");
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state.join("images")), 0o700, "the image store is not private");
    assert_ne!(mode(&state) & 0o001, 0, "the state directory cannot be traversed");
}

// ---------------------------------------------------------------------------
// Docker's seccomp profile (step07 on), attacked from inside in both of the
// ways a container runs: in a user namespace of its own (the default), and
// in the host's (`--userns=host`), where root inside is root outside.

/// The extra arguments of each mode.
pub const USERNS_MODES: [&[&str]; 2] = [&[], &["--userns=host"]];

/// A mode's arguments, then the run's.
fn with<'a>(mode: &[&'a str], args: &[&'a str]) -> Vec<&'a str> {
    [mode, args].concat()
}

/// The command runs under a seccomp filter (mode 2 in /proc/self/status) in
/// both modes: Docker's profile, plus the small filter that answers clone3
/// with ENOSYS. `--security-opt seccomp=unconfined` runs it under none, and
/// `--trace` shows the load.
pub fn check_seccomp_is_on_unless_unconfined(step: Step) {
    for mode in USERNS_MODES {
        assert_eq!(status_field(step, mode, "Seccomp"), "2", "with {mode:?}");
        assert_eq!(status_field(step, mode, "Seccomp_filters"), "2", "with {mode:?}");
        for spelling in ["seccomp=unconfined", "seccomp:unconfined"] {
            let unconfined = [mode, &["--security-opt", spelling]].concat();
            assert_eq!(status_field(step, &unconfined, "Seccomp"), "0", "with {unconfined:?}");
        }
        let sandbox = Sandbox::new();
        let output = step.run(&sandbox, &with(mode, &["--trace", "true"]));
        assert_ended(step, &output, 0, "exited with status 0");
        let trace = stderr(&output);
        assert!(
            trace.lines().any(|line| line.contains("] seccomp_set_mode_filter(") && line.contains(" = Ok(())")),
            "{trace}"
        );
    }
}

/// True when this host lets a process without CAP_SYS_ADMIN create a user
/// namespace (Debian's unprivileged_userns_clone, Ubuntu's AppArmor switch,
/// max_user_namespaces), so that only the filter can stop a container.
fn unprivileged_user_namespaces() -> bool {
    let read = |path: &str| std::fs::read_to_string(path).ok().map(|value| value.trim().to_string());
    read("/proc/sys/user/max_user_namespaces").is_some_and(|max| max != "0")
        && read("/proc/sys/kernel/unprivileged_userns_clone").is_none_or(|on| on == "1")
        && read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").is_none_or(|on| on == "0")
}

/// An attacker's first move, a nested user namespace (its creator gets every
/// capability again, over kernel code written for the host's root), fails
/// in both modes with the filter's EPERM. Unconfined, the same command works
/// where the host allows it: the filter is what stopped it.
pub fn check_nested_user_namespace_is_refused(step: Step) {
    let sandbox = Sandbox::new();
    for mode in USERNS_MODES {
        let output = step.run(&sandbox, &with(mode, &["unshare", "-U", "true"]));
        assert_ended(step, &output, 1, "exited with status 1");
        let err = stderr(&output);
        assert!(err.contains("unshare(0x10000000): Operation not permitted"), "with {mode:?}: {err}");
        if unprivileged_user_namespaces() {
            let args = with(mode, &["--security-opt", "seccomp=unconfined", "unshare", "-U", "true"]);
            let output = step.run(&sandbox, &args);
            assert_ended(step, &output, 0, "exited with status 0");
        }
    }
}

/// The profile lets through every call that drops privileges (prctl,
/// capset, setgroups, setgid, setuid): `--user 1000` prints 1000 in both
/// modes, and `--cap-drop ALL --user 1000` ends exactly as it does
/// unconfined, so the filter is never why it fails.
pub fn check_seccomp_lets_privileges_drop(step: Step) {
    let sandbox = Sandbox::new();
    for mode in USERNS_MODES {
        let output = step.run(&sandbox, &with(mode, &["--user", "1000", "id", "-u"]));
        assert_ended(step, &output, 0, "exited with status 0");
        assert_eq!(stdout(&output), "1000\n", "with {mode:?}");
        let filtered = step.run(&sandbox, &with(mode, &["--cap-drop", "ALL", "--user", "1000", "id", "-u"]));
        let args =
            with(mode, &["--security-opt", "seccomp=unconfined", "--cap-drop", "ALL", "--user", "1000", "id", "-u"]);
        let unconfined = step.run(&sandbox, &args);
        assert_eq!(
            (code(&filtered), stdout(&filtered)),
            (code(&unconfined), stdout(&unconfined)),
            "with {mode:?}, seccomp changed the outcome: {}",
            stderr(&filtered)
        );
        if code(&filtered) == 0 {
            assert_eq!(stdout(&filtered), "1000\n", "with {mode:?}");
        }
    }
}

/// As in Docker, a capability brings back the calls the profile ties to it:
/// with `--cap-add SYS_ADMIN`, mount(2) is allowed again in both modes.
pub fn check_cap_add_sys_admin_allows_mount(step: Step) {
    let sandbox = Sandbox::new();
    for mode in USERNS_MODES {
        let output =
            step.run(&sandbox, &with(mode, &["--cap-add", "SYS_ADMIN", "mount", "-t", "tmpfs", "dfs", "/mnt"]));
        assert_ended(step, &output, 0, "exited with status 0");
    }
}

/// A `--security-opt` this workshop does not have ends with status 125 and
/// one line that names it and lists the accepted ones, before anything is
/// created.
pub fn check_bad_security_opt(step: Step) {
    for opt in ["seccomp=profile.json", "apparmor=unconfined", "no-new-privileges=maybe"] {
        let sandbox = Sandbox::new();
        let output = step.run(&sandbox, &["--security-opt", opt, "true"]);
        let err = stderr(&output);
        assert_eq!(code(&output), 125, "{err}");
        assert_eq!(err.lines().count(), 1, "expected one line: {err}");
        assert!(err.contains(&format!("invalid --security-opt {opt:?}")), "{err}");
        assert!(err.contains("seccomp=unconfined") || err.contains("true or false"), "{err}");
        assert!(!sandbox.images.exists() && !sandbox.containers.exists(), "a rejected option created directories");
    }
}

/// no_new_privs as Docker has it: off by default, so the image's setuid-root
/// program runs as (the container's) root for `--user 1000`; on with
/// `--security-opt no-new-privileges`, so the setuid bit is ignored.
pub fn check_no_new_privileges_only_when_asked(step: Step, extra: &[&str]) {
    let sandbox = Sandbox::new();
    for (flags, want) in
        [(&[][..], "uid=1000 euid=0\n"), (&["--security-opt", "no-new-privileges"][..], "uid=1000 euid=1000\n")]
    {
        let args = [extra, flags, &["--user", "1000", "setuid-id"]].concat();
        let output = step.run(&sandbox, &args);
        assert_ended(step, &output, 0, "exited with status 0");
        assert_eq!(stdout(&output), want, "{args:?}");
    }
}

// ---------------------------------------------------------------------------
// Terminals, from step07: the container's own session, TIOCSTI, and `-t`.

/// A pseudo-terminal the test owns, standing in for a user's terminal. The
/// runtime runs in a session of its own with the slave as its controlling
/// terminal; the test types into the master and reads there what the
/// terminal shows.
pub struct TestTerminal {
    pub master: std::os::fd::OwnedFd,
    pub slave: std::os::fd::OwnedFd,
}

impl TestTerminal {
    /// A new terminal of `rows` by `cols`, with a new terminal's modes
    /// (canonical, echo, signals from keys).
    pub fn open(rows: u16, cols: u16) -> TestTerminal {
        let size = nix::pty::Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        let pair = nix::pty::openpty(&size, None).expect("cannot open a pseudo-terminal for the test");
        TestTerminal { master: pair.master, slave: pair.slave }
    }

    /// `command` will run in a new session (setsid) with the slave as its
    /// controlling terminal (TIOCSCTTY) and its stdin, and its stdout too
    /// when `stdout` is true (else stdout is piped); stderr is piped.
    pub fn attach(&self, command: &mut Command, stdout: bool) {
        use std::os::unix::process::CommandExt;
        use std::process::Stdio;
        let slave = || Stdio::from(self.slave.try_clone().expect("cannot dup the terminal"));
        command.stdin(slave()).stderr(Stdio::piped());
        command.stdout(if stdout { slave() } else { Stdio::piped() });
        // SAFETY: the closure runs in the forked child before exec and makes
        // only two system calls, both async-signal-safe (the test harness is
        // multi-threaded, so nothing else would be safe there).
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    /// Types `keys` on the terminal.
    pub fn send(&self, keys: &[u8]) {
        nix::unistd::write(&self.master, keys).expect("cannot type on the test's terminal");
    }

    /// The terminal's modes, to compare before and after a run.
    pub fn modes(&self) -> nix::sys::termios::Termios {
        nix::sys::termios::tcgetattr(&self.slave).expect("cannot read the terminal's modes")
    }

    /// Makes the terminal `rows` by `cols`, as a resized window does: the
    /// kernel sends SIGWINCH to its foreground process group.
    pub fn resize(&self, rows: u16, cols: u16) {
        let size = nix::pty::Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ reads one struct winsize through the pointer.
        let result = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&self.master), libc::TIOCSWINSZ, &size) };
        assert_eq!(result, 0, "TIOCSWINSZ failed: {}", std::io::Error::last_os_error());
    }

    /// Reads what the terminal shows for up to `wait`; appends it to `shown`.
    fn read_for(&self, shown: &mut String, wait: std::time::Duration) {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
        let millis = PollTimeout::try_from(wait.as_millis().min(1000) as i32).unwrap_or(PollTimeout::ZERO);
        if poll(&mut fds, millis).unwrap_or(0) > 0 {
            let mut buffer = [0u8; 4096];
            if let Ok(n) = nix::unistd::read(&self.master, &mut buffer) {
                shown.push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        }
    }

    /// Reads what the terminal shows until `wanted` appears in what this
    /// call read; appends all of it to `shown`. Fails after a while, with
    /// everything the terminal showed.
    pub fn read_until(&self, shown: &mut String, wanted: &str) {
        let start = shown.len();
        let deadline = std::time::Instant::now() + PATIENCE;
        while !shown[start..].contains(wanted) {
            assert!(std::time::Instant::now() < deadline, "the terminal never showed {wanted:?}; it showed {shown:?}");
            self.read_for(shown, std::time::Duration::from_millis(50));
        }
    }

    /// What the terminal shows that has not been read yet.
    pub fn read_pending(&self) -> String {
        let mut shown = String::new();
        loop {
            let before = shown.len();
            self.read_for(&mut shown, std::time::Duration::from_millis(100));
            if shown.len() == before {
                return shown;
            }
        }
    }

    /// Input waiting on the terminal: what the shell that reads it next
    /// (here: nobody's) would get, such as a line typed with TIOCSTI.
    pub fn pending_input(&self) -> String {
        use nix::fcntl::{FcntlArg, OFlag, fcntl};
        let flags = OFlag::from_bits_retain(fcntl(&self.slave, FcntlArg::F_GETFL).unwrap());
        fcntl(&self.slave, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).unwrap();
        let mut typed = Vec::new();
        let mut buffer = [0u8; 4096];
        while let Ok(n @ 1..) = nix::unistd::read(&self.slave, &mut buffer) {
            typed.extend_from_slice(&buffer[..n]);
        }
        fcntl(&self.slave, FcntlArg::F_SETFL(flags)).unwrap();
        String::from_utf8_lossy(&typed).into_owned()
    }

    /// Starts `command`, attached to this terminal.
    pub fn spawn(&self, command: &mut Command) -> OnTerminal {
        OnTerminal(Some(command.spawn().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))))
    }

    /// Waits for the runtime to end, reading the terminal meanwhile; then
    /// checks that the run left nothing behind. Returns its output (stderr,
    /// and stdout when piped); what the terminal showed meanwhile is appended
    /// to `shown`.
    pub fn finish(&self, mut running: OnTerminal, sandbox: &Sandbox, shown: &mut String) -> Output {
        let mut child = running.0.take().expect("finished once");
        let deadline = std::time::Instant::now() + PATIENCE;
        while child.try_wait().expect("cannot wait for the runtime").is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let output = child.wait_with_output().unwrap();
                panic!("the runtime never ended: {}\nthe terminal showed {shown:?}", stderr(&output));
            }
            self.read_for(shown, std::time::Duration::from_millis(20));
        }
        shown.push_str(&self.read_pending());
        let output = child.wait_with_output().expect("cannot collect the runtime's output");
        sandbox.assert_clean();
        output
    }

    /// Runs `command`, attached to this terminal, to its end.
    pub fn run(&self, mut command: Command, sandbox: &Sandbox) -> (Output, String) {
        let running = self.spawn(&mut command);
        let mut shown = String::new();
        let output = self.finish(running, sandbox, &mut shown);
        (output, shown)
    }
}

/// A runtime started on a [`TestTerminal`]. Dropped before it was finished
/// (the test failed half way), it kills the runtime, and so its container,
/// rather than leave them waiting for keys that never come.
pub struct OnTerminal(Option<std::process::Child>);

impl OnTerminal {
    /// The runtime's pid.
    pub fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, std::process::Child::id)
    }
}

impl Drop for OnTerminal {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// Fields of a /proc/PID/stat line after the command's name (proc_pid_stat(5)):
/// state, ppid, pgrp, session, tty_nr, tpgid, …
fn stat_fields(line: &str) -> Vec<&str> {
    let (_, rest) = line.rsplit_once(')').unwrap_or_else(|| panic!("not a /proc/PID/stat line: {line:?}"));
    rest.split_whitespace().collect()
}

/// Without `-t`, the container's processes are in a session of their own
/// (session id 1: its first process leads it), with no controlling terminal
/// (tty_nr 0), although the runtime runs on a terminal, and /dev/tty opens
/// nothing. With `--userns=host` too.
pub fn check_own_session(step: Step) {
    step.expect_images("check_own_session");
    let sandbox = Sandbox::new();
    let script = "cat /proc/self/stat; if echo > /dev/tty; then echo tty-opened; else echo no-tty; fi";
    for extra in [&[][..], &["--userns=host"][..]] {
        let terminal = TestTerminal::open(24, 80);
        let mut args = extra.to_vec();
        args.extend(["sh", "-c", script]);
        let mut command = step.command(&sandbox, &args);
        terminal.attach(&mut command, false);
        let (output, _) = terminal.run(command, &sandbox);
        assert_ended(step, &output, 0, "exited with status 0");
        let out = stdout(&output);
        let fields = stat_fields(out.lines().next().unwrap_or_default());
        // state, ppid, pgrp, session, tty_nr, tpgid
        assert_eq!(fields.get(3), Some(&"1"), "{extra:?}: not a session of its own: {out}");
        assert_eq!(fields.get(4), Some(&"0"), "{extra:?}: the container has a controlling terminal: {out}");
        assert!(out.ends_with("no-tty\n"), "{extra:?}: /dev/tty opened inside: {out}");
    }
}

/// Issue 8: a container cannot type into the terminal of the shell that
/// started it. The test's terminal is the runtime's controlling terminal
/// and the container's stdin; `tiocsti` inside tries to type a line into it
/// with TIOCSTI, and must be refused, in both modes; the line must show up
/// neither as input waiting on the terminal nor as its echo. With `-t` the
/// container types into its own terminal, which is allowed; the caller's
/// still gets nothing. The control: the same program run on the host, as
/// the terminal's session leader, does type the line, so the checks below
/// would see an attack that worked.
pub fn check_tiocsti_is_refused(step: Step) {
    step.expect_images("check_tiocsti_is_refused");
    let sandbox = Sandbox::new();
    let probe = sandbox.unique("dfs-typed");
    let terminal = TestTerminal::open(24, 80);
    let mut command = Command::new(helper_on_host(&sandbox, "tiocsti"));
    command.arg(&probe);
    terminal.attach(&mut command, false);
    let (output, _) = terminal.run(command, &sandbox);
    assert!(stdout(&output).starts_with("tiocsti: injected"), "the control was refused: {}", stdout(&output));
    assert!(terminal.pending_input().contains(&probe), "the control typed nothing the test could see");
    for extra in [&[][..], &["--userns=host"][..]] {
        let terminal = TestTerminal::open(24, 80);
        let mut args = extra.to_vec();
        args.extend(["tiocsti", &probe]);
        let mut command = step.command(&sandbox, &args);
        terminal.attach(&mut command, false);
        let (output, shown) = terminal.run(command, &sandbox);
        assert_ended(step, &output, 1, "exited with status 1");
        assert!(stdout(&output).starts_with("tiocsti: refused: "), "{extra:?}: {}", stdout(&output));
        let typed = terminal.pending_input();
        assert!(!typed.contains(&probe) && !shown.contains(&probe), "{extra:?}: typed {typed:?}, shown {shown:?}");
    }
    let terminal = TestTerminal::open(24, 80);
    let mut command = step.command(&sandbox, &["-t", "tiocsti", &probe]);
    terminal.attach(&mut command, true);
    let (output, shown) = terminal.run(command, &sandbox);
    assert_ended(step, &output, 0, "exited with status 0");
    assert!(shown.contains("tiocsti: injected"), "-t: {shown:?}");
    let typed = terminal.pending_input();
    assert!(!typed.contains(&probe), "-t: the container typed {typed:?} into the caller's terminal");
}

/// `-t` gives the container a terminal of its own: `tty` names /dev/pts/0
/// of the container's devpts, it is the controlling terminal of the
/// container's session (tty_nr 136:0), `stty size` shows the size of the
/// caller's terminal, and the caller's terminal has its modes back after the
/// run. Without a terminal on the caller's side (stdin a pipe), `-t` still
/// works: the input goes through the container's terminal, and its end
/// ends the shell (Ctrl-D).
pub fn check_tty(step: Step) {
    step.expect_images("check_tty");
    let sandbox = Sandbox::new();
    let terminal = TestTerminal::open(37, 111);
    let script = "[ -t 0 ] && tty && stty size && cut -d' ' -f6,7 /proc/self/stat";
    let mut command = step.command(&sandbox, &["-t", "sh", "-c", script]);
    terminal.attach(&mut command, true);
    let before = terminal.modes();
    let (output, shown) = terminal.run(command, &sandbox);
    assert_ended(step, &output, 0, "exited with status 0");
    assert!(shown.contains("/dev/pts/0\r\n37 111\r\n1 34816\r\n"), "{shown:?}");
    assert_eq!(terminal.modes(), before, "the caller's terminal was not restored");

    let output = ended_within(step.command(&sandbox, &["-t", "sh"]), b"tty\necho hi\nexit 3\n", &sandbox);
    assert_ended(step, &output, 3, "exited with status 3");
    assert!(stdout(&output).contains("\n/dev/pts/0\r\n"), "{}", stdout(&output));
    assert!(stdout(&output).contains("\nhi\r\n"), "{}", stdout(&output));
    // The end of the input ends a command that reads it, in canonical mode
    // (cat) and in raw mode (the shell's line editor).
    let output = ended_within(step.command(&sandbox, &["-t", "sh", "-c", "cat; echo input-ended"]), b"", &sandbox);
    assert_ended(step, &output, 0, "exited with status 0");
    assert!(stdout(&output).ends_with("input-ended\r\n"), "{:?}", stdout(&output));
    let output = ended_within(step.command(&sandbox, &["-t", "sh"]), b"", &sandbox);
    assert_ended(step, &output, 0, "exited with status 0");
}

/// Runs `command` with `input` on a pipe as its stdin, and its end of file
/// after it; fails, killing it, when it has not ended after a while.
fn ended_within(mut command: Command, input: &[u8], sandbox: &Sandbox) -> Output {
    use std::process::Stdio;
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
    let deadline = std::time::Instant::now() + PATIENCE;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!("{command:?} never ended:\n{}\n{}", stdout(&output), stderr(&output));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let output = child.wait_with_output().unwrap();
    sandbox.assert_clean();
    output
}

/// With `-t` an interactive shell keeps its job control: Ctrl-C, typed on
/// the caller's terminal (raw meanwhile), interrupts the foreground job
/// inside (130), not the shell; `exit 3` is the run's status; and the
/// caller's terminal has its modes back.
pub fn check_interactive_shell(step: Step) {
    step.expect_images("check_interactive_shell");
    let sandbox = Sandbox::new();
    let terminal = TestTerminal::open(24, 80);
    let mut command = step.command(&sandbox, &["-t", "sh"]);
    terminal.attach(&mut command, true);
    let before = terminal.modes();
    let child = terminal.spawn(&mut command);
    let mut shown = String::new();
    terminal.read_until(&mut shown, "# ");
    let during = terminal.modes();
    assert!(!during.local_flags.contains(nix::sys::termios::LocalFlags::ICANON), "the caller's terminal is not raw");
    terminal.send(b"echo hi\n");
    terminal.read_until(&mut shown, "\nhi\r\n");
    terminal.send(b"sleep 100\n");
    let init = container_init(child.id());
    wait_for("sleep to run in the container", || {
        let children = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).unwrap_or_default();
        children
            .split_whitespace()
            .any(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c == "sleep\n"))
    });
    terminal.send(b"\x03");
    terminal.read_until(&mut shown, "# ");
    terminal.send(b"echo after-$?\n");
    terminal.read_until(&mut shown, "\nafter-130\r\n");
    terminal.send(b"exit 3\n");
    let output = terminal.finish(child, &sandbox, &mut shown);
    assert_ended(step, &output, 3, "exited with status 3");
    assert_eq!(terminal.modes(), before, "the caller's terminal was not restored");
}

/// With `-t` the container's terminal follows the caller's size: a resize
/// (SIGWINCH to the runtime) reaches the container as a SIGWINCH of its own,
/// and `stty size` inside shows the new size.
pub fn check_window_size_follows(step: Step) {
    step.expect_images("check_window_size_follows");
    let sandbox = Sandbox::new();
    let terminal = TestTerminal::open(24, 80);
    let script = r#"trap "stty size" WINCH; trap "exit 4" INT; echo ready; while :; do sleep 0.1; done"#;
    let mut command = step.command(&sandbox, &["-t", "sh", "-c", script]);
    terminal.attach(&mut command, true);
    let child = terminal.spawn(&mut command);
    let mut shown = String::new();
    terminal.read_until(&mut shown, "ready\r\n");
    terminal.resize(50, 132);
    terminal.read_until(&mut shown, "50 132\r\n");
    terminal.send(b"\x03");
    let output = terminal.finish(child, &sandbox, &mut shown);
    assert_ended(step, &output, 4, "exited with status 4");
}

/// Without `-t`, Ctrl-C on the caller's terminal signals the runtime alone
/// (the container has left the terminal's session); the runtime passes
/// SIGINT on to the container's first process, as `docker run` does.
pub fn check_ctrl_c_is_passed_on(step: Step) {
    step.expect_images("check_ctrl_c_is_passed_on");
    let sandbox = Sandbox::new();
    let terminal = TestTerminal::open(24, 80);
    let script = r#"trap "echo got-int; exit 5" INT; echo ready; while :; do sleep 0.1; done"#;
    let mut command = step.command(&sandbox, &["sh", "-c", script]);
    terminal.attach(&mut command, true);
    let child = terminal.spawn(&mut command);
    let mut shown = String::new();
    terminal.read_until(&mut shown, "ready");
    terminal.send(b"\x03");
    let output = terminal.finish(child, &sandbox, &mut shown);
    assert_ended(step, &output, 5, "exited with status 5");
    assert!(shown.contains("got-int"), "{shown:?}");
}

/// With `-t`, a runtime ended by a signal it does not pass on (SIGUSR1 here;
/// a panic's SIGABRT is the same) still gives the caller's terminal its modes
/// back before it dies; its container dies with it and `cleanup` removes
/// the rest.
pub fn check_terminal_restored_when_the_runtime_dies(step: Step) {
    step.expect_images("check_terminal_restored_when_the_runtime_dies");
    let sandbox = Sandbox::new();
    let terminal = TestTerminal::open(24, 80);
    let mut command = step.command(&sandbox, &["-t", "sh"]);
    terminal.attach(&mut command, true);
    let before = terminal.modes();
    let mut running = terminal.spawn(&mut command);
    let mut shown = String::new();
    terminal.read_until(&mut shown, "# ");
    assert_ne!(terminal.modes(), before, "the caller's terminal is not raw");
    let init = container_init(running.id());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(running.id() as i32), nix::sys::signal::Signal::SIGUSR1).unwrap();
    let child = running.0.as_mut().unwrap();
    wait_for("the runtime to die of SIGUSR1", || child.try_wait().unwrap().is_some());
    let output = running.0.take().unwrap().wait_with_output().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(output.status.signal(), Some(libc::SIGUSR1), "{}", stderr(&output));
    assert_eq!(terminal.modes(), before, "the caller's terminal was left raw");
    wait_for("the container to die with its runtime", || crate::container::is_dead(init));
    cleanup(step, &sandbox);
    sandbox.assert_clean();
}

// ---------------------------------------------------------------------------
// What the container can reach through the filesystem: its own /dev/shm and
// /dev/mqueue and network sysctls (step06 on); Docker's masked and read-only
// paths, a read-only /sys, device nodes of its own and image symlinks that
// cannot send a mount outside (step07 on); the device allowlist (step08 on).
// Each check tries the attack from inside and fails if it works. `extra` is
// `--userns=host` or nothing: every check runs in both modes.

/// The options of the mount at `point` in a mountinfo text, and its type:
/// (mount options, filesystem type, superblock options).
fn mount_at(mountinfo: &str, point: &str) -> Option<(String, String, String)> {
    parse_mountinfo(mountinfo)
        .iter()
        .rev()
        .find(|mount| mount.point == point)
        .map(|mount| (mount.options.to_string(), mount.fstype.to_string(), mount.super_options.to_string()))
}

fn has_options(options: &str, wanted: &[&str]) -> bool {
    wanted.iter().all(|option| options.split(',').any(|have| have == *option))
}

/// Runs `script` with `sh -c` in a container (runtime options `extra`) and
/// returns its standard output, asserting the run ended with status 0.
fn inside(step: Step, extra: &[&str], script: &str) -> String {
    let sandbox = Sandbox::new();
    let mut args = extra.to_vec();
    args.extend(["sh", "-c", script]);
    let output = step.run(&sandbox, &args);
    assert_ended(step, &output, 0, "exited with status 0");
    stdout(&output)
}

/// `/dev/shm` is a tmpfs of 64 MiB, nosuid, nodev, noexec, mode 1777, as
/// Docker mounts it; `/dev/mqueue` is an mqueue mount, nosuid, nodev, noexec.
pub fn check_shm_and_mqueue(step: Step, extra: &[&str]) {
    let out = inside(step, extra, "stat -c '%a' /dev/shm && cat /proc/self/mountinfo");
    let (mode, mountinfo) = out.split_once('\n').unwrap_or_default();
    assert_eq!(mode, "1777", "/dev/shm's mode with {extra:?}");
    let (options, fstype, super_options) =
        mount_at(mountinfo, "/dev/shm").unwrap_or_else(|| panic!("no /dev/shm mount with {extra:?}:\n{mountinfo}"));
    assert_eq!(fstype, "tmpfs", "/dev/shm with {extra:?}");
    assert!(has_options(&options, &["nosuid", "nodev", "noexec"]), "/dev/shm is {options} with {extra:?}");
    assert!(has_options(&super_options, &["size=65536k"]), "/dev/shm is {super_options} with {extra:?}");
    let (options, fstype, _) = mount_at(mountinfo, "/dev/mqueue")
        .unwrap_or_else(|| panic!("no /dev/mqueue mount with {extra:?}:\n{mountinfo}"));
    assert_eq!(fstype, "mqueue", "/dev/mqueue with {extra:?}");
    assert!(has_options(&options, &["nosuid", "nodev", "noexec"]), "/dev/mqueue is {options} with {extra:?}");
}

/// Docker's sysctls for a private network namespace are set inside:
/// `ip_unprivileged_port_start` 0 and, without a user namespace (`ping`),
/// `ping_group_range` "0 2147483647"; the host's own values do not change.
pub fn check_network_sysctls(step: Step, extra: &[&str], ping: bool) {
    let files = ["/proc/sys/net/ipv4/ip_unprivileged_port_start", "/proc/sys/net/ipv4/ping_group_range"];
    let host = files.map(|file| std::fs::read_to_string(file).unwrap());
    let out = inside(step, extra, &format!("cat {} {}", files[0], files[1]));
    let lines: Vec<String> = out.lines().map(|line| line.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(lines[0], "0", "ip_unprivileged_port_start with {extra:?}");
    if ping {
        assert_eq!(lines[1], "0 2147483647", "ping_group_range with {extra:?}");
    }
    assert_eq!(files.map(|file| std::fs::read_to_string(file).unwrap()), host, "the host's sysctls changed");
}

/// From inside, writing `kernel.core_pattern` back (the value just read)
/// fails, and so does writing /sys (transparent hugepages, the current
/// value back); /sys is mounted read-only, nosuid, nodev, noexec, and /proc
/// nosuid, nodev, noexec.
pub fn check_proc_sys_and_sys_are_read_only(step: Step, extra: &[&str]) {
    let script = r#"cp=$(cat /proc/sys/kernel/core_pattern) && echo "$cp" > /proc/sys/kernel/core_pattern && echo CORE-WRITTEN
        thp=/sys/kernel/mm/transparent_hugepage/enabled
        if [ -e $thp ]; then now=$(sed 's/.*\[\(.*\)\].*/\1/' $thp) && echo "$now" > $thp && echo SYS-WRITTEN; fi
        cat /proc/self/mountinfo"#;
    let out = inside(step, extra, script);
    assert!(!out.contains("CORE-WRITTEN"), "kernel.core_pattern was written from inside with {extra:?}");
    assert!(!out.contains("SYS-WRITTEN"), "/sys was written from inside with {extra:?}");
    let (options, _, _) = mount_at(&out, "/sys").unwrap_or_else(|| panic!("no /sys mount:\n{out}"));
    assert!(has_options(&options, &["ro", "nosuid", "nodev", "noexec"]), "/sys is {options} with {extra:?}");
    let (options, _, _) = mount_at(&out, "/proc").unwrap_or_else(|| panic!("no /proc mount:\n{out}"));
    assert!(has_options(&options, &["nosuid", "nodev", "noexec"]), "/proc is {options} with {extra:?}");
}

/// Each of Docker's masked paths that this kernel has reads as nothing
/// inside (a file is empty, a directory has no entries), and each of its
/// read-only paths is a read-only mount.
pub fn check_masked_and_read_only_paths(step: Step, extra: &[&str]) {
    let masked: Vec<String> =
        crate::masks::masked_paths().into_iter().filter(|path| Path::new(path).exists()).collect();
    assert!(!masked.is_empty(), "this host has none of the masked paths: nothing would be proved");
    let script = r#"for p in "$@"; do
            if [ -d "$p" ]; then echo "$p $(ls -A "$p" | wc -l)"
            elif [ -e "$p" ]; then echo "$p $(cat "$p" 2>/dev/null | wc -c)"
            else echo "$p missing"; fi
        done
        cat /proc/self/mountinfo"#;
    let sandbox = Sandbox::new();
    let mut args = extra.to_vec();
    args.extend(["sh", "-c", script, "sh"]);
    args.extend(masked.iter().map(String::as_str));
    let output = step.run(&sandbox, &args);
    assert_ended(step, &output, 0, "exited with status 0");
    let out = stdout(&output);
    for path in &masked {
        assert!(out.lines().any(|line| line == format!("{path} 0")), "{path} is not masked with {extra:?}:\n{out}");
    }
    for path in crate::masks::READONLY_PATHS.iter().filter(|path| Path::new(path).exists()) {
        let (options, _, _) = mount_at(&out, path).unwrap_or_else(|| panic!("{path} is not a mount with {extra:?}"));
        assert!(has_options(&options, &["ro"]), "{path} is {options} with {extra:?}");
    }
}

/// `chmod 777 /dev/null` inside leaves the host's /dev/null as it was:
/// without a user namespace the container's /dev/null is its own node (no
/// bind mount, and the chmod shows inside); in one, it is the host's node,
/// bind-mounted nosuid and noexec, which the container's root (uid 100000
/// on the host) may not chmod.
pub fn check_chmod_dev_null_stays_inside(step: Step, extra: &[&str]) {
    use std::os::unix::fs::PermissionsExt;
    let before = std::fs::metadata("/dev/null").unwrap().permissions().mode();
    let sandbox = Sandbox::new();
    let mut args = extra.to_vec();
    args.extend(["sh", "-c", "chmod 777 /dev/null; stat -c %a /dev/null; cat /proc/self/mountinfo"]);
    let output = step.run(&sandbox, &args);
    let after = std::fs::metadata("/dev/null").unwrap().permissions().mode();
    if after != before {
        // Put the host back before failing: other tests use /dev/null.
        std::fs::set_permissions("/dev/null", std::fs::Permissions::from_mode(before)).unwrap();
    }
    assert_eq!(after, before, "chmod 777 /dev/null inside changed the host's /dev/null with {extra:?}");
    assert_ended(step, &output, 0, "exited with status 0");
    let out = stdout(&output);
    let (mode, mountinfo) = out.split_once('\n').unwrap_or_default();
    match mount_at(mountinfo, "/dev/null") {
        None => assert_eq!(mode, "777", "the container's own /dev/null did not change with {extra:?}"),
        Some((options, _, _)) => {
            assert!(!extra.contains(&"--userns=host"), "/dev/null is the host's node without a user namespace");
            assert_eq!(mode, "666", "the bind-mounted /dev/null changed with {extra:?}");
            assert!(has_options(&options, &["nosuid", "noexec"]), "/dev/null is mounted {options}");
        }
    }
}

/// With `--userns=host` (the container has CAP_MKNOD) a node it makes for a
/// host device (/dev/kmsg, c 1:11, opened for writing, which needs no
/// CAP_SYSLOG; a loop disk, b 7:0) cannot be opened:
/// the cgroup's device allowlist refuses it (EPERM). In a user namespace
/// mknod itself fails. Either way nothing is opened.
pub fn check_device_allowlist(step: Step, extra: &[&str]) {
    let script = "mknod /dev/dfs-kmsg c 1 11 && echo MKNOD && (: > /dev/dfs-kmsg) && echo OPENED
                  mknod /dev/dfs-loop b 7 0 && echo MKNOD && (: < /dev/dfs-loop) && echo OPENED
                  (: < /dev/null) && echo NULL-OPENED";
    let sandbox = Sandbox::new();
    let mut args = extra.to_vec();
    args.extend(["sh", "-c", script]);
    let output = step.run(&sandbox, &args);
    let out = stdout(&output);
    let err = stderr(&output);
    assert!(!out.lines().any(|line| line == "OPENED"), "a host device was opened with {extra:?}:\n{out}\n{err}");
    assert!(out.contains("NULL-OPENED"), "/dev/null could not be opened with {extra:?}:\n{err}");
    if extra.contains(&"--userns=host") {
        assert_eq!(out.matches("MKNOD\n").count(), 2, "mknod failed: the open was not tried:\n{err}");
        assert_eq!(err.matches("Operation not permitted").count(), 2, "{err}");
    }
}

/// An image whose /proc (or /sys, or /dev) is a symlink, to /etc or out of
/// the root, is refused: status 125, an error naming the symlink, and no
/// mount on the host's /etc, before or after.
pub fn check_symlinked_mount_targets_are_refused(step: Step, extra: &[&str]) {
    let sandbox = Sandbox::new();
    let host_before = fsutil::mountinfo("self").unwrap();
    for (name, dir, target) in
        [("proc-etc", "proc", "/etc"), ("sys-up", "sys", "../../../../../../etc"), ("dev-etc", "dev", "/etc")]
    {
        custom_image(&sandbox, name, &[]);
        let rootfs = sandbox.images.join(name).join("rootfs");
        std::fs::remove_dir(rootfs.join(dir)).unwrap();
        std::os::unix::fs::symlink(target, rootfs.join(dir)).unwrap();
        let mut args = vec!["--image", name];
        args.extend(extra);
        args.push("true");
        let output = step.run(&sandbox, &args);
        let err = stderr(&output);
        assert_eq!(code(&output), 125, "{name} with {extra:?}: {err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.contains(&format!("the image's /{dir} is a symlink (to {target})")),
            "{name} with {extra:?}: {err}"
        );
        let host = fsutil::mountinfo("self").unwrap();
        assert!(!parse_mountinfo(&host).iter().any(|mount| mount.point == "/etc"), "/etc is mounted over:\n{host}");
    }
    assert_eq!(
        parse_mountinfo(&host_before).len(),
        parse_mountinfo(&fsutil::mountinfo("self").unwrap()).len(),
        "the host's mount table changed"
    );
}

// ---------------------------------------------------------------------------
// The files Docker gives every container (step06 on): /etc/hostname,
// /etc/hosts and /etc/resolv.conf, the container's own, bound over the
// image's, which never change.

/// A copy of the default image, as `name`, for a test that changes its
/// files: `edit` gets the copy's root.
pub fn busybox_copy(step: Step, sandbox: &Sandbox, name: &str, edit: impl FnOnce(&Path)) -> PathBuf {
    step.expect_images("busybox_copy");
    if !sandbox.image_rootfs().exists() {
        let output = step.run(sandbox, &["true"]);
        assert_eq!(code(&output), 0, "the default image could not be made: {}", stderr(&output));
    }
    let rootfs = sandbox.images.join(name).join("rootfs");
    std::fs::create_dir_all(rootfs.parent().unwrap()).unwrap();
    fsutil::copy_tree(&sandbox.image_rootfs(), &rootfs).unwrap();
    edit(&rootfs);
    rootfs
}

/// What a container sees in /etc: its hostname twice (the file and the
/// kernel), its hosts file and resolv.conf, and the bind mounts that put
/// them there; the image's files are the same after the run as before,
/// though the container appended to its /etc/hosts.
pub fn check_etc_files(step: Step, extra: &[&str]) {
    let sandbox = Sandbox::new();
    let output = step.run(&sandbox, &["true"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let before = fingerprint(&sandbox.image_rootfs().join("etc"));
    let script = "cat /etc/hostname; hostname; echo ---; cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---
                  echo '10.0.0.9 edited' >> /etc/hosts && grep -c edited /etc/hosts; echo ---; cat /proc/self/mountinfo";
    for hostname in [None, Some("web")] {
        let mut args = extra.to_vec();
        if let Some(name) = hostname {
            args.extend(["--hostname", name]);
        }
        args.extend(["sh", "-c", script]);
        let output = step.run(&sandbox, &args);
        assert_ended(step, &output, 0, "exited with status 0");
        let out = stdout(&output);
        let parts: Vec<&str> = out.split("---\n").collect();
        let [names, hosts, resolv, edited, mountinfo] = parts[..] else { panic!("unexpected output:\n{out}") };
        let lines: Vec<&str> = names.lines().collect();
        assert_eq!(lines.len(), 2, "/etc/hostname and hostname with {extra:?}: {names}");
        assert_eq!(lines[0], lines[1], "/etc/hostname is not the hostname with {extra:?}");
        if let Some(name) = hostname {
            assert_eq!(lines[0], name);
        } else {
            assert!(last_line(&output).starts_with(&format!("container {} ", lines[0])), "{}", lines[0]);
        }
        assert_eq!(hosts, crate::etcfiles::hosts(lines[0]), "/etc/hosts with {extra:?}");
        assert!(hosts.starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"), "{hosts}");
        assert!(hosts.ends_with(&format!("127.0.0.1\t{}\n", lines[0])), "{hosts}");
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        if !host_resolv.contains("127.0.0.53") {
            assert_eq!(resolv, crate::etcfiles::resolv_conf(&host_resolv), "/etc/resolv.conf with {extra:?}");
        }
        assert_eq!(edited, "1\n", "the container could not edit its /etc/hosts with {extra:?}");
        for file in ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"] {
            assert!(mount_at(mountinfo, file).is_some(), "{file} is not a mount with {extra:?}:\n{mountinfo}");
        }
        assert_eq!(fingerprint(&sandbox.image_rootfs().join("etc")), before, "the image's /etc changed");
    }
}

/// An image without /etc at all gets the three files, made in the
/// container's upper layer: the image still has no /etc afterwards.
pub fn check_etc_files_without_etc(step: Step, extra: &[&str]) {
    let sandbox = Sandbox::new();
    let rootfs = busybox_copy(step, &sandbox, "no-etc", |rootfs| std::fs::remove_dir_all(rootfs.join("etc")).unwrap());
    let mut args = vec!["--image", "no-etc", "--hostname", "bare"];
    args.extend(extra);
    args.extend([
        "sh",
        "-c",
        "cat /etc/hostname; grep -c localhost /etc/hosts; test -f /etc/resolv.conf && echo RESOLV",
    ]);
    let output = step.run(&sandbox, &args);
    assert_ended(step, &output, 0, "exited with status 0");
    assert_eq!(stdout(&output), "bare\n2\nRESOLV\n", "with {extra:?}");
    assert!(!rootfs.join("etc").exists(), "/etc was made in the image with {extra:?}");
}

/// An image whose /etc/hosts (or hostname, or resolv.conf, or /etc itself)
/// is a symlink to the host's files is refused with status 125 and an error
/// naming the symlink: no bind mount lands on, and no file is made in, what
/// it points to.
pub fn check_symlinked_etc_files_are_refused(step: Step, extra: &[&str]) {
    let sandbox = Sandbox::new();
    let host_file = sandbox.host_only_file();
    let made = sandbox.dir.path().join("made-on-the-host");
    let host_before = fsutil::mountinfo("self").unwrap();
    let cases = [("hosts", "etc/hosts", &host_file), ("resolv", "etc/resolv.conf", &made), ("etc", "etc", &made)];
    for (name, link, target) in cases {
        custom_image(&sandbox, name, &[]);
        let rootfs = sandbox.images.join(name).join("rootfs");
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        if link == "etc" {
            std::fs::remove_dir(rootfs.join("etc")).unwrap();
        }
        std::os::unix::fs::symlink(target, rootfs.join(link)).unwrap();
        let mut args = vec!["--image", name];
        args.extend(extra);
        args.push("true");
        let output = step.run(&sandbox, &args);
        let err = stderr(&output);
        assert_eq!(code(&output), 125, "{name} with {extra:?}: {err}");
        let named = format!("the image's /{link} is a symlink (to {})", target.display());
        assert!(err.lines().next().unwrap_or_default().contains(&named), "{name} with {extra:?}: {err}");
    }
    assert_eq!(std::fs::read_to_string(&host_file).unwrap(), "host\n", "the host's file changed");
    assert!(!made.exists(), "a file was made on the host through the image's symlink");
    assert_eq!(
        parse_mountinfo(&host_before).len(),
        parse_mountinfo(&fsutil::mountinfo("self").unwrap()).len(),
        "the host's mount table changed"
    );
}

// ---------------------------------------------------------------------------
// /sys/fs/cgroup (step08 on): the container's own cgroup, read-only.

/// Inside, /sys/fs/cgroup shows the container's cgroup as its root (through
/// the cgroup namespace): the `-m 64m` limit is in its memory file (v1
/// `memory/memory.limit_in_bytes`, v2 `memory.max`), no parent cgroup of the
/// project's shows, and writing the limit, or anything there, fails with
/// EROFS; every cgroup mount is read-only.
pub fn check_cgroupfs_is_read_only(step: Step, extra: &[&str]) {
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let (dir, limit) =
        if v2 { ("/sys/fs/cgroup", "memory.max") } else { ("/sys/fs/cgroup/memory", "memory.limit_in_bytes") };
    let script = format!(
        "cat {dir}/{limit}; echo 1 > {dir}/{limit} && echo WRITTEN; touch /sys/fs/cgroup/dfs && echo MADE
         ls {dir}; echo ---; cat /proc/self/mountinfo"
    );
    let sandbox = Sandbox::new();
    let mut args = extra.to_vec();
    args.extend(["-m", "64m", "sh", "-c", &script]);
    let output = step.run(&sandbox, &args);
    assert_ended(step, &output, 0, "exited with status 0");
    let out = stdout(&output);
    let (listing, mountinfo) = out.split_once("---\n").unwrap_or_default();
    assert_eq!(listing.lines().next(), Some("67108864"), "{dir}/{limit} with {extra:?}:\n{out}");
    assert!(!out.contains("WRITTEN") && !out.contains("MADE"), "/sys/fs/cgroup was written with {extra:?}:\n{out}");
    assert_eq!(stderr(&output).matches("Read-only file system").count(), 2, "with {extra:?}: {}", stderr(&output));
    assert!(listing.lines().any(|line| line == limit), "{dir} lists no {limit} with {extra:?}:\n{listing}");
    assert!(!listing.contains(crate::CGROUP_PARENT), "{dir} shows the host's cgroups with {extra:?}:\n{listing}");
    let cgroup_mounts: Vec<Mount> =
        parse_mountinfo(mountinfo).into_iter().filter(|mount| mount.point.starts_with("/sys/fs/cgroup")).collect();
    assert!(!cgroup_mounts.is_empty(), "nothing is mounted on /sys/fs/cgroup with {extra:?}:\n{mountinfo}");
    for mount in cgroup_mounts {
        assert!(
            has_options(mount.options, &["ro", "nosuid", "nodev", "noexec"]),
            "{} is {}",
            mount.point,
            mount.options
        );
        if mount.fstype.starts_with("cgroup") {
            assert_eq!(mount.fstype, if v2 { "cgroup2" } else { "cgroup" }, "{}", mount.point);
        }
    }
}

// ---------------------------------------------------------------------------
// `--user NAME[:GROUP]` (step07 on): looked up in the image's /etc/passwd
// and /etc/group, inside the container.

/// A test image's /etc/passwd and /etc/group: alice is in two groups besides
/// her own, far has a uid that the default user namespace does not map.
const TEST_PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                           nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
                           alice:x:1000:1000:Alice:/home/alice:/bin/sh\n\
                           far:x:70000:70000::/far:/bin/sh\n";
const TEST_GROUP: &str =
    "root:x:0:\ntty:x:5:\nstaff:x:50:alice\nusers:x:100:bob,alice\nalice:x:1000:\nnogroup:x:65534:\n";

/// What `id -u`, `id -g`, /proc/self/status's Groups (sorted) and HOME say
/// inside, for a run with `args` (runtime options only).
fn who_inside(step: Step, sandbox: &Sandbox, args: &[&str]) -> (String, String, Vec<u32>, String) {
    let mut all = args.to_vec();
    all.extend(["sh", "-c", "id -u; id -g; grep '^Groups:' /proc/self/status; echo \"$HOME\""]);
    let output = step.run(sandbox, &all);
    assert_ended(step, &output, 0, "exited with status 0");
    let out = stdout(&output);
    let lines: Vec<&str> = out.lines().collect();
    let [uid, gid, groups, home] = lines[..] else { panic!("with {args:?}:\n{out}") };
    let mut groups: Vec<u32> =
        groups.trim_start_matches("Groups:").split_whitespace().map(|gid| gid.parse().unwrap()).collect();
    groups.sort_unstable();
    (uid.to_string(), gid.to_string(), groups, home.to_string())
}

/// `--user` by name, by number, with a group by name or number, and none:
/// the uid, gid, supplementary groups (those of /etc/group that list the
/// user) and HOME (the passwd entry's, `/` without one, `-e HOME=` first)
/// are Docker's. The image's files are the same afterwards. `nobody` works
/// on the default image too.
pub fn check_user_names(step: Step, extra: &[&str]) {
    let sandbox = Sandbox::new();
    let rootfs = busybox_copy(step, &sandbox, "users", |rootfs| {
        std::fs::write(rootfs.join("etc/passwd"), TEST_PASSWD).unwrap();
        std::fs::write(rootfs.join("etc/group"), TEST_GROUP).unwrap();
    });
    let before = fingerprint(&rootfs.join("etc"));
    // The runtime options, then the uid, gid, groups and HOME expected.
    type Case<'a> = (&'a [&'a str], (&'a str, &'a str, &'a [u32], &'a str));
    let cases: &[Case] = &[
        (&[], ("0", "0", &[0], "/root")),
        (&["--user", "nobody"], ("65534", "65534", &[65534], "/nonexistent")),
        (&["--user", "alice"], ("1000", "1000", &[50, 100, 1000], "/home/alice")),
        (&["--user", "1000"], ("1000", "1000", &[50, 100, 1000], "/home/alice")),
        (&["--user", "alice:tty"], ("1000", "5", &[5], "/home/alice")),
        (&["--user", "alice:7"], ("1000", "7", &[7], "/home/alice")),
        (&["--user", "nobody:staff"], ("65534", "50", &[50], "/nonexistent")),
        (&["--user", "4242"], ("4242", "0", &[0], "/")),
        (&["--user", "alice", "-e", "HOME=/work"], ("1000", "1000", &[50, 100, 1000], "/work")),
    ];
    for (options, (uid, gid, groups, home)) in cases {
        let mut args = vec!["--image", "users"];
        args.extend(extra);
        args.extend(*options);
        let (got_uid, got_gid, got_groups, got_home) = who_inside(step, &sandbox, &args);
        assert_eq!((got_uid.as_str(), got_gid.as_str()), (*uid, *gid), "uid, gid with {args:?}");
        assert_eq!(got_groups, *groups, "Groups with {args:?}");
        assert_eq!(got_home, *home, "HOME with {args:?}");
    }
    let mut args = extra.to_vec();
    args.extend(["--user", "nobody"]);
    let (uid, gid, groups, home) = who_inside(step, &sandbox, &args);
    assert_eq!((uid, gid, groups, home), ("65534".into(), "65534".into(), vec![65534], "/nonexistent".into()));
    assert_eq!(fingerprint(&rootfs.join("etc")), before, "the image's /etc changed with {extra:?}");
}

/// A name the image does not have, as a user or as a group, ends with status
/// 125 and Docker's words on the first line, leaving nothing behind; so does
/// a user whose uid the user namespace does not map (only then: without a
/// user namespace it runs).
pub fn check_unknown_user_is_refused(step: Step, extra: &[&str]) {
    let sandbox = Sandbox::new();
    busybox_copy(step, &sandbox, "users", |rootfs| {
        std::fs::write(rootfs.join("etc/passwd"), TEST_PASSWD).unwrap();
        std::fs::write(rootfs.join("etc/group"), TEST_GROUP).unwrap();
    });
    let host_mode = extra.contains(&"--userns=host");
    let mut cases = vec![
        ("nosuch", "unable to find user nosuch: no matching entries in passwd file"),
        ("alice:nosuch", "unable to find group nosuch: no matching entries in group file"),
    ];
    if !host_mode {
        cases.push(("far", "--user far: uid 70000 (the image's /etc/passwd) is not mapped: --uidmap 0:100000:65536"));
    }
    for (user, message) in cases {
        let mut args = vec!["--image", "users", "--user", user];
        args.extend(extra);
        args.extend(["echo", "RAN"]);
        let output = step.run(&sandbox, &args);
        let err = stderr(&output);
        assert_eq!(code(&output), 125, "--user {user} with {extra:?}: {err}");
        assert!(err.lines().next().unwrap_or_default().contains(message), "--user {user} with {extra:?}: {err}");
        assert!(!stdout(&output).contains("RAN"), "the command ran");
    }
    if host_mode {
        let (uid, ..) = who_inside(step, &sandbox, &["--image", "users", "--userns=host", "--user", "far"]);
        assert_eq!(uid, "70000");
    }
}

/// The image's /etc/passwd is read inside the container: one that is a
/// symlink to a host file (with a user in it) finds no user, because the
/// path leads nowhere inside; a FIFO /etc/group is refused at once (125),
/// where reading it would hang the start.
pub fn check_passwd_is_read_inside(step: Step, extra: &[&str]) {
    let sandbox = Sandbox::new();
    let secret = sandbox.dir.path().join("host-passwd");
    std::fs::write(&secret, "secret:x:4242:4242::/secret:/bin/sh\n").unwrap();
    busybox_copy(step, &sandbox, "linked", |rootfs| {
        std::fs::remove_file(rootfs.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink(&secret, rootfs.join("etc/passwd")).unwrap();
    });
    busybox_copy(step, &sandbox, "fifo", |rootfs| {
        std::fs::remove_file(rootfs.join("etc/group")).unwrap();
        nix::unistd::mkfifo(&rootfs.join("etc/group"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    });
    for (image, user, message) in [
        ("linked", "secret", "unable to find user secret"),
        ("fifo", "nobody", "the image's /etc/group is not a regular file"),
    ] {
        let mut args = vec!["--image", image, "--user", user];
        args.extend(extra);
        args.push("true");
        let output = step.run(&sandbox, &args);
        let err = stderr(&output);
        assert_eq!(code(&output), 125, "{image} with {extra:?}: {err}");
        assert!(err.lines().next().unwrap_or_default().contains(message), "{image} with {extra:?}: {err}");
    }
}

// ---------------------------------------------------------------------------
// Images made by the tests themselves (no network): layers as tars, and the
// three ways Docker's tools hand them over (an OCI layout directory, an OCI
// archive, a `docker save` archive).

/// One entry of a layer tar.
pub enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
    /// `.wh.NAME` in the directory: NAME of the layers below is deleted.
    Whiteout(&'a str),
    /// `.wh..wh..opq` in the directory: nothing below shows through.
    Opaque(&'a str),
    /// A regular file whose name is written as is (`../x`, `/etc/x`), as a
    /// hostile archive would; the tar crate's own checks would refuse it.
    Raw(&'a str),
}

/// A layer tar (uncompressed) of `entries`, owned by root, mode 0755 for
/// directories and 0644 for files.
pub fn layer_tar(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_700_000_000);
        let (path, kind, data, link): (String, tar::EntryType, &[u8], Option<&str>) = match entry {
            Entry::Dir(path) => (path.to_string(), tar::EntryType::Directory, b"", None),
            Entry::File(path, data) => (path.to_string(), tar::EntryType::Regular, data, None),
            Entry::Symlink(path, to) => (path.to_string(), tar::EntryType::Symlink, b"", Some(to)),
            Entry::Whiteout(path) => {
                let path = Path::new(path);
                let dir = path.parent().map(|dir| dir.display().to_string()).unwrap_or_default();
                let name = path.file_name().unwrap().to_string_lossy();
                let joined = if dir.is_empty() { format!(".wh.{name}") } else { format!("{dir}/.wh.{name}") };
                (joined, tar::EntryType::Regular, b"", None)
            }
            Entry::Opaque(dir) => (format!("{dir}/.wh..wh..opq"), tar::EntryType::Regular, b"", None),
            Entry::Raw(path) => (path.to_string(), tar::EntryType::Regular, b"raw\n", None),
        };
        header.set_entry_type(kind);
        header.set_mode(if kind == tar::EntryType::Directory { 0o755 } else { 0o644 });
        header.set_size(data.len() as u64);
        if let Some(to) = link {
            header.set_link_name(to).unwrap();
        }
        // Written raw: append_data would refuse `..` and absolute names.
        let name = path.as_bytes();
        header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// `bytes` gzip-compressed.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// sha256 of `bytes`, 64 hex digits.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// An image to write out: its layers (uncompressed tars, bottom first) and
/// its config's run defaults.
#[derive(Clone)]
pub struct TestImage {
    pub layers: Vec<Vec<u8>>,
    /// Gzip layer N in OCI layouts (docker save keeps every layer plain).
    pub gzip: Vec<bool>,
    pub env: Vec<String>,
    pub cmd: Vec<String>,
    pub entrypoint: Vec<String>,
    pub working_dir: String,
    pub user: String,
    /// index.json names an image index (as buildx writes), not the manifest.
    pub nested_index: bool,
    /// Also docker's manifest.json, as `docker save` has written since
    /// Docker 25 (the layers then stay uncompressed).
    pub with_docker_manifest: bool,
}

impl TestImage {
    pub fn new(layers: Vec<Vec<u8>>) -> TestImage {
        let gzip = vec![false; layers.len()];
        TestImage {
            layers,
            gzip,
            env: Vec::new(),
            cmd: Vec::new(),
            entrypoint: Vec::new(),
            working_dir: String::new(),
            user: String::new(),
            nested_index: false,
            with_docker_manifest: false,
        }
    }

    /// The image config (the OCI image spec's config.md, which docker save
    /// writes too).
    pub fn config_json(&self) -> Vec<u8> {
        let diff_ids: Vec<String> = self.layers.iter().map(|layer| format!("sha256:{}", sha256(layer))).collect();
        serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Env": self.env,
                "Cmd": self.cmd,
                "Entrypoint": if self.entrypoint.is_empty() { serde_json::Value::Null } else { serde_json::json!(self.entrypoint) },
                "WorkingDir": self.working_dir,
                "User": self.user,
            },
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        }))
        .unwrap()
    }

    /// The blobs of an OCI layout, by digest (hex), and index.json.
    fn oci_files(&self) -> Vec<(String, Vec<u8>)> {
        let mut files = Vec::new();
        let mut descriptors = Vec::new();
        for (layer, gzipped) in self.layers.iter().zip(&self.gzip) {
            let (blob, kind) = if *gzipped {
                (gzip(layer), "application/vnd.oci.image.layer.v1.tar+gzip")
            } else {
                (layer.clone(), "application/vnd.oci.image.layer.v1.tar")
            };
            let digest = sha256(&blob);
            descriptors
                .push(serde_json::json!({"mediaType": kind, "digest": format!("sha256:{digest}"), "size": blob.len()}));
            files.push((format!("blobs/sha256/{digest}"), blob));
        }
        let config = self.config_json();
        let config_digest = sha256(&config);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{config_digest}"), "size": config.len()},
            "layers": descriptors,
        }))
        .unwrap();
        let manifest_digest = sha256(&manifest);
        let mut descriptor = serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest_digest}"),
            "size": manifest.len(),
        });
        if self.nested_index {
            // As buildx writes it: index.json names an image index, which
            // lists one manifest per platform and an attestation manifest
            // (platform unknown/unknown) first.
            let platform = match std::env::consts::ARCH {
                "aarch64" => "arm64",
                _ => "amd64",
            };
            descriptor["platform"] = serde_json::json!({"os": "linux", "architecture": platform});
            let attestation = serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{config_digest}"),
                "size": config.len(),
                "platform": {"os": "unknown", "architecture": "unknown"},
            });
            let nested = serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [attestation, descriptor],
            }))
            .unwrap();
            let nested_digest = sha256(&nested);
            files.push((format!("blobs/sha256/{nested_digest}"), nested.clone()));
            descriptor = serde_json::json!({
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": format!("sha256:{nested_digest}"),
                "size": nested.len(),
            });
        }
        descriptor["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "test"});
        let index = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [descriptor]})).unwrap();
        if self.with_docker_manifest {
            // Docker 25 and later: an OCI layout plus docker's manifest.json,
            // which names the same blobs.
            let layers: Vec<String> =
                self.layers.iter().map(|layer| format!("blobs/sha256/{}", sha256(layer))).collect();
            let manifest = serde_json::json!([{
                "Config": format!("blobs/sha256/{config_digest}"),
                "RepoTags": ["test:latest"],
                "Layers": layers,
            }]);
            files.push(("manifest.json".into(), serde_json::to_vec(&manifest).unwrap()));
        }
        files.push((format!("blobs/sha256/{config_digest}"), config));
        files.push((format!("blobs/sha256/{manifest_digest}"), manifest));
        files.push(("index.json".into(), index));
        files.push(("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()));
        files
    }

    /// An OCI image layout directory at `dir`, as `skopeo copy … oci:DIR`
    /// writes one.
    pub fn write_oci_layout(&self, dir: &Path) {
        for (name, bytes) in self.oci_files() {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    }

    /// The same layout as one tar, as `podman save --format oci-archive`
    /// writes it.
    pub fn write_oci_archive(&self, path: &Path) {
        write_archive(path, &self.oci_files());
    }

    /// A `docker save` archive (the layout before Docker 25: `<id>/layer.tar`,
    /// `<id>.json`, manifest.json).
    pub fn write_docker_save(&self, path: &Path) {
        let config = self.config_json();
        let config_name = format!("{}.json", sha256(&config));
        let mut files = Vec::new();
        let mut layers = Vec::new();
        for layer in &self.layers {
            let name = format!("{}/layer.tar", sha256(layer));
            layers.push(name.clone());
            files.push((name, layer.clone()));
        }
        let manifest = serde_json::to_vec(&serde_json::json!([
            {"Config": config_name, "RepoTags": ["test:latest"], "Layers": layers}
        ]))
        .unwrap();
        files.push((config_name, config));
        files.push(("manifest.json".into(), manifest));
        write_archive(path, &files);
    }
}

/// A tar of `files` (name, bytes), with their directories.
fn write_archive(path: &Path, files: &[(String, Vec<u8>)]) {
    let mut builder = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut dirs = std::collections::BTreeSet::new();
    for (name, bytes) in files {
        let mut parent = Path::new(name).parent();
        while let Some(dir) = parent.filter(|dir| !dir.as_os_str().is_empty()) {
            if dirs.insert(dir.to_path_buf()) {
                let mut header = tar::Header::new_gnu();
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder.append_data(&mut header, dir, &[][..]).unwrap();
            }
            parent = dir.parent();
        }
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(bytes.len() as u64);
        builder.append_data(&mut header, name, &bytes[..]).unwrap();
    }
    builder.finish().unwrap();
}

/// The default image's tarball (built from the host's busybox), as the
/// bottom layer of the test images: the same bytes, so the same layer as
/// the default image's.
pub fn busybox_layer() -> Vec<u8> {
    static LAYER: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    LAYER
        .get_or_init(|| {
            require_default_image();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("busybox.tar");
            crate::image::build_busybox_tar(&path).unwrap();
            std::fs::read(path).unwrap()
        })
        .clone()
}

/// The image of issue 10's proof: busybox, and a second layer that deletes
/// /etc/os-release, makes /usr/sbin opaque (only `only-in-top` is left in
/// it) and adds /app/hello; its config sets Env, WorkingDir (missing from
/// the layers: the runtime makes it), User `app` (uid 1000 in the top
/// layer's /etc/passwd) and Cmd.
pub fn layered_image() -> TestImage {
    let passwd = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000:App:/home/app:/bin/sh\n";
    let group = b"root:x:0:\nnogroup:x:65534:\napp:x:1000:\nstaff:x:50:app\n";
    let top = layer_tar(&[
        Entry::Dir("etc"),
        Entry::Whiteout("etc/os-release"),
        Entry::File("etc/passwd", passwd),
        Entry::File("etc/group", group),
        Entry::Dir("usr"),
        Entry::Dir("usr/sbin"),
        Entry::Opaque("usr/sbin"),
        Entry::File("usr/sbin/only-in-top", b"top\n"),
        Entry::Dir("app"),
        Entry::File("app/hello", b"hello from the top layer\n"),
    ]);
    let mut image = TestImage::new(vec![busybox_layer(), top]);
    image.gzip = vec![false, true];
    image.env = vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        "GREETING=hello from the image".into(),
    ];
    image.working_dir = "/app/work".into();
    image.user = "app".into();
    image.cmd = vec!["sh".into(), "-c".into(), "echo \"default: $GREETING, uid $(id -u), in $(pwd)\"".into()];
    image
}

/// Issue 10's proof, through the step's binary: the image of
/// [`layered_image`], as an OCI layout and as a docker save archive, runs
/// the way `docker run` runs it. Its default command runs as its User
/// (`uid`: the step's answer, 0 before `--user` exists) in its WorkingDir
/// (made, as it is in no layer) with its Env; the top layer's whiteout and
/// opaque directory hide what they should; `-e` and `--entrypoint` override
/// as in Docker. Its bottom layer is the default image's: run first, that
/// layer is not unpacked again (same inode and mtime).
pub fn check_layered_image(step: Step, extra: &[&str], uid: u32) {
    use std::os::unix::fs::MetadataExt;
    step.expect_images("check_layered_image");
    let sandbox = Sandbox::new();
    let with = |image: &str, args: &[&str]| {
        let mut all = vec!["--image", image];
        all.extend_from_slice(extra);
        all.extend_from_slice(args);
        step.run(&sandbox, &all)
    };
    let output = with(crate::DEFAULT_IMAGE, &["true"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let shared = sandbox.image_rootfs();
    let stamp =
        |path: &Path| std::fs::metadata(path).map(|meta| (meta.ino(), meta.mtime(), meta.mtime_nsec())).unwrap();
    let before = stamp(&shared);
    let image = layered_image();
    let layout = sandbox.dir.path().join("layered-oci");
    image.write_oci_layout(&layout);
    let saved = sandbox.dir.path().join("layered-save.tar");
    image.write_docker_save(&saved);
    for source in [&layout, &saved] {
        let source = source.to_str().unwrap();
        let output = with(source, &[]);
        assert_eq!(code(&output), 0, "{source}: {}", stderr(&output));
        let expected = format!("default: hello from the image, uid {uid}, in /app/work\n");
        assert_eq!(stdout(&output), expected, "{source}: the image's Cmd, Env, User or WorkingDir");
        let script = "test -e /etc/os-release && echo os-release is still there; ls /usr/sbin; cat /app/hello";
        let output = with(source, &["sh", "-c", script]);
        assert_eq!(code(&output), 0, "{source}: {}", stderr(&output));
        assert_eq!(stdout(&output), "only-in-top\nhello from the top layer\n", "{source}: whiteout or opaque dir");
        let output = with(
            source,
            &["-e", "GREETING=overridden", "--entrypoint", "sh", "--", "-c", "echo $GREETING; echo $PATH"],
        );
        assert_eq!(code(&output), 0, "{source}: {}", stderr(&output));
        assert_eq!(
            stdout(&output),
            "overridden\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
            "{source}: -e or --entrypoint"
        );
    }
    assert_eq!(stamp(&shared), before, "the shared busybox layer was unpacked again");
    let layers: Vec<_> = std::fs::read_dir(sandbox.images.join("layers/sha256")).unwrap().flatten().collect();
    let names: Vec<_> = layers.iter().map(|entry| entry.file_name()).collect();
    // busybox, the gzipped top layer of the OCI layout, the plain one of
    // docker save (keyed by its uncompressed digest); uid-shifted copies
    // (--no-idmap) next to them.
    let plain: Vec<_> = names.iter().filter(|name| !name.to_string_lossy().contains('-')).collect();
    assert_eq!(plain.len(), 3, "{names:?}");
}

/// From step05 on: the overlay on / has one lower dir per layer of the
/// image, top first, as the container's own mountinfo shows.
pub fn check_one_lower_dir_per_layer(step: Step, extra: &[&str]) {
    let sandbox = Sandbox::new();
    let layout = sandbox.dir.path().join("layered-oci");
    layered_image().write_oci_layout(&layout);
    let mut args = vec!["--image", layout.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["cat", "/proc/self/mountinfo"]);
    let output = step.run(&sandbox, &args);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let inside = stdout(&output);
    let mounts = parse_mountinfo(&inside);
    let root = mounts.iter().rev().find(|mount| mount.point == "/").expect("no mount on / inside");
    assert_eq!(root.fstype, "overlay", "{inside}");
    let lower = root
        .super_options
        .split(',')
        .find_map(|option| option.strip_prefix("lowerdir="))
        .unwrap_or_else(|| panic!("no lowerdir= in {}", root.super_options));
    // Escaped by the kernel as `\:` when a path had one; ours have none.
    let dirs: Vec<&str> = lower.split(':').collect();
    assert_eq!(dirs.len(), 2, "{lower}");
    if dirs[0].contains("/lower/") {
        assert!(dirs[0].ends_with("/lower/1") && dirs[1].ends_with("/lower/0"), "not top first: {lower}");
    } else {
        assert!(dirs[1].ends_with(&sha256(&busybox_layer())), "the bottom layer is not last: {lower}");
    }
}

/// A `docker save` archive with a layer that is not what its config's
/// diff_id says: exit 125, one line naming the archive and the fix, and
/// nothing left in the store.
pub fn check_bad_image_is_refused(step: Step) {
    step.expect_images("check_bad_image_is_refused");
    let sandbox = Sandbox::new();
    let mut image = layered_image();
    let good = image.config_json();
    image.layers[1] = layer_tar(&[Entry::File("changed", b"not the layer the config names\n")]);
    let saved = sandbox.dir.path().join("bad-save.tar");
    image.write_docker_save(&saved);
    // Put the original config (with the original diff_ids) back in.
    let mut files = Vec::new();
    let mut archive = tar::Archive::new(std::fs::File::open(&saved).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        if name.ends_with(".json") && name != "manifest.json" {
            bytes = good.clone();
        }
        files.push((name, bytes));
    }
    files.retain(|(name, _)| !name.ends_with('/'));
    write_archive(&saved, &files);
    let output = step.run(&sandbox, &["--image", saved.to_str().unwrap(), "true"]);
    assert_eq!(code(&output), 125, "{}", stderr(&output));
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "expected one line: {err}");
    assert!(err.contains(saved.to_str().unwrap()) && err.contains("does not match its digest"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&sandbox.images).unwrap().flatten().map(|entry| entry.file_name()).collect();
    assert!(left.is_empty(), "a refused image left files or layers: {left:?}");
}

/// `images` lists what runs left in the store, and `rmi` removes an image
/// and its own layers, keeping the ones another image has.
pub fn check_images_and_rmi(step: Step) {
    step.expect_images("check_images_and_rmi");
    let sandbox = Sandbox::new();
    let layout = sandbox.dir.path().join("layered-oci");
    layered_image().write_oci_layout(&layout);
    for image in [crate::DEFAULT_IMAGE, layout.to_str().unwrap()] {
        let output = step.run(&sandbox, &["--image", image, "true"]);
        assert_eq!(code(&output), 0, "{}", stderr(&output));
    }
    let subcommand = |args: &[&str]| {
        let output = Command::new(step.binary).args(args).arg("--image-dir").arg(&sandbox.images).output().unwrap();
        assert_eq!(code(&output), 0, "{args:?}: {}", stderr(&output));
        stdout(&output)
    };
    let listed = subcommand(&["images"]);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 3, "{listed}");
    assert!(lines[0].starts_with("IMAGE") && lines[0].contains("FORMAT") && lines[0].contains("SIZE"), "{listed}");
    assert!(lines.iter().any(|line| line.starts_with("busybox ") && line.contains("rootfs-tar")), "{listed}");
    let real = std::fs::canonicalize(&layout).unwrap();
    assert!(lines.iter().any(|line| line.starts_with(real.to_str().unwrap()) && line.contains(" oci ")), "{listed}");
    let removed = subcommand(&["rmi", layout.to_str().unwrap()]);
    assert!(removed.starts_with("removed image"), "{removed}");
    assert_eq!(removed.lines().filter(|line| line.starts_with("removed layer")).count(), 1, "{removed}");
    assert!(sandbox.image_rootfs().join("bin/busybox").is_file(), "rmi removed the layer busybox shares");
    assert_eq!(subcommand(&["images", "-q"]), "busybox\n");
}

/// From step07: the image's User is a name looked up in the image's
/// /etc/passwd and /etc/group (supplementary groups and HOME included), and
/// `--user` replaces it, as in Docker.
pub fn check_user_replaces_the_images(step: Step) {
    let sandbox = Sandbox::new();
    let layout = sandbox.dir.path().join("layered-oci");
    layered_image().write_oci_layout(&layout);
    let image = layout.to_str().unwrap();
    let who = "echo $(id -u) $(id -G) $HOME";
    for (args, uid) in [
        (vec!["--image", image, "sh", "-c", who], "1000 1000 50 /home/app\n"),
        (vec!["--image", image, "--user", "0", "sh", "-c", who], "0 0 /root\n"),
        (vec!["--image", image, "--user", "nobody", "sh", "-c", who], "65534 65534 /nonexistent\n"),
    ] {
        let output = step.run(&sandbox, &args);
        assert_eq!(code(&output), 0, "{args:?}: {}", stderr(&output));
        assert_eq!(stdout(&output), uid, "{args:?}");
    }
}
