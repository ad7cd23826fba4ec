#!/usr/bin/env python3
"""A transfer of known speed, an idle connection and, on command, a
connection that lives a few milliseconds, for `tcptab top`.

    unshare --net python3 testdata/scenario/paced.py [BYTES_PER_SECOND]

A client sends to a server over loopback at BYTES_PER_SECOND (default
2,000,000; paced against the clock, so the average holds whatever the
scheduling), the server reads everything; a second pair stays idle. Prints
the manifest (pid; in "names" the ports and the rate), then answers one
line per command on stdin:

  flash   connect, send 1000 bytes, read them, close both -> "ok PORT"

Exits when stdin closes.
"""

import json
import os
import socket
import sys
import threading
import time

from sockets import keep, listener, setup_links


def pace(sock, rate):
    start = time.monotonic()
    sent = 0
    chunk = b"x" * 16384
    while True:
        due = int((time.monotonic() - start) * rate)
        while sent < due:
            n = sock.send(chunk[: min(len(chunk), due - sent)])
            sent += n
        time.sleep(0.005)


def drain(sock):
    while sock.recv(1 << 16):
        pass


def main():
    rate = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
    setup_links()
    lst = listener(socket.AF_INET, "127.0.0.1")
    port = lst.getsockname()[1]
    sender = socket.create_connection(("127.0.0.1", port))
    receiver, _ = lst.accept()
    idle_client = socket.create_connection(("127.0.0.1", port))
    idle_server, _ = lst.accept()
    keep.extend([sender, receiver, idle_client, idle_server])
    threading.Thread(target=drain, args=(receiver,), daemon=True).start()
    threading.Thread(target=pace, args=(sender, rate), daemon=True).start()
    names = {
        "listen_port": str(port),
        "sender_port": str(sender.getsockname()[1]),
        "idle_port": str(idle_client.getsockname()[1]),
        "rate": str(rate),
    }
    print(json.dumps({"pid": os.getpid(), "sockets": [], "names": names}), flush=True)
    for line in sys.stdin:
        if line.strip() == "flash":
            c = socket.create_connection(("127.0.0.1", port))
            s, _ = lst.accept()
            c.sendall(b"y" * 1000)
            got = 0
            while got < 1000:
                got += len(s.recv(1000 - got))
            flash_port = c.getsockname()[1]
            c.close()
            s.close()
            print(f"ok {flash_port}", flush=True)
        else:
            print("error: unknown command", flush=True)


if __name__ == "__main__":
    main()
