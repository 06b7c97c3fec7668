#!/bin/sh
# Set up a Debian or Ubuntu machine to build and run the workshop.
#
# Used by the Vagrantfile (`vagrant up`) and by .ci/run, so this script is
# exercised on every change even where Vagrant itself cannot run.
#
# Usage:   sh scripts/provision.sh
#
# Run it as the user who will build: it uses sudo for apt when that user is
# not root, and installs the Rust toolchain for that user (rustup keeps
# toolchains per user, in ~/.rustup).
#
# It installs:
#   build-essential   the C compiler and linker cargo needs
#   busybox-static    the steps build their default container image from the
#                     static busybox on PATH
#   Rust              only when cargo is missing: Debian/Ubuntu's `rustup`
#                     package if the distribution has it, else its `cargo`
# scripts/vm-test.sh installs what it needs itself (qemu, a kernel), so a
# machine that never runs the VM test does not get them. scripts/run-all.sh
# installs busybox-static and build-essential itself when they are missing,
# so on a machine that has Rust, `sudo scripts/run-all.sh` alone is enough.
#
# Idempotent: what is already there is left alone, and apt-get update only
# runs when a package is actually missing.

set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)

say() { echo "provision: $*" >&2; }
die() { say "$*"; exit 1; }

if [ "$(id -u)" = 0 ]; then
    sudo=
else
    command -v sudo >/dev/null || die "not root and no sudo: run this as root"
    sudo=sudo
fi

apt_updated=no
need_pkg() {
    if dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; then
        return 0
    fi
    if [ "$apt_updated" = no ]; then
        say "apt-get update"
        $sudo apt-get update -qq
        apt_updated=yes
    fi
    say "installing $1"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1"
}

# True when apt knows a package by that name (Ubuntu 24.04 and Debian 13
# have `rustup`, Debian 12 does not). Needs the package lists, so update first.
apt_has() {
    if [ "$apt_updated" = no ]; then
        $sudo apt-get update -qq
        apt_updated=yes
    fi
    apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: *//p' | grep -qv '(none)'
}

command -v dpkg-query >/dev/null || die "this script knows Debian and Ubuntu (apt) only"

need_pkg build-essential
need_pkg busybox-static

# --- Rust -------------------------------------------------------------------

# rustup's installer puts cargo in ~/.cargo/bin, which a non-login shell
# (such as CI's) may not have on PATH yet.
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    PATH=$HOME/.cargo/bin:$PATH
    say "found cargo in ~/.cargo/bin; add it to PATH: . \"\$HOME/.cargo/env\""
fi

if ! command -v cargo >/dev/null && ! command -v rustup >/dev/null; then
    # No `curl | sh` here: the distribution's packages are reachable from
    # everywhere this project runs, rustup's own host may not be.
    if apt_has rustup; then
        need_pkg rustup
    else
        need_pkg cargo
    fi
fi

# A rustup without a default toolchain answers every `cargo` with an error.
if command -v rustup >/dev/null && ! rustup which cargo >/dev/null 2>&1; then
    say "rustup default stable"
    rustup default stable
fi

command -v cargo >/dev/null || die "cargo is still not on PATH; open a new login shell and run this again"

# The workspace says which Rust it needs; a distribution's cargo can be older.
need=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' "$repo/Cargo.toml" 2>/dev/null | head -n 1)
have=$(cargo --version | awk '{print $2}')
if [ -n "$need" ] && [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n 1)" != "$need" ]; then
    if command -v rustup >/dev/null; then
        say "cargo $have is older than rust-version $need: rustup update stable"
        rustup update stable
        rustup default stable
    else
        die "cargo $have is older than the workspace's rust-version $need; install rustup"
    fi
fi

say "ready: $(cargo --version), $(busybox | head -n 1)"
