#!/usr/bin/env bash
# Capture the TCP tables of a real scenario into testdata/<kernel>-<scenario>/.
#
#   sudo testdata/capture.sh [scenario]      (default: sockets)
#
# Runs testdata/scenario/<scenario>.py in a fresh network namespace, then
# copies /proc/PID/net/tcp and tcp6 (read once each), a sock_diag netlink
# dump of the same sockets (raw datagrams, diag-dump.bin, by capture-diag),
# the scenario's manifest, `ss -tan` and `ss -tani` of the same namespace and
# the kernel version into
# testdata/<kernel>-<scenario>/, laid out as a proc root (net/tcp, net/tcp6),
# so `tcptab list --root testdata/<kernel>-<scenario>` reads it.
set -euo pipefail
scenario=${1:-sockets}
cargo build -q -p testkit --bin capture-diag
here=$(cd "$(dirname "$0")" && pwd)
kernel=$(uname -r | cut -d- -f1)
out="$here/$kernel-$scenario"
mkdir -p "$out/net"
# The scenario holds its sockets until its stdin closes: give it a pipe whose
# only writer is this shell's fd 3.
exec 3> >(exec unshare --net python3 "$here/scenario/$scenario.py" >"$out/manifest.json")
holder=$!
for _ in $(seq 100); do [ -s "$out/manifest.json" ] && break; sleep 0.1; done
pid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$out/manifest.json")
cat "/proc/$pid/net/tcp" >"$out/net/tcp"
cat "/proc/$pid/net/tcp6" >"$out/net/tcp6"
nsenter -t "$pid" -n "$here/../target/debug/capture-diag" "$out"
nsenter -t "$pid" -n ss -tan >"$out/ss-tan.txt"
nsenter -t "$pid" -n ss -tani >"$out/ss-tani.txt"
uname -srm >"$out/kernel.txt"
exec 3>&-
while kill -0 "$holder" 2>/dev/null; do sleep 0.1; done
echo "captured $(($(wc -l <"$out/net/tcp") + $(wc -l <"$out/net/tcp6") - 2)) sockets into $out"
