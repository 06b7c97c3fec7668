#!/bin/bash
# Side by side, in one invocation: how long step09-oom (and step10-oci, by
# `run` and as an engine calls it) takes to start a container and see it end,
# against runc, bubblewrap, unshare+chroot and (on cgroup v2) crun; how long
# the first unpack of a large image takes against GNU tar; the runtime's own
# peak RSS; and whether the cost per container stays flat over 100 in a row
# and 20 at once.
#
# Usage:   sudo scripts/bench.sh
# Output:  one table per part, medians in ms, ratios with the issue-12 targets
#          (`step09-oom / runc run = 0.43 (target <= 0.2: MISSED)`). About half a
#          minute on an idle 2-core machine with the defaults.
#
# Environment (the defaults keep it to a few minutes on 2 cores):
#   BIN_DIR     directory with prebuilt step binaries; when unset, this script
#               runs `cargo build --release -p step09-oom -p step05-overlay -p step10-oci`
#   ROUNDS      rounds of the start-to-exit part (default 30); each round runs
#               every contender once, in an order rotated by one each round
#   MEMORY      the memory limit given to the step binaries and the OCI bundle (default 64m)
#   BIG_IMAGE   a large rootfs tarball for the unpack part (default
#               /var/lib/docker-from-scratch/images/debian.tar, made by
#               scripts/build-debian-image.sh); the part is skipped without it
#   UNPACKS     rounds of the unpack part (default 3): tar and step09, each into an empty directory
#   UNPACK_MODES  how the unpack part writes (default "sync cache tmpfs", in turn):
#               sync   a sync(1) before each unpack, so that none starts with the one
#                      before's dirty pages to write back (the disk's pace shows)
#               cache  no sync: both write into the page cache only (the CPU's pace)
#               tmpfs  into a new directory in /dev/shm, removed after each unpack:
#                      no disk, no filesystem state left by the unpack before;
#                      the runtime's own work against tar's (not the target's measure)
#               Each unpack's tree on disk is kept until the script ends (see
#               unpack_once): 2 x UNPACKS x 2 x the image's size for a while.
#   SEQ         containers in a row (default 100)
#   PAR         containers at once (default 20)
#   PARTS       which parts to run (default "start unpack rss scale")
#   BASE_BIN_DIR  other step binaries to compare with (main's release build,
#               say): adds "step09-oom base" and "step10-oci oci base" to the
#               start-to-exit part, interleaved with the rest
#   ONLY        an extended regular expression: only the start-to-exit
#               contenders whose names match it run (and /bin/true and
#               step09-oom, always),
#               e.g. 'step09|crun run' for more rounds in the same time
#   TMPDIR      where the state directory goes (default /tmp); it must take
#               user.* xattrs for the overlay in a user namespace (tmpfs
#               only from Linux 6.6: the VM uses /var/tmp on its ext4 disk)
#
# The contenders of the start-to-exit part all run /bin/true from the same
# busybox rootfs:
#   step09-oom      user namespace (0:100000:65536, idmapped image), pid, uts,
#                   ipc, net, mount and cgroup namespaces, overlay root,
#                   pivot_root, Docker's capabilities, seccomp profile and
#                   masked paths, a cgroup with a memory limit
#   step10-oci run  the same, from step10 (step09 plus the OCI interface)
#   step10-oci oci  `create`, `start`, wait for init to end, `delete`: what an
#                   engine (containerd's shim, podman's conmon) runs, on the
#                   OCI bundle below
#   step09-oom, containers on tmpfs  the same with --container-dir on
#                   /dev/shm: what the container's directories on the disk
#                   cost (a measurement, not a way to run)
#   step05-overlay  overlay root and pivot_root in a mount namespace only:
#                   what the later steps (more namespaces, user ns, cgroups) cost
#   runc run / runc oci  an OCI bundle with the same namespaces, uid/gid maps,
#                   capabilities and memory limit (runc 1.1 has no idmapped
#                   mounts: its rootfs is a copy chowned to 100000); `oci` is
#                   the engine's create/start/delete, as for step10
#   crun run / crun oci  the same bundle, only where the host is pure cgroup
#                   v2 (crun refuses a hybrid host); in the VM, where
#                   scripts/vm-test.sh puts crun, runc, bwrap, bash, python3
#                   and GNU time into the busybox system:
#                   BIN_DIR=target/x86_64-unknown-linux-gnu/release VM_SCRIPT=scripts/bench.sh sh scripts/vm-test.sh
#   bwrap           bubblewrap --unshare-all on a read-only bind of the image:
#                   no cgroup, no overlay, no user-ns map of its own choosing;
#                   a lower bound for "a process in new namespaces"
#   unshare+chroot  util-linux unshare (mount, uts, ipc, net, pid) and chroot
#   /bin/true       the host's /bin/true: the cost of the measuring itself,
#                   subtracted from every median before a ratio is taken
# Each one is run once first and must succeed: a failing peer is fast, and
# is left out with its error rather than timed.
#
# Timing: bash's $EPOCHREALTIME around each command (fork + exec + wait),
# interleaved, so that a change in the machine's load touches every
# contender alike. (hyperfine, which this script used before, runs all of one
# command's runs before the next command's: a build starting halfway through
# would slow only the later contenders.) Speed is only ever measured here,
# never by timed tests.
#
# Everything it creates (a temporary state directory with the images, the
# containers, the bundle and the OCI runtimes' state; their cgroups) is
# removed on exit, even on failure or Ctrl-C.

set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-30}
MEMORY=${MEMORY:-64m}
BIG_IMAGE=${BIG_IMAGE:-/var/lib/docker-from-scratch/images/debian.tar}
UNPACKS=${UNPACKS:-3}
UNPACK_MODES=${UNPACK_MODES:-sync cache tmpfs}
SEQ=${SEQ:-100}
PAR=${PAR:-20}
PARTS=${PARTS:-start unpack rss scale}
# The OCI runtimes' cgroup, one container at a time: under the project's
# parent, so that nothing is made elsewhere in the host's tree.
OCI_CGROUP=docker-from-scratch/bench-oci

say() { echo "bench: $*" >&2; }
part() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

if [ "$(id -u)" != 0 ]; then
    say "must run as root: the runtimes mount filesystems and create namespaces (sudo $0)"
    exit 1
fi
cgroup_v2=0
[ -f /sys/fs/cgroup/cgroup.controllers ] && cgroup_v2=1

# --- tools --------------------------------------------------------------------

missing=()
command -v runc >/dev/null || missing+=(runc)
command -v bwrap >/dev/null || missing+=(bubblewrap)
command -v unshare >/dev/null || missing+=(util-linux)
[ -x /usr/bin/time ] || missing+=(time)
[ "$cgroup_v2" = 0 ] || command -v crun >/dev/null || missing+=(crun)
if [ ${#missing[@]} -gt 0 ]; then
    if command -v apt-get >/dev/null; then
        say "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        { apt-get update -qq && apt-get install -y -qq "${missing[@]}"; } >&2 || say "could not install ${missing[*]}: those peers are left out"
    else
        say "no apt-get: ${missing[*]} left out"
    fi
fi
command -v python3 >/dev/null || { say "python3 is needed to edit config.json and compute medians"; exit 1; }

# --- the binaries -------------------------------------------------------------

steps="step09-oom step05-overlay step10-oci"
if [ -z "${BIN_DIR:-}" ]; then
    command -v cargo >/dev/null || {
        say "cargo not found on root's PATH: build as yourself with"
        say "  cargo build --release -p step09-oom -p step05-overlay -p step10-oci"
        say "then run: sudo BIN_DIR=target/$(uname -m)-unknown-linux-gnu/release $0"
        exit 1
    }
    say "cargo build --release -p step09-oom -p step05-overlay -p step10-oci"
    (cd "$repo" && cargo build --release -p step09-oom -p step05-overlay -p step10-oci) >&2
    BIN_DIR=${CARGO_TARGET_DIR:-$repo/target}/$(rustc --print host-tuple)/release
fi
BIN_DIR=$(cd "$BIN_DIR" && pwd)
for step in $steps; do
    [ -x "$BIN_DIR/$step" ] || { say "no $BIN_DIR/$step: build it or fix BIN_DIR"; exit 1; }
done
if [ -n "${BASE_BIN_DIR:-}" ]; then
    BASE_BIN_DIR=$(cd "$BASE_BIN_DIR" && pwd)
    for step in step09-oom step10-oci; do
        [ -x "$BASE_BIN_DIR/$step" ] || { say "no $BASE_BIN_DIR/$step: fix BASE_BIN_DIR"; exit 1; }
    done
fi

# --- state, and cleaning it up ------------------------------------------------

S=$(mktemp -d "${TMPDIR:-/tmp}/bench.XXXXXX")
# 711: root in the container is uid 100000 outside and must traverse it.
chmod 711 "$S"
bundle=$S/bundle
parents_before=$(ls -d /sys/fs/cgroup/docker-from-scratch /sys/fs/cgroup/*/docker-from-scratch 2>/dev/null || true)
dirs="--image-dir $S/images --container-dir $S/containers"
shm_containers=
shm_unpack=

cleanup() {
    local status=$? id dir rt root
    trap - EXIT INT TERM
    # Runs still going (the 20-at-once part): their own cleanup on SIGTERM.
    jobs -p | xargs -r kill -TERM 2>/dev/null || true
    wait 2>/dev/null || true
    # OCI containers left by an interrupted run.
    for rt in runc crun "$BIN_DIR/step10-oci" "${BASE_BIN_DIR:-none}/step10-oci"; do
        root=$S/state-${rt##*/}
        [ "$rt" = "${BASE_BIN_DIR:-none}/step10-oci" ] && root=$S/state-base
        [ -d "$root" ] || continue
        for id in $(ls "$root" 2>/dev/null); do
            "$rt" --root "$root" delete --force "$id" >/dev/null 2>&1 || true
        done
    done
    rmdir /sys/fs/cgroup/$OCI_CGROUP /sys/fs/cgroup/*/$OCI_CGROUP 2>/dev/null || true
    # A step container killed mid-run leaves its directory, and maybe its cgroup.
    for dir in "$S"/containers/*/ "$S"/big-containers/*/ ${shm_containers:+"$shm_containers"/*/} \
        ${shm_unpack:+"$shm_unpack"/big-containers/*/}; do
        [ -d "$dir" ] || continue
        id=$(basename "$dir")
        umount -R "$dir/merged" 2>/dev/null || true
        rmdir /sys/fs/cgroup/docker-from-scratch/"$id" /sys/fs/cgroup/*/docker-from-scratch/"$id" 2>/dev/null || true
    done
    # The shared parent cgroup, only if this script made it: rmdir fails while
    # any container uses it, and flock takes the lock the steps take
    # (common::cgroup::lock_parent), so that it never races a starting container.
    for dir in /sys/fs/cgroup/docker-from-scratch /sys/fs/cgroup/*/docker-from-scratch; do
        [ -d "$dir" ] || continue
        case "$parents_before" in *"$dir"*) ;; *) flock /sys/fs/cgroup rmdir "$dir" 2>/dev/null || true ;; esac
    done
    # busybox rm (the VM's) has no --one-file-system: there, only when
    # nothing is mounted below $S any more.
    rm -rf --one-file-system "$S" 2>/dev/null || { grep -q " $S/" /proc/mounts || rm -rf "$S"; }
    [ -z "$shm_containers" ] || rm -rf "$shm_containers"
    [ -z "$shm_unpack" ] || rm -rf "$shm_unpack"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# now_us: microseconds since the epoch, from bash itself (no fork).
now_us() { local t=$EPOCHREALTIME; echo "${t/[.,]/}"; }
# timed CMD: runs CMD (a string, through eval) and prints its wall time in µs.
timed() {
    local t0 t1
    t0=$EPOCHREALTIME
    eval "$1" >/dev/null 2>&1 </dev/null || return 1
    t1=$EPOCHREALTIME
    echo $(( ${t1/[.,]/} - ${t0/[.,]/} ))
}
# peak_rss_kib CMD...: the peak RSS of CMD's process (and of the children it
# waited for), from wait4(2)'s rusage as GNU time reports it. That figure
# also counts the forked copy of the waiting process before exec: GNU time,
# a small C program, is a low floor (its own /bin/true is printed too);
# python or bash as the waiter would show their own size instead.
peak_rss_kib() {
    /usr/bin/time -f %M -o "$S/rss" "$@" >/dev/null 2>&1 </dev/null && cat "$S/rss" || echo failed
}
# stats: reads "name µs" lines, prints per name: median, min, p90 (ms).
stats() {
    python3 -c '
import sys, statistics
runs = {}
for line in sys.stdin:
    name, us = line.rsplit(" ", 1)
    runs.setdefault(name, []).append(int(us) / 1000)
for name, ms in runs.items():
    ms.sort()
    print(f"{name}\t{statistics.median(ms):.2f}\t{ms[0]:.2f}\t{ms[int(0.9 * (len(ms) - 1))]:.2f}\t{len(ms)}")
'
}

echo "# scripts/bench.sh, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), Linux $(uname -r), cgroup $([ "$cgroup_v2" = 1 ] && echo v2 || echo "v1 (hybrid: $(ls /sys/fs/cgroup | tr '\n' ' '))")"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "binaries: $BIN_DIR ($(cd "$repo" && git describe --always --dirty 2>/dev/null || echo '?'))"
[ -z "${BASE_BIN_DIR:-}" ] || echo "base binaries (\"… base\"): $BASE_BIN_DIR"
echo "peers: $(for p in runc crun bwrap; do printf '%s ' "$(command -v $p >/dev/null && $p --version 2>&1 | head -n 1 || echo "no $p")"; done)"
echo

# --- the busybox image, for everyone ------------------------------------------

say "building the busybox image in $S/images"
"$BIN_DIR/step09-oom" run $dirs -- true 2>/dev/null || {
    say "step09-oom could not run a container here; its own error:"
    "$BIN_DIR/step09-oom" run $dirs -- true
    exit 1
}
# The busybox image's one layer (images/busybox/rootfs links to it).
rootfs=$(readlink -f "$S/images/busybox/rootfs")

# --- the OCI bundle, for runc, crun and step10 --------------------------------

mkdir -p "$bundle"
cp -a "$rootfs" "$bundle/rootfs"
(cd "$bundle" && runc spec 2>/dev/null || "$BIN_DIR/step10-oci" spec)

# configure USERNS: rewrites config.json; USERNS=1 adds the user namespace and
# shifts the rootfs' owners by 100000, as Docker's userns-remap does.
configure() {
    python3 - "$bundle" "$MEMORY" "$OCI_CGROUP" "$1" <<'EOF'
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

# What an engine does with an OCI runtime: create (init waits before exec),
# start, wait for init to end (a zombie has ended: init's parent, `create`,
# is gone), delete. RUNTIME is runc, crun or step10-oci.
cat >"$S/engine.sh" <<'EOF'
#!/bin/bash
set -e
rt=$1 root=$2 bundle=$3 id=b$$
"$rt" --root "$root" create --bundle "$bundle" --pid-file "$root.$id.pid" "$id"
pid=$(<"$root.$id.pid")
rm -f "$root.$id.pid"
"$rt" --root "$root" start "$id"
state=R
while [ "$state" != Z ] && read -r _ _ state _ 2>/dev/null <"/proc/$pid/stat"; do :; done
"$rt" --root "$root" delete "$id"
EOF
chmod +x "$S/engine.sh"

userns=1
configure 1
if ! err=$(runc --root "$S/state-runc" run --bundle "$bundle" probe-$$ 2>&1); then
    say "runc with a user namespace failed here: $err"
    say "NOTE: the OCI contenders run WITHOUT a user namespace below; step09-oom still has one"
    userns=0
    configure 0
fi

# --- part 1: start to exit of /bin/true ----------------------------------------

names=() commands=()
contender() {
    [ "$1" = /bin/true ] || [ "$1" = step09-oom ] || [ -z "${ONLY:-}" ] || [[ $1 =~ $ONLY ]] || return 0
    names+=("$1")
    commands+=("$2")
}
contender "/bin/true" "/bin/true"
contender "step09-oom" "$BIN_DIR/step09-oom run $dirs --memory $MEMORY -- /bin/true"
contender "step10-oci run" "$BIN_DIR/step10-oci run $dirs --memory $MEMORY -- /bin/true"
contender "step10-oci oci" "$S/engine.sh $BIN_DIR/step10-oci $S/state-step10-oci $bundle"
if [ -n "${BASE_BIN_DIR:-}" ]; then
    contender "step09-oom base" "$BASE_BIN_DIR/step09-oom run $dirs --memory $MEMORY -- /bin/true"
    contender "step10-oci oci base" "$S/engine.sh $BASE_BIN_DIR/step10-oci $S/state-base $bundle"
fi
# The same with the containers' directories on a tmpfs: what the disk costs
# a start (the directories and files made for a run, each freeing a block
# when removed). A measurement, not a way to run: a container's upper layer
# belongs on a disk. Left out, with its error, where the tmpfs cannot hold an
# overlay's upper layer (user xattrs: Linux 6.6).
if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ]; then
    shm_containers=$(mktemp -d /dev/shm/bench-containers.XXXXXX)
    chmod 711 "$shm_containers"
fi
[ -n "$shm_containers" ] && contender "step09-oom, containers on tmpfs" \
    "$BIN_DIR/step09-oom run --image-dir $S/images --container-dir $shm_containers --memory $MEMORY -- /bin/true"
contender "step05-overlay" "$BIN_DIR/step05-overlay run $dirs -- /bin/true"
contender "runc run" "runc --root $S/state-runc run --bundle $bundle r\$BASHPID"
contender "runc oci" "$S/engine.sh runc $S/state-runc $bundle"
if [ "$cgroup_v2" = 1 ]; then
    contender "crun run" "crun --root $S/state-crun run --bundle $bundle c\$BASHPID"
    contender "crun oci" "$S/engine.sh crun $S/state-crun $bundle"
fi
contender "bwrap" "bwrap --unshare-all --ro-bind $rootfs / --proc /proc --dev /dev /bin/true"
contender "unshare+chroot" "unshare --mount --uts --ipc --net --pid --fork chroot $rootfs /bin/true"
[ "$cgroup_v2" = 1 ] || echo "crun: left out, this host is not pure cgroup v2 (crun refuses a hybrid host); run it in the v2 VM"

# Each must work first: a peer that fails at once would look fast.
ok_names=() ok_commands=()
for i in "${!names[@]}"; do
    if err=$(eval "${commands[$i]}" 2>&1 </dev/null); then
        ok_names+=("${names[$i]}")
        ok_commands+=("${commands[$i]}")
    else
        echo "${names[$i]}: left out, it fails here: $(echo "$err" | tail -n 2 | tr '\n' ' ')"
        [ "${names[$i]}" != step09-oom ] || exit 1
    fi
done

if part start; then
    say "start to exit of /bin/true: $ROUNDS rounds of ${#ok_names[@]} contenders, interleaved"
    n=${#ok_names[@]}
    for round in $(seq 1 "$ROUNDS"); do
        for k in $(seq 0 $((n - 1))); do
            i=$(( (k + round) % n ))
            us=$(timed "${ok_commands[$i]}") || { say "${ok_names[$i]} failed in round $round"; exit 1; }
            echo "${ok_names[$i]} $us"
        done
    done >"$S/start.txt"
    stats <"$S/start.txt" >"$S/start.tsv"
    echo
    echo "## Start to exit of /bin/true (busybox rootfs, $ROUNDS interleaved rounds, --memory $MEMORY$([ "$userns" = 1 ] || echo '; OCI bundle WITHOUT user namespace'))"
    echo
    python3 - "$S/start.tsv" <<'EOF'
import sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
median = {name: float(m) for name, m, *_ in rows}
base = median.get("/bin/true", 0.0)
net = {name: max(m - base, 0.001) for name, m in median.items()}
print("| contender | median ms | min ms | p90 ms | runs | step09-oom / it (net of /bin/true) |")
print("|---|---:|---:|---:|---:|---:|")
for name, m, lo, p90, n in rows:
    ratio = "" if name == "/bin/true" else f"{net['step09-oom'] / net[name]:.2f}"
    print(f"| {name} | {m} | {lo} | {p90} | {n} | {ratio} |")
print()
targets = [("step09-oom", "runc run", 0.2), ("step09-oom", "bwrap", 1.2), ("step09-oom", "crun run", 1.0),
           ("step10-oci run", "runc run", 0.2), ("step10-oci run", "bwrap", 1.2), ("step10-oci run", "crun run", 1.0),
           ("step10-oci oci", "runc oci", 0.2), ("step10-oci oci", "bwrap", 1.2), ("step10-oci oci", "crun oci", 1.0)]
for ours, theirs, target in targets:
    if ours in net and theirs in net:
        ratio = net[ours] / net[theirs]
        verdict = "met" if ratio <= target else "MISSED"
        print(f"{ours} / {theirs} = {ratio:.2f} (target <= {target}: {verdict})")
for ours, base in [("step09-oom", "step09-oom base"), ("step10-oci oci", "step10-oci oci base")]:
    if ours in net and base in net:
        print(f"{ours} / {base} = {net[ours] / net[base]:.2f} (these binaries against the base ones)")
EOF
fi

# --- part 2: the first unpack of a large image, against tar -------------------

if part unpack; then
    echo
    if [ ! -f "$BIG_IMAGE" ]; then
        echo "## Unpack: skipped, no $BIG_IMAGE (make it with scripts/build-debian-image.sh, or set BIG_IMAGE)"
    else
        say "unpack of $BIG_IMAGE: $UNPACKS rounds of tar -x and step09-oom's first run ($UNPACK_MODES)"
        # Both read the tarball from the page cache.
        cat "$BIG_IMAGE" >/dev/null
        big="--image-dir $S/big-images --container-dir $S/big-containers"
        case " $UNPACK_MODES " in *" tmpfs "*)
            shm_unpack=$(mktemp -d /dev/shm/bench-unpack.XXXXXX)
            chmod 711 "$shm_unpack"
            ;;
        esac
        # unpack_once NAME CMD MODE BASE: one unpack into an empty directory
        # under BASE; prints its wall time, and its CPU time (user + system,
        # GNU time) apart.
        unpack_once() {
            local us cpu base=$4
            if [ "$3" = tmpfs ]; then
                # A tmpfs has no inode allocator to trap: removed at once.
                rm -rf "$base/tar-x" "$base/big-images" "$base/big-containers"
            else
                # Set aside, not removed: this ext4 may have no journal (the
                # soak VM's has none), and then the inode allocator skips every
                # inode freed in the last 60 to 300 s (recently_deleted() in
                # fs/ext4/ialloc.c), one inode table lookup each. Removing the
                # 9,278 inodes of one unpack right before the next made each
                # unpack slower than the one before, tar's as much as ours
                # (0.3 s of CPU time to 3.2 s in one run). The trash goes at exit.
                mkdir -p "$S/trash"
                for dir in "$base/tar-x" "$base/big-images"; do
                    [ -e "$dir" ] && mv "$dir" "$(mktemp -d "$S/trash/XXXXXX")/"
                done
            fi
            mkdir "$base/tar-x"
            # sync: each starts with no dirty pages of the one before to write back.
            [ "$3" = sync ] && sync
            us=$(timed "/usr/bin/time -f '%U %S' -o $S/cpu $2") || { say "$2 failed"; exit 1; }
            cpu=$(awk '{printf "%d", ($1 + $2) * 1000000}' "$S/cpu")
            echo "$1 ($3) $us"
            echo "$1 ($3), CPU time $cpu"
        }
        for round in $(seq 1 "$UNPACKS"); do
            for mode in $UNPACK_MODES; do
                base=$S
                [ "$mode" = tmpfs ] && base=$shm_unpack
                # Who goes first alternates: a load that comes and goes, and
                # the filesystem's state after the last removal, touch both alike.
                pair=("tar -x|tar -xf $BIG_IMAGE -C $base/tar-x"
                    "step09-oom first run|$BIN_DIR/step09-oom run --image-dir $base/big-images --container-dir $base/big-containers --image $BIG_IMAGE -- /bin/true")
                [ $((round % 2)) = 0 ] && pair=("${pair[1]}" "${pair[0]}")
                for one in "${pair[@]}"; do
                    unpack_once "${one%%|*}" "${one#*|}" "$mode" "$base"
                done
            done
        done >"$S/unpack.txt"
        rm -rf "$S/tar-x"
        [ -z "$shm_unpack" ] || rm -rf "${shm_unpack:?}"/*
        # The last of a round may have been tar's: then the store is empty.
        [ -d "$S/big-images" ] || "$BIN_DIR/step09-oom" run $big --image "$BIG_IMAGE" -- /bin/true >/dev/null 2>&1
        # The store after the last first run, then a second start: it must
        # find the layers unpacked and leave them as they are.
        before=$(find "$S/big-images" -printf '%p %i %T@\n' | sort | md5sum)
        us=$(timed "$BIN_DIR/step09-oom run $big --image $BIG_IMAGE -- /bin/true") || exit 1
        echo "step09-oom second run $us" >>"$S/unpack.txt"
        after=$(find "$S/big-images" -printf '%p %i %T@\n' | sort | md5sum)
        rss=$(peak_rss_kib "$BIN_DIR/step09-oom" run $big --image "$BIG_IMAGE" -- /bin/true)
        rm -rf "$S/big-images"
        rss_first=$(peak_rss_kib "$BIN_DIR/step09-oom" run $big --image "$BIG_IMAGE" -- /bin/true)
        echo "## First unpack of $(basename "$BIG_IMAGE") ($(( $(stat -c %s "$BIG_IMAGE") / 1048576 )) MiB, $(tar -tf "$BIG_IMAGE" | wc -l) entries), $UNPACKS rounds"
        echo
        echo "| what | median ms | min ms | p90 ms | runs |"
        echo "|---|---:|---:|---:|---:|"
        stats <"$S/unpack.txt" | awk -F'\t' '{printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5}' | tee "$S/unpack.tsv"
        echo
        # The disk's write-back makes single unpacks vary a lot: the fastest
        # of each says most about the work itself, the medians are printed too.
        for mode in $UNPACK_MODES; do
            awk -F' [|] ' -v mode="($mode)" '
                index($1, mode) && !/CPU/ && /tar -x/ {t=$2; tm=$3}
                index($1, mode) && !/CPU/ && /first run/ {f=$2; fm=$3}
                index($1, mode) && /CPU/ && /tar -x/ {tc=$2}
                index($1, mode) && /CPU/ && /first run/ {fc=$2}
                END {r=fm/tm; verdict = (mode == "(tmpfs)") ? "no disk: not the target'"'"'s measure" : "target <= 1.1: " (r <= 1.1 ? "met" : "MISSED")
                     printf "%s step09-oom first run / tar -x = %.2f fastest to fastest (%s); %.2f median to median; CPU time %.2f median to median\n", mode, r, verdict, f/t, fc/tc}' "$S/unpack.tsv"
        done
        echo "(sync): a sync before each unpack, the disk's write-back settled; (cache): no sync, both write into the page cache only; (tmpfs): into /dev/shm, no disk"
        [ "$before" = "$after" ] && echo "second start: nothing unpacked (the image store is unchanged: names, inodes, mtimes)" \
            || echo "second start: the image store CHANGED (something was unpacked again)"
        echo "peak RSS of step09-oom: first run (unpacking) ${rss_first} KiB, second run ${rss} KiB"
    fi
fi

# --- part 3: the runtimes' own peak RSS ---------------------------------------

if part rss && [ ! -x /usr/bin/time ]; then
    echo
    echo "## Peak RSS: SKIPPED, no GNU time at /usr/bin/time (its %M is the figure)"
elif part rss; then
    echo
    echo "## Peak RSS (wait4's ru_maxrss of the runtime's process, busybox /bin/true)"
    echo
    echo "| runtime | peak RSS KiB |"
    echo "|---|---:|"
    echo "| /bin/true (the floor: GNU time's own fork) | $(peak_rss_kib /bin/true) |"
    echo "| step09-oom | $(peak_rss_kib "$BIN_DIR/step09-oom" run $dirs --memory "$MEMORY" -- /bin/true) |"
    echo "| step10-oci run | $(peak_rss_kib "$BIN_DIR/step10-oci" run $dirs --memory "$MEMORY" -- /bin/true) |"
    echo "| step10-oci create | $(peak_rss_kib "$BIN_DIR/step10-oci" --root "$S/state-step10-oci" create --bundle "$bundle" rss-$$) |"
    "$BIN_DIR/step10-oci" --root "$S/state-step10-oci" delete --force rss-$$ >/dev/null 2>&1 || true
    echo "| runc run | $(peak_rss_kib runc --root "$S/state-runc" run --bundle "$bundle" rss-$$) |"
    echo "| bwrap | $(peak_rss_kib bwrap --unshare-all --ro-bind "$rootfs" / --proc /proc --dev /dev /bin/true) |"
    echo
    echo "(target: step09-oom under 4096 KiB. ru_maxrss is the largest of the runtime and the children it waited for: its clone, which
until exec is a copy of it, and the container's command)"
fi

# --- part 4: 100 in a row, 20 at once -----------------------------------------

if part scale; then
    say "$SEQ containers in a row, then 1, 5 and $PAR at once"
    run09="$BIN_DIR/step09-oom run $dirs --memory $MEMORY -- /bin/true"
    for i in $(seq 1 "$SEQ"); do
        timed "$run09" || { say "run $i of $SEQ failed"; exit 1; }
    done >"$S/seq.txt"
    echo
    echo "## $SEQ containers in a row (step09-oom, /bin/true)"
    echo
    python3 - "$S/seq.txt" <<'EOF'
import sys, statistics
ms = [int(line) / 1000 for line in open(sys.argv[1])]
k = max(len(ms) // 5, 1)
first, last = statistics.median(ms[:k]), statistics.median(ms[-k:])
print(f"total {sum(ms) / 1000:.2f} s; median {statistics.median(ms):.2f} ms, min {min(ms):.2f}, max {max(ms):.2f}")
print(f"median of the first {k}: {first:.2f} ms, of the last {k}: {last:.2f} ms; last / first = {last / first:.2f} (flat: about 1)")
EOF
    echo
    echo "## Containers at once (step09-oom, /bin/true): wall time for all, and per container"
    echo
    echo "| at once | wall ms | wall / container ms | each one's median ms |"
    echo "|---:|---:|---:|---:|"
    for n in 1 5 "$PAR"; do
        rm -f "$S"/par.*
        t0=$(now_us)
        for i in $(seq 1 "$n"); do
            (timed "$run09" >"$S/par.$i" || echo failed >"$S/par.$i") &
        done
        wait
        t1=$(now_us)
        if grep -q failed "$S"/par.*; then say "$(grep -l failed "$S"/par.* | wc -l) of $n runs failed"; exit 1; fi
        each=$(cat "$S"/par.* | sed 's/^/x /' | stats | cut -f2)
        awk -v n="$n" -v w="$(( t1 - t0 ))" -v e="$each" 'BEGIN {printf "| %d | %.1f | %.2f | %s |\n", n, w / 1000, w / 1000 / n, e}'
    done
fi
