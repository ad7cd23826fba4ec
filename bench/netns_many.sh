#!/usr/bin/env bash
# `tcptab list --all-netns` over many namespaces: NS namespaces (default
# 40), each made by `unshare --net` around a process holding PER listeners
# (default 250; bound to every address, so no loopback is needed), for
# each build given, interleaved (bench/timeit.py, RUNS runs, default 15).
# Run it alone, as root.
#
#   sudo bench/netns_many.sh BIN [BIN ...]      (NS=40 PER=250 RUNS=15)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 BIN [BIN ...]" >&2; exit 2; }
ns=${NS:-40}; per=${PER:-250}
work=$(mktemp -d /tmp/tcptab-netns-many-XXXXXX)
pids=()
for i in $(seq "$ns"); do
  unshare --net python3 -c "
import resource, socket, time
resource.setrlimit(resource.RLIMIT_NOFILE, ($per + 64, $per + 64))
held = []
for _ in range($per):
    s = socket.socket(); s.bind(('0.0.0.0', 0)); s.listen(); held.append(s)
print('ready', flush=True)
time.sleep(3600)" > "$work/$i" &
  pids+=($!)
done
for i in $(seq "$ns"); do until grep -q ready "$work/$i" 2>/dev/null; do sleep 0.1; done; done
echo "$ns namespaces of $per listeners each"
args=()
for b in "$@"; do args+=("$b=exec $b list --all-netns"); done
python3 bench/timeit.py --runs "${RUNS:-15}" "${args[@]}"
for b in "$@"; do "$b" list --all-netns | md5sum; done
kill "${pids[@]}" 2>/dev/null || true
wait 2>/dev/null || true
rm -rf "$work"
