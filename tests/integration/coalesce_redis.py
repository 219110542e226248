"""Coalescing across instances sharing one redis-server: a fetch lease in
Redis, waiters woken when the fetch completes, a waiter taking over when its
leader dies, and no client error when Redis itself dies.

Issue 4, done when:
- "The same with 50 concurrent clients on each of two instances sharing one
  redis-server: exactly 1 upstream request."
- "Leader killed (SIGKILL) while holding the lease with a slow upstream: the
  other instance's waiters are answered within lease + upstream time, with
  no error."
- "Redis killed during a 20 s run of coalesced misses: zero client 5xx and
  no waiter hangs past its deadline."
"""
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import tcpproxy  # noqa: E402
import lcgtest as t  # noqa: E402

V1, V2 = c.V1, c.V2
WORKERS = int(os.environ.get("LCGATE_TEST_WORKERS") or 1)
tap = t.Tap()
env = t.Env("lcgate-coalesce-redis")
mock = env.mock()
redis = env.redis()
ga = c.start_gate(tap, env, c.gate_conf(mock, cache=c.redis_cache(redis)), name="lcgate-a")
gb = c.start_gate(tap, env, c.gate_conf(mock, cache=c.redis_cache(redis)), name="lcgate-b")

if ga and gb:
    # --- 50 concurrent clients on each of two instances ---------------------
    path = V1 + "?limit=17"
    mock.reset()
    mock.fault(delay_ms=1000, match="?limit=17", count=-1)
    jobs = [(ga.port, path, None), (gb.port, path, None)] * 50
    res, _ = c.concurrent(jobs, timeout=15)
    n_up = c.upstream_gets(mock, V1)
    c.clear_fault(mock)
    direct = mock.get(path)
    tap.eq(n_up, 1, "50 + 50 concurrent identical misses on two instances sharing Redis: "
           "exactly 1 upstream request")
    bodies = set(r.body for r in res)
    tap.ok(all(r.status == 200 for r in res) and bodies == {direct.body},
           "all 100 clients get a 200 with the upstream's body", c.summary(res))
    stored = [r for r in res if c.cs(r) == c.CS_STORED]
    collapsed = [r for r in res if c.cs(r) == c.CS_COLLAPSED]
    tap.ok(len(stored) == 1 and len(collapsed) == 99 and all(c.xc(r) == "MISS" for r in res),
           "one leader ('stored'), 99 waiters ('collapsed'), all X-Cache: MISS", c.summary(res))

    # --- a waiter on the other instance is woken at once --------------------
    # The leader runs on A; 10 waiters on B join once its fetch is under way.
    # Different upstream delays per round, so that polling for the entry
    # cannot stay within 200 ms of the leader in every round by luck.
    for i, delay in enumerate((1000, 600, 1100)):
        q = "?page_size=%d" % (41 + i)
        mock.reset()
        mock.fault(delay_ms=delay, match=q, count=-1)
        lead = c.Background(ga.port, V2 + q, timeout=10).start()
        seen = c.wait_upstream(mock, V2, 1, 5)
        res, _ = c.concurrent([(gb.port, V2 + q, None)] * 10, timeout=10)
        leader = lead.join(10)
        n_up = c.upstream_gets(mock, V2)
        c.clear_fault(mock)
        ok = (seen == 1 and n_up == 1 and c.cs(leader) == c.CS_STORED
              and all(c.cs(r) == c.CS_COLLAPSED and r.body == leader.body for r in res))
        lag = max(r.t1 for r in res) - leader.t1
        tap.ok(ok and lag <= 0.2,
               "upstream %d ms: 10 waiters on B collapse onto A's fetch and are answered "
               "within 200 ms of it" % delay,
               "upstream requests %d, lag %.3f s, leader %r\n%s"
               % (n_up, lag, (leader.status, c.cs(leader)), c.summary(res)))

# --- the leader dies while it holds the lease -----------------------------
# A takes the first request (the leader, with the lease); B gets 20 concurrent
# requests for the same key (waiters); A is SIGKILLed. B's waiters must be
# answered within lock_lease + upstream delay + 1 s of the kill, all 200.
LEASE, DELAY = 2.0, 3.0
lconf = c.gate_conf(mock, cache=c.redis_cache(redis, lock_lease="2s"))
a2 = c.start_gate(tap, env, lconf, name="lcgate-leader")
b2 = c.start_gate(tap, env, lconf, name="lcgate-waiter") if a2 else None
if a2 and b2:
    q = "?limit=44"
    mock.reset()
    mock.fault(delay_ms=int(DELAY * 1000), match=q, count=-1)
    lead = c.Background(a2.port, V1 + q, timeout=15).start()
    seen = c.wait_upstream(mock, V1, 1, 5)
    tap.eq(seen, 1, "leader on A: its fetch reached the upstream")
    killed = {}

    def kill_leader():
        time.sleep(0.5)  # B's 20 requests are in, waiting on A's lease
        killed["n_up"] = c.upstream_gets(mock, V1)
        killed["t"] = time.monotonic()
        env.stop(a2.proc, sig=signal.SIGKILL)

    res, _ = c.concurrent([(b2.port, V1 + q, None)] * 20, timeout=15, start=kill_leader)
    lead.join(5)
    n_up = c.upstream_gets(mock, V1)
    c.clear_fault(mock)
    direct = mock.get(V1 + q)
    tap.eq(killed.get("n_up"), 1,
           "while A holds the lease, B's 20 waiters send nothing upstream")
    budget = LEASE + DELAY + 1.0
    late = max(r.t1 for r in res) - killed["t"]
    tap.ok(all(r.status == 200 for r in res) and late <= budget,
           "after SIGKILL of the leader, B's 20 waiters all get 200 within %.0f s "
           "(lock_lease + upstream delay + 1 s)" % budget,
           "last answer %.2f s after the kill\n%s" % (late, c.summary(res)))
    tap.ok(set(r.body for r in res) == {direct.body},
           "and they all get the upstream's body", c.summary(res))
    tap.eq(n_up, 2, "B takes over with exactly one upstream request (A's + B's)")

# --- a lookup that Redis answers after another fetch has ended -----------
# A's fetch of a key takes 600 ms. B asks for the key at 300 ms; its lookup
# reaches Redis through a proxy that holds Redis's replies until 900 ms, so B
# learns "miss" after A's answer is stored and A's lease released. B must
# find A's answer then (it checks the store again once it holds the lease),
# not fetch the key a second time. Once with B another instance, once with
# B the same instance as A.
proxy = tcpproxy.Proxy(redis.port)
pconf = c.gate_conf(mock, cache=dict(c.redis_cache(redis, redis_timeout="3s"),
                                     redis_url="redis://127.0.0.1:%d/0" % proxy.port))
gp = c.start_gate(tap, env, pconf, name="lcgate-proxied")
gq = c.start_gate(tap, env, c.gate_conf(mock, cache=c.redis_cache(redis, redis_timeout="3s")),
                  name="lcgate-direct")
for n, (leader_gate, what) in enumerate(((gq, "another instance"), (gp, "the same instance"))):
    if not (gp and gq and redis.poll() is None):
        break
    q = V1 + "?limit=%d" % (61 + n)
    mock.reset()
    mock.fault(delay_ms=600, match="limit=%d" % (61 + n), count=-1)
    t0 = time.monotonic()
    lead = c.Background(leader_gate.port, q, timeout=10).start()
    seen = c.wait_upstream(mock, V1, 1, 5)
    time.sleep(max(0.0, t0 + 0.3 - time.monotonic()))
    proxy.hold_after(b"MGET")
    try:
        late = c.Background(gp.port, q, timeout=10).start()
        held = proxy.held.wait(2)
        leader = lead.join(5)
        time.sleep(max(0.0, t0 + 0.9 - time.monotonic()))
    finally:
        proxy.release()
    second = late.join(10)
    time.sleep(0.3)
    n_up = c.upstream_gets(mock, V1)
    c.clear_fault(mock)
    tap.ok(held and seen == 1 and leader.status == 200 and c.cs(leader) == c.CS_STORED
           and leader.t1 < t0 + 0.9,
           "late lookup, leader on %s: B's lookup was held in Redis while A's fetch "
           "was stored" % what, (held, seen, leader, c.cs(leader)))
    # With workers, B's held lookup is its worker's: the miss it learns
    # goes to the main loop, whose own lookup finds A's answer stored.
    tap.ok(second.status == 200 and second.body == leader.body
           and (c.cs(second) == c.CS_COLLAPSED or (WORKERS > 1 and c.xc(second) == "HIT")),
           "late lookup, leader on %s: B gets A's answer ('collapsed'%s)"
           % (what, ", or a hit found by the main loop" if WORKERS > 1 else ""),
           (second, c.cs(second)))
    tap.eq(n_up, 1, "late lookup, leader on %s: the upstream saw exactly one request "
           "for the key" % what)
proxy.close()

# --- Redis SIGKILLed during 20 s of coalesced misses ----------------------
# Two fresh instances; 3 threads on each ask the same key at once, the key
# changing every 0.5 s (each a miss that several clients wait for, on both
# instances). Redis dies at 6 s and stays dead.
UP_TIMEOUT = 2.0
kconf = c.gate_conf(mock, cache=c.redis_cache(redis, redis_timeout="200ms"),
                    upstream={"timeout": "2s"})
gc = c.start_gate(tap, env, kconf, name="lcgate-c")
gd = c.start_gate(tap, env, kconf, name="lcgate-d")
if gc and gd and redis.poll() is None:
    mock.reset()
    mock.fault(delay_ms=300, match="offset=7", count=-1)
    t0 = time.monotonic()
    stop = t0 + 20
    kill_at = t0 + 6
    results = []
    lock = threading.Lock()

    def worker(port):
        while True:
            now = time.monotonic()
            if now >= stop:
                return
            slot = int((now - t0) / 0.5)
            r = c.get(port, V1 + "?limit=%d&offset=7" % (slot + 1), timeout=10)
            with lock:
                results.append((r.t0 - t0, r.t1 - r.t0, slot, r.status, c.xc(r), c.cs(r),
                                r.body[:160] if r.status != 200 else b""))

    threads = [threading.Thread(target=worker, args=(g.port,), daemon=True)
               for g in (gc, gd) * 3]
    for th in threads:
        th.start()
    time.sleep(max(0, kill_at - time.monotonic()))
    before_kill = (c.upstream_gets(mock, V1), len(set(r[2] for r in results)))
    env.stop(redis, sig=signal.SIGKILL)
    tap.diag("redis-server SIGKILLed at %.1f s; before: %d upstream requests for %d keys"
             % (time.monotonic() - t0, before_kill[0], before_kill[1]))
    for th in threads:
        th.join(max(0.1, stop + 15 - time.monotonic()))
    c.clear_fault(mock)
    stuck = sum(th.is_alive() for th in threads)
    bad = [r for r in results if r[3] == 0 or r[3] >= 500]
    after = [r for r in results if r[0] >= kill_at - t0]
    tap.ok(len(results) >= 100 and len(after) >= 50,
           "the load ran: %d requests, %d after the kill" % (len(results), len(after)))
    tap.ok(not bad and not stuck,
           "zero client 5xx or failed requests while Redis was killed (%d of %d)"
           % (len(bad), len(results)),
           "threads still stuck: %d\n%s" % (stuck, "\n".join(repr(b) for b in bad[:8])))
    longest = max([r[1] for r in results] or [0])
    tap.ok(longest <= UP_TIMEOUT + 1.0,
           "no request took longer than upstream timeout + 1 s (longest %.2f s)" % longest,
           sorted(results, key=lambda r: -r[1])[:5])
    tap.diag("X-Cache over the run: %s" % {k: sum(1 for r in results if r[4] == k)
                                           for k in set(r[4] for r in results)})
tap.done(env)
