#!/usr/bin/env python3
"""Build the spec-vector fixtures from shared/docs/proc-net-tcp-format.md §10.

    python3 testdata/spec-vectors/make.py [path/to/proc-net-tcp-format.md]

Writes, next to this script:
  net/tcp, net/tcp6      §10.2-10.5 and §10.6-10.7 as the kernel would print
                         them (IPv4 padded to 149 characters), plus the
                         over-long line of §10.8 at the end of net/tcp;
  big-endian/net/tcp{,6} the big-endian lines of §10.8;
  legacy.txt             the legacy lines of §10.8 (parse only);
  expected.json          the spec's decoded tables, one object per line, keyed
                         by table ("tcp"/"tcp6") and sl: the values the parser
                         must produce, taken from the tables, not the lines.
"""
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    HERE, "../../../shared/docs/proc-net-tcp-format.md")
HEADER4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"
HEADER6 = ("  sl  local_address                         remote_address                        "
           "st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode")


def pad4(line):
    return line + " " * max(0, 149 - len(line))


def sections(text):
    """{'10.2': body, ...} for the level-3 headings of §10."""
    parts = re.split(r"^### (10\.\d+)[^\n]*\n", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def code_blocks(body):
    return [b.strip("\n").splitlines() for b in re.findall(r"```text\n(.*?)```", body, re.S)]


def first_int(cell):
    m = re.match(r"\s*(-?\d+)", cell)
    return int(m.group(1)) if m else None


def table_rows(body):
    rows = []
    header = None
    for line in body.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.replace("\\|", "/").strip("|").split("|")]
        if header is None:
            header = cells
            continue
        if set(cells[0]) <= set("-"):
            continue
        rows.append(dict(zip(header, cells)))
    return rows


def decode(row):
    state = row["st"]
    out = {
        "sl": int(row["sl"]),
        "kind": {"TIME_WAIT mini-socket": "time_wait", "request (SYN_RECV)": "request"}.get(
            row.get("kind"), "full"),
        "local": row["local"],
        "remote": row["remote"],
        "state": state,
        "timer_code": int(row["tr"]),
        "ticks": first_int(row["tm->when (ticks)"]),
        "retransmits": int(row["retrnsmt"]),
        "uid": int(row["uid"]),
        "probes": int(row["timeout"]),
        "inode": int(row["inode"]),
        "refcount": int(row["ref"]),
        "pointer": row["pointer"].strip("`"),
        "pad": int(row["pad"]),
    }
    if "tx_queue" in row:
        out.update({
            "tx_queue": int(row["tx_queue"]),
            "rx_queue": int(row["rx_queue"]),
            "rto": first_int(row["rto"]),
            "ato": first_int(row["ato"]),
            "quick_pingpong": first_int(row["(quick<<1)/pp"]),
            "cwnd": int(row["cwnd"]),
            "last": first_int(row["last"]),
        })
    else:
        out.update({"tx_queue": 0, "rx_queue": 0})
    return out


def write(path, lines):
    full = os.path.join(HERE, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        f.write("".join(l + "\n" for l in lines))


def main():
    s = sections(open(SPEC).read())
    v4 = [l for sec in ("10.2", "10.3", "10.4", "10.5") for l in code_blocks(s[sec])[0]]
    v6 = [l for sec in ("10.6", "10.7") for l in code_blocks(s[sec])[0]]
    edge = code_blocks(s["10.8"])
    big, overlong, legacy = edge[0], edge[1], edge[2]
    write("net/tcp", [pad4(HEADER4)] + [pad4(l) for l in v4 + overlong])
    write("net/tcp6", [HEADER6] + v6)
    write("big-endian/net/tcp", [pad4(HEADER4)] + [pad4(big[0])])
    write("big-endian/net/tcp6", [HEADER6, big[1]])
    write("legacy.txt", legacy)
    expected = []
    for table, secs in (("tcp", ("10.2", "10.3", "10.4", "10.5")), ("tcp6", ("10.6", "10.7"))):
        for sec in secs:
            for row in table_rows(s[sec]):
                if "sl" in row and row["sl"].isdigit():
                    entry = decode(row)
                    entry["table"] = table
                    expected.append(entry)
    with open(os.path.join(HERE, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    print(f"{len(v4)} + {len(overlong)} IPv4 lines, {len(v6)} IPv6 lines, {len(expected)} decoded rows")


if __name__ == "__main__":
    main()
