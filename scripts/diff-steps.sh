#!/bin/sh
# Show what one step adds to the previous one: `diff -u` of their src/main.rs.
#
# Usage:   scripts/diff-steps.sh 03 04       step03's main.rs against step04's
#          scripts/diff-steps.sh 04          the same: a step against the one before
#          scripts/diff-steps.sh             every adjacent pair, each with a header
#          scripts/diff-steps.sh --stat [..] only the number of changed lines per pair
#
# A step is named by its number (3, 03), `step03` or its directory
# (step03-mount-ns). Exits 0 whether or not the files differ, 2 on bad input.
#
# POSIX sh: works with GNU diff and busybox diff.

set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

die() {
    echo "diff-steps: $*" >&2
    exit 2
}

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "$0"
    exit "$1"
}

steps=$(for dir in step[0-9][0-9]-*/; do [ -f "$dir/src/main.rs" ] && echo "${dir%/}"; done)
[ -n "$steps" ] || die "no stepNN-*/src/main.rs under $repo"

# The directory of a step, from any of the names above.
resolve() {
    case "$1" in
    step*) number=${1#step}; number=${number%%-*} ;;
    *) number=$1 ;;
    esac
    case "$number" in
    [1-9]) number=0$number ;;
    [0-9][0-9]) ;;
    *) die "not a step: $1 (steps: $(echo $steps))" ;;
    esac
    for step in $steps; do
        case "$step" in "step$number"-*) echo "$step"; return 0 ;; esac
    done
    die "no step $1 (steps: $(echo $steps))"
}

# The step before $1, or nothing for the first.
previous() {
    before=
    for step in $steps; do
        [ "$step" = "$1" ] && break
        before=$step
    done
    echo "$before"
}

# diff -u of two steps' main.rs, labelled with their paths. diff exits 1 when
# the files differ, which is the point here; 2 is a real error.
unified() {
    status=0
    diff -u -L "$1/src/main.rs" -L "$2/src/main.rs" "$1/src/main.rs" "$2/src/main.rs" || status=$?
    [ "$status" -le 1 ] || die "diff $1 $2 failed"
}

# `+ADDED -REMOVED` lines between two steps (hunk headers and labels excluded).
counts() {
    unified "$1" "$2" | awk '
        /^(\+\+\+|---) / && NR <= 2 { next }
        /^\+/ { added++ }
        /^-/ { removed++ }
        END { printf "%d %d\n", added, removed }'
}

stat_line() {
    set -- "$1" "$2" $(counts "$1" "$2")
    printf '%-18s -> %-18s %4d lines changed (+%d -%d)\n' "$1" "$2" $(($3 + $4)) "$3" "$4"
}

header() {
    set -- "$1" "$2" $(counts "$1" "$2")
    echo "==== $1 -> $2: $(($3 + $4)) lines changed (+$3 -$4)"
}

stat=no
case "${1:-}" in
-h | --help) usage 0 ;;
--stat) stat=yes; shift ;;
-*) echo "diff-steps: unknown option $1" >&2; usage 2 >&2 ;;
esac

case $# in
0)
    before=
    for step in $steps; do
        if [ -n "$before" ]; then
            if [ "$stat" = yes ]; then
                stat_line "$before" "$step"
            else
                header "$before" "$step"
                unified "$before" "$step"
                echo
            fi
        fi
        before=$step
    done
    ;;
1 | 2)
    if [ $# = 1 ]; then
        new=$(resolve "$1")
        old=$(previous "$new")
        [ -n "$old" ] || die "$new is the first step: nothing to compare it with"
    else
        old=$(resolve "$1")
        new=$(resolve "$2")
    fi
    if [ "$stat" = yes ]; then
        stat_line "$old" "$new"
    else
        unified "$old" "$new"
    fi
    ;;
*) usage 2 >&2 ;;
esac
