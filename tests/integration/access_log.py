"""The access log's destinations, its buffered writes and its fields (issue
14, in scope 2).

- access_log = /path: an error at start (naming the path and the reason)
  when it cannot be opened; a relative path is refused by -t.
- The file is created 0640 (less the umask). Renamed away (as logrotate
  does) and SIGUSR1 sent while two clients keep sending requests: every
  answered request's line is in exactly one of the two files (matched by
  X-Request-Id), none lost, none twice, every line JSON.
- SIGHUP opens an unchanged path again (a renamed file is created anew),
  moves to a new path, and keeps the old file (logging why) when the new
  path cannot be opened.
- Lines arrive within about 1 s with no further traffic.
- SIGTERM right after requests, some in flight: every line is in the file.
- access_log = stdout (a pipe): the lines are on stdout, none on stderr.
  A pipe nobody reads never delays an answer: past what it holds lines are
  dropped, counted and logged; once read, lines flow again, and the lines
  read plus the lines counted lost are every request.
- workers = 2: hits answered on the workers' threads (the fast path) and
  misses on main, from many connections at once, to a file and to a pipe:
  no line lost, none torn, none twice.
- Fields: the keys in their order; the [client] name, the user agent,
  bytes received, the protocol (HTTP/1.0 too), and the detail of a stale
  answer and of each budget's 429.
"""
import http.client
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import lcgtest as t  # noqa: E402
import ratelimit_lib as rlib  # noqa: E402

V1 = "/api/v1/beta/batch-processing"
V2 = "/api/v2/batches"
KEYS = ["time", "request_id", "method", "path", "route", "status", "cache", "project",
        "upstream_status", "upstream_ms", "duration_ms", "bytes", "client", "client_name",
        "user_agent", "bytes_received", "protocol", "detail"]

tap = t.Tap()
env = t.Env("lcgate-alog")
mock = env.mock()


def parse(text):
    """(records, bad lines) of JSON-lines text; a last line without its
    newline is bad too (a torn write)."""
    recs, bad = [], []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif lines:
        bad.append("no newline: " + lines.pop())
    for ln in lines:
        try:
            v = json.loads(ln)
        except ValueError:
            bad.append(ln)
            continue
        (recs if isinstance(v, dict) else bad).append(v if isinstance(v, dict) else ln)
    return recs, bad


def read_file(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def rids(recs):
    return [r.get("request_id") for r in recs]


def rid_set(recs):
    """The ids, sorted: with workers, a line written by a worker's thread
    may come before one main wrote a little earlier."""
    return sorted(rids(recs))


def gate(conf, name, **kw):
    base = {"upstream": {"base_url": mock.url}, "cache": {"prefetch": "off"}}
    for sec, kv in conf.items():
        base.setdefault(sec, {}).update(kv)
    return env.lcgate(base, env={"LLAMA_CLOUD_API_KEY": t.KEY_A}, name=name, **kw)


def gate_piped(conf, name):
    """A gate whose stdout is a pipe the test holds (g.proc.stdout); stderr
    (the text log) goes to its log file."""
    def spawn(args, pname, extra=None):
        full = {k: v for k, v in os.environ.items()
                if not k.startswith("LCGATE_") or k in ("LCGATE_BIN", "LCGATE_SRCDIR")}
        full.pop("LLAMA_CLOUD_API_KEY", None)
        full.update(extra or {})
        log = open(env.path(pname + ".log"), "ab")
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, env=full, cwd=env.dir,
                             start_new_session=True)
        p.name, p.logpath = pname, env.path(pname + ".log")
        env.procs.append(p)
        return p
    env.spawn = spawn
    try:
        return gate(conf, name)
    finally:
        del env.spawn


class Reader(threading.Thread):
    """Reads a pipe into .data until EOF."""

    def __init__(self, f):
        super().__init__(daemon=True)
        self.f, self.chunks = f, []

    def run(self):
        while True:
            b = os.read(self.f.fileno(), 65536)
            if not b:
                return
            self.chunks.append(b)

    def text(self):
        return b"".join(self.chunks).decode("utf-8", "replace")


class Sender(threading.Thread):
    """GETs with X-Request-Id PREFIX-N on one keep-alive connection, until
    stop is set or n are sent; .done: the ids answered, .slowest: seconds."""

    def __init__(self, port, prefix, paths, n=None, headers=None):
        super().__init__(daemon=True)
        self.port, self.prefix, self.paths, self.n = port, prefix, paths, n
        self.headers = headers or {}
        self.stop = threading.Event()
        self.done, self.errors, self.statuses, self.slowest = [], [], {}, 0.0

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        i = 0
        while not self.stop.is_set() and (self.n is None or i < self.n):
            rid = "%s-%d" % (self.prefix, i)
            h = dict(self.headers, **{"X-Request-Id": rid})
            t0 = time.monotonic()
            try:
                r = t.send(conn, "GET", self.paths[i % len(self.paths)], h)
            except (OSError, http.client.HTTPException) as e:
                self.errors.append("%s: %r" % (rid, e))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                i += 1
                continue
            self.slowest = max(self.slowest, time.monotonic() - t0)
            self.statuses[r.status] = self.statuses.get(r.status, 0) + 1
            self.done.append(rid)
            i += 1
        conn.close()


def exactly_once(sent, seen):
    """Problems: ids sent but not seen, seen twice, or seen but never sent."""
    count = {}
    for r in seen:
        count[r] = count.get(r, 0) + 1
    missing = [r for r in sent if r not in count]
    twice = [r for r, n in count.items() if n > 1]
    extra = [r for r in count if r not in set(sent)]
    p = []
    if missing:
        p.append("%d lost, e.g. %s" % (len(missing), missing[:5]))
    if twice:
        p.append("%d twice, e.g. %s" % (len(twice), twice[:5]))
    if extra:
        p.append("%d never sent, e.g. %s" % (len(extra), extra[:5]))
    return p


def wait_ids(get_text, want, timeout):
    """Waits until every id in want is in the text, all of it whole lines (a
    file read during a write may end in part of one); returns (records, bad
    lines, seconds waited)."""
    t0 = time.monotonic()
    want = set(want)
    while True:
        recs, bad = parse(get_text())
        if (want <= set(rids(recs)) and not bad) or time.monotonic() - t0 > timeout:
            return recs, bad, time.monotonic() - t0
        time.sleep(0.02)


def reloads(g):
    return g.log().count("configuration reloaded")


BAD_PATH = env.path("no-such-dir", "access.log")


def start_errors():
    """An access_log that cannot be opened, or a relative path, is an error."""
    bad_path = BAD_PATH
    g = gate({"server": {"access_log": bad_path}}, "lcgate-badpath", wait=False)
    try:
        rc = g.proc.wait(15)
    except subprocess.TimeoutExpired:
        rc = None
    tap.ok(rc == 1 and bad_path in g.log() and "No such file or directory" in g.log(),
           "an access_log file that cannot be opened stops the start (exit 1), naming the path "
           "and the reason", "exit %r\n%s" % (rc, g.log()[-800:]))
    env.gates.remove(g.proc)
    rel_conf = env.path("relative.conf")
    with open(rel_conf, "w") as f:
        f.write("[server]\naccess_log = logs/access.log\n")
    p = subprocess.run([t.LCGATE, "-t", "-c", rel_conf], capture_output=True, timeout=30)
    tap.ok(p.returncode == 1 and (rel_conf + ":2:") in p.stderr.decode() and
           "absolute" in p.stderr.decode(),
           "-t refuses a relative access_log path with FILE:LINE", p.stderr.decode())


def rotate_sigusr1():
    """A file renamed and reopened on SIGUSR1 under load: every line in exactly one file."""
    log_a = env.path("access.log")
    g = gate({"server": {"access_log": log_a}}, "lcgate-rotate")
    umask = os.umask(0)
    os.umask(umask)
    mode = stat.S_IMODE(os.stat(log_a).st_mode) if os.path.exists(log_a) else None
    tap.eq(mode, 0o640 & ~umask, "the access log file is created 0640 (less the umask)")
    paths = [V1 + "?limit=%d" % n for n in range(1, 6)] + [V2 + "?page_size=2"]
    senders = [Sender(g.port, "rot%d" % k, paths) for k in range(2)]
    for s in senders:
        s.start()
    time.sleep(0.4)
    os.rename(log_a, log_a + ".1")
    time.sleep(0.3)                 # lines still go to the renamed file meanwhile
    os.kill(g.proc.pid, signal.SIGUSR1)
    try:
        t.wait_for(lambda: parse(read_file(log_a))[0], 5, "lines in the new file")
        reopened = True
    except TimeoutError:
        reopened = False
    time.sleep(0.4)
    for s in senders:
        s.stop.set()
    for s in senders:
        s.join(15)
    sent = [r for s in senders for r in s.done]
    tap.ok(reopened and not any(s.errors for s in senders) and len(sent) > 50,
           "SIGUSR1 under load: a new file at the path, %d requests answered" % len(sent),
           "%s\n%s" % ([s.errors[:3] for s in senders], g.log()[-600:]))
    old, bad_old, _ = wait_ids(lambda: read_file(log_a + ".1"), [], 0)
    new, bad_new, _ = wait_ids(lambda: read_file(log_a + ".1") + read_file(log_a), sent, 3)
    new = parse(read_file(log_a))[0]
    p = exactly_once(sent, rids(old) + rids(new))
    tap.ok(not p and not bad_old and not bad_new and old and new,
           "every request's line is in exactly one of the two files (%d in the renamed one, "
           "%d in the new one)" % (len(old), len(new)),
           "%s\nbad lines: %s" % (p, (bad_old + bad_new)[:3]))
    tap.ok("access log %s reopened" % log_a in g.log(), "the reopening is logged",
           g.log()[-600:])
    g.stop()


def reload_sighup():
    """SIGHUP: the same path opened again, a new path, a path that cannot be opened."""
    log_a = env.path("access-h.log")
    g = gate({"server": {"access_log": log_a}}, "lcgate-hup")
    conf_text = open(g.conf_path).read()
    os.rename(log_a, log_a + ".2")
    n0 = reloads(g)
    os.kill(g.proc.pid, signal.SIGHUP)
    t.wait_for(lambda: reloads(g) > n0, 5, "the reload")
    r = g.get(V1 + "?limit=1", headers={"X-Request-Id": "hup-same"})
    recs, bad, _ = wait_ids(lambda: read_file(log_a), ["hup-same"], 3)
    tap.ok(r.status == 200 and rids(recs) == ["hup-same"] and not bad,
           "SIGHUP with the path unchanged opens it again: a renamed file is created anew",
           (rids(recs), bad))
    log_b = env.path("access-b.log")
    with open(g.conf_path, "w") as f:
        f.write(conf_text.replace("access_log = " + log_a, "access_log = " + log_b))
    n0 = reloads(g)
    os.kill(g.proc.pid, signal.SIGHUP)
    t.wait_for(lambda: reloads(g) > n0, 5, "the reload")
    g.get(V1 + "?limit=1", headers={"X-Request-Id": "hup-new"})
    recs, bad, _ = wait_ids(lambda: read_file(log_b), ["hup-new"], 3)
    tap.ok(rids(recs) == ["hup-new"] and "hup-new" not in read_file(log_a),
           "SIGHUP with a new path: lines go to the new file", rids(recs))
    with open(g.conf_path, "w") as f:
        f.write(conf_text.replace("access_log = " + log_a, "access_log = " + BAD_PATH))
    n0 = reloads(g)
    os.kill(g.proc.pid, signal.SIGHUP)
    t.wait_for(lambda: reloads(g) > n0, 5, "the reload")
    g.get(V1 + "?limit=1", headers={"X-Request-Id": "hup-bad"})
    recs, bad, _ = wait_ids(lambda: read_file(log_b), ["hup-new", "hup-bad"], 3)
    tap.ok(rid_set(recs) == ["hup-bad", "hup-new"] and g.proc.poll() is None and
           re.search(re.escape(BAD_PATH) + r": No such file or directory; the access log stays " +
                     re.escape(log_b), g.log()) is not None,
           "SIGHUP with a path that cannot be opened: logged, the old file kept",
           "%s\n%s" % (rids(recs), g.log()[-600:]))
    g.stop()


def within_1s():
    """Lines arrive within about 1 s, with no further traffic."""
    log_c = env.path("access-c.log")
    g = gate({"server": {"access_log": log_c}}, "lcgate-soon")
    ids = ["soon-%d" % i for i in range(3)]
    for rid in ids:
        g.get(V1 + "?limit=2", headers={"X-Request-Id": rid})
    recs, bad, waited = wait_ids(lambda: read_file(log_c), ids, 3)
    tap.ok(rid_set(recs) == sorted(ids) and waited <= 1.2,
           "with no further traffic the lines are in the file within 1 s (%.2f s)" % waited,
           rids(recs))
    g.stop()


def sigterm_flush():
    """SIGTERM right after requests, some still in flight: every line written."""
    log_c = env.path("access-t.log")
    g = gate({"server": {"access_log": log_c}}, "lcgate-term")
    mock.fault(delay_ms=700, count=6, match="term-slow")
    fast = ["term-%d" % i for i in range(20)]
    for rid in fast:
        g.get(V1 + "?limit=%d" % (1 + len(rid) % 4), headers={"X-Request-Id": rid})
    slow = ["term-slow-%d" % i for i in range(6)]
    got = {}

    def slow_one(rid):
        got[rid] = g.get(V2 + "?project_id=%s" % rid, headers={"X-Request-Id": rid}).status

    ths = [threading.Thread(target=slow_one, args=(rid,)) for rid in slow]
    for th in ths:
        th.start()
    # Each client's own fetch (a prefetch of its next page carries a
    # page_token, and may reach the mock before a late client's request).
    t.wait_for(lambda: len({e["query"] for e in mock.stats()["last"]
                            if "term-slow" in e.get("query", "") and
                            "page_token" not in e.get("query", "")}) >= 6,
               5, "the slow requests upstream")
    os.kill(g.proc.pid, signal.SIGTERM)
    for th in ths:
        th.join(10)
    rc = g.proc.wait(10)
    recs, bad = parse(read_file(log_c))
    p = exactly_once(fast + slow, rids(recs))
    tap.ok(rc == 0 and set(got.values()) == {200} and len(got) == 6 and not p and not bad,
           "SIGTERM right after 20 requests and with 6 in flight: all 26 lines written before "
           "exit", "exit %r, answers %r, %s, bad %s" % (rc, got, p, bad[:3]))


def stdout_pipe():
    """access_log = stdout, a pipe: the lines there, none on stderr."""
    g = gate_piped({"server": {"access_log": "stdout"}}, "lcgate-stdout")
    rd = Reader(g.proc.stdout)
    rd.start()
    ids = ["out-%d" % i for i in range(5)]
    for rid in ids:
        g.get(V1 + "?limit=3", headers={"X-Request-Id": rid})
    recs, bad, waited = wait_ids(rd.text, ids, 3)
    tap.ok(rid_set(recs) == sorted(ids) and not bad and waited <= 1.2,
           "access_log = stdout: the lines are on stdout (a pipe), within 1 s", (rids(recs), bad))
    tap.ok("lcgate[" not in rd.text() and '{"time"' not in g.log() and "listening" in g.log(),
           "stdout has only the access log, stderr only the text log", g.log()[-400:])
    g.stop()
    rd.join(5)


def full_pipe():
    """A pipe nobody reads never delays an answer; losses are counted."""
    g = gate_piped({"server": {"access_log": "stdout"}}, "lcgate-fullpipe")
    g.get(V1 + "?limit=4")
    ua = "load/1.0 " + "x" * 1500            # about 2 KB a line: 1000 lines overflow
    s = Sender(g.port, "full", [V1 + "?limit=4"], n=1000, headers={"User-Agent": ua})
    s.start()
    s.join(120)
    tap.ok(len(s.done) == 1000 and not s.errors and s.slowest < 1.0,
           "1000 answers while nobody reads the pipe, the slowest in %.3f s" % s.slowest,
           s.errors[:3])
    try:
        warned = t.wait_for(lambda: g.log().count("access log stdout: full") == 1, 5,
                            "the warning")
    except TimeoutError:
        warned = False
    tap.ok(warned, "the loss is logged, once, on stderr", g.log()[-500:])
    rd = Reader(g.proc.stdout)
    rd.start()
    after = ["after-%d" % i for i in range(5)]
    for rid in after:
        g.get(V1 + "?limit=4", headers={"X-Request-Id": rid})
    recs, bad, waited = wait_ids(rd.text, after, 3)
    rx = re.compile(r"access log stdout: writing again \((\d+) lines lost")
    try:
        m = t.wait_for(lambda: rx.search(g.log()), 3, "the recovery line")
    except TimeoutError:
        m = None
    lost = int(m.group(1)) if m else -1
    total = 1 + 1000 + len(after)
    tap.ok(set(after) <= set(rids(recs)) and not bad and lost > 0 and len(recs) + lost == total,
           "read again, lines flow; every line read is whole, and read + counted lost = all %d "
           "(%d read, %d lost)" % (total, len(recs), lost), (bad[:2], g.log()[-500:]))
    metrics = t.request(g.admin, "GET", "/metrics").body.decode()
    counted = [ln for ln in metrics.splitlines()
               if ln.startswith("lcgate_access_log_errors_total ")]
    tap.ok(counted == ["lcgate_access_log_errors_total %d" % lost],
           "lcgate_access_log_errors_total counts the %d lost lines" % lost, counted)
    g.stop()
    rd.join(5)


def workers_fast_path():
    """workers = 2: hits on the workers' threads, misses on main."""
    for kind in ("file", "pipe"):
        log_w = env.path("access-w.log")
        conf = {"server": {"workers": "2", "access_log": log_w if kind == "file" else "stdout"}}
        g = gate(conf, "lcgate-w2") if kind == "file" else gate_piped(conf, "lcgate-w2pipe")
        rd = None
        if kind == "pipe":
            rd = Reader(g.proc.stdout)
            rd.start()
        hot = [V1 + "?limit=%d" % n for n in (5, 6, 7, 8)]
        warm = ["warm-%d" % i for i in range(len(hot))]
        for h, rid in zip(hot, warm):
            g.get(h, headers={"X-Request-Id": rid})
        hits = [Sender(g.port, "w%d" % k, hot, n=250) for k in range(8)]
        misses = Sender(g.port, "m", [V2 + "?page_size=%d" % n for n in range(1, 100)], n=99)
        for s in hits + [misses]:
            s.start()
        for s in hits + [misses]:
            s.join(120)
        sent = warm + [r for s in hits + [misses] for r in s.done]
        recs, bad, _ = wait_ids((lambda: read_file(log_w)) if kind == "file" else rd.text, sent, 3)
        mine = [r for r in recs if r.get("request_id")]
        p = exactly_once(sent, rids(mine))
        nhit = sum(1 for r in mine if r["cache"] == "HIT" and r["request_id"].startswith("w"))
        tap.ok(len(sent) == 2103 and not p and not bad and nhit == 2000,
               "workers = 2, to a %s: 2000 hits from 8 connections and 99 misses, every line "
               "once and whole" % kind,
               "%d sent; %s; %d hits; bad %s" % (len(sent), p, nhit, bad[:2]))
        g.stop()
        if rd:
            rd.join(5)


def fields():
    """The fields: keys in order, client name, user agent, bytes, protocol, detail."""
    P = [rlib.project("alog-%d" % i) for i in range(6)]
    TOK_A, TOK_B = "lcg-tok-alog-alice-0123456789abcdef01", "lcg-tok-alog-bob-0123456789abcdef0123"
    log_f = env.path("access-f.log")
    conf = {"server": {"access_log": log_f},
            "cache": {"ttl": "1s", "stale_while_revalidate": "30s"},
            "ratelimit": {"rate": "1/h", "burst": "2", "upstream_rate": "1/h",
                          "upstream_burst": "1"},
            rlib.client_section("alice"): {"token_sha256": rlib.sha256hex(TOK_A), "projects": "*",
                                          "rate": "1/h", "burst": "2"},
            rlib.client_section("bob"): {"token_sha256": rlib.sha256hex(TOK_B), "projects": "*"}}
    g = gate(conf, "lcgate-fields")
    A = {"Authorization": "Bearer " + TOK_A}
    B = {"Authorization": "Bearer " + TOK_B}


    def req(rid, method, path, h, body=None):
        return g.req(method, path, headers=dict(h, **{"X-Request-Id": rid}), body=body)


    ua = 'agent "q"/1.0 \\ \xe9'          # sent as Latin-1: not UTF-8
    sent = [("f-miss", req("f-miss", "GET", V1 + "?project_id=%s" % P[0],
                           dict(B, **{"User-Agent": ua})))]
    time.sleep(1.2)
    sent.append(("f-stale", req("f-stale", "GET", V1 + "?project_id=%s" % P[0], B)))
    sent.append(("f-client", req("f-client", "GET", V1 + "?project_id=%s" % P[0], B)))
    for i, rid in enumerate(["f-t1", "f-t2", "f-token"]):
        sent.append((rid, req(rid, "GET", V1 + "?project_id=%s" % P[1 + i], A)))
    body = json.dumps({"directory_id": "dir-alog", "job_type": "parse"}).encode()
    sent.append(("f-post", req("f-post", "POST", V1 + "?project_id=%s" % P[5], B, body)))
    sent.append(("f-up", req("f-up", "POST", V1 + "?project_id=%s" % P[5], B, body)))
    sent.append(("f-401", req("f-401", "GET", V1, {})))
    with socket.create_connection(("127.0.0.1", g.port), timeout=5) as sk:
        sk.sendall(b"GET /nowhere-http10 HTTP/1.0\r\nUser-Agent: old/0.9\r\n\r\n")
        while sk.recv(4096):
            pass
    with socket.create_connection(("127.0.0.1", g.port), timeout=5) as sk:
        sk.sendall(b"BOGUS\r\n\r\n")
        while sk.recv(4096):
            pass
    statuses = {rid: r.status for rid, r in sent}
    want_status = {"f-miss": 200, "f-stale": 200, "f-client": 429, "f-t1": 200, "f-t2": 200,
                   "f-token": 429, "f-post": statuses.get("f-post"), "f-up": 429, "f-401": 401}
    tap.eq(statuses, want_status, "the requests got the answers the fields are about")
    recs, bad, _ = wait_ids(lambda: read_file(log_f), [r for r in want_status if r != "f-401"], 3)
    by = {r["request_id"]: r for r in recs if r.get("request_id")}
    tap.ok(recs and all(list(r) == KEYS for r in recs) and not bad,
           "every line has the keys, in order, the new ones after the old",
           [list(r) for r in recs if list(r) != KEYS][:1])


    def fields(rid, **want):
        r = by.get(rid, {})
        got = {k: r.get(k, "<absent>") for k in want}
        tap.eq(got, want, "%s: %s" % (rid, ", ".join("%s %s" % kv for kv in sorted(want.items()))))


    fields("f-miss", client_name="bob", user_agent=ua.replace("\xe9", "\ufffd"), bytes_received=0,
           protocol="HTTP/1.1", cache="MISS", detail=None)
    fields("f-stale", cache="STALE", detail="stale-while-revalidate", user_agent=None)
    fields("f-client", status=429, detail="client-budget")
    fields("f-t1", client_name="alice", status=200, detail=None)
    fields("f-token", client_name="alice", status=429, detail="token-budget")
    fields("f-post", route="pass", bytes_received=len(body), detail=None)
    fields("f-up", status=429, detail="upstream-budget", bytes_received=len(body))
    r401 = [r for r in recs if r["status"] == 401]
    tap.ok(len(r401) == 1 and r401[0]["client_name"] is None and r401[0]["bytes_received"] == 0,
           "a 401: no client name, bytes received 0", r401)
    r10 = [r for r in recs if r["path"] == "/nowhere-http10"]
    tap.ok(len(r10) == 1 and r10[0]["protocol"] == "HTTP/1.0" and r10[0]["status"] == 404 and
           r10[0]["user_agent"] == "old/0.9", "an HTTP/1.0 request: protocol HTTP/1.0", r10)
    rbad = [r for r in recs if r["status"] == 400 and r["route"] == "none"]
    tap.ok(len(rbad) == 1 and rbad[0]["protocol"] is None and rbad[0]["bytes_received"] is None
           and rbad[0]["user_agent"] is None,
           "a request line lcgate refuses: protocol, user agent and bytes received are null", rbad)
    tap.ok(TOK_A not in read_file(log_f) and TOK_B not in read_file(log_f) and
           t.KEY_A not in read_file(log_f), "no token or key in the access log")
    g.stop()


def run(fn):
    """A test that cannot go on (lcgate did not start, a wait timed out)
    fails, and the next one runs."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        tap.ok(False, "%s: ran to the end" % fn.__name__, "%s: %s" % (type(e).__name__, e))
        for p in list(env.procs):
            if p.name.startswith("lcgate"):
                env.stop(p)


run(start_errors)
run(rotate_sigusr1)
run(reload_sighup)
run(within_1s)
run(sigterm_flush)
run(stdout_pipe)
run(full_pipe)
run(workers_fast_path)
run(fields)
tap.done(env)
