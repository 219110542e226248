"""workers = N (issue 7, in scope 4): the client listener on threads of its
own, with the cache, coalescing, rate limits and metrics shared by all.

- The threads exist ("lcgate-w1", "lcgate-w2") and both serve: 24
  keep-alive connections spread over the two SO_REUSEPORT sockets, and
  each thread's run time grows while they are served; they answer fresh
  hits themselves, without waking the main loop.
- Coalescing across workers: 100 concurrent identical misses on 100
  connections cost the upstream exactly 1 request, and every client gets
  the same body.
- One client budget across workers: burst 20 at a slow rate, 40 requests
  at once on 40 connections: exactly 20 answered, 20 refused with 429.
- A write through one connection is seen at once on every other.
- Requests a worker refuses itself (400) are logged and counted on main.
- SIGHUP reaches the workers: a smaller max_request_line gives 414.
- A Unix socket is shared by the workers.
- SIGTERM with 10 slow requests in flight: all 10 are answered 200, and
  lcgate exits 0 with no sanitizer report.
"""
import http.client
import os
import re
import signal
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import lcgtest as t  # noqa: E402
import ratelimit_lib as rlib  # noqa: E402
import workers_lib as wl  # noqa: E402

V1, V2 = c.V1, c.V2
tap = t.Tap()
env = t.Env("lcgate-workers")
mock = env.mock()
W = rlib.project("workers-rl")
conf = c.gate_conf(mock, server={"workers": "2"})
conf[rlib.proj_section(W)] = {"rate": "6/min", "burst": "20"}
g = c.start_gate(tap, env, conf)
if g is None:
    tap.done(env)


def metric(name, labels=""):
    text = t.request(g.admin, "GET", "/metrics").body.decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


# --- the threads exist and both serve -------------------------------------
names = wl.threads(g.proc.pid)
workers = [names.get("lcgate-w1", [None])[0], names.get("lcgate-w2", [None])[0]]
tap.ok(None not in workers, "two worker threads run, named lcgate-w1 and lcgate-w2",
       sorted(names))

if None not in workers:
    path = V1 + "?limit=9"
    c.get(g.port, path)  # stored: the rest are hits
    before = [wl.run_ns(g.proc.pid, tid) for tid in workers]
    main_before = wl.voluntary_switches(g.proc.pid, g.proc.pid)
    conns = [http.client.HTTPConnection("127.0.0.1", g.port, timeout=10) for _ in range(24)]
    statuses = set()
    for _ in range(20):
        for conn in conns:
            conn.request("GET", path)
            r = conn.getresponse()
            r.read()
            statuses.add((r.status, r.getheader("X-Cache")))
    for conn in conns:
        conn.close()
    after = [wl.run_ns(g.proc.pid, tid) for tid in workers]
    main_woken = wl.voluntary_switches(g.proc.pid, g.proc.pid) - main_before
    grew = [(a - b) / 1e6 for a, b in zip(after, before)]
    tap.ok(statuses == {(200, "HIT")}, "480 requests on 24 keep-alive connections: all HITs",
           statuses)
    tap.ok(all(ms >= 1.0 for ms in grew),
           "both workers served them (each thread ran at least 1 ms)",
           "run time grew by %s ms" % ["%.2f" % ms for ms in grew])
    # One request at a time: each one handed to main would wake it once.
    tap.ok(main_woken < 48,
           "the workers answered the hits themselves: the main loop woke %d times for 480 "
           "sequential hits (fewer than 48)" % main_woken)

# --- coalescing across workers ---------------------------------------------
wl.coalesce_100(tap, mock, g.port)

# --- one client budget across workers --------------------------------------
wl.budget_40(tap, g.port, W, 19, "budget burst 20")

# --- a write is seen at once on every connection ---------------------------
path = V2 + "?page_size=50"
first = c.get(g.port, path)
again = c.get(g.port, path)
made = c.create_via(g.port, "v2")
new_id = (made.json() or {}).get("id") if made.status in (200, 201) else None
seen = [c.get(g.port, path) for _ in range(6)]
tap.ok(first.status == 200 and c.xc(again) == "HIT" and new_id is not None
       and all(new_id in c.ids(r) for r in seen),
       "a create through one connection is in the list on the next 6 connections",
       (first, again, made, [c.xc(r) for r in seen]))

# --- refusals made on a worker are logged and counted on main ---------------
before = metric("lcgate_requests_total", 'status="400"')
s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
s.sendall(b"GET /api/v1/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
got = s.recv(4096)
s.close()
# (the access log line is written at the end of the loop turn that counted it)
t.wait_for(lambda: metric("lcgate_requests_total", 'status="400"') >= before + 1 and
           re.search(r'"status":400', g.log()), 5, "the 400 counted and logged")
tap.ok(got.startswith(b"HTTP/1.1 400") and
       metric("lcgate_requests_total", 'status="400"') == before + 1 and
       re.search(r'"status":400', g.log()) is not None,
       "a request a worker refuses (two Host fields: 400) is counted and logged once",
       got[:200])

# --- SIGHUP reaches the workers ---------------------------------------------
with open(g.conf_path) as f:
    text = f.read()
with open(g.conf_path, "w") as f:
    f.write(text.replace("[server]\n", "[server]\nmax_request_line = 300\n", 1))
os.kill(g.proc.pid, signal.SIGHUP)
long_path = V1 + "?limit=5&x=" + "a" * 400


def refused_414():
    codes = [c.get(g.port, long_path).status for _ in range(6)]
    return all(x == 414 for x in codes)


try:
    t.wait_for(refused_414, 5, "414 on every worker")
    ok = True
except Exception:
    ok = False
tap.ok(ok, "after SIGHUP with max_request_line = 300, six connections all get 414")
with open(g.conf_path, "w") as f:
    f.write(text)
os.kill(g.proc.pid, signal.SIGHUP)

# --- a Unix socket is shared ------------------------------------------------
sock_path = env.path("w.sock")
u = c.start_gate(tap, env, c.gate_conf(mock, server={"workers": "2",
                                                     "listen": "unix:" + sock_path}),
                 name="lcgate-unix")
if u is not None:
    answers = []
    for _ in range(8):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(sock_path)
        s.sendall(b"GET " + V1.encode() + b"?limit=4 HTTP/1.1\r\nHost: localhost\r\n"
                  b"Connection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        answers.append(data.split(b"\r\n", 1)[0])
    tap.ok(answers == [b"HTTP/1.1 200 OK"] * 8,
           "listen = unix:... with 2 workers: 8 connections answered 200", answers)
    tap.eq(u.stop(), 0, "that lcgate exits 0")

# --- SIGTERM drains what the workers handed over ----------------------------
wl.sigterm_drain(tap, mock, g)
tap.done(env)
