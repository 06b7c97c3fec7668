//! What every step of the workshop shares but does not teach: the image
//! store (image formats, layers and their digests, the image's config),
//! container ids and directories, the device table and allowlist, Docker's
//! masked paths, exit-status reporting, error hints, the `--trace` facility,
//! the relay of a container's terminal and test helpers.
//!
//! The system calls a step teaches are *not* here: they are called in that
//! step's `src/main.rs`, where the diff against the previous step shows them.

pub mod archive;
pub mod bpf;
pub mod cbpf;
pub mod cgroup;
pub mod cleanup;
pub mod cli;
pub mod clone3;
pub mod container;
pub mod devices;
pub mod env;
pub mod errors;
pub mod etcfiles;
pub mod fsutil;
pub mod ids;
pub mod image;
pub mod images;
pub mod layer;
pub mod limits;
pub mod masks;
pub mod mountapi;
pub mod net;
pub mod paths;
pub mod ps;
pub mod seccomp;
pub mod security;
pub mod signals;
pub mod status;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod trace;
pub mod tty;

/// Where images and containers live unless `--image-dir` / `--container-dir`
/// say otherwise. Named once, here.
pub const STATE_DIR: &str = "/var/lib/docker-from-scratch";
/// `STATE_DIR/images`: `<name>.tar` (or `.tar.gz`, `.tar.zst`), unpacked
/// once into `layers/sha256/<digest>/`, with `<name>/image.json` listing its
/// layers and config.
pub const IMAGE_DIR: &str = "/var/lib/docker-from-scratch/images";
/// `STATE_DIR/containers`: one directory per running container.
pub const CONTAINER_DIR: &str = "/var/lib/docker-from-scratch/containers";
/// The image used when `--image` is not given; built from the host's static
/// busybox when missing.
pub const DEFAULT_IMAGE: &str = "busybox";
/// The parent of every container's cgroup, in each hierarchy:
/// `/sys/fs/cgroup/<controller>/docker-from-scratch/<id>` on cgroup v1,
/// `/sys/fs/cgroup/docker-from-scratch/<id>` on v2.
pub const CGROUP_PARENT: &str = "docker-from-scratch";
/// The exit status for the runtime's own errors (Docker uses the same).
pub const EXIT_RUNTIME_ERROR: i32 = 125;
