//! Helpers for the steps' integration tests: a private image and container
//! directory per test (so tests run in parallel and never touch a user's),
//! running the step's binary, and the root check that skips loudly, or fails
//! under `CI=true`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::fsutil;

/// True when the test may go on. Not root: prints a loud SKIPPED line and
/// returns false, or panics when `CI=true`, because a CI run that skipped
/// the checks proved nothing.
pub fn require_root(test: &str) -> bool {
    if nix::unistd::Uid::effective().is_root() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|value| value == "true") {
        panic!("{test} needs root, and CI=true does not allow skipping it");
    }
    eprintln!("SKIPPED {test}: needs root (run the tests with sudo)");
    false
}

/// A temporary state directory for one test, removed when dropped.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub images: PathBuf,
    pub containers: PathBuf,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("dfs-test-")
            .tempdir()
            .expect("cannot create a temporary directory");
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o711),
        )
        .unwrap();
        let images = dir.path().join("images");
        let containers = dir.path().join("containers");
        Sandbox {
            dir,
            images,
            containers,
        }
    }

    /// `BINARY run --image-dir … --container-dir … ARGS…`.
    pub fn command(&self, binary: &str, args: &[&str]) -> Command {
        let mut command = Command::new(binary);
        command
            .arg("run")
            .arg("--image-dir")
            .arg(&self.images)
            .arg("--container-dir")
            .arg(&self.containers)
            .args(args);
        command
    }

    /// Runs the binary to completion and checks that the run left nothing
    /// behind: no container directory, no mount below the sandbox.
    pub fn run(&self, binary: &str, args: &[&str]) -> Output {
        let output = self
            .command(binary, args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {binary}: {e}"));
        self.assert_clean();
        output
    }

    /// Fails when a container directory or a mount below the sandbox is
    /// left over.
    pub fn assert_clean(&self) {
        let left: Vec<_> = std::fs::read_dir(&self.containers)
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .map(|entry| entry.path())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "container directories left behind: {left:?}"
        );
        let mounts = fsutil::mounts_under("self", self.dir.path()).expect("cannot read mountinfo");
        assert!(mounts.is_empty(), "mounts left behind: {mounts:?}");
    }

    /// The extracted root filesystem of the default image.
    pub fn image_rootfs(&self) -> PathBuf {
        self.images.join(crate::DEFAULT_IMAGE).join("rootfs")
    }
}

/// Standard output as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The exit status, with a readable panic when the process was killed.
pub fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or_else(|| {
        panic!(
            "the runtime itself was killed: {:?}\n{}",
            output.status,
            stderr(output)
        )
    })
}

/// The target of a namespace link such as `/proc/self/ns/mnt`.
pub fn namespace(pid: &str, kind: &str) -> String {
    std::fs::read_link(Path::new("/proc").join(pid).join("ns").join(kind))
        .map(|target| target.to_string_lossy().into_owned())
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/ns/{kind}: {e}"))
}
