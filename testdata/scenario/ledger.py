#!/usr/bin/env python3
"""Connections opened and closed at a set rate, in every way a connection
ends, each written to a ledger: the ground truth that `history`, `watch`
and `top` are compared with.

    unshare --net python3 testdata/scenario/ledger.py LEDGER

Two processes: this one, the client, named `reportgen`, and a server it
forks, named `dbserver`, listening on 127.0.0.1. Prints the manifest (pid;
in "names" the server's pid and port), then answers one line per command
on stdin:

  run RATE SECONDS [HOWS]
                     open RATE connections a second for SECONDS, ending
                     each in turn: the client closes first (its end goes
                     to TIME_WAIT), the server closes first (the server's
                     end does), both reset (SO_LINGER 0: no TIME_WAIT), and
                     a flash (connect, exchange, close in a few ms), and a
                     flash again on the ends of a client's TIME_WAIT (bound
                     to its port: the kernel ends that TIME_WAIT; one at
                     least 1.5 s old, else a plain flash; when the kernel
                     does not give those ends, the socket connects to the
                     server's spare port instead, as a flash); HOWS
                     (comma-separated: client_first, server_first, reset,
                     flash, again) picks some of those. Each but the
                     flashes lives 20 to 80 ms.                -> "ok N"
  hold NAME          open a connection and keep it             -> "ok PORT"
  close NAME         close it, the client first                -> "ok"
  wait               until every connection of `run` ended     -> "ok"

Every connection is one line of LEDGER (JSON) when its client closes:
{"id", "how", "client", "server", "client_pid", "server_pid",
 "client_comm", "server_comm", "opened_ms", "client_cookie", "closed_ms",
 "sent", "received"}: `sent` bytes went from the client to the server,
`received` back; `closed_ms` is when the client closed (or reset) its end,
`server_closed_ms` when the server closed its own and `server_cookie` its
socket's (the server's line, merged by id). A cookie is the kernel's
number for a socket (SO_COOKIE, what sock_diag reports): the ends of a
connection can be taken again at once (a server's TIME_WAIT accepts a new
SYN on them), the cookie is never. Exits when stdin closes.
"""

import collections
import ctypes
import heapq
import json
import os
import selectors
import socket
import struct
import sys
import time

LINGER_0 = struct.pack("ii", 1, 0)
SO_COOKIE = 57  # asm-generic/socket.h, Linux 4.13
HOWS = ["client_first", "server_first", "reset", "flash", "again"]
# A client's TIME_WAIT this old may have its ends taken again.
AGAIN_AFTER = 1.5
# ... and this young: it is surely still there.
AGAIN_BEFORE = 50.0


def name_process(name):
    """Set this process's command name (/proc/PID/comm)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME


def now_ms():
    return int(time.time() * 1000)


def cookie(s):
    """The kernel's cookie of socket `s` (the one sock_diag reports)."""
    return struct.unpack("Q", s.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8))[0]


def server(listeners, ledger):
    """Accept, read the client's request (id, how, sizes), answer, and end
    the connection as the client asked."""
    name_process("dbserver")
    sel = selectors.DefaultSelector()
    for lst in listeners:
        lst.setblocking(False)
        sel.register(lst, selectors.EVENT_READ, None)
    conns = {}
    out = open(ledger + ".server", "a", buffering=1)
    while True:
        for key, _ in sel.select():
            if key.data is None:
                try:
                    s, _ = key.fileobj.accept()
                except BlockingIOError:
                    continue
                s.setblocking(False)
                conns[s] = {"buf": b"", "need": None, "cookie": cookie(s)}
                sel.register(s, selectors.EVENT_READ, "conn")
                continue
            s = key.fileobj
            st = conns[s]
            try:
                data = s.recv(65536)
            except (ConnectionResetError, BlockingIOError):
                data = b""
            if data:
                st["buf"] += data
                if st["need"] is None and len(st["buf"]) >= 16:
                    ident, how, size, answer = struct.unpack("!IIII", st["buf"][:16])
                    st.update(id=ident, how=HOWS[how], need=size, answer=answer)
                if st["need"] is not None and len(st["buf"]) >= st["need"] and not st.get("answered"):
                    st["answered"] = True
                    s.setblocking(True)
                    s.sendall(b"y" * st["answer"])
                    s.setblocking(False)
                    if st["how"] == "server_first":
                        finish(sel, conns, s, out)
                continue
            # The client closed or reset its end.
            finish(sel, conns, s, out)


def finish(sel, conns, s, out):
    st = conns.pop(s)
    sel.unregister(s)
    if st.get("how") == "reset":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
    s.close()
    if "id" in st:
        out.write(json.dumps({"id": st["id"], "server_closed_ms": now_ms(), "server_cookie": st["cookie"]}) + "\n")


class Client:
    def __init__(self, port, spare, server_pid, ledger):
        self.port = port
        self.spare = spare
        self.server_pid = server_pid
        self.ledger = open(ledger, "a", buffering=1)
        self.next_id = 1
        self.due = []  # (close at, id)
        self.open = {}
        # Client TIME_WAITs, oldest first: (closed at, client port, id).
        self.time_waits = collections.deque()
        # The last connection of ours that ended on each client port (id),
        # and the ports of those open: a TIME_WAIT whose port another
        # connection took meanwhile (the kernel's tcp_tw_reuse) is not
        # taken again, so that no two connections on the same ends open
        # within moments of each other.
        self.last_on_port = {}
        self.busy = set()

    def socket_for(self, how):
        """A client socket (SO_REUSEADDR, so that its TIME_WAIT's ends can
        be taken again) and how it will end: "again" is bound to the port
        of a TIME_WAIT old enough, or is a plain flash when none is."""
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if how != "again":
            return c, how
        now = time.monotonic()
        while self.time_waits and self.time_waits[0][0] < now - AGAIN_BEFORE:
            self.time_waits.popleft()
        while self.time_waits and self.time_waits[0][0] <= now - AGAIN_AFTER:
            _, port, ident = self.time_waits.popleft()
            if port not in self.busy and self.last_on_port.get(port) == ident:
                break
        else:
            return c, "flash"
        try:
            c.bind(("127.0.0.1", port))
            return c, how
        except OSError:
            c.close()
            return self.socket_for("flash")

    def connect(self, how, size=3000, answer=2000):
        ident = self.next_id
        self.next_id += 1
        c, how = self.socket_for(how)
        server = self.port
        opened = now_ms()
        try:
            c.connect(("127.0.0.1", server))
        except OSError:
            if how != "again":
                raise
            # The kernel did not give the TIME_WAIT's ends (gone, or taken
            # by another connection): the same socket to the spare port, a
            # plain flash (closed unconnected, it would be a socket of no
            # connection).
            how, server = "flash", self.spare
            opened = now_ms()
            c.connect(("127.0.0.1", server))
        c.sendall(struct.pack("!IIII", ident, HOWS.index(how), 16 + size, answer) + b"x" * size)
        got = 0
        while got < answer:
            chunk = c.recv(answer - got)
            if not chunk:
                break
            got += len(chunk)
        rec = {
            "id": ident,
            "how": how,
            "client": "127.0.0.1:%d" % c.getsockname()[1],
            "server": "127.0.0.1:%d" % server,
            "client_pid": os.getpid(),
            "server_pid": self.server_pid,
            "client_comm": "reportgen",
            "server_comm": "dbserver",
            "opened_ms": opened,
            "client_cookie": cookie(c),
            "sent": 16 + size,
            "received": got,
        }
        self.open[ident] = (c, rec)
        self.busy.add(c.getsockname()[1])
        return ident

    def close(self, ident):
        c, rec = self.open.pop(ident)
        if rec["how"] == "server_first":
            # The server closes first: read its FIN, then close.
            c.recv(1)
        if rec["how"] == "reset":
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
        c.close()
        rec["closed_ms"] = now_ms()
        port = int(rec["client"].split(":")[1])
        self.busy.discard(port)
        self.last_on_port[port] = ident
        if rec["how"] in ("client_first", "flash", "again"):
            self.time_waits.append((time.monotonic(), port, ident))
        self.ledger.write(json.dumps(rec) + "\n")

    def run(self, rate, seconds, hows=HOWS):
        start = time.monotonic()
        n = int(rate * seconds)
        for i in range(n):
            when = start + i / rate
            self.close_due(when)
            delay = when - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            how = hows[i % len(hows)]
            ident = self.connect(how)
            if self.open[ident][1]["how"] in ("flash", "again"):
                self.close(ident)
            else:
                hold = 0.020 + (i * 7 % 61) / 1000.0
                heapq.heappush(self.due, (time.monotonic() + hold, ident))
        return n

    def close_due(self, until):
        while self.due and self.due[0][0] <= until:
            at, ident = heapq.heappop(self.due)
            delay = at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.close(ident)


def main():
    ledger = sys.argv[1]
    os.system("ip link set lo up")
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", 0))
    lst.listen(4096)
    port = lst.getsockname()[1]
    spare = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    spare.bind(("127.0.0.1", 0))
    spare.listen(64)
    pid = os.fork()
    if pid == 0:
        server([lst, spare], ledger)
        os._exit(0)
    lst.close()
    name_process("reportgen")
    client = Client(port, spare.getsockname()[1], pid, ledger)
    spare.close()
    names = {"server_pid": str(pid), "port": str(port)}
    print(json.dumps({"pid": os.getpid(), "sockets": [], "names": names}), flush=True)
    held = {}
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["run"] and len(words) in (3, 4):
            hows = words[3].split(",") if len(words) == 4 else HOWS
            if not set(hows) <= set(HOWS):
                print("error: unknown way to end a connection", flush=True)
                continue
            n = client.run(float(words[1]), float(words[2]), hows)
            print("ok %d" % n, flush=True)
        elif words[:1] == ["hold"] and len(words) == 2:
            ident = client.connect("client_first")
            held[words[1]] = ident
            print("ok %s" % client.open[ident][1]["client"].split(":")[1], flush=True)
        elif words[:1] == ["close"] and len(words) == 2 and words[1] in held:
            client.close(held.pop(words[1]))
            print("ok", flush=True)
        elif words == ["wait"]:
            client.close_due(float("inf"))
            print("ok", flush=True)
        else:
            print("error: unknown command", flush=True)
    os.kill(pid, 9)


if __name__ == "__main__":
    main()
