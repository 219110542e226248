"""Soak: a bounded mixed run against one lcgate with the Redis store and
two workers (--workers), to show that it does not grow and does not leak.

`make soak [SOAK_SECONDS=600]` runs it (CI runs a shorter one). For the
whole run, client threads ask warm list queries (hits), new and expiring
ones (misses, refreshes, prefetches), and create jobs through the gateway
(writes that invalidate); meanwhile the upstream fails in windows (503s,
slow answers, reset connections), the configuration is reloaded (SIGHUP)
and redis-server is killed and restarted empty. Every 5 s the gateway's
RSS and open file descriptors are sampled.

Checks: RSS at the end within 10% of RSS after warm-up (the first fifth of
the run); no file descriptor growth; no client 5xx where the answer could
come from the cache or the upstream (only the fault windows may have
them); every 200 to a list query is a JSON list page of the right route;
SIGTERM ends it with exit 0 and, in a sanitizer build, no
AddressSanitizer or LeakSanitizer report.
"""
import argparse
import json
import os
import random
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import faults_lib as fl  # noqa: E402
import lcgtest as t  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--seconds", type=int, default=600)
ap.add_argument("--workers", type=int, default=2,
                help="lcgate's [server] workers (2: requests cross threads all run long)")
args = ap.parse_args()
SECONDS = max(30, args.seconds)
WARMUP = max(15.0, SECONDS / 5.0)
V1, V2 = c.V1, c.V2

# A sanitizer build keeps freed memory in a quarantine (256 MiB by default)
# that would look like growth; a small one keeps RSS meaningful.
os.environ["ASAN_OPTIONS"] = ":".join(
    o for o in (os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=16", "detect_leaks=1") if o)

tap = t.Tap()
env = t.Env("lcgate-soak")
mock = env.mock()
redis = env.redis()
conf = c.gate_conf(mock, cache=c.redis_cache(redis, ttl="3s", stale_while_revalidate="3s",
                                              stale_if_error="60s", prefetch="on",
                                              redis_timeout="200ms"),
                   upstream={"timeout": "2s"}, server={"workers": str(args.workers)})
g = c.start_gate(tap, env, conf, name="lcgate-soak")
if g is None:
    tap.done(env)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def nfds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


lock = threading.Lock()
counts = {"requests": 0, "5xx": 0, "5xx_in_fault": 0, "bad_body": 0, "writes": 0,
          "failed": 0}
bad = []
# The mock injects a fault (answers to requests sent then may be 5xx when no
# entry can stand in). A Redis restart is no excuse: lcgate goes upstream.
fault_on = threading.Event()
fault_grace = [0.0]   # until then, answers may still come from a fetch begun in it


def in_fault():
    return fault_on.is_set() or time.monotonic() < fault_grace[0]
t0 = time.monotonic()
stop_at = t0 + SECONDS


def note(key, diag=None):
    with lock:
        counts[key] += 1
        if diag is not None and len(bad) < 20:
            bad.append(diag)


def list_ok(body):
    try:
        j = json.loads(body)
    except ValueError:
        return False
    return isinstance(j, dict) and isinstance(j.get("items"), list)


def reader(n, pool):
    rng = random.Random(n)
    while time.monotonic() < stop_at:
        path = rng.choice(pool)
        began_in_fault = in_fault()
        r = c.get(g.port, path, timeout=10)
        with lock:
            counts["requests"] += 1
        if r.status == 0:
            note("failed", (path, repr(r.body[:120])))
        elif r.status >= 500:
            hit = began_in_fault or in_fault()
            # When it began and ended (s into the run), and its request id,
            # to find it in lcgate's log.
            note("5xx_in_fault" if hit else "5xx",
                 None if hit else (path, r.status, r.body[:120], round(r.t0 - t0, 2),
                                   round(r.t1 - t0, 2), r.header("X-Request-Id")))
        elif r.status == 200 and not list_ok(r.body):
            note("bad_body", (path, r.body[:120]))
        time.sleep(0.005)


def writer():
    while time.monotonic() < stop_at:
        r = c.create_via(g.port, "v1")
        with lock:
            counts["requests"] += 1
            counts["writes"] += 1
        if r.status >= 500 and not in_fault():
            note("5xx", ("POST", r.status, r.body[:120]))
        time.sleep(0.5)


hot = [V1 + "?limit=%d" % n for n in range(3, 23)] + [V2 + "?page_size=%d" % n
                                                      for n in range(3, 13)]
wide = fl.query_pool()
threads = [threading.Thread(target=reader, args=(i, hot), daemon=True) for i in range(3)]
threads += [threading.Thread(target=reader, args=(10 + i, wide), daemon=True) for i in range(2)]
threads += [threading.Thread(target=writer, daemon=True)]
for th in threads:
    th.start()

samples = []          # (t, rss KiB, fds)
events = []
next_sample = t0
n = 0
while time.monotonic() < stop_at:
    now = time.monotonic()
    el = now - t0
    if now >= next_sample:
        samples.append((round(el, 1), rss_kib(g.proc.pid), nfds(g.proc.pid)))
        next_sample += 5
    # Every 30 s, one fault window of 4 s, by turns: 503s, slow, resets.
    slot = int(el // 30)
    in_window = 10 <= el % 30 < 14
    if in_window and not fault_on.is_set():
        kind = slot % 3
        f = [{"status": 503}, {"delay_ms": 2500}, {"reset": True}][kind]
        mock.fault(count=-1, **f)
        fault_on.set()
        events.append((round(el, 1), "fault", f))
    elif not in_window and fault_on.is_set():
        c.clear_fault(mock)
        fault_grace[0] = time.monotonic() + 3.0   # upstream timeout (2 s) + 1 s
        fault_on.clear()
        events.append((round(time.monotonic() - t0, 1), "fault cleared", None))
    # A reload every 20 s; Redis killed and restarted empty every 90 s.
    if int(el // 20) > n:
        n = int(el // 20)
        os.kill(g.proc.pid, signal.SIGHUP)
        events.append((round(el, 1), "SIGHUP", None))
        if n % 4 == 2 and redis.poll() is None:
            env.stop(redis, sig=signal.SIGKILL)
            redis = fl.redis_on_port(env, redis.port, "redis-again-%d" % n)
            events.append((round(time.monotonic() - t0, 1), "redis restarted empty", None))
    time.sleep(0.1)

for th in threads:
    th.join(20)
stuck = sum(th.is_alive() for th in threads)
c.clear_fault(mock)
samples.append((round(time.monotonic() - t0, 1), rss_kib(g.proc.pid), nfds(g.proc.pid)))

tap.diag("run: %d s, %d requests (%d writes), events: %d" % (
    SECONDS, counts["requests"], counts["writes"], len(events)))
for s in samples:
    tap.diag("t=%6.1f s  RSS %7d KiB  fds %3d" % s)
# RSS moves with the allocator's free lists from one sample to the next:
# compare the highest sample of the fifth after warm-up with the highest of
# the last fifth (a leak raises every sample; noise does not).
span = max(10.0, SECONDS / 5.0)
early = [s for s in samples if WARMUP <= s[0] <= WARMUP + span]
late = [s for s in samples if s[0] >= SECONDS - span]
base_rss = max(s[1] for s in early) if early else 0
end_rss = max(s[1] for s in late) if late else 0
base_fds = min(s[2] for s in early) if early else 0
end_fds = min(s[2] for s in late) if late else 0
tap.ok(counts["requests"] > SECONDS * 5 and not stuck,
       "the load ran: %d requests in %d s, no client stuck" % (counts["requests"], SECONDS),
       counts)
tap.ok(base_rss > 0 and end_rss <= base_rss * 1.10,
       "RSS after warm-up %d KiB, at the end %d KiB (highest samples; %+.1f%%): within 10%%"
       % (base_rss, end_rss, 100.0 * (end_rss - base_rss) / max(1, base_rss)))
tap.ok(end_fds <= base_fds + 2,
       "open file descriptors after warm-up %d, at the end %d: no growth" % (base_fds, end_fds))
tap.ok(counts["5xx"] == 0 and counts["failed"] == 0,
       "no client 5xx or failed request outside the fault windows (%d 5xx, %d failed; "
       "%d 5xx inside them)" % (counts["5xx"], counts["failed"], counts["5xx_in_fault"]),
       "\n".join(repr(b) for b in bad))
tap.ok(counts["bad_body"] == 0, "every 200 to a list query is a JSON list page (%d not)"
       % counts["bad_body"], "\n".join(repr(b) for b in bad))
code = env.stop(g.proc)
log = g.log()
tap.ok(code == 0, "SIGTERM: lcgate exited %s" % code, log[-2000:])
leak = "LeakSanitizer" in log or "AddressSanitizer" in log or "runtime error:" in log
with open(t.LCGATE, "rb") as f:
    asan = b"__asan_init" in f.read()
tap.ok(not leak, "no sanitizer or leak report on shutdown (%s)" % (
    "AddressSanitizer build: LeakSanitizer checked the exit" if asan
    else "not a sanitizer build: no leak check ran"), log[-3000:])
tap.diag("events: %s" % events[:12])
tap.done(env)
