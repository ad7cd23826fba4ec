#!/usr/bin/env bash
# What workload attribution costs (issue 26): N loopback connections held
# by 250 processes in CGROUP_COUNT cgroups (default 50) of the cgroup2 file
# system, in a fresh network namespace; the same listing with and without
# --workload, summary with and without it, and `cgroup PATH` against ss's.
#
#   sudo bench/workloads.sh [N]          (default: 50000)
#
# Medians of RUNS (default 7) interleaved runs, in one run with ss.
. "$(dirname "$0")/hold.sh"
build
runs=${RUNS:-7}
n=${1:-50000}
mount=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
[ -n "$mount" ] || { echo "no cgroup2 file system mounted" >&2; exit 1; }
export CGROUPS=$mount/tcptab-bench-$$
trap 'release 2>/dev/null || true; find "$CGROUPS" -depth -type d -exec rmdir {} + 2>/dev/null || true' EXIT
hold "$n"
one="/tcptab-bench-$$/bench-7.service"
echo "== N=$n connections: $sockets sockets in the namespace of pid $pid, held by ${CGROUP_COUNT:-50} cgroups under $CGROUPS"
nsenter -t "$pid" -n python3 bench/timeit.py --runs "$runs" --json "/tmp/tcptab-workloads-$n.json" \
  "tcptab list=exec $bin list --source netlink" \
  "tcptab list --workload=exec $bin list --source netlink --workload" \
  "tcptab list --format json=exec $bin list --source netlink --format json" \
  "tcptab list --format json --workload=exec $bin list --source netlink --format json --workload" \
  "tcptab summary=exec $bin summary --source netlink" \
  "tcptab summary --workload=exec $bin summary --source netlink --workload" \
  "ss -tan cgroup=exec ss -tan 'cgroup $one'" \
  "tcptab list cgroup=exec $bin list --source netlink 'cgroup $one'"
