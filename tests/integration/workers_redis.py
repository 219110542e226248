"""workers = 2 with store = redis (issue 15, in scope 4): each worker serves
hits over its own Redis connection, and hands only the rest to main.

- Hits are served by the workers: 480 sequential hits on 24 keep-alive
  connections are all HITs, both worker threads run, and none is handed
  to the main loop (lcgate_worker_handoffs_total does not move; the main
  thread is woken fewer than 48 times). With l1_ttl on (the workers' own
  L1s answer: few Redis lookups) and with l1_ttl = 0s (every hit one
  lookup in Redis, made by a worker).
- Coalescing across workers: 100 concurrent identical misses on 100
  connections cost the upstream exactly 1 request, every client gets the
  same body.
- Two instances on one redis-server: a miss on A is a HIT on B; a create
  through A is in B's very next list on every one of 12 fresh connections
  (each worker's own subscription and L1 are exact).
- One client budget across workers, spent in Redis: burst 10 at a slow
  rate, one warming request then 40 at once: 9 answered, 31 refused (429);
  with burst 20 (spent in grants of 2) exactly 19: no request paid for in
  Redis is lost.
- Fail-open: redis-server SIGKILLed while clients ask a cached key: no 5xx;
  redis-server back on the same port: within seconds the hits are the
  workers' again (no handoffs).
- SIGTERM with 10 slow requests in flight: all 10 are answered 200, and
  lcgate exits 0 with no sanitizer report.
"""
import http.client
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import faults_lib as fl  # noqa: E402
import lcgtest as t  # noqa: E402
import ratelimit_lib as rlib  # noqa: E402
import workers_lib as wl  # noqa: E402

V1, V2 = c.V1, c.V2
HANDOFFS = "lcgate_worker_handoffs_total"
tap = t.Tap()
env = t.Env("lcgate-workers-redis")
mock = env.mock()
redis = env.redis()
# Two budgets at a slow rate: burst 10 is spent in Redis one request at a
# time, burst 20 in grants of 2 (ratelimit.c: burst / 8 per script run).
W10 = rlib.project("workers-redis-rl-10")
W20 = rlib.project("workers-redis-rl-20")


def gate(name, **cache):
    conf = c.gate_conf(mock, cache=c.redis_cache(redis, redis_timeout="200ms", **cache),
                       server={"workers": "2"})
    conf[rlib.proj_section(W10)] = {"rate": "6/min", "burst": "10"}
    conf[rlib.proj_section(W20)] = {"rate": "6/min", "burst": "20"}
    return c.start_gate(tap, env, conf, name=name)


ga = gate("lcgate-a")                # l1_ttl: the default
gb = gate("lcgate-b")
g0 = gate("lcgate-nol1", l1_ttl="0s")
if not (ga and gb and g0):
    tap.done(env)


def worker_tids(g):
    """[tid of lcgate-w1, tid of lcgate-w2] (None for a missing one)."""
    names = wl.threads(g.proc.pid)
    return [names.get(n, [None])[0] for n in ("lcgate-w1", "lcgate-w2")]


def run_ns(g, tid):
    return wl.run_ns(g.proc.pid, tid)


def main_switches(g):
    """Voluntary context switches of the main thread (each a wakeup)."""
    return wl.voluntary_switches(g.proc.pid, g.proc.pid)


def handoffs(g):
    """lcgate_worker_handoffs_total, or None when /metrics has no such sample."""
    r = c.get(g.admin, "/metrics", timeout=5)
    return t.metric_sample(r.body.decode("utf-8", "replace"), HANDOFFS) if r.status == 200 \
        else None


def moved(before, after):
    """How far the handoff counter moved, or the reason it cannot be read."""
    if before is None or after is None:
        return "%s is absent from /metrics" % HANDOFFS
    return "%s moved by %d" % (HANDOFFS, after - before)


def lookups():
    """MGET + GET calls redis-server has served (each a store lookup)."""
    n = 0
    for line in fl.redis_cmd(redis.port, "INFO", "commandstats").splitlines():
        if line.startswith(("cmdstat_mget:", "cmdstat_get:")):
            n += int(line.split("calls=")[1].split(",")[0])
    return n


def rounds(g, conns, path, n):
    """n rounds of one request on each keep-alive connection, in turn:
    the set of (status, X-Cache) seen."""
    seen = set()
    for _ in range(n):
        for conn in conns:
            try:
                r = t.send(conn, "GET", path)
                seen.add((r.status, r.header("x-cache")))
            except Exception as e:
                seen.add((0, repr(e)))
    return seen


def hits_on_workers(g, path, what):
    """Case 1 on one instance: 480 sequential hits on 24 connections."""
    tids = worker_tids(g)
    if not tap.ok(None not in tids, "%s: two worker threads run, lcgate-w1 and lcgate-w2"
                  % what, tids):
        return
    first = c.get(g.port, path)  # stored: the rest are hits
    conns = [http.client.HTTPConnection("127.0.0.1", g.port, timeout=10) for _ in range(24)]
    # Until every connection is open and a round of 24 hits hands nothing to
    # main (each worker's Redis connections are up); at most 2 s.
    deadline = time.monotonic() + 2.0
    warm = 0
    while True:
        h0 = handoffs(g)
        rounds(g, conns, path, 1)
        warm += 1
        h1 = handoffs(g)
        if h0 is None or h1 is None or h1 == h0 or time.monotonic() > deadline:
            break
    tap.diag("%s: %d warm-up round(s) of 24 hits before measuring (%s)"
             % (what, warm, moved(h0, h1)))
    idle0 = main_switches(g)
    time.sleep(1.0)
    idle = main_switches(g) - idle0
    h_before = handoffs(g)
    n_before = lookups()
    run_before = [run_ns(g, tid) for tid in tids]
    main_before = main_switches(g)
    t0 = time.monotonic()
    seen = rounds(g, conns, path, 20)
    elapsed = time.monotonic() - t0
    main_woken = main_switches(g) - main_before
    grew = [(run_ns(g, tid) - b) / 1e6 for tid, b in zip(tids, run_before)]
    n_lookups = lookups() - n_before
    h_after = handoffs(g)
    for conn in conns:
        conn.close()
    tap.ok(first.status == 200 and seen == {(200, "HIT")},
           "%s: 480 requests on 24 keep-alive connections after the first stored the key: "
           "all HITs" % what, (first, seen))
    tap.ok(all(ms >= 1.0 for ms in grew),
           "%s: both workers served them (run time grew by %s ms, each at least 1 ms)"
           % (what, " and ".join("%.2f" % ms for ms in grew)))
    tap.ok(h_before is not None and h_after == h_before,
           "%s: no hit was handed to the main loop (%s over 480 hits)"
           % (what, moved(h_before, h_after)))
    # One request at a time: each one handed to main would wake it at least
    # once. Its own timers (1 s ones with Redis) wake it a few times too:
    # the idle rate, measured just before, is in the message.
    tap.ok(main_woken < 48,
           "%s: the main loop woke %d times during the 480 sequential hits in %.2f s "
           "(fewer than 48; %d times in 1 s idle)" % (what, main_woken, elapsed, idle))
    return n_lookups


# --- 1. hits are served by the workers ------------------------------------
n = hits_on_workers(ga, V1 + "?limit=9", "l1_ttl on")
if n is not None:
    tap.ok(n <= 48, "l1_ttl on: the 480 hits made %d lookups in Redis (at most 48: "
           "the workers' own L1s answered the rest)" % n)
n = hits_on_workers(g0, V1 + "?limit=10", "l1_ttl = 0s")
if n is not None:
    tap.ok(n >= 480, "l1_ttl = 0s: the 480 hits made %d lookups in Redis (at least 480: "
           "every hit one)" % n)

# --- 2. coalescing across workers -----------------------------------------
wl.coalesce_100(tap, mock, ga.port)

# --- 3. two instances on one redis-server ---------------------------------
# (A small list: an entry over 16 KiB is still being written to Redis when
# A's client has its answer, and B's lookup right after then waits on A's
# lease: "collapsed", not a HIT.)
path = V1 + "?limit=13"
miss = c.get(ga.port, path)
on_b = [c.get(gb.port, path) for _ in range(12)]   # 12 connections: both workers
tap.ok(miss.status == 200 and c.xc(miss) == "MISS" and
       all(r.status == 200 and c.xc(r) == "HIT" and r.body == miss.body for r in on_b),
       "a miss on A is then a HIT on B, on each of 12 fresh connections, with A's body",
       (miss, [(i, r.status, c.cs(r)) for i, r in enumerate(on_b) if c.xc(r) != "HIT"]))
made = c.create_via(ga.port, "v1")
new_id = (c.js(made) or {}).get("id") if made.status in (200, 201) else None
seen = [c.get(gb.port, path) for _ in range(12)]
missing = [i for i, r in enumerate(seen) if r.status != 200 or new_id not in c.ids(r)]
tap.ok(new_id is not None and not missing,
       "a create through A is in B's very next list, on each of 12 fresh connections "
       "(%d without it)" % len(missing),
       (made, new_id, [(r.status, c.xc(r)) for r in seen]))


# --- 4. one client budget across workers, in Redis ------------------------
wl.budget_40(tap, ga.port, W10, 9, "Redis budget burst 10")
# In grants: a script run pays for up to 2, and a request Redis refuses
# while this instance holds one paid ahead takes it, so that none paid for
# is lost: exactly as many pass as one at a time.
wl.budget_40(tap, ga.port, W20, 19, "Redis budget burst 20 (spent in grants of 2)")

# --- 5. fail-open: redis-server killed, then back ---------------------------
paths = {ga: V1 + "?limit=11", g0: V1 + "?limit=12"}
for g, p in paths.items():
    c.get(g.port, p)
results = []
lock = threading.Lock()
stop_at = [time.monotonic() + 60]


def ask(g):
    while time.monotonic() < stop_at[0]:
        r = c.get(g.port, paths[g], timeout=5)
        with lock:
            results.append((g.proc.pid, r.status, c.xc(r), r.t1 - r.t0,
                            r.body[:160] if r.status != 200 else b""))
        time.sleep(0.005)


askers = [threading.Thread(target=ask, args=(g,), daemon=True) for g in (ga, g0) * 2]
for th in askers:
    th.start()
time.sleep(0.5)
port = redis.port
env.stop(redis, sig=signal.SIGKILL)
killed_at = len(results)
time.sleep(3.0)
down = len(results)
redis = fl.redis_on_port(env, port, "redis-back")
back_t = time.monotonic()
stop_at[0] = time.monotonic() + 0.5
for th in askers:
    th.join(10)
during = results[killed_at:down]
bad = [r for r in results if r[1] == 0 or r[1] >= 500]
tap.ok(len(during) >= 20 and not bad,
       "redis-server SIGKILLed: %d requests in the 3 s it was down, %d in all, none a 5xx "
       "or a failure (%d)" % (len(during), len(results), len(bad)),
       "\n".join(repr(b) for b in bad[:8]))
tap.diag("X-Cache while Redis was down: %s; slowest %.3f s"
         % ({k: sum(1 for r in during if r[2] == k) for k in set(r[2] for r in during)},
            max([r[3] for r in during] or [0])))


def store_ok(g):
    return t.request(g.admin, "GET", "/readyz", timeout=2).json().get("store_state") == "ok"


for g, what in ((ga, "l1_ttl on"), (g0, "l1_ttl = 0s")):
    # Until a round of 24 sequential hits (the key stored again first: the
    # new redis-server is empty) hands nothing to main; 8 s at most (a
    # reconnect backs off up to 5 s, some 3 s after a 3 s outage).
    deadline = back_t + 8.0
    tries = 0
    while True:
        tries += 1
        ok_store = store_ok(g)
        c.get(g.port, paths[g])
        h0 = handoffs(g)
        hits = [c.xc(c.get(g.port, paths[g])) for _ in range(24)]
        h1 = handoffs(g)
        done = ok_store and h0 is not None and h1 == h0 and hits == ["HIT"] * 24
        if done or h0 is None or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    tap.ok(done, "%s: redis-server back on its port: %.1f s later, 24 hits are all the "
           "workers' (%s, store_state ok: %s, after %d tries)"
           % (what, time.monotonic() - back_t, moved(h0, h1), ok_store, tries), hits)

# --- 6. SIGTERM drains what is in flight ------------------------------------
wl.sigterm_drain(tap, mock, ga)
tap.done(env)
