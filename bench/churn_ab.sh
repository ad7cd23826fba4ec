#!/usr/bin/env bash
# Two builds of `tcptab record` side by side in one churning scene, so
# that what the machine does meanwhile weighs on both alike: N
# connections held (default 10,000), RATE opened and closed a second
# (default 500), TIME_WAIT filled to its steady level, then both
# recorders (`--interval 5`, a file each) for SECONDS (default 120), in
# ROUNDS rounds (default 3), their order swapped each round. Prints each
# recorder's CPU per destroy notification, all included, and their ratio.
# Run it alone, as root.
#
#   bench/churn_ab.sh A_BIN B_BIN [N] [RATE] [SECONDS]
if [ $# -lt 2 ] || [ ! -x "$1" ] || [ ! -x "$2" ]; then
  echo "usage: bench/churn_ab.sh A_BIN B_BIN [N] [RATE] [SECONDS]: two tcptab binaries to compare${1:+ (not both executable: $1 ${2:-})}" >&2
  exit 2
fi
a_bin=$(realpath "$1") b_bin=$(realpath "$2")
shift 2
. "$(dirname "$0")/hold.sh"
n=${1:-10000}
rate=${2:-500}
seconds=${3:-120}
work=$(mktemp -d /tmp/tcptab-churn-ab-XXXXXX)
hold "$n"
echo "N=$n: $sockets sockets held"
churn "$rate" 62                       # then TIME_WAIT at its steady level
for round in $(seq 1 "${ROUNDS:-3}"); do
  if [ $((round % 2)) = 1 ]; then order="a b"; else order="b a"; fi
  declare -A rec=()
  for x in $order; do
    bin_var=${x}_bin
    rm -f "$work/$x.db"*
    nsenter -t "$pid" -n "${!bin_var}" record --db "$work/$x.db" --interval 5 &
    rec[$x]=$!
  done
  sleep 7.5                                 # past the first poll and one more
  a0=$(cpu_of "${rec[a]}"); b0=$(cpu_of "${rec[b]}")
  sleep "$seconds"
  a1=$(cpu_of "${rec[a]}"); b1=$(cpu_of "${rec[b]}")
  kill -TERM "${rec[a]}" "${rec[b]}"; wait "${rec[a]}" "${rec[b]}" || true
  python3 -c "import sys; a0, a1, b0, b1, s, r = map(float, sys.argv[1:7]); a = (a1 - a0) / s / (2 * r) * 1e6; b = (b1 - b0) / s / (2 * r) * 1e6; print(f'round {int(sys.argv[7])}: A {a:.1f} us, B {b:.1f} us per destroy notification, B/A {b / a:.3f}')" "$a0" "$a1" "$b0" "$b1" "$seconds" "$rate" "$round"
done
exec 4>&-
release
rm -rf "$work"
