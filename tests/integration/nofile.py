"""Descriptors: started under a soft RLIMIT_NOFILE of 1024 with
max_connections = 4096, lcgate raises its soft limit to what it needs when
the hard limit allows (read back from /proc/PID/limits and
process_max_fds), and warns with the numbers when the hard limit is 1024
too; a small max_connections leaves the limit alone."""
import os
import re
import resource
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import lcgtest as t  # noqa: E402

tap = t.Tap()
env = t.Env("lcgate-nofile")
# 4096 clients, an upstream connection for each, curl's 64 idle ones, the
# admin listener's 64 and itself, 32 of the process's own and 4 a worker
# (src/process.c).
NEED = 4096 + 4096 + 64 + 65 + 32 + 4


def limits(pid):
    for line in open("/proc/%d/limits" % pid):
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)


def metric(g, name):
    for line in t.request(g.admin, "GET", "/metrics").body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])


def gate(max_connections, soft, hard, name):
    """lcgate started with RLIMIT_NOFILE (soft, hard), which it inherits."""
    saved = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        return env.lcgate({"server": {"max_connections": str(max_connections), "workers": "1",
                                      "access_log": "off"}}, name=name)
    finally:
        if hard >= saved[1]:
            resource.setrlimit(resource.RLIMIT_NOFILE, saved)


hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
big = hard == resource.RLIM_INFINITY or hard > NEED
if big:
    g = gate(4096, 1024, hard, "lcgate-raise")
    soft_now, hard_now = limits(g.proc.pid)
    tap.eq(soft_now, NEED, "soft 1024, max_connections = 4096: the soft limit is raised to "
           "the %d it needs (/proc/PID/limits)" % NEED)
    tap.ok(hard_now == hard or hard == resource.RLIM_INFINITY, "the hard limit is untouched")
    tap.eq(metric(g, "process_max_fds"), float(NEED), "process_max_fds says so")
    tap.ok(re.search(r"raised the open files limit \(RLIMIT_NOFILE\) from 1024 to %d, what "
                     r"max_connections = 4096 needs" % NEED, g.log()),
           "and the log says from what to what", g.log()[-2000:])
    g.stop()
    g = gate(100, 1024, hard, "lcgate-small")
    tap.eq(limits(g.proc.pid)[0], 1024, "max_connections = 100 fits in 1024: left alone")
    tap.ok("open files" not in g.log(), "and nothing is logged about it")
    g.stop()
else:
    for _ in range(6):
        tap.ok(True, "# SKIP the hard limit here (%d) is below %d" % (hard, NEED))

# Lowering the hard limit cannot be undone: last.
g = gate(4096, 1024, 1024, "lcgate-warn")
tap.eq(limits(g.proc.pid), (1024, 1024), "hard limit 1024: the limits stay 1024")
warn = [ln for ln in g.log().splitlines() if "open files" in ln]
tap.ok(len(warn) == 1 and "lcgate[warn]" in warn[0] and
       ("the open files limit is 1024 (hard limit 1024), below the %d that max_connections = "
        "4096 needs" % NEED) in warn[0],
       "and lcgate warns with the numbers", warn)
r = t.request(g.port, "GET", "/nowhere")
tap.eq(r.status, 404, "and it serves")
tap.done(env)
