//! Step 01 runs the command as a forked child, on the host: Docker's exit
//! statuses, the environment it gets, and, for contrast with step 02, that
//! nothing is isolated yet. No test here needs root.

use common::as_root;
use common::testing;
use common::testing::IS_VISIBLE;
use common::testing::Sandbox;
use common::testing::Step;
use common::testing::code;
use common::testing::last_line;
use common::testing::stdout;

const STEP: Step = Step::on_host(env!("CARGO_BIN_EXE_step01-fork-exec"));

#[test]
fn exit_statuses_are_dockers() {
    testing::check_exit_codes(STEP);
}

#[test]
fn env_reaches_the_command_and_the_hosts_does_not() {
    testing::check_env(STEP);
}

#[test]
fn the_command_is_found_on_the_containers_path() {
    testing::check_command_is_found_on_the_containers_path(STEP);
}

#[test]
fn a_bad_option_exits_125_with_one_line() {
    testing::check_bad_option(STEP);
}

#[test]
fn a_missing_command_is_named() {
    testing::check_missing_command_is_named(STEP);
}

#[test]
fn sigterm_is_passed_on_to_the_command() {
    testing::check_sigterm_is_passed_on(STEP);
}

#[test]
fn the_report_names_the_forked_childs_pid() {
    let sandbox = Sandbox::new();
    let output = STEP.run(&sandbox, &["sh", "-c", "echo $$"]);
    assert_eq!(code(&output), 0);
    let pid = stdout(&output).trim().to_string();
    assert_eq!(last_line(&output), format!("process {pid} exited with status 0"));
}

#[test]
fn the_command_sees_the_hosts_files_and_mount_namespace() {
    let sandbox = Sandbox::new();
    let host_file = sandbox.host_only_file();
    let script = format!("{IS_VISIBLE}; readlink /proc/self/ns/mnt");
    let output = STEP.run(&sandbox, &["sh", "-c", &script, "sh", host_file.to_str().unwrap()]);
    assert_eq!(code(&output), 0);
    assert_eq!(stdout(&output), format!("HOST-VISIBLE\n{}\n", testing::namespace("self", "mnt")));
}

as_root!(an_executable_that_is_not_a_program_exits_126, testing::check_exec_format_error(STEP));

as_root!(a_command_that_asks_to_be_traced_is_let_go, testing::check_traceme_is_let_go(STEP));
