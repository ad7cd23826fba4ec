#!/usr/bin/env python3
"""A store that keeps nothing: answers ClickHouse's HTTP interface as far
as `tcptab record --clickhouse` asks it (`SELECT version()`, `SELECT 1`,
inserts), and drops every row. For measuring what shipping costs the
recorder alone (bench/ship_threads.sh), without a ClickHouse server's
work on the same machine.

    python3 bench/sink.py          (prints its URL, serves until killed)
"""
import http.server
import socketserver
import sys
import urllib.parse


class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def answer(self):
        sent = self.body()
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("query", [""])[0]
        text = query if query else sent.decode("utf-8", "replace")[:200]
        reply = b""
        if "version()" in text:
            reply = b"18.16.1\n"
        elif text.strip().upper().startswith("SELECT"):
            reply = b"1\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = answer
    do_POST = answer

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


server = Server(("127.0.0.1", 0), Sink)
print(f"http://127.0.0.1:{server.server_address[1]}/?database=fleet", flush=True)
try:
    server.serve_forever()
except KeyboardInterrupt:
    sys.exit(0)
