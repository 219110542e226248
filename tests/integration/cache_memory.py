"""The embedded memory store: one upstream request per distinct question."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_suite  # noqa: E402
import lcgtest as t  # noqa: E402

tap = t.Tap()
env = t.Env("lcgate-mem")
cache_suite.run(tap, env, {"cache": {"store": "memory"}})
tap.done(env)
