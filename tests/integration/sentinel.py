"""Redis Sentinel (issue 15, part 2): two lcgate instances find their
primary through three sentinels and follow it when it is killed under
load.

- Config errors, with FILE:LINE: sentinels without sentinel_master, a
  sentinel_master without sentinels, a sentinels entry that is not
  host:port, sentinels with a unix:// redis_url. -T never prints
  sentinel_password.
- Both instances come up on the primary the sentinels name (redis_url's
  host and port are a dead address: they are not used), /readyz names it,
  and the log says so. The second instance's first sentinel accepts
  connections and never answers: it is skipped.
- The primary is SIGKILLed while client threads make list requests on both
  instances (hits, misses, a write now and then): 0 client 5xx or
  failures, and each instance's /readyz names the new primary (and is ok)
  within the sentinels' own failover time (until they all agree) + 2 s.
- After it, the instances share again: a write through one invalidates the
  other's list, a miss on one is a hit on the other. Each log has the one
  info line of the change.
- Against a fake sentinel that never publishes +switch-master (a lost
  message): the poll alone moves an instance within 2 s, the sentinel
  password is sent, and a primary the sentinel names that is a replica is
  never used (ROLE).
"""
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import lcgtest as t  # noqa: E402
import sentinel as sn  # noqa: E402

V1 = c.V1
MASTER = "lcg"
tap = t.Tap()
env = t.Env("lcgate-sentinel")


# --- config errors ---------------------------------------------------------------
def conf_error(cache_lines):
    path = env.path("bad-%d.conf" % len(os.listdir(env.dir)))
    with open(path, "w") as f:
        f.write("[cache]\nstore = redis\n" + cache_lines)
    p = subprocess.run([t.LCGATE, "-t", "-c", path], capture_output=True, text=True,
                       timeout=20)
    return p.returncode, p.stderr.replace(path, "FILE")


rc, err = conf_error("sentinels = 127.0.0.1:26379, 127.0.0.1:26380\n")
tap.ok(rc != 0 and "FILE:3: sentinels needs sentinel_master" in err,
       "sentinels without sentinel_master: refused at its line", err)
rc, err = conf_error("redis_url = redis://127.0.0.1:6379/0\nsentinel_master = lcg\n")
tap.ok(rc != 0 and "FILE:4: sentinel_master needs sentinels" in err,
       "sentinel_master without sentinels: refused at its line", err)
rc, err = conf_error("sentinel_master = lcg\nsentinels = 127.0.0.1:26379, localhost\n")
tap.ok(rc != 0 and "FILE:4: sentinels must be host:port addresses" in err,
       "a sentinels entry that is not host:port: refused at its line", err)
rc, err = conf_error("sentinel_master = lcg\nsentinels = 127.0.0.1:0\n")
tap.ok(rc != 0 and "FILE:4: sentinels must be host:port addresses" in err,
       "a sentinel on port 0: refused", err)
rc, err = conf_error("redis_url = unix:///tmp/r.sock\nsentinel_master = lcg\n"
                     "sentinels = 127.0.0.1:26379\n")
tap.ok(rc != 0 and "FILE:5: sentinels needs a redis:// or rediss:// redis_url" in err,
       "sentinels with a unix:// redis_url: refused", err)
rc, err = conf_error("sentinel_master = lcg\nsentinels = 127.0.0.1:26379, [::1]:26380\n"
                     "sentinel_password = s3cret\n")
tap.ok(rc == 0, "sentinels, sentinel_master and sentinel_password together are valid", err)
good = env.path("good.conf")
with open(good, "w") as f:
    f.write("[cache]\nstore = redis\nsentinel_master = lcg\n"
            "sentinels = 127.0.0.1:26379,[::1]:26380\nsentinel_password = s3cret\n")
p = subprocess.run([t.LCGATE, "-T", "-c", good], capture_output=True, text=True, timeout=20)
tap.ok(p.returncode == 0 and "s3cret" not in p.stdout + p.stderr and
       "; sentinel_password = (set, not shown)\n" in p.stdout and
       "sentinels = 127.0.0.1:26379, [::1]:26380\n" in p.stdout and
       "sentinel_master = lcg\n" in p.stdout,
       "-T prints the sentinels and the master, and never the sentinel password",
       p.stdout + p.stderr)

def readyz(g):
    return t.request(g.admin, "GET", "/readyz", timeout=2).json()


def names(g, port):
    r = readyz(g)
    return r.get("redis_primary") == "127.0.0.1:%d" % port and r.get("store_state") == "ok"


# --- a fake sentinel: answers, never publishes ---------------------------------------
class FakeSentinel(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), FakeHandler)
        self.primary = None          # (host, port) it names
        self.auths = []
        threading.Thread(target=self.serve_forever, daemon=True).start()


def bulk(x):
    x = str(x).encode()
    return b"$%d\r\n%s\r\n" % (len(x), x)


class FakeHandler(socketserver.StreamRequestHandler):
    def command(self):
        head = self.rfile.readline()
        if not head.startswith(b"*"):
            return None
        args = []
        for _ in range(int(head[1:])):
            n = int(self.rfile.readline()[1:])
            args.append(self.rfile.read(n + 2)[:-2].decode())
        return args

    def handle(self):
        while True:
            args = self.command()
            if not args:
                return
            verb = args[0].upper()
            if verb == "AUTH":
                self.server.auths.append(args[-1])
                out = b"+OK\r\n"
            elif verb == "PING":
                out = b"+PONG\r\n"
            elif verb == "SUBSCRIBE":
                out = b"*3\r\n" + bulk("subscribe") + bulk(args[1]) + b":1\r\n"
            elif verb == "SENTINEL" and args[2] == MASTER and self.server.primary:
                out = b"*2\r\n" + bulk(self.server.primary[0]) + bulk(self.server.primary[1])
            elif verb == "SENTINEL":
                out = b"*-1\r\n"
            else:
                out = b"-ERR unknown command\r\n"
            self.wfile.write(out)


mock = env.mock()
fake = FakeSentinel()
r1 = env.redis()
r2 = env.redis()
replica = env.redis(["--replicaof", "127.0.0.1", str(r1.port)])
fake.primary = ("127.0.0.1", replica.port)
cache = {"store": "redis", "redis_url": "redis://127.0.0.1:%d/0" % t.free_port(),
         "sentinels": "127.0.0.1:%d" % fake.server_address[1], "sentinel_master": MASTER,
         "sentinel_password": "s3cret-sentinel", "redis_timeout": "200ms"}
g = env.lcgate(c.gate_conf(mock, cache=cache), env={"LLAMA_CLOUD_API_KEY": t.KEY_A},
               name="lcgate-fake", wait=False)
try:
    t.wait_for(lambda: "ROLE says slave, not master" in g.log(), 10, "the ROLE refusal")
    ok = True
except TimeoutError:
    ok = False
ready = readyz(g)
tap.ok(ok and ready.get("store_state") != "ok" and
       ready.get("redis_primary") == "127.0.0.1:%d" % replica.port,
       "a replica named as the primary is never used: ROLE says slave", [ready, g.log()[-1500:]])
tap.ok(fake.auths and set(fake.auths) == {"s3cret-sentinel"},
       "the sentinel password is sent to the sentinel (AUTH)", fake.auths)
tap.ok("s3cret-sentinel" not in g.log(), "and never logged")
for target in (r1, r2):
    fake.primary = ("127.0.0.1", target.port)
    t0 = time.monotonic()
    try:
        t.wait_for(lambda: names(g, target.port), 5, "the move")
        took = time.monotonic() - t0
    except TimeoutError:
        took = None
    tap.ok(took is not None and took < 2.0,
           "no +switch-master: the poll alone moves it to 127.0.0.1:%d (%s s)"
           % (target.port, "%.2f" % took if took is not None else "never"), g.log()[-1500:])
r = c.get(g.port, V1 + "?limit=35")
r = c.get(g.port, V1 + "?limit=35")
tap.ok(c.xc(r) == "HIT" and int(sn.value(r2.port, "DBSIZE")) > 0,
       "and it caches on the primary it moved to", r)
g.stop()
for p in (r1, r2, replica):
    env.stop(p)
fake.shutdown()

# --- two instances through the sentinels --------------------------------------------
ha = sn.Cluster(env, master=MASTER)
first = ha.primary()
tap.diag("primary %s:%d, sentinels %s" % (first + (", ".join(ha.sentinels),)))
dead = t.free_port()   # redis_url's host and port: nothing listens there
# A sentinel that accepts connections (the kernel's backlog) and never answers.
silent = socket.socket()
silent.bind(("127.0.0.1", 0))
silent.listen(16)
silent_addr = "127.0.0.1:%d" % silent.getsockname()[1]
gates = []
for n, sentinels in (("a", ha.sentinels), ("b", [silent_addr] + ha.sentinels)):
    cache = {"store": "redis", "redis_url": "redis://127.0.0.1:%d/0" % dead,
             "sentinels": ", ".join(sentinels), "sentinel_master": MASTER,
             "redis_timeout": "200ms"}
    gates.append(c.start_gate(tap, env, c.gate_conf(mock, cache=cache), name="lcgate-" + n))
if None in gates:
    tap.done(env)
a, b = gates


try:
    t.wait_for(lambda: names(a, first[1]) and names(b, first[1]), 10, "both on the primary")
    ok = True
except TimeoutError:
    ok = False
tap.ok(ok, "both instances are up on the primary the sentinels name, and /readyz says "
       "\"redis_primary\": \"127.0.0.1:%d\"" % first[1], [readyz(a), readyz(b)])
line = "redis: primary %s is now 127.0.0.1:%d (was none)" % (MASTER, first[1])
tap.ok(all(line in g.log() for g in gates), "each log says: " + line,
       [g.log()[-1500:] for g in gates])
tap.ok("redis: sentinel %s did not answer (" % silent_addr in b.log(),
       "a sentinel that does not answer is skipped for the next, and the log says so",
       b.log()[-1500:])
r1 = c.get(a.port, V1 + "?limit=31")
r2 = c.get(b.port, V1 + "?limit=31")
tap.ok(c.xc(r1) == "MISS" and c.xc(r2) == "HIT",
       "control: a miss on one instance is a hit on the other", [r1, r2])

# --- the primary killed under load -----------------------------------------------------
stop = threading.Event()
results = []
lock = threading.Lock()


def load(g, n):
    i = 0
    while not stop.is_set():
        if i % 25 == 24:
            r = c.create_via(g.port, "v1")
        elif i % 4 == 0:
            r = c.get(g.port, V1 + "?limit=%d&offset=%d" % (n + 1, 1000 + i))   # a miss
        else:
            r = c.get(g.port, V1 + "?limit=%d" % (1 + i % 5))                  # hits
        with lock:
            results.append((g.port, r.status, c.xc(r), r.t1 - r.t0))
        i += 1


threads = [threading.Thread(target=load, args=(g, n)) for n, g in enumerate(gates * 2)]
for th in threads:
    th.start()
time.sleep(2)
followed = {}


def watch(g):
    while not stop.is_set():
        try:
            r = readyz(g)
            p = r.get("redis_primary")
            if r.get("store_state") == "ok" and p and p != "127.0.0.1:%d" % first[1]:
                followed[g.port] = (time.monotonic(), p)
                return
        except Exception:
            pass
        time.sleep(0.02)


watchers = [threading.Thread(target=watch, args=(g,)) for g in gates]
old = ha.kill_primary()
t0 = time.monotonic()
for w in watchers:
    w.start()
try:
    new = ha.wait_failover(old, 30)
except TimeoutError as e:
    new = None
    tap.diag(str(e))
t_sent = time.monotonic() - t0
for w in watchers:
    w.join(t_sent + 5)
time.sleep(2)          # load on the new primary for a while
stop.set()
for th in threads:
    th.join(30)
for w in watchers:
    w.join(1)
tap.diag("sentinels agreed on 127.0.0.1:%s after %.2f s" % (new, t_sent))

tap.ok(new is not None, "the sentinels fail over to the replica")
errors = [r for r in results if r[1] == 0 or r[1] >= 500]
tap.ok(len(results) > 100, "the load ran on both instances (%d requests)" % len(results))
tap.ok(not errors, "0 client 5xx or failures during and after the failover (%d)"
       % len(errors), errors[:5])
want = "127.0.0.1:%s" % new
for g in gates:
    f = followed.get(g.port)
    took = f[0] - t0 if f else None
    tap.ok(f is not None and f[1] == want and took <= t_sent + 2.0,
           "%s follows the new primary within the sentinels' failover time + 2 s "
           "(%s s, the sentinels %.2f s)" % (g.proc.name, "%.2f" % took if f else "never",
                                            t_sent), f)
line = "redis: primary %s is now %s (was 127.0.0.1:%d)" % (MASTER, want, old)
# Each thread with connections of its own follows the primary, and says so.
tap.ok(all(g.log().count(line) == t.threads_with_redis() for g in gates),
       "each log says it once per thread with Redis connections: " + line,
       [g.log()[-2000:] for g in gates])

# --- shared again ----------------------------------------------------------------------
t.wait_for(lambda: names(a, new) and names(b, new), 5, "both settled")
q = V1 + "?limit=33"
r1 = c.get(a.port, q)
r2 = c.get(b.port, q)
tap.ok(c.xc(r1) == "MISS" and c.xc(r2) == "HIT",
       "after it, a miss on one instance is a hit on the other", [r1, r2])
warm = [c.get(b.port, q) for _ in range(2)]
w = c.create_via(a.port, "v1")
r3 = c.get(b.port, q)
tap.ok(c.xc(warm[-1]) == "HIT" and w.status == 200 and c.xc(r3) == "MISS" and
       (c.js(w) or {}).get("id") in c.ids(r3),
       "after it, a write through one instance invalidates the other's list",
       [warm[-1], w, r3])
r4 = c.get(a.port, q)
tap.ok(c.xc(r4) == "HIT", "and the list fetched again by the other is a hit here", r4)
tap.done(env)
