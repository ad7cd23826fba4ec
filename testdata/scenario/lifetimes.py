#!/usr/bin/env python3
"""Connections opened and closed on command, for `tcptab record` and
`tcptab history`.

    unshare --net python3 testdata/scenario/lifetimes.py

A listener on loopback. Prints the manifest (pid; in "names" the listening
port), then answers one line per command on stdin:

  open NAME    connect, send 3000 bytes, read them          -> "ok PORT"
               (PORT: the client's port; the pair stays open)
  close NAME   reset both ends of NAME (SO_LINGER 0: no TIME_WAIT) -> "ok"
  flash        connect, send 5000 bytes, read them, close both ends (the
               client first: it goes to TIME_WAIT), all in a few
               milliseconds                                  -> "ok PORT MS"
               (MS: how long it lived)
  churn N      N flashes, one after another                 -> "ok"

Exits when stdin closes.
"""

import json
import os
import socket
import struct
import time

from sockets import keep, listener, setup_links

LINGER_0 = struct.pack("ii", 1, 0)


def pair(lst, port, size):
    c = socket.create_connection(("127.0.0.1", port))
    s, _ = lst.accept()
    c.sendall(b"x" * size)
    got = 0
    while got < size:
        got += len(s.recv(size - got))
    return c, s


def reset(*socks):
    for sock in socks:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
        sock.close()


def main():
    setup_links()
    lst = listener(socket.AF_INET, "127.0.0.1")
    port = lst.getsockname()[1]
    keep.append(lst)
    names = {"listen_port": str(port)}
    print(json.dumps({"pid": os.getpid(), "sockets": [], "names": names}), flush=True)
    pairs = {}
    for line in iter(input_line, None):
        words = line.split()
        if words[:1] == ["open"] and len(words) == 2:
            c, s = pair(lst, port, 3000)
            pairs[words[1]] = (c, s)
            print(f"ok {c.getsockname()[1]}", flush=True)
        elif words[:1] == ["close"] and len(words) == 2 and words[1] in pairs:
            reset(*pairs.pop(words[1]))
            print("ok", flush=True)
        elif words == ["flash"]:
            start = time.monotonic()
            c, s = pair(lst, port, 5000)
            client_port = c.getsockname()[1]
            c.close()
            s.recv(1)
            s.close()
            ms = (time.monotonic() - start) * 1000
            print(f"ok {client_port} {ms:.1f}", flush=True)
        elif words[:1] == ["churn"] and len(words) == 2:
            for _ in range(int(words[1])):
                reset(*pair(lst, port, 100))
            print("ok", flush=True)
        else:
            print("error: unknown command", flush=True)


def input_line():
    try:
        return input()
    except EOFError:
        return None


if __name__ == "__main__":
    main()
