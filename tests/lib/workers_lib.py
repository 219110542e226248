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
