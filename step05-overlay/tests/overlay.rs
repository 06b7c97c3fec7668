//! Step 05 mounts the container's root as an overlay: the image's rootfs,
//! extracted once and shared, is the read-only lower layer; the container's
//! writes go to its own upper layer and disappear with it (or stay, with
//! `--keep`).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;

use common::as_root;
use common::fsutil;
use common::testing;
use common::testing::Sandbox;
use common::testing::Step;
use common::testing::code;
use common::testing::stderr;
use common::testing::stdout;

const STEP: Step = Step::in_image(env!("CARGO_BIN_EXE_step05-overlay"));

#[test]
fn a_bad_option_exits_125_with_one_line() {
    testing::check_bad_option(STEP);
}

as_root!(exit_statuses_are_dockers, testing::check_exit_codes(STEP));

as_root!(env_reaches_the_command_and_the_hosts_does_not, testing::check_env(STEP));

as_root!(the_command_is_found_on_the_containers_path, testing::check_command_is_found_on_the_containers_path(STEP));

as_root!(sigterm_is_passed_on_to_the_command, testing::check_sigterm_is_passed_on(STEP));

as_root!(a_missing_image_exits_125_naming_the_tarball, testing::check_missing_image(STEP));

as_root!(a_failed_start_leaves_no_mount_and_no_directory, testing::check_failed_start_leaves_nothing(STEP));

as_root!(mounts_made_inside_are_removed_after_the_run, testing::check_mounts_made_inside_are_removed(STEP));

as_root!(the_root_is_the_images, testing::check_root_is_the_image(STEP));

as_root!(the_overlay_is_volatile_unless_kept, testing::check_overlay_is_volatile_unless_kept(STEP));

as_root!(the_mount_namespace_is_its_own, testing::check_own_mount_namespace(STEP));

as_root!(mounts_inside_do_not_reach_a_shared_host_root, testing::check_mounts_stay_inside(STEP));

as_root!(dev_has_the_standard_character_devices, testing::check_devices(STEP));

as_root!(breakout_is_contained, testing::check_breakout_is_contained(STEP));

as_root!(the_old_root_is_detached, testing::check_only_the_containers_mounts(STEP));

as_root!(the_root_is_an_overlay_on_the_images_rootfs, {
    let sandbox = Sandbox::new();
    let output = STEP.run(&sandbox, &["cat", "/proc/self/mountinfo"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let inside = stdout(&output);
    let mounts = testing::parse_mountinfo(&inside);
    let root = mounts.iter().rev().find(|mount| mount.point == "/").expect("no mount on / inside");
    assert_eq!(root.fstype, "overlay", "{inside}");
    let lower = format!("lowerdir={}", sandbox.image_rootfs().display());
    assert!(root.super_options.split(',').any(|option| option == lower), "{lower} is not the lower layer: {inside}");
});

as_root!(writes_stay_in_the_container, {
    let sandbox = Sandbox::new();
    // The first start extracts the image, so that it can be compared after.
    assert_eq!(code(&STEP.run(&sandbox, &["true"])), 0);
    let image = sandbox.image_rootfs();
    let hosts = fs::read(image.join("etc/hosts")).unwrap();
    let name = sandbox.unique("dfs-written");
    let script = format!("echo new > /etc/{name} && echo changed >> /etc/hosts && rm /etc/passwd");
    let output = STEP.run(&sandbox, &["sh", "-c", &script]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));

    assert!(!image.join("etc").join(&name).exists(), "a new file reached the image");
    assert_eq!(fs::read(image.join("etc/hosts")).unwrap(), hosts, "a changed file reached the image");
    assert!(image.join("etc/passwd").is_file(), "a deletion reached the image");
    let found = Command::new("find").arg(sandbox.dir.path()).args(["-name", &name]).output().unwrap();
    assert_eq!(stdout(&found), "", "the new file is still on the host");

    // The next container starts from the untouched image.
    let script = format!("[ -e /etc/{name} ] && echo LEAKED; grep -c changed /etc/hosts; head -c 5 /etc/passwd");
    let output = STEP.run(&sandbox, &["sh", "-c", &script]);
    assert_eq!(stdout(&output), "0\nroot:");
});

as_root!(keep_leaves_the_upper_layer_and_no_mount, {
    let sandbox = Sandbox::new();
    let output = STEP.command(&sandbox, &["--keep", "sh", "-c", "echo kept > /etc/newfile"]).output().unwrap();
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let kept: Vec<PathBuf> = fs::read_dir(&sandbox.containers).unwrap().map(|entry| entry.unwrap().path()).collect();
    let [dir] = &kept[..] else { panic!("expected one kept container directory: {kept:?}") };
    assert!(stderr(&output).contains(&dir.display().to_string()), "--keep does not say where: {}", stderr(&output));
    assert_eq!(fs::read_to_string(dir.join("upper/etc/newfile")).unwrap(), "kept\n");
    assert!(!sandbox.image_rootfs().join("etc/newfile").exists(), "the write reached the image");
    let mounts = fsutil::mounts_under("self", sandbox.dir.path()).unwrap();
    assert!(mounts.is_empty(), "--keep left mounts: {mounts:?}");
    fsutil::remove_tree(dir).unwrap();
    sandbox.assert_clean();
});

as_root!(a_second_start_reuses_the_extracted_image, {
    let sandbox = Sandbox::new();
    assert_eq!(code(&STEP.run(&sandbox, &["true"])), 0);
    let rootfs = sandbox.image_rootfs();
    let marker = sandbox.unique("dfs-marker");
    fs::write(rootfs.join("marker"), &marker).unwrap();
    // A second extraction would put a new rootfs directory in place (another
    // inode) and change the image directory (its mtime, maybe its names).
    let state = || {
        let mut names: Vec<_> =
            fs::read_dir(&sandbox.images).unwrap().map(|entry| entry.unwrap().file_name()).collect();
        names.sort();
        let images = fs::metadata(&sandbox.images).unwrap();
        (fs::metadata(&rootfs).unwrap().ino(), images.mtime(), images.mtime_nsec(), names)
    };
    let before = state();
    let output = STEP.run(&sandbox, &["cat", "/marker"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), marker, "the container does not see the extracted rootfs");
    assert_eq!(state(), before, "the image directory changed: the image was extracted again");
});

as_root!(a_device_node_made_inside_cannot_be_opened, {
    let sandbox = Sandbox::new();
    let script = "mknod /tmp/null c 1 3 && stat -c '%F %t:%T' /tmp/null && \
                  if echo x > /tmp/null; then echo OPENED; else echo REFUSED; fi";
    let output = STEP.run(&sandbox, &["sh", "-c", script]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), "character special file 1:3\nREFUSED\n", "the root is not mounted nodev");
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

as_root!(a_layered_image_runs_as_docker_runs_it, testing::check_layered_image(STEP, &[], 0));

as_root!(the_overlay_has_one_lower_dir_per_layer, testing::check_one_lower_dir_per_layer(STEP, &[]));
