"""Work of gone clients, and memory in flight (issue 12, "What is wrong
today", bullet 7: "Gone clients keep their work").

- 40 pass-through GETs, each held 3 s by the mock; each client closes its
  socket after 0.5 s. 0.5 s after the closes, lcgate_requests_in_flight must
  be 0 (the contract: cancelled upstream within 100 ms). main: 40.
- A write whose client went away still runs to completion upstream and
  invalidates its project's lists (a positive control: the fix must not
  cancel writes).
- [server] max_inflight_requests = 5: with 5 slow requests in flight, a 6th
  is answered 503 with Retry-After: 1 and never sent upstream.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import lcgtest as t  # noqa: E402
import trust as tr  # noqa: E402

V1, V2 = tr.V1, tr.V2
A = tr.A
BODY = json.dumps(tr.V2_BODY).encode()
N = 40
DELAY_MS = 3000

tap = t.Tap()
env = t.Env("lcgate-trust-work")
mock = env.mock()


def mock_total(project):
    """total_size of the project's v2 list, asked of the mock directly."""
    return tr.total_size(mock.get(V2 + "?project_id=%s&page_size=1" % project))


# --- gone clients --------------------------------------------------------------------
names = [
    "control: the %d GETs reached the upstream before their clients closed" % N,
    "0.5 s after %d clients closed, lcgate_requests_in_flight is 0" % N,
    "control: a write whose client closed after 0.5 s still completes upstream",
    "control: and invalidates: the project's list is a MISS with the new batch",
]
with tr.Scenario(tap, "gone clients", names) as sc:
    g = sc.gate(env, c.gate_conf(mock), name="lcgate-gone")
    mock.reset()
    mock.fault(delay_ms=DELAY_MS, match="/api/v2/batches/gone-", count=-1)
    t0 = time.monotonic()
    gone = [tr.Gone(g.port, "GET", V2 + "/gone-%d" % i, after=0.5).start() for i in range(N)]
    for q in gone:
        q.join()
    seen = tr.mock_routes(mock, "GET /api/v2/batches/gone-")
    errs = [q.err for q in gone if q.err]
    sc.ok(seen == N and not errs, names[0], "the mock saw %d; client errors: %r" % (seen, errs[:3]))
    closed = max(q.closed_at or t0 for q in gone)
    tr_sleep = closed + 0.5 - time.monotonic()
    if tr_sleep > 0:
        time.sleep(tr_sleep)
    v = tr.metric(g, "lcgate_requests_in_flight")
    sc.ok(v == 0, names[1], "lcgate_requests_in_flight = %r, %.2f s after the first send"
          % (v, time.monotonic() - t0))
    # Let the held requests end before the next case.
    time.sleep(max(0.0, t0 + DELAY_MS / 1000.0 + 0.3 - time.monotonic()))
    c.clear_fault(mock)
    t.wait_for(lambda: tr.metric(g, "lcgate_requests_in_flight") == 0, 10, "in flight 0")

    L = V2 + "?project_id=%s&page_size=8" % A
    tr.warm_hit(g.port, L)
    before = mock_total(A)
    mock.reset()
    mock.fault(delay_ms=DELAY_MS, match="tag=gone-write", count=1)
    w = tr.Gone(g.port, "POST", V2 + "?project_id=%s&tag=gone-write" % A, body=BODY,
                headers={"Content-Type": "application/json"}, after=0.5).start()
    w.join()
    deadline = time.monotonic() + DELAY_MS / 1000.0 + 3
    after = before
    while time.monotonic() < deadline and after == before:
        time.sleep(0.1)
        after = mock_total(A)
    posts = tr.mock_routes(mock, "POST /api/v2/batches")
    sc.ok(posts == 1 and after == (before or 0) + 1, names[2],
          "the mock saw %d POST(s); project A's batches: %r before, %r after"
          % (posts, before, after))
    time.sleep(0.3)
    r = c.get(g.port, L)
    sc.ok(c.xc(r) == "MISS" and tr.total_size(r) == after, names[3],
          "%s; total_size %r, the mock's %r" % (tr.show(r), tr.total_size(r), after))
    c.clear_fault(mock)

# --- memory in flight ----------------------------------------------------------------
names = [
    "with 5 requests in flight, a 6th: 503 {\"detail\":\"Too many requests in flight\"}, "
    "Retry-After: 1, retry-after-ms: 1000",
    "the 6th never reached the upstream (it saw exactly 5)",
    "control: the 5 in flight are answered by the upstream",
    "control: once they are done, a request is admitted again",
]
with tr.Scenario(tap, "max_inflight_requests = 5", names) as sc:
    g = sc.gate(env, c.gate_conf(mock, server={"max_inflight_requests": "5"}),
                name="lcgate-maxinflight")
    mock.reset()
    mock.fault(delay_ms=DELAY_MS, match="/api/v2/batches/slow-", count=-1)
    bg = [c.Background(g.port, V2 + "/slow-%d" % i, timeout=15).start() for i in range(5)]
    t.wait_for(lambda: tr.mock_routes(mock, "GET /api/v2/batches/slow-") >= 5, 5,
               "5 slow requests at the mock")
    r = c.get(g.port, V2 + "/slow-6", timeout=10)
    seen = tr.mock_routes(mock, "GET /api/v2/batches/slow-")
    sc.ok(r.status == 503 and c.js(r) == {"detail": "Too many requests in flight"}
          and r.header("retry-after") == "1" and r.header("retry-after-ms") == "1000",
          names[0], tr.show(r))
    sc.ok(seen == 5, names[1], "the mock saw %d" % seen)
    rs = [b.join(15) for b in bg]
    c.clear_fault(mock)
    sc.ok([x.status for x in rs] == [404] * 5, names[2], [tr.show(x) for x in rs])
    r = c.get(g.port, V2 + "/slow-7")
    sc.ok(r.status == 404, names[3], tr.show(r))

tap.done(env)
