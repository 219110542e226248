"""The upstream budget, and the hold after an upstream 429.

Issue 5, done when:
- "With upstream_rate = 2/s and 200 distinct list queries in 5 s, the mock
  upstream sees at most 2 x 5 + burst requests; answers beyond it are stale
  hits or 429s, never 5xx."  Here upstream_burst = 4, so at most 14.
- "The mock upstream answering 429 with Retry-After: 2: lcgate sends it
  nothing for that project for 2 s, and clients get stale answers or 429s
  meanwhile."  Done with Retry-After: 2 and again with retry-after-ms: 1500
  alone; the 429 reaches the client with the upstream's hint, and another
  project's requests keep going upstream during the hold.
Also: hits never spend the upstream budget; a [project] ttl override.

Config: [ratelimit] rate = 1000/s (the client budget is out of the way),
upstream_rate = 2/s, upstream_burst = 4; [cache] ttl = 1s,
stale_while_revalidate = 0s (so that a stale answer here can only be the
upstream-budget or hold path, not stale-while-revalidate), stale_if_error =
10m (the stale entries are kept), prefetch = off (no background fetches to
blur the counts). [project HITS] ttl = 60s; [project HOLD*] and [project
OTHER] upstream_rate = 100/s, upstream_burst = 100, so that only the hold
keeps them from the upstream.
"""
import math
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import lcgtest as t  # noqa: E402
import ratelimit_lib as rlib  # noqa: E402

V1 = c.V1
UP_RATE, UP_BURST, SECONDS, N = 2, 4, 5.0, 200
M, HITS = rlib.project("ub-main"), rlib.project("ub-hits")
HOLD_RA, HOLD_MS = rlib.project("ub-hold-ra"), rlib.project("ub-hold-ms")
OTHER = rlib.project("ub-other")

tap = t.Tap()
env = t.Env("lcgate-upbudget")
mock = env.mock()
conf = c.gate_conf(mock, cache={"ttl": "1s", "stale_while_revalidate": "0s",
                                "stale_if_error": "10m", "prefetch": "off"},
                   ratelimit=rlib.limits("1000/s", 100000, "%d/s" % UP_RATE, UP_BURST))
conf[rlib.proj_section(HITS)] = {"ttl": "60s"}
for pid in (HOLD_RA, HOLD_MS, OTHER):
    conf[rlib.proj_section(pid)] = {"upstream_rate": "100/s", "upstream_burst": "100"}
g = c.start_gate(tap, env, conf, name="lcgate-ub")


def q(pid, limit, offset=0):
    return V1 + "?project_id=%s&limit=%d&offset=%d" % (pid, limit, offset)


# 200 distinct list queries of project M; 6 of them are fetched first and
# asked again once stale, a quarter of a token interval after a refill.
QS = [q(M, 1 + i % 20, i // 20) for i in range(N)]
WARM = [30, 50, 70, 110, 150, 190]


def hold(conn, pid, stale_path, stale_body, sent, hint, tag, other_off):
    """The mock answers pid's next list request 429 with the `sent` headers
    (a hint of `hint` seconds): the client gets it, then for the hold lcgate
    sends nothing upstream for pid (stale or its own 429), OTHER still
    flows, and right after the hint pid's requests reach the mock again."""
    mock.reset()
    tape = rlib.MockTape(mock)
    mock.fault(status=429, headers=sent, match="project_id=" + pid, count=1)
    r = conn.get(q(pid, 30))
    tape.poll()
    c.clear_fault(mock)
    tap.ok(r.status == 429 and all(r.header(k) == v for k, v in sent.items()),
           "%s: the upstream's 429 reaches the client with its hint %s" % (tag, sent), rlib.hdrs(r))
    end_lo, end_hi = r.t0 + hint, r.t1 + hint  # when the hold ends, at the latest/earliest
    stale, own, other = [], [], []
    k = 0
    # The project's own requests stop 50 ms before the earliest end of the
    # hold (lcgate answers them at once, or forwards them at once).
    while time.monotonic() < end_lo - 0.05:
        stale.append(conn.get(stale_path))
        own.append(conn.get(q(pid, 31 + k)))
        other.append(conn.get(q(OTHER, 100 + k, other_off)))
        tape.poll()
        k += 1
        time.sleep(0.08)
    quiet_end = tape.poll()
    during = tape.of(pid)
    tap.diag("%s: %d rounds of (OTHER, stale, new) during the hold; last %s request sent "
             "%.2f s after the 429 (hint %.1f s)"
             % (tag, k, tag, (own[-1].t0 - r.t1) if own else 0, hint))
    tap.ok(k >= 5 and tape.lost == 0, "%s: the hold was observed (%d rounds, every mock "
           "request accounted for)" % (tag, k), "lost %d" % tape.lost)
    tap.ok(len(during) == 1,
           "%s: for %.2f s after the 429 the mock saw no request for the project (only the "
           "one it answered 429; no retry loop): %d" % (tag, quiet_end - r.t1, len(during)),
           "\n".join("%s %s" % (e["path"], e["query"]) for _, _, e in during[:6]))
    bad = [a for a in stale if not (a.status == 200 and c.xc(a) == "STALE"
                                    and "fwd=stale" in (c.cs(a) or "") and a.body == stale_body)]
    tap.ok(stale and not bad, "%s: during the hold, a query with an entry gets it stale (200, "
           "X-Cache: STALE, Cache-Status fwd=stale, the stored body)" % tag,
           c.summary(bad) + "\n" + "\n".join(rlib.hdrs(a) for a in bad[:2]))
    checks = []
    for a in own:
        lo = int((end_lo - a.t1) * 1000) - 50
        hi = int(math.ceil((end_hi - a.t0) * 1000)) + 50
        p = rlib.problems_429(a, None, min_ms=max(1, lo), max_ms=hi, r_zero=False)
        if a.status == 429 and not isinstance(c.js(a), dict):
            p.append("body is not a JSON object")
        if a.t1 - a.t0 > 0.3:
            p.append("took %.2f s" % (a.t1 - a.t0))
        checks.append((a, p))
    tap.ok(own and not any(p for _, p in checks),
           "%s: during the hold, a query without an entry gets lcgate's own 429 at once, "
           "retry-after-ms = the remaining wait (+/- 50 ms), Retry-After = ceil of it" % tag,
           rlib.first_problems(checks))
    tap.ok(other and all(a.status == 200 and c.xc(a) == "MISS" for a in other)
           and len(tape.of(OTHER)) == len(other),
           "%s: meanwhile another project's %d new queries went upstream as usual"
           % (tag, len(other)), "%s\nmock saw %d" % (c.summary(other), len(tape.of(OTHER))))
    # Right after the hint: requests flow again.
    rlib.sleep_until(end_hi + 0.1)
    a = conn.get(q(pid, 60))
    tape.poll()
    after = tape.of(pid, since=quiet_end)
    tap.ok(a.status == 200 and c.xc(a) == "MISS" and len(after) == 1,
           "%s: 0.1 s after the hint expires, a new query goes upstream again (200 MISS; mock "
           "saw %d)" % (tag, len(after)), rlib.hdrs(a))
    b = conn.get(stale_path)
    tap.ok(b.status == 200 and c.xc(b) != "STALE",
           "%s: and the stale entry is refreshed, not served stale" % tag, rlib.hdrs(b))


conn = rlib.Conn(g.port, timeout=10) if g else None
if rlib.running(tap, g, "phase 0: storing the entries"):
    # --- phase 0: entries that will be stale later ---------------------------
    warmed = {i: rlib.warm(g.port, QS[i]) for i in WARM}
    tap.ok(all(r.status == 200 and c.xc(r) == "MISS" for r in warmed.values()),
           "M: 6 of the 200 queries are fetched first (honouring 429 hints)",
           c.summary(warmed.values()))
    warm_end = time.monotonic()
    hit0 = conn.get(q(HITS, 7))
    s_ra = conn.get(q(HOLD_RA, 7))
    s_ms = conn.get(q(HOLD_MS, 7))
    tap.ok(all(r.status == 200 for r in (hit0, s_ra, s_ms)),
           "HITS, HOLD_RA and HOLD_MS each have one stored list", (hit0, s_ra, s_ms))
    # 4 tokens at 2/s: full again 2 s after the last warm fetch; ttl 1 s over.
    rlib.sleep_until(warm_end + 2.2)

if rlib.running(tap, g, "phase 1: 200 distinct queries in 5 s"):
    # --- phase 1: 200 distinct queries in 5 s, 4 threads ----------------------
    mock.reset()
    t_reset = time.monotonic()
    start = t_reset + 0.05
    plan = [[(start + i * SECONDS / N, QS[i]) for i in range(k, N, 4)] for k in range(4)]
    res, alive = rlib.run_threads([rlib.scheduled(g.port, items) for items in plan],
                                 start + SECONDS + 30)
    n_up = mock.count()
    span = time.monotonic() - t_reset
    tap.ok(not any(alive), "M: every client thread finished by its deadline", alive)
    ans = {}
    for k, out in enumerate(res):
        for j, r in out or []:
            ans[k + 4 * j] = r
    allr = [ans[i] for i in sorted(ans)]
    sent_in = max(r.t0 for r in allr) - start if allr else 99
    tap.ok(len(ans) == N and sent_in <= SECONDS + 0.2,
           "M: %d distinct list queries sent within %.2f s" % (len(ans), sent_in))
    miss = [r for r in allr if r.status == 200 and c.xc(r) == "MISS"]
    stale = [r for r in allr if r.status == 200 and c.xc(r) == "STALE"]
    r429 = [r for r in allr if r.status == 429]
    bound = UP_BURST + int(math.floor(UP_RATE * span))
    tap.diag("upstream requests %d (bound %d + floor(%d x %.2f s) = %d); answers: %d 200 MISS, "
             "%d 200 STALE, %d 429, %d other" % (n_up, UP_BURST, UP_RATE, span, bound, len(miss),
                                                 len(stale), len(r429),
                                                 len(allr) - len(miss) - len(stale) - len(r429)))
    tap.ok(all(r.status in (200, 429) for r in allr),
           "M: every answer is a 200 or a 429: never a 5xx", c.summary(allr))
    tap.ok(n_up <= bound,
           "M: the mock saw %d requests, at most 2 x 5 + 4 = %d (upstream_rate = 2/s, "
           "upstream_burst = 4, over %.2f s)" % (n_up, bound, span))
    tap.ok(len(miss) <= n_up, "M: every MISS answer was an upstream request (%d <= %d)"
           % (len(miss), n_up))
    tap.ok(n_up >= bound - 3,
           "M: the upstream budget was used, not starved: %d requests (>= %d)"
           % (n_up, bound - 3))
    wa = [ans.get(i) for i in WARM if i in ans]
    tap.ok(len(wa) == len(WARM) and all(r.status == 200 and r.body == warmed[i].body
                                        for i, r in zip(WARM, wa)),
           "M: the 6 queries with a stale entry got 200 with the stored body, never a 429",
           c.summary(wa))
    bad = [r for r in stale if not ("fwd=stale" in (c.cs(r) or "")
                                    and "detail=upstream-budget" in (c.cs(r) or ""))]
    tap.ok(len(stale) >= 1 and not bad,
           "M: %d stale answers over the budget, each with Cache-Status fwd=stale and "
           "detail=upstream-budget" % len(stale), c.summary(bad or wa))
    other = [ans[i] for i in sorted(ans) if i not in WARM
             and not (ans[i].status == 429 or (ans[i].status == 200 and c.xc(ans[i]) == "MISS"))]
    tap.ok(not other, "M: the queries without an entry got 200 MISS or 429, nothing else",
           c.summary(other))
    checks = [(r, rlib.problems_429(r, M, q=100000, w=100, max_ms=510, r_zero=False)) for r in r429]
    tap.ok(bool(r429) and not any(p for _, p in checks),
           "M: every 429 is the contract's (body names M, Retry-After = ceil(retry-after-ms/"
           "1000) >= 1, retry-after-ms <= 510, one token interval at 2/s) (%d)" % len(r429),
           rlib.first_problems(checks))

if rlib.running(tap, g, "phase 2: hits and the upstream budget"):
    # --- phase 2: hits never spend the upstream budget (HITS, ttl 60 s) ------
    mock.reset()
    hits = [conn.get(q(HITS, 7)) for _ in range(50)]
    tap.ok(all(r.status == 200 and c.xc(r) == "HIT" for r in hits) and mock.count() == 0,
           "HITS: 50 hits of the list stored 8 s ago ([project] ttl = 60s): all 200 HIT, no "
           "upstream request", c.summary(hits))
    new = [conn.get(q(HITS, 20 + k)) for k in range(UP_BURST + 1)]
    tap.eq([(r.status, c.xc(r)) for r in new[:UP_BURST]] + [new[UP_BURST].status],
           [(200, "MISS")] * UP_BURST + [429],
           "HITS: after them, the full upstream burst of 4 is still there (4 new queries go "
           "upstream), and the 5th new query is 429")
    el = (new[UP_BURST].t1 - new[0].t0) * 1000
    p = rlib.problems_429(new[UP_BURST], HITS, max_ms=505, min_ms=int(500 - el - 5), r_zero=False)
    tap.ok(not p, "HITS: that 429 waits for the next upstream token (retry-after-ms %d..505)"
           % int(500 - el - 5), "%s\n%s" % (p, rlib.hdrs(new[UP_BURST])))
    more = [conn.get(q(HITS, 7)) for _ in range(10)]
    tap.ok(all(r.status == 200 and c.xc(r) == "HIT" for r in more) and mock.count() == UP_BURST,
           "HITS: with the upstream budget spent, hits are still 200 HIT", c.summary(more))

# --- phase 3: upstream 429 with Retry-After: 2, then retry-after-ms: 1500 ----
if rlib.running(tap, g, "phase 3: the hold after an upstream 429 with Retry-After: 2"):
    hold(conn, HOLD_RA, q(HOLD_RA, 7), s_ra.body, {"Retry-After": "2"}, 2.0, "HOLD_RA", 0)
if rlib.running(tap, g, "phase 4: the hold after an upstream 429 with retry-after-ms: 1500"):
    hold(conn, HOLD_MS, q(HOLD_MS, 7), s_ms.body, {"retry-after-ms": "1500"}, 1.5, "HOLD_MS", 1)
if conn:
    conn.close()

tap.done(env)
