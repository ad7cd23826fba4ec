#!/usr/bin/env bash
# `tcptab history --at` on a day of recording: a real recording of
# bench/history.sh (its churn.db: N held connections and RATE opened and
# closed per second) is repeated in time until it covers 24 hours (its
# closed connections, owners, state changes, polls and accept queues
# shifted by whole copies of its span; the held connections stay open
# through the day), then `history --at` a moment in the middle, `--at`
# with a port filter, `--between` a minute and `--summary --at` are timed
# (median of 5 runs, bench/timeit.py). Run it alone. For a file of
# version 5 (docs/history.md): the rows, their spans and the long ones'
# lifetime index are copied.
#
#   bench/history_day.sh CHURN_DB [HOURS]        (default: 24)
set -euo pipefail
cd "$(dirname "$0")/.."
src=$1
hours=${2:-24}
cargo build --release -q -p tcptab-cli
bin=$PWD/target/release/tcptab
day=$(dirname "$src")/day.db
cp "$src" "$day"
sqlite3 "$day" 'PRAGMA wal_checkpoint(TRUNCATE)' > /dev/null
t0=$(sqlite3 "$day" 'SELECT min(at) FROM polls')
t1=$(sqlite3 "$day" 'SELECT max(at) FROM polls')
# Whole intervals: the copies' polls stay 5 s apart.
span=$(( (t1 - t0) / 5000 * 5000 + 5000 ))
want=$(( hours * 3600 * 1000 ))
covered=$span
while [ "$covered" -lt "$want" ]; do
  shift_ms=$covered
  limit=$(( t0 + want - covered ))      # the last copy: only what still fits
  sqlite3 "$day" <<SQL
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -8000000;
PRAGMA mmap_size = 40000000000;
BEGIN;
CREATE TEMP TABLE m AS SELECT (SELECT max(id) FROM connection_rows) AS c, (SELECT max(id) FROM polls) AS p;
INSERT INTO connection_rows
  SELECT id + (SELECT c FROM m), boot, netns, cookie, first_seen + $shift_ms, last_seen, closed_at,
         closed_by, first_state, family, kind, state, local_address, local_port, remote_address,
         remote_port, tx_queue, rx_queue, timer, timer_ms, retransmits, uid, probes, inode, source,
         interface, backlog_limit, congestion_algorithm, shutdown, v6only, owner_status, bytes_acked,
         bytes_received, total_retrans, rtt_us, workload, follows
  FROM connection_rows WHERE closed_at IS NOT NULL AND first_seen < $limit;
INSERT INTO spans
  SELECT first_id + (SELECT c FROM m), last_id + (SELECT c FROM m), first_seen_min + $shift_ms,
         first_seen_max + $shift_ms
  FROM spans WHERE first_id <= (SELECT c FROM m) AND first_seen_min < $limit;
INSERT INTO lifetimes
  SELECT c.id + (SELECT c FROM m), l.start_s + $shift_ms / 1000, l.end_s + $shift_ms / 1000
  FROM lifetimes l JOIN connection_rows c ON c.id = l.id
  WHERE c.closed_at IS NOT NULL AND c.first_seen < $limit AND c.id <= (SELECT c FROM m);
INSERT INTO owners
  SELECT o.connection + (SELECT c FROM m), o.pid, o.fd, o.command, o.first_seen + $shift_ms
  FROM owners o JOIN connection_rows c ON c.id = o.connection
  WHERE c.closed_at IS NOT NULL AND c.first_seen < $limit AND c.id <= (SELECT c FROM m);
INSERT INTO state_change_rows
  SELECT s.connection + (SELECT c FROM m), s.at + $shift_ms, s.state
  FROM state_change_rows s JOIN connection_rows c ON c.id = s.connection
  WHERE c.closed_at IS NOT NULL AND c.first_seen < $limit AND c.id <= (SELECT c FROM m);
INSERT INTO polls
  SELECT id + (SELECT p FROM m), at + $shift_ms, boot, source, namespaces, sockets, opened, closed,
         notifications, took_us, not_seen, interval_ms
  FROM polls WHERE at < $limit;
INSERT INTO listen_queues
  SELECT q.poll + (SELECT p FROM m), q.connection, q.queued, q.backlog_limit
  FROM listen_queues q JOIN polls p ON p.id = q.poll WHERE p.at < $limit AND p.id <= (SELECT p FROM m);
COMMIT;
SQL
  covered=$(( covered * 2 ))
done
last=$(sqlite3 "$day" 'SELECT max(at) FROM polls')
sqlite3 "$day" "UPDATE connection_rows SET last_seen = $last - first_seen WHERE closed_at IS NULL;"
rows=$(sqlite3 "$day" 'SELECT count(*) FROM connection_rows')
size=$(stat -c %s "$day")
first=$(sqlite3 "$day" 'SELECT min(at) FROM polls')
mid=$(python3 -c "import sys; sys.path.insert(0, 'bench'); t = (int(sys.argv[1]) + int(sys.argv[2])) // 2; import datetime; print(datetime.datetime.fromtimestamp(t / 1000, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3] + 'Z')" "$first" "$last")
later=$(python3 -c "import datetime, sys; t = datetime.datetime.strptime(sys.argv[1], '%Y-%m-%dT%H:%M:%S.%fZ') + datetime.timedelta(minutes=1); print(t.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3] + 'Z')" "$mid")
port=$(sqlite3 "$day" "SELECT remote_port FROM connections WHERE state = 'ESTABLISHED' AND closed_at IS NULL LIMIT 1")
echo "a day: $rows connections, $(( size / 1048576 )) MiB, polls from $first to $last; --at $mid"
open=$("$bin" history --db "$day" --at "$mid" --format jsonl 2>/dev/null | wc -l)
echo "open at $mid: $open"
python3 bench/timeit.py --runs 5 --warmup 1 \
  "at=$bin history --db $day --at $mid --format jsonl" \
  "at-port=$bin history --db $day --at $mid --dport $port --format jsonl" \
  "between-1m=$bin history --db $day --between $mid $later --format jsonl" \
  "summary-at=$bin history --db $day --at $mid --summary"
