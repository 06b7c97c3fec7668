//! Step 09 is the complete container: everything of step 08, plus an OOM
//! kill reported as such (137 and a last line with the limit and the peak),
//! setrlimit as the contrast, and OOM tuning options.

use std::path::Path;
use std::process::Command;

use common::as_root;
use common::testing;
use common::testing::Running;
use common::testing::Sandbox;
use common::testing::Step;
use common::testing::assert_ended;
use common::testing::stdout;

const STEP: Step = Step::in_image(env!("CARGO_BIN_EXE_step09-oom"));

#[test]
fn a_bad_option_exits_125_with_one_line() {
    testing::check_bad_option(STEP);
}

as_root!(exit_statuses_are_dockers_for_a_pid_1, testing::check_exit_codes_as_pid1(STEP));
as_root!(env_reaches_the_command_and_the_hosts_does_not, testing::check_env(STEP));
as_root!(the_command_is_found_on_the_containers_path, testing::check_command_is_found_on_the_containers_path(STEP));
as_root!(a_missing_image_exits_125_naming_the_tarball, testing::check_missing_image(STEP));
as_root!(a_failed_start_leaves_no_mount_and_no_directory, testing::check_failed_start_leaves_nothing(STEP));
as_root!(the_root_is_the_images, testing::check_root_is_the_image(STEP));

as_root!(the_overlay_is_volatile_unless_kept, testing::check_overlay_is_volatile_unless_kept(STEP));
as_root!(breakout_is_contained, testing::check_breakout_is_contained(STEP));
as_root!(the_mount_namespace_is_its_own, testing::check_own_mount_namespace(STEP));
as_root!(dev_has_the_standard_character_devices, testing::check_devices(STEP));
as_root!(
    every_namespace_is_its_own,
    testing::check_own_namespaces(STEP, &["pid", "uts", "ipc", "net", "user", "cgroup"])
);
as_root!(capabilities_are_dockers_default, assert_eq!(testing::status_field(STEP, &[], "CapBnd"), "00000000a80425fb"));

as_root!(the_cgroup_namespace_shows_root, {
    let sandbox = Sandbox::new();
    let output = STEP.run(&sandbox, &["cat", "/proc/self/cgroup"]);
    assert_ended(STEP, &output, 0, "exited with status 0");
    assert!(stdout(&output).lines().all(|line| line.ends_with(":/")), "{}", stdout(&output));
});

as_root!(limits_land_in_the_cgroup_and_the_cgroup_goes_with_the_container, {
    let sandbox = Sandbox::new();
    let limits = ["-m", "64m", "--memory-swap", "128m", "--cpus", "1.5", "--cpu-shares", "512", "--pids-limit", "20"];
    let mut args = limits.to_vec();
    args.extend(["sh", "-c", "echo ready && read line"]);
    let running = Running::start(STEP.command(&sandbox, &args), "ready");
    let dirs = testing::cgroup_dirs(testing::container_init(running.pid()));
    let read = |file: &str| {
        let dir = dirs.iter().find(|dir| dir.join(file).exists()).unwrap_or_else(|| panic!("no {file} in {dirs:?}"));
        std::fs::read_to_string(dir.join(file)).unwrap().trim().to_string()
    };
    let expected: &[(&str, &str)] = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        &[
            ("memory.max", "67108864"),
            ("memory.swap.max", "67108864"),
            ("cpu.weight", "20"),
            ("cpu.max", "150000 100000"),
            ("pids.max", "20"),
        ]
    } else {
        &[
            ("memory.limit_in_bytes", "67108864"),
            ("memory.memsw.limit_in_bytes", "134217728"),
            ("cpu.shares", "512"),
            ("cpu.cfs_quota_us", "150000"),
            ("pids.max", "20"),
        ]
    };
    for (file, value) in expected {
        assert_eq!(read(file), *value, "{file}");
    }
    let output = running.finish();
    assert_ended(STEP, &output, 0, "exited with status 0");
    sandbox.assert_clean();
    for dir in &dirs {
        assert!(!dir.exists(), "the cgroup {} is still there", dir.display());
    }
});

as_root!(pids_limit_stops_new_processes, {
    let sandbox = Sandbox::new();
    // A shell quits when a fork fails: the forks are a subshell's.
    let script = "(for i in 1 2 3 4 5 6 7 8; do sleep 1 & done); echo ready; read line";
    let running = Running::start(STEP.command(&sandbox, &["--pids-limit", "5", "sh", "-c", script]), "ready");
    let dirs = testing::cgroup_dirs(testing::container_init(running.pid()));
    let dir = dirs.iter().find(|dir| dir.join("pids.max").exists()).expect("no pids cgroup");
    let read = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap();
    assert_eq!(read("pids.max").trim(), "5");
    // The kernel counts each fork it refused at the limit: `max N`.
    let events = read("pids.events");
    let refused = events.lines().find_map(|line| line.strip_prefix("max ")).and_then(|n| n.trim().parse::<u64>().ok());
    assert!(refused.is_some_and(|count| count > 0), "pids.events: {events}");
    let output = running.finish();
    assert!(testing::stderr(&output).contains("fork"), "{}", testing::stderr(&output));
});

as_root!(memory_swap_without_a_smaller_memory_is_refused_and_leaves_nothing, {
    let sandbox = Sandbox::new();
    for args in [&["--memory-swap", "128m", "true"][..], &["-m", "64m", "--memory-swap", "32m", "true"][..]] {
        let output = STEP.run(&sandbox, args);
        assert_eq!(testing::code(&output), 125);
        assert!(testing::stderr(&output).contains("--memory-swap needs a --memory"), "{}", testing::stderr(&output));
    }
});

as_root!(an_oom_kill_is_137_and_says_so, {
    let sandbox = Sandbox::new();
    let output = STEP.run(&sandbox, &["--memory", "32m", "memhog", "64m"]);
    assert_eq!(testing::code(&output), 137, "{}", testing::stderr(&output));
    let last = testing::last_line(&output);
    assert!(last.contains("was killed by the OOM killer: memory limit 32.0 MiB, peak usage"), "{last}");
    let output = STEP.run(&sandbox, &["--memory", "64m", "memhog", "16m"]);
    assert_ended(STEP, &output, 0, "exited with status 0");
});

as_root!(a_ulimit_fails_the_allocation_inside_instead, {
    let sandbox = Sandbox::new();
    let output = STEP.run(&sandbox, &["--ulimit", "as=32m", "memhog", "64m"]);
    assert_ended(STEP, &output, 1, "exited with status 1");
    assert!(testing::stderr(&output).contains("memhog: cannot allocate"), "{}", testing::stderr(&output));
});

as_root!(a_kill_from_outside_is_not_an_oom_kill, {
    let sandbox = Sandbox::new();
    let mut running =
        Running::start(STEP.command(&sandbox, &["--memory", "64m", "sh", "-c", "echo ready && read line"]), "ready");
    let init = testing::container_init(running.pid());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(init as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    let output = running.wait();
    assert_ended(STEP, &output, 137, "was killed by signal 9 (SIGKILL)");
    assert!(!testing::stderr(&output).contains("OOM"), "{}", testing::stderr(&output));
});

as_root!(oom_score_adj_reaches_the_container, {
    let sandbox = Sandbox::new();
    let output = STEP.run(&sandbox, &["--oom-score-adj", "500", "cat", "/proc/self/oom_score_adj"]);
    assert_eq!(stdout(&output), "500\n");
});

as_root!(oom_kill_disable_works_on_v1_and_is_a_clear_error_on_v2, {
    let sandbox = Sandbox::new();
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let output = STEP.run(&sandbox, &["--memory", "64m", "--oom-kill-disable", "true"]);
        assert_eq!(testing::code(&output), 125);
        assert!(testing::stderr(&output).contains("needs cgroup v1"), "{}", testing::stderr(&output));
        return;
    }
    let args = ["--memory", "64m", "--oom-kill-disable", "sh", "-c", "echo ready && read line"];
    let running = Running::start(STEP.command(&sandbox, &args), "ready");
    let dirs = testing::cgroup_dirs(testing::container_init(running.pid()));
    let dir = dirs.iter().find(|dir| dir.join("memory.oom_control").exists()).expect("no memory cgroup");
    let control = std::fs::read_to_string(dir.join("memory.oom_control")).unwrap();
    assert!(control.lines().any(|line| line == "oom_kill_disable 1"), "memory.oom_control: {control}");
    assert_ended(STEP, &running.finish(), 0, "exited with status 0");
});

as_root!(without_memory_swap_the_swap_limit_is_dockers_default, {
    let sandbox = Sandbox::new();
    let running =
        Running::start(STEP.command(&sandbox, &["-m", "32m", "sh", "-c", "echo ready && read line"]), "ready");
    let dirs = testing::cgroup_dirs(testing::container_init(running.pid()));
    let (file, expected) = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        ("memory.swap.max", "33554432")
    } else {
        ("memory.memsw.limit_in_bytes", "67108864")
    };
    let dir = dirs.iter().find(|dir| dir.join("memory.max").exists() || dir.join("memory.limit_in_bytes").exists());
    let path = dir.expect("no memory cgroup").join(file);
    // Where the kernel does not account swap, there is no file and no limit.
    if path.exists() {
        assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), expected, "{}", path.display());
    } else {
        testing::skipped(
            "without_memory_swap_the_swap_limit_is_dockers_default",
            &format!("no {file}: this kernel does not account swap (boot with swapaccount=1)"),
        );
    }
    assert_ended(STEP, &running.finish(), 0, "exited with status 0");
});

as_root!(an_executable_that_is_not_a_program_exits_126, testing::check_exec_format_error(STEP));
as_root!(the_image_survives_any_spelling_of_the_container_dir, testing::check_container_dir_spellings(STEP, &[]));
as_root!(
    a_killed_runtime_takes_its_container_and_cleanup_removes_the_rest,
    testing::check_killed_runtime_is_cleaned_up(STEP, &[])
);
as_root!(cleanup_never_touches_a_live_container, testing::check_cleanup_spares_a_live_container(STEP));
as_root!(no_mount_of_a_running_container_is_on_the_host, testing::check_no_host_mount_while_running(STEP, &[]));
as_root!(
    the_image_survives_any_spelling_of_the_container_dir_in_host_mode,
    testing::check_container_dir_spellings(STEP, &["--userns=host"])
);
as_root!(
    a_killed_runtime_in_host_mode_is_cleaned_up,
    testing::check_killed_runtime_is_cleaned_up(STEP, &["--userns=host"])
);
as_root!(
    no_mount_of_a_running_container_is_on_the_host_in_host_mode,
    testing::check_no_host_mount_while_running(STEP, &["--userns=host"])
);
as_root!(a_command_that_asks_to_be_traced_is_let_go, testing::check_traceme_is_let_go(STEP));
as_root!(the_container_has_a_session_of_its_own_and_no_terminal, testing::check_own_session(STEP));
as_root!(tiocsti_from_inside_never_reaches_the_callers_terminal, testing::check_tiocsti_is_refused(STEP));
as_root!(ctrl_c_on_the_callers_terminal_is_passed_on, testing::check_ctrl_c_is_passed_on(STEP));
as_root!(dash_t_gives_the_container_a_terminal_of_its_own, testing::check_tty(STEP));
as_root!(dash_t_keeps_job_control_and_restores_the_callers_terminal, testing::check_interactive_shell(STEP));
as_root!(dash_t_follows_the_callers_window_size, testing::check_window_size_follows(STEP));
as_root!(
    dash_t_restores_the_callers_terminal_when_the_runtime_dies,
    testing::check_terminal_restored_when_the_runtime_dies(STEP)
);
as_root!(
    a_signal_during_extraction_stops_the_run_and_leaves_nothing,
    testing::check_signal_during_extraction_stops_the_run(STEP)
);
// ---------------------------------------------------------------------------
// Bad input: Docker's answer is status 125 and one line that names the input
// and the fix, and the run leaves nothing behind.

/// Asserts Docker's answer to bad input, and that nothing was created: the
/// run stopped before the image step (the sandbox has no image directory
/// yet), so before any container directory, mount or cgroup.
fn assert_refused(sandbox: &Sandbox, command: Command, names: &[&str]) {
    let output = testing::finished(command, sandbox);
    let err = testing::stderr(&output);
    assert_eq!(testing::code(&output), 125, "{err}");
    assert_eq!(err.lines().count(), 1, "expected one line: {err}");
    assert!(err.chars().count() <= 301, "longer than 300 characters: {err}");
    for name in names {
        assert!(err.contains(name), "the error does not name {name:?}: {err}");
    }
    assert!(!sandbox.images.exists(), "a refused run got as far as the image: {err}");
    assert!(!sandbox.containers.exists(), "a refused run created the container directory: {err}");
}

/// `BINARY run --image-dir … --container-dir DIR ARGS…`, for a container
/// directory other than the sandbox's.
fn with_container_dir(sandbox: &Sandbox, dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(STEP.binary);
    command.arg("run").arg("--image-dir").arg(&sandbox.images).arg("--container-dir").arg(dir).args(args);
    command
}

/// `command`, run by `sh -c SETUP` in a mount namespace of its own, so that
/// what SETUP mounts or unmounts is never seen by the host or other tests.
fn after_private_mounts(setup: &str, command: Command) -> Command {
    let mut private = Command::new("unshare");
    private.args(["--mount", "--propagation", "private", "sh", "-c", &format!("{setup} && exec \"$@\""), "sh"]);
    private.arg(command.get_program()).args(command.get_args());
    private
}

fn cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// Says loudly that a test does not apply to this host's cgroup layout
/// (written to the real stderr, which the harness does not capture).
fn skipped(test: &str, why: &str) {
    let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("SKIPPED {test}: {why}\n").as_bytes());
}

as_root!(memory_below_dockers_minimum_or_too_large_is_refused, {
    let sandbox = Sandbox::new();
    assert_refused(&sandbox, STEP.command(&sandbox, &["-m", "4m", "true"]), &["--memory", "\"4m\"", "at least 6m"]);
    // 2^63 bytes and more used to wrap into a negative limit.
    for args in [["-m", "8589934592g"], ["--memory-swap", "9223372036854775808"]] {
        let command = STEP.command(&sandbox, &[args[0], args[1], "true"]);
        assert_refused(&sandbox, command, &[args[1], "too large", "at most 8589934591g"]);
    }
});

as_root!(a_memory_limit_too_large_to_double_gets_unlimited_swap, {
    let sandbox = Sandbox::new();
    let output = STEP.run(&sandbox, &["-m", "8589934591g", "true"]);
    assert_ended(STEP, &output, 0, "exited with status 0");
});

as_root!(zero_and_minus_one_mean_no_limit, {
    let sandbox = Sandbox::new();
    for pids in ["0", "-1"] {
        let args = ["-m", "0", "--cpus", "0", "--pids-limit", pids, "sh", "-c", "echo ready && read line"];
        let running = Running::start(STEP.command(&sandbox, &args), "ready");
        let dirs = testing::cgroup_dirs(testing::container_init(running.pid()));
        let read = |file: &str| {
            let dir =
                dirs.iter().find(|dir| dir.join(file).exists()).unwrap_or_else(|| panic!("no {file} in {dirs:?}"));
            std::fs::read_to_string(dir.join(file)).unwrap().trim().to_string()
        };
        if cgroup_v2() {
            assert_eq!(read("memory.max"), "max");
            assert_eq!(read("cpu.max"), "max 100000");
        } else {
            // The largest value a v1 memory cgroup holds, rounded to pages.
            assert!(read("memory.limit_in_bytes").parse::<u64>().unwrap() > 1 << 62);
            assert_eq!(read("cpu.cfs_quota_us"), "-1");
        }
        assert_eq!(read("pids.max"), "max", "--pids-limit {pids}");
        assert_ended(STEP, &running.finish(), 0, "exited with status 0");
    }
});

as_root!(cpus_above_the_hosts_are_refused_with_dockers_range, {
    let sandbox = Sandbox::new();
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).unwrap();
    let cpus = (0..nix::sched::CpuSet::count()).filter(|cpu| set.is_set(*cpu).unwrap()).count();
    let above = format!("{}.5", cpus);
    let range = format!("the range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available");
    assert_refused(&sandbox, STEP.command(&sandbox, &["--cpus", &above, "true"]), &["--cpus", &above, &range]);
});

as_root!(pids_limit_below_minus_one_is_refused, {
    let sandbox = Sandbox::new();
    assert_refused(
        &sandbox,
        STEP.command(&sandbox, &["--pids-limit", "-2", "true"]),
        &["--pids-limit", "-2", "0 or -1"],
    );
});

as_root!(memory_swap_below_memory_is_refused_before_anything_is_created, {
    let sandbox = Sandbox::new();
    let command = STEP.command(&sandbox, &["-m", "64m", "--memory-swap", "32m", "true"]);
    assert_refused(&sandbox, command, &["-m 64m --memory-swap 32m", "set both"]);
});

as_root!(a_user_outside_the_map_is_refused_before_anything_is_created, {
    let sandbox = Sandbox::new();
    let command = STEP.command(&sandbox, &["--user", "70000", "true"]);
    assert_refused(
        &sandbox,
        command,
        &["--user 70000 is not mapped: --uidmap 0:100000:65536 maps container uids 0-65535"],
    );
});

as_root!(a_missing_cgroup_controller_is_named, {
    let sandbox = Sandbox::new();
    let setup = if cgroup_v2() {
        let fake = sandbox.dir.path().join("cgroup.controllers");
        std::fs::write(&fake, "cpu memory\n").unwrap();
        format!("mount --bind {} /sys/fs/cgroup/cgroup.controllers", fake.display())
    } else {
        "umount -l /sys/fs/cgroup/pids".to_string()
    };
    let command = after_private_mounts(&setup, STEP.command(&sandbox, &["true"]));
    assert_refused(
        &sandbox,
        command,
        &["pids", if cgroup_v2() { "offers no pids controller" } else { "mount -t cgroup -o pids" }],
    );
});

/// On a hybrid host, the cgroup v2 tree mounted at /sys/fs/cgroup/unified
/// (whose controllers the v1 hierarchies hold), when the host has one.
fn unified_without_controllers() -> Option<&'static Path> {
    let unified = Path::new("/sys/fs/cgroup/unified");
    let offered = std::fs::read_to_string(unified.join("cgroup.controllers")).ok()?;
    (!cgroup_v2() && !offered.split_whitespace().any(|name| name == "memory")).then_some(unified)
}

as_root!(a_cgroup_v2_without_the_controllers_is_named, {
    // Seen through a private mount namespace, the hybrid host's v2 tree is
    // all there is: a real cgroup2 filesystem that offers no memory.
    let Some(unified) = unified_without_controllers() else {
        return skipped("a_cgroup_v2_without_the_controllers_is_named", "needs a hybrid cgroup host");
    };
    let sandbox = Sandbox::new();
    let setup = format!("mount --bind {} /sys/fs/cgroup", unified.display());
    let command = after_private_mounts(&setup, STEP.command(&sandbox, &["true"]));
    assert_refused(&sandbox, command, &["cgroup v2 at /sys/fs/cgroup offers no memory controller"]);
});

as_root!(a_cgroup_that_got_no_controller_is_named_and_removed, {
    // The same tree, with a cgroup.controllers that claims them: the cgroup
    // is made, cgroups-rs cannot enable the controllers for it (and does not
    // say so), and the run fails, naming the controller, and removes it.
    let Some(unified) = unified_without_controllers() else {
        return skipped("a_cgroup_that_got_no_controller_is_named_and_removed", "needs a hybrid cgroup host");
    };
    let sandbox = Sandbox::new();
    let fake = sandbox.dir.path().join("cgroup.controllers");
    std::fs::write(&fake, "cpu memory pids\n").unwrap();
    let setup = format!(
        "mount --bind {} /sys/fs/cgroup && mount --bind {} /sys/fs/cgroup/cgroup.controllers",
        unified.display(),
        fake.display()
    );
    let output = testing::finished(after_private_mounts(&setup, STEP.command(&sandbox, &["true"])), &sandbox);
    let err = testing::stderr(&output);
    assert_eq!(testing::code(&output), 125, "{err}");
    assert_eq!(err.lines().count(), 1, "expected one line: {err}");
    assert!(err.contains("got no memory controller") && err.contains("cgroup.subtree_control"), "{err}");
    let parent = unified.join(common::CGROUP_PARENT);
    assert!(!parent.exists(), "{} was left behind", parent.display());
});

as_root!(a_hierarchy_that_refuses_mkdir_leaves_no_cgroup_behind, {
    // cgroups-rs makes the cgroup in one hierarchy after another and stops
    // at the first that refuses: the ones made before it must go too.
    if cgroup_v2() {
        return skipped("a_hierarchy_that_refuses_mkdir_leaves_no_cgroup_behind", "cgroup v1 only");
    }
    let sandbox = Sandbox::new();
    let setup = "mount -o remount,bind,ro /sys/fs/cgroup/pids";
    let output = testing::finished(after_private_mounts(setup, STEP.command(&sandbox, &["true"])), &sandbox);
    let err = testing::stderr(&output);
    assert_eq!(testing::code(&output), 125, "{err}");
    assert_eq!(err.lines().count(), 1, "expected one line: {err}");
    assert!(err.contains("Read-only file system"), "{err}");
    let prefix = format!("\"{}/", common::CGROUP_PARENT);
    let at = err.find(&prefix).unwrap_or_else(|| panic!("the error names no cgroup: {err}")) + prefix.len();
    let id = &err[at..at + 12];
    let left: Vec<_> = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .map(|entry| entry.unwrap().path().join(common::CGROUP_PARENT).join(id))
        .filter(|path| path.exists())
        .collect();
    assert!(left.is_empty(), "the failed start left {left:?}");
});

as_root!(a_controller_the_kernel_disabled_is_named, {
    if cgroup_v2() {
        // cgroup.controllers is the only list on v2: see a_missing_cgroup_controller_is_named.
        return skipped("a_controller_the_kernel_disabled_is_named", "cgroup v1 only");
    }
    let sandbox = Sandbox::new();
    let cgroups = std::fs::read_to_string("/proc/cgroups").unwrap();
    let disabled: String =
        cgroups
            .lines()
            .map(|line| {
                if line.starts_with("pids\t") { format!("{}0\n", &line[..line.len() - 1]) } else { format!("{line}\n") }
            })
            .collect();
    let fake = sandbox.dir.path().join("cgroups");
    std::fs::write(&fake, disabled).unwrap();
    let setup = format!("mount --bind {} /proc/cgroups", fake.display());
    let command = after_private_mounts(&setup, STEP.command(&sandbox, &["true"]));
    assert_refused(&sandbox, command, &["pids cgroup controller is disabled", "cgroup_disable=pids"]);
});

as_root!(something_mounted_over_a_cgroup_hierarchy_is_named, {
    if cgroup_v2() {
        // One hierarchy, found at /sys/fs/cgroup by its filesystem type.
        return skipped("something_mounted_over_a_cgroup_hierarchy_is_named", "cgroup v1 only");
    }
    let sandbox = Sandbox::new();
    let command =
        after_private_mounts("mount -t tmpfs dfs-over /sys/fs/cgroup/pids", STEP.command(&sandbox, &["true"]));
    assert_refused(&sandbox, command, &["/sys/fs/cgroup/pids is not a cgroup filesystem", "unmount it"]);
});

as_root!(a_read_only_container_dir_is_refused_and_leaves_nothing, {
    let sandbox = Sandbox::new();
    let read_only = sandbox.dir.path().join("read-only");
    std::fs::create_dir(&read_only).unwrap();
    let containers = read_only.join("containers");
    let setup = format!("mount -t tmpfs -o ro dfs-read-only {}", read_only.display());
    let command = after_private_mounts(&setup, with_container_dir(&sandbox, &containers, &["true"]));
    let expected =
        format!("--container-dir {}: {} is on a read-only filesystem", containers.display(), read_only.display());
    assert_refused(&sandbox, command, &[&expected, "writable"]);
    assert_eq!(std::fs::read_dir(&read_only).unwrap().count(), 0);
});

as_root!(a_container_dir_through_a_file_is_refused_and_leaves_nothing, {
    let sandbox = Sandbox::new();
    let file = sandbox.dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let containers = file.join("containers");
    let expected = format!("{} is not a directory", file.display());
    assert_refused(&sandbox, with_container_dir(&sandbox, &containers, &["true"]), &[&expected]);
});

as_root!(an_error_line_is_short_and_escaped, {
    let sandbox = Sandbox::new();
    let file = sandbox.dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let containers = file.join(format!("new\nline\u{1b}[31m{}", "é".repeat(400)));
    // The start (the flag), the escapes and the end (the fix) all survive.
    let names = ["--container-dir", "new\\nline\\u{1b}[31m", " … ", "is not a directory"];
    assert_refused(&sandbox, with_container_dir(&sandbox, &containers, &["true"]), &names);
});

as_root!(a_ulimit_above_the_runtimes_hard_limit_names_the_limit, {
    let sandbox = Sandbox::new();
    // The runtime inherits the test's limits.
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    let above = format!("nofile={}", hard + 1);
    let names = [format!("--ulimit {above}"), format!("use at most {hard}")];
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_refused(&sandbox, STEP.command(&sandbox, &["--ulimit", &above, "true"]), &names);
    let command = STEP.command(&sandbox, &["--ulimit", "nofile=unlimited", "true"]);
    assert_refused(&sandbox, command, &["--ulimit nofile=unlimited", "fs.nr_open"]);
    // Lowering is what a container may do.
    let output = STEP.run(&sandbox, &["--ulimit", "nofile=64:128", "cat", "/proc/self/limits"]);
    assert_ended(STEP, &output, 0, "exited with status 0");
    let out = stdout(&output);
    let line = out.lines().find(|line| line.starts_with("Max open files")).expect("no open files limit");
    assert_eq!(line.split_whitespace().skip(3).take(2).collect::<Vec<_>>(), ["64", "128"], "{line}");
});
as_root!(a_deep_and_oddly_named_tree_is_removed, testing::check_hostile_tree_is_removed(STEP));
as_root!(a_container_that_fills_its_disk_is_removed, testing::check_full_disk_is_removed(STEP));
as_root!(an_inherited_fd_does_not_cross, testing::check_inherited_fd_does_not_cross(STEP, &[]));
as_root!(
    an_inherited_fd_does_not_cross_in_host_mode,
    testing::check_inherited_fd_does_not_cross(STEP, &["--userns=host"])
);
as_root!(cap_drop_all_with_a_user_runs_as_that_user, testing::check_cap_drop_all_with_a_user(STEP, &[]));
as_root!(
    cap_drop_all_with_a_user_runs_as_that_user_in_host_mode,
    testing::check_cap_drop_all_with_a_user(STEP, &["--userns=host"])
);
as_root!(images_and_containers_are_private_to_root, testing::check_storage_is_private(STEP));

as_root!(oom_score_adj_is_0_unless_asked_not_the_callers, {
    use std::os::unix::process::CommandExt;
    let sandbox = Sandbox::new();
    let mut command = STEP.command(&sandbox, &["cat", "/proc/self/oom_score_adj"]);
    // SAFETY: write(2) through std in the forked child before exec touches
    // only this process's own /proc file.
    unsafe {
        command.pre_exec(|| std::fs::write("/proc/self/oom_score_adj", "300"));
    }
    let output = testing::finished(command, &sandbox);
    assert_ended(STEP, &output, 0, "exited with status 0");
    assert_eq!(stdout(&output), "0\n", "the container inherited the runtime's oom_score_adj");
});
as_root!(ps_gives_a_handle_on_the_running_container, testing::check_ps_lists_the_running_container(STEP));
as_root!(a_fresh_state_dir_works_for_a_mapped_root, testing::check_a_fresh_state_dir_works(STEP));
as_root!(seccomp_is_on_in_both_modes_unless_unconfined, testing::check_seccomp_is_on_unless_unconfined(STEP));
as_root!(a_nested_user_namespace_is_refused_in_both_modes, testing::check_nested_user_namespace_is_refused(STEP));
as_root!(seccomp_lets_privileges_drop_in_both_modes, testing::check_seccomp_lets_privileges_drop(STEP));
as_root!(cap_add_sys_admin_allows_mount_again, testing::check_cap_add_sys_admin_allows_mount(STEP));
as_root!(a_bad_security_opt_exits_125_naming_the_accepted_ones, testing::check_bad_security_opt(STEP));
as_root!(no_new_privileges_only_when_asked, testing::check_no_new_privileges_only_when_asked(STEP, &[]));
as_root!(
    no_new_privileges_only_when_asked_in_host_mode,
    testing::check_no_new_privileges_only_when_asked(STEP, &["--userns=host"])
);

// What the container reaches through the filesystem (issue 8), in both
// modes: each test tries the attack from inside.
as_root!(dev_shm_and_dev_mqueue_are_its_own, {
    testing::check_shm_and_mqueue(STEP, &[]);
    testing::check_shm_and_mqueue(STEP, &["--userns=host"]);
});
as_root!(dockers_network_sysctls_are_set_inside_only, {
    testing::check_network_sysctls(STEP, &[], false);
    testing::check_network_sysctls(STEP, &["--userns=host"], true);
});
as_root!(core_pattern_and_sys_cannot_be_written, testing::check_proc_sys_and_sys_are_read_only(STEP, &[]));
as_root!(
    core_pattern_and_sys_cannot_be_written_in_host_mode,
    testing::check_proc_sys_and_sys_are_read_only(STEP, &["--userns=host"])
);
as_root!(masked_paths_read_as_nothing, testing::check_masked_and_read_only_paths(STEP, &[]));
as_root!(
    masked_paths_read_as_nothing_in_host_mode,
    testing::check_masked_and_read_only_paths(STEP, &["--userns=host"])
);
as_root!(chmod_dev_null_inside_leaves_the_hosts_alone, testing::check_chmod_dev_null_stays_inside(STEP, &[]));
as_root!(
    chmod_dev_null_inside_leaves_the_hosts_alone_in_host_mode,
    testing::check_chmod_dev_null_stays_inside(STEP, &["--userns=host"])
);
as_root!(an_image_with_a_symlinked_proc_is_refused, testing::check_symlinked_mount_targets_are_refused(STEP, &[]));
as_root!(
    an_image_with_a_symlinked_proc_is_refused_in_host_mode,
    testing::check_symlinked_mount_targets_are_refused(STEP, &["--userns=host"])
);
as_root!(a_host_device_made_inside_cannot_be_opened, testing::check_device_allowlist(STEP, &["--userns=host"]));
as_root!(a_host_device_cannot_be_made_in_a_user_namespace, testing::check_device_allowlist(STEP, &[]));

// The files Docker gives every container (issue 10), in both modes.
as_root!(etc_hostname_hosts_and_resolv_conf_are_the_containers, {
    testing::check_etc_files(STEP, &[]);
    testing::check_etc_files(STEP, &["--userns=host"]);
});
as_root!(an_image_without_etc_gets_them_in_its_upper_layer, {
    testing::check_etc_files_without_etc(STEP, &[]);
    testing::check_etc_files_without_etc(STEP, &["--userns=host"]);
});
as_root!(symlinked_etc_files_are_refused, {
    testing::check_symlinked_etc_files_are_refused(STEP, &[]);
    testing::check_symlinked_etc_files_are_refused(STEP, &["--userns=host"]);
});

// /sys/fs/cgroup: the container's own cgroup, read-only (issue 10).
as_root!(sys_fs_cgroup_shows_the_limit_and_cannot_be_written, {
    testing::check_cgroupfs_is_read_only(STEP, &[]);
    testing::check_cgroupfs_is_read_only(STEP, &["--userns=host"]);
});

// --user NAME[:GROUP], looked up in the image (issue 10), in both modes.
as_root!(user_names_groups_and_home_are_dockers, {
    testing::check_user_names(STEP, &[]);
    testing::check_user_names(STEP, &["--userns=host"]);
});
as_root!(an_unknown_user_or_group_exits_125, {
    testing::check_unknown_user_is_refused(STEP, &[]);
    testing::check_unknown_user_is_refused(STEP, &["--userns=host"]);
});
as_root!(the_images_passwd_is_read_inside_the_container, {
    testing::check_passwd_is_read_inside(STEP, &[]);
    testing::check_passwd_is_read_inside(STEP, &["--userns=host"]);
});

as_root!(a_layered_image_runs_as_docker_runs_it, testing::check_layered_image(STEP, &[], 1000));

as_root!(the_overlay_has_one_lower_dir_per_layer, testing::check_one_lower_dir_per_layer(STEP, &[]));

as_root!(a_layer_that_is_not_its_digest_is_refused, testing::check_bad_image_is_refused(STEP));

as_root!(images_lists_and_rmi_removes, testing::check_images_and_rmi(STEP));

as_root!(user_replaces_the_images_user, testing::check_user_replaces_the_images(STEP));
