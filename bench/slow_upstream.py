#!/usr/bin/env python3
"""Slow upstream for the coalescing case: sleeps DELAY_MS per request and
answers BODY_FILE with Cache-Control max-age=60; counts requests.
GET /__count -> {"total": N, "distinct": M} (not counted).
Usage: slow_upstream.py PORT DELAY_MS BODY_FILE"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, delay = int(sys.argv[1]), float(sys.argv[2]) / 1000.0
body = open(sys.argv[3], "rb").read()
lock = threading.Lock()
state = {"total": 0, "paths": {}}


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, b, cc):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.send_header("Cache-Control", cc)
        self.end_headers()
        self.wfile.write(b)

    def do_GET(self):
        if self.path == "/__count":
            with lock:
                b = json.dumps({"total": state["total"],
                                "distinct": len(state["paths"])}).encode()
            return self.send(b, "no-store")
        with lock:
            state["total"] += 1
            state["paths"][self.path] = state["paths"].get(self.path, 0) + 1
        time.sleep(delay)
        self.send(body, "max-age=60")


class S(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


S(("127.0.0.1", port), H).serve_forever()
