#!/usr/bin/env bash
# Every listing query against ss's same query, in one run at N held
# connections (default 10,000), interleaved: list, a port filter, -i, JSON,
# JSON Lines, and -p (owners by the walk of the kernel's task files where
# it can be used, and by reading /proc). Run it alone, as root.
#
#   sudo bench/queries.sh [N]          (RUNS=21; BIN=path for another build)
. "$(dirname "$0")/hold.sh"
build
w=$bin
n=${1:-10000}
hold $n
port=$(nsenter -t "$pid" -n ss -tlnH src 127.0.0.1 | awk 'NR <= 3 { n = split($4, a, ":"); p = a[n] } END { print p }')
echo "N=$n sockets=$sockets P=$port"
nsenter -t "$pid" -n python3 bench/timeit.py --runs ${RUNS:-21} \
  "ss -tan=exec ss -tan" "list=exec $w list" \
  "ss dport=exec ss -tan 'dport = :$port'" "list dport=exec $w list 'dport = :$port'" \
  "ss -tani=exec ss -tani" "list -i=exec $w list -i" "json=exec $w list --format json" "jsonl=exec $w list --format jsonl" \
  "ss -tanp=exec ss -tanp" "list -p=exec $w list -p" "list -p (proc)=TCPTAB_OWNER_SCAN=proc exec $w list -p"
release
