"""A reload while Redis lookups are in flight (the soak found this one).

Redis is made to sleep (DEBUG SLEEP) so that list requests (misses) wait
for their lookups; lcgate reloads its configuration meanwhile, which frees the old
one (and its copy of the API key). When Redis answers, every request must
still be answered with the upstream's body, and lcgate must exit cleanly
with no AddressSanitizer report: nothing a request waits with may point
into a configuration that a reload freed.
"""
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import faults_lib as fl  # noqa: E402
import lcgtest as t  # noqa: E402

V1 = c.V1
tap = t.Tap()
env = t.Env("lcgate-reload-redis")
mock = env.mock()
redis = env.redis(extra=["--enable-debug-command", "yes"])
g = c.start_gate(tap, env, c.gate_conf(mock, cache=c.redis_cache(redis, l1_ttl="0s",
                                                                  redis_timeout="2s")),
                 name="lcgate-reload-redis")
if g:
    # Misses: a request that finds no entry copies its credential into the
    # fetch it starts, after its lookup.
    rounds = [[V1 + "?limit=%d&offset=%d" % (n, 10 * rnd) for n in range(3, 9)]
              for rnd in range(5)]
    expected = {p: mock.get(p).body for paths in rounds for p in paths}
    bad = []
    total = 0
    for rnd, paths in enumerate(rounds):
        sleeper = threading.Thread(target=fl.redis_cmd,
                                   args=(redis.port, "DEBUG", "SLEEP", "0.4"),
                                   kwargs={"timeout": 5}, daemon=True)
        sleeper.start()
        time.sleep(0.05)
        jobs = [(g.port, p, None) for p in paths] * 2
        res = {}

        def hup():
            time.sleep(0.15)          # the lookups are waiting for Redis
            os.kill(g.proc.pid, signal.SIGHUP)
        res, _ = c.concurrent(jobs, timeout=10, start=hup)
        sleeper.join(5)
        for (port, p, _), r in zip(jobs, res):
            total += 1
            if r.status != 200 or r.body != expected[p]:
                bad.append((rnd, p, r.status, r.body[:120]))
    tap.ok(total == 60 and not bad,
           "5 reloads while 12 Redis lookups (misses) waited each: all %d answered 200 "
           "with the upstream's body" % total, bad[:5])
    tap.ok(g.proc.poll() is None, "lcgate is still running", g.log()[-3000:])
tap.done(env)
