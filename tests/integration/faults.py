"""The fault suite (issue 8, item 4).

With store = redis (ttl 1 s, stale_while_revalidate 0, stale_if_error 10m,
redis_timeout 200 ms, upstream timeout 1 s), six client threads ask a mix of
warm list queries (stored before the fault) and new ones for about 5 s
while one fault is on:

- Redis SIGSTOPped (it hangs) then SIGCONTed; Redis SIGKILLed and restarted
  empty on the same port; Redis answering errors to every write
  (maxmemory 1, noeviction);
- the upstream slow past the timeout, resetting connections, sending
  truncated bodies, sending non-JSON 200 bodies, a 5xx storm, a 429 storm;
- clients that send a request for a slow query and go away before the answer
  (FIN or RST), many times, while the others keep being served.

Done when, for each: zero client 5xx where a stale or upstream answer was
possible (every request when only Redis is faulty; with the upstream faulty,
every query that had an entry), zero wrong bodies (each 200 is compared
byte for byte with the mock's own answer for that exact query, fetched
before any fault), no request longer than upstream timeout + redis_timeout
+ 1 s, and every lcgate exits cleanly with no sanitizer report. Each
scenario prints its figures: requests, 5xx, 429, wrong bodies, max latency.
"""
import os
import random
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import faults_lib as fl  # noqa: E402
import lcgtest as t  # noqa: E402

V1 = c.V1
TTL_S, UP_TIMEOUT_S, REDIS_TIMEOUT_S = 1.0, 1.0, 0.2
DEADLINE_S = UP_TIMEOUT_S + REDIS_TIMEOUT_S + 1.0
N_WARM = 12

tap = t.Tap()
env = t.Env("lcgate-faults")
mock = env.mock()
shared_redis = env.redis()
next_db = [0]

# Expected answers, straight from the mock, before any fault.
POOL = fl.query_pool()
SLOW = [V1 + "?limit=2&offset=%d" % n for n in range(100, 116)]  # disconnect scenario
t_exp = time.monotonic()
EXPECTED = fl.expected_bodies(mock, POOL + SLOW)
tap.ok(len(EXPECTED) == len(POOL) + len(SLOW) and
       len(set(EXPECTED[p] for p in POOL)) == len(POOL),
       "the mock's answers to %d distinct queries, fetched directly, all differ (%.1f s)"
       % (len(EXPECTED), time.monotonic() - t_exp))
mock.reset()


def conf(redis, db=0):
    return c.gate_conf(mock, upstream={"timeout": "%ds" % UP_TIMEOUT_S},
                       cache=c.redis_cache(redis, redis_timeout="%dms" % (REDIS_TIMEOUT_S * 1000),
                                           ttl="%ds" % TTL_S, stale_while_revalidate="0s",
                                           stale_if_error="10m", prefetch="off")
                       | {"redis_url": "redis://127.0.0.1:%d/%d" % (redis.port, db)})


def split(seed):
    rng = random.Random(seed)
    warm = rng.sample(POOL, N_WARM)
    return warm, [p for p in POOL if p not in warm]


def preload(name, g, warm):
    """Store the warm queries; each then answers HIT."""
    first = [c.get(g.port, p) for p in warm]
    second = [c.get(g.port, p) for p in warm]
    ok = all(r.status == 200 and r.body == EXPECTED[p] and c.xc(r) == "MISS"
             for r, p in zip(first, warm)) and all(c.xc(r) == "HIT" for r in second)
    tap.ok(ok, "%s: %d warm queries stored (MISS, then HIT)" % (name, len(warm)),
           c.summary(first + second))


def store_state(g):
    try:
        return t.request(g.admin, "GET", "/readyz", timeout=2).json().get("store_state")
    except Exception as e:
        return repr(e)


def report(name, load, strict, extra=""):
    """The figures and the common checks. strict: every request must be a
    200 (only Redis is faulty, or nothing is). Otherwise a 5xx or 429 is
    allowed only for a query that had no entry yet."""
    f = fl.figures(load.recs)
    errs = f["5xx"] + f["429"]
    if strict:
        bad = errs + f["failed"] + f["other"]
        no_entry = []
    else:
        bad = [r for r in errs if r.warm or r.had] + f["failed"] + f["other"]
        no_entry = [r for r in errs if not (r.warm or r.had)]
    tap.diag("%s: requests %d, 200 %d (STALE %d), 5xx %d, 429 %d, failed %d, "
             "errors where no entry existed %d, wrong bodies %d, max latency %.3f s%s"
             % (name, f["requests"], f["ok200"], f["stale"], len(f["5xx"]), len(f["429"]),
                len(f["failed"]), len(no_entry), len(f["wrong"]), f["max_latency"], extra))
    tap.diag("%s: events %s" % (name, load.events))
    tap.ok(f["requests"] >= 100 and not load.stuck and all(e[2] == "ok" for e in load.events),
           "%s: the load ran (%d requests, %d threads stuck)" % (name, f["requests"], load.stuck),
           load.events)
    tap.ok(not f["wrong"], "%s: zero wrong bodies (%d)" % (name, len(f["wrong"])),
           "\n".join(fl.describe(r) for r in f["wrong"][:6]))
    what = ("zero client 5xx, 429 or failures" if strict else
            "zero client 5xx, 429 or failures for queries that had an entry")
    tap.ok(not bad, "%s: %s (%d)" % (name, what, len(bad)),
           "\n".join(fl.describe(r) for r in bad[:8]))
    slow = sorted(load.recs, key=lambda r: r.t0 - r.t1)[:4]
    tap.ok(f["max_latency"] <= DEADLINE_S,
           "%s: no request took longer than upstream timeout + redis_timeout + 1 s = %.1f s "
           "(max %.3f s)" % (name, DEADLINE_S, f["max_latency"]),
           "\n".join(fl.describe(r) for r in slow))
    return f


def stop_gate(name, g):
    rc = env.stop(g.proc)
    tap.eq(rc, 0, "%s: lcgate exits 0 on SIGTERM" % name)


# ---- Redis faults ---------------------------------------------------------

def redis_scenario(name, seed, events_for, seconds=5.5):
    redis = env.redis()
    g = c.start_gate(tap, env, conf(redis), name="lcgate-" + name)
    if g is None:
        return
    warm, new = split(seed)
    preload(name, g, warm)
    state = {"redis": redis}
    load = fl.Load(g.port, warm, new, EXPECTED, seed)
    load.run(seconds, events_for(state))
    report(name, load, strict=True)
    # Back to normal: the store is ok again and hits resume.
    try:
        t.wait_for(lambda: store_state(g) == "ok", 10, "store_state ok")
    except TimeoutError:
        pass
    p = warm[0]
    c.get(g.port, p)
    r = c.get(g.port, p)
    tap.ok(store_state(g) == "ok" and r.status == 200 and c.xc(r) == "HIT"
           and r.body == EXPECTED[p],
           "%s: once Redis is back, the store is ok and hits resume" % name,
           (store_state(g), r))
    stop_gate(name, g)
    env.stop(state["redis"])


def ev_sigstop(state):
    def redis_sigstop():
        os.kill(state["redis"].pid, signal.SIGSTOP)

    def redis_sigcont():
        os.kill(state["redis"].pid, signal.SIGCONT)
    return [(1.5, redis_sigstop), (3.8, redis_sigcont)]


def ev_kill_restart(state):
    def redis_sigkill():
        env.stop(state["redis"], sig=signal.SIGKILL)

    def redis_restart_empty():
        state["redis"] = fl.redis_on_port(env, state["redis"].port, "redis-restarted")
    return [(1.5, redis_sigkill), (2.8, redis_restart_empty)]


def ev_oom(state):
    port = state["redis"].port

    def redis_writes_fail():
        for args in (("CONFIG", "SET", "maxmemory-policy", "noeviction"),
                     ("CONFIG", "SET", "maxmemory", "1")):
            rep = fl.redis_cmd(port, *args)
            assert rep == "OK", rep
        rep = fl.redis_cmd(port, "SET", "faults-probe", "x")
        assert isinstance(rep, Exception) and "OOM" in str(rep), rep

    def redis_writes_ok():
        assert fl.redis_cmd(port, "CONFIG", "SET", "maxmemory", "0") == "OK"
    return [(1.5, redis_writes_fail), (4.0, redis_writes_ok)]


redis_scenario("redis-sigstop", 1, ev_sigstop)
redis_scenario("redis-killed-restarted-empty", 2, ev_kill_restart)
redis_scenario("redis-oom-errors", 3, ev_oom)


# ---- upstream faults ------------------------------------------------------

def shared_redis_gate(name, seed):
    """An lcgate on its own database of the shared redis-server, with the
    scenario's warm queries stored: (gate, warm, new), or None."""
    next_db[0] += 1
    g = c.start_gate(tap, env, conf(shared_redis, next_db[0]), name="lcgate-" + name)
    if g is None:
        return None
    warm, new = split(seed)
    preload(name, g, warm)
    return g, warm, new


def upstream_scenario(name, seed, fault, seconds=5.0, fault_at=1.0, clear_at=3.6,
                      new_fail_status=None):
    started = shared_redis_gate(name, seed)
    if started is None:
        return
    g, warm, new = started
    time.sleep(TTL_S + 0.1)  # the warm entries are stale from here on
    mock.reset()

    def fault_on():
        mock.fault(count=-1, **fault)

    def fault_off():
        c.clear_fault(mock)
    # Half new queries: while the upstream is slow every thread waits for
    # each request, so only a dozen begin during the fault.
    load = fl.Load(g.port, warm, new, EXPECTED, seed, p_warm=0.5)
    load.run(seconds, [(fault_at, fault_on), (clear_at, fault_off)])
    c.clear_fault(mock)
    up = mock.count()
    f = report(name, load, strict=False, extra=", upstream requests %d" % up)
    # The fault was felt: warm queries were served stale, and new ones got
    # an error (nothing to serve instead), during the fault.
    # From when the fault was set (the event's log time is after the call
    # returned) to when it was cleared.
    on_at = next((at for at, fn, res in load.events if fn == "fault_on"), fault_at + 0.1)
    during = [r for r in load.recs if on_at < r.t0 and r.t1 < clear_at]
    stale = [r for r in during if r.warm and r.xc == "STALE" and r.ok_body]
    failed_new = [r for r in during if not (r.warm or r.had) and r.status != 200]
    if new_fail_status is not None:
        statuses = sorted(set(r.status for r in failed_new))
        tap.ok(stale and failed_new and set(statuses) <= set(new_fail_status),
               "%s: during the fault, warm queries are answered STALE (%d) and new ones get "
               "%s (%d: %s)" % (name, len(stale), "/".join(map(str, new_fail_status)),
                                len(failed_new), statuses),
               "\n".join(fl.describe(r) for r in during[:8]))
    # Recovery: every warm query is a 200 with its own body again.
    time.sleep(0.2)
    after = [c.get(g.port, p) for p in warm]
    tap.ok(all(r.status == 200 and r.body == EXPECTED[p] for r, p in zip(after, warm)),
           "%s: after the fault, every warm query is a 200 with its body" % name,
           c.summary(after))
    stop_gate(name, g)
    return f


upstream_scenario("upstream-slow", 11, {"delay_ms": 2500}, new_fail_status=(504,))
upstream_scenario("upstream-reset", 12, {"reset": True}, new_fail_status=(502,))
upstream_scenario("upstream-truncated", 13, {"truncate": True}, new_fail_status=(502,))
upstream_scenario("upstream-non-json-200", 14,
                  {"body": "<html><body>502 Bad Gateway</body></html>",
                   "headers": {"Content-Type": "text/html"}},
                  new_fail_status=(502,))
upstream_scenario("upstream-5xx-storm", 15, {"status": 503}, new_fail_status=(503,))
upstream_scenario("upstream-429-storm", 16, {"status": 429, "headers": {"Retry-After": "1"}},
                  new_fail_status=(429,))


# ---- clients that go away mid-request -------------------------------------

def disconnect_scenario(name="client-disconnects", seed=21, seconds=5.0, n_abandon=96):
    started = shared_redis_gate(name, seed)
    if started is None:
        return
    g, warm, new = started
    mock.reset()
    DELAY = 0.7
    mock.fault(delay_ms=int(DELAY * 1000), match="limit=2&", count=-1)
    gone = {"n": 0, "err": []}
    lock = threading.Lock()

    def abandoner(k):
        rng = random.Random("%s-%d" % (seed, k))
        for i in range(n_abandon // 4):
            path = rng.choice(SLOW)
            try:
                fl.abandon(g.port, path, rng.uniform(0.0, 0.4), rst=(i % 2 == 1))
                with lock:
                    gone["n"] += 1
            except Exception as e:
                with lock:
                    gone["err"].append(repr(e))
            time.sleep(rng.uniform(0.0, 0.03))
    ths = [threading.Thread(target=abandoner, args=(k,), daemon=True) for k in range(4)]

    def start_abandoning():
        for th in ths:
            th.start()
    load = fl.Load(g.port, warm, new, EXPECTED, seed, threads=4)
    load.run(seconds, [(0.3, start_abandoning)])
    for th in ths:
        th.join(30)
    report(name, load, strict=True,
           extra=", clients gone mid-request %d (half with RST)" % gone["n"])
    tap.ok(gone["n"] == n_abandon // 4 * 4 and not gone["err"],
           "%s: %d clients sent a slow query and went away before the answer"
           % (name, gone["n"]), gone["err"][:5])
    tap.ok(g.proc.poll() is None, "%s: lcgate is still running" % name, g.log()[-2000:])
    # The abandoned queries still work: each a 200 with its own body.
    res = [c.get(g.port, p, timeout=5) for p in SLOW]
    tap.ok(all(r.status == 200 and r.body == EXPECTED[p] for r, p in zip(res, SLOW)),
           "%s: afterwards each abandoned query answers 200 with its body" % name,
           c.summary(res))
    c.clear_fault(mock)
    try:
        t.wait_for(lambda: fl.metric(g, "lcgate_requests_in_flight") == 0, 5,
                   "no request in flight")
        inflight = 0
    except TimeoutError:
        inflight = fl.metric(g, "lcgate_requests_in_flight")
    tap.eq(inflight, 0, "%s: no request left in flight (lcgate_requests_in_flight)" % name)
    stop_gate(name, g)


disconnect_scenario()
tap.done(env)
