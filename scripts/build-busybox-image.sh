#!/bin/sh
# Builds the default `busybox` image tarball explicitly: the host's static
# busybox with every applet linked, plus the workshop's helpers (breakout,
# memhog). The steps build the same tarball on first use when it is missing;
# this script is for looking inside it, or for copying it to another machine.
#
#   scripts/build-busybox-image.sh [OUT.tar]   (default: ./busybox.tar)
set -eu
out=${1:-busybox.tar}
case $out in /*) ;; *) out=$PWD/$out ;; esac
cd "$(dirname "$0")/.."
exec cargo run --quiet --release -p common --bin build-busybox-image -- "$out"
