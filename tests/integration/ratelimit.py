"""The client budget with the memory store, one instance (issue 5, in
scope 1, 3 and 4; the SIGHUP part of 1).

- GCRA arithmetic: a fresh budget admits `burst` requests at once, then
  `rate`; RateLimit r counts down from burst - 1; the 429 body is exactly
  the contract's, with Retry-After = ceil(retry-after-ms / 1000).
- RateLimit-Policy q = burst, w = ceil(burst * window / count) (at least
  1) from the configured rate (N/s, N/min, N/h) and burst, and a
  [project "id"] override of rate and burst.
- Cache hits and pass-through requests spend the client budget; an error
  answer after admission carries the headers too.
- The project is project_id (v1 canonicalizes UUIDs to lowercase), else
  "default".
- SIGHUP: a reload that keeps the limits keeps the spent state; one that
  raises them lets requests through at once.
- Done-when bullet 3: the official TypeScript SDK, 30 list calls with its
  default retries through a gateway limited to 5/s burst 1.

Config: [ratelimit] rate = 10/s, burst = 5; [project B] rate = 120/min,
burst = 3; [project H] rate = 7200/h, burst = 2; [project P] rate = 6/min,
burst = 5 and the same for [project U] (pass-through answers and misses take
tens of ms, so a slow rate keeps refills out of the count); the upstream
budget is kept out of the way. Each part uses its own project, so a fresh
budget.
"""
import copy
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import lcgtest as t  # noqa: E402
import ratelimit_lib as rlib  # noqa: E402

V1 = c.V1
tap = t.Tap()
env = t.Env("lcgate-rl")
mock = env.mock()

A, B, H, U = rlib.project("rl-a"), rlib.project("rl-b"), rlib.project("rl-h"), rlib.project("rl-u")
P, E = rlib.project("rl-pass"), rlib.project("rl-err")
conf = c.gate_conf(mock, cache={"ttl": "60s"}, ratelimit=rlib.limits("10/s", 5))
conf[rlib.proj_section(B)] = {"rate": "120/min", "burst": "3"}
conf[rlib.proj_section(H)] = {"rate": "7200/h", "burst": "2"}
# Pass-through answers take tens of ms: a slow rate keeps refills out of the count.
conf[rlib.proj_section(P)] = {"rate": "6/min", "burst": "5"}
conf[rlib.proj_section(U)] = {"rate": "6/min", "burst": "5"}
g = c.start_gate(tap, env, conf, name="lcgate-rl")


def lst(pid=None, limit=5):
    return V1 + "?" + ("project_id=%s&" % pid if pid else "") + "limit=%d" % limit


def elapsed_ms(a, b):
    return (b.t1 - a.t0) * 1000.0


def part_default(conn):
    # --- requests without project_id: project "default" -------------------
    # (first, while nothing else has touched the key's default project). The
    # list is fetched first, and the budget left to refill, so that the six
    # requests are quick hits.
    conn.get(lst(None, 6))
    time.sleep(0.6)
    d = [conn.get(lst(None, 6)) for _ in range(6)]
    tap.eq([r.status for r in d], [200] * 5 + [429],
           "no project_id: the key's default project has the [ratelimit] budget (5 then 429)")
    p = rlib.problems_429(d[5], "default", q=5, w=1, max_ms=105, t_max=1)
    tap.ok(not p, 'no project_id: the 429 says "Rate limit exceeded for project default"',
           "%s\n%s" % (p, rlib.hdrs(d[5])))


def part_burst_steady(conn):
    # --- burst, then the steady rate (project A, a cached list) -------------
    # The list is fetched first and the budget left to refill (0.5 s), so
    # that the burst is six quick hits.
    w = conn.get(lst(A))
    time.sleep(0.6)
    mock.reset()
    first = [conn.get(lst(A)) for _ in range(6)]
    tap.eq([w.status] + [r.status for r in first], [200] * 6 + [429],
           "A: a full budget admits the burst of 5 at once; the 6th request is 429")
    tap.eq([rlib.ratelimit(r) for r in first[:5]], [(4, 1), (3, 1), (2, 1), (1, 1), (0, 1)],
           "A: RateLimit on the 200s counts down r=4..0 (burst - 1 first), t=1")
    tap.ok(all(rlib.policy(r) == (5, 1) for r in first),
           'A: every answer, 200 and 429, has RateLimit-Policy: "project";q=5;w=1',
           [r.header("ratelimit-policy") for r in first])
    tap.ok(all(c.xc(r) == "HIT" for r in first[:5]) and c.upstream_gets(mock, V1) == 0,
           "A: cache hits spend the client budget (5 hits admitted, then 429)",
           ([c.xc(r) for r in first], c.upstream_gets(mock, V1)))
    el = elapsed_ms(first[0], first[5])
    p = rlib.problems_429(first[5], A, q=5, w=1, max_ms=105, min_ms=int(100 - el - 5),
                         t_max=1)
    tap.ok(not p, "A: the 429: body exactly {\"detail\":\"Rate limit exceeded for project "
           "%s\"}, Retry-After: 1, retry-after-ms = 100 - elapsed (%d..105), RateLimit "
           "r=0;t=1" % (A, int(100 - el - 5)), "%s\n%s" % (p, rlib.hdrs(first[5])))
    want = ('{"detail":"Rate limit exceeded for project %s"}' % A).encode()
    tap.ok(first[5].body == want, "A: the 429 body is byte for byte %s" % want.decode(),
           first[5].body)

    # Steady: one request every 10 ms for 2 s right after the burst.
    s0 = time.monotonic()
    steady = []
    while time.monotonic() < s0 + 2.0:
        steady.append(conn.get(lst(A)))
        time.sleep(0.01)
    adm = [r for r in steady if r.status == 200]
    ref = [r for r in steady if r.status != 200]
    gaps = [round((b.t0 - a.t0) * 1000) for a, b in zip(adm, adm[1:])]
    tap.diag("steady: %d admitted of %d in 2.0 s; ms between admitted: %s"
             % (len(adm), len(steady), gaps))
    tap.ok(18 <= len(adm) <= 22,
           "A: after the burst, the steady rate: %d admitted in 2.0 s at 10/s (want 20 +/- 2)"
           % len(adm))
    checks = [(r, rlib.problems_429(r, A, q=5, w=1, max_ms=105, t_max=1)) for r in ref]
    tap.ok(bool(ref) and not any(p for _, p in checks),
           "A: steady: every refused answer is a correct 429 (retry-after-ms <= 105)",
           rlib.first_problems(checks))
    tap.ok(bool(adm) and all(rlib.ratelimit(r) == (0, 1) for r in adm),
           "A: steady: each admitted answer says r=0;t=1 (it took the token just refilled)",
           [r.header("ratelimit") for r in adm if rlib.ratelimit(r) != (0, 1)][:5])


def part_override(conn):
    # --- a [project] override of rate and burst ------------------------------
    rb = [conn.get(lst(B)) for _ in range(4)]
    tap.eq([r.status for r in rb], [200, 200, 200, 429],
           "B ([project] rate = 120/min, burst = 3): 3 admitted, then 429")
    tap.ok(all(rlib.policy(r) == (3, 2) for r in rb),
           'B: RateLimit-Policy: "project";q=3;w=2', [r.header("ratelimit-policy") for r in rb])
    tap.eq([rlib.ratelimit(r) for r in rb[:3]], [(2, 1), (1, 1), (0, 2)],
           "B: RateLimit r=2,1,0 and t = seconds until full, rounded up (0.5, 1.0, 1.5 s)")
    el = elapsed_ms(rb[0], rb[3])
    p = rlib.problems_429(rb[3], B, q=3, w=2, max_ms=505, min_ms=int(500 - el - 5), t_max=2)
    tap.ok(not p, "B: the 429 waits one interval of the override: retry-after-ms %d..505, "
           "Retry-After: 1, body names B" % int(500 - el - 5), "%s\n%s" % (p, rlib.hdrs(rb[3])))
    rh = conn.get(lst(H))
    tap.ok(rh.status == 200 and rlib.policy(rh) == (2, 1) and rlib.ratelimit(rh) == (1, 1),
           'H (rate = 7200/h, burst = 2): "project";q=2;w=1 and "project";r=1;t=1',
           rlib.hdrs(rh))


def part_uppercase(conn):
    # --- v1 canonicalizes the UUID: the uppercase spelling is the same project
    ru = [conn.get(lst(U)) for _ in range(5)]
    up = conn.get(lst(U.upper()))
    tap.ok([r.status for r in ru] == [200] * 5 and up.status == 429,
           "U: after its burst with project_id in lowercase, the UPPERCASE spelling is 429 "
           "(the same project)", ([r.status for r in ru], rlib.hdrs(up)))
    tap.ok(c.js(up) == {"detail": "Rate limit exceeded for project " + U},
           "U: that 429 names the canonical (lowercase) project id", up.body)


def part_passthrough(conn):
    # --- pass-through requests spend it too ----------------------------------
    mock.reset()
    pt = []
    body = json.dumps({"directory_id": "dir-rl", "job_type": "parse"}).encode()
    jh = {"Content-Type": "application/json"}
    for _ in range(3):
        pt.append(conn.req("POST", V1 + "?project_id=" + P, headers=jh, body=body))
    job = (c.js(pt[0]) or {}).get("id", "none")
    for _ in range(2):
        pt.append(conn.get(V1 + "/%s?project_id=%s" % (job, P)))
    after_list = conn.get(lst(P))
    after_post = conn.req("POST", V1 + "?project_id=" + P, headers=jh, body=body)
    n_up = mock.count()
    tap.eq([r.status for r in pt] + [after_list.status, after_post.status],
           [200] * 5 + [429, 429],
           "P: 3 pass-through POSTs and 2 pass-through GETs spend the burst of 5: the next "
           "list query and the next POST are 429")
    tap.eq([rlib.ratelimit(r) for r in pt], [(4, 10), (3, 20), (2, 30), (1, 40), (0, 50)],
           "P: the pass-through answers carry RateLimit r=4..0, t=10..50 (6/min: 10 s a token)")
    tap.ok(all(rlib.policy(r) == (5, 50) for r in pt),
           'P: and RateLimit-Policy "project";q=5;w=50', [r.header("ratelimit-policy") for r in pt])
    tap.eq(n_up, 5, "P: the refused list query and POST never reached the upstream")
    el = elapsed_ms(pt[0], after_post)
    p = rlib.problems_429(after_post, P, q=5, w=50, max_ms=10005, min_ms=int(10000 - el - 5),
                         t_max=50)
    tap.ok(not p, "P: the refused POST is the contract's 429 (Retry-After: 10, retry-after-ms "
           "= 10000 - elapsed)", "%s\n%s" % (p, rlib.hdrs(after_post)))


def part_error_headers(conn):
    # --- an error answer after admission carries the headers -----------------
    re_ = conn.get(V1 + "/no-such-job?project_id=" + E)
    tap.ok(re_.status == 404 and rlib.policy(re_) == (5, 1) and rlib.ratelimit(re_) == (4, 1),
           "E: the upstream's 404 to an admitted request carries RateLimit-Policy and "
           "RateLimit r=4;t=1", rlib.hdrs(re_))


PARTS = [
    ("requests without project_id (project default)", part_default),
    ("A: burst, then the steady rate", part_burst_steady),
    ("B and H: [project] overrides", part_override),
    ("U: an uppercase project_id", part_uppercase),
    ("P: pass-through requests spend the budget", part_passthrough),
    ("E: an error answer after admission", part_error_headers),
]
if g:
    conn = rlib.Conn(g.port)
    for what, fn in PARTS:
        if rlib.running(tap, g, what):
            fn(conn)
    conn.close()

# --- SIGHUP: limits change, state stays ---------------------------------------
D, X = rlib.project("rl-hup-d"), rlib.project("rl-hup-x")
conf2 = c.gate_conf(mock, cache={"ttl": "60s"}, ratelimit=rlib.limits("1/s", 2))
g2 = c.start_gate(tap, env, conf2, name="lcgate-hup")


def hup(conn):
    pd, px = lst(D), lst(X)
    s = [conn.get(pd) for _ in range(3)]
    tap.eq([r.status for r in s], [200, 200, 429],
           "hup: rate = 1/s, burst = 2: D spends its burst, the 3rd request is 429")
    if not rlib.running(tap, g2, "hup: the first SIGHUP"):
        return
    # Reload 1: D's limits unchanged; X gets an override, which shows that the
    # reload is in effect.
    conf2b = copy.deepcopy(conf2)
    conf2b[rlib.proj_section(X)] = {"rate": "50/s", "burst": "7"}
    sent = rlib.reload(g2, conf2b)
    deadline = min(sent + 0.5, s[0].t0 + 0.85)  # before D's next token (at 1.0 s)
    seen = r = None
    while time.monotonic() < deadline:
        r = conn.get(px)
        if rlib.policy(r) == (7, 1):
            seen = r
            break
        time.sleep(0.02)
    tap.ok(seen is not None and seen.status == 200,
           "hup: a SIGHUP that adds [project X] rate = 50/s takes effect within %.2f s "
           "(X's answers say q=7)" % (deadline - sent), rlib.hdrs(r) if r else "no request")
    if not rlib.running(tap, g2, "hup: D after the first SIGHUP"):
        return
    r = conn.get(pd)
    lo = (s[0].t0 + 1.0 - r.t1) * 1000 - 10
    hi = (s[0].t1 + 1.0 - r.t0) * 1000 + 10
    ms = rlib.int_header(r, "retry-after-ms")
    tap.ok(r.status == 429 and r.t1 < s[0].t0 + 1.0 and ms is not None and lo <= ms <= hi,
           "hup: a reload that keeps D's limits keeps its spent state: still 429, "
           "retry-after-ms %s within %d..%d (the same wait as before the reload)"
           % (ms, lo, hi), rlib.hdrs(r))
    # Reload 2: rate = 100/s, burst = 200.
    conf2c = copy.deepcopy(conf2b)
    conf2c["ratelimit"].update({"rate": "100/s", "burst": "200"})
    sent = rlib.reload(g2, conf2c)
    ok_r = None
    tries = []
    while time.monotonic() < sent + 0.5:
        r = conn.get(pd)
        tries.append(r)
        if r.status == 200:
            ok_r = r
            break
        time.sleep(0.02)
    tap.ok(ok_r is not None and rlib.policy(ok_r) == (200, 2),
           "hup: after a SIGHUP raising the limits to 100/s burst 200, D is admitted again "
           "within 0.5 s, with RateLimit-Policy q=200;w=2",
           c.summary(tries) + "\n" + (rlib.hdrs(tries[-1]) if tries else ""))
    if not rlib.running(tap, g2, "hup: D after the second SIGHUP"):
        return
    # Then 0.3 s of back-to-back requests: at 100/s at least 20 get through
    # whatever the carried-over state (1/s would allow at most one), and a
    # refused one waits at most one new interval (10 ms).
    more = []
    t_more = time.monotonic()
    while time.monotonic() < t_more + 0.3:
        more.append(conn.get(pd))
        time.sleep(0.002)
    adm = [r for r in more if r.status == 200]
    checks = [(r, rlib.problems_429(r, D, q=200, w=2, max_ms=15, t_max=2))
              for r in more if r.status != 200]
    tap.ok(len(adm) >= 20 and not any(p for _, p in checks),
           "hup: then 0.3 s of back-to-back requests: %d admitted (>= 20 at the new 100/s; "
           "the old 1/s would allow 1), every 429 says retry-after-ms <= 15" % len(adm),
           c.summary(more) + "\n" + rlib.first_problems(checks))
    if rlib.running(tap, g2, "the end of the SIGHUP checks"):
        tap.ok(True, "hup: lcgate is still running after two reloads")


if rlib.running(tap, g2, "the SIGHUP checks"):
    conn = rlib.Conn(g2.port)
    hup(conn)
    conn.close()

# --- the official TypeScript SDK honours the 429s -----------------------------
# Issue 5, done when: "The official TypeScript SDK (2.13.0) with its default
# retries, making 30 list calls through a gateway limited to 5/s burst 1,
# completes all 30 without error, and its calls are spread as the headers
# asked."
N_SDK = 30
g3 = c.start_gate(tap, env, c.gate_conf(mock, cache={"ttl": "60s"},
                                        ratelimit=rlib.limits("5/s", 1)), name="lcgate-sdk")
sdk = c.sdk_dir(tap) if g3 else None
if sdk and rlib.running(tap, g3, "the SDK's 30 calls"):
    rc, out, err = rlib.sdk_calls(sdk, "http://127.0.0.1:%d" % g3.port, N_SDK,
                                 {"project_id": rlib.project("rl-sdk")})
    tap.ok(rc == 0 and out is not None, "sdk: the script ran (30 list calls, default retries)",
           (rc, err))
    calls = (out or {}).get("calls", [])
    att = (out or {}).get("attempts", [])
    tap.ok(len(calls) == N_SDK and all(x.get("ok") for x in calls),
           "sdk: all %d calls completed without error" % N_SDK,
           [x.get("error") for x in calls if not x.get("ok")][:3])
    st = [a.get("status") for a in att]
    tap.ok(st.count(200) == N_SDK and all(x in (200, 429) for x in st),
           "sdk: %d attempts: %d answered 200, the other %d were 429s"
           % (len(att), st.count(200), len(att) - st.count(200)),
           [a for a in att if a.get("status") not in (200, 429)][:3])
    early = []
    for a, nxt in zip(att, att[1:]):
        if a.get("status") == 429:
            ms = a.get("retry_after_ms")
            want = float(ms) if ms is not None else None
            if want is None or nxt["start"] - a["end"] < want - 2:
                early.append((a, nxt["start"] - a["end"]))
    tap.ok(not early and st.count(429) >= 1,
           "sdk: after every 429 the SDK waited the retry-after-ms it was given", early[:3])
    ok_t = [a["start"] for a in att if a.get("status") == 200]
    gaps = [b - a for a, b in zip(ok_t, ok_t[1:])]
    total = (calls[-1]["end"] - calls[0]["start"]) / 1000.0 if calls else 0
    per_call = {}
    for a in att:
        k = sum(1 for x in calls if x["start"] <= a["start"])
        per_call[k] = per_call.get(k, 0) + 1
    tap.diag("sdk: %.2f s for %d calls; ms between admitted attempts: min %.0f, max %.0f; "
             "attempts per call: max %d" % (total, len(calls), min(gaps or [0]),
                                              max(gaps or [0]), max(per_call.values() or [0])))
    tap.ok(len(gaps) == N_SDK - 1 and min(gaps) >= 150
           and ok_t[-1] - ok_t[0] >= (N_SDK - 1) * 200 * 0.95,
           "sdk: the admitted calls are spread at the limit: >= 150 ms apart, %d in >= %.1f s"
           % (N_SDK, (N_SDK - 1) * 0.2 * 0.95), gaps)
    tap.ok(0 < total <= N_SDK / 5.0 + 2.0,
           "sdk: and no slower than the limit asks: %.2f s (<= %.1f s)" % (total, N_SDK / 5.0 + 2))

tap.done(env)
