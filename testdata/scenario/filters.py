#!/usr/bin/env python3
"""Sockets for comparing filters with ss: well-known ports (so that service
names mean something), listeners bound explicitly inside and outside the
ephemeral port range and one left to the kernel, a socket bound to an
interface, both families with IPv4-mapped peers, and the closing states.

    unshare --net python3 testdata/scenario/filters.py

Prints one JSON line (the manifest: its pid, the ports in "names", no
per-socket expectations), then holds every socket until stdin closes. All
traffic stays in the namespace: loopback, and a veth pair whose far end has
no address (SYNs to 10.99.0.2 go unanswered). Needs root.
"""

import json
import os
import socket

from sockets import connect, hold, keep, listener, setup_links, ss_states, wait_for


def accepted(lst):
    s, _ = lst.accept()
    keep.append(s)
    return s


def syn_sent(target, device=None):
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if device:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
    c.setblocking(False)
    try:
        c.connect(target)
    except BlockingIOError:
        pass
    keep.append(c)


def main():
    setup_links()
    v4, v6 = socket.AF_INET, socket.AF_INET6

    http = listener(v4, "127.0.0.1", port=80)
    https = listener(v4, "127.0.0.1", port=443)
    ssh = listener(v4, "0.0.0.0", port=22)
    explicit = listener(v4, "127.0.0.1", port=40000)  # bound, in the ephemeral range
    auto = listener(v4, "127.0.0.1")  # the kernel chose the port
    dual = listener(v6, "::", port=8080, v6only=False)
    only6 = listener(v6, "::1", port=8443, v6only=True)
    listener(v6, "::", port=9090, v6only=True)
    listener(v4, "10.99.0.1", port=5432, device="tt0")

    for _ in range(2):
        connect(v4, ("127.0.0.1", 80))
        accepted(http)
    connect(v4, ("127.0.0.1", 443))
    accepted(https)
    connect(v4, ("127.0.0.1", 22), source=("127.0.0.2", 0))
    accepted(ssh)
    connect(v4, ("127.0.0.1", 80), source=("127.0.0.1", 5000))  # bound client
    accepted(http)
    connect(v4, ("127.0.0.1", 40000))
    accepted(explicit)
    connect(v4, ("127.0.0.1", auto.getsockname()[1]))
    accepted(auto)
    connect(v4, ("127.0.0.1", 8080))  # an IPv4 peer of a dual-stack listener
    accepted(dual)
    connect(v6, ("::1", 8080))
    accepted(dual)
    connect(v6, ("::1", 8443))
    accepted(only6)

    # FIN_WAIT2 and CLOSE_WAIT: the client closes, the server does not.
    c = connect(v4, ("127.0.0.1", 443))
    s = accepted(https)
    c.shutdown(socket.SHUT_WR)
    # TIME_WAIT: the client closes first, then the server.
    c = socket.create_connection(("127.0.0.1", 80))
    s = http.accept()[0]
    c.close()
    wait_for(lambda: [row[0] for row in ss_states()].count("CLOSE-WAIT") == 2, "the peer's FIN")
    s.close()

    # Bound, neither listening nor connected: listed only when asked for.
    bound = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    bound.bind(("127.0.0.1", 4444))
    keep.append(bound)

    syn_sent(("10.99.0.2", 80))
    syn_sent(("10.99.0.2", 443), device="tt0")

    def settled():
        seen = [row[0] for row in ss_states()]
        return "TIME-WAIT" in seen and "CLOSE-WAIT" in seen and seen.count("SYN-SENT") == 2

    wait_for(settled, "the closing states")

    names = {"auto": str(auto.getsockname()[1])}
    print(json.dumps({"pid": os.getpid(), "sockets": [], "names": names}), flush=True)
    hold()


if __name__ == "__main__":
    main()
