"""Egress: curl takes no proxy from the environment, and [upstream] proxy
sends every upstream request through the proxy configured (issue 12).

A decoy socket of the test, named by http_proxy, HTTP_PROXY, https_proxy,
HTTPS_PROXY, ALL_PROXY and all_proxy, must see no connection while lcgate
still reaches the mock. Then a small forwarding proxy written here (absolute-
form request line -> origin-form, one request per connection, counted) is
set as `proxy =`, with no_proxy=* in the environment: every upstream request
goes through it."""
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import lcgtest as t  # noqa: E402

PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "ALL_PROXY",
              "all_proxy")


class Decoy:
    """A listening socket that counts (and drops) every connection."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            self.conns += 1
            s.close()


class ForwardProxy:
    """An HTTP proxy for plain http:// targets: reads one request, rewrites
    its absolute-form target to origin-form, forwards it with Connection:
    close, and relays the answer back (also with Connection: close)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.lines = []
        self.lock = threading.Lock()
        threading.Thread(target=self._run, daemon=True).start()

    def count(self):
        with self.lock:
            return len(self.lines)

    def _run(self):
        while True:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        try:
            s.settimeout(10)
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = s.recv(65536)
                if not d:
                    return
                buf += d
            head, _, body = buf.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            method, target, version = lines[0].split(b" ")
            if not target.startswith(b"http://"):
                s.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                          b"Connection: close\r\n\r\n")
                return
            hostport, _, path = target[7:].partition(b"/")
            host, _, port = hostport.partition(b":")
            fields = [ln for ln in lines[1:]
                      if ln.split(b":")[0].strip().lower() not in (b"connection",
                                                                   b"proxy-connection")]
            n = 0
            for ln in fields:
                k, _, v = ln.partition(b":")
                if k.strip().lower() == b"content-length":
                    n = int(v)
            while len(body) < n:
                d = s.recv(65536)
                if not d:
                    break
                body += d
            with self.lock:
                self.lines.append(lines[0].decode("latin-1"))
            up = socket.create_connection((host.decode(), int(port or b"80")), timeout=10)
            up.sendall(b" ".join([method, b"/" + path, version]) + b"\r\n" +
                       b"".join(f + b"\r\n" for f in fields) + b"Connection: close\r\n\r\n" +
                       body)
            answer = b""
            while True:
                d = up.recv(65536)
                if not d:
                    break
                answer += d
            up.close()
            ahead, _, abody = answer.partition(b"\r\n\r\n")
            alines = [ln for ln in ahead.split(b"\r\n")
                      if ln.split(b":")[0].strip().lower() != b"connection"]
            s.sendall(b"\r\n".join(alines) + b"\r\nConnection: close\r\n\r\n" + abody)
        except (OSError, ValueError):
            pass
        finally:
            s.close()


def requests(g, tag):
    """A list miss (a cached route) and a pass-through write: two upstream
    requests."""
    auth = {"Authorization": "Bearer " + t.KEY_A}
    r1 = g.get(c.V2 + "?page_size=2&x-tag=" + tag, headers=auth)
    r2 = g.req("POST", c.V2, headers=dict(auth, **{"Content-Type": "application/json"}),
               body=b'{"source_directory_id": "dir-proxy"}')
    return r1, r2


tap = t.Tap()
env = t.Env("lcgate-proxy")
mock = env.mock()
decoy = Decoy()
decoy_url = "http://127.0.0.1:%d" % decoy.port
gate_env = {"LLAMA_CLOUD_API_KEY": t.KEY_A}
gate_env.update({v: decoy_url for v in PROXY_VARS})

try:
    g = env.lcgate(c.gate_conf(mock), env=gate_env, name="lcgate-env")
except Exception as e:
    g = None
    tap.ok(False, "lcgate starts with the proxy variables set", e)
if g:
    n0 = mock.count()
    r1, r2 = requests(g, "env")
    tap.ok(r1.status == 200 and r1.header("x-cache") == "MISS" and r2.status == 200,
           "with %s pointing at a decoy, the list miss and the write are answered"
           % ", ".join(PROXY_VARS), (r1, r2))
    tap.eq(mock.count() - n0, 2, "both reached the mock directly")
    tap.eq(decoy.conns, 0, "the decoy named by the environment saw no connection")
    g.stop()

fwd = ForwardProxy()
gate_env = {"LLAMA_CLOUD_API_KEY": t.KEY_A, "no_proxy": "*", "NO_PROXY": "*"}
gate_env.update({v: decoy_url for v in PROXY_VARS})
try:
    g = env.lcgate(c.gate_conf(mock, upstream={"proxy": "http://127.0.0.1:%d" % fwd.port}),
                   env=gate_env, name="lcgate-proxy")
except Exception as e:
    g = None
    tap.ok(False, "lcgate starts with [upstream] proxy", e)
if g:
    n0, p0 = mock.count(), fwd.count()
    r1, r2 = requests(g, "conf")
    tap.ok(r1.status == 200 and r1.header("x-cache") == "MISS" and r2.status == 200,
           "with [upstream] proxy, the list miss and the write are answered", (r1, r2))
    tap.eq(mock.count() - n0, 2, "both reached the mock")
    tap.eq(fwd.count() - p0, 2, "both went through the configured proxy (no_proxy=* ignored)")
    with fwd.lock:
        lines = list(fwd.lines)
    want = ("GET %s%s?" % (mock.url, c.V2), "POST %s%s " % (mock.url, c.V2))
    tap.ok(len(lines) == 2 and lines[0].startswith(want[0]) and lines[1].startswith(want[1]),
           "the proxy saw absolute-form targets on the mock", lines)
    tap.eq(decoy.conns, 0, "the decoy still saw no connection")
tap.done(env)
