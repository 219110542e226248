"""The client budget shared through Redis by two lcgate instances.

Issue 5, done when (first bullet):
- "With rate = 10/s, burst = 5, 2 instances sharing Redis and 4 clients
  hammering one project for 10 s: admitted requests are within 5% of
  10 x 10 + 5, and every other answer is a 429 with correct Retry-After,
  retry-after-ms and RateLimit headers. A second project is unaffected."

Setup: [cache] store = redis on one redis-server, [ratelimit] rate = 10/s,
burst = 5 (the upstream budget is kept out of the way). Four client
threads, two per instance, each on its own keep-alive connection, ask one
cached list of project A as fast as they can for 10 s; a fifth thread asks
project B's list at 5/s (under its own 10/s), alternating the instances.

Then the fifth bullet: "Redis killed mid-run: limits keep applying per
instance from memory, no client 5xx; when Redis returns, the shared budget
is used again."
"""
import math
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import lcgtest as t  # noqa: E402
import ratelimit_lib as rlib  # noqa: E402

V1 = c.V1
RATE, BURST, SECONDS = 10, 5, 10.0
WANT = RATE * SECONDS + BURST  # 105
A, B = t.PROJ_A, t.PROJ_B

tap = t.Tap()
env = t.Env("lcgate-rl-redis")
mock = env.mock()
redis = env.redis()
conf = c.gate_conf(mock, cache=c.redis_cache(redis, ttl="60s", redis_timeout="200ms"),
                   ratelimit=rlib.limits("%d/s" % RATE, BURST))
ga = c.start_gate(tap, env, conf, name="lcgate-a")
gb = c.start_gate(tap, env, conf, name="lcgate-b")

path_a = V1 + "?project_id=%s&limit=5" % A
path_b = V1 + "?project_id=%s&limit=5" % B

if ga and gb:
    wa, wb = c.get(ga.port, path_a), c.get(gb.port, path_b)
    tap.ok(wa.status == 200 and wb.status == 200,
           "the lists of projects A and B are fetched and cached first", (wa, wb))
    time.sleep(1.0)  # both budgets are full again (5 tokens at 10/s: 0.5 s)


if (ga and gb and rlib.running(tap, ga, "the 10 s hammer")
        and rlib.running(tap, gb, "the 10 s hammer")):
    start = time.monotonic()
    until = start + SECONDS

    def b_worker():
        """Project B at 5/s, alternating the instances."""
        conns = [rlib.Conn(ga.port), rlib.Conn(gb.port)]
        out = []
        i = 0
        while time.monotonic() < until:
            r = conns[i % 2].get(path_b)
            r.gate = "ab"[i % 2]
            out.append(r)
            i += 1
            rlib.sleep_until(min(until, r.t0 + 1.0 / (RATE / 2)))
        for cn in conns:
            cn.close()
        return out

    workers = [rlib.loop_until(g.port, lambda i: path_a, until)
               for g in (ga, ga, gb, gb)] + [b_worker]
    results, alive = rlib.run_threads(workers, until + 20)
    tap.ok(not any(alive), "every client thread finished by its deadline", alive)
    results = [r or [] for r in results]
    for k, g in enumerate("aabb"):
        for r in results[k]:
            r.gate = g
    ans_a = [r for k in range(4) for r in results[k]]
    ans_b = results[4]

    admitted = [r for r in ans_a if r.status == 200]
    refused = [r for r in ans_a if r.status == 429]
    span = (max(r.t1 for r in ans_a) - min(r.t0 for r in ans_a)) if ans_a else 0.0
    tap.diag("admitted %d of %d (want %d +/- 5%%: %.2f..%.2f; from the measured span "
             "%.3f s: %.1f)" % (len(admitted), len(ans_a), WANT, WANT * 0.95, WANT * 1.05,
                                span, BURST + RATE * span))
    tap.diag("admitted by instance a: %d, b: %d; answers by instance a: %d, b: %d"
             % (sum(r.gate == "a" for r in admitted), sum(r.gate == "b" for r in admitted),
                sum(r.gate == "a" for r in ans_a), sum(r.gate == "b" for r in ans_a)))
    per_s = [0] * int(math.ceil(SECONDS))
    for r in admitted:
        per_s[min(len(per_s) - 1, max(0, int(r.t0 - start)))] += 1
    tap.diag("admitted per second: %s" % per_s)

    tap.ok(len(ans_a) >= 10 * WANT,
           "the 4 clients did hammer project A (%d requests in %.1f s)" % (len(ans_a), span))
    others = [r for r in ans_a if r.status not in (200, 429)]
    tap.ok(not others, "project A: every answer is a 200 or a 429 (no error, no 5xx)",
           c.summary(others))
    tap.ok(abs(len(admitted) - WANT) <= 0.05 * WANT,
           "project A: admitted %d, within 5%% of 10 x 10 + 5 = %d, across two instances"
           % (len(admitted), WANT),
           "admitted by instance a: %d, b: %d (separate budgets would give ~%d)"
           % (sum(r.gate == "a" for r in admitted), sum(r.gate == "b" for r in admitted),
              2 * WANT))
    tap.ok(bool(admitted) and all(c.xc(r) == "HIT" for r in admitted),
           "project A: the admitted answers were cache hits (hits spend the client budget)",
           c.summary(admitted))
    # At 10/s a refused request waits at most one interval (100 ms) for the
    # next token; 10 ms of slack for rounding. t is at most ceil(5 / 10) = 1.
    checks = [(r, rlib.problems_429(r, A, q=BURST, w=1, max_ms=110, t_max=1)) for r in refused]
    tap.ok(bool(refused) and not any(p for _, p in checks),
           "project A: every 429 has the contract's body, Retry-After = ceil(retry-after-ms"
           "/1000) >= 1, 0 < retry-after-ms <= 110, RateLimit-Policy \"project\";q=5;w=1 "
           "and RateLimit r=0;t=1 (%d 429s)" % len(refused), rlib.first_problems(checks))
    checks = [(r, rlib.problems_headers(r, BURST, 1, BURST, 1)) for r in admitted]
    tap.ok(bool(admitted) and not any(p for _, p in checks),
           "project A: every 200 has RateLimit-Policy \"project\";q=5;w=1 and RateLimit "
           "r in 0..4, t in 0..1", rlib.first_problems(checks))
    ms = [rlib.int_header(r, "retry-after-ms") for r in refused]
    ms = [m for m in ms if m is not None]
    if ms:
        tap.diag("retry-after-ms on the 429s: min %d, max %d" % (min(ms), max(ms)))

    tap.ok(len(ans_b) >= int(SECONDS * RATE / 2) - 3,
           "project B was asked at 5/s meanwhile (%d requests)" % len(ans_b))
    tap.ok(bool(ans_b) and all(r.status == 200 for r in ans_b),
           "project B, under its own limit, got only 200s while A was hammered",
           c.summary([r for r in ans_b if r.status != 200]))
    checks = [(r, rlib.problems_headers(r, BURST, 1, BURST, 1)) for r in ans_b]
    tap.ok(bool(ans_b) and not any(p for _, p in checks),
           "project B: its answers carry its own RateLimit-Policy and RateLimit",
           rlib.first_problems(checks))
    tap.diag("upstream requests during the run: %d (hits only)" % (mock.count() - 2))


# --- Redis killed mid-run, then back --------------------------------------------
# Issue 5, done when: "Redis killed mid-run: limits keep applying per instance
# from memory, no client 5xx; when Redis returns, the shared budget is used
# again."  Two fresh projects: C while Redis is down, D once it is back; two
# client threads per instance, as fast as they can, for 3 s each.
PHASE = 3.0
PER = BURST + RATE * PHASE  # 35: one instance's own budget over the phase


def two_hammer(pid):
    path = V1 + "?project_id=%s&limit=5" % pid
    until = time.monotonic() + PHASE
    res, alive = rlib.run_threads([rlib.loop_until(g.port, lambda i: path, until)
                                  for g in (ga, gb, ga, gb)], until + 20)
    res = [r or [] for r in res]
    return [res[0] + res[2], res[1] + res[3]], alive


def figures(res):
    return ", ".join("instance %s: %d admitted of %d" % (n, sum(r.status == 200 for r in rs),
                                                          len(rs))
                     for n, rs in zip("ab", res))


if rlib.running(tap, ga, "the Redis outage") and rlib.running(tap, gb, "the Redis outage"):
    C, D = rlib.project("rr-down"), rlib.project("rr-back")
    log_at = [len(ga.log()), len(gb.log())]
    env.stop(redis, sig=9)
    tap.diag("redis-server killed")
    res, alive = two_hammer(C)
    tap.diag("Redis down, project C: " + figures(res))
    allr = res[0] + res[1]
    tap.ok(not any(alive) and allr and all(r.status in (200, 429) for r in allr),
           "redis down: every answer is a 200 or a 429: no 5xx, no failed request",
           c.summary([r for r in allr if r.status not in (200, 429)]))
    for n, rs in zip("ab", res):
        adm = sum(r.status == 200 for r in rs)
        tap.ok(len(rs) >= 2 * PER and 0.85 * PER <= adm <= 1.1 * PER + 1,
               "redis down: instance %s applies the limit from memory: %d admitted of %d in "
               "%.0f s (want %d +/- 10%%: its own 5 + 10/s)" % (n, adm, len(rs), PHASE, PER))
    checks = [(r, rlib.problems_429(r, C, q=BURST, w=1, max_ms=110, t_max=1))
              for r in allr if r.status == 429]
    tap.ok(bool(checks) and not any(p for _, p in checks),
           "redis down: the 429s are still the contract's", rlib.first_problems(checks))
    # "logged once per outage": one warning or error about rate limiting per
    # instance, however many requests were limited from memory.
    for n, g, at in (("a", ga, log_at[0]), ("b", gb, log_at[1])):
        lines = [ln for ln in g.log()[at:].splitlines()
                 if re.search(r"rate.?limit", ln, re.I) and re.search(r"\[(warn|error)\]", ln)]
        tap.ok(len(lines) == 1, "redis down: instance %s logged the rate-limit fallback once "
               "(%d lines)" % (n, len(lines)), "\n".join(lines[:5]))

    back = env.spawn(["redis-server", "--bind", "127.0.0.1", "--port", str(redis.port),
                      "--save", "", "--appendonly", "no", "--daemonize", "no",
                      "--dir", env.dir], "redis-back")

    def store_ok(g):
        return t.request(g.admin, "GET", "/readyz", timeout=2).json().get("store_state") == "ok"
    try:
        t.wait_for(lambda: store_ok(ga) and store_ok(gb), 15, "both lcgate back on Redis")
        up = True
    except TimeoutError as e:
        up = False
        tap.ok(False, "redis back: both instances report store_state ok within 15 s", e)
    if up:
        time.sleep(0.5)
        res, alive = two_hammer(D)
        tap.diag("Redis back, project D: " + figures(res))
        allr = res[0] + res[1]
        adm = sum(r.status == 200 for r in allr)
        tap.ok(not any(alive) and all(r.status in (200, 429) for r in allr),
               "redis back: every answer is a 200 or a 429",
               c.summary([r for r in allr if r.status not in (200, 429)]))
        tap.ok(len(allr) >= 4 * PER and 0.9 * PER <= adm <= 1.1 * PER,
               "redis back: the two instances share one budget again: %d admitted of %d in "
               "%.0f s (want %d +/- 10%%, not twice that)" % (adm, len(allr), PHASE, PER),
               figures(res))

tap.done(env)
