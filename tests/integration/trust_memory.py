"""Memory held by requests in flight is bounded by max_inflight_bytes, also
while an upstream answer arrives (issue 12, "Work of gone clients").

max_body = 1KiB and max_inflight_bytes = 2KiB: a list whose upstream answer
is larger than that fails with 503 (Retry-After: 1, retry-after-ms: 1000),
and is not stored; so does a pass-through read; a small answer goes through.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import lcgtest as t  # noqa: E402
import trust as tr  # noqa: E402

V1, V2 = tr.V1, tr.V2
tap = t.Tap()
env = t.Env("lcgate-trust-memory")
mock = env.mock()
checks = [
    "control: a small list (limit=1) is answered 200",
    "a list whose answer is over max_inflight_bytes: 503 with Retry-After: 1 and "
    "retry-after-ms: 1000, detail 'Too many requests in flight'",
    "and it was not stored: asked again, the upstream is asked again",
    "a pass-through read over max_inflight_bytes: 503 with Retry-After: 1",
    "afterwards nothing is held: lcgate_requests_in_flight 0 and a small list still 200",
]
with tr.Scenario(tap, "memory bound (max_inflight_bytes = 2KiB)", checks) as sc:
    g = sc.gate(env, c.gate_conf(mock, server={"max_body": "1KiB",
                                               "max_inflight_bytes": "2KiB"}),
                name="lcgate-memory")
    r = c.get(g.port, V1 + "?limit=1")
    sc.ok(r.status == 200, checks[0], tr.show(r))
    mock.reset()
    r = c.get(g.port, V1 + "?limit=50")
    ok = (r.status == 503 and r.header("retry-after") == "1" and
          r.header("retry-after-ms") == "1000" and
          r.json().get("detail") == "Too many requests in flight")
    sc.ok(ok, checks[1], tr.show(r))
    r2 = c.get(g.port, V1 + "?limit=50")
    sc.ok(r2.status == 503 and mock.count() == 2, checks[2],
          "%s; the mock saw %d" % (tr.show(r2), mock.count()))
    mock.fault(body='"' + "x" * 5000 + '"', match="/api/v2/batches/big", count=1)
    big = c.get(g.port, V2 + "/big")
    sc.ok(big.status == 503 and big.header("retry-after") == "1", checks[3], tr.show(big))
    body = t.request(g.admin, "GET", "/metrics").body.decode()
    inflight = [ln for ln in body.splitlines() if ln.startswith("lcgate_requests_in_flight ")]
    r = c.get(g.port, V1 + "?limit=1")
    sc.ok(inflight == ["lcgate_requests_in_flight 0"] and r.status == 200, checks[4],
          "%r %s" % (inflight, tr.show(r)))
tap.done(env)
