#!/usr/bin/env bash
# What shipping adds to the recorder, thread by thread: each binary records
# the same churn without shipping and with `--clickhouse`, in turns, and
# each thread's CPU (user + system, from /proc/PID/task/*/stat) is given
# per destroy notification recorded, with the share shipping added (the
# process's CPU with shipping against without, per notification). Needs a
# ClickHouse with the tables made (`tcptab schema clickhouse --clickhouse
# URL`; bench/fleet.sh starts one and keeps its directory), or
# bench/sink.py's URL: a store that keeps nothing, so that the recorder's
# cost is measured without a server's inserts and merges on the same
# machine. Run it alone, as root.
#
#   sudo bench/ship_threads.sh URL BINARY...    (each binary, ROUNDS rounds: 2)
#
# HELD connections held (1,000; 10,000 is bench/history.sh's scene) and
# 500 opened and closed a second (bench/churn_at_rate.py) in a fresh
# namespace; each run records with `--interval 5` for SECONDS (40) after
# 12 s of warm-up.
. "$(dirname "$0")/hold.sh"
url=$1
shift
rounds=${ROUNDS:-2}
seconds=${SECONDS_EACH:-40}
hold "${HELD:-1000}"
work=$(mktemp -d /tmp/shipcpu-XXXXXX)
exec 4> >(exec nsenter -t "$pid" -n python3 bench/churn_at_rate.py 500 > "$work/churn.out")
until grep -q CHURNING "$work/churn.out" 2>/dev/null; do sleep 0.2; done
sleep "${WARM:-30}"                     # 62: TIME_WAIT at its steady level
notes() { sqlite3 "$1" 'SELECT coalesce(sum(notifications), 0) FROM polls'; }
for round in $(seq "$rounds"); do
for b in "$@"; do
for mode in local ship; do
  db=$work/$(basename $b)-$mode-$round.db
  extra=()
  [ $mode = ship ] && extra=(--clickhouse "$url" --host-name "cpu-$round")
  "$b" record --db "$db" --netns-pid "$pid" --interval 5 "${extra[@]}" 2> "$work/err" &
  rec=$!
  sleep 12
  tcpu $rec > $work/c0; n0=$(notes "$db")
  sleep "$seconds"
  tcpu $rec > $work/c1; n1=$(notes "$db")
  kill -TERM $rec; wait $rec || true
  n=$((n1 - n0))
  total=$(join $work/c0 $work/c1 | awk -v n=$n '{t+=$3-$2} END {printf "%.2f", t*1e6/(n>0?n:1)}')
  echo "$(basename $b) $mode round $round: $n notifications, $total us CPU per notification"
  join $work/c0 $work/c1 | awk -v n=$n '$3-$2>0 {d=$3-$2; printf "  %-16s %6.2f s  %6.2f us/notification\n", $1, d, d*1e6/(n>0?n:1)}'
  shipper=$(join $work/c0 $work/c1 | awk -v n=$n '$1 == "ship" {printf "%.2f", ($3-$2)*1e6/(n>0?n:1)}')
  echo "$(basename $b) $mode $total ${shipper:-0}" >> "$work/results"
done
done
done
exec 4>&-
release
# The medians of each binary's runs, and what shipping added.
python3 - "$work/results" <<'PY'
import statistics, sys
runs = {}
threads = {}
for line in open(sys.argv[1]):
    b, mode, us, shipper = line.split()
    runs.setdefault(b, {}).setdefault(mode, []).append(float(us))
    if mode == "ship":
        threads.setdefault(b, []).append(float(shipper))
for b, modes in runs.items():
    local, ship = (statistics.median(modes.get(m, [0])) for m in ("local", "ship"))
    added = (ship - local) / local * 100 if local else float("nan")
    print(f"{b}: {local:.1f} us per notification without shipping, {ship:.1f} with (medians of {len(modes.get('ship', []))}): shipping adds {added:+.0f}%")
    if b in threads and local:
        thread = statistics.median(threads[b])
        print(f"{b}: the shipper's thread {thread:.2f} us per notification (median), {thread / local * 100:.0f}% of the recorder without shipping")
PY
