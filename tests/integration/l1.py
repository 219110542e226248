"""The in-process L1 in front of Redis (`l1_ttl`).

- Hits within l1_ttl are answered without a Redis round trip (Redis counts
  no MGET for them); with `l1_ttl = 0s` every hit is one MGET.
- A write through another instance is seen at once (its invalidation event
  is read before an L1 hit is served, and the write is answered only after
  the event went out).
- When the event subscription is interrupted (events may have been lost),
  the L1 is dropped: an invalidation whose event never came still shows.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import faults_lib as fl  # noqa: E402
import lcgtest as t  # noqa: E402

V1, V2 = c.V1, c.V2
WORKERS = int(os.environ.get("LCGATE_TEST_WORKERS") or 1)
tap = t.Tap()
env = t.Env("lcgate-l1")
mock = env.mock()
redis = env.redis()


def mgets():
    for line in fl.redis_cmd(redis.port, "INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_mget:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def wait_subscribed(g):
    """Until the gate's event subscription is live (its L1 is usable)."""
    def live():
        n = fl.redis_cmd(redis.port, "PUBSUB", "NUMSUB", "lcg:1:events")
        return isinstance(n, list) and int(n[1]) >= 1
    t.wait_for(live, 10, "event subscription")


conf = c.gate_conf(mock, cache=c.redis_cache(redis, l1_ttl="30s"))
ga = c.start_gate(tap, env, conf, name="lcgate-a")
gb = c.start_gate(tap, env, conf, name="lcgate-b")
g0 = c.start_gate(tap, env, c.gate_conf(mock, cache=c.redis_cache(redis, l1_ttl="0s")),
                  name="lcgate-nol1")

if ga and gb and g0:
    wait_subscribed(ga)
    path = V1 + "?limit=7"
    first = c.get(ga.port, path)
    before, l1_before = mgets(), fl.metric(ga, "lcgate_l1_hits_total") or 0
    hits = [c.get(ga.port, path) for _ in range(50)]
    after, l1_after = mgets(), fl.metric(ga, "lcgate_l1_hits_total") or 0
    tap.ok(first.status == 200 and all(h.status == 200 and c.xc(h) == "HIT" and
                                       h.body == first.body for h in hits),
           "L1: 50 hits after the miss, all HIT with the stored body", c.summary(hits))
    # With workers, each worker keeps an L1 of its own: its first hit of the
    # key is its one MGET.
    warm = 0 if WORKERS <= 1 else WORKERS
    tap.ok(after - before <= warm,
           "L1: the 50 hits sent no MGET to Redis beyond one per worker's L1 (%d, at most %d)"
           % (after - before, warm))
    tap.ok(50 - warm <= l1_after - l1_before <= 50,
           "L1: lcgate_l1_hits_total counts the 50 (less one per worker's L1): %d"
           % (l1_after - l1_before))

    path0 = V1 + "?limit=8"
    c.get(g0.port, path0)
    before = mgets()
    hits = [c.get(g0.port, path0) for _ in range(20)]
    tap.ok(all(c.xc(h) == "HIT" for h in hits) and mgets() - before == 20,
           "l1_ttl = 0s: each of 20 hits is one MGET (%d)" % (mgets() - before))

    # A write through B: A's L1 copy of the list must not be served after.
    wait_subscribed(gb)
    for _ in range(3):
        c.get(ga.port, path)      # in A's L1
    w = c.create_via(gb.port, "v1")
    new_id = (c.js(w) or {}).get("id", "no-id")
    r = c.get(ga.port, path)
    tap.ok(w.status == 200 and r.status == 200 and c.xc(r) == "MISS" and new_id in c.ids(r),
           "L1: right after a create through B, A's list is a MISS with the new job",
           (w.status, r.status, c.xc(r), new_id))

    # An invalidation whose event is lost: the generation moves in Redis
    # directly, and A's subscription is cut (as by a Redis failover).
    path2 = V1 + "?limit=9"
    c.get(ga.port, path2)
    tap.eq(c.xc(c.get(ga.port, path2)), "HIT", "L1: a second list is cached in A's L1")
    fl.redis_cmd(redis.port, "SET", "lcg:1:gen:all", "4242424242", "PX", "600000")
    fl.redis_cmd(redis.port, "CLIENT", "KILL", "TYPE", "pubsub")
    r = c.get(ga.port, path2)
    tap.ok(r.status == 200 and c.xc(r) == "MISS",
           "L1: after the event subscription was cut, the L1 is not trusted: the "
           "invalidated list is a MISS", (r.status, c.xc(r)))
    wait_subscribed(ga)
    # With workers, each subscribes again by itself and warms its own L1 with
    # one MGET: rounds of 10 (on new connections, spread over the workers)
    # until one sends none, within 5 s.
    deadline, rounds = time.monotonic() + 5, []
    while True:
        before = mgets()
        xs = [c.xc(c.get(ga.port, path2)) for _ in range(10 if WORKERS > 1 else 1)]
        rounds.append(mgets() - before)
        if (xs == ["HIT"] * len(xs) and rounds[-1] == 0) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    tap.ok(xs == ["HIT"] * len(xs) and rounds[-1] == 0,
           "L1: once subscribed again, hits come from the L1 again (MGETs by round: %s)"
           % rounds, xs)
tap.done(env)
