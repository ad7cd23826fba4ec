# Sourced by the benchmark scripts: hold N loopback connections in a fresh
# network namespace (bench/sockets_at_scale.py) while a benchmark runs.
#
#   hold N     start, wait until they are open; sets $pid (a process in the
#              namespace, for nsenter) and $sockets (how many the tables hold)
#   release    close them all and wait until the holder has gone

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
