//! Step 04 swaps the mount namespace's root with pivot_root and detaches
//! the old one: `breakout` finds no way back to the host, and the only mounts
//! left inside are the container's.

use common::as_root;
use common::testing;
use common::testing::Step;

const STEP: Step = Step::in_image(env!("CARGO_BIN_EXE_step04-pivot-root"));

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

as_root!(the_mount_namespace_is_its_own, testing::check_own_mount_namespace(STEP));

as_root!(mounts_inside_do_not_reach_a_shared_host_root, testing::check_mounts_stay_inside(STEP));

as_root!(dev_has_the_standard_character_devices, testing::check_devices(STEP));

as_root!(breakout_is_contained, testing::check_breakout_is_contained(STEP));

as_root!(the_old_root_is_detached, testing::check_only_the_containers_mounts(STEP));

as_root!(an_executable_that_is_not_a_program_exits_126, testing::check_exec_format_error(STEP));

as_root!(the_image_survives_any_spelling_of_the_container_dir, testing::check_container_dir_spellings(STEP, &[]));

as_root!(
    a_killed_runtime_takes_its_container_and_cleanup_removes_the_rest,
    testing::check_killed_runtime_is_cleaned_up(STEP, &[])
);

as_root!(cleanup_never_touches_a_live_container, testing::check_cleanup_spares_a_live_container(STEP));

as_root!(a_command_that_asks_to_be_traced_is_let_go, testing::check_traceme_is_let_go(STEP));

as_root!(a_deep_and_oddly_named_tree_is_removed, testing::check_hostile_tree_is_removed(STEP));

as_root!(a_container_that_fills_its_disk_is_removed, testing::check_full_disk_is_removed(STEP));

as_root!(ps_gives_a_handle_on_the_running_container, testing::check_ps_lists_the_running_container(STEP));

as_root!(a_layered_image_runs_as_docker_runs_it, testing::check_layered_image(STEP, &[], 0));
