#!/usr/bin/env python3
"""Create real TCP sockets in every state the kernel lists, in the current
network namespace, then hold them until stdin closes.

Run it inside a fresh namespace (it changes the namespace's interfaces):

    unshare --net python3 testdata/scenario/sockets.py

It prints one JSON line, the manifest: the sockets it made (family, state,
local and remote address, what the queues and timer must show, owner uid
and pid), then sleeps until its standard input is closed. All traffic stays
inside the namespace: loopback, and a veth pair whose far end has no
address (so SYNs to 10.99.0.2 go unanswered).

Needs root (veth, raw socket for the SYN_RECV request socket, setuid).
"""

import json
import os
import select
import socket
import struct
import subprocess
import sys
import time

NOBODY = 65534
UNSENT = 4 * 1024 * 1024


def sh(*args):
    subprocess.run(args, check=True)


def setup_links():
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "link", "add", "tt0", "type", "veth", "peer", "name", "tt1")
    sh("ip", "addr", "add", "10.99.0.1/24", "dev", "tt0")
    sh("ip", "link", "set", "tt0", "up")
    sh("ip", "link", "set", "tt1", "up")
    # A permanent neighbour entry for the silent peer: without it the failed
    # ARP aborts SYN_SENT and SYN_RECV sockets after about 3 s; with it the
    # SYNs leave into tt1 (which has no address) and go unanswered, and the
    # sockets live through their retries (a minute or more).
    sh("ip", "neigh", "add", "10.99.0.2", "lladdr", "02:00:00:00:00:02", "dev", "tt0", "nud", "permanent")


def addr(sock_name):
    host, port = sock_name[0], sock_name[1]
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


manifest = []
keep = []  # every socket object, so none is closed by garbage collection


def expect(name, family, state, local, remote, **extra):
    entry = {
        "name": name,
        "family": family,
        "state": state,
        "local": local,
        "remote": remote,
        "uid": 0,
        "pids": [os.getpid()],
    }
    entry.update(extra)
    manifest.append(entry)


def listener(family, host, backlog=16, v6only=None, port=0, device=None):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if v6only else 0)
    if device:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
    s.bind((host, port))
    s.listen(backlog)
    keep.append(s)
    return s


def connect(family, target, source=None):
    c = socket.socket(family, socket.SOCK_STREAM)
    if source:
        c.bind(source)
    c.connect(target)
    keep.append(c)
    return c


def pair(lst, family=socket.AF_INET, host="127.0.0.1"):
    c = connect(family, (host, lst.getsockname()[1]))
    s, _ = lst.accept()
    keep.append(s)
    return c, s


def wait_for(predicate, what, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise SystemExit(f"scenario: timed out waiting for {what}")


def ss_states():
    out = subprocess.run(["ss", "-tanH"], capture_output=True, text=True).stdout
    return [line.split() for line in out.splitlines()]


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def send_syn(src, sport, dst, dport):
    """A SYN from an address nobody answers for: the listener keeps a
    request socket (SYN_RECV) and retransmits its SYN-ACK into the void."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 12345, 0, 5 << 4, 0x02, 65535, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0,
        socket.inet_aton(src), socket.inet_aton(dst),
    )
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    raw.sendto(ip + tcp, (dst, 0))
    raw.close()


def main():
    setup_links()
    v4 = socket.AF_INET
    v6 = socket.AF_INET6

    # LISTEN with two connections waiting in the accept queue.
    queued = listener(v4, "127.0.0.1", backlog=8)
    qport = queued.getsockname()[1]
    for _ in range(2):
        connect(v4, ("127.0.0.1", qport))
    expect("listen_queued", "ipv4", "LISTEN", f"127.0.0.1:{qport}", "0.0.0.0:0",
           rx_queue=2, backlog=8)
    for c in keep[-2:]:
        expect("queued_client", "ipv4", "ESTABLISHED", addr(c.getsockname()),
               f"127.0.0.1:{qport}")
    # The two server-side children exist too, not yet accepted: no inode.
    for c in keep[-2:]:
        expect("queued_child", "ipv4", "ESTABLISHED", f"127.0.0.1:{qport}",
               addr(c.getsockname()), inode_zero=True, pids=[])

    lst = listener(v4, "127.0.0.1")
    port = lst.getsockname()[1]
    expect("listen", "ipv4", "LISTEN", f"127.0.0.1:{port}", "0.0.0.0:0", rx_queue=0)

    # ESTABLISHED with unread data on the server side.
    c, s = pair(lst)
    c.sendall(b"x" * 100)
    expect("unread_client", "ipv4", "ESTABLISHED", addr(c.getsockname()), f"127.0.0.1:{port}")
    expect("unread_server", "ipv4", "ESTABLISHED", f"127.0.0.1:{port}", addr(c.getsockname()),
           rx_queue=100)

    # ESTABLISHED with unsent data: the peer never reads, the sender fills up.
    c, s = pair(lst)
    c.setblocking(False)
    sent = 0
    try:
        while sent < UNSENT:
            sent += c.send(b"y" * 65536)
    except BlockingIOError:
        pass
    expect("unsent_client", "ipv4", "ESTABLISHED", addr(c.getsockname()), f"127.0.0.1:{port}",
           tx_queue_min=1)
    expect("unsent_server", "ipv4", "ESTABLISHED", f"127.0.0.1:{port}", addr(c.getsockname()),
           rx_queue_min=1)

    # Keepalive timer pending.
    c, s = pair(lst)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 600)
    expect("keepalive_client", "ipv4", "ESTABLISHED", addr(c.getsockname()),
           f"127.0.0.1:{port}", timer="keepalive")
    expect("keepalive_server", "ipv4", "ESTABLISHED", f"127.0.0.1:{port}", addr(c.getsockname()))

    # FIN_WAIT2 (full socket, half closed) and its peer in CLOSE_WAIT.
    c, s = pair(lst)
    c.shutdown(socket.SHUT_WR)
    expect("half_closed", "ipv4", "FIN_WAIT2", addr(c.getsockname()), f"127.0.0.1:{port}",
           kind="full")
    expect("close_wait", "ipv4", "CLOSE_WAIT", f"127.0.0.1:{port}", addr(c.getsockname()))

    # TIME_WAIT: the client closes first, then the server.
    c, s = pair(lst)
    name = addr(c.getsockname())
    c.close()
    time.sleep(0.05)
    s.close()
    keep.remove(c)
    keep.remove(s)
    expect("time_wait", "ipv4", "TIME_WAIT", name, f"127.0.0.1:{port}", kind="time_wait",
           timer="time_wait", pids=[])

    # FIN_WAIT2 mini-socket: the client closes (orphan), the server never does.
    c, s = pair(lst)
    name = addr(c.getsockname())
    c.close()
    keep.remove(c)
    expect("orphan_fin_wait2", "ipv4", "FIN_WAIT2", name, f"127.0.0.1:{port}",
           kind="time_wait", timer="time_wait", pids=[])
    expect("orphan_peer", "ipv4", "CLOSE_WAIT", f"127.0.0.1:{port}", name)

    # SYN_SENT toward an address nobody answers.
    c = socket.socket(v4, socket.SOCK_STREAM)
    c.setblocking(False)
    try:
        c.connect(("10.99.0.2", 80))
    except BlockingIOError:
        pass
    keep.append(c)
    expect("syn_sent", "ipv4", "SYN_SENT", addr(c.getsockname()), "10.99.0.2:80",
           tx_queue=1, timer="retransmit")

    # SYN_RECV: a request socket for a SYN from an address nobody answers.
    half = listener(v4, "10.99.0.1")
    hport = half.getsockname()[1]
    send_syn("10.99.0.2", 40000, "10.99.0.1", hport)
    expect("listen_half_open", "ipv4", "LISTEN", f"10.99.0.1:{hport}", "0.0.0.0:0")
    expect("syn_recv", "ipv4", "SYN_RECV", f"10.99.0.1:{hport}", "10.99.0.2:40000",
           kind="request", timer="retransmit", pids=[])

    # IPv6: a v6-only listener on ::1 and a connection to it.
    l6 = listener(v6, "::1", v6only=True)
    p6 = l6.getsockname()[1]
    expect("listen6", "ipv6", "LISTEN", f"[::1]:{p6}", "[::]:0")
    c, s = pair(l6, v6, "::1")
    expect("estab6_client", "ipv6", "ESTABLISHED", addr(c.getsockname()), f"[::1]:{p6}")
    expect("estab6_server", "ipv6", "ESTABLISHED", f"[::1]:{p6}", addr(c.getsockname()))

    # Dual-stack listener on :: and an IPv4 client: the accepted socket is
    # IPv4-mapped IPv6, listed in tcp6 only.
    ld = listener(v6, "::", v6only=False)
    pd = ld.getsockname()[1]
    expect("listen_dual", "ipv6", "LISTEN", f"[::]:{pd}", "[::]:0")
    c = connect(v4, ("127.0.0.1", pd))
    s, _ = ld.accept()
    keep.append(s)
    cport = c.getsockname()[1]
    expect("mapped_client", "ipv4", "ESTABLISHED", f"127.0.0.1:{cport}", f"127.0.0.1:{pd}")
    expect("mapped_server", "ipv6", "ESTABLISHED", f"[::ffff:127.0.0.1]:{pd}",
           f"[::ffff:127.0.0.1]:{cport}")

    # A listener owned by another uid, held by a child process.
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        other = listener(v4, "127.0.0.1")
        os.write(w, str(other.getsockname()[1]).encode())
        os.read(0, 1)  # until our stdin closes
        os._exit(0)
    oport = int(os.read(r, 16))
    expect("listen_nobody", "ipv4", "LISTEN", f"127.0.0.1:{oport}", "0.0.0.0:0",
           uid=NOBODY, pids=[child])

    # A listener shared by two processes (this one and a forked child).
    shared = listener(v4, "127.0.0.1")
    sport = shared.getsockname()[1]
    twin = os.fork()
    if twin == 0:
        os.read(0, 1)
        os._exit(0)
    expect("listen_shared", "ipv4", "LISTEN", f"127.0.0.1:{sport}", "0.0.0.0:0",
           pids=sorted([os.getpid(), twin]))

    # Let the transitions settle: the SYN_RECV request exists, the orphaned
    # FIN_WAIT2 became a mini-socket.
    wait_for(lambda: any(l[0] == "SYN-RECV" for l in ss_states()), "the SYN_RECV socket")
    wait_for(lambda: sum(l[0] == "TIME-WAIT" for l in ss_states()) >= 1, "TIME_WAIT")

    print(json.dumps({"pid": os.getpid(), "sockets": manifest}), flush=True)
    hold()
    for pid in (child, twin):
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


def hold():
    """Keep every socket until stdin closes."""
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], 3600)
        if ready and not sys.stdin.buffer.read1(1):
            break


if __name__ == "__main__":
    main()
