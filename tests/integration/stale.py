"""Stale serving, with the memory and the Redis store.

Issue 4, done when:
- "stale-while-revalidate: after expiry, the first request is answered from
  the stale entry without waiting for a slow (2 s) upstream, and the
  upstream sees exactly one refresh; the next request is a HIT with the new
  body."
- "stale-if-error: upstream set to 503, to a 3 s delay past `timeout`, and to
  connection resets in turn: clients get the stale 200 in each case; past
  the window they get the upstream's error (or 502/504)." (429 too, as the
  spec lists it.)
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import lcgtest as t  # noqa: E402

V1 = c.V1
tap = t.Tap()
env = t.Env("lcgate-stale")
mock = env.mock()
redis = env.redis()


def sleep_until(when):
    time.sleep(max(0.0, when - time.monotonic()))


def swr(store, cache, n):
    """ttl 2 s, stale_while_revalidate 6 s."""
    TTL = 2
    g = c.start_gate(tap, env, c.gate_conf(mock, cache=dict(
        cache, ttl="%ds" % TTL, stale_while_revalidate="6s")), name="lcgate-swr-" + store)
    if g is None:
        return
    path = V1 + "?limit=%d" % n
    miss = c.get(g.port, path)
    tap.ok(miss.status == 200 and c.xc(miss) == "MISS", "%s swr: the first request is a MISS"
           % store, miss)
    new_id = c.create_direct(mock, "v1")  # the upstream's answer changes
    sleep_until(miss.t1 + TTL + 1.3)       # 1.3 s past ttl
    mock.reset()
    mock.fault(delay_ms=2000, match="limit=%d" % n, count=1)
    r = c.get(g.port, path, timeout=10)
    took = r.t1 - r.t0
    m = c.SWR_RX.match(c.cs(r) or "")
    lo, hi = c.stale_n_range(miss, r, TTL)
    tap.ok(r.status == 200 and r.body == miss.body and c.xc(r) == "STALE",
           "%s swr: past ttl, the answer is the stale entry, X-Cache: STALE" % store, r)
    tap.ok(took < 0.5, "%s swr: it came at once (%.3f s) though the upstream takes 2 s"
           % (store, took))
    tap.ok(m is not None and lo <= int(m.group(1)) <= hi,
           "%s swr: Cache-Status 'lcgate; hit; ttl=-N; detail=stale-while-revalidate', "
           "N in %d..%d (seconds past ttl)" % (store, lo, hi), c.cs(r))
    age = r.header("age", "")
    tap.ok(age.isdigit() and int(age) >= TTL, "%s swr: Age counts from the stored answer (%s)"
           % (store, age), r.headers)
    seen = c.wait_upstream(mock, V1, 1, 2)
    tap.eq(seen, 1, "%s swr: one background request refreshes it" % store)
    # While the refresh runs, more requests are still served stale at once
    # and do not start other refreshes.
    during = []
    for _ in range(3):
        during.append(c.get(g.port, path, timeout=10))
        time.sleep(0.2)
    tap.ok(all(d.status == 200 and c.xc(d) == "STALE" and d.body == miss.body
               and d.t1 - d.t0 < 0.5 for d in during),
           "%s swr: during the refresh, the next requests are STALE too, at once" % store,
           c.summary(during))
    # The refresh lands 2 s after it started; the first answer that is not
    # STALE any more must be a HIT with the new body.
    deadline = time.monotonic() + 5
    nxt = during[-1]
    while c.xc(nxt) == "STALE" and time.monotonic() < deadline:
        time.sleep(0.05)
        nxt = c.get(g.port, path, timeout=10)
    tap.ok(nxt.status == 200 and c.xc(nxt) == "HIT" and new_id in c.ids(nxt)
           and (c.cs(nxt) or "").startswith("lcgate; hit; ttl="),
           "%s swr: once refreshed, the next request is a HIT with the new body" % store,
           (nxt, new_id))
    time.sleep(0.3)
    tap.eq(c.upstream_gets(mock, V1), 1, "%s swr: the upstream saw exactly one refresh" % store)
    c.clear_fault(mock)


# mode: (fault, the upstream status lcgate reports / passes on)
MODES = (
    ("503", {"status": 503}, 503),
    ("reset", {"reset": True}, 502),
    ("timeout", {"delay_ms": 3000}, 504),
    # An upstream 429 makes lcgate hold the project back: its own project,
    # and last.
    ("429", {"status": 429, "headers": {"Retry-After": "1"}}, 429),
)


def sie(store, cache, n):
    """ttl 1 s, no stale_while_revalidate, stale_if_error 5 s, upstream
    timeout 1 s."""
    TTL, SIE = 1, 5
    g = c.start_gate(tap, env, c.gate_conf(mock, upstream={"timeout": "1s"}, cache=dict(
        cache, ttl="%ds" % TTL, stale_while_revalidate="0s", stale_if_error="%ds" % SIE)),
        name="lcgate-sie-" + store)
    if g is None:
        return
    paths = {}
    for i, (mode, _, _) in enumerate(MODES):
        paths[mode] = V1 + "?limit=%d" % (n + i)
        if mode == "429":
            paths[mode] += "&project_id=" + t.PROJ_B
    misses = {mode: c.get(g.port, p) for mode, p in paths.items()}
    tap.ok(all(m.status == 200 and c.xc(m) == "MISS" for m in misses.values()),
           "%s sie: the entries are stored" % store, c.summary(misses.values()))
    sleep_until(max(m.t1 for m in misses.values()) + TTL + 1.3)
    for i, (mode, fault, status) in enumerate(MODES):
        mock.fault(match="limit=%d" % (n + i), count=-1, **fault)
        r = c.get(g.port, paths[mode], timeout=10)
        c.clear_fault(mock)
        m = c.SIE_RX.match(c.cs(r) or "")
        lo, hi = c.stale_n_range(misses[mode], r, TTL)
        tap.ok(r.status == 200 and r.body == misses[mode].body and c.xc(r) == "STALE",
               "%s sie: upstream %s: the stale 200 is served, X-Cache: STALE" % (store, mode), r)
        tap.ok(m is not None and int(m.group(1)) == status and lo <= int(m.group(2)) <= hi,
               "%s sie: upstream %s: Cache-Status 'lcgate; fwd=stale; fwd-status=%d; "
               "ttl=-N; detail=stale-if-error', N in %d..%d" % (store, mode, status, lo, hi),
               c.cs(r))
    # Past ttl + stale_if_error: the error itself.
    sleep_until(max(m.t1 for m in misses.values()) + TTL + SIE + 1.0)
    for i, (mode, fault, status) in enumerate(MODES):
        mock.fault(match="limit=%d" % (n + i), count=-1, **fault)
        r = c.get(g.port, paths[mode], timeout=10)
        c.clear_fault(mock)
        body = c.js(r)
        tap.ok(r.status == status and c.xc(r) != "STALE" and isinstance(body, dict)
               and "detail" in body
               and (body == {"detail": "injected"} if status in (503, 429) else True),
               "%s sie: past the window, upstream %s gives the client %d" % (store, mode, status),
               r)


swr("memory", {}, 51)
sie("memory", {}, 61)
mock.reset()
swr("redis", c.redis_cache(redis), 52)
sie("redis", c.redis_cache(redis), 71)
tap.done(env)
