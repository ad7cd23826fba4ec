#!/usr/bin/env python3
"""Connections opened, changed and closed on command, for `tcptab watch`.

    unshare --net python3 testdata/scenario/driver.py

Prints the manifest (pid, listener port), then answers one line per command
read from stdin:
  open NAME      connect a client to the listener and accept it -> "ok PORT"
  shutdown NAME  the client shuts down its sending side        -> "ok"
                 (client FIN_WAIT2, server CLOSE_WAIT)
  close NAME     close the server side, then the client          -> "ok"
  flash [PORT]   open, exchange a byte and close at once         -> "ok PORT"
                 (the client closes first: its end stays in TIME_WAIT;
                 with PORT, from that local port: a connection on the
                 ends of that TIME_WAIT, which the kernel then ends)
  burst N        N flashes in a row                               -> "ok"
  unconnected    sockets that never connect: one made and closed,  -> "ok PORT HELD"
                 one bound (to PORT) and closed, one refused, one
                 that finds its ends taken (those of a connection
                 from port HELD, held meanwhile and closed after)
  fork           a child process that holds every socket too,     -> "ok PID"
                 until this process exits
Exits when stdin closes.
"""
import json
import os
import socket
import sys
import time

from sockets import listener, setup_links


def flash(lst, port, local=0):
    """Open, exchange a byte and close at once; the client's port.

    The client may take the ends of one of its TIME_WAITs (SO_REUSEADDR
    on both, bound to `local`): the kernel ends that TIME_WAIT then.
    """
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if local:
        c.bind(("127.0.0.1", local))
    c.connect(("127.0.0.1", port))
    s, _ = lst.accept()
    c.sendall(b"x")
    s.recv(1)
    cport = c.getsockname()[1]
    c.close()
    s.close()
    return cport


def main():
    setup_links()
    lst = listener(socket.AF_INET, "127.0.0.1")
    port = lst.getsockname()[1]
    print(json.dumps({"pid": os.getpid(), "sockets": [], "port": port}), flush=True)
    conns = {}
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        cmd, name = words[0], (words[1] if len(words) > 1 else "")
        if cmd == "open":
            c = socket.create_connection(("127.0.0.1", port))
            s, _ = lst.accept()
            conns[name] = (c, s)
            print(f"ok {c.getsockname()[1]}", flush=True)
        elif cmd == "shutdown":
            conns[name][0].shutdown(socket.SHUT_WR)
            print("ok", flush=True)
        elif cmd == "close":
            c, s = conns.pop(name)
            s.close()
            c.close()
            print("ok", flush=True)
        elif cmd == "flash":
            print(f"ok {flash(lst, port, int(name or 0))}", flush=True)
        elif cmd == "fork":
            parent = os.getpid()
            child = os.fork()
            if child == 0:
                while os.getppid() == parent:
                    time.sleep(0.1)
                os._exit(0)
            print(f"ok {child}", flush=True)
        elif cmd == "unconnected":
            socket.socket().close()
            b = socket.socket()
            b.bind(("127.0.0.1", 0))
            bound = b.getsockname()[1]
            b.close()
            r = socket.socket()
            try:
                r.connect(("127.0.0.1", 1))
            except ConnectionRefusedError:
                pass
            r.close()
            c = socket.socket()
            c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            c.connect(("127.0.0.1", port))
            s, _ = lst.accept()
            taken = socket.socket()
            taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            taken.bind(c.getsockname())
            try:
                taken.connect(("127.0.0.1", port))
            except OSError:
                pass
            taken.close()
            held = c.getsockname()[1]
            s.close()
            c.close()
            print(f"ok {bound} {held}", flush=True)
        elif cmd == "burst":
            for _ in range(int(name)):
                flash(lst, port)
            print("ok", flush=True)
        else:
            print(f"error unknown command {cmd}", flush=True)


if __name__ == "__main__":
    main()
