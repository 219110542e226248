"""Helpers for the trust-boundary tests.

Built on lcgtest (processes, TAP) and cache_lib (never-raising requests, the
mock's counters). What is added here:

- Scenario: a named group of checks declared up front, sharing one setup
  (usually one lcgate). A setup that fails (for example a configuration
  key the build does not know yet), or an exception inside the scenario,
  reports every check not yet reported as `not ok` with the reason, so that
  one scenario never aborts the file and the plan is the same on every
  build.
- Redis commands (faults_lib.redis_cmd, with SCAN: PTTL, DEL, GET, ...), so
  that a test reads what lcgate wrote (its keys are ASCII).
- Raw requests on a socket: no Host header, or a request whose client goes
  away after a while.
"""
import json
import os
import re
import socket
import subprocess
import threading
import time
import traceback
import uuid

import cache_lib as c
import faults_lib as fl
import lcgtest as t
from ratelimit_lib import key_file  # noqa: F401 (tests call tr.key_file)

V1, V2 = c.V1, c.V2
A, B = t.PROJ_A, t.PROJ_B
JH = {"Content-Type": "application/json"}
V2_BODY = {"source_directory_id": "dir-trust"}
V1_BODY = {"directory_id": "dir-trust", "job_type": "parse"}


def project(tag):
    """A fixed, valid, lowercase UUID per tag."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "lcgate-issue12/" + tag))


def rand_project():
    return str(uuid.uuid4())


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


def show(r):
    """An answer, compactly, for diagnostics."""
    keep = ("content-type", "retry-after", "retry-after-ms", "x-cache", "www-authenticate",
            "ratelimit", "ratelimit-policy")
    return "%s %s %r" % (r.status, {k: v for k, v in r.headers.items() if k in keep},
                         r.body[:200])


class SetupFailed(Exception):
    """Raised by Scenario.gate after it reported the scenario's checks."""


class Scenario:
    """with Scenario(tap, "title", [check names]) as sc: ... sc.ok(cond, name, diag)

    Every name is reported exactly once: by sc.ok, or as `not ok` when the
    setup failed, an exception left the block, or the block ended without
    reaching it."""

    def __init__(self, tap, title, names):
        self.tap = tap
        self.title = title
        self.names = list(names)
        assert len(set(self.names)) == len(self.names), "duplicate check names"
        self.done = set()

    def __enter__(self):
        return self

    def ok(self, cond, name, diag=None):
        assert name in self.names, "undeclared check %r" % name
        assert name not in self.done, "check %r reported twice" % name
        self.done.add(name)
        return self.tap.ok(bool(cond), "%s: %s" % (self.title, name), diag)

    def fail_rest(self, reason):
        for n in self.names:
            if n not in self.done:
                self.done.add(n)
                self.tap.ok(False, "%s: %s" % (self.title, n), reason)

    def __exit__(self, et, ev, tb):
        if et is None:
            self.fail_rest("not reached (an earlier step of the scenario stopped it)")
            return False
        if issubclass(et, SetupFailed):
            self.fail_rest(str(ev))
            return True
        if issubclass(et, Exception):
            self.fail_rest("the scenario raised:\n" + "".join(
                traceback.format_exception(et, ev, tb))[-2500:])
            return True
        return False

    def gate(self, env, conf, name="lcgate", key=t.KEY_A):
        """Start an lcgate (cache_lib.start_gate without its own check). On
        failure, every check of the scenario is reported not ok with the
        reason and lcgate's log, and SetupFailed leaves the block."""
        g = None
        try:
            g = env.lcgate(conf, env={"LLAMA_CLOUD_API_KEY": key} if key else {},
                           name=name, wait=False)
            g.wait_ready(15)
            return g
        except Exception as e:
            log = g.log()[-1500:] if g is not None else ""
            if g is not None:
                env.stop(g.proc)
                # Reported here: the clean-exit check at the end is about
                # the instances that ran.
                if g.proc in env.gates:
                    env.gates.remove(g.proc)
            self.tap.diag("%s: %s did not start: %s" % (self.title, name, e))
            raise SetupFailed("%s did not start (%s); its log:\n%s" % (name, e, log.strip()))


# ---- requests -----------------------------------------------------------------

def raw(port, data, timeout=10.0):
    """Send raw bytes, read until the server closes (or timeout); returns
    (status or 0, headers dict lowercased, body bytes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        buf = b""
        while True:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            if not d:
                break
            buf += d
            head, sep, body = buf.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if m and len(body) >= int(m.group(1)):
                    break
    finally:
        s.close()
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3})", lines[0] if lines else b"")
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(b":")
        hdrs[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    return (int(m.group(1)) if m else 0), hdrs, body


class Gone:
    """A request whose client closes its socket `after` seconds after
    sending it, without reading the answer. .start() returns self;
    .join() waits for the close."""

    def __init__(self, port, method, path, body=b"", headers=None, after=0.5):
        self.port, self.after = port, after
        h = {"Host": "127.0.0.1:%d" % port}
        h.update(headers or {})
        if body or method in ("POST", "PUT", "PATCH"):
            h["Content-Length"] = str(len(body))
        self.data = ("%s %s HTTP/1.1\r\n" % (method, path)
                     + "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n").encode() + body
        self.err = None
        self.sent_at = None
        self.closed_at = None
        self.th = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            s.sendall(self.data)
            self.sent_at = time.monotonic()
            time.sleep(self.after)
            s.close()
            self.closed_at = time.monotonic()
        except Exception as e:
            self.err = e

    def start(self):
        self.th.start()
        return self

    def join(self, timeout=10):
        self.th.join(timeout)


def metric(gate, name):
    """The value of an unlabelled metric on the admin listener, or None."""
    r = c.get(gate.admin, "/metrics")
    m = re.search(r"(?m)^%s(?:\{\})? ([0-9.eE+-]+)$" % re.escape(name), r.body.decode(
        "utf-8", "replace"))
    return float(m.group(1)) if m else None


def mock_routes(mock, prefix):
    """How many requests the mock saw whose 'METHOD path' starts with prefix."""
    return sum(n for k, n in mock.stats()["by_route"].items() if k.startswith(prefix))


def total_size(r):
    try:
        return json.loads(r.body)["total_size"]
    except Exception:
        return None


def warm_hit(port, path, headers=None, tries=3):
    """GET path until it is a HIT; returns the last answer."""
    r = None
    for _ in range(tries):
        r = c.get(port, path, headers=headers)
        if c.xc(r) == "HIT":
            break
    return r


# ---- lcgate -t ------------------------------------------------------------------

def run_lcgate(args, extra_env=None, timeout=20):
    e = {k: v for k, v in os.environ.items()
         if not k.startswith("LCGATE_") or k in ("LCGATE_BIN", "LCGATE_SRCDIR")}
    e.pop("LLAMA_CLOUD_API_KEY", None)
    e.update(extra_env or {})
    p = subprocess.run([t.LCGATE] + args, capture_output=True, text=True, env=e,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


# ---- Redis ----------------------------------------------------------------------

class Redis:
    """Commands to one redis-server, one connection each (faults_lib's
    redis_cmd); an error reply raises it. Replies are str, int, list, None."""

    def __init__(self, port):
        self.port = port

    def cmd(self, *args):
        r = fl.redis_cmd(self.port, *args, timeout=5.0)
        if isinstance(r, Exception):
            raise r
        return r

    def scan(self, match=None):
        cursor, keys = "0", []
        while True:
            args = ["SCAN", cursor] + (["MATCH", match] if match else []) + ["COUNT", 1000]
            cursor, batch = self.cmd(*args)
            keys.extend(batch)
            if cursor == "0":
                return keys

    def close(self):
        pass

