"""The official TypeScript SDK (@llamaindex/llama-cloud 2.13.0), pointed at
lcgate with no key of its own, pages through both list routes and gets
exactly the items it gets from the upstream directly; and again through a
TLS listener, trusting the test CA by NODE_EXTRA_CA_CERTS.

The SDK comes from the npm registry, once per build tree. Where npm cannot
reach it (or node and npm are missing), the test fails, as in CI, unless
LCGATE_ALLOW_OFFLINE_SKIP=1 says that this build may go without it (the
Debian package build does, and runs npm offline): then it is skipped with
the reason."""
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import lcgtest as t  # noqa: E402
import tlskit  # noqa: E402

tap = t.Tap()
env = t.Env("lcgate-sdk")
src = os.path.join(t.SRCDIR, "tests", "sdk")
# Installed once per build tree; npm reaches only its registry.
cache = os.path.abspath(os.environ.get("LCGATE_SDK_DIR", "sdk-cache"))
os.makedirs(cache, exist_ok=True)
for f in ("package.json", "paging.mjs"):
    shutil.copy(os.path.join(src, f), cache)
OFFLINE_SKIP = os.environ.get("LCGATE_ALLOW_OFFLINE_SKIP") == "1"
# npm's error codes for a registry it cannot reach, or may not (offline).
NO_REGISTRY = {"ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT",
               "ENETUNREACH", "EHOSTUNREACH", "ECONNABORTED", "ERR_SOCKET_TIMEOUT",
               "ENOTCACHED"}


def skip_all(reason):
    print("1..0 # SKIP %s (LCGATE_ALLOW_OFFLINE_SKIP=1)" % reason)
    sys.stdout.flush()
    sys.exit(0)


tools = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
if tools:
    if OFFLINE_SKIP:
        skip_all("the SDK runs on node and npm; not installed: %s" % ", ".join(tools))
    tap.ok(False, "node and npm are installed (scripts/deps test)", "missing: " + ", ".join(tools))
    tap.done(env)
if not os.path.isdir(os.path.join(cache, "node_modules", "@llamaindex", "llama-cloud")):
    # Allowed to skip, fail fast rather than retry for a minute.
    retries = ["--fetch-retries=0"] if OFFLINE_SKIP else []
    p = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"] + retries,
                       cwd=cache, capture_output=True, text=True, timeout=300)
    code = re.search(r"^npm (?:error|ERR!) code (\S+)", p.stderr, re.M)
    code = code.group(1) if code else None
    if p.returncode != 0 and OFFLINE_SKIP and code in NO_REGISTRY:
        skip_all("npm cannot fetch the SDK from its registry (%s: %s)"
                 % (code, "npm is offline and has no cached copy" if code == "ENOTCACHED"
                    else "the registry cannot be reached"))
    if not tap.ok(p.returncode == 0, "npm installs the SDK",
                  p.stderr[-2000:] + ("\nwhere npm cannot reach its registry, "
                                      "LCGATE_ALLOW_OFFLINE_SKIP=1 skips this test instead"
                                      if code in NO_REGISTRY else "")):
        tap.done(env)

mock = env.mock(extra=["--jobs", "137", "--batches", "57"])
g = env.lcgate({"upstream": {"base_url": mock.url}, "cache": {"ttl": "60s"}},
               env={"LLAMA_CLOUD_API_KEY": t.KEY_A})


def page_through(base, key, route, size, params=None, extra_env=None):
    run_env = {k: v for k, v in os.environ.items()
               if k not in ("LLAMA_CLOUD_API_KEY", "LLAMA_CLOUD_BASE_URL")}
    run_env.update(extra_env or {})
    p = subprocess.run(["node", os.path.join(cache, "paging.mjs"), base, key, route, str(size),
                        json.dumps(params or {})],
                       capture_output=True, text=True, timeout=120, cwd=cache, env=run_env)
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-2000:])
    return json.loads(p.stdout)


gate = "http://127.0.0.1:%d" % g.port
for route, size, params in (("v1", 20, {}), ("v1", 7, {"status": "completed"}),
                            ("v2", 10, {}), ("v2", 4, {"status": "RUNNING"})):
    try:
        want = page_through(mock.url, t.KEY_A, route, size, params)
        got = page_through(gate, "no-key-of-its-own", route, size, params)
        again = page_through(gate, "no-key-of-its-own", route, size, params)
    except Exception as e:
        tap.ok(False, "SDK %s pages through %s" % (route, params), e)
        continue
    tap.ok(len(want["ids"]) > size and want["pages"] > 1,
           "SDK %s %s: the list spans several pages upstream (%d items, %d pages)"
           % (route, params, len(want["ids"]), want["pages"]))
    tap.ok(got == want, "SDK %s %s: through lcgate it gets exactly the upstream's items"
           % (route, params), (got["pages"], len(got["ids"]), want["pages"], len(want["ids"])))
    tap.ok(again == want, "SDK %s %s: and again from the cache" % (route, params))

# Through a TLS listener ([server] tls_cert): the SDK trusts the test CA by
# NODE_EXTRA_CA_CERTS, as a deployment with a private CA would.
ca = tlskit.CA(env.path("pki"))
cert = ca.server("gate")
tg = env.lcgate({"upstream": {"base_url": mock.url}, "cache": {"ttl": "60s"},
                 "server": {"tls_cert": cert.chain, "tls_key": cert.key}},
                env={"LLAMA_CLOUD_API_KEY": t.KEY_A}, name="lcgate-tls")
trust = {"NODE_EXTRA_CA_CERTS": ca.cert}
for route, size, params in (("v1", 20, {}), ("v2", 10, {})):
    try:
        want = page_through(mock.url, t.KEY_A, route, size, params)
        got = page_through("https://localhost:%d" % tg.port, "no-key-of-its-own", route, size,
                           params, trust)
    except Exception as e:
        tap.ok(False, "SDK %s pages through lcgate over TLS" % route, e)
        continue
    tap.ok(got == want, "SDK %s over TLS (NODE_EXTRA_CA_CERTS): exactly the upstream's items"
           % route, (got["pages"], len(got["ids"]), want["pages"], len(want["ids"])))
tap.done(env)
