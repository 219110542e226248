"""The official TypeScript SDK (@llamaindex/llama-cloud 2.13.0), pointed at
lcgate with no key of its own, pages through both list routes and gets
exactly the items it gets from the upstream directly."""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import lcgtest as t  # noqa: E402

tap = t.Tap()
env = t.Env("lcgate-sdk")
src = os.path.join(t.SRCDIR, "tests", "sdk")
# Installed once per build tree; npm reaches only its registry.
cache = os.path.abspath(os.environ.get("LCGATE_SDK_DIR", "sdk-cache"))
os.makedirs(cache, exist_ok=True)
for f in ("package.json", "paging.mjs"):
    shutil.copy(os.path.join(src, f), cache)
if not os.path.isdir(os.path.join(cache, "node_modules", "@llamaindex", "llama-cloud")):
    p = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=cache, capture_output=True, text=True, timeout=300)
    if not tap.ok(p.returncode == 0, "npm installs the SDK", p.stderr[-2000:]):
        tap.done(env)

mock = env.mock(extra=["--jobs", "137", "--batches", "57"])
g = env.lcgate({"upstream": {"base_url": mock.url}, "cache": {"ttl": "60s"}},
               env={"LLAMA_CLOUD_API_KEY": t.KEY_A})


def page_through(base, key, route, size, params=None):
    p = subprocess.run(["node", os.path.join(cache, "paging.mjs"), base, key, route, str(size),
                        json.dumps(params or {})],
                       capture_output=True, text=True, timeout=120, cwd=cache,
                       env={k: v for k, v in os.environ.items()
                            if k not in ("LLAMA_CLOUD_API_KEY", "LLAMA_CLOUD_BASE_URL")})
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
tap.done(env)
