#!/bin/bash
# Writes .cargo/hot-functions.txt: the functions a container start runs, which
# the linker then places together at the start of .text (lld's
# --symbol-ordering-file, set in .cargo/config.toml).
#
# Why: the kernel maps a program's code in 64 KiB windows around each page it
# touches (fault-around). A start of step10-oci runs about 900 functions,
# 0.6 MB of code, spread over most of the 5 MB of .text: 55 windows, 3.5 MB
# of peak RSS in code alone. Placed together they fit in about 10 windows.
# Takes about 20 minutes here, most of it adding and removing the 17,000
# probes one at a time.
# BENCHMARKS.md ("What cost what", point 12) has the figures.
#
# Usage:   sudo scripts/hot-functions.sh       (then commit the file)
# Needs:   root, and tracefs with uprobes (/sys/kernel/tracing/uprobe_events).
#
# How: it links step09-oom and step10-oci as `cargo build --release` does,
# plus a link map (the map does not change the symbols' names), puts a uprobe
# on every function of those binaries, runs the starts bench.sh measures
# (step09 and step10 `run`, both user-namespace modes; step10's create, start,
# state, kill and delete), and lists each function that was called at least
# once. The image is unpacked before the probes are enabled: the first run's
# unpacking is not a start's work and stays out of the list.
#
# The names carry rustc's hashes, which change with the compiler's version
# and with the dependencies' versions. Names that do not match are ignored by
# the linker (the build still works, only the code is not ordered), so run
# this again after `cargo update` or a new toolchain. The file names the
# rustc it was made with.
#
# Not probed: glibc's string functions (memcpy, strlen, ... and their
# per-CPU variants), whose probes hang the container's process on this
# kernel; they stay where the linker puts them.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=$repo/.cargo/hot-functions.txt
tracing=/sys/kernel/tracing
group=hot_functions_$$

say() { echo "hot-functions: $*" >&2; }
[ "$(id -u)" = 0 ] || { say "needs root (uprobes and containers)"; exit 1; }
[ -w "$tracing/uprobe_events" ] || { say "no uprobes at $tracing/uprobe_events"; exit 1; }

tuple=$(rustc --print host-tuple)
target=${CARGO_TARGET_DIR:-$repo/target}/$tuple/release
S=$(mktemp -d "${TMPDIR:-/tmp}/hot.XXXXXX")
chmod 711 "$S"
tracing_was=$(cat "$tracing/tracing_on")
# The list is read whole before the first removal: uprobe_events read while
# probes are removed skips some.
remove_probes() {
    local probes
    probes=$(grep -o "^p:$group/[^ ]*" "$tracing/uprobe_events" | sed 's/^p:/-:/') || return 0
    while read -r probe; do echo "$probe" >> "$tracing/uprobe_events"; done <<<"$probes"
}
cleanup() {
    local status=$?
    [ "$status" = 0 ] || [ ! -s "$S/runs.log" ] || { say "stopped with status $status; the runs' last messages:"; tail -n 20 "$S/runs.log" >&2; }
    { echo 0 > "$tracing/events/$group/enable"; } 2>/dev/null || true
    remove_probes || true
    echo "$tracing_was" > "$tracing/tracing_on"
    for id in $(ls "$S/state" 2>/dev/null); do
        "$S/step10-oci" --root "$S/state" delete --force "$id" >/dev/null 2>&1 || true
    done
    # What an interrupted run left (its mounts, its cgroup), before the removal.
    [ ! -d "$S/containers" ] || "$S/step09-oom" cleanup --image-dir "$S/images" \
        --container-dir "$S/containers" >/dev/null 2>&1 || true
    rm -rf "$S"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the binaries, with their link maps ---------------------------------------
cd "$repo"
cargo build --release -p step09-oom -p step10-oci
for bin in step09-oom step10-oci; do
    say "linking $bin with a map"
    cargo rustc --release -q -p $bin --bin $bin -- -C "link-arg=-Wl,-Map=$S/$bin.map"
    cp "$target/$bin" "$S/$bin"
done
# The binaries in target/ as a plain build leaves them.
cargo build --release -q -p step09-oom -p step10-oci

# --- a probe on every function ------------------------------------------------
# functions.tsv: binary, file offset, name as the ordering file wants it. A
# Rust function is its own input section (.text.<mangled name>); a C object's
# functions share its .text, and the map names them one per line below it.
for bin in step09-oom step10-oci; do
    python3 - "$S/$bin" "$S/$bin.map" <<'EOF'
import re, subprocess, sys

binary, mapfile = sys.argv[1], sys.argv[2]
# The executable segment: a function's file offset is its address - delta.
for line in subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True).stdout.splitlines():
    f = line.split()
    if f[:1] == ["LOAD"] and "E" in f[6:8]:
        delta = int(f[2], 16) - int(f[1], 16)
lines = open(mapfile)
header = next(lines)
# lld's map: the column a line's name starts at says what it is.
out_col, in_col, sym_col = (header.index(w) for w in ("Out", "In ", "Symbol"))
strings = re.compile(r"^_*(mem|str|wmem|wcs|stp|raw|bcmp|bzero)")
rust = re.compile(r":\(\.text(?:\.unlikely|\.hot|\.startup)?\.(.+)\)$")
in_text = c_object = False
for line in lines:
    tokens = list(re.finditer(r"\S+", line))
    if len(tokens) < 5:
        continue
    f = [t.group() for t in tokens[:4]]
    col = tokens[4].start()
    addr, size, name = int(f[0], 16), int(f[2], 16), line[col:].rstrip("\n")
    if col == out_col:
        in_text = name == ".text"
    elif not in_text or not size:
        continue
    elif col == in_col:
        m = rust.search(name)
        c_object = m is None and name.endswith(":(.text)")
        if m:
            print(f"{binary}\t{addr - delta:x}\t{m.group(1)}")
    elif col == sym_col and c_object and not strings.match(name):
        print(f"{binary}\t{addr - delta:x}\t{name}")
EOF
done > "$S/functions.tsv"
say "$(wc -l < "$S/functions.tsv") functions to probe"
[ "$(grep -c . "$S/functions.tsv")" -gt 1000 ] || { say "too few functions found in the link maps"; exit 1; }

# --- the image and the bundle, before any probe -------------------------------
dirs="--image-dir $S/images --container-dir $S/containers"
"$S/step09-oom" run $dirs -- true 2>/dev/null    # unpacks busybox
# Two bundles, as bench.sh's engine contenders: without a user namespace and
# with one (uid and gid 0 are 100000 outside, the rootfs's owners shifted).
for userns in 0 1; do
    bundle=$S/bundle$userns
    mkdir -p "$bundle"
    cp -a "$(readlink -f "$S/images/busybox/rootfs")" "$bundle/rootfs"
    (cd "$bundle" && "$S/step10-oci" spec)
    python3 - "$bundle" "$userns" <<'EOF'
import json, os, sys
bundle, userns = sys.argv[1], sys.argv[2] == "1"
path = os.path.join(bundle, "config.json")
c = json.load(open(path))
c["process"].update(args=["/bin/true"], terminal=False)
l = c["linux"]
l.setdefault("resources", {})["memory"] = {"limit": 64 << 20}
if userns:
    l["namespaces"].append({"type": "user"})
    l["uidMappings"] = l["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    for d, dirs, files in os.walk(os.path.join(bundle, "rootfs")):
        for name in [d] + [os.path.join(d, n) for n in dirs + files]:
            st = os.lstat(name)
            os.lchown(name, st.st_uid + 100000, st.st_gid + 100000)
json.dump(c, open(path, "w"))
EOF
done

# --- the starts, one binary at a time ----------------------------------------
# Each binary's probes are added, used and removed in turn, one write each:
# with 17,000 of them that was most of the script's 20 minutes here (adding
# 7,000 once took 16 s, and minutes in other runs). Each start runs twice;
# messages go to $S/runs.log.
starts_step09_oom() {
    "$S/step09-oom" run $dirs -m 64m -- /bin/true
    "$S/step09-oom" run $dirs -m 64m --userns=host -- /bin/true
}
starts_step10_oci() {
    local i=$1 pid
    "$S/step10-oci" run $dirs -m 64m -- /bin/true
    "$S/step10-oci" run $dirs -m 64m --userns=host -- /bin/true
    for userns in 0 1; do
        "$S/step10-oci" --root "$S/state" create --bundle "$S/bundle$userns" --pid-file "$S/pid" hot$i
        "$S/step10-oci" --root "$S/state" state hot$i
        "$S/step10-oci" --root "$S/state" start hot$i
        pid=$(<"$S/pid")
        while [ -e "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; do :; done
        "$S/step10-oci" --root "$S/state" delete hot$i
    done
    "$S/step10-oci" --root "$S/state" create --bundle "$S/bundle1" hot$i-kill
    "$S/step10-oci" --root "$S/state" kill hot$i-kill KILL
    "$S/step10-oci" --root "$S/state" delete --force hot$i-kill
}
echo 0 > "$tracing/tracing_on"  # the probes count their hits; no trace is kept
: > "$S/hit"
for bin in step09-oom step10-oci; do
    # Event f<N> probes line N of functions.tsv.
    awk -F'\t' -v g=$group -v b="$S/$bin" '$1 == b {printf "p:%s/f%d %s:0x%s\n", g, NR, $1, $2}' \
        "$S/functions.tsv" > "$S/probes"
    say "$bin: adding $(wc -l < "$S/probes") probes"
    failed=0  # one write a probe: a write of many stops at the first it refuses
    while read -r probe; do
        echo "$probe" >> "$tracing/uprobe_events" 2>/dev/null || failed=$((failed + 1))
    done < "$S/probes"
    [ "$failed" = 0 ] || say "$bin: the kernel refused $failed probes"
    echo 1 > "$tracing/events/$group/enable"
    for i in 1 2; do "starts_${bin//-/_}" $i; done >> "$S/runs.log" 2>&1
    echo 0 > "$tracing/events/$group/enable"
    # uprobe_profile: binary, event, hits.
    awk -v b="$S/$bin" '$1 == b && $3 > 0 { print substr($2, 2) }' "$tracing/uprobe_profile" >> "$S/hit"
    say "$bin: removing the probes"
    remove_probes
done

# --- the list -----------------------------------------------------------------
{
    echo "# The functions a container start runs, in the order the linker places them"
    echo "# first in .text (lld --symbol-ordering-file, .cargo/config.toml)."
    echo "# Written by scripts/hot-functions.sh; rustc $(rustc --version | cut -d' ' -f2), $(date -u +%Y-%m-%d)."
    awk -F'\t' 'NR == FNR { hit[$1]; next } FNR in hit && !seen[$3]++ { print $3 }' "$S/hit" "$S/functions.tsv"
} > "$out.new"
n=$(grep -vc '^#' "$out.new")
[ "$n" -gt 200 ] || { say "only $n functions were called: is the list right?"; rm -f "$out.new"; exit 1; }
mv "$out.new" "$out"
say "wrote $out: $n functions"
# cargo does not know the list is an input of the link: relink the steps.
touch "$repo"/step*/src/main.rs
cargo build --release -q
say "relinked the steps (cargo build --release); commit $out"
