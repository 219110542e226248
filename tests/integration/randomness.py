"""Randomness comes from getrandom(2): lcgate, traced from its start
through requests on every table and a Redis store, never opens /dev/urandom
(or /dev/random) and draws its random bytes with getrandom (issue 12)."""
import os
import re
import shutil
import signal
import stat
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import lcgtest as t  # noqa: E402

tap = t.Tap()
env = t.Env("lcgate-random")
strace = shutil.which("strace")
if not tap.ok(strace, "strace is installed (scripts/deps test)"):
    tap.done(env)

mock = env.mock()
redis = env.redis()
trace = env.path("strace.out")
wrapper = env.path("lcgate-traced")
with open(wrapper, "w") as f:
    f.write("#!/bin/sh\nexec %s -f -qq -o %s -e trace=openat,open,getrandom %s \"$@\"\n"
            % (strace, trace, t.LCGATE))
os.chmod(wrapper, stat.S_IRWXU)
real, t.LCGATE = t.LCGATE, wrapper
# LeakSanitizer cannot run under ptrace; the rest of ASan and UBSan can.
asan = (os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
try:
    g = env.lcgate(c.gate_conf(mock, cache=c.redis_cache(redis)), name="lcgate-traced",
                   env={"LLAMA_CLOUD_API_KEY": t.KEY_A, "ASAN_OPTIONS": asan})
except Exception as e:
    g = None
    tap.ok(False, "lcgate starts under strace", e)
t.LCGATE = real
if g:
    auth = {"Authorization": "Bearer " + t.KEY_A}
    r1 = g.get(c.V2 + "?page_size=3", headers=auth)
    r2 = g.get(c.V2 + "?page_size=3", headers=auth)
    r3 = g.req("POST", c.V2, headers=dict(auth, **{"Content-Type": "application/json"}),
               body=b"{}")
    tap.ok(r1.status == 200 and r2.status == 200 and r3.status < 500,
           "requests through the traced lcgate are answered", (r1, r2, r3))
    # Stop lcgate itself (strace's child); strace exits with its status.
    kids = open("/proc/%d/task/%d/children" % (g.proc.pid, g.proc.pid)).read().split()
    for k in kids:
        os.kill(int(k), signal.SIGTERM)
    try:
        rc = g.proc.wait(15)
    except Exception as e:
        rc = e
    tap.eq(rc, 0, "lcgate exited 0 under strace")
    text = open(trace).read()
    opened = [ln for ln in text.splitlines()
              if re.search(r'open(at)?\(.*"/dev/u?random"', ln)]
    tap.ok(not opened, "lcgate never opens /dev/urandom or /dev/random", "\n".join(opened))
    # Its own draws: blocking getrandom (flags 0) of 8 bytes or more; libc's
    # 1-byte GRND_NONBLOCK draw for malloc does not count.
    own = re.findall(r'getrandom\(.*, (\d+), 0\) = (\d+)', text)
    tap.ok([n for n, got in own if int(n) >= 8 and n == got],
           "lcgate draws its random bytes with getrandom(2)",
           "\n".join(ln for ln in text.splitlines() if "getrandom" in ln)[:2000])
tap.done(env)
