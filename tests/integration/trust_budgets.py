"""Budgets nobody escapes (issue 12, "What is wrong today", bullet 4:
"Budgets are keyed by whatever the client writes").

- [ratelimit] rate = 1/min, burst = 3 (a configuration main accepts): four
  requests naming one project in four spellings spend one budget, so the
  4th is 429.
- [client "c"] rate = 1/min, burst = 3 (projects = *): random project ids
  do not escape the client's budget.
- [upstream] rate = 1/min, burst = 3: random project ids do not escape the
  key's budget; the mock sees exactly 3 requests. Memory store, and Redis
  with two instances sharing it (3 in total).
"""
import hashlib
import os
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import lcgtest as t  # noqa: E402
import ratelimit_lib as rlib  # noqa: E402
import trust as tr  # noqa: E402

V1, V2 = tr.V1, tr.V2
A, B = tr.A, tr.B
TOK_C = "lcg-tok-trust-c-8a2f4c6e0b1d43f5a7c9e1b3d5f7a9c1"
TOK_D = "lcg-tok-trust-d-2c4e6a8b0d1f43a5c7e9b1d3f5a7c9e2"

tap = t.Tap()
env = t.Env("lcgate-trust-budgets")
mock = env.mock()


def statuses(rs):
    return [r.status for r in rs]


def problems_429(r, detail):
    p = rlib.problems_429(r, r_zero=False)
    if c.js(r) != {"detail": detail}:
        p.append("body %r, want %r" % (r.body[:200], {"detail": detail}))
    return p


# --- project budgets, keyed by the canonical project ---------------------------
checks = [
    "project_id=A (v1 list), <A upper> (v2 list), X&A (pass-through), {A} (v1 list): "
    "one budget, the 4th is 429",
    "urn:uuid:B (v1 list), <B upper> (pass-through), <B as 32 hex> (v1 list), X&B "
    "(pass-through): one budget, the 4th is 429",
    "RateLimit-Policy states the burst over its window: \"project\";q=3;w=180",
]
with tr.Scenario(tap, "project budget (rate = 1/min, burst = 3)", checks) as sc:
    g = sc.gate(env, c.gate_conf(mock, ratelimit={"rate": "1/min", "burst": "3"}),
                name="lcgate-proj")
    x = tr.project("budget-x")
    rs = [c.get(g.port, V1 + "?project_id=%s&limit=5" % A),
          c.get(g.port, V2 + "?project_id=%s&page_size=5" % A.upper()),
          c.get(g.port, V2 + "/nonexistent?project_id=%s&project_id=%s" % (x, A)),
          c.get(g.port, V1 + "?project_id={%s}&limit=6" % A)]
    sc.ok(statuses(rs) == [200, 200, 404, 429], checks[0],
          "\n".join(tr.show(r) for r in rs))
    y = tr.project("budget-y")
    rs = [c.get(g.port, V1 + "?project_id=urn:uuid:%s&limit=5" % B),
          c.get(g.port, V2 + "/nonexistent?project_id=%s" % B.upper()),
          c.get(g.port, V1 + "?project_id=%s&limit=6" % uuid.UUID(B).hex),
          c.get(g.port, V2 + "/nonexistent?project_id=%s&project_id=%s" % (y, B))]
    sc.ok(statuses(rs) == [200, 404, 200, 429], checks[1],
          "\n".join(tr.show(r) for r in rs))
    r = c.get(g.port, V1 + "?project_id=%s&limit=5" % tr.project("budget-policy"))
    sc.ok(r.status == 200 and r.header("ratelimit-policy") == '"project";q=3;w=180', checks[2],
          tr.show(r))

# --- the client's budget ----------------------------------------------------------
checks = [
    "four requests with random project ids (v1 list, v2 list, pass-through, v1 list): "
    "the 4th is 429",
    "that 429: {\"detail\":\"Rate limit exceeded for client c\"}, Retry-After and "
    "retry-after-ms",
    "the mock saw exactly 3 of them",
    "control: client d (no rate of its own) is still admitted",
    "the admitted answers carry RateLimit-Policy with a \"client\";q=3;w=180 item, the "
    "429 RateLimit \"client\";r=0",
]
with tr.Scenario(tap, "client budget ([client c] rate = 1/min, burst = 3)", checks) as sc:
    conf = c.gate_conf(mock)
    conf['client "c"'] = {"token_sha256": hashlib.sha256(TOK_C.encode()).hexdigest(),
                          "projects": "*", "rate": "1/min", "burst": "3"}
    conf['client "d"'] = {"token_sha256": hashlib.sha256(TOK_D.encode()).hexdigest(),
                          "projects": "*"}
    g = sc.gate(env, conf, name="lcgate-client")
    h = tr.bearer(TOK_C)
    mock.reset()
    rs = [c.get(g.port, V1 + "?project_id=%s&limit=5" % tr.rand_project(), headers=h),
          c.get(g.port, V2 + "?project_id=%s&page_size=5" % tr.rand_project(), headers=h),
          c.get(g.port, V2 + "/nonexistent?project_id=%s" % tr.rand_project(), headers=h),
          c.get(g.port, V1 + "?project_id=%s&limit=5" % tr.rand_project(), headers=h)]
    n = mock.count()
    sc.ok(statuses(rs) == [200, 200, 404, 429], checks[0], "\n".join(tr.show(r) for r in rs))
    p = problems_429(rs[3], "Rate limit exceeded for client c")
    sc.ok(not p, checks[1], "%s\n%s" % (p, tr.show(rs[3])))
    sc.ok(n == 3, checks[2], "the mock saw %d" % n)
    r = c.get(g.port, V1 + "?project_id=%s&limit=5" % tr.rand_project(),
              headers=tr.bearer(TOK_D))
    sc.ok(r.status == 200, checks[3], tr.show(r))
    pol = rs[0].header("ratelimit-policy") or ""
    rl = rs[3].header("ratelimit") or ""
    sc.ok('"client";q=3;w=180' in pol and '"client";q=3;w=180' in
          (rs[3].header("ratelimit-policy") or "") and rl.startswith('"client";r=0;'),
          checks[4], "200: %r; 429: %r %r" % (pol, rs[3].header("ratelimit-policy"), rl))

# --- the upstream key's budget -----------------------------------------------------
UP_DETAIL = "Rate limit exceeded for the upstream key"


def upstream_checks(sc, gates, n, checks):
    """n pass-through GETs with random project ids, round robin over gates."""
    mock.reset()
    rs = [c.get(gates[i % len(gates)].port,
                V2 + "/nonexistent?project_id=%s" % tr.rand_project()) for i in range(n)]
    seen = tr.mock_routes(mock, "GET /api/v2/batches/nonexistent")
    want = [404] * 3 + [429] * (n - 3)
    sc.ok(statuses(rs) == want, checks[0], "\n".join(tr.show(r) for r in rs))
    sc.ok(seen == 3, checks[1], "the mock saw %d" % seen)
    p = problems_429(rs[3], UP_DETAIL)
    sc.ok(not p, checks[2], "%s\n%s" % (p, tr.show(rs[3])))


checks = [
    "four pass-through GETs with random project ids: the 4th is 429",
    "the mock saw exactly 3",
    "that 429: {\"detail\":\"%s\"}, Retry-After and retry-after-ms" % UP_DETAIL,
]
with tr.Scenario(tap, "upstream budget, memory ([upstream] rate = 1/min, burst = 3)",
                 checks) as sc:
    g = sc.gate(env, c.gate_conf(mock, upstream={"rate": "1/min", "burst": "3"}),
                name="lcgate-up-mem")
    upstream_checks(sc, [g], 4, checks)

checks = [
    "six pass-through GETs with random project ids, alternating between two instances: "
    "3 admitted, then 429s",
    "the mock saw exactly 3",
    "the first 429: {\"detail\":\"%s\"}, Retry-After and retry-after-ms" % UP_DETAIL,
]
with tr.Scenario(tap, "upstream budget, Redis, two instances ([upstream] rate = 1/min, "
                 "burst = 3)", checks) as sc:
    redis = env.redis()
    conf = c.gate_conf(mock, upstream={"rate": "1/min", "burst": "3"},
                       cache=c.redis_cache(redis))
    g1 = sc.gate(env, conf, name="lcgate-up-r1")
    g2 = sc.gate(env, conf, name="lcgate-up-r2")
    upstream_checks(sc, [g1, g2], 6, checks)

tap.done(env)
