#!/usr/bin/env python3
"""Prints bench/run's one table (markdown) from its TSV files.
Usage: report.py results.tsv coalesce.tsv misc.tsv [paging.tsv] (settings in the environment)"""
import os
import sys

E = os.environ.get


def rows(path):
    return [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]


res = rows(sys.argv[1])   # round case peer conns rps p50 p99 cpu_us upstream_delta check cli_busy errors
coal = rows(sys.argv[2])  # round peer n upstream ok p50 max min
# idle peer secs ns ticks | fill nkeys upstream secs rss0 rss1 | perf ... | idlesw peer secs switches
# | wake round case peer nreq secs cpu_us(lcgate + redis-server) cpu_us(lcgate) switches handoffs
misc = rows(sys.argv[3])
# round peer pages page_ms think_ms total_ms p50_ms max_ms upstream pages_ok pages_seen hits joined
paging = rows(sys.argv[4]) if len(sys.argv) > 4 else []


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def fmt(x, nd=0):
    return "-" if x is None else ("%.*f" % (nd, x))


by = {}
for r in res:
    by[(r[0], r[1], r[2], r[3])] = r


def cpu(rnd, case, peer, conns):
    r = by.get((rnd, case, peer, conns))
    return num(r[7]) if r else None


def ratio(a, b):
    # per-core throughput ratio = CPU per request of the peer / CPU per request of lcgate
    return None if (a is None or b is None or a == 0) else b / a


print("## lcgate benchmark (bench/run)")
print()
print("| case | conns | round | peer | req/s | p50 ms | p99 ms | server CPU µs/req | lcgate per core ÷ nginx / ÷ varnish | check (hit, upstream requests during run, wrk core busy) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in res:
    rnd, case, peer, conns, rps, p50, p99, cus, ud, chk, cli, err = (r + [""] * 12)[:12]
    rat = ""
    if peer.startswith("lcgate"):
        # the Redis-store cases are compared with the peers' 1-key hit (same conns, same round)
        redis = peer.startswith("lcgate-redis")
        base_case = "1 key" if redis else case
        me = num(cus)
        rn = ratio(me, cpu(rnd, base_case, "nginx", conns))
        rv = ratio(me, cpu(rnd, base_case, "varnish", conns))
        if rn is not None or rv is not None:
            rat = "%s / %s" % (fmt(rn, 2), fmt(rv, 2))
            if redis:
                rat += " (vs their 1-key hit)"
        if peer == "lcgate-alog":
            # the access log's cost: against access_log = off, side by side (same round, case)
            off = by.get((rnd, case, "lcgate", conns))
            if off and me and num(off[7]):
                rat = "per core ÷ access_log=off: %.3f" % (num(off[7]) / me)
                if num(rps) and num(off[4]):
                    rat += "; req/s ÷ off, sharing the core: %.3f" % (num(rps) / num(off[4]))
        if peer.endswith("-w2"):
            # the workers target: CPU per request against workers = 1 (same round, case)
            w1 = cpu(rnd, case, peer[:-len("-w2")], conns)
            if me is not None and w1:
                rat += ("; " if rat else "") + "CPU/req ÷ workers=1: %.2f" % (me / w1)
    check = "%s, upstream +%s, wrk %s%%" % (chk, ud, cli)
    if err:
        check += ", " + err.strip("; ")
    print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        case, conns, rnd, peer, rps, p50, p99, cus, rat or "-", check))

for c in coal:
    rnd, peer, n, up, ok, p50, mx, mn = (c + ["?"] * 8)[:8]
    print("| %s identical misses, %s ms upstream | %s | %s | %s | - | %s (waiters) | max %s | - | - | upstream requests %s, %s/%s answered 200 |" % (
        n, E("SLOW_MS", "200"), n, rnd, peer, p50, mx, up, ok, n))

for p in paging:
    rnd, peer, pages, page_ms, think, total, p50, mx, up, ok, seen, hits, joined = (p + ["?"] * 13)[:13]
    verdict = "OK" if up == pages and ok == pages and seen == pages else "WRONG"
    print("| paging loop, %s pages, %s ms upstream, %s ms think | 1 | %s | %s | - | %s (per page) | max %s | - | - | "
          "total %s ms for %s pages; upstream requests %s (target %s), %s/%s pages right; %s hits, %s joined a fetch "
          "under way; %s |" % (pages, page_ms, think, rnd, peer, p50, mx, total, seen, up, pages, ok, pages,
                               hits, joined, verdict))

perf = []
alog = []
wake = {}    # (round, case, peer) -> wake row
idlesw = {}  # peer -> (secs, switches)
for m in misc:
    if m[0] == "alog":
        alog.append(m)
    elif m[0] == "wake":
        m = (m + ["?"] * 10)[:10]
        wake[(m[1], m[2], m[3])] = m
    elif m[0] == "idlesw":
        idlesw[m[1]] = (num(m[2]), num(m[3]))
    elif m[0] == "perf":
        perf.append(m)
    elif m[0] == "idle":
        _, peer, secs, ns, ticks = m
        print("| idle %s s | 0 | - | %s | - | - | - | - | - | CPU used: %.2f ms (schedstat), %s ticks |" % (
            secs, peer, int(ns) / 1e6, ticks))
    elif m[0] == "fill":
        _, nkeys, up, secs, rss0, rss1 = m
        stored = int(nkeys) * 2048
        limit_kb = (1.3 * stored + 16 * 1024 * 1024) / 1024
        print("| RSS after %s keys (2 KB each) | 50 | M | lcgate | - | - | - | - | - | RSS %.1f MiB (before fill %.1f MiB); stored %.1f MiB; target <= %.1f MiB; fill took %s s, upstream +%s |" % (
            nkeys, int(rss1) / 1024, int(rss0) / 1024, stored / 1048576, limit_kb / 1024, secs, up))

print()
print("Versions: %s" % E("VERS", "?"))
print("Settings: DUR=%s ROUNDS=%s PIN=%s (servers on CPU %s, load generators on CPU %s); body 2048 B JSON; "
      "server CPU = utime+stime of the server's processes (and the lcgate-redis peers: + redis-server) per request "
      "(the access log case: schedstat, the two lcgates side by side); "
      "per-core ratio = peer µs/req ÷ lcgate µs/req in the same round and case; lcgate-w2 = "
      "lcgate with workers = 2 (otherwise as lcgate), pinned to the same one core, and likewise "
      "lcgate-redis-w2 and lcgate-redis-nol1-w2; wall time %s s; "
      "ports still listening after stop: %s" % (
          E("DUR"), E("ROUNDS"), E("PIN"), E("SRV_CPU"), E("CLI_CPU"), E("ELAPSED"), E("LEFT")))
# The access log's cost: the two lcgates ran side by side on the server CPU (bench/run's
# run_pair), so the figure is their per-core throughput, requests per CPU second: the ratio
# of their CPU per request. Their req/s while sharing the core is shown too; it also carries
# how the scheduler happened to split the core.
def alog_rows(rnd):
    off = [r for r in res if r[0] == rnd and r[2] == "lcgate" and "access log" in r[1]]
    on = [r for r in res if r[0] == rnd and r[2] == "lcgate-alog"]
    return (off[0], on[0]) if off and on and num(off[0][7]) and num(on[0][7]) else None


pairs = []
for m in alog:
    _, rnd, lines, nreq = (m + ["?"] * 4)[:4]
    got = alog_rows(rnd)
    if got is None:
        continue
    off, on = got
    pairs.append((num(on[7]), num(off[7]), num(on[4]), num(off[4])))
    print("Access log (round %s): 1-key hits, c50, the two lcgates side by side on the server CPU: "
          "CPU per request %s µs with access_log = a file against %s µs off, so per-core throughput "
          "ratio %.3f (target >= 0.95); while sharing the core %s req/s against %s (%.3f); the file "
          "got %s lines for the %s requests wrk counted (and those still in flight at its end)." % (
              rnd, on[7], off[7], num(off[7]) / num(on[7]), on[4], off[4],
              (num(on[4]) or 0) / (num(off[4]) or 1), lines, nreq))
if len(pairs) > 1:
    n = len(pairs)
    con, coff = sum(p[0] for p in pairs) / n, sum(p[1] for p in pairs) / n
    rs = [p[1] / p[0] for p in pairs]
    print("Access log (%d rounds): mean CPU per request %.3f µs with the file against %.3f µs off: "
          "per-core throughput ratio %.3f (target >= 0.95; rounds %.3f to %.3f)." % (
              n, con, coff, coff / con, min(rs), max(rs)))


def mean(xs):
    return sum(xs) / len(xs) if xs else None


def list_of(xs, nd=2):
    return ", ".join(fmt(x, nd) for x in xs)


# The Redis path on every worker: CPU per hit with workers = 2 against workers = 1
# (lcgate alone, and with redis-server), the per-round ratios and the ratio of the
# means over the rounds, and the main loop's wakeups during the workers = 2 runs.
for l1 in ("L1", "no L1"):
    case = "1 key, Redis store, " + l1
    w1peer = "lcgate-redis" if l1 == "L1" else "lcgate-redis-nol1"
    w2peer = w1peer + "-w2"
    rounds = sorted({k[0] for k in wake if k[1] == case and k[2] == w2peer}, key=lambda x: (len(x), x))
    lc, both, handoffs, switches, secs = [], [], [], [], []
    for rnd in rounds:
        a, b = wake.get((rnd, case, w2peer)), wake.get((rnd, case, w1peer))
        if not (a and b):
            continue
        lc.append((num(a[7]), num(b[7])))
        both.append((num(a[6]), num(b[6])))
        handoffs.append(a[9])
        switches.append(num(a[8]))
        secs.append(num(a[5]))
    if not lc:
        continue

    def ratios(pairs):
        per = [x / y if (x is not None and y) else None for x, y in pairs]
        ok = [p for p in pairs if p[0] is not None and p[1]]
        mx, my = mean([p[0] for p in ok]), mean([p[1] for p in ok])
        return per, (mx, my, mx / my if ok else None)

    per_lc, (m2, m1, mr) = ratios(lc)
    per_both, (b2, b1, br) = ratios(both)
    idle = idlesw.get(w2peer)
    idle_s = ""
    if idle and idle[0]:
        idle_s = "; idle: %.1f/s" % (idle[1] / idle[0])
    rate = ", ".join("%.1f/s" % (w / t) if (w is not None and t) else "?" for w, t in zip(switches, secs))
    hand = "n/a" if None in map(num, handoffs) else "%.0f" % sum(map(num, handoffs))
    print("Redis store, 1 key, %s: CPU/hit workers=2 / workers=1 = %s (rounds %s; lcgate alone, mean %s µs "
          "against %s µs; target <= 1.10); with redis-server %s (rounds %s; %s µs against %s µs); "
          "main-loop wakeups w2: %s handoffs (rounds %s), %s switches (rounds %s: %s%s)." % (
              l1, fmt(mr, 2), list_of(per_lc), fmt(m2, 1), fmt(m1, 1), fmt(br, 2), list_of(per_both),
              fmt(b2, 1), fmt(b1, 1), hand, ", ".join(handoffs),
              "%d" % sum(w for w in switches if w is not None), list_of(switches, 0), rate, idle_s))
if paging:
    print("Paging loop: one python client (keep-alive connection) follows next_page_token from page 1 to the "
          "last, sleeping the think time between pages; a new list (project_id) per run, so no run can hit "
          "another's cache. lcgate = prefetch off, lcgate-prefetch = prefetch on (both memory store, in front "
          "of the slow upstream); nginx and varnish are their slow-upstream instances (no prefetch). "
          "Upstream requests are counted by the upstream for that list, after a pause for late prefetches.")
for m in perf:
    print()
    if m[1] != "ok":
        print("perf (PERF=1): %s" % m[1])
        continue
    _, _, path, nsamp, rps, chk, ud = (m + ["?"] * 7)[:7]
    print("perf (PERF=1): `perf record -g -p <lcgate memory>` during an extra 1-key c50 wrk run outside the table "
          "(%s req/s under perf, %s, upstream +%s, %s samples); `perf report --no-children --sort symbol`, top 15:" % (
              rps, chk, ud, nsamp))
    print()
    print("```")
    try:
        sys.stdout.write(open(path).read())
    except OSError as e:
        print("(%s)" % e)
    print("```")
if E("KEEP") == "1":
    print()
    print("Raw output: %s" % E("RUN"))
