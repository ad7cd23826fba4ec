#!/usr/bin/env python3
"""A namespace with problems `tcptab explain --diagnose` must find, held
until stdin closes:

- 12 CLOSE_WAIT sockets held by this process (peers closed, we never do);
- a listener with backlog 1 and a full accept queue (3 connections waiting);
- a zero-window peer: a client whose peer never reads, so the client keeps
  probing a zero window.

    unshare --net python3 testdata/scenario/trouble.py
"""
import json
import os
import socket
import time

from sockets import addr, hold, keep, listener, pair, setup_links, wait_for, ss_states


def main():
    setup_links()
    v4 = socket.AF_INET
    names = {}

    # CLOSE_WAIT pile-up: the client side closes, the server side never does.
    lst = listener(v4, "127.0.0.1")
    port = lst.getsockname()[1]
    for _ in range(12):
        c, s = pair(lst)
        c.close()
        keep.remove(c)
    names["close_wait_port"] = str(port)

    # A full accept queue: backlog 1, three handshakes completed, none accepted.
    full = listener(v4, "127.0.0.1", backlog=1)
    fport = full.getsockname()[1]
    for _ in range(3):
        c = socket.socket(v4, socket.SOCK_STREAM)
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", fport))
        except BlockingIOError:
            pass
        keep.append(c)
    names["full_listener"] = f"127.0.0.1:{fport}"

    # A zero-window peer: the server never reads; the client fills it up.
    c, s = pair(lst)
    c.setblocking(False)
    try:
        while True:
            c.send(b"z" * 65536)
    except BlockingIOError:
        pass
    names["zero_window_client"] = addr(c.getsockname())

    def probing():
        with open("/proc/net/tcp") as f:
            return any(line.split()[5].startswith("04:") for line in f.readlines()[1:])

    wait_for(probing, "a zero window probe timer", timeout=20)
    wait_for(lambda: sum(l[0] == "CLOSE-WAIT" for l in ss_states()) >= 12, "12 CLOSE_WAIT")
    print(json.dumps({"pid": os.getpid(), "sockets": [], "names": names}), flush=True)
    hold()


if __name__ == "__main__":
    main()
