//! Step 06 starts the command in new PID, UTS, IPC and network namespaces:
//! it is PID 1 and sees only its own processes, has its own hostname, and
//! only a loopback interface, which is up.

use common::as_root;
use common::testing;
use common::testing::Sandbox;
use common::testing::Step;
use common::testing::assert_ended;
use common::testing::stdout;

const STEP: Step = Step::in_image(env!("CARGO_BIN_EXE_step06-pid-ns"));

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
as_root!(mounts_made_inside_are_removed_after_the_run, testing::check_mounts_made_inside_are_removed(STEP));
as_root!(mounts_inside_do_not_reach_a_shared_host_root, testing::check_mounts_stay_inside(STEP));
as_root!(
    pid_uts_ipc_and_net_namespaces_are_its_own,
    testing::check_own_namespaces(STEP, &["pid", "uts", "ipc", "net"])
);

as_root!(the_command_is_pid_1_and_sees_only_its_processes, {
    let sandbox = Sandbox::new();
    let output = STEP.run(&sandbox, &["ps", "-o", "pid,comm"]);
    assert_ended(STEP, &output, 0, "exited with status 0");
    let rows: Vec<String> =
        stdout(&output).lines().skip(1).map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(rows, ["1 ps"], "{}", stdout(&output));
});

as_root!(the_hostname_is_the_id_or_the_option_and_the_hosts_is_untouched, {
    let before = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let sandbox = Sandbox::new();
    let output = STEP.run(&sandbox, &["hostname"]);
    let name = stdout(&output).trim().to_string();
    assert_ended(STEP, &output, 0, "exited with status 0");
    assert!(testing::last_line(&output).starts_with(&format!("container {name} ")), "hostname {name:?} is not the id");
    let output = STEP.run(&sandbox, &["--hostname", "web", "hostname"]);
    assert_eq!(stdout(&output), "web\n");
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(), before);
});

as_root!(only_lo_exists_and_it_is_up, {
    let sandbox = Sandbox::new();
    let output = STEP.run(&sandbox, &["cat", "/sys/class/net/lo/flags"]);
    assert_ended(STEP, &output, 0, "exited with status 0");
    let flags = u32::from_str_radix(stdout(&output).trim().trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "lo is down: flags {flags:#x}");
    let output = STEP.run(&sandbox, &["ls", "/sys/class/net"]);
    assert_eq!(stdout(&output).split_whitespace().collect::<Vec<_>>(), ["lo"]);
});

as_root!(an_executable_that_is_not_a_program_exits_126, testing::check_exec_format_error(STEP));
as_root!(the_image_survives_any_spelling_of_the_container_dir, testing::check_container_dir_spellings(STEP, &[]));
as_root!(
    a_killed_runtime_takes_its_container_and_cleanup_removes_the_rest,
    testing::check_killed_runtime_is_cleaned_up(STEP, &[])
);
as_root!(cleanup_never_touches_a_live_container, testing::check_cleanup_spares_a_live_container(STEP));
as_root!(no_mount_of_a_running_container_is_on_the_host, testing::check_no_host_mount_while_running(STEP, &[]));
as_root!(a_command_that_asks_to_be_traced_is_let_go, testing::check_traceme_is_let_go(STEP));
as_root!(a_deep_and_oddly_named_tree_is_removed, testing::check_hostile_tree_is_removed(STEP));
as_root!(a_container_that_fills_its_disk_is_removed, testing::check_full_disk_is_removed(STEP));
as_root!(ps_gives_a_handle_on_the_running_container, testing::check_ps_lists_the_running_container(STEP));

// What the container reaches through the filesystem (issue 8): its IPC
// namespace's /dev/shm and /dev/mqueue, and Docker's sysctls in its network
// namespace, not the host's.
as_root!(dev_shm_and_dev_mqueue_are_its_own, testing::check_shm_and_mqueue(STEP, &[]));
as_root!(dockers_network_sysctls_are_set_inside_only, testing::check_network_sysctls(STEP, &[], true));

// The files Docker gives every container (issue 10): /etc/hostname, /etc/hosts
// and /etc/resolv.conf, its own, bound over the image's, which never change.
as_root!(etc_hostname_hosts_and_resolv_conf_are_the_containers, testing::check_etc_files(STEP, &[]));
as_root!(an_image_without_etc_gets_them_in_its_upper_layer, testing::check_etc_files_without_etc(STEP, &[]));
as_root!(symlinked_etc_files_are_refused, testing::check_symlinked_etc_files_are_refused(STEP, &[]));
as_root!(a_layered_image_runs_as_docker_runs_it, testing::check_layered_image(STEP, &[], 0));
