//! Step 07 adds a user namespace (container 0-65535 is host 100000-165535),
//! an image owned by the container's root, and Docker's default privileges:
//! 14 capabilities, no_new_privs, and `--user`.

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use common::as_root;
use common::testing;
use common::testing::Sandbox;
use common::testing::Step;
use common::testing::assert_ended;
use common::testing::stdout;

const STEP: Step = Step::in_image(env!("CARGO_BIN_EXE_step07-user-ns"));

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
    all_but_mount_and_cgroup_namespaces_are_its_own,
    testing::check_own_namespaces(STEP, &["pid", "uts", "ipc", "net", "user"])
);

as_root!(uid_and_gid_maps_are_100000_up, {
    let sandbox = Sandbox::new();
    for map in ["uid_map", "gid_map"] {
        let output = STEP.run(&sandbox, &["cat", &format!("/proc/self/{map}")]);
        assert_eq!(stdout(&output).split_whitespace().collect::<Vec<_>>(), ["0", "100000", "65536"]);
    }
});

as_root!(root_inside_owns_the_image_idmapped_or_copied, {
    let sandbox = Sandbox::new();
    for extra in [&[][..], &["--no-idmap"][..]] {
        let mut args = extra.to_vec();
        args.extend(["stat", "-c", "%u %g", "/etc/passwd", "/bin/busybox"]);
        let output = STEP.run(&sandbox, &args);
        assert_ended(STEP, &output, 0, "exited with status 0");
        assert_eq!(stdout(&output), "0 0\n0 0\n", "with {extra:?}");
    }
});

as_root!(what_root_writes_inside_is_100000_on_the_host, {
    let sandbox = Sandbox::new();
    // Not STEP.run: that one asserts nothing is kept.
    let output = STEP
        .command(&sandbox, &["--keep", "sh", "-c", "echo edited >> /etc/passwd && touch /root/new"])
        .output()
        .unwrap();
    assert_eq!(testing::code(&output), 0, "{}", testing::stderr(&output));
    let kept = std::fs::read_dir(&sandbox.containers).unwrap().next().unwrap().unwrap().path();
    for file in ["upper/etc/passwd", "upper/root/new"] {
        let meta = std::fs::metadata(kept.join(file)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (100_000, 100_000), "{file}");
    }
    assert!(!std::fs::read_to_string(sandbox.image_rootfs().join("etc/passwd")).unwrap().contains("edited"));
    common::fsutil::remove_tree(&kept).unwrap();
});

as_root!(capabilities_are_dockers_default_and_no_new_privs_only_when_asked, {
    assert_eq!(testing::status_field(STEP, &[], "CapBnd"), "00000000a80425fb");
    assert_eq!(testing::status_field(STEP, &[], "CapEff"), "00000000a80425fb");
    assert_eq!(testing::status_field(STEP, &[], "CapAmb"), "0000000000000000");
    assert_eq!(testing::status_field(STEP, &[], "NoNewPrivs"), "0");
    assert_eq!(testing::status_field(STEP, &["--security-opt", "no-new-privileges"], "NoNewPrivs"), "1");
    assert_eq!(
        testing::status_field(STEP, &["--cap-drop", "ALL", "--cap-add", "NET_ADMIN"], "CapBnd"),
        "0000000000001000"
    );
});

as_root!(a_non_root_user_has_no_effective_capabilities, {
    assert_eq!(testing::status_field(STEP, &["--user", "1000:1000"], "CapEff"), "0000000000000000");
    assert_eq!(testing::status_field(STEP, &["--user", "1000:1000"], "Uid").split_whitespace().next(), Some("1000"));
});

as_root!(mounting_inside_fails, {
    // EPERM from mount(2) itself, not just any failure (a missing /mnt, a
    // typo): the container keeps no CAP_SYS_ADMIN. `mount-probe` (in the
    // image) makes the one call and names the errno the kernel returned.
    for mode in [&[][..], &["--userns=host"][..]] {
        let sandbox = Sandbox::new();
        let args = [mode, &["mount-probe", "/mnt"]].concat();
        let output = STEP.run(&sandbox, &args);
        let err = testing::stderr(&output);
        assert_eq!(testing::code(&output), 1, "{mode:?}: mount did not fail with EPERM (1): {err}");
        assert!(err.contains("failed: EPERM (Operation not permitted)"), "{mode:?}: {err}");
    }
});

as_root!(an_unreachable_container_dir_is_named_with_the_fix, {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    let private = sandbox.dir.path().join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let containers = private.join("containers");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_step07-user-ns"))
        .arg("run")
        .arg("--image-dir")
        .arg(&sandbox.images)
        .arg("--container-dir")
        .arg(&containers)
        .arg("true")
        .output()
        .unwrap();
    assert_eq!(testing::code(&output), 125, "{}", testing::stderr(&output));
    let message = testing::stderr(&output);
    assert!(message.contains(&format!("{} is mode 0700", private.display())), "{message}");
    assert_eq!(std::fs::read_dir(&containers).unwrap().count(), 0, "the container directory was left behind");
    sandbox.assert_clean();
    assert!(common::fsutil::mounts_under("self", sandbox.dir.path()).unwrap().is_empty());
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
/// Asserts Docker's answer to bad input, and that nothing was created: the
/// run stopped before the image step (the sandbox has no image directory
/// yet), so before any container directory or mount.
fn assert_refused(sandbox: &Sandbox, command: Command, names: &[&str]) {
    let output = testing::finished(command, sandbox);
    let err = testing::stderr(&output);
    assert_eq!(testing::code(&output), 125, "{err}");
    assert_eq!(err.lines().count(), 1, "expected one line: {err}");
    for name in names {
        assert!(err.contains(name), "the error does not name {name:?}: {err}");
    }
    assert!(!sandbox.images.exists(), "a refused run got as far as the image: {err}");
    assert!(!sandbox.containers.exists(), "a refused run created the container directory: {err}");
}

as_root!(a_user_outside_the_map_is_refused_naming_the_map, {
    let sandbox = Sandbox::new();
    let command = STEP.command(&sandbox, &["--user", "70000", "true"]);
    let map = "--user 70000 is not mapped: --uidmap 0:100000:65536 maps container uids 0-65535";
    assert_refused(&sandbox, command, &[map, "use a uid in that range"]);
    let command = STEP.command(&sandbox, &["--user", "1000:70000", "true"]);
    assert_refused(&sandbox, command, &["--user 1000:70000: gid 70000 is not mapped", "--gidmap 0:100000:65536"]);
    let command = STEP.command(&sandbox, &["--uidmap", "1:100000:65536", "true"]);
    assert_refused(&sandbox, command, &["--uidmap 1:100000:65536", "not 0, the container's root"]);
});

as_root!(without_a_user_namespace_any_user_goes, {
    let sandbox = Sandbox::new();
    let output = STEP.run(&sandbox, &["--userns", "host", "--user", "70000:70001", "id", "-u"]);
    assert_ended(STEP, &output, 0, "exited with status 0");
    assert_eq!(stdout(&output), "70000\n");
});

as_root!(a_one_id_map_runs_with_its_own_devpts, {
    // gid 5 (tty) is not mapped by --gidmap 0:0:1: devpts is mounted without gid=5.
    let sandbox = Sandbox::new();
    for extra in [&[][..], &["--no-idmap"][..]] {
        let mut args = vec!["--uidmap", "0:0:1", "--gidmap", "0:0:1"];
        args.extend(extra);
        args.extend(["sh", "-c", "cat /proc/self/gid_map && grep -c ' - devpts ' /proc/self/mountinfo"]);
        let output = STEP.run(&sandbox, &args);
        assert_ended(STEP, &output, 0, "exited with status 0");
        let out = stdout(&output);
        assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["0", "0", "1", "1"], "with {extra:?}");
    }
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

as_root!(a_layered_image_runs_without_a_user_namespace, testing::check_layered_image(STEP, &["--userns=host"], 1000));

as_root!(a_layered_image_runs_on_a_chowned_copy, testing::check_layered_image(STEP, &["--no-idmap"], 1000));

as_root!(the_overlay_has_one_idmapped_lower_dir_per_layer, testing::check_one_lower_dir_per_layer(STEP, &[]));

as_root!(
    the_overlay_has_one_lower_dir_per_layer_without_a_user_namespace,
    testing::check_one_lower_dir_per_layer(STEP, &["--userns=host"])
);

as_root!(user_replaces_the_images_user, testing::check_user_replaces_the_images(STEP));
