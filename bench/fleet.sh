#!/usr/bin/env bash
# Shipping to ClickHouse (docs/fleet.md): what it costs the recorder, how
# fast a backlog drains, how fast a fleet's store answers. Starts its own
# ClickHouse (Debian's clickhouse-server) on free loopback ports with its
# own data directory, and stops it. Run it alone, as root.
#
#   sudo bench/fleet.sh [RATE] [SECONDS] [BACKLOG_MIN] [HOURS]
#                                            (default: 500 60 10 24)
#   (ONLY_CPU=1 stops after step 1; the backlog is made in a history file
#   of version 6, docs/history.md)
#
# 1. RATE connections opened and closed a second (bench/churn_at_rate.py)
#    beside 1,000 held: the recorder's CPU over SECONDS without shipping
#    and with `--clickhouse` (every 10 s), twice each, interleaved.
# 2. A backlog of BACKLOG_MIN minutes at RATE (the recording's rows copied
#    until there are as many as RATE x 60 x BACKLOG_MIN connections make,
#    two sockets each), shipped by a recorder that starts on the file: the
#    time until nothing waits in the file.
# 3. The store filled to HOURS hours of two hosts at RATE (RATE rows a
#    second each: one end of each connection; the backlog's rows repeated
#    in time by ClickHouse itself), then `history
#    --clickhouse --at` a moment in the middle, with and without a port
#    filter, median of 5 (bench/timeit.py).
. "$(dirname "$0")/hold.sh"
build
rate=${1:-500}
seconds=${2:-60}
backlog_min=${3:-10}
hours=${4:-24}
work=$(mktemp -d /tmp/tcptab-fleet-bench-XXXXXX)
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The store.
http=$(free_port)
tcp=$(free_port)
mkdir -p "$work/ch"
cat > "$work/ch/config.xml" <<XML
<yandex>
  <logger><level>warning</level><log>$work/ch/server.log</log><errorlog>$work/ch/error.log</errorlog></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>$http</http_port>
  <tcp_port>$tcp</tcp_port>
  <path>$work/ch/data/</path>
  <tmp_path>$work/ch/tmp/</tmp_path>
  <user_files_path>$work/ch/user_files/</user_files_path>
  <format_schema_path>$work/ch/format_schemas/</format_schema_path>
  <users_config>$work/ch/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>1073741824</mark_cache_size>
</yandex>
XML
cat > "$work/ch/users.xml" <<XML
<yandex><profiles><default><max_memory_usage>8000000000</max_memory_usage></default></profiles>
<users><default><password></password><networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota></default></users>
<quotas><default></default></quotas></yandex>
XML
clickhouse-server --config-file="$work/ch/config.xml" > /dev/null 2>&1 &
ch=$!
trap 'kill $ch 2>/dev/null || true' EXIT
ch_query() {
  python3 - "http://127.0.0.1:$http/" "$1" <<'PY'
import sys, urllib.error, urllib.request
try:
    print(urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=sys.argv[2].encode())).read().decode(), end="")
except urllib.error.HTTPError as e:
    sys.exit(f"ClickHouse: {e.read().decode().strip()[:500]}")
PY
}
until ch_query 'SELECT 1' > /dev/null 2>&1; do sleep 0.2; done
url="http://127.0.0.1:$http/?database=fleet"
"$bin" schema clickhouse --clickhouse "$url"
echo "ClickHouse $(ch_query 'SELECT version()')"

# 1. The recorder's CPU at RATE, without and with shipping.
hold 1000
churn "$rate" 65                       # then TIME_WAIT fills to its steady level
for run in local-1 ship-1 local-2 ship-2; do
  extra=()
  [[ $run == ship-* ]] && extra=(--clickhouse "$url" --host-name "bench-$run")
  "$bin" record --db "$work/$run.db" --netns-pid "$pid" --interval 5 "${extra[@]}" 2> "$work/$run.err" &
  rec=$!
  sleep 7.5
  c0=$(cpu_of "$rec"); t0=$(date +%s.%N)
  e0=$(sqlite3 "$work/$run.db" 'SELECT coalesce(sum(notifications), 0) FROM polls')
  sleep "$seconds"
  c1=$(cpu_of "$rec"); t1=$(date +%s.%N)
  e1=$(sqlite3 "$work/$run.db" 'SELECT coalesce(sum(notifications), 0) FROM polls')
  kill -TERM "$rec"; wait "$rec"
  python3 -c "import sys; c0, c1, t0, t1, e0, e1 = map(float, sys.argv[2:]); print(f'{sys.argv[1]}: {(c1 - c0) / (t1 - t0) * 100:.1f}% of a core, {(c1 - c0) / max(e1 - e0, 1) * 1e6:.0f} us CPU per destroy notification')" "$run" "$c0" "$c1" "$t0" "$t1" "$e0" "$e1"
done
exec 4>&-
release
[ -n "${ONLY_CPU:-}" ] && exit 0            # ONLY_CPU=1: step 1 alone

# 2. A backlog of BACKLOG_MIN minutes at RATE, drained.
want=$(( rate * 60 * backlog_min * 2 ))
db=$work/backlog.db
cp "$work/local-1.db" "$db"
sqlite3 "$db" 'PRAGMA wal_checkpoint(TRUNCATE)' > /dev/null
sqlite3 "$db" "DELETE FROM meta WHERE key = 'recorder'"   # its own id
# Never shipped: every row waits.
sqlite3 "$db" "DELETE FROM meta WHERE key IN ('ship_acked', 'ship_acked_id')"
while [ "$(sqlite3 "$db" 'SELECT count(*) FROM connection_rows')" -lt "$want" ]; do
  sqlite3 "$db" <<SQL
BEGIN;
CREATE TEMP TABLE m AS SELECT max(id) AS c FROM connection_rows;
INSERT INTO connection_rows SELECT id + (SELECT c FROM m), boot, netns, cookie, first_seen, last_seen,
  closed_at, closed_by, first_state, family, kind, state, local_address, local_port, remote_address,
  remote_port, tx_queue, rx_queue, timer, timer_ms, retransmits, uid, probes, inode, source, interface,
  backlog_limit, congestion_algorithm, shutdown, v6only, owner_status, bytes_acked, bytes_received,
  total_retrans, rtt_us, workload, follows FROM connection_rows WHERE closed_at IS NOT NULL;
INSERT INTO owners SELECT o.connection + (SELECT c FROM m), o.pid, o.fd, o.command, o.first_seen
  FROM owners o JOIN connection_rows c ON c.id = o.connection WHERE c.closed_at IS NOT NULL AND c.id <= (SELECT c FROM m);
INSERT INTO state_change_rows SELECT s.connection + (SELECT c FROM m), s.at, s.state
  FROM state_change_rows s JOIN connection_rows c ON c.id = s.connection WHERE c.closed_at IS NOT NULL AND c.id <= (SELECT c FROM m);
COMMIT;
SQL
done
rows=$(sqlite3 "$db" 'SELECT count(*) FROM connection_rows')
start=$(date +%s.%N)
"$bin" record --db "$db" --interval 1 --count 1 --clickhouse "$url" --host-name bench-backlog 2> "$work/backlog.err"
end=$(date +%s.%N)
left=$(sqlite3 "$db" "SELECT count(*) FROM connection_rows WHERE (changed, id) >
  ((SELECT value FROM meta WHERE key = 'ship_acked'), (SELECT value FROM meta WHERE key = 'ship_acked_id'))")
stored=$(ch_query "SELECT count() FROM fleet.connections FINAL WHERE hostname = 'bench-backlog'")
python3 -c "import sys; r, s, e = map(float, sys.argv[1:4]); print(f'backlog: {int(r)} connection rows ({sys.argv[4]} min at {sys.argv[5]}/s) shipped in {e - s:.1f} s, {r / (e - s):.0f} rows/s; {sys.argv[6]} waiting in the file, {sys.argv[7]} in the store')" "$rows" "$start" "$end" "$backlog_min" "$rate" "$left" "$stored"

# 3. HOURS hours of two hosts at RATE in the store, asked.
span_ms=$(ch_query "SELECT max(first_seen) - min(first_seen) + 1000 FROM fleet.connections WHERE hostname = 'bench-backlog'")
per_copy=$(( rate * span_ms / 1000 ))      # one end per connection on each host
copies=$(( hours * 3600 * 1000 / span_ms ))
# In chunks of 20 copies: one INSERT of all would hold the whole cross
# product in memory.
for host in fleet-a fleet-b; do
  for from in $(seq 0 20 $(( copies - 1 ))); do
    n=$(( copies - from < 20 ? copies - from : 20 ))
    ch_query "INSERT INTO fleet.connections SELECT '$host' AS hostname, machine_id, recorder, boot_id, version,
      id + number * 100000000 AS id, cookie, first_seen + number * $span_ms AS first_seen, last_seen + number * $span_ms AS last_seen,
      closed_at + number * $span_ms AS closed_at, closed_by, family, kind, state, local_address, local_port, remote_address, remote_port,
      tx_queue, rx_queue, timer, timer_ms, retransmits, uid, probes, inode, source, interface, backlog_limit,
      congestion_algorithm, shutdown, v6only, owner_status, bytes_acked, bytes_received, total_retrans, rtt_us, netns, netns_name,
      first_state, owner_pids, owner_fds, owner_commands,
      arrayMap((t, s) -> t + s, state_times, replicate(number * $span_ms, state_times)) AS state_times, states,
      workload_cgroup, unit, slice, runtime, container_id, container_name, pod_namespace, pod_name, pod_uid
      FROM (SELECT * FROM fleet.connections WHERE hostname = 'bench-backlog' AND closed_at IS NOT NULL LIMIT $per_copy)
      CROSS JOIN (SELECT number FROM system.numbers LIMIT $from, $n)"
  done
  ch_query "INSERT INTO fleet.polls SELECT '$host', machine_id, recorder, boot_id, id + number * 100000000, at + number * $span_ms,
    source, namespaces, sockets, opened, closed, notifications, took_us, not_seen, interval_ms
    FROM (SELECT * FROM fleet.polls WHERE hostname = 'bench-backlog') CROSS JOIN numbers($copies)"
done
total=$(ch_query "SELECT count() FROM fleet.connections WHERE hostname IN ('fleet-a', 'fleet-b')")
first=$(ch_query "SELECT min(first_seen) FROM fleet.connections WHERE hostname = 'fleet-a'")
last=$(ch_query "SELECT max(first_seen) FROM fleet.connections WHERE hostname = 'fleet-a'")
mid=$(python3 -c "import datetime, sys; t = (int(sys.argv[1]) + int(sys.argv[2])) // 2; print(datetime.datetime.fromtimestamp(t / 1000, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3] + 'Z')" "$first" "$last")
port=$(ch_query "SELECT remote_port FROM fleet.connections WHERE hostname = 'fleet-a' GROUP BY remote_port ORDER BY count() DESC LIMIT 1")
open=$("$bin" history --clickhouse "$url" --at "$mid" --format jsonl 2>/dev/null | wc -l)
echo "the store: $total connections of two hosts over $hours h; open at $mid: $open"
python3 bench/timeit.py --runs 5 --warmup 1 \
  "at=$bin history --clickhouse $url --at $mid --format jsonl" \
  "at-host=$bin history --clickhouse $url --host fleet-a --at $mid --format jsonl" \
  "at-port=$bin history --clickhouse $url --at $mid --format jsonl 'dport = :${port:-80}'"
echo "kept: $work"
