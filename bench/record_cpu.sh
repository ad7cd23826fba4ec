#!/usr/bin/env bash
# The recorder's CPU per destroy notification under churn, for one or more
# tcptab binaries side by side (before and after a change): N loopback
# connections held (default 10,000) and RATE connections opened and closed
# a second (default 500, bench/churn_at_rate.py), then each binary runs
# `record --interval 5` for SECONDS_EACH (default 60) after its second poll, in
# ROUNDS interleaved rounds (default 2). CPU is user + system time from
# /proc/PID/stat; notifications are the file's `polls.notifications`. Each
# run's line is followed by its threads' shares (/proc/PID/task/*/stat).
# Run it alone.
#
#   sudo bench/record_cpu.sh BIN [BIN ...]     (N, RATE, SECONDS_EACH, ROUNDS from the environment)
. "$(dirname "$0")/hold.sh"
[ $# -ge 1 ] || { echo "usage: $0 BIN [BIN ...]" >&2; exit 2; }
n=${N:-10000}
rate=${RATE:-500}
seconds=${SECONDS_EACH:-60}
rounds=${ROUNDS:-2}
work=$(mktemp -d /tmp/tcptab-record-cpu-XXXXXX)
field() { sqlite3 "$1" "$2"; }

hold "$n"
churn "$rate" 62                       # then TIME_WAIT at its steady level
for round in $(seq 1 "$rounds"); do
  for b in "$@"; do
    db=$work/r.db
    rm -f "$db" "$db-wal" "$db-shm"
    nsenter -t "$pid" -n "$b" record --db "$db" --interval 5 2> /dev/null &
    rec=$!
    sleep 7.5                                 # past the first poll and one more
    tcpu "$rec" > "$work/t0"
    c0=$(cpu_of "$rec"); e0=$(field "$db" 'SELECT sum(notifications) FROM polls')
    sleep "$seconds"
    tcpu "$rec" > "$work/t1"
    c1=$(cpu_of "$rec"); e1=$(field "$db" 'SELECT sum(notifications) FROM polls')
    kill -TERM "$rec"; wait "$rec" || true
    python3 -c "import sys; c0, c1, e0, e1, s = map(float, sys.argv[1:6]); print(f'round {sys.argv[6]} {sys.argv[7]}: {(c1 - c0) / s * 100:.1f}% of a core, {(c1 - c0) / (e1 - e0) * 1e6:.0f} us per notification ({e1 - e0:.0f})')" \
      "$c0" "$c1" "$e0" "$e1" "$seconds" "$round" "$b"
    join "$work/t0" "$work/t1" | awk -v n="$(python3 -c "print(max(1, $e1 - $e0))")" \
      '$3 > $2 {printf "  %-16s %6.2f us per notification\n", $1, ($3 - $2) * 1e6 / n}'
  done
done
exec 4>&-
release
rm -rf "$work"
