"""A reload under a 20 s load changes a rate limit and a TTL with zero
failed requests; an invalid reload keeps the old configuration and logs
the reason."""
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import lcgtest as t  # noqa: E402

V1 = "/api/v1/beta/batch-processing"
tap = t.Tap()
env = t.Env("lcgate-reload")
mock = env.mock()
g = env.lcgate({"upstream": {"base_url": mock.url},
                "cache": {"prefetch": "off", "ttl": "5s"},
                "server": {"access_log": "off"},
                "ratelimit": {"rate": "100000/s", "burst": "100000"}},
               env={"LLAMA_CLOUD_API_KEY": t.KEY_A})
conf = open(g.conf_path).read()
stop = time.monotonic() + 20
results = []
lock = threading.Lock()


def worker(n):
    i = 0
    while time.monotonic() < stop:
        try:
            r = g.get(V1 + "?limit=%d" % (1 + (i + n) % 20), timeout=10)
            rec = (r.status, r.header("ratelimit-policy"), r.header("cache-status"))
        except Exception as e:
            rec = (0, repr(e), None)
        with lock:
            results.append((time.monotonic(), rec))
        i += 1


ths = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
for th in ths:
    th.start()
time.sleep(5)
# A new rate (100000/s -> 50000/min, still far above the load) and TTL.
with open(g.conf_path, "w") as f:
    f.write(conf.replace("rate = 100000/s", "rate = 50000/min").replace("ttl = 5s", "ttl = 60s"))
os.kill(g.proc.pid, signal.SIGHUP)
t_reload = time.monotonic()
t.wait_for(lambda: "configuration reloaded" in g.log(), 5, "the reload")
time.sleep(5)
with open(g.conf_path, "w") as f:
    f.write(conf + "\n[cache]\nttl = soon\n")
os.kill(g.proc.pid, signal.SIGHUP)
t.wait_for(lambda: "reload rejected" in g.log(), 5, "the rejection")
for th in ths:
    th.join(30)

failed = [rec for _, rec in results if rec[0] != 200]
tap.ok(len(results) > 500, "the load ran (%d requests)" % len(results))
tap.ok(not failed, "zero failed requests across both reloads (%d)" % len(failed), failed[:5])
after = [rec for ts, rec in results if ts > t_reload + 1]
before = [rec for ts, rec in results if ts < t_reload]
tap.ok(before and all(rec[1] == '"project";q=100000;w=1' for rec in before),
       "before the reload the old rate applies", before[:1])
tap.ok(after and all(rec[1] == '"project";q=100000;w=120' for rec in after),
       "after it the new rate applies, also after the rejected reload", after[:1])
hit_ttls = [int(rec[2].split("ttl=")[1]) for ts, rec in results
            if ts > t_reload + 2 and rec[2] and rec[2].startswith("lcgate; hit; ttl=")]
tap.ok(hit_ttls and max(hit_ttls) > 5, "hits after the reload count down from the new TTL "
       "(max ttl=%s)" % (max(hit_ttls) if hit_ttls else None))
line = [ln for ln in g.log().splitlines() if "reload rejected" in ln]
tap.ok(line and ("%s:" % g.conf_path) in line[-1] and "ttl" in line[-1],
       "the invalid reload is logged with FILE:LINE and the reason", line[-1:])
tap.ok(g.proc.poll() is None, "lcgate is still running")
tap.done(env)
