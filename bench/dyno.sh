#!/usr/bin/env bash
# Runs a command in a simulated dyno: a child memory cgroup of the caller's own cgroup,
# limited to a Heroku dyno's memory quota, as a platform puts each dyno in a cgroup of its own.
#
#   bench/dyno.sh SIZE -- COMMAND [ARGS...]
#
#   bench/dyno.sh standard-1x -- env PORT=5000 WEB_CONCURRENCY=2 target/release/runicorn
#   bench/dyno.sh 64 -- cat /proc/self/cgroup
#
# SIZE is a dyno size, standard-1x (512 MB), standard-2x (1 GB), performance-m (2.5 GB) or
# performance-l (14 GB) (also 1x, 2x, perf-m, perf-l), or a number of MB; MB are MiB, as in
# Heroku's quotas and runicorn's memory_quota. It is the limit `runicorn tune --dyno SIZE`
# gives each trial.
#
# The script makes the cgroup dyno-<its pid> under its own memory cgroup (cgroup v1: the
# memory controller's hierarchy, memory.limit_in_bytes, and memory.memsw.limit_in_bytes when
# swap is accounted; cgroup v2: memory.max and memory.swap.max), moves itself into it,
# prints one line on stderr naming the cgroup and the limit, and execs COMMAND, which keeps
# its pid. Swap is limited to nothing: past the quota the kernel kills a process of the
# cgroup (a runicorn master logs it as a worker killed, "perhaps out of memory"), where a
# Heroku dyno would swap first (R14) and be killed later (R15).
#
# Nothing is left running to remove the cgroup: once COMMAND and its children have exited,
# `rmdir` the directory the line named. When the script fails before the exec, it removes
# what it made, prints one line saying why and exits 1 (2 for a bad command line).
#
# Needs write access to the cgroup: root, or a delegated subtree. On cgroup v2, the memory
# controller must be enabled for the children of the caller's cgroup (its
# cgroup.subtree_control), which a cgroup holding processes cannot do (the "no internal
# processes" rule); under systemd, `systemd-run --scope -p MemoryMax=512M -p MemorySwapMax=0
# COMMAND` makes such a cgroup instead. Kernel documentation: admin-guide/cgroup-v1/memory.rst,
# admin-guide/cgroup-v2.rst.
set -uo pipefail

me=dyno.sh
usage() {
    echo "usage: bench/dyno.sh SIZE -- COMMAND [ARGS...]  (SIZE: standard-1x, standard-2x, performance-m, performance-l, or a number of MB)" >&2
    exit 2
}
fail() {
    echo "$me: $*" >&2
    exit 1
}

[ $# -ge 1 ] || usage
case ${1,,} in
    -h | --help) usage ;;
    standard-1x | 1x) mb=512 ;;
    standard-2x | 2x) mb=1024 ;;
    performance-m | perf-m) mb=2560 ;;
    performance-l | perf-l) mb=14336 ;;
    *)
        mb=${1,,}
        mb=${mb%mb}
        if [[ ! $mb =~ ^[0-9]+$ ]] || ((10#$mb == 0 || ${#mb} > 9)); then
            echo "$me: unknown size '$1': standard-1x, standard-2x, performance-m, performance-l, or a number of MB" >&2
            exit 2
        fi
        mb=$((10#$mb))
        ;;
esac
shift
[ "${1:-}" = -- ] || usage
shift
[ $# -ge 1 ] || usage
command -v -- "$1" >/dev/null || fail "command not found: $1"
bytes=$((mb * 1024 * 1024))

# The caller's cgroup, from /proc/self/cgroup (cgroups(7)): a v1 line whose controllers
# include memory wins (the controller is on one hierarchy only), else the v2 line "0::PATH".
version='' path=''
while IFS=: read -r id controllers p; do
    if [[ ,$controllers, == *,memory,* ]]; then
        version=1 path=$p
        break
    fi
    [ "$id" = 0 ] && [ -z "$controllers" ] && version=2 path=$p
done </proc/self/cgroup
[ -n "$version" ] || fail "no memory cgroup in /proc/self/cgroup (a kernel without cgroups?)"

# Where that hierarchy is mounted, from /proc/self/mountinfo (proc(5)): the mount point, and
# the cgroup the mount shows at its root (/ but in some containers).
mount='' mroot=''
while read -r -a f; do
    for ((i = 6; i < ${#f[@]}; i++)); do [ "${f[i]}" = - ] && break; done
    fstype=${f[i + 1]:-} opts=${f[i + 3]:-}
    if { [ "$version" = 1 ] && [ "$fstype" = cgroup ] && [[ ,$opts, == *,memory,* ]]; } ||
        { [ "$version" = 2 ] && [ "$fstype" = cgroup2 ]; }; then
        mroot=${f[3]} mount=${f[4]}
        break
    fi
done </proc/self/mountinfo
[ -n "$mount" ] || fail "the cgroup v$version hierarchy holding the memory controller is not mounted"
if [ "$mroot" != / ] && [[ $path == "$mroot"* ]]; then
    path=${path#"$mroot"}
fi
parent=$mount${path%/}
[ -d "$parent" ] || fail "this process's cgroup is not at $parent (a container without its own cgroup namespace?)"

if [ "$version" = 2 ]; then
    [[ " $(cat "$parent/cgroup.subtree_control" 2>/dev/null) " == *" memory "* ]] ||
        fail "the memory controller is not enabled for the children of $parent (cgroup.subtree_control); on cgroup v2 run from a cgroup that delegates it, or use systemd-run --scope -p MemoryMax=${mb}M -p MemorySwapMax=0"
fi

dir=$parent/dyno-$$
# Writes VALUE to FILE; on failure sets why to the reason the kernel gave.
why=''
put() {
    local out
    out=$({ printf '%s\n' "$2" >"$1"; } 2>&1) && return 0
    why=${out##*: }
    return 1
}
undo() {
    rmdir "$dir" 2>/dev/null || echo "$me: could not remove $dir" >&2
    fail "$@"
}

if ! out=$(mkdir -- "$dir" 2>&1); then
    fail "cannot create $dir: ${out##*: } (root, or a delegated cgroup, is needed)"
fi
if [ "$version" = 1 ]; then
    put "$dir/memory.limit_in_bytes" "$bytes" || undo "cannot set memory.limit_in_bytes in $dir: $why"
    swap='no swap'
    if [ -e "$dir/memory.memsw.limit_in_bytes" ]; then
        put "$dir/memory.memsw.limit_in_bytes" "$bytes" || undo "cannot set memory.memsw.limit_in_bytes in $dir: $why"
    else
        swap='swap not limited (swap accounting is off)'
    fi
else
    [ -e "$dir/memory.max" ] || undo "$dir has no memory.max: the memory controller is not enabled for it"
    put "$dir/memory.max" "$bytes" || undo "cannot set memory.max in $dir: $why"
    swap='no swap'
    if [ -e "$dir/memory.swap.max" ]; then
        put "$dir/memory.swap.max" 0 || undo "cannot set memory.swap.max in $dir: $why"
    else
        swap='swap not limited (swap accounting is off)'
    fi
fi
put "$dir/cgroup.procs" $$ || undo "cannot move into $dir: $why"

echo "$me: memory cgroup $dir (cgroup v$version), limit $mb MB ($bytes bytes), $swap; running $1 as pid $$" >&2
exec -- "$@"
