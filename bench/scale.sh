#!/usr/bin/env bash
# At-scale listing benchmark: N loopback connections (2N sockets, both
# families, listeners, TIME_WAIT, queued data) held by a few hundred
# processes in a fresh network namespace; times cat of the tables (the
# floor), ss, netstat and tcptab with the same options, in one run.
#
#   sudo bench/scale.sh [N ...]          (default: 10000 50000)
#
# Medians of RUNS (default 7) interleaved runs; peak RSS per command.
. "$(dirname "$0")/hold.sh"
build
cargo build --release -q -p tcptab --example dump
runs=${RUNS:-7}
for n in "${@:-10000 50000}"; do
  for n in $n; do
    hold "$n"
    echo "== N=$n connections: $sockets sockets in the namespace of pid $pid"
    nsenter -t "$pid" -n python3 bench/timeit.py --runs "$runs" --json "/tmp/tcptab-scale-$n.json" \
      "cat=exec cat /proc/net/tcp /proc/net/tcp6" \
      "ss -tan=exec ss -tan" \
      "netstat -tan=exec netstat -tan" \
      "tcptab list --source proc=exec $bin list --source proc" \
      "tcptab list --source proc --format proc=exec $bin list --source proc --format proc" \
      "tcptab list --source netlink=exec $bin list --source netlink" \
      "ss -tani=exec ss -tani" \
      "tcptab list --source netlink -i=exec $bin list --source netlink -i" \
      "ss -tanp=exec ss -tanp" \
      "netstat -tanp=exec netstat -tanp" \
      "tcptab list --source proc -p=exec $bin list --source proc -p" \
      "tcptab list --source netlink -p=exec $bin list --source netlink -p"
    echo "-- in process (library): dump and parse alone, medians of 15"
    nsenter -t "$pid" -n target/release/examples/dump 15
    echo "-- exporters: scrape latency and peak RSS (each scrape reads the table)"
    nsenter -t "$pid" -n "$bin" serve --listen 127.0.0.1:9867 --min-interval 0s 2>/dev/null &
    serve=$!
    exporters=("tcptab serve=http://127.0.0.1:9867/metrics=$serve")
    if command -v prometheus-node-exporter >/dev/null; then
      nsenter -t "$pid" -n prometheus-node-exporter --web.listen-address=127.0.0.1:9100 \
        --collector.disable-defaults --collector.tcpstat >/dev/null 2>&1 &
      node=$!
      exporters+=("node_exporter tcpstat=http://127.0.0.1:9100/metrics=$node")
    fi
    sleep 1
    nsenter -t "$pid" -n python3 bench/scrape.py "$runs" "${exporters[@]}"
    kill "$serve" ${node:-} 2>/dev/null || true
    release
  done
done
