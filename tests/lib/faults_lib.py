"""Helpers for the fault suite (tests/integration/faults.py).

A load of client threads asking a mix of warm (stored before the fault)
and new list queries; every answer is recorded with its timing and checked
against the body the mock upstream itself gives for that exact query
(fetched before any fault is set: the mock's data is deterministic and the
suite makes no writes). Plus a raw RESP client for redis-server, and
clients that disconnect in the middle of a request.
"""
import random
import socket
import struct
import threading
import time

import cache_lib as c
import lcgtest as t

V1, V2 = c.V1, c.V2


def query_pool():
    """Distinct list queries whose answers all differ from each other:
    v1 pages (limit 3..19, offset + limit <= 137, the mock's job count) for
    the key's own project and for PROJ_B, and v2 first pages. (limit=2 is
    left out: the disconnect scenario makes those queries slow.)"""
    pool = []
    for limit in range(3, 20):
        for off in range(0, 137 - limit + 1, 7):
            pool.append(V1 + "?limit=%d&offset=%d" % (limit, off))
            pool.append(V1 + "?limit=%d&offset=%d&project_id=%s" % (limit, off, t.PROJ_B))
    for ps in range(3, 51):
        pool.append(V2 + "?page_size=%d" % ps)
    return pool


def expected_bodies(mock, paths, threads=8):
    """{path: body} straight from the mock with KEY_A (no lcgate)."""
    out = {}
    lock = threading.Lock()
    todo = list(paths)

    def run():
        while True:
            with lock:
                if not todo:
                    return
                p = todo.pop()
            r = mock.get(p)
            assert r.status == 200, (p, r)
            with lock:
                out[p] = r.body
    ths = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(120)
    return out


# ---- Redis ----------------------------------------------------------------

def redis_cmd(port, *args, timeout=2.0):
    """One RESP command; returns the reply (str, int, list, or an
    Exception instance for an error reply)."""
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(out)
        f = s.makefile("rb")
        return _resp(f)


def _resp(f):
    line = f.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:].decode()
    if kind == b"+":
        return rest
    if kind == b"-":
        return RuntimeError(rest)
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode("utf-8", "replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_resp(f) for _ in range(n)]
    raise RuntimeError("bad RESP line %r" % line)


def redis_args(env, port):
    return ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
            "--appendonly", "no", "--daemonize", "no", "--dir", env.dir]


def redis_on_port(env, port, name):
    """Start redis-server on a given (free again) port; wait for PING."""
    p = env.spawn(redis_args(env, port), name)

    def ping():
        return redis_cmd(port, "PING", timeout=1) == "PONG"
    t.wait_for(ping, 10, "redis-server on port %d" % port)
    p.port = port
    return p


# ---- the load -------------------------------------------------------------

class Rec:
    __slots__ = ("t0", "t1", "path", "warm", "had", "status", "ok_body", "xc", "cs", "err")


class Load:
    """`threads` clients, each asking a warm query (probability p_warm) or
    the next new one, for `seconds`. `events` = [(at_s, fn)] run from the
    main thread at those offsets. New queries are handed out once each
    while they last, then reused (a reused query counts as having an entry
    once an earlier answer for it was a 200)."""

    def __init__(self, port, warm, new, expected, seed, threads=6, p_warm=0.6,
                 pause=0.012, timeout=8.0):
        self.port = port
        self.warm = list(warm)
        self.new = list(new)
        random.Random(seed).shuffle(self.new)
        self.expected = expected
        self.seed = seed
        self.threads = threads
        self.p_warm = p_warm
        self.pause = pause
        self.timeout = timeout
        self.lock = threading.Lock()
        self.next_new = 0
        self.ok_at = {p: 0.0 for p in self.warm}  # path -> time of its first 200
        self.recs = []
        self.t_start = None

    def _pick(self, rng):
        if rng.random() < self.p_warm:
            return rng.choice(self.warm)
        with self.lock:
            if self.next_new < len(self.new):
                p = self.new[self.next_new]
                self.next_new += 1
                return p
        return rng.choice(self.new)

    def _worker(self, n, stop):
        rng = random.Random("%s-%d" % (self.seed, n))
        while time.monotonic() < stop:
            path = self._pick(rng)
            with self.lock:
                first_ok = self.ok_at.get(path)
            rec = Rec()
            rec.path = path
            rec.warm = path in self.warm
            r = c.get(self.port, path, timeout=self.timeout)
            rec.t0, rec.t1 = r.t0 - self.t_start, r.t1 - self.t_start
            # The query had an entry if a 200 for it came back before this
            # request was sent.
            rec.had = first_ok is not None and first_ok <= r.t0
            rec.status = r.status
            rec.ok_body = r.status == 200 and r.body == self.expected[path]
            rec.xc, rec.cs = c.xc(r), c.cs(r)
            rec.err = r.body[:200] if r.status != 200 or not rec.ok_body else b""
            with self.lock:
                self.recs.append(rec)
                if r.status == 200 and path not in self.ok_at:
                    self.ok_at[path] = r.t1
            time.sleep(self.pause)

    def run(self, seconds, events=()):
        self.t_start = time.monotonic()
        stop = self.t_start + seconds
        ths = [threading.Thread(target=self._worker, args=(n, stop), daemon=True)
               for n in range(self.threads)]
        for th in ths:
            th.start()
        log = []
        for at, fn in sorted(events, key=lambda e: e[0]):
            time.sleep(max(0.0, self.t_start + at - time.monotonic()))
            try:
                fn()
                log.append((round(time.monotonic() - self.t_start, 2), fn.__name__, "ok"))
            except Exception as e:  # report, do not die
                log.append((round(time.monotonic() - self.t_start, 2), fn.__name__, repr(e)))
        for th in ths:
            th.join(max(0.1, stop + self.timeout + 5 - time.monotonic()))
        self.stuck = sum(th.is_alive() for th in ths)
        self.events = log
        return self


def figures(recs):
    """The figures the suite prints for one scenario."""
    f = {"requests": len(recs),
         "ok200": sum(1 for r in recs if r.status == 200 and r.ok_body),
         "wrong": [r for r in recs if r.status == 200 and not r.ok_body],
         "5xx": [r for r in recs if r.status >= 500],
         "429": [r for r in recs if r.status == 429],
         "failed": [r for r in recs if r.status == 0],
         "other": [r for r in recs if r.status not in (0, 200, 429) and r.status < 500],
         "stale": sum(1 for r in recs if r.xc == "STALE"),
         "max_latency": max([r.t1 - r.t0 for r in recs] or [0.0])}
    return f


def describe(r):
    return "t=%.2f+%.2fs %s %s had=%s %d X-Cache=%s Cache-Status=%s %r" % (
        r.t0, r.t1 - r.t0, "warm" if r.warm else "new", r.path, r.had, r.status, r.xc,
        r.cs, r.err[:160])


# ---- clients that go away ---------------------------------------------------

def abandon(port, path, after_s, rst):
    """Send a GET, then close the socket after `after_s` without reading the
    answer (with RST when `rst`, else a normal FIN)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (path, port)).encode())
        time.sleep(after_s)
        if rst:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        s.close()


def metric(gate, name):
    """The value of an unlabelled metric on the admin listener, or None."""
    r = c.get(gate.admin, "/metrics", timeout=5)
    for line in r.body.decode("utf-8", "replace").splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{}"):
            try:
                return float(line.split()[-1])
            except ValueError:
                return None
    return None
