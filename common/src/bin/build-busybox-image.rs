//! Builds the default `busybox` image tarball explicitly (the steps build it
//! on first use when it is missing): `build-busybox-image OUT.tar`.

use std::path::PathBuf;

fn main() {
    let out = std::env::args_os().nth(1).map(PathBuf::from).unwrap_or_else(|| {
        eprintln!("usage: build-busybox-image OUT.tar");
        std::process::exit(2)
    });
    match common::image::build_busybox_tar(&out) {
        Ok(()) => println!("built {}", out.display()),
        Err(err) => common::errors::die(err),
    }
}
