#!/bin/bash
# Compare how long step09-oom takes to start and end a container with runc,
# side by side in one hyperfine run, and print the ratio.
#
# Usage:   sudo scripts/bench.sh
# Output:  hyperfine's progress and summary, its table in markdown, and a last
#          line `step09-oom / runc = 0.31 (step09-oom is 3.2x faster than runc)`.
#
# Environment:
#   BIN_DIR  directory with prebuilt step binaries; when unset, this script runs
#            `cargo build --release -p step09-oom -p step05-overlay`
#   RUNS     hyperfine --runs (default 50)
#   WARMUP   hyperfine --warmup (default 5)
#   MEMORY   the memory limit given to step09-oom and to runc (default 64m)
#
# Every contender runs /bin/true from the same busybox rootfs:
#   step09-oom     user namespace (0:100000:65536, idmapped image), pid, uts,
#                  ipc, net, mount and cgroup namespaces, overlay root,
#                  pivot_root, Docker's capabilities and seccomp profile,
#                  masked paths, a cgroup with a memory limit (no_new_privs
#                  off, as Docker's default)
#   step05-overlay overlay root and pivot_root in a mount namespace only: what
#                  the later steps (more namespaces, user ns, cgroups) cost
#   runc           an OCI bundle with the same namespaces, uid/gid maps,
#                  capabilities, no_new_privs and memory limit (runc 1.1 has no
#                  idmapped mounts: its rootfs is a copy chowned to 100000)
#   bwrap          bubblewrap --unshare-all on a read-only bind of the image:
#                  no cgroup, no overlay; a lower bound for "a process in new
#                  namespaces"
# Speed is only ever measured here, side by side, never by timed tests.
#
# Everything it creates (a temporary state directory with the image, the
# containers, the runc bundle and runc's state; runc's cgroup) is removed on
# exit, even on failure or Ctrl-C.

set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-50}
WARMUP=${WARMUP:-5}
MEMORY=${MEMORY:-64m}
# runc's cgroup for each container, one at a time (the containers run one
# after the other): set explicitly so runc never lands in our own cgroup.
RUNC_CGROUP=docker-from-scratch-bench

say() { echo "bench: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
    say "must run as root: the runtimes mount filesystems and create namespaces (sudo $0)"
    exit 1
fi

# --- tools --------------------------------------------------------------------

missing=()
command -v hyperfine >/dev/null || missing+=(hyperfine)
command -v runc >/dev/null || missing+=(runc)
command -v bwrap >/dev/null || missing+=(bubblewrap)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq "${missing[@]}" >&2
fi
command -v python3 >/dev/null || { say "python3 is needed to edit runc's config.json"; exit 1; }

# --- the binaries -------------------------------------------------------------

if [ -z "${BIN_DIR:-}" ]; then
    command -v cargo >/dev/null || {
        say "cargo not found on root's PATH: build as yourself with"
        say "  cargo build --release -p step09-oom -p step05-overlay"
        say "then run: sudo BIN_DIR=target/release $0"
        exit 1
    }
    say "cargo build --release -p step09-oom -p step05-overlay"
    (cd "$repo" && cargo build --release -p step09-oom -p step05-overlay) >&2
    BIN_DIR=${CARGO_TARGET_DIR:-$repo/target}/release
fi
BIN_DIR=$(cd "$BIN_DIR" && pwd)
for step in step09-oom step05-overlay; do
    [ -x "$BIN_DIR/$step" ] || { say "no $BIN_DIR/$step: build it or fix BIN_DIR"; exit 1; }
done

# --- state, and cleaning it up ------------------------------------------------

S=$(mktemp -d /tmp/bench.XXXXXX)
# 711: root in the container is uid 100000 outside and must traverse it.
chmod 711 "$S"
bundle=$S/bundle
runc_root=$S/runc-state
parents_before=$(ls -d /sys/fs/cgroup/docker-from-scratch /sys/fs/cgroup/*/docker-from-scratch 2>/dev/null || true)

hyperfine_pid=
cleanup() {
    local status=$? id dir
    trap - EXIT INT TERM
    # Stop hyperfine and the run in progress (its own process group), and let
    # that run clean up after itself: step09 and runc forward SIGTERM to the
    # container and remove it.
    if [ -n "$hyperfine_pid" ]; then
        kill -TERM -- "-$hyperfine_pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 -- "-$hyperfine_pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    # runc containers left by an interrupted run (normally `runc run` deletes its own).
    if [ -d "$runc_root" ]; then
        for id in $(runc --root "$runc_root" list -q 2>/dev/null); do
            runc --root "$runc_root" delete -f "$id" >/dev/null 2>&1 || true
        done
    fi
    rmdir /sys/fs/cgroup/$RUNC_CGROUP /sys/fs/cgroup/*/$RUNC_CGROUP 2>/dev/null || true
    # A step09 container killed mid-run leaves its directory, and maybe its cgroup.
    for dir in "$S"/containers/*/; do
        [ -d "$dir" ] || continue
        id=$(basename "$dir")
        umount -R "$dir/merged" 2>/dev/null || true
        umount "$dir/lower" 2>/dev/null || true
        rmdir /sys/fs/cgroup/docker-from-scratch/"$id" /sys/fs/cgroup/*/docker-from-scratch/"$id" 2>/dev/null || true
    done
    # The shared parent cgroup, only if this script made it: rmdir fails while
    # any container uses it, and flock takes the lock step09 takes
    # (common::cgroup::lock_parent) so that it never races a starting container.
    for dir in /sys/fs/cgroup/docker-from-scratch /sys/fs/cgroup/*/docker-from-scratch; do
        [ -d "$dir" ] || continue
        case "$parents_before" in *"$dir"*) ;; *) flock /sys/fs/cgroup rmdir "$dir" 2>/dev/null || true ;; esac
    done
    rm -rf --one-file-system "$S"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the image, for everyone --------------------------------------------------

say "building the busybox image in $S/images"
"$BIN_DIR/step09-oom" run --image-dir "$S/images" --container-dir "$S/containers" -- true 2>/dev/null || {
    say "step09-oom could not run a container here; its own error:"
    "$BIN_DIR/step09-oom" run --image-dir "$S/images" --container-dir "$S/containers" -- true
    exit 1
}
# The busybox image's one layer (images/busybox/rootfs links to it).
rootfs=$(readlink -f "$S/images/busybox/rootfs")

# --- the OCI bundle for runc --------------------------------------------------

mkdir -p "$bundle" "$runc_root"
cp -a "$rootfs" "$bundle/rootfs"
(cd "$bundle" && runc spec)

# configure USERNS: rewrites config.json; USERNS=1 adds the user namespace and
# shifts the rootfs' owners by 100000, as Docker's userns-remap does.
configure() {
    python3 - "$bundle" "$MEMORY" "$RUNC_CGROUP" "$1" <<'EOF'
import json, os, sys

bundle, memory, cgroup, userns = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
limit = int(memory[:-1]) * units[memory[-1].lower()] if memory[-1].lower() in units else int(memory)
# Docker's default capabilities, the set step09 keeps (common/src/ids.rs).
caps = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
        "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
path = os.path.join(bundle, "config.json")
with open(path) as f:
    c = json.load(f)
p = c["process"]
p["args"] = ["/bin/true"]
p["terminal"] = False
p["noNewPrivileges"] = True
p["capabilities"] = {k: list(caps) for k in ("bounding", "effective", "permitted")}
l = c["linux"]
kinds = ["pid", "ipc", "uts", "mount", "network", "cgroup"] + (["user"] if userns else [])
l["namespaces"] = [{"type": k} for k in kinds]
shift = 100000
if userns:
    l["uidMappings"] = [{"containerID": 0, "hostID": shift, "size": 65536}]
    l["gidMappings"] = [{"containerID": 0, "hostID": shift, "size": 65536}]
else:
    l.pop("uidMappings", None)
    l.pop("gidMappings", None)
l.setdefault("resources", {})["memory"] = {"limit": limit}
l["cgroupsPath"] = "/" + cgroup
with open(path, "w") as f:
    json.dump(c, f, indent=2)

# Owners in the rootfs: shifted into the map with the user namespace, as found
# (root) without. Computed from the image, so running this twice is harmless.
image_root = os.path.join(bundle, "rootfs")
for d, dirs, files in os.walk(image_root):
    for name in [d] + [os.path.join(d, n) for n in dirs + files]:
        st = os.lstat(name)
        uid, gid = st.st_uid % shift, st.st_gid % shift
        os.lchown(name, uid + shift if userns else uid, gid + shift if userns else gid)
EOF
}

runc_userns=1
configure 1
if ! runc_err=$(runc --root "$runc_root" run --bundle "$bundle" bench-probe-$$ 2>&1); then
    say "runc with a user namespace failed here: $runc_err"
    say "NOTE: runc runs WITHOUT a user namespace below; step09-oom still has one"
    runc_userns=0
    configure 0
    runc --root "$runc_root" run --bundle "$bundle" bench-probe-$$ || {
        say "runc fails here even without a user namespace"
        exit 1
    }
fi
"$BIN_DIR/step05-overlay" run --image-dir "$S/images" --container-dir "$S/containers" -- /bin/true 2>/dev/null
bwrap --unshare-all --ro-bind "$rootfs" / --proc /proc --dev /dev /bin/true

# --- the benchmark ------------------------------------------------------------

dirs="--image-dir $S/images --container-dir $S/containers"
runc_name=runc
[ "$runc_userns" = 1 ] || runc_name="runc (no user ns)"
# hyperfine runs each command through `sh -c` and subtracts the shell's own
# start-up; `$$` (that shell's pid) makes each runc container id unique.
say "hyperfine --warmup $WARMUP --runs $RUNS (memory limit $MEMORY)"
# In its own process group, in the background and waited for: the traps then
# run at once on a signal, and can stop it with the run it is timing.
setsid hyperfine --warmup "$WARMUP" --runs "$RUNS" \
    --export-markdown "$S/results.md" --export-json "$S/results.json" \
    -n step09-oom "$BIN_DIR/step09-oom run $dirs --memory $MEMORY -- /bin/true" \
    -n "$runc_name" "runc --root $runc_root run --bundle $bundle bench-\$\$" \
    -n step05-overlay "$BIN_DIR/step05-overlay run $dirs -- /bin/true" \
    -n bwrap "bwrap --unshare-all --ro-bind $rootfs / --proc /proc --dev /dev /bin/true" &
hyperfine_pid=$!
wait "$hyperfine_pid"
hyperfine_pid=

echo
echo "## Results ($(date -u +%Y-%m-%d), $(nproc) cores, Linux $(uname -r), runc $(runc --version | sed -n 's/^runc version //p'))"
echo
cat "$S/results.md"
echo
python3 - "$S/results.json" "$runc_name" <<'EOF'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
ours, runc = results["step09-oom"]["mean"], results[sys.argv[2]]["mean"]
verdict = f"{runc / ours:.2f}x faster than" if ours < runc else f"{ours / runc:.2f}x slower than"
print(f"step09-oom / {sys.argv[2]} = {ours / runc:.2f} "
      f"({ours * 1e3:.2f} ms vs {runc * 1e3:.2f} ms: step09-oom is {verdict} {sys.argv[2]})")
EOF
