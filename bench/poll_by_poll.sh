#!/usr/bin/env bash
# The recorder's CPU poll by poll, where bench/quiet_poll.sh gives one
# mean: N connections held (default 10,000: 20,000 sockets), nothing
# opened or closed, `tcptab record --interval 5` for
# SECONDS (default 60) after its first poll. Each second the CPU its
# threads have run since the second before (schedstat, in ns) is taken;
# the seconds in which it polled are printed in ms, then their mean and
# spread, and the median of five `ss -tanpi` before (GNU time). A slow
# stretch of the machine shows as polls slower together; a cost of the
# recorder's own, as some polls slower than the rest. Run it alone.
#
#   sudo bench/poll_by_poll.sh [N] [SECONDS]
. "$(dirname "$0")/hold.sh"
build
n=${1:-10000}
seconds=${2:-60}
work=$(mktemp -d /tmp/tcptab-poll-by-poll-XXXXXX)
hold "$n"
echo "N=$n: $sockets sockets held"
ss_cpu=$(ss_median)
nsenter -t "$pid" -n "$bin" record --db "$work/q.db" --interval 5 &
rec=$!
sleep 7.5                                   # the first poll (its inserts) and one more
ran() { cat /proc/"$rec"/task/*/schedstat | awk '{ s += $1 } END { print s }'; }
last=$(ran)
for _ in $(seq 1 "$seconds"); do
  sleep 1
  now=$(ran)
  echo $(( now - last ))
  last=$now
done > "$work/seconds"
kill -TERM "$rec"; wait "$rec" || true
release
python3 - "$work/seconds" "$ss_cpu" <<'PY'
import statistics, sys
seconds = [int(l) / 1e6 for l in open(sys.argv[1])]
ss = float(sys.argv[2]) * 1000
# A second with less than a millisecond of CPU had no poll in it; a poll
# that ran over into the next second is the two seconds together.
polls, run = [], 0.0
for s in seconds + [0.0]:
    if s >= 1:
        run += s
    elif run:
        polls.append(run)
        run = 0.0
# A poll cut by the start or the end of the seconds taken is not whole.
if seconds[0] >= 1:
    polls = polls[1:]
if seconds[-1] >= 1:
    polls = polls[:-1]
if not polls:
    sys.exit("no whole poll of at least 1 ms in the seconds taken")
print("ms a poll:", " ".join(f"{p:.0f}" for p in polls))
mean = statistics.mean(polls)
# GNU time counts in 10 ms: a snapshot of a small table may show none.
against = f"mean {mean / ss:.2f}x" if ss > 0 else "under GNU time's 10 ms"
print(f"{len(polls)} polls: mean {mean:.1f} ms, median {statistics.median(polls):.1f}, "
      f"min {min(polls):.1f}, max {max(polls):.1f}; ss -tanpi {ss:.0f} ms: {against}")
PY
rm -rf "$work"
