#!/usr/bin/env python3
"""Tiny stdlib HTTP server for the compatibility check (tests/compat.rs).

Usage: python3 server.py PORT

Routes (every response carries the header `X-Faultline-Test: yes`):
  GET    /health          200 `application/json` {"status": "up", "items": [...]},
                          503 `application/json` {"status": "down"} while a fault is set
  GET    /health-charset  same body, Content-Type `application/json; charset=utf-8`
  GET    /text            200 text/plain "all good"
  GET    /status/NNN      status NNN, text/plain body "status NNN"
  GET    /slow?s=SECONDS  sleeps, then 200 text/plain "slow"
  POST   /fault           sets the fault (then /health answers 503)
  DELETE /fault           clears the fault
The fault is per server process; the test starts one server per case.
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

FAULT = threading.Event()
HEALTHY = {
    "status": "up",
    "items": [
        {"id": 1, "ok": True},
        {"id": 2, "ok": True},
        {"id": 3, "ok": False},
    ],
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # keep the test output quiet
        pass

    def _send(self, status, body, content_type):
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Faultline-Test", "yes")
        self.end_headers()
        self.wfile.write(data)

    def _drain(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)

    def do_GET(self):
        url = urlparse(self.path)
        if url.path in ("/health", "/health-charset"):
            ctype = "application/json"
            if url.path == "/health-charset":
                ctype = "application/json; charset=utf-8"
            if FAULT.is_set():
                self._send(503, json.dumps({"status": "down"}), ctype)
            else:
                self._send(200, json.dumps(HEALTHY), ctype)
        elif url.path == "/text":
            self._send(200, "all good", "text/plain")
        elif url.path.startswith("/status/"):
            code = int(url.path.rsplit("/", 1)[1])
            self._send(code, f"status {code}", "text/plain")
        elif url.path == "/slow":
            seconds = float(parse_qs(url.query).get("s", ["2"])[0])
            time.sleep(seconds)
            self._send(200, "slow", "text/plain")
        else:
            self._send(404, "not found", "text/plain")

    def do_POST(self):
        self._drain()
        if self.path == "/fault":
            FAULT.set()
            self._send(200, json.dumps({"fault": True}), "application/json")
        else:
            self._send(404, "not found", "text/plain")

    def do_DELETE(self):
        self._drain()
        if self.path == "/fault":
            FAULT.clear()
            self._send(200, json.dumps({"fault": False}), "application/json")
        else:
            self._send(404, "not found", "text/plain")


def main():
    port = int(sys.argv[1])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
