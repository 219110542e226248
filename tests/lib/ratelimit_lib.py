"""Helpers for the rate-limit tests (rate limits, the upstream budget, upstream
429 holds, client tokens and per-project keys).

Built on lcgtest (processes, TAP) and cache_lib (never-raising requests with
timing, gate startup, the mock's counters). What is added here: the
RateLimit header parsers and the checks of a 429, a per-thread keep-alive
connection that never raises, timed load loops with deadlines, a tape of
the mock's requests attributed to the moment they were seen, and config
rewriting for SIGHUP.
"""
import hashlib
import json
import math
import os
import re
import signal
import subprocess
import threading
import time
import uuid

import cache_lib as c

V1, V2 = c.V1, c.V2

# IETF httpapi draft syntax, exactly as the contract writes it.
POLICY_RX = re.compile(r'^"project";q=(\d+);w=(\d+)$')
RATELIMIT_RX = re.compile(r'^"project";r=(\d+);t=(\d+)$')
INT_RX = re.compile(r"^[0-9]+$")


def project(tag):
    """A fixed, valid, lowercase UUID per tag (a fresh budget per test)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "lcgate-issue5/" + tag))


def proj_section(pid):
    return 'project "%s"' % pid


def client_section(name):
    return 'client "%s"' % name


def sha256hex(s):
    return hashlib.sha256(s.encode()).hexdigest()


def limits(rate, burst, upstream_rate="1000/s", upstream_burst="100000"):
    return {"rate": rate, "burst": str(burst), "upstream_rate": upstream_rate,
            "upstream_burst": str(upstream_burst)}


# ---- headers --------------------------------------------------------------

def policy(r):
    """(q, w) from RateLimit-Policy, or None if absent or malformed."""
    m = POLICY_RX.match(r.header("ratelimit-policy") or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def ratelimit(r):
    """(remaining, seconds) from RateLimit, or None if absent or malformed."""
    m = RATELIMIT_RX.match(r.header("ratelimit") or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def int_header(r, name):
    """The header as a non-negative integer, or None (absent, or not digits)."""
    v = r.header(name)
    return int(v) if v is not None and INT_RX.match(v) else None


def hdrs(r):
    """The rate-limit related headers of an answer, for diagnostics."""
    keep = ("retry-after", "retry-after-ms", "ratelimit", "ratelimit-policy", "x-cache",
            "cache-status")
    return "%s %s %s" % (r.status, {k: v for k, v in r.headers.items() if k in keep},
                         r.body[:160])


def problems_headers(r, q, w, burst, t_max):
    """Problems of the RateLimit-Policy / RateLimit headers of an answer that
    was admitted: policy exactly (q, w); 0 <= r <= burst - 1; 0 <= t <= t_max."""
    out = []
    p = policy(r)
    if p != (q, w):
        out.append('RateLimit-Policy is %r, want \'"project";q=%d;w=%d\''
                   % (r.header("ratelimit-policy"), q, w))
    rl = ratelimit(r)
    if rl is None:
        out.append("RateLimit missing or malformed: %r" % r.header("ratelimit"))
    else:
        if not 0 <= rl[0] <= burst - 1:
            out.append("RateLimit r=%d outside 0..%d" % (rl[0], burst - 1))
        if not 0 <= rl[1] <= t_max:
            out.append("RateLimit t=%d outside 0..%d" % (rl[1], t_max))
    return out


def problems_429(r, detail_id=None, q=None, w=None, max_ms=None, min_ms=None,
                 r_zero=True, t_max=None):
    """Problems of a 429 answer (an empty list when it is right):
    - status 429, and with detail_id the exact JSON body of the contract;
    - Retry-After an integer >= 1, retry-after-ms an integer > 0, and
      Retry-After == ceil(retry-after-ms / 1000);
    - min_ms <= retry-after-ms <= max_ms when given;
    - RateLimit-Policy exactly (q, w) when q is given;
    - RateLimit r=0 (when r_zero) and 1 <= t (<= t_max when given)."""
    out = []
    if r.status != 429:
        return ["status %d, want 429" % r.status]
    if detail_id is not None:
        want = {"detail": "Rate limit exceeded for project %s" % detail_id}
        if c.js(r) != want:
            out.append("body %r, want %r" % (r.body[:200], json.dumps(want)))
        if not (r.header("content-type") or "").startswith("application/json"):
            out.append("Content-Type %r" % r.header("content-type"))
    ra = int_header(r, "retry-after")
    ms = int_header(r, "retry-after-ms")
    if ra is None or ra < 1:
        out.append("Retry-After %r is not an integer >= 1" % r.header("retry-after"))
    if ms is None or ms < 1:
        out.append("retry-after-ms %r is not an integer > 0" % r.header("retry-after-ms"))
    if ra is not None and ms is not None and ms > 0 and ra != math.ceil(ms / 1000.0):
        out.append("Retry-After %d != ceil(retry-after-ms %d / 1000)" % (ra, ms))
    if ms is not None and max_ms is not None and ms > max_ms:
        out.append("retry-after-ms %d > %d" % (ms, max_ms))
    if ms is not None and min_ms is not None and ms < min_ms:
        out.append("retry-after-ms %d < %d" % (ms, min_ms))
    if q is not None and policy(r) != (q, w):
        out.append('RateLimit-Policy %r, want \'"project";q=%d;w=%d\''
                   % (r.header("ratelimit-policy"), q, w))
    rl = ratelimit(r)
    if r_zero or t_max is not None:
        if rl is None:
            out.append("RateLimit missing or malformed: %r" % r.header("ratelimit"))
        else:
            if r_zero and rl[0] != 0:
                out.append("RateLimit r=%d on a 429, want 0" % rl[0])
            if r_zero and rl[1] < 1:
                out.append("RateLimit t=%d on a 429, want >= 1" % rl[1])
            if t_max is not None and rl[1] > t_max:
                out.append("RateLimit t=%d > %d" % (rl[1], t_max))
    return out


def first_problems(pairs, limit=6):
    """pairs: [(resp, [problems])] -> a diagnostic of the first few bad ones."""
    bad = [(r, p) for r, p in pairs if p]
    lines = ["%d of %d answers are wrong" % (len(bad), len(pairs))]
    for r, p in bad[:limit]:
        lines.append("%s\n    %s" % ("; ".join(p), hdrs(r)))
    return "\n".join(lines)


# ---- requests ---------------------------------------------------------------

class Conn:
    """One keep-alive connection, for one thread. req() never raises: a
    failure is an answer with status 0 (cache_lib.Err). Every answer has
    .t0/.t1 (monotonic). A connection the server closed while idle is
    reopened once, before anything was sent on it."""

    def __init__(self, port, timeout=5.0):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def req(self, method, path, headers=None, body=None):
        t0 = time.monotonic()
        r = None
        for attempt in (0, 1):
            fresh = self.conn is None
            try:
                if fresh:
                    self.conn = c._connected(self.port, self.timeout)
                r = c._send(self.conn, method, path, headers, body)
                if (r.header("connection") or "").lower() == "close":
                    self.close()
                break
            except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError,
                    OSError) as e:
                self.close()
                # Only a reused connection that failed is retried (the
                # server had closed it while idle).
                if fresh or attempt == 1 or isinstance(e, TimeoutError):
                    r = c.Err(e)
                    break
            except Exception as e:  # http.client.RemoteDisconnected and friends
                self.close()
                if fresh or attempt == 1:
                    r = c.Err(e)
                    break
        r.t0, r.t1 = t0, time.monotonic()
        return r

    def get(self, path, headers=None):
        return self.req("GET", path, headers=headers)

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
            self.conn = None


def run_threads(fns, deadline):
    """Run each fn() in its own thread; join them all by `deadline`
    (monotonic). Returns the list of return values (None for a thread
    still running, which is reported by the caller)."""
    out = [None] * len(fns)

    def wrap(i, fn):
        out[i] = fn()

    ths = [threading.Thread(target=wrap, args=(i, fn), daemon=True)
           for i, fn in enumerate(fns)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(max(0.1, deadline - time.monotonic()))
    return out, [th.is_alive() for th in ths]


def loop_until(port, path_fn, until, pause=0.0, headers=None, timeout=5.0):
    """A worker: GET path_fn(i) on one keep-alive connection, again and
    again, until `until` (monotonic); pause seconds after each answer.
    Returns the answers (each with .t0/.t1 and .path)."""
    def run():
        conn = Conn(port, timeout)
        out = []
        i = 0
        while time.monotonic() < until:
            p = path_fn(i)
            r = conn.get(p, headers=headers)
            r.path = p
            out.append(r)
            i += 1
            if pause:
                time.sleep(max(0.0, min(pause, until - time.monotonic())))
        conn.close()
        return out
    return run


def scheduled(port, items, timeout=10.0, headers=None):
    """A worker: items = [(when, path)] (when: monotonic); GET each path at
    its time (at once if late), on one keep-alive connection. Returns
    [(index in items, answer)]."""
    def run():
        conn = Conn(port, timeout)
        out = []
        for k, (when, p) in enumerate(items):
            time.sleep(max(0.0, when - time.monotonic()))
            r = conn.get(p, headers=headers)
            r.path = p
            out.append((k, r))
        conn.close()
        return out
    return run


def sleep_until(when):
    time.sleep(max(0.0, when - time.monotonic()))


# ---- the mock upstream ------------------------------------------------------

class MockTape:
    """The mock's requests, each tagged with the monotonic time of the poll
    that first saw it (the request reached the mock before that time and
    after the previous poll). Create it after the last mock.reset()."""

    def __init__(self, mock):
        self.mock = mock
        self.entries = []      # (seen_at, prev_poll_at, entry)
        self.lost = 0          # requests that fell out of the mock's last 50
        self.seen = mock.stats()["requests"]
        self.prev = time.monotonic()

    def poll(self):
        now = time.monotonic()
        s = self.mock.stats()
        n = s["requests"] - self.seen
        if n > 0:
            last = s["last"]
            if n > len(last):
                self.lost += n - len(last)
            for e in last[-n:] if n <= len(last) else last:
                self.entries.append((now, self.prev, e))
        self.seen = s["requests"]
        self.prev = now
        return now

    def of(self, pid, since=None, until=None):
        """Entries for project pid (its id in the query), first seen by a
        poll after `since` (a poll time) and whose earliest possible time is
        before `until`."""
        out = []
        for seen_at, prev, e in self.entries:
            if ("project_id=" + pid) not in e.get("query", ""):
                continue
            if since is not None and seen_at <= since:
                continue
            if until is not None and prev >= until:
                continue
            out.append((seen_at, prev, e))
        return out


def mock_auth(entry):
    return entry.get("headers", {}).get("authorization")


# ---- config and processes ---------------------------------------------------

def conf_text(g, conf):
    """The config text Env.lcgate writes, for gate g (same listeners)."""
    base = {"server": {"listen": "127.0.0.1:%d" % g.port,
                       "admin_listen": "127.0.0.1:%d" % g.admin,
                       "log_level": "info"}}
    for sec, kv in conf.items():
        base.setdefault(sec, {}).update(kv)
    return "".join("[%s]\n" % s + "".join("%s = %s\n" % i for i in kv.items())
                   for s, kv in base.items())


def reload(g, conf):
    """Rewrite g's config file and send SIGHUP. Returns the send time."""
    with open(g.conf_path, "w") as f:
        f.write(conf_text(g, conf))
    os.kill(g.proc.pid, signal.SIGHUP)
    return time.monotonic()


def key_file(env, name, content):
    path = env.path(name)
    with open(path, "w") as f:
        f.write(content)
    os.chmod(path, 0o600)
    return path


def leaks(text, secrets):
    """Which secrets (or their first 16 characters) appear in text."""
    return [s[:8] + "..." for s in secrets if s in text or s[:16] in text]


def warm(port, path, deadline_s=10.0, headers=None):
    """GET path until it is a 200, honouring 429 retry hints; returns the
    200 answer, or the last answer at the deadline."""
    end = time.monotonic() + deadline_s
    while True:
        r = c.get(port, path, headers=headers, timeout=10)
        if r.status != 429 or time.monotonic() > end:
            return r
        ms = int_header(r, "retry-after-ms") or 100
        time.sleep(min(ms / 1000.0 + 0.02, max(0.0, end - time.monotonic())))


def running(tap, g, before):
    """True while gate g's process runs. Once it has exited, the first call
    reports one failed check with the log's error lines, and later calls
    just say what is skipped; so that a crash shows once, not as a cascade
    of refused connections."""
    if g is None:
        return False
    if g.proc.poll() is None:
        return True
    if not getattr(g, "exit_reported", False):
        g.exit_reported = True
        log = g.log()
        lines = [ln for ln in log.splitlines()
                 if "ERROR" in ln or "SUMMARY" in ln or "[error]" in ln or " in " in ln]
        tap.ok(False, "lcgate (%s) is still running before: %s" % (
            os.path.basename(g.proc.logpath), before),
            "exited %s\n%s" % (g.proc.returncode, "\n".join(lines[:25]) or log[-1500:]))
    else:
        tap.diag("skipped, lcgate has exited: %s" % before)
    return False


# ---- the official TypeScript SDK ------------------------------------------

# Makes N list calls one after the other with the SDK's default retries, and
# records every HTTP attempt (through its `fetch` option): when it started and
# ended (ms since the script's start), its status and retry hints.
CALLS_MJS = r"""
import LlamaCloud from '@llamaindex/llama-cloud';

const [, , baseURL, apiKey, n, extra] = process.argv;
const t0 = performance.now();
const attempts = [];
const timedFetch = async (url, init) => {
  const a = { start: performance.now() - t0 };
  try {
    const r = await fetch(url, init);
    a.end = performance.now() - t0;
    a.status = r.status;
    a.retry_after = r.headers.get('retry-after');
    a.retry_after_ms = r.headers.get('retry-after-ms');
    attempts.push(a);
    return r;
  } catch (e) {
    a.end = performance.now() - t0;
    a.error = String(e);
    attempts.push(a);
    throw e;
  }
};
const client = new LlamaCloud({ baseURL, apiKey, fetch: timedFetch, timeout: 10000 });
const params = JSON.parse(extra || '{}');
const calls = [];
for (let i = 0; i < Number(n); i++) {
  const c = { start: performance.now() - t0 };
  try {
    const page = await client.beta.batch.list({ limit: 5, ...params });
    c.ok = true;
    c.items = page.getPaginatedItems().length;
  } catch (e) {
    c.ok = false;
    c.error = String(e);
  }
  c.end = performance.now() - t0;
  calls.push(c);
}
console.log(JSON.stringify({ calls, attempts }));
"""


def sdk_calls(cache, base, n, params=None, timeout=120):
    """Run CALLS_MJS in the SDK's install directory (cache_lib.sdk_dir).
    Returns (exit code, parsed output or None, stderr)."""
    path = os.path.join(cache, "lcgate_rl_calls.mjs")
    with open(path, "w") as f:
        f.write(CALLS_MJS)
    env = {k: v for k, v in os.environ.items()
           if k not in ("LLAMA_CLOUD_API_KEY", "LLAMA_CLOUD_BASE_URL")}
    try:
        p = subprocess.run(["node", path, base, "sdk-key-not-used-by-lcgate", str(n),
                            json.dumps(params or {})], capture_output=True, text=True,
                           timeout=timeout, cwd=cache, env=env)
    except subprocess.TimeoutExpired as e:
        return -1, None, "node did not finish within %d s: %s" % (timeout, e)
    try:
        out = json.loads(p.stdout)
    except ValueError:
        out = None
    return p.returncode, out, p.stderr[-2000:] + p.stdout[-500:]
