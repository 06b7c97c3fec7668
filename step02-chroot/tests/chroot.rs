//! Step 02 runs the command chrooted into a copy of the image: "/" is the
//! image's. Still no mount namespace: the container's mounts are the host's
//! while it runs, and a root process walks out of a chroot.

use std::path::Path;

use common::as_root;
use common::testing;
use common::testing::Sandbox;
use common::testing::Step;
use common::testing::code;
use common::testing::stderr;

const STEP: Step = Step::in_image(env!("CARGO_BIN_EXE_step02-chroot"));

#[test]
fn a_bad_option_exits_125_with_one_line() {
    testing::check_bad_option(STEP);
}

as_root!(exit_statuses_are_dockers, testing::check_exit_codes(STEP));

as_root!(env_reaches_the_command_and_the_hosts_does_not, testing::check_env(STEP));

as_root!(the_command_is_found_on_the_containers_path, testing::check_command_is_found_on_the_containers_path(STEP));

as_root!(sigterm_is_passed_on_and_the_mounts_are_removed, testing::check_sigterm_is_passed_on(STEP));

as_root!(a_missing_image_exits_125_naming_the_tarball, testing::check_missing_image(STEP));

as_root!(a_failed_start_leaves_no_mount_and_no_directory, testing::check_failed_start_leaves_nothing(STEP));

as_root!(mounts_made_inside_are_removed_after_the_run, testing::check_mounts_made_inside_are_removed(STEP));

as_root!(the_root_is_the_images, testing::check_root_is_the_image(STEP));

as_root!(breakout_escapes_the_chroot, testing::check_breakout_escapes(STEP));

as_root!(the_mount_namespace_is_still_the_hosts, {
    let (inside, host) = testing::mount_namespaces(STEP);
    assert_eq!(inside, host);
});

// Why step 03 exists: while the container runs, its /proc and a tmpfs it
// mounts are in the host's mount table.
as_root!(the_containers_mounts_show_on_the_host_while_it_runs, {
    let sandbox = Sandbox::new();
    let source = sandbox.unique("dfs-probe");
    let host = testing::mountinfo_while_mounted(STEP, &sandbox, &source);
    let mounts = testing::parse_mountinfo(&host);
    let in_container = |fstype: &str, source: &str| {
        mounts.iter().any(|mount| {
            mount.fstype == fstype && mount.source == source && Path::new(mount.point).starts_with(&sandbox.containers)
        })
    };
    assert!(in_container("tmpfs", &source), "the container's tmpfs is not on the host:\n{host}");
    assert!(in_container("proc", "proc"), "the container's /proc is not on the host:\n{host}");
});

as_root!(a_missing_static_busybox_names_the_package_and_leaves_nothing, {
    let sandbox = Sandbox::new();
    // In a scratch mount namespace, hide the host's busybox behind /dev/null
    // (not a regular file, so not a busybox), wherever it lives.
    let script = "for b in /usr/bin/busybox /bin/busybox /usr/local/bin/busybox; do \
                  [ -e $b ] && mount --bind /dev/null $b; done; exec \"$@\"";
    let output = std::process::Command::new("unshare")
        .args(["--mount", "sh", "-c", script, "sh", env!("CARGO_BIN_EXE_step02-chroot"), "run"])
        .arg("--image-dir")
        .arg(&sandbox.images)
        .arg("--container-dir")
        .arg(&sandbox.containers)
        .arg("true")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .unwrap();
    assert_eq!(code(&output), 125, "{}", stderr(&output));
    assert!(stderr(&output).contains("apt-get install busybox-static"), "{}", stderr(&output));
    assert_eq!(stderr(&output).lines().filter(|line| line.contains("error")).count(), 1, "{}", stderr(&output));
    assert!(!sandbox.images.exists(), "an image directory was left behind");
    sandbox.assert_clean();
});

as_root!(an_executable_that_is_not_a_program_exits_126, testing::check_exec_format_error(STEP));

as_root!(the_image_survives_any_spelling_of_the_container_dir, testing::check_container_dir_spellings(STEP, &[]));

as_root!(
    a_killed_runtime_takes_its_container_and_cleanup_removes_the_rest,
    testing::check_killed_runtime_is_cleaned_up(STEP, &[])
);

as_root!(cleanup_never_touches_a_live_container, testing::check_cleanup_spares_a_live_container(STEP));

as_root!(a_command_that_asks_to_be_traced_is_let_go, testing::check_traceme_is_let_go(STEP));

as_root!(
    a_signal_during_extraction_stops_the_run_and_leaves_nothing,
    testing::check_signal_during_extraction_stops_the_run(STEP)
);

as_root!(a_deep_and_oddly_named_tree_is_removed, testing::check_hostile_tree_is_removed(STEP));

as_root!(a_container_that_fills_its_disk_is_removed, testing::check_full_disk_is_removed(STEP));

as_root!(ps_gives_a_handle_on_the_running_container, testing::check_ps_lists_the_running_container(STEP));

as_root!(a_layered_image_runs_as_docker_runs_it, testing::check_layered_image(STEP, &[], 0));

as_root!(a_layer_that_is_not_its_digest_is_refused, testing::check_bad_image_is_refused(STEP));

as_root!(images_lists_and_rmi_removes, testing::check_images_and_rmi(STEP));
