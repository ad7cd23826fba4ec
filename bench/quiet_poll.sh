#!/usr/bin/env bash
# The recorder's CPU per quiet poll (no connection opened or closed) at N
# loopback connections held (default 10,000: 20,000 sockets and the
# TIME_WAITs of every 50th), for each tcptab binary given (default: this
# tree's release build), in turns, beside one `ss -tanpi` of the same
# table (median of 5, before and after). CPU is user + system time of the
# recorder from /proc/PID/stat over SECONDS (default 60) after its first
# poll, per poll it wrote. Run it alone. INTERVAL (default 5) is the
# recorder's `--interval` in seconds: 1 gives five times the polls.
#
#   sudo bench/quiet_poll.sh [N] [SECONDS] [BIN...]
. "$(dirname "$0")/hold.sh"
n=${1:-10000}
seconds=${2:-60}
shift $(( $# >= 2 ? 2 : $# ))
if [ $# -eq 0 ]; then build; set -- "$bin"; fi
work=$(mktemp -d /tmp/tcptab-quiet-bench-XXXXXX)

hold "$n"
echo "N=$n: $sockets sockets held"

ss_before=$(ss_median)
for b in "$@"; do
  db=$work/quiet-$RANDOM.db
  nsenter -t "$pid" -n "$b" record --db "$db" --interval "${INTERVAL:-5}" &
  rec=$!
  sleep "$(python3 -c "print(1.5 * ${INTERVAL:-5})")"   # the first poll (its inserts) and one more
  c0=$(cpu_of "$rec"); p0=$(sqlite3 "$db" 'SELECT count(*) FROM polls')
  sleep "$seconds"
  c1=$(cpu_of "$rec"); p1=$(sqlite3 "$db" 'SELECT count(*) FROM polls')
  kill -TERM "$rec"; wait "$rec"
  echo "$b $c0 $c1 $p0 $p1" >> "$work/runs"
done
ss_after=$(ss_median)
release
python3 - "$ss_before" "$ss_after" "$work/runs" <<'PY'
import sys
before, after = float(sys.argv[1]), float(sys.argv[2])
ss = (before + after) / 2
print(f"ss -tanpi: {before * 1000:.0f} ms before, {after * 1000:.0f} ms after (CPU per snapshot, median of 5)")
for line in open(sys.argv[3]):
    b, c0, c1, p0, p1 = line.split()
    per = (float(c1) - float(c0)) / (int(p1) - int(p0))
    print(f"{b}: {per * 1000:.1f} ms CPU per quiet poll over {int(p1) - int(p0)} polls, {per / ss:.2f}x ss -tanpi")
PY
rm -rf "$work"
