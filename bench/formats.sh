#!/usr/bin/env bash
# The machine-readable formats and the commands on the query engine, at
# scale: N loopback connections (about 2N sockets) in a fresh namespace;
# json, jsonl and csv against `ss -tani` (the same information as text),
# summary against list, and every command against a build of BEFORE (a
# commit, default the one before the query engine) in the same run.
#
#   sudo bench/formats.sh [N ...]          (default: 50000)
#   BEFORE=<commit> RUNS=<n> sudo bench/formats.sh 50000
#
# Medians of RUNS (default 7) interleaved runs; peak RSS per command.
. "$(dirname "$0")/hold.sh"
before=${BEFORE:-afaa75c}
cargo build --release -q -p tcptab-cli
old_tree=/tmp/tcptab-before-$before
if [ ! -x "$old_tree/target/release/tcptab" ]; then
  git worktree add -f -q "$old_tree" "$before" 2>/dev/null || true
  (cd "$old_tree" && cargo build --release -q -p tcptab-cli)
fi
new=$PWD/target/release/tcptab
old=$old_tree/target/release/tcptab
runs=${RUNS:-7}
for n in "${@:-50000}"; do
  hold "$n"
  echo "== N=$n connections: $sockets sockets in the namespace of pid $pid"
  nsenter -t "$pid" -n python3 bench/timeit.py --runs "$runs" --json "/tmp/tcptab-formats-$n.json" \
    "ss -tani=exec ss -tani" \
    "json=exec $new list --format json" \
    "jsonl=exec $new list --format jsonl" \
    "csv=exec $new list --format csv" \
    "before json=exec $old list --format json" \
    "before jsonl=exec $old list --format jsonl" \
    "ss -tan=exec ss -tan" \
    "list=exec $new list" \
    "before list=exec $old list" \
    "summary=exec $new summary" \
    "before summary=exec $old summary" \
    "list -i=exec $new list -i" \
    "before list -i=exec $old list -i" \
    "list -p=exec $new list -p" \
    "before list -p=exec $old list -p"
  echo "-- exporters: scrape latency and peak RSS, this build and before"
  nsenter -t "$pid" -n "$new" serve --listen 127.0.0.1:9867 --min-interval 0s 2>/dev/null &
  serve_new=$!
  nsenter -t "$pid" -n "$old" serve --listen 127.0.0.1:9868 --min-interval 0s 2>/dev/null &
  serve_old=$!
  sleep 1
  nsenter -t "$pid" -n python3 bench/scrape.py "$runs" \
    "tcptab serve=http://127.0.0.1:9867/metrics=$serve_new" \
    "before serve=http://127.0.0.1:9868/metrics=$serve_old"
  kill "$serve_new" "$serve_old" 2>/dev/null || true
  release
done
