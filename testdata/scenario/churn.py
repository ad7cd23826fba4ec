#!/usr/bin/env python3
"""Churn: open and close loopback connections as fast as it can for
SECONDS, in the current network namespace (each leaves a TIME_WAIT, so the
table grows to thousands of rows while it changes).

    nsenter -t PID -n python3 testdata/scenario/churn.py SECONDS
"""
import socket
import sys
import time


def main():
    seconds = float(sys.argv[1])
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", 0))
    lst.listen(128)
    port = lst.getsockname()[1]
    end = time.time() + seconds
    n = 0
    while time.time() < end:
        c = socket.create_connection(("127.0.0.1", port))
        s, _ = lst.accept()
        c.close()
        s.close()
        n += 1
    print(n, flush=True)


if __name__ == "__main__":
    main()
