#!/usr/bin/env python3
"""The kernel's cost of a whole table's dump, asked two ways: one
inet_diag_req_v2 dump per family (two walks of the kernel's tables), or one
TCPDIAG_GETSOCK dump of both families (one walk). Each answer is received
and thrown away, nothing decoded: the process's CPU per dump is the kernel's
work (system time) and Python's receiving. Run it in the namespace to
measure, as root, alone on the machine:

    nsenter -t PID -n python3 bench/walks.py [ROUNDS]     (default 20)

Asks for tcp_info, the congestion algorithm, the socket's memory and
shutdown, as `tcptab record` does; three turns of each way.
"""
import resource
import socket
import struct
import sys

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY, TCPDIAG_GETSOCK = 20, 18
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
# INET_DIAG_INFO, INET_DIAG_CONG, INET_DIAG_SKMEMINFO, INET_DIAG_SHUTDOWN
EXT = (1 << (2 - 1)) | (1 << (4 - 1)) | (1 << (7 - 1)) | (1 << (8 - 1))
ALL_STATES = 0xFFF


def header(length, kind):
    return struct.pack("=IHHII", 16 + length, kind, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)


def per_family(family):
    body = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, EXT, 0, ALL_STATES) + b"\0" * 48
    return header(len(body), SOCK_DIAG_BY_FAMILY) + body


def one_walk():
    body = struct.pack("=BBBB", 0, 0, 0, EXT) + b"\0" * 48 + struct.pack("=II", ALL_STATES, 0)
    return header(len(body), TCPDIAG_GETSOCK) + body


def dump(request):
    """Send one request; the sockets of its answer."""
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
    s.send(request)
    sockets = 0
    while True:
        datagram = s.recv(65536)
        at = 0
        while at < len(datagram):
            length, kind = struct.unpack_from("=IH", datagram, at)
            if kind == NLMSG_DONE:
                s.close()
                return sockets
            if kind == NLMSG_ERROR:
                sys.exit("the kernel refused the dump")
            sockets += 1
            at += (length + 3) & ~3


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_stime


rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
ways = (
    ("a dump per family", [per_family(socket.AF_INET), per_family(socket.AF_INET6)]),
    ("one walk", [one_walk()]),
)
for turn in range(3):
    for name, requests in ways:
        (c0, s0), sockets = cpu(), 0
        for _ in range(rounds):
            sockets += sum(dump(r) for r in requests)
        c1, s1 = cpu()
        print(f"{name}: {sockets / rounds:.0f} sockets, {(c1 - c0) / rounds * 1000:.1f} ms of CPU "
              f"({(s1 - s0) / rounds * 1000:.1f} system) per table")
