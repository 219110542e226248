#!/usr/bin/env python3
"""Prints bench/run's one table (markdown) from its TSV files.
Usage: report.py results.tsv coalesce.tsv misc.tsv (settings in the environment)"""
import os
import sys

E = os.environ.get


def rows(path):
    return [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]


res = rows(sys.argv[1])   # round case peer conns rps p50 p99 cpu_us upstream_delta check cli_busy errors
coal = rows(sys.argv[2])  # round peer n upstream ok p50 max min
misc = rows(sys.argv[3])  # idle peer secs ns ticks | fill nkeys upstream secs rss0 rss1


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
        base_case = "1 key" if peer == "lcgate-redis" else case
        me = num(cus)
        rn = ratio(me, cpu(rnd, base_case, "nginx", conns))
        rv = ratio(me, cpu(rnd, base_case, "varnish", conns))
        if rn is not None or rv is not None:
            rat = "%s / %s" % (fmt(rn, 2), fmt(rv, 2))
            if peer == "lcgate-redis":
                rat += " (vs their 1-key hit)"
    check = "%s, upstream +%s, wrk %s%%" % (chk, ud, cli)
    if err:
        check += ", " + err.strip("; ")
    print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        case, conns, rnd, peer, rps, p50, p99, cus, rat or "-", check))

for c in coal:
    rnd, peer, n, up, ok, p50, mx, mn = (c + ["?"] * 8)[:8]
    print("| %s identical misses, %s ms upstream | %s | %s | %s | - | %s (waiters) | max %s | - | - | upstream requests %s, %s/%s answered 200 |" % (
        n, E("SLOW_MS", "200"), n, rnd, peer, p50, mx, up, ok, n))

for m in misc:
    if m[0] == "idle":
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
      "server CPU = utime+stime of the server's processes (and lcgate-redis: + redis-server) per request; "
      "per-core ratio = peer µs/req ÷ lcgate µs/req in the same round and case; wall time %s s; "
      "ports still listening after stop: %s" % (
          E("DUR"), E("ROUNDS"), E("PIN"), E("SRV_CPU"), E("CLI_CPU"), E("ELAPSED"), E("LEFT")))
if E("KEEP") == "1":
    print("Raw output: %s" % E("RUN"))
