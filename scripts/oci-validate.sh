#!/bin/sh
# Run the OCI runtime-tools validation suite against step10-oci and runc,
# side by side, and print a table of TAP results per test program.
#
# Usage:   sudo scripts/oci-validate.sh [SOURCE_DIR]
#          SOURCE_DIR (or OCI_RUNTIME_TOOLS): a checkout of
#          https://github.com/opencontainers/runtime-tools (measured at
#          260e151). Its executables are built when missing, with Go from
#          its vendored dependencies (Debian 12: apt-get install golang-go;
#          no network needed: GOFLAGS=-mod=vendor GOPROXY=off).
#          Without a source directory the suite is SKIPPED, loudly (exit 0;
#          with CI=true, exit 1): this script never downloads it.
# Output:  per program `NAME  step10: P passed, F failed | runc: ...`, then
#          the totals, as README's table shows them. Results (TAP) are kept
#          in $OUT (default: a temporary directory, printed at the end).
#
# Environment:
#   BIN_DIR   directory with a prebuilt step10-oci (default: build it)
#   RUNTIMES  the runtimes to compare (default: "step10-oci runc"; a name
#             is looked up in BIN_DIR, then on PATH)
#   OUT       where to keep each program's TAP output
#
# Each program runs in a private mount namespace (unshare -m): some of the
# suite's checks mount on the host's namespace otherwise. Each gets 120 s.
#
# Cgroups: the suite's absolute cgroupsPath is /cgrouptest, at the root of
# each hierarchy, for the life of one container (both runtimes remove it).
# Its relative one, testdir/cgrouptest, step10-oci puts under
# docker-from-scratch/, but runc under the caller's own cgroup, which on a
# shared machine belongs to its tooling: so the linux_cgroups_relative_*
# programs run for step10-oci only, unless RELATIVE_CGROUPS=all.

set -u

repo=$(cd "$(dirname "$0")/.." && pwd)
say() { echo "oci-validate: $*" >&2; }

src=${1:-${OCI_RUNTIME_TOOLS:-}}
if [ -z "$src" ] || [ ! -f "$src/validation/util/test.go" ]; then
    echo "SKIPPED oci-validate: no runtime-tools source (give SOURCE_DIR or OCI_RUNTIME_TOOLS; see --help)" >&2
    [ "${CI:-}" = true ] && exit 1
    exit 0
fi
case "$src" in -h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
src=$(cd "$src" && pwd)

if [ "$(id -u)" != 0 ]; then
    say "must run as root (sudo $0)"
    exit 1
fi

if [ -z "${BIN_DIR:-}" ]; then
    (cd "$repo" && cargo build --quiet --release -p step10-oci) || { say "cargo build failed"; exit 1; }
    BIN_DIR=${CARGO_TARGET_DIR:-$repo/target}/$(rustc --print host-tuple)/release
fi

programs=$(cd "$src" && find validation -name '*.go' ! -path '*/util/*' | sort | sed 's/\.go$/.t/')
missing=
for program in runtimetest $programs; do
    [ -x "$src/$program" ] || missing=yes
done
if [ -n "$missing" ]; then
    command -v go >/dev/null || { say "no Go to build the suite: apt-get install golang-go"; exit 1; }
    say "building the suite (make runtimetest validation-executables)"
    (cd "$src" && GOFLAGS=-mod=vendor GOPROXY=off make runtimetest validation-executables >&2) ||
        { say "the build failed"; exit 1; }
fi

OUT=${OUT:-$(mktemp -d /tmp/oci-validate.XXXXXX)}
RUNTIMES=${RUNTIMES:-step10-oci runc}
for name in $RUNTIMES; do
    if [ -x "$BIN_DIR/$name" ]; then
        path=$BIN_DIR/$name
    else
        path=$(command -v "$name") || { say "runtime $name not found"; exit 1; }
    fi
    mkdir -p "$OUT/$name"
    for program in $programs; do
        test=$(basename "$program" .t)
        case "$name:$test:${RELATIVE_CGROUPS:-}" in
        step10-oci:* | *:all) ;;
        *:linux_cgroups_relative_*)
            echo "# skipped: $name would put a relative cgroupsPath under the caller's cgroup" >"$OUT/$name/$test.tap"
            continue
            ;;
        esac
        (cd "$src" && RUNTIME=$path timeout 120 unshare -m --propagation private "./$program") \
            >"$OUT/$name/$test.tap" 2>"$OUT/$name/$test.err" </dev/null
    done
done

# One line per program, then the totals: passed/failed assertions and the
# programs that printed no result at all.
printf '%-40s' program
for name in $RUNTIMES; do printf ' %-22s' "$name"; done
echo
for program in $programs; do
    test=$(basename "$program" .t)
    printf '%-40s' "$test"
    for name in $RUNTIMES; do
        tap=$OUT/$name/$test.tap
        ok=$(grep -c '^ok' "$tap")
        bad=$(grep -c '^not ok' "$tap")
        if grep -q '^# skipped' "$tap"; then
            printf ' %-22s' "skipped"
        elif [ $((ok + bad)) = 0 ]; then
            printf ' %-22s' "no result"
        else
            printf ' %-22s' "$ok ok, $bad not ok"
        fi
    done
    echo
done
printf '%-40s' TOTAL
for name in $RUNTIMES; do
    ok=$(cat "$OUT/$name"/*.tap | grep -c '^ok')
    bad=$(cat "$OUT/$name"/*.tap | grep -c '^not ok')
    none=0
    for tap in "$OUT/$name"/*.tap; do
        grep -q '^# skipped' "$tap" && continue
        [ "$(grep -c '^\(not \)\{0,1\}ok' "$tap")" = 0 ] && none=$((none + 1))
    done
    printf ' %-22s' "$ok/$bad/$none"
done
echo
echo "(TOTAL: assertions passed / failed / programs with no result; TAP in $OUT)"
