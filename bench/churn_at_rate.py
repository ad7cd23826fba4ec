#!/usr/bin/env python3
"""Open and close RATE loopback connections per second in the current
network namespace until stdin closes (or for SECONDS).

    python3 bench/churn_at_rate.py RATE [SECONDS]

Each connection carries 100 bytes and is closed client first (the client's
end goes to TIME_WAIT, as on a busy client of a server), paced against the
clock so the average rate holds. Prints "CHURNING" once started, and the
number of connections made when it stops.
"""
import select
import socket
import sys
import time


def main():
    rate = float(sys.argv[1])
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else float("inf")
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1024)
    target = lst.getsockname()
    print("CHURNING", flush=True)
    start = time.monotonic()
    made = 0
    while time.monotonic() - start < seconds:
        due = int((time.monotonic() - start) * rate)
        while made < due:
            c = socket.create_connection(target)
            s, _ = lst.accept()
            c.sendall(b"x" * 100)
            s.recv(100)
            c.close()
            s.close()
            made += 1
        if select.select([sys.stdin], [], [], 0.005)[0] and not sys.stdin.readline():
            break
    print(made, flush=True)


if __name__ == "__main__":
    main()
