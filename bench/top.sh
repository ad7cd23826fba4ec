#!/usr/bin/env bash
# CPU time of `tcptab top` per refresh at N loopback connections
# (bench/sockets_at_scale.py): 20 frames at 250 ms in --format jsonl,
# user + system time from GNU time, divided by the 21 looks (the baseline
# look and the 20 frames). Run it alone.
#
#   sudo bench/top.sh [N ...]            (default: 1000 10000)
. "$(dirname "$0")/hold.sh"
build
for n in ${@:-1000 10000}; do
  hold "$n"
  for run in 1 2 3; do
    nsenter -t "$pid" -n /usr/bin/time -f "%U %S %M" -o /tmp/tcptab-top-time \
      "$bin" top --format jsonl --interval 250ms --count 20 > /dev/null
    read -r user sys rss < /tmp/tcptab-top-time
    python3 -c "import sys; u, s, r = map(float, sys.argv[1:]); print(f'N={$n} ({$sockets} sockets) run $run: {1000 * (u + s) / 21:.1f} ms CPU per refresh, peak RSS {r / 1024:.1f} MiB')" "$user" "$sys" "$rss"
  done
  release
done
