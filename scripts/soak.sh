#!/bin/bash
# Soak test of step09-oom's lifecycle: many runs in a row, many at once, and
# runtimes killed with SIGKILL at random moments followed by `cleanup`; then
# prove that nothing was left behind.
#
# Usage:   sudo scripts/soak.sh
#          sudo N_SEQ=50 N_PAR=10 N_KILL=10 scripts/soak.sh     (a quick run)
# Exit:    0 when every run behaved and the "after" snapshot equals the
#          "before" one; 1 otherwise (the reason is printed).
#
# Environment:
#   BIN_DIR   directory with a prebuilt step09-oom; when unset, the repository's
#             target/<host tuple>/release, built with `cargo build --release -p step09-oom`
#             when the binary is missing
#   N_SEQ     phase A: runs of `run -m 64m -- true` one after the other (1000)
#   N_PAR     phase B: runs of `run -m 64m -- sh -c '...; sleep 0.2'` at once (50)
#   N_KILL    phase C: runtimes of `run -m 64m [...] -- sleep 100`, each killed
#             with SIGKILL at a random moment 0-300 ms after it started (40)
#   KILL_PAR  phase C: how many of those are started together (4)
#   SETTLE    seconds the final snapshot may take to settle (10)
#   SOAK_KEEP set to 1 to keep the temporary directory (after its cleanup)
#
# Phases:
#   warm-up  one run each of the default, --userns=host and --no-idmap modes,
#            so that the image is built and extracted, then `cleanup` (which
#            may empty the image cache of the uid-shifted copy, but must find
#            no container) and a second `cleanup` that must find nothing: the
#            image cache as cleanup leaves it is part of the "before" state
#   A        N_SEQ runs in a row; every one must exit 0. Prints the elapsed time,
#            the mean per run, and the mean of the first 100 against the last
#            100 (the cost of a run must not grow).
#   B        N_PAR runs at once; every one must exit 0.
#   C        N_KILL runtimes (default mode, --userns=host, --no-idmap in turn)
#            killed with SIGKILL at a random moment 0-300 ms after their start
#            (every other one 0-60 ms), KILL_PAR at a time, some during setup,
#            some while `sleep 100` runs; then `cleanup`
#            (its lines are printed), then a second `cleanup` that must say
#            "nothing to clean up", then no `sleep 100` of these runs may be
#            alive (PR_SET_PDEATHSIG took the containers with their runtimes).
#   After A and B, `cleanup` too must find nothing.
#
# The snapshots (before, after A, after B, after C) count:
#   checked (must be equal to "before"):
#     - mounts in this shell's mount namespace that mention the soak directory
#     - cgroup directories docker-from-scratch/<id> of this soak's containers
#       (every id a run printed or left in --container-dir), in all hierarchies
#     - files and directories under --container-dir, and under --image-dir
#     - processes whose command line mentions the soak directory (runtimes)
#     - processes in the cgroups of this soak's containers
#     - open file descriptors of this script's shell
#   printed only (other activity on the host changes them):
#     - all mounts of this mount namespace, all docker-from-scratch cgroup
#       directories, all processes whose command line mentions step09-oom, all
#       processes (and how many of them are zombies: a container killed with
#       its runtime is reparented to PID 1 and is a zombie until PID 1 reaps
#       it), and the first field of /proc/sys/fs/file-nr
#   When a checked count differs, the entries that differ are printed; when a
#   printed-only count differs, its entries are printed with a note, so that
#   other activity can be told from a leak.
#
# Only pids this script started are ever signalled (never by name), and
# only cgroups named after this soak's own containers are ever looked at
# closely: this script writes to no cgroup at all.

set -u -o pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
N_SEQ=${N_SEQ:-1000}
N_PAR=${N_PAR:-50}
N_KILL=${N_KILL:-40}
KILL_PAR=${KILL_PAR:-4}
SETTLE=${SETTLE:-10}
SOAK_KEEP=${SOAK_KEEP:-0}

say() { echo "soak: $*"; }
die() { echo "soak: error: $*" >&2; exit 1; }

for var in N_SEQ N_PAR N_KILL KILL_PAR SETTLE; do
    [[ ${!var} =~ ^[0-9]+$ ]] || die "$var=${!var} is not a whole number"
done
((KILL_PAR > 0)) || die "KILL_PAR must be at least 1"
[[ $(id -u) == 0 ]] || die "must run as root: the runtime mounts filesystems and creates cgroups (sudo $0)"

# --- the binary ---------------------------------------------------------------

if [[ -n ${BIN_DIR:-} ]]; then
    [[ -x $BIN_DIR/step09-oom ]] || die "BIN_DIR=$BIN_DIR has no step09-oom"
else
    BIN_DIR=${CARGO_TARGET_DIR:-$repo/target}/$(rustc --print host-tuple)/release
    if [[ ! -x $BIN_DIR/step09-oom ]]; then
        say "building step09-oom (cargo build --release -p step09-oom)"
        (cd "$repo" && cargo build --release -p step09-oom) || die "cargo build failed"
    fi
fi
BIN=$BIN_DIR/step09-oom

# --- state --------------------------------------------------------------------

# 0711: the container's root (uid 100000 on the host) must traverse it.
T=$(mktemp -d "${TMPDIR:-/tmp}/soak.XXXXXX") || die "mktemp failed"
chmod 0711 "$T"
IMAGES=$T/images
CONTAINERS=$T/containers
LOG=$T/log
mkdir -m 0700 "$LOG"
DIRS=(--image-dir "$IMAGES" --container-dir "$CONTAINERS")
# The soak runs a copy: a rebuild of target/ during the soak (cargo build in
# another shell) must not mix two builds in one result.
mkdir -m 0700 "$T/bin"
cp "$BIN" "$T/bin/step09-oom" || die "cannot copy $BIN"
BIN_ORIG=$BIN
BIN=$T/bin/step09-oom
NEVER=$LOG/never # a FIFO no one writes: `read -t` on it sleeps without a fork
mkfifo "$NEVER"
IDS=$LOG/ids # every container id of this soak, one a line
: >"$IDS"
LIVE=() # runtimes started in the background and not yet waited for
FAILURES=()

fail() {
    FAILURES+=("$*")
    echo "soak: FAIL: $*"
}

# Whether pid is one of this soak's runtimes: its command line names $T.
ours() {
    local args=()
    mapfile -d '' -t args 2>/dev/null <"/proc/$1/cmdline" || return 1
    [[ " ${args[*]} " == *" $T/"* ]]
}

on_exit() {
    local status=$? pid
    trap - EXIT INT TERM HUP
    for pid in "${LIVE[@]}"; do
        ours "$pid" && kill -KILL "$pid" 2>/dev/null
    done
    for pid in "${LIVE[@]}"; do
        wait "$pid" 2>/dev/null
    done
    if [[ -d $T ]]; then
        "$BIN" cleanup "${DIRS[@]}" >/dev/null 2>&1
        if grep -qF "$T" /proc/self/mountinfo; then
            echo "soak: not removing $T: something is still mounted there:" >&2
            grep -F "$T" /proc/self/mountinfo >&2
            status=1
        elif [[ $SOAK_KEEP == 1 ]]; then
            echo "soak: kept $T (SOAK_KEEP=1)" >&2
        else
            rm -rf --one-file-system "$T"
        fi
    fi
    exit "$status"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

now_us() { echo "${EPOCHREALTIME/[.,]/}"; }
ms() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); } # microseconds -> ms

# Adds the container ids found in files or in --container-dir to $IDS.
record_ids() {
    {
        cat "$IDS"
        (($#)) && grep -ohE '\b[0-9a-f]{12}\b' "$@" 2>/dev/null
        ls -A "$CONTAINERS" 2>/dev/null | sed -nE 's/^\.?([0-9a-f]{12})(\.creating)?$/\1/p'
    } | sort -u >"$IDS.new"
    mv "$IDS.new" "$IDS"
}

# --- snapshots ----------------------------------------------------------------

ROWS=(mounts_ours cgroups_ours files_containers files_images procs_ours procs_in_cgroups fds_shell
    mounts_all cgroups_all procs_step09 procs_all zombies_all file_nr)
declare -A CHECKED=([mounts_ours]=1 [cgroups_ours]=1 [files_containers]=1 [files_images]=1
    [procs_ours]=1 [procs_in_cgroups]=1 [fds_shell]=1)
declare -A LABEL=(
    [mounts_ours]="mounts mentioning the soak dir"
    [cgroups_ours]="cgroup dirs of the soak's containers"
    [files_containers]="files+dirs under --container-dir"
    [files_images]="files+dirs under --image-dir"
    [procs_ours]="processes mentioning the soak dir"
    [procs_in_cgroups]="processes in the soak's cgroups"
    [fds_shell]="open fds of this shell"
    [mounts_all]="mounts, all (this mount ns)"
    [cgroups_all]="docker-from-scratch cgroup dirs, all"
    [procs_step09]="processes mentioning step09-oom, all"
    [procs_all]="processes, all (no kernel threads)"
    [zombies_all]="  of which exited, not yet reaped"
    [file_nr]="open files system-wide (file-nr)"
)
declare -A V # V[label,row] = count; lists in $LOG/snap.<label>.<row>

# Counts everything, in this shell (no subshell of ours is alive while the
# processes are counted), and keeps the lists to compare.
snapshot() {
    local label=$1 out=$LOG/snap.$1 p args cg line id comm fds=() lines=()
    # The shell's fds first, before anything here opens one. The glob's own
    # directory fd is counted each time, so the count is comparable.
    fds=(/proc/$$/fd/*)
    V[$label,fds_shell]=${#fds[@]}
    for p in "${fds[@]}"; do
        echo "${p##*/} -> $(readlink "$p" 2>/dev/null)"
    done >"$out.fds_shell"

    awk '{ for (i = 7; i <= NF; i++) if ($i == "-") break; print $5, $(i + 1), $(i + 2) }' \
        /proc/self/mountinfo | sort >"$out.mounts_all"
    grep -F "$T" "$out.mounts_all" >"$out.mounts_ours"

    find /sys/fs/cgroup -path '*docker-from-scratch*' -type d 2>/dev/null | sort >"$out.cgroups_all"
    awk -F/ 'NR == FNR { ids[$0]; next } ($NF in ids)' "$IDS" "$out.cgroups_all" >"$out.cgroups_ours"

    find "$CONTAINERS" -mindepth 1 2>/dev/null | sort >"$out.files_containers"
    find "$IMAGES" -mindepth 1 2>/dev/null | sort >"$out.files_images"

    : >"$out.procs_all"
    : >"$out.procs_ours"
    : >"$out.procs_step09"
    : >"$out.procs_cg"
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        [[ $p == "$$" ]] && continue
        args=()
        mapfile -d '' -t args 2>/dev/null <"/proc/$p/cmdline" || continue
        line="$p ${args[*]}"
        if ((${#args[@]} == 0)); then # a kernel thread, or a process that exited
            comm=
            read -r comm 2>/dev/null <"/proc/$p/stat"
            # pid (comm) state ppid ...: keep "[comm] state ppid N"
            [[ $comm =~ \((.*)\)\ ([A-Za-z])\ ([0-9]+) ]] || continue
            [[ $p == 2 || ${BASH_REMATCH[3]} == 2 ]] && continue # kernel threads are not counted
            line="$p [${BASH_REMATCH[1]}] ${BASH_REMATCH[2]} ppid ${BASH_REMATCH[3]}"
        fi
        echo "$line" >>"$out.procs_all"
        [[ " ${args[*]} " == *" $T/"* ]] && echo "$line" >>"$out.procs_ours"
        [[ ${args[*]} == *step09-oom* ]] && echo "$line" >>"$out.procs_step09"
        lines=()
        mapfile -t lines 2>/dev/null <"/proc/$p/cgroup"
        for cg in "${lines[@]}"; do
            if [[ $cg =~ docker-from-scratch/([0-9a-f]{12}) ]]; then
                id=${BASH_REMATCH[1]}
                echo "$id $line" >>"$out.procs_cg"
                break
            fi
        done
    done
    awk 'NR == FNR { ids[$0]; next } ($1 in ids)' "$IDS" "$out.procs_cg" >"$out.procs_in_cgroups"

    local row
    for row in mounts_all mounts_ours cgroups_all cgroups_ours files_containers files_images \
        procs_all procs_ours procs_step09 procs_in_cgroups; do
        V[$label,$row]=$(wc -l <"$out.$row")
    done
    grep -E '^[0-9]+ \[.*\] Z ' "$out.procs_all" >"$out.zombies_all"
    V[$label,zombies_all]=$(wc -l <"$out.zombies_all")
    read -r V[$label,file_nr] _ </proc/sys/fs/file-nr
}

# Prints, for each row that differs between two snapshots, what differs.
# Returns 1 when a checked row differs.
compare() {
    local a=$1 b=$2 quiet=${3:-} row bad=0
    for row in "${ROWS[@]}"; do
        [[ ${V[$a,$row]} == "${V[$b,$row]}" ]] && continue
        [[ $row == file_nr || $row == zombies_all ]] && continue
        if [[ -n ${CHECKED[$row]:-} ]]; then
            bad=1
        fi
        [[ -n $quiet ]] && continue
        if [[ -n ${CHECKED[$row]:-} ]]; then
            echo "soak: ${LABEL[$row]}: $a ${V[$a,$row]}, $b ${V[$b,$row]}; what differs (< $a, > $b):"
        else
            local note="none of them names this soak's dir or containers: other activity on the host"
            [[ $row == procs_* ]] && note="no live process of this soak's is among them (checked above);
        exited ones (Z, ppid 1: containers killed with their runtime) wait for PID 1 to reap them"
            echo "soak: (not checked) ${LABEL[$row]}: $a ${V[$a,$row]}, $b ${V[$b,$row]}; $note:"
        fi
        diff "$LOG/snap.$a.$row" "$LOG/snap.$b.$row" | grep '^[<>]' | head -n 30 | cut -c1-160 | sed 's/^/        /'
    done
    return $bad
}

print_table() {
    local row label
    printf '%-40s' "" && for label in "$@"; do printf '%10s' "$label"; done && printf '\n'
    for row in "${ROWS[@]}"; do
        printf '%-40s' "${LABEL[$row]}"
        for label in "$@"; do printf '%10s' "${V[$label,$row]}"; done
        if [[ -n ${CHECKED[$row]:-} ]]; then
            printf '  %s\n' "checked"
        else
            printf '  %s\n' "info"
        fi
    done
}

# Runs `cleanup` and requires that it finds nothing.
cleanup_finds_nothing() {
    local out
    out=$("$BIN" cleanup "${DIRS[@]}" 2>&1)
    if [[ $? != 0 || $out != "nothing to clean up"* ]]; then
        fail "$1: cleanup found something (it should not have): $out"
        return 1
    fi
    say "$1: cleanup: $out"
}

# --- start --------------------------------------------------------------------

if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
    cgroup_mode="v2 (unified)"
elif [[ -d /sys/fs/cgroup/unified ]]; then
    cgroup_mode="v1 (hybrid: memory, cpu, pids on v1; v2 at /sys/fs/cgroup/unified)"
else
    cgroup_mode="v1 (legacy)"
fi
say "machine: $(nproc) CPUs, kernel $(uname -r), cgroup $cgroup_mode"
say "binary: $BIN_ORIG (built $(date -r "$BIN_ORIG" '+%F %T'), sha256 $(sha256sum "$BIN" | cut -c1-12));" \
    "repository at $(git -C "$repo" describe --always --dirty 2>/dev/null || echo '?')"
say "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
say "state: $T; N_SEQ=$N_SEQ N_PAR=$N_PAR N_KILL=$N_KILL KILL_PAR=$KILL_PAR"

# --- warm-up: the image cache belongs to the "before" state --------------------

t0=$(now_us)
for mode in default --userns=host --no-idmap; do
    opt=()
    [[ $mode != default ]] && opt=("$mode")
    if ! "$BIN" run "${DIRS[@]}" -m 64m "${opt[@]}" -- true </dev/null >>"$LOG/warmup.err" 2>&1; then
        cat "$LOG/warmup.err"
        die "warm-up run ($mode) failed: see above"
    fi
done
record_ids "$LOG/warmup.err"
say "warm-up: 3 runs (image built and extracted) in $(ms $(($(now_us) - t0))) ms"
# A first cleanup may empty the image cache (an unused uid-shifted copy):
# the "before" state is the one cleanup leaves. Runs that ended normally
# must have left no container behind.
out=$("$BIN" cleanup "${DIRS[@]}" 2>&1) || die "cleanup failed: $out"
say "warm-up: cleanup: $out"
if grep -qe "$CONTAINERS" -e cgroup <<<"$out"; then
    fail "warm-up: runs that ended normally left something for cleanup"
fi
cleanup_finds_nothing "warm-up (second cleanup)" || die "cannot start from a clean state"

snapshot before
say "before: $(for row in "${ROWS[@]}"; do printf '%s=%s ' "$row" "${V[before,$row]}"; done)"

# --- phase A: runs in a row ------------------------------------------------------

say "A: $N_SEQ runs of: step09-oom run -m 64m -- true"
: >"$LOG/A.us"
fails=0
tA=$(now_us)
for ((i = 1; i <= N_SEQ; i++)); do
    t0=$(now_us)
    "$BIN" run "${DIRS[@]}" -m 64m -- true </dev/null >>"$LOG/A.out" 2>>"$LOG/A.err"
    rc=$?
    t1=$(now_us)
    echo $((t1 - t0)) >>"$LOG/A.us"
    if ((rc != 0)); then
        fails=$((fails + 1))
        ((fails <= 5)) && fail "A: run $i exited $rc: $(tail -n 2 "$LOG/A.err" | tr '\n' ' ')"
    fi
    if ((i % 100 == 0 || i == N_SEQ)); then
        el=$((t1 - tA))
        say "A: $i/$N_SEQ runs, $(ms "$el") ms, mean $(ms $((el / i))) ms per run, $fails failed"
    fi
done
elapsedA=$(($(now_us) - tA))
((fails > 5)) && fail "A: $fails runs in all did not exit 0"
record_ids "$LOG/A.err"
# In run order: the first and the last (up to) 100; sorted: the quantiles.
STATS_A=$(awk -v w=100 '
    { d[NR] = $1; sum += $1 }
    END {
        n = NR; if (n == 0) exit
        if (w > int(n / 2)) w = int(n / 2); if (w < 1) w = 1
        for (i = 1; i <= w; i++) { first += d[i]; last += d[n - w + i] }
        printf "mean %.2f ms; first %d: %.2f ms, last %d: %.2f ms (last/first %.2f)",
            sum / n / 1000, w, first / w / 1000, w, last / w / 1000, last / first
    }' "$LOG/A.us")
STATS_A="$STATS_A; $(sort -n "$LOG/A.us" | awk '
    { d[NR] = $1 }
    END {
        n = NR; if (n == 0) exit
        p95 = int(n * 0.95 + 0.5); if (p95 < 1) p95 = 1
        printf "min %.2f ms, median %.2f ms, p95 %.2f ms, max %.2f ms",
            d[1] / 1000, d[int((n + 1) / 2)] / 1000, d[p95] / 1000, d[n] / 1000
    }')"
say "A: $N_SEQ runs in $(ms "$elapsedA") ms: $STATS_A"
cleanup_finds_nothing "A"
snapshot afterA
compare before afterA quiet || { compare before afterA; fail "A: the snapshot after phase A differs from before"; }

# --- phase B: runs at once --------------------------------------------------------

say "B: $N_PAR runs at once of: step09-oom run -m 64m -- sh -c 'echo \$\$ > /dev/null; sleep 0.2'"
pids=()
tB=$(now_us)
for ((i = 1; i <= N_PAR; i++)); do
    # shellcheck disable=SC2016
    "$BIN" run "${DIRS[@]}" -m 64m -- sh -c 'echo $$ > /dev/null; sleep 0.2' \
        </dev/null >"$LOG/B.$i.out" 2>"$LOG/B.$i.err" &
    pids+=($!)
    LIVE+=($!)
done
# While they run: how many containers are live at once (their directories),
# and whether any of their mounts is visible here, in the host's mount
# namespace (none should be: the image is attached inside the container's
# own namespace). Sampled every 20 ms, without forking.
live_max=0
host_mounts_max=0
for ((k = 0; k < 15; k++)); do
    entries=("$CONTAINERS"/*)
    [[ -e ${entries[0]} ]] || entries=()
    ((${#entries[@]} > live_max)) && live_max=${#entries[@]}
    mapfile -t mountinfo </proc/self/mountinfo
    n=0
    for line in "${mountinfo[@]}"; do
        [[ $line == *"$T/"* ]] && n=$((n + 1))
    done
    ((n > host_mounts_max)) && host_mounts_max=$n
    read -r -t 0.02 <>"$NEVER"
done
fails=0
for ((i = 1; i <= N_PAR; i++)); do
    wait "${pids[i - 1]}"
    rc=$?
    if ((rc != 0)); then
        fails=$((fails + 1))
        ((fails <= 5)) && fail "B: run $i exited $rc: $(tail -n 2 "$LOG/B.$i.err" | tr '\n' ' ')"
    fi
done
LIVE=()
elapsedB=$(($(now_us) - tB))
((fails > 5)) && fail "B: $fails runs in all did not exit 0"
((N_PAR > 0)) && record_ids "$LOG"/B.*.err
say "B: $N_PAR runs at once in $(ms "$elapsedB") ms, $fails failed; up to $live_max containers live at once," \
    "their mounts seen in the host's mount namespace meanwhile: $host_mounts_max"
((host_mounts_max == 0)) || fail "B: $host_mounts_max mounts of running containers were visible on the host"
cleanup_finds_nothing "B"
snapshot afterB
compare before afterB quiet || { compare before afterB; fail "B: the snapshot after phase B differs from before"; }

# --- phase C: runtimes killed with SIGKILL, then cleanup ------------------------------

# Pids whose command line is exactly `sleep 100`.
sleep100_pids() {
    local p args
    for p in /proc/[0-9]*; do
        args=()
        mapfile -d '' -t args 2>/dev/null <"$p/cmdline" || continue
        [[ ${#args[@]} == 2 && ${args[0]} == sleep && ${args[1]} == 100 ]] && echo "${p#/proc/}"
    done | sort -n
}

# Whether a descendant of pid is the container's `sleep 100`.
has_sleep_descendant() {
    local queue=("$1") p f c kids args
    while ((${#queue[@]})); do
        p=${queue[0]}
        queue=("${queue[@]:1}")
        for f in /proc/"$p"/task/*/children; do
            kids=()
            read -r -a kids 2>/dev/null <"$f"
            for c in "${kids[@]}"; do
                args=()
                mapfile -d '' -t args 2>/dev/null <"/proc/$c/cmdline"
                [[ ${args[*]:-} == "sleep 100" ]] && return 0
                queue+=("$c")
            done
        done
    done
    return 1
}

# Run in the background: `ms` milliseconds after the runtime started (after
# its exec, so that it is the runtime that gets killed, not the shell that
# forked it), notes how far the runtime got (early: no record of it yet;
# setup: its container directory exists; running: `sleep 100` runs) and kills
# it with SIGKILL. The runtime is a child of the main shell, which waits for
# it only after this killer is done, so its pid is not reused meanwhile unless
# the runtime exited by itself: then the pid no longer names $T and is left
# alone.
killer() {
    local pid=$1 ms=$2 n=$3 mode=$4 stage=early f line tries=0
    # Sleeps without a fork (a sleep(1) would cost milliseconds of the
    # window): a read that times out on a FIFO that no one writes.
    until ours "$pid"; do
        [[ -e /proc/$pid ]] && ((tries++ < 2000)) || break
        read -r -t 0.001 <>"$NEVER"
    done
    ((ms > 0)) && read -r -t "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))" <>"$NEVER"
    for f in "$CONTAINERS"/*/state "$CONTAINERS"/.*.creating/state; do
        [[ -f $f ]] || continue
        while read -r line; do
            [[ $line == "runtime_pid $pid" ]] && stage=setup
        done 2>/dev/null <"$f"
    done
    has_sleep_descendant "$pid" && stage=running
    if ours "$pid"; then
        kill -KILL "$pid"
    else
        stage=exited-by-itself
    fi
    echo "$n $mode $ms $stage" >>"$LOG/C.stages"
}

# The runtimes, in waves of KILL_PAR. Half of the delays are drawn from 0-300
# ms, half from 0-60 ms (about the time a runtime takes to start its
# container here), so that both setup and running containers get killed.
phase_c() {
    local w n k rc pid opt mode rpids kpids
    for ((w = 0; w < N_KILL; w += KILL_PAR)); do
        rpids=()
        kpids=()
        for ((n = w; n < w + KILL_PAR && n < N_KILL; n++)); do
            case $((n % 3)) in
            0) opt=() mode=default ;;
            1) opt=(--userns=host) mode=--userns=host ;;
            2) opt=(--no-idmap) mode=--no-idmap ;;
            esac
            "$BIN" run "${DIRS[@]}" -m 64m "${opt[@]}" -- sleep 100 </dev/null >"$LOG/C.$n.out" 2>"$LOG/C.$n.err" &
            rpids+=($!)
            LIVE+=($!)
            if ((n % 2)); then
                killer "$!" $((RANDOM % 61)) "$n" "$mode" &
            else
                killer "$!" $((RANDOM % 301)) "$n" "$mode" &
            fi
            kpids+=($!)
        done
        for pid in "${kpids[@]}"; do
            wait "$pid"
        done
        for ((k = 0; k < ${#rpids[@]}; k++)); do
            wait "${rpids[k]}"
            rc=$?
            echo "$((w + k)) $rc" >>"$LOG/C.status"
            if ((rc != 137)); then
                fail "C: runtime $((w + k)) exited $rc, not 137 (SIGKILL): $(tail -n 2 "$LOG/C.$((w + k)).err" | tr '\n' ' ')"
            fi
        done
        LIVE=()
        record_ids # the directories the killed runtimes left, before cleanup removes them
    done
}

say "C: $N_KILL runtimes of: step09-oom run -m 64m [--userns=host | --no-idmap] -- sleep 100," \
    "$KILL_PAR at a time, each killed with SIGKILL 0-300 ms (every other one: 0-60 ms) after its exec"
sleep100_pids >"$LOG/C.sleep100.before"
: >"$LOG/C.stages"
: >"$LOG/C.status"
tC=$(now_us)
# bash reports each job killed by a signal ("Killed"): into the log with them.
phase_c 2>>"$LOG/C.shell-stderr"
elapsedC=$(($(now_us) - tC))
stages=$(awk '{ n[$4]++ } END { for (s in n) printf "%s %d, ", s, n[s] }' "$LOG/C.stages" | sed 's/, $//')
modes=$(awk '{ n[$2]++ } END { for (s in n) printf "%s %d, ", s, n[s] }' "$LOG/C.stages" | sed 's/, $//')
say "C: $N_KILL runtimes killed in $(ms "$elapsedC") ms; modes: ${modes:-none}; killed at: ${stages:-none}"
if ((N_KILL > 0)); then
    delays=$(awk '{ s += $3; if (min == "" || $3 < min) min = $3; if ($3 > max) max = $3 }
        END { printf "delays %d-%d ms, mean %d ms", min, max, s / NR }' "$LOG/C.stages")
    say "C: $delays"
fi

out=$("$BIN" cleanup "${DIRS[@]}" 2>&1)
rc=$?
echo "$out" >"$LOG/C.cleanup1"
record_ids "$LOG/C.cleanup1"
lines=$(grep -c . <<<"$out")
say "C: cleanup exited $rc and printed $lines lines:" \
    "$(grep -c 'removed cgroup' <<<"$out") 'removed cgroup'," \
    "$(grep -c "removed $CONTAINERS" <<<"$out") 'removed <container dir>'," \
    "$(grep -vc -e 'removed cgroup' -e "removed $CONTAINERS" <<<"$out") other"
sed 's/^/        /' <<<"$out" | head -n 200
((rc == 0)) || fail "C: cleanup exited $rc"
cleanup_finds_nothing "C (second cleanup)"

# Every `sleep 100` that appeared during phase C: one of this soak's is a leak.
sleep100_pids >"$LOG/C.sleep100.after"
leaks=0
for pid in $(comm -13 "$LOG/C.sleep100.before" "$LOG/C.sleep100.after"); do
    cg=$(grep -oE 'docker-from-scratch/[0-9a-f]{12}' "/proc/$pid/cgroup" 2>/dev/null | head -n 1)
    ppid=$(awk '/^PPid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
    [[ -n $ppid ]] || continue # gone meanwhile
    if { [[ -n $cg ]] && grep -qx "${cg##*/}" "$IDS"; } || ours "$ppid"; then
        leaks=$((leaks + 1))
        fail "C: a container of this soak survived its runtime: pid $pid (sleep 100), ppid $ppid, cgroup ${cg:-none}"
    else
        say "C: (not this soak's) new sleep 100: pid $pid, ppid $ppid, cgroup ${cg:-none}"
    fi
done
say "C: surviving 'sleep 100' of this soak: $leaks"

# --- after ------------------------------------------------------------------------

snapshot after
for ((s = 0; s < SETTLE; s++)); do
    compare before after quiet && break
    sleep 1
    snapshot after
done
((s > 0)) && say "after: took $s s to settle"

echo
say "snapshots (checked rows must equal 'before'):"
print_table before afterA afterB after
echo
compare before after || fail "the snapshot after the soak differs from before (see above)"

echo
say "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
say "summary: A $N_SEQ in a row: $(ms "$elapsedA") ms, $STATS_A"
say "summary: B $N_PAR at once: $(ms "$elapsedB") ms"
say "summary: C $N_KILL killed (${stages:-none}); cleanup removed $lines things; second cleanup: nothing; sleep 100 left: $leaks"
if ((${#FAILURES[@]})); then
    say "FAILED (${#FAILURES[@]}):"
    printf '    %s\n' "${FAILURES[@]}"
    exit 1
fi
say "PASSED: nothing was left behind"
exit 0
