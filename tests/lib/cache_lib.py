"""Helpers for the cache tests (coalescing, stale serving,
invalidation, purge, ETag, client Cache-Control, prefetch).

Built on lcgtest: processes still go through Env, single requests through
lcgtest.request. What is added here: concurrent requests released together
by a barrier (each on its own, already connected socket), requests that
never raise (a failure becomes status 0 with the error as body, so that a
test reports it instead of dying), per-request timing, mock-upstream
counters, and the SDK runner with per-page headers.
"""
import http.client
import json
import math
import os
import re
import shutil
import subprocess
import threading
import time

import lcgtest as t

V1 = "/api/v1/beta/batch-processing"
V2 = "/api/v2/batches"

# The rate limits are not what these tests are about: keep them out of the way.
LIMITS = {"rate": "1000/s", "burst": "100000",
          "upstream_rate": "1000/s", "upstream_burst": "100000"}

CS_STORED = "lcgate; fwd=uri-miss; fwd-status=200; stored"
CS_COLLAPSED = "lcgate; fwd=uri-miss; collapsed"
CS_NO_CACHE = "lcgate; fwd=request; fwd-status=200; stored"
SWR_RX = re.compile(r"^lcgate; hit; ttl=-(\d+); detail=stale-while-revalidate$")
SIE_RX = re.compile(r"^lcgate; fwd=stale; fwd-status=(\d+); ttl=-(\d+); detail=stale-if-error$")


def gate_conf(mock, cache=None, upstream=None, server=None, ratelimit=None):
    """A config for these tests. Prefetch is off unless asked for: a
    prefetch is an upstream request too, and would blur the counts of the
    tests that are not about it."""
    conf = {"upstream": {"base_url": mock.url, "timeout": "10s"},
            "cache": {"ttl": "60s", "prefetch": "off"},
            "ratelimit": dict(LIMITS)}
    for sec, kv in (("cache", cache), ("upstream", upstream), ("server", server),
                    ("ratelimit", ratelimit)):
        if kv:
            conf.setdefault(sec, {}).update(kv)
    return conf


def redis_cache(redis, **extra):
    c = {"store": "redis", "redis_url": "redis://127.0.0.1:%d/0" % redis.port}
    c.update(extra)
    return c


def start_gate(tap, env, conf, name="lcgate", key=t.KEY_A):
    """Start an lcgate; on failure report a failed check (with its log) and
    return None instead of raising."""
    try:
        g = env.lcgate(conf, env={"LLAMA_CLOUD_API_KEY": key}, name=name, wait=False)
        g.wait_ready(15)
        return g
    except Exception as e:
        log = ""
        for p in env.gates[-1:]:
            try:
                with open(p.logpath, "rb") as f:
                    log = f.read().decode("utf-8", "replace")[-2000:]
            except OSError:
                pass
        conf_text = ""
        try:  # the newest config file in the test's directory is this one
            confs = [env.path(q) for q in os.listdir(env.dir) if q.endswith(".conf")]
            with open(max(confs, key=os.path.getmtime)) as f:
                conf_text = f.read()
        except Exception:
            pass
        tap.ok(False, "%s starts with this configuration" % name,
               "%s\n--- config ---\n%s--- log ---\n%s" % (e, conf_text, log))
        return None


class Err:
    """Stands in for a Resp when the request failed (status 0)."""

    def __init__(self, exc):
        self.status = 0
        self.headers = {}
        self.body = repr(exc).encode()

    def header(self, name, default=None):
        return default

    def json(self):
        return None

    def __repr__(self):
        return "<failed: %s>" % self.body.decode("utf-8", "replace")


def get(port, path, headers=None, timeout=10.0, method="GET", body=None):
    """lcgtest.request that never raises; the answer has .t0/.t1 (monotonic)."""
    t0 = time.monotonic()
    try:
        r = t.request(port, method, path, headers=headers, body=body, timeout=timeout)
    except Exception as e:
        r = Err(e)
    r.t0, r.t1 = t0, time.monotonic()
    return r


def _connected(port, timeout):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.connect()
    return conn


def _send(conn, method, path, headers, body):
    return t.send(conn, method, path, headers, body)


def concurrent(jobs, timeout=15.0, start=None):
    """Run jobs = [(port, path, headers)] at once: every thread connects its
    own socket first, then all are released together by a barrier. Returns
    the answers in job order (Resp or Err, each with .t0/.t1), and the
    release time. `start` (optional) is called right after the release."""
    n = len(jobs)
    out = [None] * n
    barrier = threading.Barrier(n + 1)
    released = [None]

    def run(i, port, path, headers):
        conn = None
        try:
            conn = _connected(port, timeout)
        except Exception as e:
            out[i] = Err(e)
        try:
            barrier.wait(10)
        except threading.BrokenBarrierError:
            pass
        t0 = time.monotonic()
        if conn is not None:
            try:
                out[i] = _send(conn, "GET", path, headers, None)
            except Exception as e:
                out[i] = Err(e)
            finally:
                conn.close()
        out[i].t0, out[i].t1 = t0, time.monotonic()

    threads = [threading.Thread(target=run, args=(i,) + tuple(j), daemon=True)
               for i, j in enumerate(jobs)]
    for th in threads:
        th.start()
    try:
        barrier.wait(10)
    except threading.BrokenBarrierError:
        pass
    released[0] = time.monotonic()
    if start:
        start()
    deadline = time.monotonic() + timeout + 5
    for th in threads:
        th.join(max(0.1, deadline - time.monotonic()))
    for i, r in enumerate(out):
        if r is None:  # the thread is still stuck past every timeout
            out[i] = Err(TimeoutError("no answer within %.0fs" % timeout))
            out[i].t0 = out[i].t1 = released[0]
    return out, released[0]


class Background:
    """One request run in a thread: .start(); .join() -> answer."""

    def __init__(self, port, path, headers=None, timeout=15.0):
        self.res = None
        self.th = threading.Thread(target=self._run, args=(port, path, headers, timeout),
                                   daemon=True)

    def _run(self, port, path, headers, timeout):
        self.res = get(port, path, headers=headers, timeout=timeout)

    def start(self):
        self.th.start()
        return self

    def join(self, timeout=20.0):
        self.th.join(timeout)
        if self.res is None:
            r = Err(TimeoutError("still running"))
            r.t0 = r.t1 = time.monotonic()
            return r
        return self.res


def cs(r):
    return r.header("cache-status")


def xc(r):
    return r.header("x-cache")


def summary(resps, limit=8):
    """A compact count of (status, X-Cache, Cache-Status) for diagnostics."""
    counts = {}
    for r in resps:
        k = (r.status, xc(r), cs(r)) if r.status else (0, r.body[:120])
        counts[k] = counts.get(k, 0) + 1
    return "\n".join("%3d x %r" % (n, k) for k, n in
                     sorted(counts.items(), key=lambda kv: -kv[1])[:limit])


# ---- the mock upstream ----------------------------------------------------

def clear_fault(mock):
    t.request(mock.port, "POST", "/__fault", body=b"{}",
              headers={"Content-Type": "application/json"}, timeout=5)


def upstream_gets(mock, path):
    """GET requests the mock received on `path` since its last reset."""
    return mock.stats()["by_route"].get("GET " + path, 0)


def upstream_queries(mock, path):
    """Queries of the GETs on `path` among the mock's last 50 requests."""
    return [e["query"] for e in mock.stats()["last"]
            if e["method"] == "GET" and e["path"] == path]


def wait_upstream(mock, path, want, timeout):
    """Poll until the mock has seen `want` GETs on path, or the deadline;
    returns the count seen last."""
    deadline = time.monotonic() + timeout
    n = upstream_gets(mock, path)
    while n < want and time.monotonic() < deadline:
        time.sleep(0.02)
        n = upstream_gets(mock, path)
    return n


def create_direct(mock, route, project=None, key=t.KEY_A):
    """Create a job (v1) or batch (v2) directly on the mock, not through
    lcgate: the upstream's data changes behind lcgate's back. Returns its id."""
    path = (V1 if route == "v1" else V2) + ("?project_id=" + project if project else "")
    body = ({"directory_id": "dir-direct", "job_type": "parse"} if route == "v1"
            else {"source_directory_id": "dir-direct"})
    r = t.request(mock.port, "POST", path, body=json.dumps(body).encode(), timeout=10,
                  headers={"Authorization": "Bearer " + key,
                           "Content-Type": "application/json"})
    assert r.status == 200, r
    return r.json()["id"]


def create_via(gate_port, route, project=None):
    """Create through lcgate (a write that must invalidate). Returns the answer."""
    path = (V1 if route == "v1" else V2) + ("?project_id=" + project if project else "")
    body = ({"directory_id": "dir-gw", "job_type": "parse"} if route == "v1"
            else {"source_directory_id": "dir-gw"})
    return get(gate_port, path, method="POST", body=json.dumps(body).encode(),
               headers={"Content-Type": "application/json"})


def js(r):
    """The answer's JSON, or None."""
    try:
        return json.loads(r.body)
    except Exception:
        return None


def ids(r):
    try:
        return [it["id"] for it in r.json()["items"]]
    except Exception:
        return []


def stale_n_range(miss, req, ttl_s):
    """The N that `ttl=-N` may honestly carry: seconds past ttl at some
    instant while `req` was in flight, with the entry stored while `miss`
    was in flight."""
    lo = req.t0 - miss.t1 - ttl_s
    hi = req.t1 - miss.t0 - ttl_s
    return max(0, int(math.floor(lo))), int(math.ceil(hi))


def admin_post(gate, path, timeout=10.0):
    return get(gate.admin, path, method="POST", body=b"", timeout=timeout)


# ---- the official TypeScript SDK ------------------------------------------

# Pages with the SDK and reports, per page, the URL it asked and the
# Cache-Status / X-Cache it got back (from the raw response of each page).
PAGES_MJS = r"""
import LlamaCloud from '@llamaindex/llama-cloud';

const [, , baseURL, apiKey, route, page, extra] = process.argv;
const client = new LlamaCloud({ baseURL, apiKey, maxRetries: 0, timeout: 10000 });
const params = JSON.parse(extra || '{}');
const list = route === 'v1'
  ? client.beta.batch.list({ limit: Number(page), ...params })
  : client.batches.list({ page_size: Number(page), ...params });
const pages = [];
const ids = [];
for await (const p of (await list).iterPages()) {
  const h = p.response.headers;
  const items = p.getPaginatedItems();
  pages.push({ url: p.response.url, status: p.response.status, n: items.length,
               x_cache: h.get('x-cache'), cache_status: h.get('cache-status') });
  for (const it of items) ids.push(it.id);
}
console.log(JSON.stringify({ pages, ids }));
"""


def sdk_dir(tap):
    """The SDK's install directory (as tests/integration/sdk.py uses it),
    installed once per build tree; None (and a failed check) if npm fails."""
    src = os.path.join(t.SRCDIR, "tests", "sdk")
    cache = os.path.abspath(os.environ.get("LCGATE_SDK_DIR", "sdk-cache"))
    os.makedirs(cache, exist_ok=True)
    for f in ("package.json", "paging.mjs"):
        if not os.path.exists(os.path.join(cache, f)):
            shutil.copy(os.path.join(src, f), cache)
    if not os.path.isdir(os.path.join(cache, "node_modules", "@llamaindex", "llama-cloud")):
        shutil.copy(os.path.join(src, "package.json"), cache)
        p = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
                           cwd=cache, capture_output=True, text=True, timeout=300)
        if not tap.ok(p.returncode == 0, "npm installs the SDK", p.stderr[-2000:]):
            return None
    with open(os.path.join(cache, "lcgate_pages.mjs"), "w") as f:
        f.write(PAGES_MJS)
    return cache


def sdk_pages(cache, base, key, route, size, params=None, timeout=60):
    """Page through one list with the SDK: {"pages": [...], "ids": [...]}."""
    p = subprocess.run(["node", os.path.join(cache, "lcgate_pages.mjs"), base, key, route,
                        str(size), json.dumps(params or {})],
                       capture_output=True, text=True, timeout=timeout, cwd=cache,
                       env={k: v for k, v in os.environ.items()
                            if k not in ("LLAMA_CLOUD_API_KEY", "LLAMA_CLOUD_BASE_URL")})
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-2000:])
    return json.loads(p.stdout)
