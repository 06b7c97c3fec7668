//! Step 10 is step09 plus the OCI runtime interface. `run` is checked as in
//! step09; the OCI commands are run as an engine runs them (create, start,
//! state, kill, delete, exec), and the tests look at what the kernel shows:
//! /proc/PID/exe before and after `start`, the cgroup directories, the
//! freezer, mountinfo, the namespaces of an exec'd process.

use std::fs;
use std::path::Path;
use std::path::PathBuf;
use std::process::Command;
use std::process::Output;
use std::process::Stdio;
use std::thread::sleep;
use std::time::Duration;
use std::time::Instant;

use common::as_root;
use common::testing;
use common::testing::Sandbox;
use common::testing::Step;
use common::testing::code;
use common::testing::stderr;
use common::testing::stdout;

const BINARY: &str = env!("CARGO_BIN_EXE_step10-oci");
const STEP: Step = Step::in_image(BINARY);

#[test]
fn a_bad_option_exits_125_with_one_line() {
    testing::check_bad_option(STEP);
}

as_root!(run_still_works_as_in_step09, testing::check_exit_codes_as_pid1(STEP));
as_root!(
    run_still_makes_every_namespace,
    testing::check_own_namespaces(STEP, &["pid", "uts", "ipc", "net", "user", "cgroup"])
);
as_root!(run_still_mounts_a_volatile_overlay, testing::check_overlay_is_volatile_unless_kept(STEP));

/// A bundle (config.json from `step10-oci spec`, the sandbox's busybox as its
/// root), a private --root and a container id no other test uses.
struct Oci {
    sandbox: Sandbox,
    bundle: PathBuf,
    root: PathBuf,
    id: String,
}

impl Oci {
    fn new(name: &str, command: &[&str]) -> Oci {
        testing::require_default_image();
        let sandbox = Sandbox::new();
        let image = common::image::open(&sandbox.images, common::DEFAULT_IMAGE).expect("cannot extract the image");
        let bundle = sandbox.dir.path().join("bundle");
        fs::create_dir(&bundle).unwrap();
        // The default image is one layer; the bundle gets a copy of it, as
        // an engine unpacks one: the store is root's alone (0700), and a
        // bundle's user namespace must reach its rootfs.
        let copied = std::process::Command::new("cp")
            .arg("-a")
            .arg(&image.layers()[0])
            .arg(bundle.join("rootfs"))
            .status()
            .unwrap();
        assert!(copied.success(), "cp -a of the image's layer failed");
        let root = sandbox.dir.path().join("state");
        let id = format!("{name}-{}", std::process::id());
        let oci = Oci { sandbox, bundle, root, id };
        let output = oci.call(&[&["spec", "--bundle", oci.bundle.to_str().unwrap(), "--"][..], command].concat());
        assert_eq!(code(&output), 0, "spec failed: {}", stderr(&output));
        // runc's default root is read-only; the tests leave marks in it.
        oci.config(|config| config["root"]["readonly"] = false.into());
        oci
    }

    /// `step10-oci --root ROOT ARGS...`, to completion. For `create` and
    /// `exec --detach`, whose stdio becomes the container's process's,
    /// stdout goes to /dev/null and stderr to a file: a pipe would stay open
    /// (and `output()` wait) for as long as that process lives.
    fn call(&self, args: &[&str]) -> Output {
        let mut command = Command::new(BINARY);
        command.arg("--root").arg(&self.root).args(args);
        if args.first() != Some(&"create") && !args.contains(&"--detach") {
            return command.output().expect("cannot run step10-oci");
        }
        let log = self.sandbox.dir.path().join("create.stderr");
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(fs::File::create(&log).unwrap());
        let status = command.status().expect("cannot run step10-oci");
        Output { status, stdout: Vec::new(), stderr: fs::read(&log).unwrap() }
    }

    /// Edits config.json.
    fn config(&self, edit: impl FnOnce(&mut serde_json::Value)) {
        let path = self.bundle.join("config.json");
        let mut config: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        edit(&mut config);
        fs::write(&path, config.to_string()).unwrap();
    }

    /// `create --bundle B --pid-file P ID`, which must succeed; returns the pid.
    fn create(&self) -> u32 {
        self.create_with(&[])
    }

    /// `create` with more options before the id.
    fn create_with(&self, options: &[&str]) -> u32 {
        let pid_file = self.sandbox.dir.path().join("pid");
        let bundle = self.bundle.to_str().unwrap();
        let first = ["create", "--bundle", bundle, "--pid-file", pid_file.to_str().unwrap()];
        let output = self.call(&[&first[..], options, &[self.id.as_str()]].concat());
        assert_eq!(code(&output), 0, "create failed: {}", stderr(&output));
        fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap()
    }

    fn status(&self) -> String {
        let output = self.call(&["state", &self.id]);
        assert_eq!(code(&output), 0, "state failed: {}", stderr(&output));
        let state: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(state["id"], self.id.as_str());
        assert_eq!(state["ociVersion"], "1.0.2");
        state["status"].as_str().unwrap().to_string()
    }

    /// Waits up to 5 s for `status`.
    fn wait_for(&self, status: &str) {
        let started = Instant::now();
        while self.status() != status {
            assert!(started.elapsed() < Duration::from_secs(5), "container never became {status}");
            sleep(Duration::from_millis(20));
        }
    }

    /// The container's cgroup directories that exist.
    fn cgroups(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for hierarchy in fs::read_dir("/sys/fs/cgroup").unwrap().filter_map(Result::ok) {
            let dir = hierarchy.path().join(common::CGROUP_PARENT).join(&self.id);
            if dir.is_dir() {
                found.push(dir);
            }
        }
        let unified = Path::new("/sys/fs/cgroup").join(common::CGROUP_PARENT).join(&self.id);
        if unified.is_dir() {
            found.push(unified);
        }
        found
    }

    /// Nothing of the container is left: state, cgroups, mounts.
    fn assert_gone(&self) {
        assert!(!self.root.join(&self.id).exists(), "state directory left behind");
        assert!(self.cgroups().is_empty(), "cgroups left behind: {:?}", self.cgroups());
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let bundle = self.bundle.to_string_lossy();
        assert!(!mountinfo.contains(bundle.as_ref()), "mounts left behind under {bundle}");
    }
}

impl Drop for Oci {
    fn drop(&mut self) {
        let _ = self.call(&["delete", "--force", &self.id]);
    }
}

/// Exactly one line on stderr and a non-zero status: what podman shows.
fn assert_one_line_failure(output: &Output) {
    assert_ne!(code(output), 0, "expected a failure");
    let text = stderr(output);
    assert_eq!(text.lines().count(), 1, "expected one line: {text}");
}

fn exe(pid: u32) -> String {
    fs::read_link(format!("/proc/{pid}/exe")).map(|path| path.display().to_string()).unwrap_or_default()
}

as_root!(create_stops_before_exec_start_runs_and_delete_leaves_nothing, {
    let oci = Oci::new("life", &["sh", "-c", "echo started > /started; sleep 1"]);
    let pid = oci.create();
    assert_eq!(oci.status(), "created");
    // Blocked in front of the exec fifo: still the runtime's program, and
    // the command has not run.
    let runtime = fs::canonicalize(BINARY).unwrap().display().to_string();
    assert_eq!(exe(pid), runtime);
    sleep(Duration::from_millis(200));
    assert!(!oci.bundle.join("rootfs/started").exists(), "the command ran before start");
    assert!(!oci.cgroups().is_empty(), "no cgroup while created");
    let started = Instant::now();
    let output = oci.call(&["start", &oci.id]);
    assert_eq!(code(&output), 0, "start failed: {}", stderr(&output));
    assert!(output.stdout.is_empty(), "start prints nothing");
    assert!(started.elapsed() < Duration::from_millis(900), "start did not return at once");
    assert_eq!(oci.status(), "running");
    sleep(Duration::from_millis(200));
    assert!(exe(pid).ends_with("busybox"), "not exec'd: {}", exe(pid));
    assert!(oci.bundle.join("rootfs/started").exists());
    fs::remove_file(oci.bundle.join("rootfs/started")).unwrap();
    oci.wait_for("stopped");
    let output = oci.call(&["delete", &oci.id]);
    assert_eq!(code(&output), 0, "delete failed: {}", stderr(&output));
    oci.assert_gone();
    // Already gone: still no error, as engines call delete twice.
    assert_eq!(code(&oci.call(&["delete", &oci.id])), 0);
});

as_root!(start_of_a_running_container_is_one_line_of_error, {
    let oci = Oci::new("twice", &["sleep", "5"]);
    oci.create();
    assert_eq!(code(&oci.call(&["start", &oci.id])), 0);
    assert_one_line_failure(&oci.call(&["start", &oci.id]));
});

as_root!(kill_takes_signal_names_and_numbers, {
    let oci = Oci::new(
        "kill",
        &[
            "sh",
            "-c",
            "trap 'echo term >> /signals' TERM; trap 'echo hup >> /signals' HUP; while :; do sleep 0.05; done",
        ],
    );
    let pid = oci.create();
    assert_eq!(code(&oci.call(&["start", &oci.id])), 0);
    oci.wait_for("running");
    sleep(Duration::from_millis(300));
    for signal in ["TERM", "15", "SIGHUP", "1", "hup"] {
        let output = oci.call(&["kill", &oci.id, signal]);
        assert_eq!(code(&output), 0, "kill {signal}: {}", stderr(&output));
        sleep(Duration::from_millis(200));
    }
    let signals = fs::read_to_string(oci.bundle.join("rootfs/signals")).unwrap();
    fs::remove_file(oci.bundle.join("rootfs/signals")).unwrap();
    assert_eq!(signals, "term\nterm\nhup\nhup\nhup\n");
    assert_one_line_failure(&oci.call(&["kill", &oci.id, "NOSUCHSIGNAL"]));
    assert_eq!(code(&oci.call(&["kill", &oci.id, "SIGKILL"])), 0);
    oci.wait_for("stopped");
    assert!(common::container::is_dead(pid));
    assert_eq!(code(&oci.call(&["delete", &oci.id])), 0);
    oci.assert_gone();
});

as_root!(delete_refuses_a_running_container_unless_forced, {
    let oci = Oci::new("force", &["sleep", "100"]);
    let pid = oci.create();
    assert_eq!(code(&oci.call(&["start", &oci.id])), 0);
    oci.wait_for("running");
    assert_one_line_failure(&oci.call(&["delete", &oci.id]));
    assert_eq!(oci.status(), "running");
    let output = oci.call(&["delete", "--force", &oci.id]);
    assert_eq!(code(&output), 0, "delete --force failed: {}", stderr(&output));
    assert!(common::container::is_dead(pid), "still alive after delete --force");
    oci.assert_gone();
});

as_root!(a_bad_bundle_is_one_line_and_leaves_nothing, {
    let oci = Oci::new("bad", &["true"]);
    oci.config(|config| config["process"]["args"] = serde_json::json!([]));
    assert_one_line_failure(&oci.call(&["create", "--bundle", oci.bundle.to_str().unwrap(), &oci.id]));
    oci.assert_gone();
    fs::remove_file(oci.bundle.join("config.json")).unwrap();
    assert_one_line_failure(&oci.call(&["create", "--bundle", oci.bundle.to_str().unwrap(), &oci.id]));
    oci.assert_gone();
    assert_one_line_failure(&oci.call(&["state", &oci.id]));
    assert_one_line_failure(&oci.call(&["--systemd-cgroup", "state", &oci.id]));
});

as_root!(a_failing_mount_is_reported_by_create_and_leaves_nothing, {
    let oci = Oci::new("mount", &["true"]);
    oci.config(|config| {
        config["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/mnt/x", "type": "bind", "source": "/no/such/dir", "options": ["rbind"]
        }))
    });
    let output = oci.call(&["create", "--bundle", oci.bundle.to_str().unwrap(), &oci.id]);
    assert_one_line_failure(&output);
    assert!(stderr(&output).contains("/no/such/dir"), "{}", stderr(&output));
    oci.assert_gone();
});

as_root!(exec_joins_the_containers_namespaces_and_cgroup, {
    let oci = Oci::new("exec", &["sleep", "100"]);
    let pid = oci.create();
    assert_eq!(code(&oci.call(&["start", &oci.id])), 0);
    oci.wait_for("running");
    let output = oci.call(&[
        "exec",
        &oci.id,
        "sh",
        "-c",
        "readlink /proc/self/ns/pid; readlink /proc/self/ns/mnt; hostname; exit 3",
    ]);
    assert_eq!(code(&output), 3, "exec: {}", stderr(&output));
    let theirs: Vec<String> = ["pid", "mnt"]
        .iter()
        .map(|kind| fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap().display().to_string())
        .collect();
    assert_eq!(stdout(&output), format!("{}\n{}\ncontainer\n", theirs[0], theirs[1]));
    let output = oci.call(&["ps", "--format", "json", &oci.id]);
    let pids: Vec<u32> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(pids, vec![pid]);
});

as_root!(pause_freezes_the_cgroup_and_resume_thaws_it, {
    let oci = Oci::new("pause", &["sleep", "100"]);
    let pid = oci.create();
    assert_eq!(code(&oci.call(&["start", &oci.id])), 0);
    oci.wait_for("running");
    assert_eq!(code(&oci.call(&["pause", &oci.id])), 0);
    assert_eq!(oci.status(), "paused");
    // The kernel's view: the process is frozen (state D or S in the freezer,
    // and /proc/PID/status shows it stopped in the refrigerator on v1).
    let freezer = oci.cgroups().into_iter().find(|dir| dir.starts_with("/sys/fs/cgroup/freezer"));
    if let Some(dir) = freezer {
        assert_eq!(fs::read_to_string(dir.join("freezer.state")).unwrap().trim(), "FROZEN");
    }
    assert_eq!(code(&oci.call(&["resume", &oci.id])), 0);
    assert_eq!(oci.status(), "running");
    assert!(!common::container::is_dead(pid));
});

as_root!(a_terminal_master_goes_to_the_console_socket_over_scm_rights, {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixListener;

    let oci = Oci::new("tty", &["sh", "-c", "tty; echo done-on-the-terminal"]);
    oci.config(|config| config["process"]["terminal"] = true.into());
    let path = oci.sandbox.dir.path().join("console.sock");
    let listener = UnixListener::bind(&path).unwrap();
    // The engine's side: accept, and receive one descriptor (SCM_RIGHTS).
    let receiver = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut byte = [0u8; 16];
        let mut iov = [std::io::IoSliceMut::new(&mut byte)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let message = nix::sys::socket::recvmsg::<()>(
            std::os::fd::AsRawFd::as_raw_fd(&stream),
            &mut iov,
            Some(&mut space),
            nix::sys::socket::MsgFlags::empty(),
        )
        .unwrap();
        let mut fds = Vec::new();
        for cmsg in message.cmsgs().unwrap() {
            if let nix::sys::socket::ControlMessageOwned::ScmRights(received) = cmsg {
                fds.extend(received);
            }
        }
        assert_eq!(fds.len(), 1, "expected one descriptor");
        // SAFETY: the kernel just installed this descriptor for us.
        unsafe { OwnedFd::from_raw_fd(fds[0]) }
    });
    oci.create_with(&["--console-socket", path.to_str().unwrap()]);
    let master = receiver.join().unwrap();
    let target = fs::read_link(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&master))).unwrap();
    assert!(target.ends_with("ptmx"), "not a pty master: {}", target.display());
    assert_eq!(code(&oci.call(&["start", &oci.id])), 0);
    let mut terminal = fs::File::from(master);
    let mut seen = String::new();
    let mut chunk = [0u8; 256];
    while !seen.contains("done-on-the-terminal") {
        match terminal.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&chunk[..n])),
        }
    }
    // The slave is the command's stdin/stdout, in the container's own devpts.
    assert!(seen.contains("/dev/pts/0"), "{seen:?}");
    assert!(seen.contains("done-on-the-terminal"), "{seen:?}");
});

as_root!(a_relative_cgroups_path_goes_under_the_project_parent_and_delete_removes_what_create_made, {
    let oci = Oci::new("nested", &["sleep", "100"]);
    let nested = format!("{}-outer/inner", oci.id);
    oci.config(|config| config["linux"]["cgroupsPath"] = nested.clone().into());
    let pid = oci.create();
    // The kernel's view: init is in docker-from-scratch/ID-outer/inner, in
    // every hierarchy, whatever the caller's own cgroup is.
    let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let expected = format!("/{}/{nested}", common::CGROUP_PARENT);
    assert!(cgroups.lines().any(|line| line.ends_with(&expected)), "{cgroups}");
    assert_eq!(code(&oci.call(&["delete", "--force", &oci.id])), 0);
    for hierarchy in fs::read_dir("/sys/fs/cgroup").unwrap().filter_map(Result::ok) {
        let outer = hierarchy.path().join(common::CGROUP_PARENT).join(format!("{}-outer", oci.id));
        assert!(!outer.exists(), "{} left behind", outer.display());
    }
    oci.assert_gone();
});

as_root!(a_user_namespace_from_the_bundle_maps_root_to_the_host_ids_it_names, {
    let oci = Oci::new("userns", &["sleep", "100"]);
    oci.config(|config| {
        config["linux"]["namespaces"].as_array_mut().unwrap().push(serde_json::json!({"type": "user"}));
        let map = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        config["linux"]["uidMappings"] = map.clone();
        config["linux"]["gidMappings"] = map;
    });
    // The container's root is uid 100000 on the host: it must be able to
    // reach the root filesystem (the sandbox keeps its images 0700).
    for dir in [oci.sandbox.images.clone(), oci.sandbox.images.join(common::DEFAULT_IMAGE)] {
        fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o711)).unwrap();
    }
    let pid = oci.create();
    assert_eq!(code(&oci.call(&["start", &oci.id])), 0);
    oci.wait_for("running");
    let map: Vec<String> =
        fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap().split_whitespace().map(String::from).collect();
    assert_eq!(map, ["0", "100000", "65536"]);
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids = status.lines().find(|line| line.starts_with("Uid:")).unwrap();
    assert_eq!(uids.split_whitespace().nth(1), Some("100000"), "{uids}");
    assert_ne!(testing::namespace(&pid.to_string(), "user"), testing::namespace("self", "user"));
});

as_root!(exec_detach_writes_the_host_pid_of_the_new_process, {
    let oci = Oci::new("detach", &["sleep", "100"]);
    oci.create();
    assert_eq!(code(&oci.call(&["start", &oci.id])), 0);
    oci.wait_for("running");
    let process = oci.sandbox.dir.path().join("process.json");
    fs::write(
        &process,
        serde_json::json!({
            "args": ["sleep", "50"], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}
        })
        .to_string(),
    )
    .unwrap();
    let pid_file = oci.sandbox.dir.path().join("exec.pid");
    let output = oci.call(&[
        "exec",
        "--process",
        process.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        "--detach",
        &oci.id,
    ]);
    assert_eq!(code(&output), 0, "exec: {}", stderr(&output));
    let pid: u32 = fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    // The pid file is written as the process execs (its socket closes on
    // exec); its new command line shows a moment later.
    let started = Instant::now();
    let mut cmdline = String::new();
    while cmdline.is_empty() && started.elapsed() < Duration::from_secs(2) {
        cmdline = fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
        sleep(Duration::from_millis(10));
    }
    assert_eq!(cmdline, "sleep\u{0}50\u{0}");
    let listed: Vec<u32> = serde_json::from_slice(&oci.call(&["ps", "--format", "json", &oci.id]).stdout).unwrap();
    assert!(listed.contains(&pid), "{listed:?} lacks {pid}");
    // kill --all reaches it too.
    assert_eq!(code(&oci.call(&["kill", "--all", &oci.id, "KILL"])), 0);
    oci.wait_for("stopped");
});

as_root!(a_failure_goes_to_the_log_as_one_json_line, {
    let oci = Oci::new("log", &["true"]);
    let log = oci.sandbox.dir.path().join("log.json");
    let output = oci.call(&["--log", log.to_str().unwrap(), "--log-format", "json", "state", "no-such-container"]);
    assert_one_line_failure(&output);
    let text = fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    let entry: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(entry["level"], "error");
    assert!(entry["msg"].as_str().unwrap().contains("no-such-container"), "{text}");
});
