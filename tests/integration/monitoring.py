"""The monitoring kit: doc/prometheus/lcgate.rules.yml passes promtool
check rules and its unit tests (promtool test rules), with an alert for
each of the store down, upstream errors, 429s, descriptors near their
limit and reload failures; doc/grafana/lcgate.json is a dashboard (valid
JSON, every query valid PromQL); and every metric either names is one a
running lcgate exports.

promtool (Debian's prometheus package) is required: without it the test
fails, unless LCGATE_ALLOW_OFFLINE_SKIP=1 lets it skip."""
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import lcgtest as t  # noqa: E402

tap = t.Tap()
RULES = os.path.join(t.SRCDIR, "doc", "prometheus", "lcgate.rules.yml")
RULE_TESTS = os.path.join(t.SRCDIR, "doc", "prometheus", "lcgate.rules.test.yml")
DASHBOARD = os.path.join(t.SRCDIR, "doc", "grafana", "lcgate.json")
ALERTS = ["LcgateStoreDown", "LcgateUpstreamErrors", "LcgateRateLimited",
          "LcgateFdsNearLimit", "LcgateReloadFailed"]
METRIC = re.compile(r"\b((?:lcgate|process)_[a-zA-Z0-9_]*)\b")

if shutil.which("promtool") is None:
    if os.environ.get("LCGATE_ALLOW_OFFLINE_SKIP") == "1":
        print("1..0 # SKIP promtool is not installed (apt-get install prometheus)")
        sys.exit(0)
    tap.ok(False, "promtool is installed (apt-get install prometheus; "
           "LCGATE_ALLOW_OFFLINE_SKIP=1 skips this test)")
    tap.done()


def promtool(*args):
    p = subprocess.run(["promtool"] + list(args), capture_output=True, text=True, timeout=60)
    return p.returncode == 0, p.stdout + p.stderr


def rule_exprs(text):
    """(alert, expr) of every rule: "expr: X" on one line or "expr: |" and
    the lines indented below it."""
    out, alert, lines, i = [], None, text.splitlines(), 0
    while i < len(lines):
        m = re.match(r"^\s*- alert: (\w+)\s*$", lines[i])
        if m:
            alert = m.group(1)
        m = re.match(r"^(\s*)expr: (.*)$", lines[i])
        if m:
            if m.group(2).strip() == "|":
                block, indent = [], len(m.group(1))
                while i + 1 < len(lines) and (not lines[i + 1].strip() or
                                              len(lines[i + 1]) - len(lines[i + 1].lstrip())
                                              > indent):
                    i += 1
                    block.append(lines[i].strip())
                out.append((alert, " ".join(b for b in block if b)))
            else:
                out.append((alert, m.group(2).strip()))
        i += 1
    return out


# --- the rules ---
ok, out = promtool("check", "rules", RULES)
tap.ok(ok, "promtool check rules accepts lcgate.rules.yml", out)
ok, out = promtool("test", "rules", RULE_TESTS)
tap.ok(ok, "promtool test rules passes lcgate.rules.test.yml", out)
rules_text = open(RULES).read()
tests_text = open(RULE_TESTS).read()
exprs = rule_exprs(rules_text)
names = [a for a, _ in exprs]
tap.eq(sorted(names), sorted(ALERTS), "one alert each: store down, upstream errors, 429 "
       "rate, descriptors near their limit, reload failures")
for a in ALERTS:
    fired = re.search(r"alertname: %s\n\s*exp_alerts:\n\s*- exp_labels:" % a, tests_text)
    quiet = re.search(r"alertname: %s\n\s*exp_alerts: \[\]" % a, tests_text)
    tap.ok(fired and quiet, "the rule tests show %s firing and quiet" % a)

# --- the dashboard ---
try:
    dash = json.load(open(DASHBOARD))
    tap.ok(True, "lcgate.json is valid JSON")
except ValueError as e:
    dash = {}
    tap.ok(False, "lcgate.json is valid JSON", e)
panels = [p for p in dash.get("panels", []) if p.get("type") != "row"]
targets = [(p["title"], tg["expr"]) for p in panels for tg in p.get("targets", [])]
tap.ok(dash.get("uid") and dash.get("title") and len(panels) >= 10 and
       all(p.get("targets") for p in panels),
       "it is a dashboard: uid, title, %d panels, each with a query" % len(panels))
tap.ok(all(p.get("datasource", {}).get("uid") == "${datasource}" for p in panels),
       "every panel reads the data source chosen in its variable")
ids = [p.get("id") for p in dash.get("panels", [])]
tap.ok(len(ids) == len(set(ids)), "panel ids are unique")
variables = [v["name"] for v in dash.get("templating", {}).get("list", [])]
tap.ok(variables == ["datasource", "job", "instance"], "variables: datasource, job, instance",
       variables)

# Grafana's variables as a PromQL parser takes them, then every query as
# a recording rule: promtool check rules parses each one.
subst = [("$__rate_interval", "5m"), ("$__range", "1h"), ("$job", ".*"), ("$instance", ".*")]
rules = ["groups:", "  - name: dashboard", "    rules:"]
for i, (title, expr) in enumerate(targets):
    for a, b in subst:
        expr = expr.replace(a, b)
    rules += ["      - record: dashboard:query_%d" % i, "        expr: %s" % json.dumps(expr)]
env = t.Env("lcgate-monitoring")
qfile = env.path("dashboard.rules.yml")
with open(qfile, "w") as f:
    f.write("\n".join(rules) + "\n")
ok, out = promtool("check", "rules", qfile)
tap.ok(ok and targets, "promtool parses every dashboard query (%d)" % len(targets), out)

# --- every metric named is one lcgate exports ---
# A running lcgate, after a miss, a hit and a 429, exports every family
# (the labelled ones appear once used).
mock = env.mock()
g = env.lcgate({"upstream": {"base_url": mock.url}, "server": {"access_log": "off"},
                "ratelimit": {"rate": "1/h", "burst": "2"}},
               env={"LLAMA_CLOUD_API_KEY": t.KEY_A}, name="lcgate-monitoring")
for _ in range(3):
    g.get("/api/v2/batches?limit=2")
text = t.request(g.admin, "GET", "/metrics").body.decode()
exported = set()
for m in re.finditer(r"^# TYPE (\S+) (\S+)$", text, re.M):
    exported.add(m.group(1))
    if m.group(2) == "histogram":
        exported.update(m.group(1) + s for s in ("_bucket", "_sum", "_count"))
tap.ok("lcgate_rate_limited_total" in exported and
       "lcgate_upstream_requests_total" in exported,
       "the scrape holds the labelled families too (%d names)" % len(exported))
for where, exprs_ in (("the rules", [e for _, e in exprs]),
                      ("the dashboard", [e for _, e in targets])):
    used = set(n for e in exprs_ for n in METRIC.findall(e))
    tap.ok(all(METRIC.search(e) for e in exprs_),
           "every expression of %s names an lcgate metric" % where)
    tap.ok(used and used <= exported, "every metric %s names is exported (%d): %s"
           % (where, len(used), ", ".join(sorted(used))), sorted(used - exported))
tap.done(env)
