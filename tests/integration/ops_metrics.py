"""The SLO metrics move when they should: the request-duration histogram by
route and cache result (answers on the main loop and on worker threads),
upstream buckets past the upstream timeout, the process_* metrics against
/proc, and the reload counter and timestamp on a bad and a good SIGHUP;
promtool accepts all of it."""
import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import lcgtest as t  # noqa: E402

V1 = "/api/v1/beta/batch-processing"
tap = t.Tap()
env = t.Env("lcgate-metrics-new")
mock = env.mock()


def scrape(g):
    r = t.request(g.admin, "GET", "/metrics")
    assert r.status == 200, r
    return r.body.decode()


sample = t.metric_sample


def bounds(text, name, **labels):
    """The le values of a histogram series, in order."""
    pre = name + "_bucket{" + "".join('%s="%s",' % kv for kv in labels.items()) + 'le="'
    return [ln[len(pre):].split('"')[0] for ln in text.splitlines() if ln.startswith(pre)]


def promtool(text):
    p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    return p.returncode == 0, p.stdout.decode() + p.stderr.decode()


def gate(extra=None, **kw):
    conf = {"upstream": {"base_url": mock.url}, "cache": {"prefetch": "off"},
            "server": {"access_log": "off"}}
    for sec, kv in (extra or {}).items():
        conf.setdefault(sec, {}).update(kv)
    return env.lcgate(conf, env={"LLAMA_CLOUD_API_KEY": t.KEY_A}, **kw)


# --- lcgate_request_duration_seconds, on the main loop ---
g = gate(name="lcgate-hist")
text = scrape(g)
tap.eq(sample(text, "lcgate_request_duration_seconds_count", route="v1_batch_jobs",
              cache="MISS"), None, "no request yet: no request-duration series")
mock.fault(delay_ms=300, count=1, match="limit=3")
g.get(V1 + "?limit=3")           # a miss that waits 300 ms upstream
g.get(V1 + "?limit=3")           # a hit
g.get(V1 + "?limit=3")
g.get("/nowhere")
text = scrape(g)
miss = dict(route="v1_batch_jobs", cache="MISS")
hit = dict(route="v1_batch_jobs", cache="HIT")
tap.eq(sample(text, "lcgate_request_duration_seconds_count", **miss), 1.0,
       "a miss moves the histogram's count under route=v1_batch_jobs, cache=MISS")
tap.eq(sample(text, "lcgate_request_duration_seconds_count", **hit), 2.0,
       "two hits move it under cache=HIT")
tap.eq(sample(text, "lcgate_request_duration_seconds_count", route="none", cache="none"), 1.0,
       "the 404 is counted under route=none, cache=none")
tap.ok(sample(text, "lcgate_request_duration_seconds_bucket", **dict(miss, le="0.25")) == 0.0 and
       sample(text, "lcgate_request_duration_seconds_bucket", **dict(miss, le="1")) == 1.0 and
       (sample(text, "lcgate_request_duration_seconds_sum", **miss) or 0) >= 0.3,
       "the miss's 300 ms upstream wait lands above le=0.25 and within le=1")
tap.ok(sample(text, "lcgate_request_duration_seconds_bucket", **dict(hit, le="+Inf")) == 2.0 and
       (sample(text, "lcgate_request_duration_seconds_sum", **hit) or 1) < 0.25,
       "the hits are fast and +Inf equals the count")
b = bounds(text, "lcgate_request_duration_seconds", **hit)
tap.ok(b[:1] == ["0.0001"] and b[-3:] == ["30", "60", "+Inf"],
       "request buckets run from 100 us to 60 s, past the 30 s upstream timeout", b)
b = bounds(text, "lcgate_upstream_request_duration_seconds")
tap.ok(b[-4:] == ["20", "30", "60", "+Inf"],
       "upstream buckets reach past the 30 s timeout (..., 20, 30, 60)", b)
tap.eq(sample(text, "lcgate_upstream_request_duration_seconds_bucket", le="0.25"), 0.0,
       "the upstream histogram saw the 300 ms fetch above le=0.25")

# --- fds and RSS, against /proc ---
pid = g.proc.pid


def proc_fds():
    return len(os.listdir("/proc/%d/fd" % pid))


def soft_nofile():
    for line in open("/proc/%d/limits" % pid):
        if line.startswith("Max open files"):
            return float(line.split()[3])


def vmrss():
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return float(line.split()[1]) * 1024


text = scrape(g)
fds0 = sample(text, "process_open_fds")
tap.ok(fds0 is not None and abs(fds0 - proc_fds()) <= 2,
       "process_open_fds matches /proc/PID/fd (%s, %d)" % (fds0, proc_fds()))
tap.eq(sample(text, "process_max_fds"), soft_nofile(),
       "process_max_fds is the soft limit of /proc/PID/limits")
rss = sample(text, "process_resident_memory_bytes")
tap.ok(rss is not None and 1 << 20 < rss < 4 << 30 and abs(rss - vmrss()) < 0.25 * vmrss(),
       "process_resident_memory_bytes is plausible and near VmRSS (%s, %s)" % (rss, vmrss()))
socks = [socket.create_connection(("127.0.0.1", g.port)) for _ in range(20)]
t.wait_for(lambda: (sample(scrape(g), "lcgate_client_connections") or 0) >= 20, 10,
           "20 connections accepted")
fds1 = sample(scrape(g), "process_open_fds")
tap.ok(fds0 is not None and fds1 is not None and fds1 >= fds0 + 20, "20 open client connections raise process_open_fds by 20 or more "
       "(%s -> %s)" % (fds0, fds1))
for s in socks:
    s.close()
try:
    t.wait_for(lambda: sample(scrape(g), "process_open_fds") <= fds0 + 1, 10,
               "the connections' descriptors closed")
    tap.ok(True, "and closing them brings it back down")
except TimeoutError as e:
    tap.ok(False, "and closing them brings it back down", e)

# --- CPU time and start time ---
cpu0 = sample(scrape(g), "process_cpu_seconds_total")
for _ in range(200):
    g.get(V1 + "?limit=3")
cpu1 = sample(scrape(g), "process_cpu_seconds_total")
tap.ok(cpu0 is not None and cpu1 is not None and 0 < cpu0 < cpu1, "process_cpu_seconds_total grows with work "
       "(%s -> %s)" % (cpu0, cpu1))
with open("/proc/%d/stat" % pid) as f:
    ticks = int(f.read().rsplit(")", 1)[1].split()[19])
boot = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
start = sample(scrape(g), "process_start_time_seconds")
tap.ok(start is not None and abs(start - (boot + ticks / os.sysconf("SC_CLK_TCK"))) < 1,
       "process_start_time_seconds is the start in /proc/PID/stat as wall time")
ok, out = promtool(scrape(g))
tap.ok(ok, "promtool check metrics accepts the new families", out)
g.stop()

# --- the same histogram on worker threads (hits answered off the main loop) ---
g = gate({"server": {"workers": "2"}}, name="lcgate-hist-workers")
g.get(V1 + "?limit=4")
for _ in range(5):
    g.get(V1 + "?limit=4")
text = scrape(g)
tap.ok(sample(text, "lcgate_request_duration_seconds_count", route="v1_batch_jobs",
              cache="MISS") == 1.0 and
       sample(text, "lcgate_request_duration_seconds_count", **hit) == 5.0 and
       sample(text, "lcgate_requests_total", route="v1_batch_jobs", status="200",
              cache="HIT") == 5.0,
       "with workers = 2 the worker threads' hits are observed too (5 hits, 1 miss)")
g.stop()

# --- a longer upstream timeout: the buckets follow it ---
g = gate({"upstream": {"timeout": "2m"}}, name="lcgate-timeout")
b = bounds(scrape(g), "lcgate_upstream_request_duration_seconds")
tap.ok(b[-3:] == ["120", "300", "+Inf"], "timeout = 2m: upstream buckets end at 120, 300", b)
g.stop()

# --- reloads ---
t0 = time.time()
g = gate(name="lcgate-reloads")
text = scrape(g)
ts0 = sample(text, "lcgate_config_last_reload_success_timestamp_seconds")
tap.ok(sample(text, "lcgate_config_reloads_total", result="success") == 0.0 and
       sample(text, "lcgate_config_reloads_total", result="failure") == 0.0,
       "both reload results are exposed at 0 from the start")
tap.ok(ts0 is not None and t0 - 1 <= ts0 <= time.time() + 1,
       "the last-success timestamp is set at start (%s)" % ts0)
good = open(g.conf_path).read()
with open(g.conf_path, "w") as f:
    f.write(good + "\n[cache]\nbogus = 1\n")
os.kill(g.proc.pid, signal.SIGHUP)
t.wait_for(lambda: "reload rejected" in g.log(), 5, "the rejection")
text = scrape(g)
tap.ok(sample(text, "lcgate_config_reloads_total", result="failure") == 1.0 and
       sample(text, "lcgate_config_reloads_total", result="success") == 0.0,
       "a failed SIGHUP moves result=failure only")
tap.eq(sample(text, "lcgate_config_last_reload_success_timestamp_seconds"), ts0,
       "and leaves the timestamp")
time.sleep(0.05)
with open(g.conf_path, "w") as f:
    f.write(good)
os.kill(g.proc.pid, signal.SIGHUP)
t.wait_for(lambda: "configuration reloaded" in g.log(), 5, "the reload")
text = scrape(g)
tap.ok(sample(text, "lcgate_config_reloads_total", result="success") == 1.0 and
       sample(text, "lcgate_config_reloads_total", result="failure") == 1.0,
       "a good SIGHUP moves result=success")
ts1 = sample(text, "lcgate_config_last_reload_success_timestamp_seconds")
tap.ok(ts1 is not None and ts0 < ts1 <= time.time() + 1,
       "and moves the timestamp forward (%s -> %s)" % (ts0, ts1))
ok, out = promtool(text)
tap.ok(ok, "promtool check metrics accepts them after reloads", out)
tap.ok(not re.search(r"llx-", text), "no key in the metrics")
tap.done(env)
