#!/usr/bin/env bash
# Where shipping's CPU goes: the recorder's threads' CPU (user + system,
# from /proc/PID/task/*/stat) per connection row shipped, under churn.
# Needs a ClickHouse with the tables made (`tcptab schema clickhouse
# --clickhouse URL`; bench/fleet.sh starts one and keeps its directory).
# Run it alone, as root.
#
#   sudo bench/ship_threads.sh URL BINARY...    (each binary, two rounds)
#
# 1,000 connections held and 500 opened and closed a second
# (bench/churn_at_rate.py) in a fresh namespace; each binary records with
# `--interval 5 --clickhouse URL` for 40 s after 12 s of warm-up.
. "$(dirname "$0")/hold.sh"
url=$1
shift
hold 1000
work=$(mktemp -d /tmp/shipcpu-XXXXXX)
exec 4> >(exec nsenter -t "$pid" -n python3 bench/churn_at_rate.py 500 > "$work/churn.out")
until grep -q CHURNING "$work/churn.out" 2>/dev/null; do sleep 0.2; done
sleep 30
tcpu() { for t in /proc/$1/task/*; do printf "%s %s\n" "$(cat $t/comm)" "$(awk -v hz="$(getconf CLK_TCK)" '{print ($14+$15)/hz}' $t/stat)"; done | awk '{a[$1]+=$2} END {for (k in a) print k, a[k]}' | sort; }
for round in 1 2; do
for b in "$@"; do
  db=$work/$(basename $b)-$round.db
  "$b" record --db "$db" --netns-pid "$pid" --interval 5 --clickhouse "$url" --host-name "cpu-$round" 2> "$work/err" &
  rec=$!
  sleep 12
  tcpu $rec > $work/c0; s0=$(sqlite3 "$db" "SELECT coalesce((SELECT value FROM meta WHERE key='ship_sent'),0)")
  sleep 40
  tcpu $rec > $work/c1; s1=$(sqlite3 "$db" "SELECT coalesce((SELECT value FROM meta WHERE key='ship_sent'),0)")
  kill -TERM $rec; wait $rec || true
  echo "$(basename $b) round $round: rows shipped $((s1-s0))"
  join $work/c0 $work/c1 | awk -v n=$((s1-s0)) '{d=$3-$2; printf "  %-16s %6.2f s  %6.1f us/row\n", $1, d, d*1e6/(n>0?n:1)}'
done
done
exec 4>&-
release
