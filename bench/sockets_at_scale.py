#!/usr/bin/env python3
"""Hold N loopback TCP connections (2N sockets) in the current network
namespace, spread over many processes, then wait until stdin closes.

    unshare --net python3 bench/sockets_at_scale.py N [WORKERS]

With CGROUPS=DIR in the environment (a directory in the cgroup2 file
system), worker k first joins DIR/bench-(k mod CGROUP_COUNT).service
(CGROUP_COUNT, default 50, made if missing), so that the sockets are held
by that many cgroups.

Half the connections are IPv4 (from 127.0.0.0/8 sources), half IPv6 (::1).
Each worker process has its own IPv4 and IPv6 listener and holds both ends
of its connections; every 10th connection has 10 unread bytes queued, and
every 50th is closed (client first), leaving a TIME_WAIT socket. Prints
"READY <pid> <sockets>" when done.
"""
import os
import select
import socket
import subprocess
import sys


def join_cgroup(index):
    root = os.environ.get("CGROUPS")
    if not root:
        return
    n = int(os.environ.get("CGROUP_COUNT", "50"))
    path = os.path.join(root, f"bench-{index % n}.service")
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))


def worker(index, count, ready_w):
    join_cgroup(index)
    v4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    v4.bind(("127.0.0.1", 0))
    v4.listen(4096)
    v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    v6.bind(("::1", 0))
    v6.listen(4096)
    held = [v4, v6]
    closed = 0
    for i in range(count):
        if i % 2 == 0:
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.bind((f"127.{1 + index // 250}.{index % 250}.{1 + i % 200}", 0))
            c.connect(v4.getsockname())
            s, _ = v4.accept()
        else:
            c = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            c.connect(v6.getsockname()[:2])
            s, _ = v6.accept()
        if i % 50 == 49:
            c.close()
            s.close()
            closed += 1
            continue
        if i % 10 == 0:
            c.send(b"0123456789")
        held += [c, s]
    os.write(ready_w, b"x")
    # Hold until the parent's stdin (inherited) closes.
    while True:
        r, _, _ = select.select([0], [], [], 3600)
        if r and not os.read(0, 1):
            break
    os._exit(0)


def main():
    n = int(sys.argv[1])
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else max(1, min(400, n // 200))
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with open("/proc/sys/net/ipv4/ip_local_port_range", "w") as f:
        f.write("1024 65535")
    ready_r, ready_w = os.pipe()
    per = n // workers
    pids = []
    for k in range(workers):
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            worker(k, per if k < workers - 1 else n - per * (workers - 1), ready_w)
        pids.append(pid)
    for _ in range(workers):
        os.read(ready_r, 1)
    total = sum(1 for _ in open("/proc/net/tcp")) + sum(1 for _ in open("/proc/net/tcp6")) - 2
    print(f"READY {os.getpid()} {total}", flush=True)
    while True:
        r, _, _ = select.select([0], [], [], 3600)
        if r and not os.read(0, 1):
            break
    for pid in pids:
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
