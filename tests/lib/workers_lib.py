"""What the workers tests share: an lcgate's threads as /proc shows them,
and the SIGTERM drain with requests in flight."""
import os
import signal
import time

import cache_lib as c


def threads(pid):
    """{name: [tid, ...]} of the process's threads."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                out.setdefault(f.read().strip(), []).append(int(tid))
        except OSError:
            pass
    return out


def run_ns(pid, tid):
    """The thread's run time so far (schedstat), in ns."""
    with open("/proc/%d/task/%d/schedstat" % (pid, tid)) as f:
        return int(f.read().split()[0])


def voluntary_switches(pid, tid):
    """The thread's voluntary context switches: each a wakeup."""
    with open("/proc/%d/task/%d/status" % (pid, tid)) as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    return 0


def sigterm_drain(tap, mock, g):
    """SIGTERM with 10 slow requests in flight (the upstream takes 1 s): all
    10 are answered 200, and g exits 0."""
    mock.fault(delay_ms=1000, match="?limit=7", count=-1)
    bg = [c.Background(g.port, c.V1 + "?limit=%d" % (70 + i)).start() for i in range(10)]
    time.sleep(0.4)
    os.kill(g.proc.pid, signal.SIGTERM)
    for b in bg:
        b.join(15)
    c.clear_fault(mock)
    tap.ok(all(b.res is not None and b.res.status == 200 for b in bg),
           "SIGTERM with 10 slow requests in flight: all 10 answered 200",
           [b.res for b in bg])
    try:
        g.proc.wait(15)
    except Exception:
        pass
    tap.eq(g.proc.returncode, 0, "lcgate exits 0 after the drain")


def coalesce_100(tap, mock, port):
    """100 concurrent identical misses (the upstream takes 800 ms) on 100
    connections, spread over the workers: exactly 1 upstream request, and
    every client gets a 200 with the same body."""
    path = c.V1 + "?limit=17"
    mock.reset()
    mock.fault(delay_ms=800, match="?limit=17", count=-1)
    res, _ = c.concurrent([(port, path, None)] * 100, timeout=15)
    n_up = c.upstream_gets(mock, c.V1)
    c.clear_fault(mock)
    tap.eq(n_up, 1, "100 concurrent identical misses over both workers: exactly 1 upstream "
           "request")
    tap.ok(set(r.status for r in res) == {200} and len(set(r.body for r in res)) == 1,
           "all 100 clients get a 200 with the same body", c.summary(res))


def budget_40(tap, port, project, passed, what):
    """One warming request to project's list (it spends one and stores the
    list), then 40 at once on 40 connections over the workers: exactly
    passed of them 200, the rest 429."""
    path = c.V1 + "?project_id=%s&limit=3" % project
    warm = c.get(port, path)
    res, _ = c.concurrent([(port, path, None)] * 40, timeout=15)
    codes = [r.status for r in res]
    tap.ok(warm.status == 200 and codes.count(200) == passed and
           codes.count(429) == 40 - passed,
           "%s over both workers: after a warming request, %d more of 40 concurrent requests "
           "pass, %d get 429 (got %d and %d)"
           % (what, passed, 40 - passed, codes.count(200), codes.count(429)),
           "warming: %r; other: %s" % (warm, [x for x in codes if x not in (200, 429)]))
