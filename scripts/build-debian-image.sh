#!/bin/sh
# Builds a Debian image with debootstrap, for the workshop's exercises that
# need more than busybox: `stress-ng` (the original's `stress` exercises),
# `ps`, `free` and `top` from procps, `python3`, and `ip` from iproute2.
#
#   sudo scripts/build-debian-image.sh [OUT.tar]
#
# OUT.tar defaults to $IMAGE_DIR/debian.tar, and IMAGE_DIR to the steps'
# default image directory, /var/lib/docker-from-scratch/images: then
# `step09-oom run -i debian ...` finds it. Any step from step02 on runs it.
#
# Environment:
#   SUITE      the Debian release (default: bookworm)
#   MIRROR     the archive (default: http://deb.debian.org/debian)
#   IMAGE_DIR  where OUT.tar goes when no OUT.tar is given
#
# Needs root (debootstrap makes device nodes and chroots) and the network. It
# installs debootstrap with apt-get when it is missing. It takes a few minutes
# and about 250 MB of disk while it runs; the tarball is about 200 MB.
#
# The rootfs is a plain `debootstrap --variant=minbase` with those packages,
# then made into an image the way `docker export` would show one: no apt
# caches, no device nodes (the steps make their own /dev), and none of the
# files that a runtime gives each container (/etc/hostname, /etc/resolv.conf;
# /etc/hosts is reset to localhost alone), so nothing of this host leaks into
# the image. The tarball is written next to OUT.tar and renamed into place
# only when it is complete.
set -eu

SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
IMAGE_DIR=${IMAGE_DIR:-/var/lib/docker-from-scratch/images}
PACKAGES=stress-ng,procps,python3,iproute2

say() { echo "build-debian-image: $*" >&2; }

out=${1:-$IMAGE_DIR/debian.tar}
case $out in /*) ;; *) out=$PWD/$out ;; esac

if [ "$(id -u)" != 0 ]; then
    say "must run as root: debootstrap makes device nodes and chroots (sudo $0)"
    exit 1
fi
if ! command -v debootstrap >/dev/null; then
    if ! command -v apt-get >/dev/null; then
        say "debootstrap is missing and there is no apt-get to install it: install debootstrap, then run $0 again"
        exit 1
    fi
    say "installing debootstrap (apt-get update, then apt-get install debootstrap)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2
fi

mkdir -p "$(dirname "$out")"
work=$(mktemp -d "$(dirname "$out")/.debian-build.XXXXXX")
rootfs=$work/rootfs
partial=$work/image.tar

# debootstrap mounts /proc and /sys in the new root while it installs; if it
# fails half way they stay. Detach whatever is left below the work directory
# (deepest first) before removing it, and never remove through a mount.
cleanup() {
    for point in $(awk -v dir="$work" 'index($5, dir "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
        umount -l "$point" 2>/dev/null || true
    done
    if awk -v dir="$work" 'index($5, dir "/") == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
        say "mounts are left below $work: not removing it"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

started=$(date +%s)
say "debootstrap --variant=minbase --include=$PACKAGES $SUITE $rootfs $MIRROR"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$MIRROR" >&2

# What a container gets from its runtime, or does not need in an image.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
find "$rootfs/dev" -mindepth 1 -delete
rm -f "$rootfs/etc/hostname" "$rootfs/etc/resolv.conf"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$rootfs/etc/hosts"

tar --numeric-owner --xattrs -cf "$partial" -C "$rootfs" .
chmod 644 "$partial"
mv "$partial" "$out"
say "wrote $out ($(du -h "$out" | cut -f1), $(($(date +%s) - started)) s)"
