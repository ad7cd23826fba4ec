#!/usr/bin/env bash
# `tcptab audit` against `tcptab list -l -p` (issue 28): N loopback
# connections held by bench/sockets_at_scale.py (default 50,000) and
# LISTENERS listening sockets (default 1,000) in a fresh network namespace;
# audit reads the listeners with owners and workloads, judges them, and
# reads the namespace's interface addresses; with --connected it reads the
# established connections too. Medians of RUNS (default 7) interleaved runs.
#
#   sudo bench/audit.sh [N] [LISTENERS]
. "$(dirname "$0")/hold.sh"
build
runs=${RUNS:-7}
n=${1:-50000}
listeners=${2:-1000}
hold "$n"
ready=$(mktemp /tmp/tcptab-listeners-XXXXXX)
exec 5> >(exec nsenter -t "$pid" -n python3 -c "
import socket, sys, time
held = []
for i in range($listeners):
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    s.listen()
    held.append(s)
print('READY', flush=True)
sys.stdin.read()
" > "$ready")
until grep -q READY "$ready" 2>/dev/null; do sleep 0.2; done
rm -f "$ready"
echo "N=$n: $sockets sockets held, and $listeners listeners"
nsenter -t "$pid" -n python3 bench/timeit.py --runs "$runs" --warmup 1 \
  "list-l-p=exec $bin list -l -p" \
  "audit=exec $bin audit --fail-on never" \
  "audit-json=exec $bin audit --fail-on never --format json" \
  "audit-connected=exec $bin audit --fail-on never --connected"
exec 5>&-
release
