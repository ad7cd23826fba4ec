#!/usr/bin/env bash
# Where the recorder's CPU goes under churn: N connections held (default
# 10,000: 20,000 sockets), RATE connections opened and closed a second
# (default 500, bench/churn_at_rate.py), TIME_WAIT filled to its steady
# level, then `tcptab record --interval 5` profiled by perf for SECONDS
# (default 25) with DWARF call graphs. Prints the recorder's CPU over that
# time; the profile is in $work/perf.data (`perf report -i ... --children`).
# Run it alone, as root.
#
#   bench/perf_churn.sh [N] [RATE] [SECONDS]
. "$(dirname "$0")/hold.sh"
build
n=${1:-10000}
rate=${2:-500}
seconds=${3:-25}
work=$(mktemp -d /tmp/tcptab-perf-churn-XXXXXX)
hold "$n"
echo "N=$n: $sockets sockets held"
churn "$rate" 62                       # then TIME_WAIT at its steady level
echo "TIME_WAITs: $(nsenter -t "$pid" -n ss -Htan state time-wait | wc -l)"
nsenter -t "$pid" -n "$bin" record --db "$work/churn.db" --interval 5 &
rec=$!
sleep 7.5                                   # past the first poll and one more
c0=$(cpu_of "$rec")
perf record -q -F ${FREQ:-499} --call-graph dwarf,16384 -p "$rec" -o "$work/perf.data" -- sleep "$seconds" 2> /dev/null
c1=$(cpu_of "$rec")
python3 -c "import sys; c, s, r = map(float, sys.argv[1:]); print(f'recorder: {c:.2f} s of CPU in {s:.0f} s, {c / s * 100:.1f}% of a core, {c / s / (2 * r) * 1e6:.1f} us per destroy notification ({2 * r:.0f} a second)')" "$(echo "$c1 - $c0" | bc)" "$seconds" "$rate"
kill -TERM "$rec"; wait "$rec" || true
exec 4>&-
release
echo "profile: $work/perf.data"
