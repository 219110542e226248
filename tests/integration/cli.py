"""The command line: -V, -h, -t with FILE:LINE errors, env overrides, and
the example configuration passing -t."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import lcgtest as t  # noqa: E402

tap = t.Tap()
env = t.Env("lcgate-cli")


def run(args, extra_env=None):
    e = {k: v for k, v in os.environ.items()
         if not k.startswith("LCGATE_") or k in ("LCGATE_BIN", "LCGATE_SRCDIR")}
    e.pop("LLAMA_CLOUD_API_KEY", None)
    e.update(extra_env or {})
    p = subprocess.run([t.LCGATE] + args, capture_output=True, text=True, env=e, timeout=20)
    return p.returncode, p.stdout, p.stderr


def conf(text):
    path = env.path("c%d.conf" % len(os.listdir(env.dir)))
    with open(path, "w") as f:
        f.write(text)
    return path


rc, out, err = run(["-V"])
tap.ok(rc == 0 and out.startswith("lcgate "), "-V prints the version", (rc, out, err))
rc, out, err = run(["-h"])
tap.ok(rc == 0 and "-t" in out and "-c FILE" in out and "LCGATE_" in out,
       "-h prints usage with every option", out)
rc, out, err = run(["-x"])
tap.ok(rc == 2, "an unknown option exits 2", (rc, err))

example = os.path.join(t.SRCDIR, "conf", "lcgate.conf")
rc, out, err = run(["-t", "-c", example])
tap.ok(rc == 0, "the example configuration passes -t", err)

cases = [
    ("[server]\nlisten = 127.0.0.1:1\nfoo = bar\n", 3, "unknown key"),
    ("[cache]\nttl = forever\n", 2, "duration"),
    ("\n\n[mystery]\na = b\n", 4, "unknown section"),
    ("[cache]\nmemory_max = 1TB\n", 2, "size"),
]
for text, line, word in cases:
    path = conf(text)
    rc, out, err = run(["-t", "-c", path])
    want = "%s:%d: " % (path, line)
    tap.ok(rc == 1 and err.startswith(want) and word in err,
           "-t reports %s as FILE:LINE" % word, (rc, err))

rc, out, err = run(["-t", "-c", env.path("missing.conf")])
tap.ok(rc == 1 and "missing.conf" in err, "-t on a missing file exits 1 naming it", err)

path = conf("[server]\nlisten = 127.0.0.1:1\n")
rc, out, err = run(["-t", "-c", path], {"LCGATE_SERVER_LISTEN": "nowhere"})
tap.ok(rc == 1 and "LCGATE_SERVER_LISTEN" in err, "a bad env override is named", err)
rc, out, err = run(["-t", "-c", path], {"LCGATE_CACHE_STORE": "redis"})
tap.ok(rc == 0, "a good env override passes -t", err)

# A key file others can read is named in a warning.
kf = env.path("key")
with open(kf, "w") as f:
    f.write("llx-secret-in-file\n")
os.chmod(kf, 0o644)
rc, out, err = run(["-t", "-c", conf("[upstream]\napi_key_file = %s\n" % kf)])
tap.ok(rc == 0 and "readable by every user" in err and "llx-secret" not in err,
       "a world-readable key file is warned about (and not printed)", err)
os.chmod(kf, 0o600)
rc, out, err = run(["-t", "-c", conf("[upstream]\napi_key_file = %s\n" % kf)])
tap.ok(rc == 0 and "readable" not in err, "a private key file is not", err)

# Startup with the same errors refuses to run.
rc, out, err = run(["-c", conf("[cache]\nttl = x\n")])
tap.ok(rc == 1 and ":2: " in err, "startup with a bad file exits 1 with FILE:LINE", err)

# A real start: listens, answers 404 JSON off /api, stops on SIGTERM with 0.
g = env.lcgate({"upstream": {"base_url": "http://127.0.0.1:9"}})
r = g.get("/")
tap.ok(r.status == 404 and r.json() == {"detail": "Not Found"}, "/ is 404 JSON", r)
r = t.request(g.admin, "GET", "/healthz")
tap.ok(r.status == 200, "/healthz answers 200", r)
rc = g.stop()
tap.ok(rc == 0, "SIGTERM exits 0", (rc, g.log()))
tap.done(env)
