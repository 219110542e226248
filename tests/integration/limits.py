"""Request limits and the open-proxy cases, on raw sockets.

Issue 8, done when: "Each limit and each open-proxy case above has a test
with the exact status expected, in make check."

Limits (small ones in this test's config, so the cases stay cheap): request
line 414, head 431 (size and field count), query parameters 400, body 413
(Content-Length and chunked), slow head 408, idle keep-alive closed,
max_connections queues the excess. Open proxy: absolute-form, authority-form
and asterisk-form targets, dot segments (plain and encoded), encoded
slashes (read as slashes, as the upstream reads them), CR/LF/NUL in the path,
query and fields, a foreign Host field (421), and
the admin routes on the client listener: none of them reaches anything but
/api/... on the configured upstream, and none adds a field upstream.
"""
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import faults_lib as fl  # noqa: E402
import lcgtest as t  # noqa: E402

V1, V2 = c.V1, c.V2
tap = t.Tap()
env = t.Env("lcgate-limits")
mock = env.mock()
# One worker (whatever LCGATE_TEST_WORKERS says): with N, each worker takes
# max_connections / N, and which one a connection reaches is the kernel's.
conf = c.gate_conf(mock, server={"max_request_line": "1KiB", "max_header_size": "4KiB",
                                 "max_body": "16KiB", "max_connections": "8",
                                 "header_timeout": "1s", "idle_timeout": "1500ms",
                                 "workers": "1"})
g = c.start_gate(tap, env, conf, name="lcgate-limits")


class Answer:
    def __init__(self):
        self.status, self.headers, self.body, self.closed, self.took = 0, {}, b"", False, 0.0

    def __repr__(self):
        return "%d %r %r closed=%s took=%.2fs" % (self.status, self.headers, self.body[:200],
                                                 self.closed, self.took)


def read_answer(s, t0, timeout):
    """One HTTP/1.1 answer from s (Content-Length framing), then whether the
    server closed the connection right after it."""
    a = Answer()
    buf = b""
    s.settimeout(timeout)
    try:
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            if not d:
                a.closed = True
                a.took = time.monotonic() - t0
                return a
            buf += d
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        a.status = int(lines[0].split()[1])
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            a.headers[k.strip().lower()] = v.strip()
        n = int(a.headers.get("content-length", "0"))
        while len(rest) < n:
            d = s.recv(65536)
            if not d:
                break
            rest += d
        a.body = rest[:n]
        a.took = time.monotonic() - t0
        s.settimeout(0.3)
        try:
            a.closed = s.recv(1) == b""
        except socket.timeout:
            a.closed = False
    except (socket.timeout, ConnectionResetError):
        a.closed = True
        a.took = time.monotonic() - t0
    return a


def raw(data, timeout=5.0, port=None):
    s = socket.create_connection(("127.0.0.1", port or g.port), timeout=timeout)
    t0 = time.monotonic()
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        return read_answer(s, t0, timeout)
    finally:
        s.close()


def get_line(target, extra=b""):
    return b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + b"\r\n"


def is_json_detail(a):
    try:
        return (a.headers.get("content-type") == "application/json"
                and isinstance(json.loads(a.body).get("detail"), str))
    except ValueError:
        return False


def check(a, status, name, closed=None):
    ok = a.status == status and is_json_detail(a)
    if closed is not None:
        ok = ok and a.closed == closed
    tap.ok(ok, name, a)


def upstream_count():
    return mock.stats()["requests"]


if g:
    # --- limits -------------------------------------------------------------
    a = raw(get_line(b"/api/v1/beta/batch-processing?x=" + b"a" * 1100))
    check(a, 414, "request line over max_request_line (1 KiB): 414 JSON, connection closed",
          closed=True)
    a = raw(get_line(V1.encode() + b"?limit=5", b"X-Big: " + b"b" * 5000 + b"\r\n"))
    check(a, 431, "head over max_header_size (4 KiB): 431 JSON", closed=True)
    a = raw(get_line(V1.encode() + b"?limit=5", b"".join(b"X-F%d: v\r\n" % i
                                                        for i in range(120))))
    check(a, 431, "120 header fields (over 100): 431 JSON", closed=True)
    q = "&".join(["a"] * 300)
    a = raw(get_line((V1 + "?" + q).encode()))
    check(a, 400, "300 query parameters on a list route (over 256): 400 JSON")
    n0 = upstream_count()
    a = raw(b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 20000\r\n\r\n")
    check(a, 413, "Content-Length over max_body (16 KiB): 413 JSON before the body is sent",
          closed=True)
    chunk = b"4000\r\n" + b"x" * 0x4000 + b"\r\n"
    a = raw(b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + chunk + chunk)
    check(a, 413, "chunked body over max_body: 413 JSON", closed=True)
    tap.eq(upstream_count() - n0, 0, "none of the refused requests reached the upstream")

    # Slowloris: one byte of the head every 0.2 s, until the server answers.
    s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
    t0 = time.monotonic()
    head = get_line(V1.encode() + b"?limit=5", b"X-Slow: " + b"s" * 40 + b"\r\n")
    sent, cut = 0, None
    s.setblocking(False)
    while sent < len(head) and time.monotonic() - t0 < 4:
        try:
            if s.recv(1, socket.MSG_PEEK):
                cut = time.monotonic() - t0
                break
        except BlockingIOError:
            pass
        except OSError:
            break
        try:
            s.send(head[sent:sent + 1])
            sent += 1
        except OSError:
            break
        time.sleep(0.2)
    s.setblocking(True)
    a = read_answer(s, t0, 5)
    s.close()
    check(a, 408, "a head sent one byte per 0.2 s: 408 JSON at header_timeout (1 s)",
          closed=True)
    tap.ok(cut is not None and 1.0 <= cut <= 2.5 and sent < len(head),
           "the slow client was cut off after %s s (%d of %d bytes sent)"
           % ("%.2f" % cut if cut else "no answer in 4", sent, len(head)))

    # Idle keep-alive connection.
    s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
    s.sendall(get_line(V1.encode() + b"?limit=5"))
    t_sent = time.monotonic()
    first = read_answer(s, t_sent, 5)
    t0 = t_sent + first.took     # when the answer was in
    s.settimeout(4)
    try:
        eof = s.recv(1) == b""
    except (socket.timeout, ConnectionResetError):
        eof = False
    idle = time.monotonic() - t0
    s.close()
    tap.ok(first.status == 200 and not first.closed and eof and 1.3 <= idle <= 3.0,
           "an idle keep-alive connection is closed after idle_timeout (1.5 s): %.2f s" % idle,
           first)

    # max_connections = 8: 8 silent connections hold every slot (each would
    # get its 408 after 1 s); a 9th is queued by the kernel and answered once
    # they are gone, and never refused with an error.
    holders = [socket.create_connection(("127.0.0.1", g.port), timeout=5) for _ in range(8)]
    time.sleep(0.2)
    open_conns = fl.metric(g, "lcgate_client_connections")
    t0 = time.monotonic()
    ninth = socket.create_connection(("127.0.0.1", g.port), timeout=5)
    ninth.sendall(get_line(V1.encode() + b"?limit=5"))
    a = read_answer(ninth, t0, 5)
    ninth.close()
    for h in holders:
        h.close()
    tap.eq(open_conns, 8.0, "lcgate_client_connections reports the 8 open connections")
    tap.ok(a.status == 200 and a.took >= 0.7,
           "max_connections (8) full: a 9th connection waits in the queue and is answered "
           "after %.2f s, when a slot frees" % a.took, a)
    r = c.get(g.port, V1 + "?limit=5")
    tap.ok(r.status == 200, "and the gateway serves normally afterwards", r)

    # --- no open proxy ----------------------------------------------------------
    mock.reset()
    for target, why in ((b"http://evil.example/api/v1/beta/batch-processing?limit=3",
                         "absolute-form target"),
                        (b"http://127.0.0.1:%d/api/v1/jobs" % mock.port,
                         "absolute-form target naming the upstream itself"),
                        (b"evil.example:443", "authority-form target"),
                        (b"*", "asterisk-form target")):
        check(raw(get_line(target)), 400, "%s: 400 JSON" % why)
    check(raw(b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example\r\n\r\n"), 400,
          "CONNECT: 400 JSON")
    for target, why in ((b"/api/../admin/purge", "'..' segment"),
                        (b"/api/v1/%2e%2e/%2E%2E/admin/purge", "'%2e%2e' segments"),
                        (b"/api/v1%2F..%2F..%2Fadmin/purge", "encoded slashes around '..'"),
                        (b"/api/./v1/jobs", "'.' segment"),
                        (b"/api/v1/jobs%0d%0aX-Injected:%201", "encoded CR LF in the path"),
                        (b"/api/v1/jobs%00", "encoded NUL in the path")):
        check(raw(get_line(target)), 400, "%s: 400 JSON" % why)
    for data, why in ((b"GET /api/v1/jobs\r\nX-Injected: 1 HTTP/1.1\r\nHost: x\r\n\r\n",
                       "CR LF inside the request line"),
                      (b"GET /api/v1/j\x00obs HTTP/1.1\r\nHost: x\r\n\r\n", "NUL in the target"),
                      (b"GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
                       "NUL in a field value"),
                      (b"GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\nX-A: a\rX-Injected: 1\r\n\r\n",
                       "bare CR in a field value"),
                      (b"GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\nX-A: a\r\n X-Injected: 1\r\n\r\n",
                       "obs-fold continuation line"),
                      (b"GET /api/v1/jobs HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                       "two Host fields"),
                      (b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                       "Content-Length with Transfer-Encoding (smuggling)")):
        check(raw(data), 400, "%s: 400 JSON" % why, closed=True)
    tap.eq(mock.stats()["requests"], 0, "none of the requests above reached the upstream")

    # What does go upstream goes to base_url, under /api, read as the
    # upstream reads it: an encoded slash is a slash (uvicorn decodes the
    # path before routing), so this is the cached list route.
    mock.reset()
    a = raw(get_line(b"/api/v1/beta%2Fbatch-processing?limit=3"))
    last = mock.stats()["last"]
    tap.ok(a.status == 200 and len(last) == 1 and
           last[0]["path"] == "/api/v1/beta/batch-processing" and
           a.headers.get("x-cache") == "MISS",
           "an encoded slash reads as a slash: the list route, sent to the configured "
           "upstream under /api (upstream saw %r)" % ([e["path"] for e in last],))
    mock.reset()
    a = raw(b"GET /api/v1/jobs?x=%0d%0aX-Injected:%201 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"X-Forwarded-Host: evil.example\r\n\r\n")
    last = mock.stats()["last"]
    hdrs = last[0]["headers"] if last else {}
    tap.ok(len(last) == 1 and "x-injected" not in hdrs and
           hdrs.get("host") == "127.0.0.1:%d" % mock.port and
           last[0]["query"] == "x=%0d%0aX-Injected:%201",
           "the upstream request went to base_url with its own Host, and an encoded CR LF "
           "in the query stayed encoded (no injected field)", (a, last))
    mock.reset()
    a = raw(b"GET /api/v1/jobs HTTP/1.1\r\nHost: evil.example\r\n\r\n")
    check(a, 421, "a foreign Host on this loopback listener: 421 JSON")
    tap.eq(upstream_count(), 0, "and it went nowhere")
    mock.reset()
    a = raw(get_line(V1.encode() + b"?limit=4",
                     b"Authorization: Bearer llx-someone-elses-key\r\n"))
    last = mock.stats()["last"]
    tap.ok(a.status == 200 and len(last) == 1 and
           last[0]["headers"].get("authorization") == "Bearer " + t.KEY_A,
           "a client's own Authorization is replaced by the configured key", last)
    for path in (b"/admin/purge", b"/metrics", b"/healthz"):
        for method in (b"GET", b"POST"):
            a = raw(method + b" " + path +
                    b" HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n")
            check(a, 404, "%s %s on the client listener: 404 JSON (admin routes live on "
                  "admin_listen only)" % (method.decode(), path.decode()))
    check(raw(get_line(V1.encode() + b"?limit=%zz")), 400,
          "invalid percent-encoding in a list query: 400 JSON")
    a = raw(get_line(V1.encode() + b"?project_id=%ff%fe"))
    try:
        detail = json.loads(a.body).get("detail")
    except ValueError:
        detail = None
    tap.ok(a.status in (400, 422) and a.headers.get("content-type") == "application/json"
           and detail, "non-UTF-8 in a list query: %d JSON" % a.status, a)
tap.done(env)
