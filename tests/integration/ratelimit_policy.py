"""RateLimit-Policy states the budget as its burst over the window in which
the rate refills it: q = burst, w = ceil(burst * window / count), at least
1, so that RateLimit's r (at most burst - 1) never exceeds q (issue 12).

Config: [ratelimit] rate = 20/s, burst = 40 (-> q=40;w=2); [project S]
rate = 1/min, burst = 3 (-> q=3;w=180)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import lcgtest as t  # noqa: E402
import ratelimit_lib as rlib  # noqa: E402

tap = t.Tap()
env = t.Env("lcgate-rl-policy")
mock = env.mock()
S = rlib.project("policy-slow")
conf = c.gate_conf(mock, ratelimit=rlib.limits("20/s", 40))
conf[rlib.proj_section(S)] = {"rate": "1/min", "burst": "3"}
g = c.start_gate(tap, env, conf)
if g:
    fast = [g.get(c.V1 + "?limit=2") for _ in range(3)]
    tap.ok(all(r.status == 200 and r.header("ratelimit-policy") == '"project";q=40;w=2'
               for r in fast),
           'rate 20/s, burst 40: RateLimit-Policy: "project";q=40;w=2',
           [rlib.hdrs(r) for r in fast])
    tap.ok(all(rlib.ratelimit(r) and rlib.ratelimit(r)[0] <= 40 for r in fast)
           and rlib.ratelimit(fast[0])[0] == 39,
           "a fresh budget says r=39 first, never more than q=40",
           [r.header("ratelimit") for r in fast])
    slow = [g.get(c.V1 + "?limit=2&project_id=" + S) for _ in range(4)]
    tap.ok(all(r.header("ratelimit-policy") == '"project";q=3;w=180' for r in slow),
           'rate 1/min, burst 3: RateLimit-Policy: "project";q=3;w=180 (200s and the 429)',
           [rlib.hdrs(r) for r in slow])
    tap.ok([r.status for r in slow] == [200, 200, 200, 429]
           and [rlib.ratelimit(r)[0] for r in slow] == [2, 1, 0, 0],
           "and its burst of 3 counts r=2, 1, 0, then 429 with r=0",
           [(r.status, r.header("ratelimit")) for r in slow])
tap.done(env)
