"""make install DESTDIR=...: the binary in sbindir, the example
configuration in sysconfdir/lcgate/, the systemd unit in systemd's unit
directory, the man pages in man8 and man5; the installed unit passes
systemd-analyze verify and rates 2.0 or lower in systemd-analyze
security; the pages render with man -l and groff without a warning; make
uninstall removes every file.

The configuration is the operator's once installed (as nginx does with
its .default files): the example always goes in as lcgate.conf.default,
and lcgate.conf is a copy of it made only when absent, so a second make
install keeps an edited lcgate.conf, and make uninstall removes
lcgate.conf only when it is still the example.

Needs make, pkg-config, systemd-analyze (Debian package systemd), man
(man-db) and groff (groff-base); a missing one fails the test. mandoc
-Tlint runs only when mandoc is installed (optional, reported as SKIP).
"""
import os
import re
import shutil
import stat
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import lcgtest as t  # noqa: E402

tap = t.Tap()
env = t.Env("lcgate-install")

BUILDDIR = os.environ.get("LCGATE_BUILDDIR")
TOOLS = {"make": "make", "pkg-config": "pkg-config", "systemd-analyze": "systemd",
         "man": "man-db", "groff": "groff-base"}
PLACEHOLDER = re.compile(r"@[A-Za-z_]+@")


def clean_env(extra=None):
    """The environment without what the calling make passes down (its
    jobserver, DESTDIR) or the tests set, so that the nested make and the
    tools behave as when run by hand."""
    e = {k: v for k, v in os.environ.items()
         if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "DESTDIR")
         and not k.startswith("LCGATE_")}
    e["LC_ALL"] = "C.UTF-8"
    e.update(extra or {})
    return e


def run(args, extra_env=None, timeout=600, cwd=None):
    p = subprocess.run(args, capture_output=True, text=True, env=clean_env(extra_env),
                       timeout=timeout, cwd=cwd or env.dir)
    return p.returncode, p.stdout, p.stderr


def warnings(err):
    """troff's complaints, but for a line it cannot fill: a configured path
    longer than a line (make distcheck's are) is nobody's mistake."""
    return [line for line in err.splitlines() if line.strip()
            and "cannot adjust line" not in line and "cannot break line" not in line]


def bail(msg):
    tap.ok(False, msg)
    tap.done()


missing = ["%s (Debian package %s)" % (tool, pkg) for tool, pkg in sorted(TOOLS.items())
           if shutil.which(tool) is None]
tap.ok(not missing, "the tools this test needs are installed",
       "missing: " + ", ".join(missing))
if not BUILDDIR or not os.path.isfile(os.path.join(BUILDDIR, "Makefile")):
    bail("LCGATE_BUILDDIR names a configured build directory (got %r); run through make check"
         % BUILDDIR)
if missing:
    tap.done()

# The installation directories as this build's Makefile has them.
varnames = ["prefix", "sbindir", "sysconfdir", "mandir", "docdir", "systemdsystemunitdir",
            "PACKAGE_VERSION"]
vars_mk = env.path("vars.mk")
with open(vars_mk, "w") as f:
    f.write("lcgate-print-install-dirs:\n")
    for v in varnames:
        f.write("\t@echo '%s=$(%s)'\n" % (v, v))
rc, out, err = run(["make", "-s", "--no-print-directory", "-C", BUILDDIR, "-f", "Makefile",
                    "-f", vars_mk, "lcgate-print-install-dirs"])
dirs = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
tap.ok(rc == 0 and all(dirs.get(v) for v in varnames),
       "the Makefile names every installation directory, systemdsystemunitdir included",
       (rc, out, err))
if not all(dirs.get(v) for v in varnames):
    tap.done()

# Where the unit should go: what configure was told, else pkg-config's
# answer, else ${prefix}/lib/systemd/system.
rc, out, err = run([os.path.join(BUILDDIR, "config.status"), "--config"])
if "--with-systemdsystemunitdir" in out:
    tap.diag("configure was given --with-systemdsystemunitdir: %s" % dirs["systemdsystemunitdir"])
else:
    rc, pc, err = run(["pkg-config", "--variable=systemdsystemunitdir", "systemd"])
    want = pc.strip() if rc == 0 and pc.strip() else dirs["prefix"] + "/lib/systemd/system"
    tap.eq(dirs["systemdsystemunitdir"], want,
           "the unit directory is systemd's (pkg-config systemd) or the configure default")

root = env.path("root")
rc, out, err = run(["make", "-C", BUILDDIR, "install", "DESTDIR=" + root])
if not tap.ok(rc == 0, "make install DESTDIR=... succeeds", (out + err)[-3000:]):
    tap.done()


def dest(path):
    return root + path


def text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


sbin = dest(dirs["sbindir"] + "/lcgate")
conf = dest(dirs["sysconfdir"] + "/lcgate/lcgate.conf")
conf_default = conf + ".default"
unit = dest(dirs["systemdsystemunitdir"] + "/lcgate.service")
man8 = dest(dirs["mandir"] + "/man8/lcgate.8")
man5 = dest(dirs["mandir"] + "/man5/lcgate.conf.5")
dropin = dest(dirs["docdir"] + "/examples/redis.conf.example")
tap.ok(os.path.isfile(sbin) and os.access(sbin, os.X_OK), "lcgate is in sbindir, executable", sbin)
rc, out, err = run([sbin, "-V"])
tap.eq(out.strip(), "lcgate " + dirs["PACKAGE_VERSION"], "the installed lcgate -V prints the version")

ok = os.path.isfile(conf)
tap.ok(ok, "the example configuration is in sysconfdir/lcgate/", conf)
if ok:
    tap.ok(text(conf) == text(os.path.join(t.SRCDIR, "conf", "lcgate.conf")),
           "it is conf/lcgate.conf")
    mode = stat.S_IMODE(os.stat(conf).st_mode)
    tap.ok(mode & 0o004, "it is readable by every user (DynamicUser=yes), mode %o" % mode)
    rc, out, err = run([sbin, "-t", "-c", conf])
    tap.ok(rc == 0, "the installed lcgate -t accepts the installed configuration", err)

ok = os.path.isfile(unit)
tap.ok(ok, "lcgate.service is in the systemd unit directory", unit)
if ok:
    u = text(unit)
    tap.ok(not PLACEHOLDER.search(u), "the unit has no @placeholder@ left",
           PLACEHOLDER.findall(u))
    want = "ExecStart=%s/lcgate -c %s/lcgate/lcgate.conf" % (dirs["sbindir"], dirs["sysconfdir"])
    tap.ok(want in u.splitlines(), "the unit runs the installed binary on the installed file", want)
    for setting in ("Type=notify", "DynamicUser=yes", "LoadCredential=llama_cloud_api_key",
                    "ExecReload=/bin/kill -HUP $MAINPID", "WatchdogSec=30s", "LimitNOFILE=65536"):
        tap.ok(setting in u.splitlines(), "the unit has " + setting)

    # systemd-analyze checks that the commands exist: verify a copy whose
    # paths point into DESTDIR, with the installed man pages on MANPATH
    # (Documentation=man:...). Warnings about other units are not ours.
    vdir = env.path("verify")
    os.mkdir(vdir)
    copy = os.path.join(vdir, "lcgate.service")
    with open(copy, "w") as f:
        f.write(u.replace(dirs["sbindir"] + "/", dest(dirs["sbindir"]) + "/")
                 .replace(dirs["sysconfdir"] + "/", dest(dirs["sysconfdir"]) + "/"))
    manpath = {"MANPATH": dest(dirs["mandir"])}
    rc, out, err = run(["systemd-analyze", "verify", "--man=yes", copy], manpath)
    ours = [line for line in (out + err).splitlines() if "lcgate" in line]
    tap.ok(rc == 0 and not ours, "systemd-analyze verify passes on the installed unit",
           (rc, out, err))
    rc, out, err = run(["systemd-analyze", "security", "--offline=true", "--threshold=20",
                        "--no-pager", copy])
    m = re.search(r"Overall exposure level for lcgate\.service: ([0-9.]+)", out + err)
    tap.ok(rc == 0 and m and float(m.group(1)) <= 2.0,
           "systemd-analyze security rates the unit 2.0 or lower (%s)"
           % (m.group(1) if m else "no figure"), (rc, (out + err)[-2000:]))

tap.ok(os.path.isfile(dropin), "the Redis drop-in example is in docdir/examples/", dropin)
for name in ("prometheus/lcgate.rules.yml", "prometheus/lcgate.rules.test.yml",
             "grafana/lcgate.json"):
    path = dest(dirs["docdir"] + "/" + name)
    tap.ok(os.path.isfile(path) and text(path) == text(os.path.join(t.SRCDIR, "doc", name)),
           "doc/%s is in docdir/%s" % (name, os.path.dirname(name)), path)

for page, name in ((man8, "LCGATE"), (man5, "LCGATE.CONF")):
    base = os.path.basename(page)
    section = os.path.basename(os.path.dirname(page))
    if not tap.ok(os.path.isfile(page), "%s is in mandir/%s" % (base, section), page):
        continue
    src = text(page)
    tap.ok(not PLACEHOLDER.search(src), "%s has no @placeholder@ left" % base,
           PLACEHOLDER.findall(src))
    rc, out, err = run(["man", "-P", "cat", "-l", page], {"MANWIDTH": "80"})
    tap.ok(rc == 0 and out.startswith(name + "(") and "NAME" in out and not warnings(err),
           "man -l renders %s" % base, (rc, out[:300], err))
    rc, out, err = run(["groff", "-man", "-Tutf8", "-ww", "-z", page])
    tap.ok(rc == 0 and not warnings(err),
           "groff -man -ww finds nothing to warn about in %s" % base, err)
    if shutil.which("mandoc"):
        rc, out, err = run(["mandoc", "-Tlint", "-Wall", page])
        tap.ok(rc == 0 and not (out + err).strip(), "mandoc -Tlint is clean on %s" % base,
               out + err)
    else:
        tap.n += 1
        print("ok %d - mandoc -Tlint on %s # SKIP mandoc is not installed (optional)"
              % (tap.n, base))

example = text(os.path.join(t.SRCDIR, "conf", "lcgate.conf"))
tap.ok(os.path.isfile(conf_default) and text(conf_default) == example,
       "the example is also installed as lcgate.conf.default", conf_default)


def files_under(top):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(top) for f in fs)


# The operator edits the configuration; installing again (an upgrade from
# source) must keep the edit, and uninstalling must not delete it.
EDIT = "\n; edited by the operator\n[cache]\nttl = 45s\n"
edited = example + EDIT
if os.path.isfile(conf):
    with open(conf, "w", encoding="utf-8") as f:
        f.write(edited)
rc, out, err = run(["make", "-C", BUILDDIR, "install", "DESTDIR=" + root])
tap.ok(rc == 0, "a second make install into the same DESTDIR succeeds", (out + err)[-3000:])
tap.ok(os.path.isfile(conf) and text(conf) == edited,
       "a second make install keeps the operator's edit of lcgate.conf",
       "lcgate.conf is %s" % ("missing" if not os.path.isfile(conf) else
                              "the example again" if text(conf) == example else "changed"))
tap.ok(os.path.isfile(conf_default) and text(conf_default) == example,
       "and installs the current example as lcgate.conf.default beside it")
tap.ok("lcgate.conf" in out + err and "kept" in out + err,
       "make install says that it kept the existing lcgate.conf", (out + err)[-1500:])

rc, out, err = run(["make", "-C", BUILDDIR, "uninstall", "DESTDIR=" + root])
left = files_under(root)
tap.ok(rc == 0 and left == [conf],
       "make uninstall removes every installed file but the edited lcgate.conf",
       (rc, err[-2000:], left))
tap.ok(os.path.isfile(conf) and text(conf) == edited, "the edited lcgate.conf is intact")

# An unchanged configuration is make install's own: uninstall removes it.
root = env.path("root2")
rc, out, err = run(["make", "-C", BUILDDIR, "install", "DESTDIR=" + root])
tap.ok(rc == 0, "make install into a fresh DESTDIR succeeds", (out + err)[-3000:])
rc, out, err = run(["make", "-C", BUILDDIR, "uninstall", "DESTDIR=" + root])
left = files_under(root)
tap.ok(rc == 0 and not left,
       "make uninstall removes every installed file, the unchanged lcgate.conf included",
       (rc, err[-2000:], left))
tap.done()
