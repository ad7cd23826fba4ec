#!/usr/bin/env bash
# Peak memory of every command and format at scale, beside ss: N loopback
# connections (about 2N sockets) in a fresh namespace, each command run
# RUNS times (default 3; peak RSS barely moves between runs), its peak RSS
# (GNU time's maximum resident set) and median time.
#
#   sudo bench/memory.sh [N ...]          (default: 1000 50000 250000)
. "$(dirname "$0")/hold.sh"
build
runs=${RUNS:-3}
for n in "${@:-1000 50000 250000}"; do
  for n in $n; do
    hold "$n"
    echo "== N=$n connections: $sockets sockets in the namespace of pid $pid"
    nsenter -t "$pid" -n python3 bench/timeit.py --runs "$runs" --warmup 0 \
      "ss -tan=exec ss -tan" \
      "ss -tani=exec ss -tani" \
      "ss -tanp=exec ss -tanp" \
      "list=exec $bin list" \
      "list --format json=exec $bin list --format json" \
      "list --format jsonl=exec $bin list --format jsonl" \
      "list --format csv=exec $bin list --format csv" \
      "list --format proc=exec $bin list --format proc" \
      "list -i=exec $bin list -i" \
      "list --format jsonl -i=exec $bin list --format jsonl -i" \
      "list with a dport filter=exec $bin list 'dport = :20000'" \
      "list --source proc=exec $bin list --source proc" \
      "list -p=exec $bin list -p" \
      "summary=exec $bin summary" \
      "explain --diagnose=exec $bin explain --diagnose" \
      "list --sort state (holds the table)=exec $bin list --sort state"
    release
  done
done
