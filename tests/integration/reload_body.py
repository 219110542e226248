"""A reload that lowers max_body leaves an upload already begun with the
limit it started with (hs_set_limits applies to requests begun afterwards):
its 413 still comes, and the allowance left never underflows (issue 12)."""
import os
import re
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import lcgtest as t  # noqa: E402

HEAD = (b"POST /api/v2/batches HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Bearer " + t.KEY_A.encode() + b"\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
PART = 600 * 1024


def chunk(n):
    return b"%x\r\n" % n + b"x" * n + b"\r\n"


def answer(s, timeout=10.0):
    """The status line and body of one answer (Content-Length framing)."""
    s.settimeout(timeout)
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            if not d:
                break
            buf += d
        head, _, rest = buf.partition(b"\r\n\r\n")
        m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        n = int(m.group(1)) if m else 0
        while len(rest) < n:
            d = s.recv(65536)
            if not d:
                break
            rest += d
        return head.split(b"\r\n")[0].decode("latin-1"), rest[:n]
    except (socket.timeout, ConnectionResetError) as e:
        return "no answer (%s)" % e, buf


tap = t.Tap()
env = t.Env("lcgate-reload-body")
mock = env.mock()
# One worker: the reload's limits reach it before the probe below can pass.
g = c.start_gate(tap, env, c.gate_conf(mock, server={"max_body": "1MiB", "workers": "1"}))
if g:
    s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
    s.sendall(HEAD + chunk(PART))
    conf = open(g.conf_path).read()
    with open(g.conf_path, "w") as f:
        f.write(conf.replace("max_body = 1MiB", "max_body = 100KiB"))
    os.kill(g.proc.pid, signal.SIGHUP)
    t.wait_for(lambda: "configuration reloaded" in g.log(), 5, "reload logged")

    def lowered():
        p = socket.create_connection(("127.0.0.1", g.port), timeout=5)
        try:
            p.sendall(b"POST /api/v2/batches HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Length: 204800\r\n\r\n")
            return answer(p, 5)[0].startswith("HTTP/1.1 413")
        finally:
            p.close()
    t.wait_for(lowered, 5, "a new 200 KiB request refused under max_body = 100KiB")
    n0 = mock.count()
    try:
        s.sendall(chunk(PART) + b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    status, body = answer(s)
    s.close()
    tap.ok(status.startswith("HTTP/1.1 413"),
           "a chunked upload begun under max_body = 1MiB, 600 KiB + 600 KiB across a "
           "reload to 100KiB: 413", (status, body[:200]))
    tap.eq(mock.count() - n0, 0, "and nothing of it went upstream")
tap.done(env)
