"""The smaller points of issue 12 ("What is wrong today", last bullet) that
an integration test can see:

- a backslash in a path (raw or %5C) is refused like a dot segment: 400
  {"detail":"Malformed request path"}, never sent upstream;
- a reload that lowers max_body during a chunked upload does not let that
  upload through: it keeps the limit it started with, so its 413 comes;
- http_proxy, HTTPS_PROXY, ALL_PROXY (...) in lcgate's environment are
  ignored; `[upstream] proxy` is the one way to use a proxy;
- a pass-through HEAD answers the upstream's Content-Length;
- naive date-times pydantic reads as one value are one cache key; an aware
  one is never equal to a naive one.
(RateLimit-Policy is checked in trust_budgets.py.)
"""
import http.client
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import lcgtest as t  # noqa: E402
import ratelimit_lib as rlib  # noqa: E402
import trust as tr  # noqa: E402

V1, V2 = tr.V1, tr.V2
MALFORMED = {"detail": "Malformed request path"}

tap = t.Tap()
env = t.Env("lcgate-trust-smaller")
mock = env.mock()


# --- a forward HTTP proxy (absolute-form requests), counting what it relays ---------
class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        self.server.seen.append((self.command, self.path))
        u = urlsplit(self.path)
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        if not u.scheme or not u.hostname:
            self.send_response(400)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        skip = ("proxy-connection", "proxy-authorization", "connection", "keep-alive")
        h = {k: v for k, v in self.headers.items() if k.lower() not in skip}
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        conn.request(self.command, u.path + ("?" + u.query if u.query else ""), body=body,
                     headers=h)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_POST = do_HEAD = do_GET


proxy = ThreadingHTTPServer(("127.0.0.1", 0), ProxyHandler)
proxy.daemon_threads = True
proxy.seen = []
threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.2},
                 daemon=True).start()
PROXY_URL = "http://127.0.0.1:%d" % proxy.server_address[1]

# --- backslashes ------------------------------------------------------------------------
paths = ["/api/..\\__stats", "/api/..%5C__stats", "/api/v2/batches\\..\\..\\__stats",
         "/api/v2\\batches", "/api/v2%5Cbatches?page_size=3", "/api/v2/batches%5c..%5c"]
names = ["GET %s: 400 Malformed request path, nothing upstream" % p for p in paths] + \
        ["control: GET /api/v2/batches?page_size=3 is sent upstream"]
with tr.Scenario(tap, "backslash in the path", names) as sc:
    g = sc.gate(env, c.gate_conf(mock), name="lcgate-bs")
    for p, name in zip(paths, names):
        mock.reset()
        st, h, body = tr.raw(g.port, ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                                      "Connection: close\r\n\r\n" % (p, g.port)).encode())
        n = mock.count()
        try:
            js = json.loads(body)
        except Exception:
            js = None
        sc.ok(st == 400 and js == MALFORMED and n == 0, name,
              "status %d %r; the mock saw %d" % (st, body[:160], n))
    mock.reset()
    r = c.get(g.port, V2 + "?page_size=3")
    sc.ok(r.status == 200 and mock.count() == 1, names[-1], tr.show(r))

# --- a reload lowering max_body during a chunked upload -------------------------------
names = [
    "an upload begun under max_body = 64KiB keeps that limit across a reload to 16KiB: "
    "413 at 96KiB, nothing upstream",
    "control: after the reload, a new 20KiB upload is 413",
]
with tr.Scenario(tap, "reload during a chunked upload", names) as sc:
    conf = c.gate_conf(mock, server={"max_body": "64KiB"})
    g = sc.gate(env, conf, name="lcgate-maxbody")
    mock.reset()
    half = 48 * 1024
    data = b'{"source_directory_id":"' + b"d" * (2 * half - 27) + b'"}'
    s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
    s.sendall(("POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
               "Transfer-Encoding: chunked\r\n\r\n" % (V2, g.port)).encode())
    s.sendall(b"%x\r\n%s\r\n" % (half, data[:half]))
    time.sleep(0.2)
    n0 = g.log().count("configuration reloaded")
    low = dict(conf)
    low["server"] = dict(conf["server"], max_body="16KiB")
    rlib.reload(g, low)
    t.wait_for(lambda: g.log().count("configuration reloaded") > n0, 5, "the reload")
    try:
        rest = data[half:]
        s.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(rest), rest))
    except OSError:
        pass
    buf = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
            if b"\r\n\r\n" in buf:
                break
    except OSError:
        pass
    s.close()
    status = buf.split(b" ", 2)[1] if buf.startswith(b"HTTP/1.") else b"?"
    n = mock.count()
    sc.ok(status == b"413" and n == 0, names[0],
          "answer %r; the mock saw %d request(s)" % (buf[:200], n))
    small = b'{"source_directory_id":"' + b"e" * (20 * 1024) + b'"}'
    r = c.get(g.port, V2, method="POST", body=small, headers=dict(tr.JH))
    sc.ok(r.status == 413, names[1], tr.show(r))

# --- proxies ----------------------------------------------------------------------------
names = [
    "http_proxy, HTTP_PROXY, https_proxy, HTTPS_PROXY, ALL_PROXY in the environment are "
    "ignored: the list goes straight to the upstream",
    "[upstream] proxy = <a proxy>: the list goes through it",
]
with tr.Scenario(tap, "proxies", names) as sc:
    penv = {k: PROXY_URL for k in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
                                   "ALL_PROXY", "all_proxy")}
    penv.update({"no_proxy": "", "NO_PROXY": ""})
    penv["LLAMA_CLOUD_API_KEY"] = t.KEY_A
    g = env.lcgate(c.gate_conf(mock), env=penv, name="lcgate-proxyenv")
    mock.reset()
    del proxy.seen[:]
    r = c.get(g.port, V2 + "?page_size=4")
    sc.ok(r.status == 200 and mock.count() == 1 and not proxy.seen, names[0],
          "%s\nthe mock saw %d, the proxy %r" % (tr.show(r), mock.count(), proxy.seen))
    g2 = sc.gate(env, c.gate_conf(mock, upstream={"proxy": PROXY_URL}), name="lcgate-proxy")
    mock.reset()
    del proxy.seen[:]
    r = c.get(g2.port, V2 + "?page_size=5")
    sc.ok(r.status == 200 and mock.count() == 1 and len(proxy.seen) == 1
          and proxy.seen[0][1].startswith(mock.url + "/api/v2/batches"), names[1],
          "%s\nthe mock saw %d, the proxy %r" % (tr.show(r), mock.count(), proxy.seen))

# --- HEAD ---------------------------------------------------------------------------------
names = ["pass-through HEAD /api/v2/batches/<id>: the upstream's status and Content-Length",
         "pass-through HEAD /api/v2/batches?page_size=3: the upstream's status and "
         "Content-Length"]
with tr.Scenario(tap, "HEAD", names) as sc:
    g = sc.gate(env, c.gate_conf(mock), name="lcgate-head")
    bid = c.create_direct(mock, "v2")
    for p, name in zip((V2 + "/" + bid, V2 + "?page_size=3"), names):
        want = t.request(mock.port, "HEAD", p, headers=tr.bearer(t.KEY_A))
        r = c.get(g.port, p, method="HEAD")
        sc.ok(r.status == want.status
              and r.header("content-length") == want.header("content-length"), name,
              "lcgate: %d Content-Length %r; the upstream: %d Content-Length %r"
              % (r.status, r.header("content-length"), want.status,
                 want.header("content-length")))

# --- naive date-times -------------------------------------------------------------------
naive = ["2023-11-15", "2023-11-15T00:00", "2023-11-15T00:00:00.000", "2023-11-15%2000:00:00"]
names = ["v2 list created_at_on_or_after=%s, %s, %s, %s: one cache entry (MISS, then HITs; "
         "the upstream asked once)" % tuple(naive),
         "an aware 2023-11-15T00:00:00Z is another entry (MISS)",
         "control: 2023-11-15T00:00:00%2B00:00 is the same instant as ...Z (HIT)"]
with tr.Scenario(tap, "naive date-times", names) as sc:
    g = sc.gate(env, c.gate_conf(mock), name="lcgate-dates")
    base = V2 + "?page_size=6&created_at_on_or_after="
    mock.reset()
    rs = [c.get(g.port, base + d) for d in naive]
    n = tr.mock_routes(mock, "GET /api/v2/batches")
    sc.ok([c.xc(r) for r in rs] == ["MISS", "HIT", "HIT", "HIT"] and n == 1, names[0],
          "X-Cache %r; the upstream asked %d times\n%s"
          % ([c.xc(r) for r in rs], n, "\n".join(tr.show(r) for r in rs)))
    r = c.get(g.port, base + "2023-11-15T00:00:00Z")
    sc.ok(r.status == 200 and c.xc(r) == "MISS", names[1], tr.show(r))
    r = c.get(g.port, base + "2023-11-15T00:00:00%2B00:00")
    sc.ok(r.status == 200 and c.xc(r) == "HIT", names[2], tr.show(r))

proxy.shutdown()
tap.done(env)
