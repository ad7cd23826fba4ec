#!/usr/bin/env python3
"""Sockets for `tcptab kill`: a CLOSE_WAIT pile-up next to healthy
connections, answering commands until stdin closes.

    unshare --net python3 testdata/scenario/stuck.py      (or ip netns exec)

- 4 CLOSE_WAIT server sockets on one listener (their clients closed);
- 2 ESTABLISHED connections on another listener;
- the two listeners.

Prints the manifest (pid, names: close_wait_port, other_port), then one
answer per command line:
  check          send a byte on every CLOSE_WAIT socket -> "ok E1,E2,..."
                 (the errno name per socket, or "fine")
  healthy        the ESTABLISHED connections still carry data -> "ok yes|no"
  close N        close CLOSE_WAIT socket N (0-based)   -> "ok PORT" (its
                 peer's port)
"""
import errno
import json
import os
import socket
import sys

from sockets import listener, pair, setup_links, wait_for, ss_states


def main():
    setup_links()
    v4 = socket.AF_INET
    stuck_listener = listener(v4, "127.0.0.1")
    port = stuck_listener.getsockname()[1]
    stuck = []
    for _ in range(4):
        c, s = pair(stuck_listener)
        c.close()
        stuck.append(s)
    wait_for(lambda: sum(1 for r in ss_states() if r[0] == "CLOSE-WAIT") == 4, "CLOSE_WAIT")
    other_listener = listener(v4, "127.0.0.1")
    other = other_listener.getsockname()[1]
    healthy = [pair(other_listener) for _ in range(2)]
    names = {"close_wait_port": str(port), "other_port": str(other)}
    print(json.dumps({"pid": os.getpid(), "sockets": [], "names": names}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "check":
            results = []
            for s in stuck:
                try:
                    s.send(b"x")
                    results.append("fine")
                except OSError as e:
                    results.append(errno.errorcode.get(e.errno, str(e.errno)))
            print("ok " + ",".join(results), flush=True)
        elif words[0] == "healthy":
            good = True
            for c, s in healthy:
                try:
                    c.sendall(b"ping")
                    good = good and s.recv(4) == b"ping"
                except OSError:
                    good = False
            print("ok " + ("yes" if good else "no"), flush=True)
        elif words[0] == "close":
            s = stuck[int(words[1])]
            peer = s.getpeername()[1]
            s.close()
            print(f"ok {peer}", flush=True)
        else:
            print(f"error unknown command {words[0]}", flush=True)


if __name__ == "__main__":
    main()
