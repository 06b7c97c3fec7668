#!/bin/sh
# Run every step's "How to check your work" as automated checks.
#
# Usage:   sudo scripts/run-all.sh [STEP...]
#          STEP is 03, 3 or step03-mount-ns; default: every step.
# Output:  one line per check, `PASS step03-mount-ns: /dev/null is char 1:3`
#          or `FAIL ...` followed by indented details, a `TIME` line per step,
#          and last `N passed, M failed`. Exits 1 when anything failed.
# Set-up:  on Debian and Ubuntu, what the steps need and this machine lacks is
#          installed first with apt-get: busybox-static (the default image is
#          built from it) and, when this script builds, build-essential.
#
# Environment:
#   BIN_DIR    directory with prebuilt step binaries; when unset, this script
#              runs `cargo build --release --workspace` and uses
#              target/<host tuple>/release (.cargo/config.toml)
#   STATE_DIR  where images and containers go (passed to every run as
#              --image-dir STATE_DIR/images --container-dir STATE_DIR/containers);
#              default: a fresh temporary directory, removed at the end, so a
#              user's /var/lib/docker-from-scratch is never touched
#
# POSIX sh on purpose: scripts/vm-test.sh runs it under busybox sh, with busybox
# applets only (unshare, stat, mount, grep, readlink, mktemp, awk) and no cargo.
#
# Each check asserts what the kernel shows (exit statuses from wait, the
# command's /proc/self/ns/mnt and mountinfo, stat of device nodes and of "/",
# inodes in the image store), not what the runtime says it did.
#
# To add checks for a step: fill its check_stepNN function below, using the
# groups of checks (check_basics, check_image_root, ...) and the helpers
# (check, run, expect_status, expect_line, fail_with_run).

set -u

repo=$(cd "$(dirname "$0")/.." && pwd)

STEPS="step01-fork-exec step02-chroot step03-mount-ns step04-pivot-root step05-overlay
step06-pid-ns step07-user-ns step08-cgroups step09-oom step10-oci"

say() { echo "run-all: $*" >&2; }

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2
    exit "$1"
}

# --- which steps --------------------------------------------------------------

selected=
for arg in "$@"; do
    case "$arg" in
    -h | --help) usage 0 ;;
    -*) say "unknown option $arg"; usage 1 ;;
    step*) number=${arg#step}; number=${number%%-*} ;;
    *) number=$arg ;;
    esac
    case "$number" in [1-9]) number=0$number ;; esac
    found=
    for step in $STEPS; do
        case "$step" in "step$number"-*) found=$step ;; esac
    done
    [ -n "$found" ] || { say "no step $arg (steps: $(echo $STEPS))"; exit 1; }
    selected="$selected $found"
done
[ -n "$selected" ] || selected=$STEPS

if [ "$(id -u)" != 0 ]; then
    echo "run-all: must run as root: the steps mount filesystems and create namespaces (sudo $0)" >&2
    exit 1
fi

# --- what the steps need on this machine ---------------------------------------

# On Debian and Ubuntu, what is missing is installed (this script runs as
# root): the static busybox that the steps from step02 build their default
# image from, and, when this script builds the steps itself, the C toolchain
# cargo links with. Without apt (scripts/vm-test.sh runs this script under
# busybox, where everything is already there) nothing is installed, and a
# missing piece fails its check with the runtime's message, which names the fix.
installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'
}
if command -v apt-get >/dev/null && command -v dpkg-query >/dev/null; then
    missing=
    if [ -z "${BIN_DIR:-}" ] && ! command -v cc >/dev/null; then
        missing="$missing build-essential"
    fi
    case "$selected" in
    *step0[2-9]-* | *step1[0-9]-*) installed busybox-static || missing="$missing busybox-static" ;;
    esac
    if [ -n "$missing" ]; then
        say "installing$missing (apt-get update, then apt-get install$missing)"
        if ! DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 ||
            ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >&2; then
            say "installing$missing failed: run apt-get install$missing, then $0 again"
            exit 1
        fi
    fi
fi

# --- the binaries -------------------------------------------------------------

if [ -z "${BIN_DIR:-}" ]; then
    if ! command -v cargo >/dev/null; then
        say "cargo not found on root's PATH: build as yourself with"
        say "  cargo build --release --workspace"
        say "then run: sudo BIN_DIR=target/$(uname -m)-unknown-linux-gnu/release $0"
        say "(no Rust on this machine at all? sh scripts/provision.sh installs it)"
        exit 1
    fi
    say "cargo build --release --workspace"
    (cd "$repo" && cargo build --release --workspace) >&2 || { say "the build failed"; exit 1; }
    BIN_DIR=${CARGO_TARGET_DIR:-$repo/target}/$(rustc --print host-tuple)/release
fi
BIN_DIR=$(cd "$BIN_DIR" && pwd) || { say "BIN_DIR is not a directory"; exit 1; }

# --- the state directory, and the script's own scratch files -------------------

# mountinfo shows canonical paths, so every path compared with it is one.
work=$(mktemp -d "${TMPDIR:-/tmp}/dfs-run-all.XXXXXX") || exit 1
work=$(cd "$work" && pwd -P)
# mktemp makes it 0700; from step07 on, the container's root is another uid
# on the host and must still reach the image and its own directory below.
chmod 711 "$work"
log=$work/log
mkdir "$log"
if [ -n "${STATE_DIR:-}" ]; then
    if ! mkdir -p "$STATE_DIR" || ! state=$(cd "$STATE_DIR" && pwd -P); then
        rm -rf "$work"
        exit 1
    fi
else
    state=$work/state
    mkdir "$state"
fi
images=$state/images
containers=$state/containers
if [ -n "$(ls -A "$containers" 2>/dev/null)" ]; then
    say "$containers is not empty: run-all needs a state directory without containers"
    rm -rf "$work"
    exit 1
fi

# Mounts at or below directory $1 in our mount namespace, deepest first.
mounts_under() {
    awk -v dir="$1" '$5 == dir || index($5, dir "/") == 1 { print $5 }' /proc/self/mountinfo |
        awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2-
}

# Removes the scratch directory, but never through a mount a failed step left
# behind: those are detached first, and if that fails, the directory stays.
cleanup() {
    for point in $(mounts_under "$work"); do
        umount -l "$point" 2>/dev/null
    done
    if [ -n "$(mounts_under "$work")" ]; then
        say "mounts are left under $work, not removing it:"
        mounts_under "$work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A hung container must not hang the whole run: every run gets a time limit.
if command -v timeout >/dev/null; then
    timeout="timeout 120"
else
    timeout=
fi

# Marks the host's environment, to check that it does not leak in.
DFS_RUN_ALL_HOST_ONLY=leaked
export DFS_RUN_ALL_HOST_ONLY

host_mnt_ns=$(readlink /proc/self/ns/mnt)
host_root=$(stat -c %d:%i /)

say "binaries: $BIN_DIR"
say "state:    $state"

# --- helpers --------------------------------------------------------------------

passed=0
failed=0
step=

# check DESCRIPTION COMMAND [ARGS...]: runs COMMAND (in this shell, so it can set
# variables), prints PASS or FAIL with COMMAND's output indented, and counts.
check() {
    description=$1
    shift
    if "$@" >"$log/check" 2>&1; then
        passed=$((passed + 1))
        echo "PASS $step: $description"
        return 0
    fi
    failed=$((failed + 1))
    echo "FAIL $step: $description"
    sed 's/^/    /' "$log/check"
    return 1
}

# The words as a shell would need them typed, for failure reports.
quoted() {
    for word in "$@"; do
        case "$word" in
        "" | *[!A-Za-z0-9_./:=%@+,-]*) printf "'%s' " "$(printf '%s' "$word" | sed "s/'/'\\\\''/g")" ;;
        *) printf '%s ' "$word" ;;
        esac
    done
}

# run [RUNTIME-OPTIONS] [--] COMMAND [ARGS...]: `$step run` with this run's
# state directories, and $run_env (VAR=VALUE ...) added to the runtime's own
# environment. Sets $out and $err (files) and $rc.
run_env=
run() {
    if [ "$step" = step01-fork-exec ]; then
        set -- run "$@"
    else
        set -- run --image-dir "$images" --container-dir "$containers" "$@"
    fi
    ran="${run_env:+$run_env }$step $(quoted "$@")"
    out=$log/out
    err=$log/err
    $timeout env $run_env "$BIN_DIR/$step" "$@" </dev/null >"$out" 2>"$err"
    rc=$?
}

# fail_with_run MESSAGE: says why a check failed, then what the last run did.
fail_with_run() {
    echo "$1"
    echo "\$ $ran"
    echo "exit status $rc"
    sed 's/^/stdout| /' "$out"
    sed 's/^/stderr| /' "$err"
    return 1
}

# expect_status CODE [RUNTIME-OPTIONS] [--] COMMAND...
expect_status() {
    want=$1
    shift
    run "$@"
    [ "$rc" = "$want" ] || fail_with_run "expected exit status $want, got $rc"
}

# expect_line LINE [RUNTIME-OPTIONS] [--] COMMAND...: exit 0 and LINE, exactly,
# among the lines the command printed.
expect_line() {
    want=$1
    shift
    run "$@"
    [ "$rc" = 0 ] || { fail_with_run "expected exit status 0, got $rc"; return 1; }
    grep -qxF -- "$want" "$out" || fail_with_run "expected the line: $want"
}

now() {
    read -r up _ </proc/uptime
    frac=${up#*.}
    echo $((${up%.*} * 100 + ${frac#0}))
}

# --- groups of checks, shared by the steps ---------------------------------------

# The image store holds busybox/rootfs; the first run of a step from step02
# builds it from the host's static busybox. Without it nothing else can run,
# so a failure here ends the whole run with the binary's own message.
need_image() {
    [ -d "$images/busybox/rootfs" ] && return 0
    check "the busybox image is built from the host's static busybox" image_is_built && return 0
    echo "$passed passed, $failed failed"
    exit 1
}
image_is_built() {
    run -- true
    [ "$rc" = 0 ] || { fail_with_run "the first run, which builds the image, failed"; return 1; }
    [ -x "$images/busybox/rootfs/bin/busybox" ] ||
        fail_with_run "no $images/busybox/rootfs/bin/busybox after the first run"
}

# Every step: how the command ended becomes the runtime's exit status, and
# only -e variables (plus PATH, HOME, TERM) make up its environment.
check_basics() {
    check "exit status 0 (true)" expect_status 0 -- true
    check "exit status 3 (sh -c 'exit 3')" expect_status 3 -- sh -c 'exit 3'
    check "exit status 127 for a missing command" expect_status 127 -- dfs-no-such-command
    check "exit status 126 for a command that cannot be executed (/etc)" expect_status 126 -- /etc
    if [ "${1:-}" = pid1 ]; then
        # From step06 the command is PID 1 of its own PID namespace, and
        # PID 1 gets no signal it has no handler for from inside its
        # namespace, not even SIGKILL: the 128+9 check kills it from the host.
        check "exit status 137 when the host kills the command with SIGKILL" \
            killed_from_host 137 'was killed by signal 9 (SIGKILL)'
        check "PID 1 ignores kill -9 \$\$ from inside its namespace" \
            expect_line "still here" -- sh -c 'kill -9 $$; echo still here'
    else
        check "exit status 137 when the command is killed by SIGKILL" \
            expect_status 137 -- sh -c 'kill -9 $$'
    fi
    check "exit status 125 for a bad option" expect_status 125 --no-such-option -- true
    check "-e FOO=bar is in the command's environment (env)" expect_line FOO=bar -e FOO=bar -- env
    check "the host's environment is not passed in (env)" host_env_stays_out
    check "the command is looked up in the container's PATH, not the runtime's" \
        command_found_in_container_path
}
host_env_stays_out() {
    run -- env
    [ "$rc" = 0 ] || { fail_with_run "env failed"; return 1; }
    ! grep -q '^DFS_RUN_ALL_HOST_ONLY=' "$out" || fail_with_run "a host variable is in the container"
}
# The runtime runs with a PATH that names no directory: `true` must still be
# found through the container's own PATH (/usr/bin:/bin...), as Docker does.
command_found_in_container_path() {
    run_env=PATH=/dfs-nowhere
    expect_status 0 -- true
    status=$?
    run_env=
    return "$status"
}

# From step02: the command sees the image's files, not the host's, and what it
# writes never reaches the image.
check_image_root() {
    check "the command sees the image's /etc/os-release, not the host's" sees_image_root
    check "a file written inside is not in the image" writes_stay_out_of_image
}
sees_image_root() {
    run -- cat /etc/os-release
    [ "$rc" = 0 ] || { fail_with_run "cat /etc/os-release failed"; return 1; }
    grep -qF 'docker-from-scratch busybox' "$out" ||
        { fail_with_run "expected 'docker-from-scratch busybox'"; return 1; }
    if [ -f /etc/os-release ] && cmp -s /etc/os-release "$out"; then
        fail_with_run "this is the host's /etc/os-release"
    fi
}
writes_stay_out_of_image() {
    rm -f "$images/busybox/rootfs/dfs-written"
    expect_line written -- sh -c 'echo written > /dfs-written && cat /dfs-written' || return 1
    [ ! -e "$images/busybox/rootfs/dfs-written" ] ||
        fail_with_run "$images/busybox/rootfs/dfs-written exists after the run"
}

# `breakout` (in the image's /bin) chroots into a subdirectory and walks `..`
# out of it. ESCAPED: it ends in the host's root, so `stat /` there shows the
# host's device and inode; CONTAINED: it does not.
check_breakout() {
    case "$1" in
    ESCAPED) check "breakout escapes: ESCAPED, and its / is the host's (stat)" breakout_ends ESCAPED ;;
    CONTAINED) check "breakout is contained: CONTAINED, and its / is not the host's (stat)" breakout_ends CONTAINED ;;
    esac
}
breakout_ends() {
    run -- breakout stat -c %d:%i /
    [ "$rc" = 0 ] || { fail_with_run "breakout failed"; return 1; }
    said=$(sed -n 1p "$out")
    root=$(sed -n 2p "$out")
    [ "$said" = "$1" ] || { fail_with_run "expected $1"; return 1; }
    if [ "$1" = ESCAPED ]; then
        [ "$root" = "$host_root" ] || fail_with_run "expected the host's / ($host_root), got $root"
    else
        [ "$root" != "$host_root" ] || fail_with_run "its / is the host's ($host_root)"
    fi
}

# The mount leak probe. The host's "/" is made shared (as systemd does) in a
# throwaway mount namespace, so that nothing can reach the real host; in it,
# the container mounts a tmpfs named dfs-probe on /mnt and says so through a
# fifo, then waits on another fifo while the runtime's mountinfo is read.
# Prints `container: mounted` and `runtime: seen` or `runtime: unseen`.
write_probe_script() {
    cat >"$log/probe.sh" <<'EOF'
to=$1 from=$2
shift 2
"$@" <"$to" >"$from" &
pid=$!
# In the order the background job opens them, or both sides would wait.
exec 3>"$to" 4<"$from"
IFS= read -r said <&4
echo "container: $said"
if grep -q ' dfs-probe ' "/proc/$pid/mountinfo"; then
    echo "runtime: seen"
    grep ' dfs-probe ' "/proc/$pid/mountinfo" | sed 's/^/runtime mountinfo: /'
else
    echo "runtime: unseen"
fi
exec 3>&-
wait "$pid"
echo "status: $?"
EOF
}
probe_mount() {
    want=$1
    rm -f "$log/to" "$log/from"
    mkfifo "$log/to" "$log/from" || return 1
    if [ "$step" = step01-fork-exec ]; then
        set --
    else
        set -- --image-dir "$images" --container-dir "$containers"
    fi
    ran="unshare -m --propagation private unshare -m --propagation shared sh probe.sh ... $step run $* -- sh -c '...'"
    out=$log/out
    err=$log/err
    $timeout unshare -m --propagation private unshare -m --propagation shared \
        sh "$log/probe.sh" "$log/to" "$log/from" "$BIN_DIR/$step" run "$@" -- \
        sh -c 'if mount -t tmpfs dfs-probe /mnt && grep -q " dfs-probe " /proc/self/mountinfo; then
                   echo mounted
               else
                   echo "mount failed"
               fi
               read x || true' \
        </dev/null >"$out" 2>"$err"
    rc=$?
    grep -qx 'container: mounted' "$out" ||
        { fail_with_run "the container did not mount the probe"; return 1; }
    grep -qx "runtime: $want" "$out" ||
        { fail_with_run "expected the probe to be $want in the runtime's mountinfo"; return 1; }
    grep -qx 'status: 0' "$out" || fail_with_run "the container did not exit 0"
}

# From step03: a mount namespace of its own, devices made by hand in /dev,
# and mounts that stay inside.
check_mount_ns() {
    check "own mount namespace (/proc/self/ns/mnt differs from the host's)" own_mount_ns
    check "/dev/null is char 1:3" expect_line 1:3 -- sh -c 'test -c /dev/null && stat -c %t:%T /dev/null'
    if [ "${1:-}" = no-mount ]; then
        # From step07 nothing can be mounted inside (no CAP_SYS_ADMIN): the
        # probe is replaced by the check that mounting fails.
        check "mounting anything inside fails (no CAP_SYS_ADMIN)" mount_fails
        return 0
    fi
    check "a tmpfs mounted inside is not in the host's mountinfo, with / shared" probe_mount unseen
}
own_mount_ns() {
    run -- readlink /proc/self/ns/mnt
    [ "$rc" = 0 ] || { fail_with_run "readlink failed"; return 1; }
    case "$(cat "$out")" in
    "$host_mnt_ns") fail_with_run "the host's is $host_mnt_ns too" ;;
    mnt:*) return 0 ;;
    *) fail_with_run "expected mnt:[...]" ;;
    esac
}

# From step02: after all the step's runs, no container directory and no mount
# is left in the state directory.
check_nothing_left() {
    check "nothing left: no container directories, no mounts under the state directory" nothing_left
}
nothing_left() {
    left=$(ls -A "$containers" 2>/dev/null)
    mounts=$(mounts_under "$state")
    [ -z "$left$mounts" ] && return 0
    [ -z "$left" ] || echo "left in $containers: $(echo $left)"
    [ -z "$mounts" ] || { echo "still mounted:"; echo "$mounts"; }
    return 1
}

# --- the steps ---------------------------------------------------------------------

check_step01() {
    check_basics
    check "/bin/echo \"Hello Docker\" prints it" expect_line "Hello Docker" -- /bin/echo "Hello Docker"
    check "runs in the host's mount namespace (/proc/self/ns/mnt)" expect_line "$host_mnt_ns" -- readlink /proc/self/ns/mnt
}

check_step02() {
    need_image
    check_basics
    check_image_root
    check "runs in the host's mount namespace (/proc/self/ns/mnt)" expect_line "$host_mnt_ns" -- readlink /proc/self/ns/mnt
    check_breakout ESCAPED
    # The contrast step03 fixes, and the proof that the probe can see a leak.
    check "a tmpfs mounted inside is in the host's mountinfo (no mount namespace yet)" probe_mount seen
    check_nothing_left
}

check_step03() {
    need_image
    check_basics
    check_image_root
    check_mount_ns
    check_breakout ESCAPED
    check_nothing_left
}

check_step04() {
    need_image
    check_basics
    check_image_root
    check_mount_ns
    check_breakout CONTAINED
    check_nothing_left
}

check_step05() {
    need_image
    check_basics
    check_image_root
    check_mount_ns
    check_breakout CONTAINED
    check "/ is an overlay mount (/proc/self/mountinfo)" root_is_overlay
    check "a second start does not extract the image again (rootfs inode unchanged)" image_extracted_once
    check "--keep leaves upper/ with the file written inside, and no mounts" keep_leaves_upper
    check_layers 0
    check_nothing_left
}
root_is_overlay() {
    run -- cat /proc/self/mountinfo
    [ "$rc" = 0 ] || { fail_with_run "cat /proc/self/mountinfo failed"; return 1; }
    awk '$5 == "/"' "$out" | grep -q ' - overlay ' || fail_with_run "no overlay mounted on /"
}
image_extracted_once() {
    rootfs=$images/busybox/rootfs
    first=$(stat -L -c %i "$rootfs")
    expect_status 0 -- true || return 1
    second=$(stat -L -c %i "$rootfs")
    expect_status 0 -- true || return 1
    third=$(stat -L -c %i "$rootfs")
    if [ "$first" != "$second" ] || [ "$second" != "$third" ]; then
        fail_with_run "the inode of $rootfs changed: $first, $second, $third"
    fi
}
# From step05: an image of two layers (the OCI layout that
# scripts/build-layered-image.sh writes: busybox, then a layer with a
# whiteout and an opaque directory) runs with its config's defaults, as
# `docker run` runs it, on an overlay with one lower dir per layer. $1 is
# the uid its User (1000) runs as: 0 before the step has --user.
check_layers() {
    check "a layered OCI image runs its Cmd with its Env, WorkingDir and User (uid $1)" layered_image_runs "$1"
    check "the top layer's whiteout and opaque directory hide the base layer's files" layered_image_hides
    check "the overlay has one lower dir per layer (mountinfo)" one_lower_dir_per_layer
}
layered=
need_layered() {
    [ -n "$layered" ] && return 0
    sh "$repo/scripts/build-layered-image.sh" "$work/layered" "$images/busybox.tar" >"$log/layered" 2>&1 ||
        { echo "scripts/build-layered-image.sh failed:"; cat "$log/layered"; return 1; }
    layered=$work/layered
}
layered_image_runs() {
    need_layered || return 1
    expect_line "default: hello from the image, uid $1, in /app/work" --image "$layered"
}
layered_image_hides() {
    need_layered || return 1
    expect_line "only-in-top" --image "$layered" -- ls /usr/sbin || return 1
    run --image "$layered" -- test -e /etc/os-release
    [ "$rc" = 1 ] || fail_with_run "/etc/os-release, deleted by the top layer, is there"
}
one_lower_dir_per_layer() {
    need_layered || return 1
    run --image "$layered" -- cat /proc/self/mountinfo
    [ "$rc" = 0 ] || { fail_with_run "cat /proc/self/mountinfo failed"; return 1; }
    lower=$(awk '$5 == "/"' "$out" | grep -o 'lowerdir=[^,]*')
    count=$(echo "${lower#lowerdir=}" | tr ':' '\n' | grep -c .)
    [ "$count" = 2 ] || fail_with_run "expected 2 lower dirs, found $count: $lower"
}
keep_leaves_upper() {
    expect_status 0 --keep -- sh -c 'echo kept > /dfs-kept' || return 1
    set -- "$containers"/*
    if [ "$#" != 1 ] || [ ! -d "$1" ]; then
        fail_with_run "expected one container directory, found: $(ls -A "$containers")"
        return 1
    fi
    kept=$1
    mounts=$(mounts_under "$kept")
    [ -z "$mounts" ] || { fail_with_run "still mounted under $kept: $mounts"; return 1; }
    content=$(cat "$kept/upper/dfs-kept" 2>/dev/null)
    rm -rf "$kept"
    [ "$content" = kept ] || fail_with_run "$kept/upper/dfs-kept does not hold 'kept'"
}

shows_help() {
    "$BIN_DIR/$step" --help >"$log/out" 2>&1 && grep -q '^Usage:' "$log/out" && return 0
    echo "\$ $step --help"
    cat "$log/out"
    return 1
}

# start_sleeper [RUNTIME-OPTIONS]: starts `$step run ... -- sleep 100` in the
# background and waits until the container's first process has exec'd
# sleep. Sets $runtime (the runtime's pid) and $init (the container's PID 1,
# as the host numbers it).
start_sleeper() {
    "$BIN_DIR/$step" run --image-dir "$images" --container-dir "$containers" "$@" -- sleep 100 \
        </dev/null >"$log/out" 2>"$log/err" &
    runtime=$!
    ran="$step run $* -- sleep 100 (in the background)"
    # The binary's own path, not /proc/$runtime/exe: read right after the
    # fork, that can still be the shell's, and the runtime's child (before it
    # is in its cgroup) would then pass for the container's first process.
    runtime_exe=$(readlink -f "$BIN_DIR/$step")
    # Up to 60 s: under software emulation on a busy machine (the VM test)
    # a start has taken several seconds.
    tries=0
    while [ "$tries" -lt 6000 ]; do
        init=$(cat "/proc/$runtime/task/$runtime/children" 2>/dev/null | tr -d ' ')
        if [ -n "$init" ] && [ "$(readlink "/proc/$init/exe" 2>/dev/null)" != "$runtime_exe" ] &&
            [ -n "$(readlink "/proc/$init/exe" 2>/dev/null)" ]; then
            return 0
        fi
        tries=$((tries + 1))
        sleep 0.01
    done
    echo "the container never started sleep 100"
    kill -9 "$runtime" 2>/dev/null
    return 1
}
# stop_sleeper: kills the container's PID 1 from the host, waits for the
# runtime and sets $rc, $out, $err.
stop_sleeper() {
    kill -9 "$init"
    wait "$runtime"
    rc=$?
    out=$log/out
    err=$log/err
}
# killed_from_host STATUS LAST-LINE
killed_from_host() {
    start_sleeper || return 1
    stop_sleeper
    [ "$rc" = "$1" ] || { fail_with_run "expected exit status $1, got $rc"; return 1; }
    tail -n 1 "$err" | grep -qF -- "$2" || fail_with_run "expected the last line to say: $2"
}

# namespaces KIND...: the command's namespaces differ from the host's.
own_namespaces() {
    for kind in "$@"; do
        host=$(readlink "/proc/self/ns/$kind")
        run -- readlink "/proc/self/ns/$kind"
        [ "$rc" = 0 ] || { fail_with_run "readlink failed"; return 1; }
        [ "$(cat "$out")" != "$host" ] || { fail_with_run "same $kind namespace as the host: $host"; return 1; }
    done
}
only_its_processes() {
    run -- ps -o pid,comm
    [ "$rc" = 0 ] || { fail_with_run "ps failed"; return 1; }
    [ "$(sed 1d "$out" | awk '{print $1, $2}')" = "1 ps" ] || fail_with_run "expected ps alone, as PID 1"
}
hostname_is_the_id() {
    before=$(cat /proc/sys/kernel/hostname)
    run -- hostname
    [ "$rc" = 0 ] || { fail_with_run "hostname failed"; return 1; }
    name=$(cat "$out")
    tail -n 1 "$err" | grep -q "^container $name " || { fail_with_run "the hostname is not the container id"; return 1; }
    [ "$(cat /proc/sys/kernel/hostname)" = "$before" ] || fail_with_run "the host's hostname changed"
}
# The files Docker gives every container: /etc/hostname holds the hostname,
# /etc/hosts resolves localhost and the hostname, /etc/resolv.conf is there;
# each is a bind mount of the container's own, and the image's stay as they were.
etc_files() {
    image_hosts=$(cat "$images/busybox/rootfs/etc/hosts")
    run "$@" --hostname web -- sh -c 'cat /etc/hostname; grep -c localhost /etc/hosts; grep web /etc/hosts
        echo edited >> /etc/hosts && test -f /etc/resolv.conf && grep -cE " /etc/(hostname|hosts|resolv.conf) " /proc/self/mountinfo'
    [ "$rc" = 0 ] || { fail_with_run "the run failed"; return 1; }
    [ "$(cat "$out")" = "$(printf 'web\n2\n127.0.0.1\tweb\n3')" ] ||
        { fail_with_run "expected web, 2 localhost lines, 127.0.0.1 web and 3 mounts"; return 1; }
    [ "$(cat "$images/busybox/rootfs/etc/hosts")" = "$image_hosts" ] || fail_with_run "the image's /etc/hosts changed"
}
only_lo_up() {
    run -- ip -o link
    [ "$rc" = 0 ] || { fail_with_run "ip link failed"; return 1; }
    [ "$(wc -l <"$out")" = 1 ] && grep -q ': lo: <LOOPBACK,UP' "$out" || fail_with_run "expected lo alone, and up"
}

# From step06: the command is PID 1 of its own PID namespace, with its own
# hostname, IPC and network (only lo, up).
check_process_namespaces() {
    check "the command is PID 1 (echo \$\$)" expect_line 1 -- sh -c 'echo $$'
    check "ps shows only the command, as PID 1" only_its_processes
    check "own PID, UTS, IPC and network namespaces (/proc/self/ns)" own_namespaces pid uts ipc net
    check "the hostname is the container id; the host's is unchanged" hostname_is_the_id
    check "--hostname web sets it" expect_line web --hostname web -- hostname
    check "only lo exists, and it is up (ip -o link)" only_lo_up
    check "/etc/hostname, /etc/hosts (localhost, the hostname), /etc/resolv.conf are the container's own" etc_files
}

# From step06: the IPC namespace's own /dev/shm and /dev/mqueue, and Docker's
# sysctls in the container's network namespace (the host's stay as they are).
# With `userns` (step07 on), both modes; ping_group_range only without a user
# namespace, as in Docker.
shm_and_mqueue() {
    run "$@" -- sh -c "stat -c %a /dev/shm; grep -E ' /dev/(shm|mqueue) ' /proc/self/mountinfo"
    [ "$rc" = 0 ] || { fail_with_run "the run failed"; return 1; }
    [ "$(sed -n 1p "$out")" = 1777 ] || { fail_with_run "/dev/shm is not mode 1777"; return 1; }
    grep ' /dev/shm ' "$out" | grep -q 'nosuid,nodev,noexec.* - tmpfs .*size=65536k' ||
        { fail_with_run "/dev/shm is not a 64m tmpfs, nosuid,nodev,noexec"; return 1; }
    grep ' /dev/mqueue ' "$out" | grep -q 'nosuid,nodev,noexec.* - mqueue ' ||
        fail_with_run "/dev/mqueue is not an mqueue mount, nosuid,nodev,noexec"
}
net_sysctls() {
    ping=$1
    shift
    files="/proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/net/ipv4/ping_group_range"
    before=$(cat $files)
    run "$@" -- cat $files
    [ "$rc" = 0 ] || { fail_with_run "cat failed"; return 1; }
    [ "$(sed -n 1p "$out")" = 0 ] || { fail_with_run "expected ip_unprivileged_port_start 0"; return 1; }
    if [ "$ping" = ping ] && [ "$(sed -n 2p "$out" | awk '{print $1, $2}')" != "0 2147483647" ]; then
        fail_with_run "expected ping_group_range 0 2147483647"
        return 1
    fi
    [ "$(cat $files)" = "$before" ] || fail_with_run "the host's values changed"
}
check_ipc_and_net() {
    check "/dev/shm is a 64m tmpfs (nosuid,nodev,noexec, 1777), /dev/mqueue an mqueue mount" shm_and_mqueue
    if [ "${1:-}" = userns ]; then
        check "the same with --userns=host" shm_and_mqueue --userns=host
        check "ip_unprivileged_port_start is 0 inside, the host's unchanged" net_sysctls no-ping
        check "--userns=host: ping_group_range is 0 2147483647 too" net_sysctls ping --userns=host
    else
        check "ip_unprivileged_port_start 0, ping_group_range 0 2147483647 inside, the host's unchanged" \
            net_sysctls ping
    fi
}

check_step06() {
    need_image
    check_basics pid1
    check_image_root
    check_mount_ns
    check_breakout CONTAINED
    check_process_namespaces
    check_ipc_and_net
    check_nothing_left
}

# From step07: a user namespace maps container 0-65535 to host 100000-165535.
check_user_namespace() {
    check "own user namespace (/proc/self/ns/user)" own_namespaces user
    check "uid_map is 0 100000 65536" uid_map_is_default
    check "root inside owns the image's files (ls -ln /etc/passwd: 0 0)" image_owned_by_root_inside
    check "the same with --no-idmap (a chowned copy)" image_owned_by_root_inside --no-idmap
    check "a file root creates inside is owned by 100000 on the host (--keep)" created_as_100000
    check "CapBnd is Docker's default set, 00000000a80425fb" status_field CapBnd 00000000a80425fb
    check "CapEff is Docker's default set for root" status_field CapEff 00000000a80425fb
    check "NoNewPrivs is 0, as Docker's default" status_field NoNewPrivs 0
    check "NoNewPrivs is 1 with --security-opt no-new-privileges" status_field NoNewPrivs 1 --security-opt no-new-privileges
    check "a setuid-root program runs as the container's root for --user 1000" expect_line "uid=1000 euid=0" --user 1000 -- setuid-id
    check "... and as 1000 with --security-opt no-new-privileges" expect_line "uid=1000 euid=1000" --user 1000 --security-opt no-new-privileges -- setuid-id
    check "--user 1000:1000 runs as 1000 with an empty CapEff" status_field CapEff 0000000000000000 --user 1000:1000
    check "--user 1000:1000: id -u is 1000" expect_line 1000 --user 1000:1000 -- id -u
    check "--user nobody: the image's /etc/passwd gives uid 65534 and HOME /nonexistent" \
        expect_line "65534 /nonexistent" --user nobody -- sh -c 'echo $(id -u) $HOME'
    check "--user nosuch: exit 125, unable to find user nosuch" unknown_user
}
unknown_user() {
    expect_status 125 --user nosuch -- true || return 1
    grep -q "unable to find user nosuch: no matching entries in passwd file" "$err" ||
        fail_with_run "expected Docker's words for an unknown user"
}
uid_map_is_default() {
    run -- cat /proc/self/uid_map
    [ "$rc" = 0 ] || { fail_with_run "cat failed"; return 1; }
    [ "$(awk '{print $1, $2, $3}' "$out")" = "0 100000 65536" ] || fail_with_run "unexpected uid_map"
}
image_owned_by_root_inside() {
    run "$@" -- stat -c '%u %g' /etc/passwd /bin/busybox
    [ "$rc" = 0 ] || { fail_with_run "stat failed"; return 1; }
    [ "$(sort -u "$out")" = "0 0" ] || fail_with_run "expected 0 0"
}
created_as_100000() {
    expect_status 0 --keep -- sh -c 'touch /dfs-owned && echo edited >> /etc/passwd' || return 1
    set -- "$containers"/*
    owner=$(stat -c '%u:%g' "$1/upper/dfs-owned" 2>/dev/null)
    passwd=$(stat -c '%u:%g' "$1/upper/etc/passwd" 2>/dev/null)
    rm -rf "$1"
    [ "$owner" = 100000:100000 ] && [ "$passwd" = 100000:100000 ] ||
        fail_with_run "upper/dfs-owned is $owner, upper/etc/passwd is $passwd on the host"
}
# status_field FIELD VALUE [RUNTIME-OPTIONS]: /proc/self/status in the container.
status_field() {
    field=$1
    value=$2
    shift 2
    run "$@" -- cat /proc/self/status
    [ "$rc" = 0 ] || { fail_with_run "cat failed"; return 1; }
    [ "$(awk -v f="$field:" '$1 == f {print $2}' "$out")" = "$value" ] || fail_with_run "expected $field: $value"
}
mount_fails() {
    run -- mount -t tmpfs dfs-probe /mnt
    [ "$rc" != 0 ] || fail_with_run "the mount succeeded"
}

# From step07: the container's own session, without a controlling terminal
# unless -t gives it one of its own.
check_session() {
    check "own session, no controlling terminal (/proc/self/stat: session 1, tty_nr 0)" \
        expect_line "1 0" -- cut -d' ' -f6,7 /proc/self/stat
    check "-t: a terminal of its own (tty prints /dev/pts/0)" tty_is_its_own
    check "-t -- sh: the end of the input (/dev/null) ends the shell, exit 0" expect_status 0 -t -- sh
}
tty_is_its_own() {
    run -t -- tty
    [ "$rc" = 0 ] || { fail_with_run "expected exit status 0, got $rc"; return 1; }
    [ "$(tr -d '\r' <"$out")" = /dev/pts/0 ] || fail_with_run "expected /dev/pts/0 (and a carriage return)"
}
# From step07: what the container can reach through the filesystem, in both
# modes. Each check tries the attack from inside and fails if it works.
proc_sys_and_sys_read_only() {
    run "$@" -- sh -c 'cp=$(cat /proc/sys/kernel/core_pattern) && echo "$cp" > /proc/sys/kernel/core_pattern && echo CORE-WRITTEN
        thp=/sys/kernel/mm/transparent_hugepage/enabled
        if [ -e $thp ]; then now=$(sed "s/.*\[\(.*\)\].*/\1/" $thp) && echo "$now" > $thp && echo SYS-WRITTEN; fi
        grep " /sys " /proc/self/mountinfo'
    ! grep -q CORE-WRITTEN "$out" || { fail_with_run "kernel.core_pattern was written from inside"; return 1; }
    ! grep -q SYS-WRITTEN "$out" || { fail_with_run "/sys was written from inside"; return 1; }
    grep -q ' /sys ro,nosuid,nodev,noexec' "$out" || fail_with_run "/sys is not mounted ro,nosuid,nodev,noexec"
}
# Docker's masked paths (common/src/masks.rs) that this kernel has read as
# nothing inside; its read-only paths are read-only mounts.
masked_and_read_only() {
    masked=
    for p in /proc/acpi /proc/asound /proc/interrupts /proc/kcore /proc/keys /proc/latency_stats \
        /proc/sched_debug /proc/scsi /proc/timer_list /proc/timer_stats /sys/devices/virtual/powercap \
        /sys/firmware /sys/devices/system/cpu/cpu*/thermal_throttle; do
        [ -e "$p" ] && masked="$masked $p"
    done
    [ -n "$masked" ] || { echo "this host has none of the masked paths"; return 1; }
    run "$@" -- sh -c 'for p in "$@"; do
            if [ -d "$p" ]; then echo "$p $(ls -A "$p" | wc -l)"; else echo "$p $(cat "$p" 2>/dev/null | wc -c)"; fi
        done; cat /proc/self/mountinfo' sh $masked
    [ "$rc" = 0 ] || { fail_with_run "the run failed"; return 1; }
    for p in $masked; do
        grep -qx "$p 0" "$out" || { fail_with_run "$p is not masked"; return 1; }
    done
    for p in /proc/bus /proc/fs /proc/irq /proc/sys /proc/sysrq-trigger; do
        [ -e "$p" ] || continue
        awk -v p="$p" '$5 == p' "$out" | grep -q " $p ro," || { fail_with_run "$p is not a read-only mount"; return 1; }
    done
}
# chmod 777 /dev/null inside: the host's /dev/null keeps its mode (put back
# if not, before failing).
chmod_dev_null() {
    before=$(stat -c %a /dev/null)
    run "$@" -- sh -c 'chmod 777 /dev/null; stat -c %a /dev/null'
    after=$(stat -c %a /dev/null)
    [ "$after" = "$before" ] || { chmod "$before" /dev/null; fail_with_run "the host's /dev/null became $after"; return 1; }
    case "$*" in
    *--userns=host*) grep -qx 777 "$out" || fail_with_run "the container's own /dev/null did not change inside" ;;
    esac
}
# An image whose /proc is a symlink to /etc is refused, and nothing is
# mounted on the host's /etc.
symlinked_proc_refused() {
    rootfs=$images/dfs-proc-symlink/rootfs
    mkdir -p "$rootfs/sys" "$rootfs/dev" "$rootfs/bin"
    [ -L "$rootfs/proc" ] || ln -s /etc "$rootfs/proc"
    run --image dfs-proc-symlink "$@" -- true
    [ "$rc" = 125 ] || { fail_with_run "expected exit status 125, got $rc"; return 1; }
    grep -q "the image's /proc is a symlink (to /etc)" "$err" || { fail_with_run "expected the symlink named"; return 1; }
    ! awk '$5 == "/etc"' /proc/self/mountinfo | grep -q . || fail_with_run "the host's /etc is mounted over"
}
check_filesystem_reach() {
    for mode in "" --userns=host; do
        check "${mode:-user namespace}: writing core_pattern and /sys fails; /sys is ro,nosuid,nodev,noexec" \
            proc_sys_and_sys_read_only $mode
        check "${mode:-user namespace}: Docker's masked paths read as nothing; its read-only paths are ro" \
            masked_and_read_only $mode
        check "${mode:-user namespace}: chmod 777 /dev/null inside leaves the host's /dev/null alone" \
            chmod_dev_null $mode
        check "${mode:-user namespace}: an image whose /proc is a symlink to /etc is refused (125)" \
            symlinked_proc_refused $mode
    done
}

# What steps 07 to 09 all prove: step06's process namespaces, plus the user
# namespace (and nothing can be mounted inside any more), and what the
# container can reach through the filesystem.
checks_from_step07() {
    check_basics pid1
    check_image_root
    check_mount_ns no-mount
    check_breakout CONTAINED
    check_process_namespaces
    check_user_namespace
    check_session
    check_ipc_and_net userns
    check_filesystem_reach
}

check_step07() {
    need_image
    checks_from_step07
    check_layers 1000
    check_nothing_left
}

cgroup_v2() { [ -f /sys/fs/cgroup/cgroup.controllers ]; }
# cgroup_dir CONTROLLER: the container's cgroup directory, from the host's
# view of /proc/$init/cgroup.
cgroup_dir() {
    if cgroup_v2; then
        echo "/sys/fs/cgroup$(sed -n 's/^0:://p' "/proc/$init/cgroup")"
    else
        echo "/sys/fs/cgroup/$1$(sed -n "s/^[0-9]*:$1:\\(.*\\)/\\1/p" "/proc/$init/cgroup")"
    fi
}
# expect_file PATH VALUE
expect_file() {
    got=$(cat "$1" 2>&1)
    [ "$got" = "$2" ] || { echo "$1: expected '$2', got '$got'"; return 1; }
}
limits_land() {
    start_sleeper -m 64m --memory-swap 128m --cpus 1.5 --cpu-shares 512 --pids-limit 20 || return 1
    problems=0
    if cgroup_v2; then
        dir=$(cgroup_dir)
        expect_file "$dir/memory.max" 67108864 || problems=1
        expect_file "$dir/memory.swap.max" 67108864 || problems=1
        expect_file "$dir/cpu.weight" 20 || problems=1
        expect_file "$dir/cpu.max" "150000 100000" || problems=1
        expect_file "$dir/pids.max" 20 || problems=1
        for c in memory cpu pids; do
            grep -qw "$c" "$(dirname "$dir")/cgroup.subtree_control" ||
                { echo "$c is not enabled in $(dirname "$dir")/cgroup.subtree_control"; problems=1; }
        done
    else
        expect_file "$(cgroup_dir memory)/memory.limit_in_bytes" 67108864 || problems=1
        expect_file "$(cgroup_dir memory)/memory.memsw.limit_in_bytes" 134217728 || problems=1
        expect_file "$(cgroup_dir cpu)/cpu.shares" 512 || problems=1
        expect_file "$(cgroup_dir cpu)/cpu.cfs_quota_us" 150000 || problems=1
        expect_file "$(cgroup_dir cpu)/cpu.cfs_period_us" 100000 || problems=1
        expect_file "$(cgroup_dir pids)/pids.max" 20 || problems=1
    fi
    stop_sleeper
    [ "$problems" = 0 ]
}
cgroup_is_root_inside() {
    run -- cat /proc/self/cgroup
    [ "$rc" = 0 ] || { fail_with_run "cat failed"; return 1; }
    ! grep -qv ':/$' "$out" || fail_with_run "a line is not '/'"
}
# /sys/fs/cgroup inside is the container's own cgroup, read-only: the -m
# limit shows, and writing it fails.
cgroupfs_read_only() {
    if cgroup_v2; then file=/sys/fs/cgroup/memory.max; else file=/sys/fs/cgroup/memory/memory.limit_in_bytes; fi
    run "$@" -m 64m -- sh -c "cat $file; echo 1 > $file && echo WRITTEN; exit 0"
    [ "$rc" = 0 ] || { fail_with_run "the run failed"; return 1; }
    [ "$(sed -n 1p "$out")" = 67108864 ] || { fail_with_run "expected 67108864 in $file"; return 1; }
    ! grep -q WRITTEN "$out" || { fail_with_run "$file was written from inside"; return 1; }
    grep -q 'Read-only file system' "$err" || fail_with_run "expected EROFS"
}
pids_limited() {
    run --pids-limit 5 -- sh -c 'for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait'
    grep -qi "fork" "$err" || fail_with_run "expected a failed fork"
}
# The last container out also removes the project's parent cgroup, so nothing
# named docker-from-scratch is left in any hierarchy. Containers of someone
# else's may be running on this machine: a cgroup with processes in it is
# theirs, and so is the parent above it; what counts as left behind is an
# empty container cgroup, or an empty parent, still there a second later.
leftover_cgroups() {
    for parent in /sys/fs/cgroup/docker-from-scratch /sys/fs/cgroup/*/docker-from-scratch; do
        [ -d "$parent" ] || continue
        busy=
        for cgroup in "$parent"/*/; do
            [ -d "$cgroup" ] || continue
            if [ -n "$(cat "$cgroup/cgroup.procs" 2>/dev/null)" ]; then busy=1; else echo "$cgroup"; fi
        done
        [ -n "$busy" ] || echo "$parent"
    done
}
# cgroup v2: the container's first process is born in its cgroup (clone3's
# CLONE_INTO_CGROUP), never in the runtime's, as the kernel's pids
# controller shows: the runtime runs in a cgroup of its own whose pids.max
# is 1 (itself), so a child made there first and moved afterwards (clone(2),
# then cgroup.procs) would be refused (EAGAIN) and counted in pids.events.
# With `oci`, the same for `create` (then start, and delete).
# The parent is made and removed under the lock the steps take
# (common::cgroup::lock_parent) where there is flock(1); busybox (the VM's)
# has none, and there nothing else runs a container meanwhile.
cgroup_locked() {
    if command -v flock >/dev/null; then flock /sys/fs/cgroup "$@"; else "$@"; fi
}
born_in_its_cgroup() {
    parent=/sys/fs/cgroup/docker-from-scratch
    own=$parent/run-all-born-$$
    cgroup_locked sh -c "mkdir -p $parent && echo +pids >$parent/cgroup.subtree_control && mkdir $own" || return 1
    echo 1 >"$own/pids.max" || return 1
    in_own() { sh -c 'echo 0 >"$1/cgroup.procs" && shift && exec "$@"' sh "$own" "$@"; }
    out=$log/out err=$log/err
    if [ "${1:-}" = oci ]; then
        bundle=$work/bundle-born
        rm -rf "$bundle"
        mkdir -p "$bundle"
        ln -s "$images/busybox/rootfs" "$bundle/rootfs"
        oci spec --bundle "$bundle" -- cat /proc/self/cgroup || return 1
        ran="(in a cgroup with pids.max 1) $step --root $work/oci create --bundle $bundle dfs-run-all-born"
        in_own "$BIN_DIR/$step" --root "$work/oci" create --bundle "$bundle" dfs-run-all-born </dev/null >"$out" 2>"$err"
        rc=$?
        [ "$rc" != 0 ] || { oci start dfs-run-all-born && sleep 0.2 && oci delete --force dfs-run-all-born; } >>"$out" 2>>"$err"
    else
        ran="(in a cgroup with pids.max 1) $step run ... -- cat /proc/self/cgroup"
        in_own "$BIN_DIR/$step" run --image-dir "$images" --container-dir "$containers" -- cat /proc/self/cgroup \
            </dev/null >"$out" 2>"$err"
        rc=$?
    fi
    refused=$(sed -n 's/^max //p' "$own/pids.events")
    rmdir "$own"
    cgroup_locked rmdir "$parent" 2>/dev/null
    [ "$rc" = 0 ] || { fail_with_run "expected exit 0 (was the child made in the runtime's cgroup?)"; return 1; }
    [ "$refused" = 0 ] || { fail_with_run "pids.events of the runtime's cgroup: max $refused (a fork was refused there)"; return 1; }
    [ "${1:-}" = oci ] || grep -qx '0::/' "$out" || fail_with_run "expected 0::/ (its own cgroup, seen from inside)"
}
no_cgroups_left() {
    tries=0
    while left=$(leftover_cgroups) && [ -n "$left" ] && [ "$tries" -lt 50 ]; do
        sleep 0.1
        tries=$((tries + 1))
    done
    [ -z "$left" ] || { echo "cgroups left: $left"; return 1; }
}
# From step08: a node for a host device that the container makes itself
# (it has CAP_MKNOD with --userns=host) cannot be opened: /dev/kmsg (c 1:11,
# for writing, which needs no CAP_SYSLOG) and a loop disk (b 7:0). v1: the
# devices controller; v2: an eBPF program.
device_allowlist() {
    run --userns=host -- sh -c 'mknod /dev/dfs-kmsg c 1 11 && echo MKNOD && (: > /dev/dfs-kmsg) && echo OPENED
        mknod /dev/dfs-loop b 7 0 && echo MKNOD && (: < /dev/dfs-loop) && echo OPENED
        (: < /dev/null) && echo NULL-OPENED'
    [ "$(grep -c '^MKNOD$' "$out")" = 2 ] || { fail_with_run "mknod failed, so the open was not tried"; return 1; }
    ! grep -qx OPENED "$out" || { fail_with_run "a host device was opened"; return 1; }
    grep -qx NULL-OPENED "$out" || { fail_with_run "/dev/null could not be opened"; return 1; }
    [ "$(grep -c 'Operation not permitted' "$err")" = 2 ] || fail_with_run "expected EPERM for both"
}
check_cgroups() {
    check "the limits land in the cgroup's files ($(cgroup_v2 && echo v2 || echo v1))" limits_land
    check "/proc/self/cgroup shows / inside (cgroup namespace)" cgroup_is_root_inside
    check "/sys/fs/cgroup shows the -m 64m limit, read-only ($(cgroup_v2 && echo v2 || echo v1))" cgroupfs_read_only
    check "the same with --userns=host" cgroupfs_read_only --userns=host
    check "--pids-limit 5 stops the sixth process" pids_limited
    check "--userns=host: a host device made inside (c 1:11, b 7:0) cannot be opened ($(cgroup_v2 && echo v2 eBPF || echo v1 devices))" \
        device_allowlist
    if cgroup_v2; then
        check "cgroup v2: the child is born in its cgroup (clone3 CLONE_INTO_CGROUP; the runtime's own cgroup allows 1 process)" born_in_its_cgroup
    fi
    check "no cgroup is left (neither the container's nor the parent)" no_cgroups_left
}

check_step08() {
    need_image
    checks_from_step07
    check_cgroups
    check_nothing_left
}

oom_is_reported() {
    run --memory 32m -- memhog 64m
    [ "$rc" = 137 ] || { fail_with_run "expected exit status 137, got $rc"; return 1; }
    tail -n 1 "$err" | grep -q 'was killed by the OOM killer: memory limit 32.0 MiB, peak usage' ||
        fail_with_run "expected the OOM verdict as the last line"
}
kill_is_not_oom() {
    killed_from_host 137 'was killed by signal 9 (SIGKILL)' --memory 64m || return 1
    ! grep -q 'OOM' "$err" || fail_with_run "a kill -9 was reported as OOM"
}
oom_kill_disable() {
    if cgroup_v2; then
        run --oom-kill-disable -- true
        [ "$rc" = 125 ] && grep -q 'needs cgroup v1' "$err" || fail_with_run "expected the cgroup v2 error, 125"
    else
        expect_status 0 --oom-kill-disable --memory 64m -- true
    fi
}
# step09: an OOM kill is reported as such, and only then.
check_oom() {
    check "own cgroup namespace (/proc/self/ns/cgroup)" own_namespaces cgroup
    check "--memory 32m -- memhog 64m: OOM-killed, 137, reported as such" oom_is_reported
    check "--memory 64m -- memhog 16m: exit 0" expect_status 0 --memory 64m -- memhog 16m
    check "--ulimit as=32m -- memhog 64m: the allocation fails inside, exit 1" expect_status 1 --ulimit as=32m -- memhog 64m
    check "a kill -9 from the host is not reported as OOM" kill_is_not_oom
    check "--oom-score-adj 500 lands in /proc/self/oom_score_adj" expect_line 500 --oom-score-adj 500 -- cat /proc/self/oom_score_adj
    check "--oom-kill-disable: works on v1, a clear error on v2" oom_kill_disable
}
check_step09() {
    need_image
    checks_from_step07
    check_cgroups
    check_oom
    check_layers 1000
    check_nothing_left
}

# step10: the OCI lifecycle, as an engine drives it (scripts/oci-engines.sh
# runs it under podman and containerd themselves).
oci() {
    "$BIN_DIR/$step" --root "$work/oci" "$@"
}
oci_lifecycle() {
    bundle=$work/bundle
    rm -rf "$bundle"
    mkdir -p "$bundle"
    ln -s "$images/busybox/rootfs" "$bundle/rootfs"
    # Long enough to outlast `oci start` and `oci state` on a slow machine (the
    # v2 VM is software-emulated): 0.3 s was over before `state` looked.
    oci spec --bundle "$bundle" -- sleep 2 || return 1
    # create's stdio becomes the container's: not this script's pipes.
    oci create --bundle "$bundle" --pid-file "$work/oci.pid" dfs-run-all </dev/null >/dev/null 2>"$log/err" ||
        { cat "$log/err"; return 1; }
    pid=$(cat "$work/oci.pid")
    oci state dfs-run-all | grep -q '"status": "created"' || { echo "not created"; return 1; }
    # Stopped in front of the exec fifo: still the runtime's program.
    [ "$(readlink "/proc/$pid/exe")" = "$(readlink -f "$BIN_DIR/$step")" ] || { echo "exec'd before start"; return 1; }
    oci start dfs-run-all || return 1
    oci_status=$(oci state dfs-run-all | grep '"status"')
    case "$oci_status" in *'"running"'*) ;; *) echo "not running after start: $oci_status"; return 1 ;; esac
    tries=0
    while ! oci state dfs-run-all | grep -q '"status": "stopped"'; do
        tries=$((tries + 1))
        [ "$tries" -lt 100 ] || { echo "never stopped"; return 1; }
        sleep 0.1
    done
    oci delete dfs-run-all || return 1
    [ ! -e "$work/oci/dfs-run-all" ] || { echo "state left behind"; return 1; }
    ! ls -d /sys/fs/cgroup/*/docker-from-scratch/dfs-run-all /sys/fs/cgroup/docker-from-scratch/dfs-run-all 2>/dev/null
}
# pause/resume: the freezer (freezer.state on v1, cgroup.freeze on v2), as
# `state` and the kernel's own file say.
oci_pause() {
    bundle=$work/bundle-pause
    rm -rf "$bundle"
    mkdir -p "$bundle"
    ln -s "$images/busybox/rootfs" "$bundle/rootfs"
    oci spec --bundle "$bundle" -- sleep 100 || return 1
    oci create --bundle "$bundle" dfs-run-all-pause </dev/null >/dev/null 2>"$log/err" || { cat "$log/err"; return 1; }
    oci start dfs-run-all-pause && oci pause dfs-run-all-pause || return 1
    oci state dfs-run-all-pause | grep -q '"status": "paused"' || { echo "not paused"; return 1; }
    frozen=$(cat /sys/fs/cgroup/freezer/docker-from-scratch/dfs-run-all-pause/freezer.state \
        /sys/fs/cgroup/docker-from-scratch/dfs-run-all-pause/cgroup.freeze 2>/dev/null)
    case "$frozen" in FROZEN | 1) ;; *) echo "the cgroup is not frozen: $frozen"; return 1 ;; esac
    oci resume dfs-run-all-pause || return 1
    oci state dfs-run-all-pause | grep -q '"status": "running"' || { echo "not running after resume"; return 1; }
    oci delete --force dfs-run-all-pause && [ ! -e "$work/oci/dfs-run-all-pause" ]
}
oci_bad_bundle() {
    ! oci create --bundle "$work/no-such-bundle" dfs-run-all-bad </dev/null >/dev/null 2>"$log/err" &&
        [ "$(wc -l <"$log/err")" = 1 ] && [ ! -e "$work/oci/dfs-run-all-bad" ]
}
check_step10() {
    check_step09
    check "OCI: create stops before exec, start runs, delete leaves nothing" oci_lifecycle
    check "OCI: pause freezes the cgroup, resume thaws it" oci_pause
    check "OCI: a bad bundle is one line, and nothing is left" oci_bad_bundle
    if cgroup_v2; then
        check "OCI: cgroup v2: create's init is born in its cgroup (the runtime's own cgroup allows 1 process)" born_in_its_cgroup oci
    fi
}

# --- main ---------------------------------------------------------------------------

write_probe_script
started=$(now)
for step in $selected; do
    begun=$(now)
    if check "the binary is built" test -x "$BIN_DIR/$step"; then
        "check_${step%%-*}"
    fi
    took=$(($(now) - begun))
    echo "TIME $step: $((took / 100)).$((took / 10 % 10))s"
done
took=$(($(now) - started))
echo "TIME all: $((took / 100)).$((took / 10 % 10))s"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
