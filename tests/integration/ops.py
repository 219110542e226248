"""Operations: /metrics (Prometheus text that promtool accepts, exact
counts, bounded project labels), the JSON access log, /readyz, SIGHUP
reload (valid and invalid) and SIGTERM drain."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import lcgtest as t  # noqa: E402

V1 = "/api/v1/beta/batch-processing"
tap = t.Tap()
env = t.Env("lcgate-ops")
mock = env.mock()


def metrics(g):
    r = t.request(g.admin, "GET", "/metrics")
    return r, r.body.decode()


def sample(text, name, **labels):
    want = name + ("{" + ",".join('%s="%s"' % kv for kv in labels.items()) + "}"
                   if labels else "")
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return None


# --- metrics and the access log ---
g = env.lcgate({"upstream": {"base_url": mock.url},
                "cache": {"prefetch": "off"},
                "ratelimit": {"rate": "100000/s", "burst": "100000"}},
               env={"LLAMA_CLOUD_API_KEY": t.KEY_A}, name="lcgate-metrics")
g.get(V1 + "?limit=3")
g.get(V1 + "?limit=3")
g.get(V1 + "?limit=3")
g.get(V1 + "?limit=ten")
g.get("/nowhere")
r, text = metrics(g)
tap.ok(r.status == 200 and r.header("content-type", "").startswith("text/plain; version=0.0.4"),
       "/metrics answers Prometheus text", r.headers)
tap.eq(sample(text, "lcgate_requests_total", route="v1_batch_jobs", status="200", cache="HIT"),
       2.0, "two hits counted by route, status and cache result")
tap.eq(sample(text, "lcgate_requests_total", route="v1_batch_jobs", status="200", cache="MISS"),
       1.0, "one miss counted")
tap.eq(sample(text, "lcgate_requests_total", route="v1_batch_jobs", status="422", cache="none"),
       1.0, "the 422 counted")
tap.eq(sample(text, "lcgate_requests_total", route="none", status="404", cache="none"), 1.0,
       "the 404 counted")
tap.eq(sample(text, "lcgate_upstream_requests_total", status="200"), 1.0,
       "one upstream request counted by status")
tap.eq(sample(text, "lcgate_upstream_request_duration_seconds_count"), 1.0,
       "the upstream latency histogram saw it")
tap.ok(sample(text, "lcgate_build_info", version=t.run_version()) == 1.0
       if hasattr(t, "run_version") else "lcgate_build_info{" in text, "build info is exposed")
tap.ok(t.KEY_A not in text, "no key in the metrics")
promtool = subprocess.run(["promtool", "check", "metrics"], input=r.body, capture_output=True,
                          timeout=30)
tap.ok(promtool.returncode == 0, "promtool check metrics accepts the output",
       promtool.stdout.decode() + promtool.stderr.decode())

g.stop()
lines = [ln for ln in g.log().splitlines() if ln.startswith("{")]
try:
    recs = [json.loads(ln) for ln in lines]
except ValueError as e:
    recs = []
    tap.diag("not JSON: %s" % e)
tap.eq(len(recs), 5, "one JSON access-log line per request")
if recs:
    first = recs[0]
    tap.ok(set(first) >= {"time", "request_id", "method", "path", "route", "status", "cache",
                          "project", "upstream_status", "upstream_ms", "duration_ms", "bytes",
                          "client"}, "an access-log line has every field", first)
    tap.ok(first["status"] == 200 and first["cache"] == "MISS" and
           first["upstream_status"] == 200 and first["route"] == "v1_batch_jobs",
           "the miss's line names its cache result and upstream status", first)
    tap.ok(all("?" not in rec["path"] for rec in recs), "no query string in the access log")
tap.ok(t.KEY_A not in g.log(), "no key in the logs")

# --- project labels stay bounded under a flood of project ids ---
g = env.lcgate({"upstream": {"base_url": mock.url}, "cache": {"prefetch": "off"},
                "server": {"access_log": "off"},
                "ratelimit": {"rate": "1/h", "burst": "1"}},
               env={"LLAMA_CLOUD_API_KEY": t.KEY_A}, name="lcgate-flood")
conn_port = g.port
for i in range(300):
    pid = "flood-%03d" % i
    t.request(conn_port, "GET", "/api/v2/batches?project_id=%s" % pid)
    t.request(conn_port, "GET", "/api/v2/batches?project_id=%s" % pid)
r, text = metrics(g)
series = [ln for ln in text.splitlines() if ln.startswith("lcgate_rate_limited_total{")]
other = sample(text, "lcgate_rate_limited_total", project="other", budget="client")
tap.ok(len(series) <= 201 and other is not None and other >= 100,
       "300 rate-limited projects make at most 201 series, the rest counted as other "
       "(%d series, other=%s)" % (len(series), other))

# --- readyz ---
r = t.request(g.admin, "GET", "/readyz")
tap.ok(r.status == 200 and r.json().get("status") == "ready", "/readyz is 200 ready", r)
g.stop()

# --- SIGHUP reload ---
g = env.lcgate({"upstream": {"base_url": mock.url}, "cache": {"prefetch": "off"},
                "ratelimit": {"rate": "1/h", "burst": "1"}},
               env={"LLAMA_CLOUD_API_KEY": t.KEY_A}, name="lcgate-reload")
r1, r2 = g.get(V1 + "?limit=4"), g.get(V1 + "?limit=4")
tap.ok(r1.status == 200 and r2.status == 429, "before reload: rate 1/h allows 1", (r1, r2))
conf = open(g.conf_path).read()
with open(g.conf_path, "w") as f:
    f.write(conf.replace("rate = 1/h", "rate = 100000/s").replace("burst = 1\n", "burst = 1000\n"))
mock.fault(delay_ms=800, count=1, match="inflight")
slow = {}
# Its own project, so its own (still unspent) budget.
th = threading.Thread(target=lambda: slow.setdefault(
    "r", g.get("/api/v2/batches?project_id=inflight")))
th.start()
time.sleep(0.2)
os.kill(g.proc.pid, signal.SIGHUP)
t.wait_for(lambda: "configuration reloaded" in g.log(), 5, "reload logged")
th.join(10)
time.sleep(0.05)  # the spent state carries over: at most one period of the new rate
r = g.get(V1 + "?limit=4")
tap.ok(r.status == 200, "after a valid reload the new limits apply", r)
tap.ok(slow.get("r") is not None and slow["r"].status == 200,
       "a request in flight during the reload is answered", slow.get("r"))
with open(g.conf_path, "w") as f:
    f.write(conf + "\n[cache]\nbogus = 1\n")
os.kill(g.proc.pid, signal.SIGHUP)
t.wait_for(lambda: "reload rejected" in g.log(), 5, "rejection logged")
line = [ln for ln in g.log().splitlines() if "reload rejected" in ln][-1]
tap.ok(("%s:" % g.conf_path) in line and "bogus" in line,
       "an invalid reload is rejected with FILE:LINE", line)
r = g.get(V1 + "?limit=4")
tap.ok(r.status == 200 and g.proc.poll() is None, "and the running configuration stays", r)

# --- SIGTERM drain ---
mock.fault(delay_ms=1500, count=1, match="limit=6")
slow = {}
th = threading.Thread(target=lambda: slow.setdefault("r", g.get(V1 + "?limit=6", timeout=10)))
th.start()
time.sleep(0.3)
t0 = time.monotonic()
os.kill(g.proc.pid, signal.SIGTERM)
time.sleep(0.2)
ready = t.request(g.admin, "GET", "/readyz")
tap.ok(ready.status == 503 and ready.json().get("status") == "draining",
       "/readyz is 503 draining during the drain", ready)
refused = False
try:
    socket.create_connection(("127.0.0.1", g.port), timeout=1).close()
except OSError:
    refused = True
tap.ok(refused, "a new connection is refused once draining")
th.join(10)
tap.ok(slow.get("r") is not None and slow["r"].status == 200,
       "the request in flight is finished with 200", slow.get("r"))
rc = g.proc.wait(15)
tap.ok(rc == 0 and time.monotonic() - t0 < 5, "then lcgate exits 0 (%.1f s)" %
       (time.monotonic() - t0))
tap.done(env)
