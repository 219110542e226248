"""Coalescing within one instance: concurrent misses for one key send ONE
upstream request, and the waiters are answered as soon as it completes.

Issue 4, done when: "100 concurrent identical misses against one instance:
the mock upstream counts exactly 1 request and all 100 clients get the same
200 body."
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import lcgtest as t  # noqa: E402

V1, V2 = c.V1, c.V2
tap = t.Tap()
env = t.Env("lcgate-coalesce")
mock = env.mock()
g = c.start_gate(tap, env, c.gate_conf(mock))
if g is None:
    tap.done(env)

# --- 100 concurrent identical misses ---------------------------------------
# The upstream takes 1 s, so that all 100 are in flight while the first
# request's fetch runs.
path = V1 + "?limit=17"
mock.reset()
mock.fault(delay_ms=1000, match="?limit=17", count=-1)
res, _ = c.concurrent([(g.port, path, None)] * 100, timeout=15)
n_up = c.upstream_gets(mock, V1)
c.clear_fault(mock)
direct = mock.get(path)

tap.eq(n_up, 1, "100 concurrent identical misses: the upstream counts exactly 1 request")
statuses = sorted(set(r.status for r in res))
bodies = set(r.body for r in res)
tap.ok(statuses == [200] and len(bodies) == 1,
       "all 100 clients get a 200 with the same body", c.summary(res))
tap.ok(direct.status == 200 and bodies == {direct.body},
       "that body is the upstream's answer, byte for byte",
       (direct.status, [b[:80] for b in bodies]))
stored = [r for r in res if c.cs(r) == c.CS_STORED]
collapsed = [r for r in res if c.cs(r) == c.CS_COLLAPSED]
tap.ok(len(stored) == 1 and len(collapsed) == 99,
       "one answer says '%s', the 99 waiters say '%s'" % (c.CS_STORED, c.CS_COLLAPSED),
       c.summary(res))
tap.ok(all(c.xc(r) == "MISS" for r in res), "all 100 are X-Cache: MISS", c.summary(res))
before = c.upstream_gets(mock, V1)
r = c.get(g.port, path)
tap.ok(r.status == 200 and c.xc(r) == "HIT" and r.body == direct.body
       and c.upstream_gets(mock, V1) == before,
       "the coalesced fetch was stored: the next request is a HIT", r)

# --- waiters are woken when the fetch completes, not on a poll -------------
# Leader and 10 waiters; each round's upstream delay is different, so that a
# waiter that polls (every 500 ms, or any other period) cannot stay within
# 200 ms of the leader in every round by luck.
for i, delay in enumerate((1000, 600, 1100)):
    path = V2 + "?page_size=%d" % (41 + i)
    mock.reset()
    mock.fault(delay_ms=delay, match="?page_size=%d" % (41 + i), count=-1)
    res, _ = c.concurrent([(g.port, path, None)] * 11, timeout=10)
    n_up = c.upstream_gets(mock, V2)
    c.clear_fault(mock)
    leaders = [r for r in res if c.cs(r) == c.CS_STORED]
    waiters = [r for r in res if c.cs(r) == c.CS_COLLAPSED]
    ok = n_up == 1 and len(leaders) == 1 and len(waiters) == 10
    lag = max((w.t1 - leaders[0].t1 for w in waiters), default=None) if ok else None
    longest = max(w.t1 - w.t0 for w in res)
    tap.ok(ok and lag <= 0.2 and longest <= delay / 1000.0 + 0.3,
           "upstream %d ms: 10 collapsed waiters answered within 200 ms of the leader "
           "(all within %.1f s)" % (delay, delay / 1000.0 + 0.3),
           "upstream requests %d, lag %s, longest %.3f s\n%s"
           % (n_up, lag, longest, c.summary(res)))

# --- distinct keys are not collapsed into one another ----------------------
mock.reset()
mock.fault(delay_ms=500, match="?limit=2", count=-1)
paths = [V1 + "?limit=%d" % n for n in range(21, 29)]
res, _ = c.concurrent([(g.port, p, None) for p in paths], timeout=10)
n_up = c.upstream_gets(mock, V1)
c.clear_fault(mock)
want = [mock.get(p).body for p in paths]
tap.ok(n_up == 8 and [r.body for r in res] == want
       and all(c.cs(r) == c.CS_STORED for r in res),
       "8 concurrent misses for 8 different keys: 8 upstream requests, each its own answer",
       "upstream requests %d\n%s" % (n_up, c.summary(res)))

# --- an upstream error is not served to waiters as a cached answer ---------
# Concurrent misses while the upstream fails: every client gets an answer
# (no hang), none is a 200 made up by lcgate, and nothing is stored.
mock.reset()
mock.fault(delay_ms=500, status=503, match="?limit=31", count=-1)
res, _ = c.concurrent([(g.port, V1 + "?limit=31", None)] * 10, timeout=10)
c.clear_fault(mock)
tap.ok(all(r.status == 503 for r in res),
       "concurrent misses during an upstream 503: every client gets the 503, none hangs",
       c.summary(res))
r = c.get(g.port, V1 + "?limit=31")
tap.ok(r.status == 200 and c.xc(r) == "MISS", "and the error was not stored", r)
tap.done(env)
