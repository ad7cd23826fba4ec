#!/usr/bin/env bash
# Offline parse benchmark: a generated table of ROWS sockets (default
# 1,000,000; both families, every row shape), parsed by tcptab and by the
# `procfs` crate (procfs-core) in the same run.
#
#   bench/parse.sh [ROWS]
#
# Prints medians of 9 interleaved runs and peak RSS, then runs the criterion
# benchmark (in-memory parse, no I/O), then `examples/parse_loop` (the same
# in-memory parse, tcptab and procfs-core alternating pass by pass, 11
# passes). Results go to BENCHMARKS.md by hand.
set -euo pipefail
rows=${1:-1000000}
cd "$(dirname "$0")/.."
cargo build --release -q -p tcptab-cli -p testkit --bin tcptab --bin gen-table
cargo build --release -q -p tcptab --example procfs_parse --example parse_file
dir=${BENCH_DIR:-/tmp/tcptab-bench-$rows}
[ -s "$dir/net/tcp" ] || target/release/gen-table "$dir" "$rows"
echo "table: $rows rows, $(du -cb "$dir"/net/tcp* | tail -1 | cut -f1) bytes in $dir"
bin=target/release
python3 bench/timeit.py --runs 9 \
  "cat=exec cat $dir/net/tcp $dir/net/tcp6" \
  "procfs crate parse=exec $bin/examples/procfs_parse $dir" \
  "tcptab parse=exec $bin/examples/parse_file $dir" \
  "tcptab list --format proc=exec $bin/tcptab list --root $dir --format proc" \
  "tcptab list --format jsonl=exec $bin/tcptab list --root $dir --format jsonl"
if [ "${CRITERION:-1}" = 1 ]; then
  cargo bench -q -p tcptab --bench parse 2>&1 | grep -E "^parse|time:|thrpt:" | grep -v change
fi
if [ "${LOOP:-1}" = 1 ]; then
  cargo build --release -q -p tcptab --example parse_loop
  target/release/examples/parse_loop "$dir" 11
fi
