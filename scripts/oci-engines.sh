#!/bin/sh
# Run step10-oci under real container engines, with real exit codes: podman
# (through conmon) and containerd (through its runc shim, driven by ctr).
#
# Usage:   sudo scripts/oci-engines.sh [podman] [containerd]   (default: both)
# Output:  one line per check, `PASS podman: run --rm prints and exits 0` or
#          `FAIL ...` with the output indented, then `N passed, M failed`.
#          Exits 1 when anything failed.
# Set-up:  podman, conmon and containerd are installed with apt-get when
#          missing (Debian 12: podman 4.3, conmon 2.1, containerd 1.6).
#
# Environment:
#   BIN_DIR  directory with prebuilt step10-oci and build-busybox-image;
#            when unset, this script builds them (cargo build --release)
#   RUNTIME  the OCI runtime to check (default: BIN_DIR/step10-oci); set
#            RUNTIME=/usr/sbin/runc to see the same checks pass with runc
#
# Nothing of the machine's own podman or containerd is used or changed:
# everything lives in a temporary directory, removed at the end. podman gets
# its own storage (vfs), run root and containers.conf (CONTAINERS_CONF);
# containerd runs as a private daemon on its own socket, root and state,
# without its CRI plugin. Notes for hosts like this one (a container, no
# systemd): cgroup_manager = "cgroupfs"; podman's default ulimits (nofile and
# nproc 1048576) cannot be raised where root's hard limits are lower, so
# default_ulimits stay within the caller's; --network none avoids CNI.
# Every container's cgroup goes under docker-from-scratch/ (podman's
# --cgroup-parent, ctr's --cgroup ""), never under the caller's cgroup.

set -u

repo=$(cd "$(dirname "$0")/.." && pwd)
say() { echo "oci-engines: $*" >&2; }

engines=${*:-podman containerd}
for engine in $engines; do
    case "$engine" in
    podman | containerd) ;;
    -h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) say "unknown engine $engine (podman, containerd)"; exit 2 ;;
    esac
done

if [ "$(id -u)" != 0 ]; then
    say "must run as root: engines and the runtime make namespaces and cgroups (sudo $0)"
    exit 1
fi

# --- what is needed -----------------------------------------------------------

missing=
for tool in podman conmon containerd ctr script; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
    say "installing podman conmon containerd (missing:$missing)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends podman conmon containerd bsdutils >&2 ||
        { say "apt-get install failed"; exit 1; }
fi

if [ -z "${BIN_DIR:-}" ]; then
    (cd "$repo" && cargo build --quiet --release -p step10-oci -p common --bin step10-oci --bin build-busybox-image) ||
        { say "cargo build failed"; exit 1; }
    BIN_DIR=${CARGO_TARGET_DIR:-$repo/target}/$(rustc --print host-tuple)/release
fi
RUNTIME=${RUNTIME:-$BIN_DIR/step10-oci}
[ -x "$RUNTIME" ] || { say "no runtime at $RUNTIME"; exit 1; }

work=$(mktemp -d /tmp/oci-engines.XXXXXX)
daemon=
cleanup() {
    if [ -n "${podman:-}" ]; then
        $podman rm --all --force --time 0 >/dev/null 2>&1
    fi
    if [ -n "$daemon" ]; then
        kill "$daemon" 2>/dev/null
        wait "$daemon" 2>/dev/null
    fi
    # podman makes a cgroup for conmon under the --cgroup-parent; the
    # containers' own are gone with `delete`. Empty ones only (rmdir).
    for hierarchy in /sys/fs/cgroup /sys/fs/cgroup/*; do
        for dir in docker-from-scratch/podman/conmon docker-from-scratch/podman docker-from-scratch; do
            [ -d "$hierarchy/$dir" ] && rmdir "$hierarchy/$dir" 2>/dev/null
        done
    done
    umount -R "$work" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0
failed=0
engine=

# check DESCRIPTION COMMAND...: runs COMMAND, prints PASS or FAIL (with its
# output indented) and counts.
check() {
    description=$1
    shift
    if "$@" >"$work/check" 2>&1; then
        passed=$((passed + 1))
        echo "PASS $engine: $description"
        return 0
    fi
    failed=$((failed + 1))
    echo "FAIL $engine: $description"
    sed 's/^/    /' "$work/check"
    return 1
}

# expect CODE COMMAND...: COMMAND's exit status is CODE; its output is kept in $work/out.
expect() {
    want=$1
    shift
    "$@" >"$work/out" 2>&1
    rc=$?
    cat "$work/out"
    [ "$rc" = "$want" ] || { echo "exit status $rc, expected $want: $*"; return 1; }
}

# has TEXT: the last command's output contains TEXT.
has() {
    grep -q -- "$1" "$work/out" || { echo "expected \"$1\" in the output"; return 1; }
}

# in_pty COMMAND: runs the shell command COMMAND in a new pseudo-terminal
# (script(1)), as `-it` needs one, and exits with its status.
in_pty() {
    script -qec "$1" /dev/null </dev/null
}

"$BIN_DIR/build-busybox-image" "$work/busybox.tar" >/dev/null || { say "cannot build the busybox image"; exit 1; }

# --- podman, through conmon ----------------------------------------------------

podman_run() { expect 0 $podman run --rm $options $image echo hello-from-step10 && has hello-from-step10; }
podman_info() { expect 0 $podman info --format '{{.Host.OCIRuntime.Path}}' && has "$RUNTIME"; }
podman_running() {
    expect 0 $podman ps --filter "id=$id" --format '{{.Status}}' && has '^Up' &&
        expect 0 "$RUNTIME" state "$id" && has '"status": "running"'
}
podman_exec() { expect 7 $podman exec "$id" sh -c 'echo exec-here; exit 7' && has exec-here; }
podman_exec_it() { expect 0 in_pty "$podman exec -it $id tty" && has /dev/pts/; }
podman_pause() { expect 0 $podman pause "$id" && expect 0 "$RUNTIME" state "$id" && has '"status": "paused"'; }
podman_unpause() { expect 0 $podman unpause "$id" && expect 0 "$RUNTIME" state "$id" && has '"status": "running"'; }
podman_stop_rm() {
    expect 0 $podman stop --time 1 "$id" && expect 0 $podman rm "$id" &&
        ! "$RUNTIME" state "$id" 2>/dev/null && test ! -e "/run/docker-from-scratch-oci/$id"
}
podman_kill() { expect 0 $podman kill "$id" && expect 0 $podman wait "$id" && has 137; }
podman_kill_term() {
    id=$($podman run -d $options $image sh -c 'trap "exit 143" TERM; while :; do sleep 0.1; done') &&
        sleep 1 && expect 0 $podman kill --signal TERM "$id" && expect 0 $podman wait "$id" && has 143
}
# A command that prints and exits at once can be done before podman has
# attached to its terminal, and its output is lost (with runc too): it waits.
podman_run_it() { expect 5 in_pty "$podman run --rm -it $options $image sh -c 'sleep 0.5; tty; exit 5'" && has /dev/pts/0; }
podman_memory() {
    expect 0 $podman run --rm $options --memory 64m $image \
        sh -c 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max' &&
        has 67108864
}
podman_read_only() { expect 1 $podman run --rm $options --read-only $image touch /x && has 'Read-only file system'; }
podman_user() {
    expect 0 $podman run --rm $options --user 1000:1000 --cap-drop all $image sh -c 'id; grep CapEff /proc/self/status' &&
        has uid=1000 && has 0000000000000000
}
podman_volume() {
    mkdir -p "$work/volume" && echo from-the-host >"$work/volume/file" &&
        expect 0 $podman run --rm $options -v "$work/volume:/data:ro" --tmpfs /scratch:size=1m $image \
            sh -c 'cat /data/file; touch /data/x; grep " /scratch " /proc/self/mountinfo' &&
        has from-the-host && has 'Read-only file system' && has 'tmpfs.*size=1024k'
}
podman_privileged() {
    expect 0 $podman run --rm $options --privileged $image grep -E 'CapEff|Seccomp:' /proc/self/status &&
        has "$(grep CapBnd /proc/self/status | cut -f2)" && has 'Seccomp:.0'
}
podman_seccomp() { expect 0 $podman run --rm $options $image grep Seccomp: /proc/self/status && has 2; }

check_podman() {
    engine=podman
    {
        echo '[containers]'
        echo 'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]'
        echo 'netns = "none"'
        echo '[engine]'
        echo 'cgroup_manager = "cgroupfs"'
        echo 'events_logger = "file"'
        echo 'runtime = "step10"'
        echo '[engine.runtimes]'
        echo "step10 = [\"$RUNTIME\"]"
    } >"$work/containers.conf"
    export CONTAINERS_CONF="$work/containers.conf"
    podman="podman --root $work/podman --runroot $work/podman-run --storage-driver vfs"
    options="--network none --cgroup-parent /docker-from-scratch/podman"
    image=localhost/busybox:dfs
    check "podman import of the busybox image" expect 0 $podman import "$work/busybox.tar" $image
    check "run --rm prints and exits 0" podman_run
    check "run: the exit status is propagated (42)" expect 42 $podman run --rm $options $image sh -c 'exit 42'
    check "the engine's runtime is the one checked" podman_info
    id=$($podman run -d $options $image sleep 1000)
    check "run -d: the container runs (podman ps, runtime state)" podman_running
    check "exec: output, exit status 7" podman_exec
    check "exec -it: a terminal of its own" podman_exec_it
    check "pause: the runtime says paused" podman_pause
    check "unpause: running again" podman_unpause
    check "stop + rm: gone, and the runtime's state too" podman_stop_rm
    id=$($podman run -d $options $image sleep 1000)
    check "kill: the container ends with 137 (SIGKILL)" podman_kill
    check "kill --signal TERM to a shell that traps it: 143" podman_kill_term
    $podman rm --all --force --time 0 >/dev/null 2>&1
    check "run -it: a terminal, exit status 5" podman_run_it
    check "run --memory 64m: the limit in the container's cgroup" podman_memory
    check "run --read-only: / cannot be written" podman_read_only
    check "run --user 1000:1000 --cap-drop all" podman_user
    check "run: podman's seccomp profile is loaded" podman_seccomp
    check "run -v DIR:/data:ro --tmpfs: bind mount read-only, tmpfs with its size" podman_volume
    check "run --privileged: every capability the host has, no seccomp" podman_privileged
    unset CONTAINERS_CONF
}

# --- containerd, through its runc shim ------------------------------------------

ctr_run_rm() { expect 3 $run --rm $image c1 sh -c 'echo hello-from-ctr; exit 3' && has hello-from-ctr; }
ctr_run_d() { expect 0 $run -d $image c2 sleep 1000 && expect 0 $ctr task ls && has 'c2.*RUNNING'; }
ctr_exec() { expect 4 $ctr task exec --exec-id e1 c2 sh -c 'echo exec-in-ctr; exit 4' && has exec-in-ctr; }
ctr_exec_t() { expect 0 in_pty "$ctr task exec -t --exec-id e2 c2 tty" && has /dev/pts/; }
ctr_pause() {
    expect 0 $ctr task pause c2 && expect 0 $ctr task ls && has 'c2.*PAUSED' &&
        expect 0 $ctr task resume c2 && expect 0 $ctr task ls && has 'c2.*RUNNING'
}
ctr_kill() { expect 0 $ctr task kill -s SIGKILL c2 && sleep 1 && expect 0 $ctr task ls && has 'c2.*STOPPED'; }
ctr_rm() { expect 0 $ctr task rm c2 && expect 0 $ctr container rm c2 && test ! -e /run/containerd/runc/default/c2; }
ctr_run_t() { expect 2 in_pty "$run --rm -t $image c3 sh -c 'sleep 0.5; tty; exit 2'" && has /dev/pts/0; }

check_containerd() {
    engine=containerd
    {
        echo 'version = 2'
        echo "root = \"$work/containerd\""
        echo "state = \"$work/containerd-state\""
        echo 'disabled_plugins = ["io.containerd.grpc.v1.cri"]'
        echo '[grpc]'
        echo "  address = \"$work/containerd.sock\""
    } >"$work/containerd.toml"
    containerd --config "$work/containerd.toml" >"$work/containerd.log" 2>&1 &
    daemon=$!
    ctr="ctr --address $work/containerd.sock"
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        $ctr version >/dev/null 2>&1 && break
        sleep 0.5
    done
    # ctr imports image archives, not root filesystems: podman writes one.
    pod="podman --root $work/podman --runroot $work/podman-run --storage-driver vfs"
    archive=$work/busybox-archive.tar
    $pod image exists localhost/busybox:dfs || $pod import "$work/busybox.tar" localhost/busybox:dfs >/dev/null
    $pod save --format docker-archive -o "$archive" localhost/busybox:dfs >/dev/null 2>&1
    image=localhost/busybox:dfs
    check "ctr images import" expect 0 $ctr images import --snapshotter native "$archive"
    run="$ctr run --snapshotter native --runc-binary $RUNTIME --cgroup="
    check "ctr run --rm: output, exit status 3" ctr_run_rm
    check "ctr run -d: the task runs" ctr_run_d
    check "ctr task exec: output, exit status 4" ctr_exec
    check "ctr task exec -t: a terminal" ctr_exec_t
    check "ctr task pause / resume" ctr_pause
    check "ctr task kill -s SIGKILL: stopped" ctr_kill
    check "ctr task rm, container rm: gone, runtime state too" ctr_rm
    check "ctr run --rm -t: a terminal, exit status 2" ctr_run_t
}

for engine in $engines; do
    "check_$engine"
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
