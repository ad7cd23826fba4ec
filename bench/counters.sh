#!/usr/bin/env bash
# serve --connection-counters at scale: N loopback connections held in a
# fresh namespace; scrapes of tcptab serve without and with the counters
# (every optional family on), with the counters alone, and of
# node_exporter's tcpstat and netstat collectors, interleaved, in one run; then the counters thread's CPU
# while nothing is scraped (its polls).
#
#   sudo bench/counters.sh [N]        (default: 50000)
. "$(dirname "$0")/hold.sh"
build
runs=${RUNS:-15}
n=${1:-50000}
hold "$n"
echo "== N=$n connections: $sockets sockets in the namespace of pid $pid"
all=(--per-remote-port --rtt-histogram --port 22 --per-process --per-workload --kernel-counters)
nsenter -t "$pid" -n "$bin" serve --listen 127.0.0.1:9867 --min-interval 0s "${all[@]}" 2>/dev/null &
plain=$!
nsenter -t "$pid" -n "$bin" serve --listen 127.0.0.1:9868 --min-interval 0s "${all[@]}" \
  --connection-counters 2>/dev/null &
counting=$!
nsenter -t "$pid" -n prometheus-node-exporter --web.listen-address=127.0.0.1:9100 \
  --collector.disable-defaults --collector.tcpstat --collector.netstat >/dev/null 2>&1 &
node=$!
nsenter -t "$pid" -n "$bin" serve --listen 127.0.0.1:9869 --min-interval 0s --connection-counters 2>/dev/null &
bare=$!
sleep 8
nsenter -t "$pid" -n python3 bench/scrape.py "$runs" \
  "tcptab serve (every family)=http://127.0.0.1:9867/metrics=$plain" \
  "tcptab serve (every family) --connection-counters=http://127.0.0.1:9868/metrics=$counting" \
  "tcptab serve --connection-counters (no other family)=http://127.0.0.1:9869/metrics=$bare" \
  "node_exporter tcpstat+netstat=http://127.0.0.1:9100/metrics=$node"
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
before=$(ticks "$counting")
sleep 30
after=$(ticks "$counting")
hz=$(getconf CLK_TCK)
echo "counters thread, unscraped: $(( (after - before) * 1000 / hz )) ms CPU in 30 s (polls every 5 s)"
kill "$plain" "$counting" "$bare" "$node" 2>/dev/null || true
release
