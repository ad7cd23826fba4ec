#!/usr/bin/env bash
# `tcptab record` at N loopback connections (bench/sockets_at_scale.py,
# default 10,000: 20,000 sockets and the TIME_WAITs of every 50th), every
# 5 s, first with no churn (CPU per poll), then with RATE connections
# opened and closed per second (bench/churn_at_rate.py, default 500; each
# is two sockets, so twice as many destroy notifications): CPU per event,
# and the database's growth per hour. CPU is user + system time from
# /proc/PID/stat of the recorder. Run it alone.
#
#   sudo bench/history.sh [N] [RATE] [SECONDS]     (default: 10000 500 120)
#
# Then, with the same churn and --retention 60s, the database's size each
# minute for BOUNDED seconds (default 300): it stops growing.
. "$(dirname "$0")/hold.sh"
build
n=${1:-10000}
rate=${2:-500}
seconds=${3:-120}
work=$(mktemp -d /tmp/tcptab-history-bench-XXXXXX)

size_of() {
  sqlite3 "$1" 'PRAGMA wal_checkpoint(TRUNCATE)' > /dev/null
  stat -c %s "$1"
}
field() { sqlite3 "$1" "$2"; }

hold "$n"
echo "N=$n: $sockets sockets held"

# 0. The peer: one snapshot of the same by ss (sockets, owners, tcp_info),
#    what a periodic `ss -tanpi` would cost per poll; median of 5.
ss_cpu=$(ss_median)
echo "ss -tanpi: $(python3 -c "import sys; print(f'{float(sys.argv[1]) * 1000:.0f}')" "$ss_cpu") ms CPU per snapshot (median of 5)"

# 1. No churn: CPU per poll.
db=$work/quiet.db
nsenter -t "$pid" -n "$bin" record --db "$db" --interval 5 &
rec=$!
sleep 2.5                                  # the first poll (its inserts) is done
c0=$(cpu_of "$rec"); p0=$(field "$db" 'SELECT count(*) FROM polls')
sleep 60
c1=$(cpu_of "$rec"); p1=$(field "$db" 'SELECT count(*) FROM polls')
kill -TERM "$rec"; wait "$rec"
quiet=$(python3 -c "import sys; c0, c1, p0, p1 = map(float, sys.argv[1:]); print((c1 - c0) / (p1 - p0))" "$c0" "$c1" "$p0" "$p1")
python3 -c "import sys; q, s = map(float, sys.argv[1:]); print(f'quiet: {q * 1000:.1f} ms CPU per poll, {q / s:.2f}x ss -tanpi')" "$quiet" "$ss_cpu"

# 2. RATE connections per second: CPU per event, growth per hour.
db=$work/churn.db
churn "$rate" 65                       # then TIME_WAIT fills to its steady level
nsenter -t "$pid" -n "$bin" record --db "$db" --interval 5 &
rec=$!
sleep 7.5                                   # past the first poll and one more
c0=$(cpu_of "$rec"); p0=$(field "$db" 'SELECT count(*) FROM polls')
e0=$(field "$db" 'SELECT sum(notifications) FROM polls'); s0=$(size_of "$db"); t0=$(date +%s.%N)
sleep "$seconds"
c1=$(cpu_of "$rec"); p1=$(field "$db" 'SELECT count(*) FROM polls')
e1=$(field "$db" 'SELECT sum(notifications) FROM polls'); s1=$(size_of "$db"); t1=$(date +%s.%N)
rows=$(field "$db" 'SELECT count(*) FROM connections')
socks=$(field "$db" 'SELECT max(sockets) FROM polls')
kill -TERM "$rec"; wait "$rec"

# 3. The same churn with --retention 60s for BOUNDED seconds: the file's
#    size each minute (it stops growing once the window is full).
db=$work/bounded.db
nsenter -t "$pid" -n "$bin" record --db "$db" --interval 5 --retention 60s &
rec=$!
sizes=()
for minute in $(seq 1 $(( ${BOUNDED:-300} / 60 ))); do
  sleep 60
  sizes+=("$(( $(stat -c %s "$db") / 1048576 ))+$(( $(stat -c %s "$db-wal" 2>/dev/null || echo 0) / 1048576 ))")
done
kill -TERM "$rec"; wait "$rec"
echo "bounded (--retention 60s): file+WAL MiB at each minute: ${sizes[*]}"
exec 4>&-
wait "$churner" || true
python3 - "$c0" "$c1" "$p0" "$p1" "$e0" "$e1" "$s0" "$s1" "$t0" "$t1" "$rows" "$socks" "$quiet" <<'PY'
import sys
c0, c1, p0, p1, e0, e1, s0, s1, t0, t1, rows, socks, quiet = map(float, sys.argv[1:])
polls, events, secs = p1 - p0, e1 - e0, t1 - t0
cpu = c1 - c0
print(f"churn: {events / secs:.0f} destroy notifications/s, {polls:.0f} polls of up to {socks:.0f} sockets in {secs:.0f} s")
print(f"churn: {cpu / secs * 100:.1f}% of a core; {cpu / polls * 1000:.1f} ms CPU per poll all included, "
      f"{cpu / events * 1e6:.1f} us CPU per destroy notification all included, "
      f"{(cpu - polls * quiet) / events * 1e6:.1f} us beyond the quiet polls' cost")
print(f"churn: database +{(s1 - s0) / 2**20:.1f} MiB in {secs:.0f} s = {(s1 - s0) / secs * 3600 / 2**30:.2f} GiB per hour "
      f"({(s1 - s0) / events:.0f} bytes per notified connection); {rows:.0f} rows")
PY
echo "kept: $work (churn.db: a real recording, for bench/history_day.sh)"
release
