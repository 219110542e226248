"""The Debian package, as CI checks it (scripts/test, LCGATE_SKIP_DEB=1 to
leave it out): scripts/deb builds it with dpkg-buildpackage -us -uc -b,
lintian finds no error in it, dpkg-deb -x unpacks it, the packaged lcgate
accepts the packaged configuration (-t) and, started on it against the mock
upstream, answers a list request 200.

Usage: python3 tests/deb/check.py [OUTDIR]   (the package is left in
OUTDIR, else in a temporary directory that is removed). Output is TAP.
Needs root or the build tools installed (scripts/deps test).
"""
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import lcgtest as t  # noqa: E402

BUILD_TIMEOUT = 900
tap = t.Tap()
env = t.Env("lcgate-deb")
out = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else env.path("out")
log_path = os.path.join(out, "build.log")
os.makedirs(out, exist_ok=True)


def clean_env():
    """Nothing a calling make or test run set: the package build is the
    one a maintainer runs by hand."""
    return {k: v for k, v in os.environ.items()
            if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "DESTDIR")
            and not k.startswith("LCGATE_") and not k.startswith("npm_config_")}


def run(args, timeout=120, **kw):
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    return p.returncode, p.stdout, p.stderr


def bail(name, diag):
    tap.ok(False, name, diag)
    tap.done(env)


# Build. ------------------------------------------------------------------
start = time.monotonic()
with open(log_path, "w") as log:
    p = subprocess.Popen([os.path.join(t.SRCDIR, "scripts", "deb"), out], stdout=log,
                         stderr=subprocess.STDOUT, env=clean_env(), start_new_session=True)
    try:
        rc = p.wait(BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        # The whole build (make, the tests it runs), not only the script.
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        rc = "timeout after %d s" % BUILD_TIMEOUT
took = time.monotonic() - start
with open(log_path, encoding="utf-8", errors="replace") as f:
    build_log = f.read()
lines = build_log.strip().splitlines()
deb = lines[-1] if rc == 0 and lines else ""
if not tap.ok(rc == 0 and os.path.isfile(deb) and re.search(r"/lcgate_[^/_]+_[^/_]+\.deb$", deb),
              "scripts/deb builds %s with dpkg-buildpackage -us -uc -b (%.0f s)"
              % (os.path.basename(deb) or "lcgate_<version>_<arch>.deb", took),
              "exit %s; the log (%s) ends, compiler command lines left out:\n%s"
              % (rc, log_path, "\n".join([x for x in lines if not x.startswith("gcc ")][-25:]))):
    tap.done(env)
changes = deb[:-len(".deb")] + ".changes"

# What the package's own test step (dh_auto_test) did.
summary = dict(re.findall(r"^# (TOTAL|PASS|SKIP|FAIL|ERROR|XPASS): +(\d+)$", build_log, re.M))
tap.ok(summary.get("PASS", "0") != "0" and summary.get("FAIL") == "0"
       and summary.get("ERROR") == "0",
       "the package's test step passes (%s passed, %s skipped)"
       % (summary.get("PASS"), summary.get("SKIP")), summary)
m = re.search(r"^SKIP: tests/integration/sdk\.py - (.+)$", build_log, re.M)
tap.ok(m, "it skips the SDK test, which needs the npm registry, and says why: %s"
       % (m.group(1) if m else "no SKIP line"))

# lintian. ----------------------------------------------------------------
rc, so, se = run(["lintian", "--fail-on", "error", changes], timeout=600)
tags = re.findall(r"^([EWIPXO]): ", so, re.M)
errors, warnings = tags.count("E"), tags.count("W")
tap.ok(rc == 0 and errors == 0,
       "lintian reports no error (%d errors, %d warnings, %d info)"
       % (errors, warnings, tags.count("I")), so + se)
for line in so.splitlines():
    tap.diag("lintian: " + line)

# Unpack and look. -------------------------------------------------------
root = env.path("root")
rc, so, se = run(["dpkg-deb", "-x", deb, root])
if not tap.ok(rc == 0, "dpkg-deb -x unpacks it", se):
    tap.done(env)
ctl = env.path("control")
rc, so, se = run(["dpkg-deb", "-e", deb, ctl])
version = run(["dpkg-deb", "-f", deb, "Version"])[1].strip()


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


sbin = root + "/usr/sbin/lcgate"
conf = root + "/etc/lcgate/lcgate.conf"
shipped = ["/usr/sbin/lcgate", "/etc/lcgate/lcgate.conf", "/lib/systemd/system/lcgate.service",
           "/usr/share/man/man8/lcgate.8.gz", "/usr/share/man/man5/lcgate.conf.5.gz",
           "/usr/share/doc/lcgate/README.Debian", "/usr/share/doc/lcgate/copyright",
           "/usr/share/doc/lcgate/examples/redis.conf.example"]
missing = [f for f in shipped if not os.path.isfile(root + f)]
tap.ok(not missing, "it ships the binary, the configuration, the unit, both man pages and "
       "README.Debian", "missing: %s" % missing)
tap.ok(not os.path.exists(conf + ".default"),
       "no lcgate.conf.default beside the conffile (make install's, for source installs)")
tap.eq(read(os.path.join(ctl, "conffiles")).split(), ["/etc/lcgate/lcgate.conf"],
       "/etc/lcgate/lcgate.conf is its one conffile")
postinst = read(os.path.join(ctl, "postinst"))
tap.ok("deb-systemd-helper debian-installed 'lcgate.service'" in postinst
       and "was-enabled defaults to true" not in postinst,
       "the unit is installed disabled (dh_installsystemd --no-enable)", postinst)

# Run the packaged binary. ------------------------------------------------
rc, so, se = run([sbin, "-V"])
tap.eq(so.strip(), "lcgate " + version.split("-")[0], "the packaged lcgate -V prints the "
       "package's version")
rc, so, se = run([sbin, "-t", "-c", conf])
tap.ok(rc == 0, "the packaged lcgate -t -c <unpacked>/etc/lcgate/lcgate.conf accepts it",
       so + se)

mock = env.mock()
port, admin = t.free_port(), t.free_port()
p = env.spawn([sbin, "-c", conf], "lcgate-deb-%d" % port,
              {"LCGATE_SERVER_LISTEN": "127.0.0.1:%d" % port,
               "LCGATE_SERVER_ADMIN_LISTEN": "127.0.0.1:%d" % admin,
               "LCGATE_UPSTREAM_BASE_URL": mock.url,
               "LLAMA_CLOUD_API_KEY": t.KEY_A})
env.gates.append(p)
g = t.Gate(env, p, port, admin, conf)
try:
    g.wait_ready()
    r = g.get("/api/v1/beta/batch-processing?limit=5")
except Exception as e:
    bail("the packaged lcgate starts on the packaged configuration and answers", e)
# The request has no key: the mock answers 401 unless lcgate injected it.
tap.ok(r.status == 200 and isinstance(r.json().get("items"), list),
       "the packaged lcgate, on the packaged configuration, answers a list request "
       "200 through the mock upstream, the key injected (X-Cache: %s)" % r.header("x-cache"),
       r)
stats = mock.stats()
tap.ok(any(x["query"] == "limit=5" and x["headers"].get("authorization") == "Bearer " + t.KEY_A
           for x in stats["last"]),
       "the mock upstream served it, with the key from the environment", stats)
tap.done(env)
