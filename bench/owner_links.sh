#!/usr/bin/env bash
# Links (readlinkat) and fd directories (getdents64) read per poll by each
# recorder given, beside N held connections (default 10,000) and RATE
# connections opened and closed a second (default 500), two rounds of 30 s
# each after the first polls: a count that does not move with the
# machine's noise, unlike CPU. Run it alone, as root.
#
#   sudo bench/owner_links.sh BIN [BIN ...]
. "$(dirname "$0")/hold.sh"
[ $# -ge 1 ] || { echo "usage: $0 BIN [BIN ...]" >&2; exit 2; }
work=$(mktemp -d /tmp/tcptab-owner-links-XXXXXX)
hold ${N:-10000}
exec 4> >(exec nsenter -t "$pid" -n python3 bench/churn_at_rate.py ${RATE:-500} > $work/churn.out)
until grep -q CHURNING $work/churn.out 2>/dev/null; do sleep 0.2; done
for round in 1 2; do
for b in "$@"; do
  db=$work/r-$RANDOM.db
  nsenter -t "$pid" -n "$b" record --db "$db" --interval 5 2>/dev/null &
  rec=$!
  sleep 7.5
  p0=$(sqlite3 "$db" 'SELECT count(*) FROM polls')
  perf stat -x, -e syscalls:sys_enter_readlinkat,syscalls:sys_enter_getdents64,task-clock -p $rec -o $work/stat -- sleep 30
  p1=$(sqlite3 "$db" 'SELECT count(*) FROM polls')
  kill -TERM $rec; wait $rec
  python3 - "$b" $p0 $p1 "$work/stat" <<'PY'
import sys
b,p0,p1,stat=sys.argv[1],int(sys.argv[2]),int(sys.argv[3]),sys.argv[4]
v={}
for l in open(stat):
    f=l.strip().split(',')
    if len(f)>3 and f[0] and f[0][0].isdigit(): v[f[2]]=float(f[0])
n=p1-p0
print(f"{b}: {n} polls, {v['syscalls:sys_enter_readlinkat']/n:.0f} readlinkat and {v['syscalls:sys_enter_getdents64']/n:.0f} getdents64 per poll, {v['task-clock']/n:.0f} ms task-clock per poll")
PY
  rm -f "$db"*
done
done
exec 4>&-
sleep 1
release
rm -rf "$work"
