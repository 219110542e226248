#!/usr/bin/env python3
"""Slow upstream for the coalescing and paging cases; counts requests.

Coalescing: any request sleeps DELAY_MS and gets BODY_FILE with
Cache-Control max-age=60.

Paging: GET /api/v2/batches whose project_id starts with "paging-" is one
page of a list of PAGES pages, after PAGE_MS. The list is named by its
project_id (each paging run uses its own). Without page_token it is page 1;
page_token=pg-NN is page NN. Each page has page_size items (default 20) with
ids naming the list and the page, and "next_page_token": "pg-<NN+1>", or
null on the last page (the token chain lcgate's pg_next follows for v2).
An unknown token gets a 400.

GET /__count            -> {"total": N, "distinct": M} (not counted)
GET /__count?tag=LIST   -> the same, plus "tag": requests for that list
Usage: slow_upstream.py PORT DELAY_MS BODY_FILE [PAGES PAGE_MS]"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

port, delay = int(sys.argv[1]), float(sys.argv[2]) / 1000.0
body = open(sys.argv[3], "rb").read()
pages = int(sys.argv[4]) if len(sys.argv) > 4 else 20
page_delay = float(sys.argv[5]) / 1000.0 if len(sys.argv) > 5 else 0.1
lock = threading.Lock()
state = {"total": 0, "paths": {}, "tags": {}}


def page_body(tag, n, size):
    items = [{"id": "%s-p%02d-%03d" % (tag, n, i), "project_id": tag, "status": "COMPLETED",
              "page": n, "rows": n * 1000 + i} for i in range(size)]
    nxt = "pg-%02d" % (n + 1) if n < pages else None
    return json.dumps({"items": items, "next_page_token": nxt, "page": n},
                      separators=(",", ":")).encode()


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in one write, with TCP_NODELAY: written apart,
    # the body of an answer on a reused connection waited for the delayed ACK
    # of the headers (Nagle), 40 ms more than the delay asked for.
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass

    def send(self, b, cc, status=200):
        self.send_response_only(status)
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.send_header("Cache-Control", cc)
        self._headers_buffer.append(b"\r\n")
        self.wfile.write(b"".join(self._headers_buffer) + b)
        self._headers_buffer = []

    def do_GET(self):
        u = urlsplit(self.path)
        q = parse_qs(u.query, keep_blank_values=True)
        if u.path == "/__count":
            with lock:
                d = {"total": state["total"], "distinct": len(state["paths"])}
                if "tag" in q:
                    d["tag"] = state["tags"].get(q["tag"][0], 0)
                b = json.dumps(d).encode()
            return self.send(b, "no-store")
        tag = q.get("project_id", [""])[-1]
        paging = u.path == "/api/v2/batches" and tag.startswith("paging-")
        with lock:
            state["total"] += 1
            state["paths"][self.path] = state["paths"].get(self.path, 0) + 1
            if paging:
                state["tags"][tag] = state["tags"].get(tag, 0) + 1
        if not paging:
            time.sleep(delay)
            return self.send(body, "max-age=60")
        tok = q.get("page_token", [""])[-1]
        try:
            n = int(tok[3:]) if tok else 1
            if (tok and not tok.startswith("pg-")) or not 1 <= n <= pages:
                raise ValueError
            size = int(q.get("page_size", ["20"])[-1])
        except ValueError:
            return self.send(b'{"detail":"bad page_token"}', "no-store", 400)
        time.sleep(page_delay)
        self.send(page_body(tag, n, size), "max-age=60")


class S(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


S(("127.0.0.1", port), H).serve_forever()
