//! Step 03 gives the container a mount namespace of its own: its mounts are
//! not the host's, even where the host's "/" is shared, and its /dev has
//! real device nodes. The root is still a chroot, so `breakout` escapes.

use common::testing;
use common::testing::Step;
use common::testing::require_root;

const STEP: Step = Step::in_image(env!("CARGO_BIN_EXE_step03-mount-ns"));

#[test]
fn a_bad_option_exits_125_with_one_line() {
    testing::check_bad_option(STEP);
}

#[test]
fn exit_statuses_are_dockers() {
    if !require_root("exit_statuses_are_dockers") {
        return;
    }
    testing::check_exit_codes(STEP);
}

#[test]
fn env_reaches_the_command_and_the_hosts_does_not() {
    if !require_root("env_reaches_the_command_and_the_hosts_does_not") {
        return;
    }
    testing::check_env(STEP);
}

#[test]
fn the_command_is_found_on_the_containers_path() {
    if !require_root("the_command_is_found_on_the_containers_path") {
        return;
    }
    testing::check_command_is_found_on_the_containers_path(STEP);
}

#[test]
fn sigterm_is_passed_on_to_the_command() {
    if !require_root("sigterm_is_passed_on_to_the_command") {
        return;
    }
    testing::check_sigterm_is_passed_on(STEP);
}

#[test]
fn a_missing_image_exits_125_naming_the_tarball() {
    if !require_root("a_missing_image_exits_125_naming_the_tarball") {
        return;
    }
    testing::check_missing_image(STEP);
}

#[test]
fn a_failed_start_leaves_no_mount_and_no_directory() {
    if !require_root("a_failed_start_leaves_no_mount_and_no_directory") {
        return;
    }
    testing::check_failed_start_leaves_nothing(STEP);
}

#[test]
fn mounts_made_inside_are_removed_after_the_run() {
    if !require_root("mounts_made_inside_are_removed_after_the_run") {
        return;
    }
    testing::check_mounts_made_inside_are_removed(STEP);
}

#[test]
fn the_root_is_the_images() {
    if !require_root("the_root_is_the_images") {
        return;
    }
    testing::check_root_is_the_image(STEP);
}

#[test]
fn the_mount_namespace_is_its_own() {
    if !require_root("the_mount_namespace_is_its_own") {
        return;
    }
    testing::check_own_mount_namespace(STEP);
}

#[test]
fn mounts_inside_do_not_reach_a_shared_host_root() {
    if !require_root("mounts_inside_do_not_reach_a_shared_host_root") {
        return;
    }
    testing::check_mounts_stay_inside(STEP);
}

#[test]
fn dev_has_the_standard_character_devices() {
    if !require_root("dev_has_the_standard_character_devices") {
        return;
    }
    testing::check_devices(STEP);
}

#[test]
fn breakout_still_escapes_the_chroot() {
    if !require_root("breakout_still_escapes_the_chroot") {
        return;
    }
    testing::check_breakout_escapes(STEP);
}

#[test]
fn an_executable_that_is_not_a_program_exits_126() {
    if !require_root("an_executable_that_is_not_a_program_exits_126") {
        return;
    }
    testing::check_exec_format_error(STEP);
}

#[test]
fn the_image_survives_any_spelling_of_the_container_dir() {
    if !require_root("the_image_survives_any_spelling_of_the_container_dir") {
        return;
    }
    testing::check_container_dir_spellings(STEP, &[]);
}

#[test]
fn a_killed_runtime_takes_its_container_and_cleanup_removes_the_rest() {
    if !require_root("a_killed_runtime_takes_its_container_and_cleanup_removes_the_rest") {
        return;
    }
    testing::check_killed_runtime_is_cleaned_up(STEP, &[]);
}

#[test]
fn cleanup_never_touches_a_live_container() {
    if !require_root("cleanup_never_touches_a_live_container") {
        return;
    }
    testing::check_cleanup_spares_a_live_container(STEP);
}

#[test]
fn a_command_that_asks_to_be_traced_is_let_go() {
    if !require_root("a_command_that_asks_to_be_traced_is_let_go") {
        return;
    }
    testing::check_traceme_is_let_go(STEP);
}

#[test]
fn a_deep_and_oddly_named_tree_is_removed() {
    if !require_root("a_deep_and_oddly_named_tree_is_removed") {
        return;
    }
    testing::check_hostile_tree_is_removed(STEP);
}

#[test]
fn a_container_that_fills_its_disk_is_removed() {
    if !require_root("a_container_that_fills_its_disk_is_removed") {
        return;
    }
    testing::check_full_disk_is_removed(STEP);
}

#[test]
fn ps_gives_a_handle_on_the_running_container() {
    if !require_root("ps_gives_a_handle_on_the_running_container") {
        return;
    }
    testing::check_ps_lists_the_running_container(STEP);
}
