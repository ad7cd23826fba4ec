#!/usr/bin/env bash
# Where a quiet poll's CPU goes: N connections held (default 10,000:
# 20,000 sockets), nothing opened or closed, `tcptab record --interval 1`
# profiled by perf with DWARF call graphs for SECONDS (default 20). Prints
# the recorder's CPU per poll and three `ss -tanpi` of the same table (GNU
# time: user and system seconds); the profile is in $work/perf.data
# (`perf report -i ... --children`). Run it alone, as root.
#
#   bench/perf_quiet.sh [N] [SECONDS]
. "$(dirname "$0")/hold.sh"
build
n=${1:-10000}
seconds=${2:-20}
work=$(mktemp -d /tmp/tcptab-perf-quiet-XXXXXX)
hold "$n"
echo "N=$n: $sockets sockets held"
nsenter -t "$pid" -n "$bin" record --db "$work/q.db" --interval 1 &
rec=$!
sleep 4                                     # past the first poll (its inserts)
c0=$(cpu_of "$rec"); p0=$(sqlite3 "$work/q.db" 'SELECT count(*) FROM polls')
perf record -q -F 999 --call-graph dwarf,16384 -p "$rec" -o "$work/perf.data" -- sleep "$seconds" 2> /dev/null
c1=$(cpu_of "$rec"); p1=$(sqlite3 "$work/q.db" 'SELECT count(*) FROM polls')
python3 -c "import sys; c0, c1, p0, p1 = map(float, sys.argv[1:]); print(f'recorder: {(c1 - c0) / (p1 - p0) * 1000:.1f} ms of CPU per poll over {p1 - p0:.0f} polls')" "$c0" "$c1" "$p0" "$p1"
for i in 1 2 3; do
  nsenter -t "$pid" -n /usr/bin/time -f "ss -tanpi: %U s user, %S s system" ss -tanpi > /dev/null
done
kill -TERM "$rec"; wait "$rec" || true
release
echo "profile: $work/perf.data"
