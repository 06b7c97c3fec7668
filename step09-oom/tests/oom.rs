//! Step 09 is the complete container: everything of step 08, plus an OOM
//! kill reported as such (137 and a last line with the limit and the peak),
//! setrlimit as the contrast, and OOM tuning options.

use std::path::Path;

use common::testing;
use common::testing::Running;
use common::testing::Sandbox;
use common::testing::Step;
use common::testing::assert_ended;
use common::testing::require_root;
use common::testing::stdout;

const STEP: Step = Step::in_image(env!("CARGO_BIN_EXE_step09-oom"));

macro_rules! as_root {
    ($name:ident, $body:expr) => {
        #[test]
        fn $name() {
            if !require_root(stringify!($name)) {
                return;
            }
            $body
        }
    };
}

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
    let output =
        STEP.run(&sandbox, &["--pids-limit", "5", "sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait"]);
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
    let output = STEP.run(&sandbox, &["--memory", "64m", "--oom-kill-disable", "true"]);
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        assert_eq!(testing::code(&output), 125);
        assert!(testing::stderr(&output).contains("needs cgroup v1"), "{}", testing::stderr(&output));
    } else {
        assert_ended(STEP, &output, 0, "exited with status 0");
    }
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
as_root!(
    a_signal_during_extraction_stops_the_run_and_leaves_nothing,
    testing::check_signal_during_extraction_stops_the_run(STEP)
);
