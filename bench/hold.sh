# Sourced first by the benchmark scripts: strict mode, the repository's
# root as the working directory, the release build, and N loopback
# connections held in a fresh network namespace (bench/sockets_at_scale.py)
# while a benchmark runs.
#
#   build      build tcptab (release) and set $bin to it
#   cpu_of P   the CPU time (user + system, seconds) process P has used
#   tcpu P     the same, thread by thread: "NAME SECONDS" lines, by name (the
#              main thread, which takes the binary's name, as "main"), from
#              each thread's run time in ns (schedstat), not in 10 ms ticks
#   hold N     start, wait until they are open; sets $pid (a process in the
#              namespace, for nsenter) and $sockets (how many the tables hold)
#   release    close them all and wait until the holder has gone
#   churn R S  open and close R connections a second in the holder's
#              namespace (bench/churn_at_rate.py, its output in
#              $work/churn.out, its stdin fd 4: `exec 4>&-` stops it), then
#              wait S seconds for TIME_WAIT to reach its steady level; sets
#              $churner
#   ss_median  the median of five `ss -tanpi` in the holder's namespace: CPU
#              seconds (user + system, GNU time) a snapshot

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# BIN=path runs that build instead of this tree's (a build before a change).
build() {
  if [ -n "${BIN:-}" ]; then bin=$BIN; return; fi
  cargo build --release -q -p tcptab-cli
  bin=$PWD/target/release/tcptab
}

cpu_of() {
  awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"
}

tcpu() {
  for t in /proc/$1/task/*; do
    name=$(cat $t/comm)
    [ "$t" = "/proc/$1/task/$1" ] && name=main
    printf "%s %s\n" "$name" "$(awk '{printf "%.6f", $1 / 1e9}' $t/schedstat)"
  done | awk '{a[$1]+=$2} END {for (k in a) printf "%s %.6f\n", k, a[k]}' | sort
}

hold() {
  local ready
  ready=$(mktemp /tmp/tcptab-hold-XXXXXX)
  exec 3> >(exec unshare --net python3 bench/sockets_at_scale.py "$1" > "$ready")
  holder=$!
  until grep -q READY "$ready" 2>/dev/null; do sleep 0.5; done
  read -r _ pid sockets < "$ready"
  rm -f "$ready"
}

release() {
  exec 3>&-
  while kill -0 "$holder" 2>/dev/null; do sleep 0.2; done
}

churn() {
  exec 4> >(exec nsenter -t "$pid" -n python3 bench/churn_at_rate.py "$1" > "$work/churn.out")
  churner=$!
  until grep -q CHURNING "$work/churn.out" 2>/dev/null; do sleep 0.2; done
  sleep "$2"
}

ss_median() {
  for _ in 1 2 3 4 5; do
    nsenter -t "$pid" -n /usr/bin/time -f "%U %S" -o "$work/ss.time" ss -tanpi > /dev/null
    awk '{ print $1 + $2 }' "$work/ss.time"
  done | sort -n | sed -n 3p
}
