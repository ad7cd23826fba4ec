#!/usr/bin/env bash
# Filtered and unfiltered queries against ss with the same flags and filter,
# at N loopback connections (bench/sockets_at_scale.py), in one run:
# the filter in the kernel (inet_diag bytecode), the same filter tested in
# user space (--no-kernel-filter), and cat of the tables as the floor of
# reading everything.
#
#   sudo bench/filters.sh [N ...]        (default: 1000 10000 50000)
#
# Medians of RUNS (default 9) interleaved runs. Run it alone: no build beside.
. "$(dirname "$0")/hold.sh"
build
runs=${RUNS:-9}
for n in ${@:-1000 10000 50000}; do
  hold "$n"
  # A worker's IPv4 listener: dport = :P selects its clients, sport = :P
  # the listener and its accepted sockets; the worker's client sources are
  # 127.1.7.0/24 (the accepted sockets' peers).
  port=$(nsenter -t "$pid" -n ss -tlnH src 127.0.0.1 | awk 'NR <= 3 { n = split($4, a, ":"); p = a[n] } END { print p }')
  dst=127.1.7.0/24
  echo "== N=$n connections: $sockets sockets; P=$port, dst $dst"
  nsenter -t "$pid" -n python3 bench/timeit.py --runs "$runs" --json "/tmp/tcptab-filters-$n.json" \
    "cat=exec cat /proc/net/tcp /proc/net/tcp6" \
    "ss -tan dport eq P=exec ss -tan 'dport = :$port'" \
    "tcptab list dport eq P=exec $bin list 'dport = :$port'" \
    "tcptab list dport eq P (user space)=exec $bin list --no-kernel-filter 'dport = :$port'" \
    "ss -tan sport eq P=exec ss -tan 'sport = :$port'" \
    "tcptab list --sport P=exec $bin list --sport $port" \
    "ss -tan dst $dst=exec ss -tan 'dst $dst'" \
    "tcptab list --dst $dst=exec $bin list --dst $dst" \
    "ss -tan=exec ss -tan" \
    "tcptab list=exec $bin list" \
    "ss -tani=exec ss -tani" \
    "tcptab list -i=exec $bin list -i" \
    "ss -tanp=exec ss -tanp" \
    "tcptab list -p=exec $bin list -p"
  release
done
