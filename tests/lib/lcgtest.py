"""Test harness for lcgate's integration tests.

Starts real processes (lcgate, redis-server, the mock upstream) on free
loopback ports inside a temporary directory, waits for readiness by
polling, and stops exactly the processes it started. Output is TAP.
"""
import atexit
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SRCDIR = os.environ.get("LCGATE_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
LCGATE = os.environ.get("LCGATE_BIN") or os.path.join(os.getcwd(), "lcgate")
MOCK = os.path.join(SRCDIR, "tests", "mock", "mock_upstream.py")

KEY_A = "llx-test-key-aaaaaaaaaaaaaaaaaaaaaaaaaaaa"
KEY_B = "llx-test-key-bbbbbbbbbbbbbbbbbbbbbbbbbbbb"
PROJ_A = "0b9b5a8e-7f7e-4c1e-9a4e-1f2d3c4b5a60"
PROJ_B = "6a1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, diag=None):
        self.n += 1
        print("%s %d - %s" % ("ok" if cond else "not ok", self.n, name))
        if not cond:
            self.failed += 1
            if diag is not None:
                for line in str(diag).splitlines() or [""]:
                    print("#   " + line)
        sys.stdout.flush()
        return cond

    def eq(self, got, want, name):
        return self.ok(got == want, name, "got:  %r\nwant: %r" % (got, want))

    def diag(self, msg):
        for line in str(msg).splitlines():
            print("# " + line)
        sys.stdout.flush()

    def done(self, env=None):
        if env is not None:
            env.check_clean_exit(self)
        print("1..%d" % self.n)
        sys.stdout.flush()
        sys.exit(1 if self.failed else 0)


_ports_given = set()


def free_port():
    """A loopback port nothing listens on now, and never one this process
    handed out before: the kernel may give a just-closed port again, and
    listen and admin_listen on one port would not start."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port


def wait_for(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # not ready yet
            last = e
        time.sleep(0.02)
    raise TimeoutError("timed out after %.1fs waiting for %s (%s)" % (timeout, what, last))


def metric_sample(text, name, **labels):
    """The value of the one sample of name with exactly these labels (in
    this order) in Prometheus text, or None."""
    want = name + ("{" + ",".join('%s="%s"' % kv for kv in labels.items()) + "}"
                   if labels else "")
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return None


# How many threads keep connections of their own to Redis: the main loop,
# and with LCGATE_TEST_WORKERS=N each of the N workers (their log lines say
# "wN: " after the level).
def threads_with_redis():
    n = int(os.environ.get("LCGATE_TEST_WORKERS") or 1)
    return 1 if n <= 1 else 1 + n


def by_thread(lines):
    """{"main" or "w1", ...: the lines that thread logged}."""
    out = {}
    for line in lines:
        m = re.search(r"lcgate\[[a-z]+\] (w[0-9]+): ", line)
        out.setdefault(m.group(1) if m else "main", []).append(line)
    return out


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<%d %r %r>" % (self.status, self.headers, self.body[:200])


def send(conn, method, path, headers=None, body=None):
    """One request on an open http.client connection; headers lowercased,
    repeated ones joined with ", "."""
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    hdrs = {}
    for k, v in r.getheaders():
        k = k.lower()
        hdrs[k] = hdrs[k] + ", " + v if k in hdrs else v
    return Resp(r.status, hdrs, data)


def request(port, method, path, headers=None, body=None, timeout=15.0, host="127.0.0.1"):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        return send(conn, method, path, headers, body)
    finally:
        conn.close()


class Env:
    """A temporary directory and the processes started in it."""

    def __init__(self, name="lcgate-test"):
        self.dir = tempfile.mkdtemp(prefix=name + "-")
        self.procs = []
        self.gates = []
        atexit.register(self.close)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame):
        self.close()
        sys.exit(128 + signum)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def spawn(self, args, name, env=None):
        log = open(self.path(name + ".log"), "ab")
        full_env = dict(os.environ)
        full_env.pop("LLAMA_CLOUD_API_KEY", None)
        for k in list(full_env):
            if k.startswith("LCGATE_") and k not in ("LCGATE_BIN", "LCGATE_SRCDIR"):
                del full_env[k]
        full_env.update(env or {})
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=full_env,
                             cwd=self.dir, start_new_session=True)
        p.name = name
        p.logpath = self.path(name + ".log")
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=10.0):
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGCONT)
                os.kill(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        if p in self.procs:
            self.procs.remove(p)
        return p.returncode

    def check_clean_exit(self, tap):
        """Stop every lcgate still running; each must exit 0 with no
        sanitizer report in its log (ASan, UBSan and LeakSanitizer)."""
        for p in list(self.procs):
            if p.name.startswith("lcgate"):
                self.stop(p)
        bad = []
        for p in self.gates:
            with open(p.logpath, "rb") as f:
                log = f.read().decode("utf-8", "replace")
            if p.returncode not in (0, -9) or "Sanitizer" in log or "runtime error:" in log:
                bad.append("%s exited %s\n%s" % (p.name, p.returncode, log[-3000:]))
        tap.ok(not bad, "every lcgate exited cleanly with no sanitizer report (%d)"
               % len(self.gates), "\n".join(bad))

    def close(self):
        for p in list(self.procs):
            try:
                self.stop(p, timeout=5)
            except Exception:
                pass
        if os.environ.get("LCGATE_KEEP_TMP"):
            return
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- servers ---------------------------------------------------------

    def mock(self, keys=((KEY_A, PROJ_A), (KEY_B, PROJ_B)), extra=()):
        portfile = self.path("mock-%d.port" % len(self.procs))
        args = [sys.executable, MOCK, "--port-file", portfile]
        for k, proj in keys:
            args += ["--key", "%s=%s" % (k, proj)]
        p = self.spawn(args + list(extra), "mock")
        port = wait_for(lambda: int(open(portfile).read()), 15, "mock upstream port")
        return Mock(p, port)

    def redis(self, extra=()):
        port = free_port()
        args = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                "--appendonly", "no", "--daemonize", "no", "--dir", self.dir] + list(extra)
        p = self.spawn(args, "redis-%d" % port)

        def ping():
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        wait_for(ping, 10, "redis-server PING")
        p.port = port
        return p

    def lcgate(self, conf, env=None, name="lcgate", wait=True):
        """conf: dict of section -> dict, or INI text. Returns a Gate."""
        port, admin = free_port(), free_port()
        # Rate limits out of the way unless a test is about them.
        base = {"server": {"listen": "127.0.0.1:%d" % port,
                           "admin_listen": "127.0.0.1:%d" % admin,
                           "log_level": "info"},
                "ratelimit": {"rate": "100000/s", "burst": "100000",
                              "upstream_rate": "100000/s", "upstream_burst": "100000"}}
        # LCGATE_TEST_WORKERS=N runs every lcgate with N workers (unless
        # the test sets its own), to run a suite on the threaded front.
        if os.environ.get("LCGATE_TEST_WORKERS"):
            base["server"]["workers"] = os.environ["LCGATE_TEST_WORKERS"]
        if isinstance(conf, dict):
            for sec, kv in conf.items():
                base.setdefault(sec, {}).update(kv)
            text = ""
            for sec, kv in base.items():
                text += "[%s]\n" % sec + "".join("%s = %s\n" % i for i in kv.items())
        else:
            text = "".join("[%s]\n" % s + "".join("%s = %s\n" % i for i in kv.items())
                           for s, kv in base.items()) + conf
        cpath = self.path("%s-%d.conf" % (name, len(self.procs)))
        with open(cpath, "w") as f:
            f.write(text)
        p = self.spawn([LCGATE, "-c", cpath], "%s-%d" % (name, port), env)
        self.gates.append(p)
        g = Gate(self, p, port, admin, cpath)
        if wait:
            g.wait_ready()
        return g


class Mock:
    def __init__(self, proc, port):
        self.proc = proc
        self.port = port
        self.url = "http://127.0.0.1:%d" % port

    def stats(self):
        return request(self.port, "GET", "/__stats").json()

    def count(self, route=None):
        s = self.stats()
        return s["requests"] if route is None else s["by_route"].get(route, 0)

    def reset(self):
        request(self.port, "POST", "/__reset", body=b"{}")

    def fault(self, **kw):
        r = request(self.port, "POST", "/__fault", body=json.dumps(kw).encode(),
                    headers={"Content-Type": "application/json"})
        assert r.status == 200, r

    def get(self, path, key=KEY_A, headers=None):
        h = {"Authorization": "Bearer " + key}
        h.update(headers or {})
        return request(self.port, "GET", path, headers=h)


class Gate:
    def __init__(self, env, proc, port, admin, conf_path):
        self.env = env
        self.proc = proc
        self.port = port
        self.admin = admin
        self.conf_path = conf_path

    def wait_ready(self, timeout=15):
        """Until /readyz answers 200. Raises RuntimeError at once if lcgate
        exits (with its log), TimeoutError past timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("lcgate exited with %s:\n%s" % (self.proc.returncode,
                                                                    self.log()))
            try:
                if request(self.admin, "GET", "/readyz", timeout=2).status == 200:
                    return
            except Exception:
                pass             # not listening yet
            if time.monotonic() > deadline:
                raise TimeoutError("lcgate /readyz not 200 within %g s" % timeout)
            time.sleep(0.02)

    def get(self, path, headers=None, **kw):
        return request(self.port, "GET", path, headers=headers, **kw)

    def req(self, method, path, headers=None, body=None, **kw):
        return request(self.port, method, path, headers=headers, body=body, **kw)

    def log(self):
        try:
            with open(self.proc.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM):
        return self.env.stop(self.proc, sig)
