#!/usr/bin/env python3
"""store_redis.py: the Redis store (src/store_redis.c) against real
redis-servers, through tests/unit/t_store_redis.

It builds nothing: the check binary is $REDIS_STORE_CHECK, else
tests/unit/t_store_redis under $LCGATE_BUILDDIR (or the current
directory). It starts its own redis-servers on free loopback ports and unix
sockets in a temporary directory, runs each mode of the check (normal over
TCP and a unix socket, with AUTH and with an ACL user, CLIENT PAUSE, a
server restarted under the check, a SIGSTOPped server, nothing listening, a
wrong password), passes the check's TAP through as indented subtests, and
stops exactly the servers it started. Every mode also exercises the store's
subscriber connection (the event channel) and its rate-limit decisions (the
GCRA script, answered NULL when Redis cannot decide); in the restart mode
the harness restarts the server when the check asks for it on its stdout.
Exit status 1 when anything failed.
"""
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

BUILDDIR = os.environ.get("LCGATE_BUILDDIR") or os.getcwd()
CHECK = os.environ.get("REDIS_STORE_CHECK") or os.path.join(
    BUILDDIR, "tests", "unit", "t_store_redis")
REDIS_SERVER = shutil.which("redis-server")
# The deadline modes (pause, restart, hang, down) measure against a short
# deadline; the normal mode moves 2 MiB values, and under ASan on a loaded
# machine that may take longer than a deadline meant to catch a hung server.
TIMEOUT_MS = {"normal": 1000, "pause": 200, "restart": 200, "hang": 200,
              "down": 200}
RUN_TIMEOUT_S = 120
# The line on which the restart mode wants its server restarted.
RESTART_LINE = b"# restart the server now"

# Every secret contains SECRET_MARK, and no output may.
SECRET_MARK = "Sekr1t"
PASSWORD = "pw-Sekr1t:/@%x"          # needs percent-encoding in a URL
ACL_USER, ACL_PASSWORD = "lcgate", "acl-Sekr1t"
WRONG_PASSWORD = "wrong-Sekr1t"

n_tests = 0
n_failed = 0


def ok(cond, name, diag=None):
    global n_tests, n_failed
    n_tests += 1
    print("%s %d - %s" % ("ok" if cond else "not ok", n_tests, name))
    if not cond:
        n_failed += 1
        for line in (diag or "").splitlines():
            print("#   " + line)
    sys.stdout.flush()
    return cond


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resp(sock_file, *args):
    """One RESP command on a connected socket file; the reply as bytes
    (status, error, bulk or integer line), None for a nil."""
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    sock_file.write(out)
    sock_file.flush()
    line = sock_file.readline()
    if not line:
        raise ConnectionError("connection closed")
    if line[:1] == b"$":
        n = int(line[1:])
        if n < 0:
            return None
        return sock_file.read(n + 2)[:-2]
    return line.rstrip(b"\r\n")


class Redis:
    """A redis-server of our own on a free port and a unix socket."""

    def __init__(self, tmp, name, extra=(), password=None):
        self.dir = os.path.join(tmp, name)
        os.mkdir(self.dir)
        self.sock = os.path.join(self.dir, "r.sock")
        self.password = password
        self.extra = list(extra)
        self.proc = None
        self.stopped = False
        for _ in range(3):      # the free port may be taken meanwhile
            self.port = free_port()
            if self.start():
                return
        raise RuntimeError("redis-server %s did not start" % name)

    def start(self):
        """Start on self.port and self.sock; True once it answers."""
        args = [REDIS_SERVER, "--port", str(self.port),
                "--bind", "127.0.0.1", "--unixsocket", self.sock,
                "--unixsocketperm", "700", "--save", "",
                "--appendonly", "no", "--dir", self.dir,
                "--logfile", os.path.join(self.dir, "redis.log"),
                "--daemonize", "no"] + self.extra
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        if self.wait_ready(10.0):
            return True
        self.stop()
        return False

    def restart(self):
        """Stop, then start again on the same port and socket (its data,
        never saved, is gone)."""
        self.stop()
        for _ in range(20):     # redis-server binds with SO_REUSEADDR
            if self.start():
                return
            time.sleep(0.1)
        raise RuntimeError("redis-server in %s did not restart" % self.dir)

    def command(self, *args, db=0):
        with socket.create_connection(("127.0.0.1", self.port),
                                      timeout=2.0) as s:
            f = s.makefile("rwb")
            if self.password:
                resp(f, "AUTH", self.password)
            if db:
                resp(f, "SELECT", str(db))
            return resp(f, *args)

    def wait_ready(self, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return False
            try:
                if self.command("PING") == b"+PONG":
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def sigstop(self):
        self.proc.send_signal(signal.SIGSTOP)
        self.stopped = True

    def sigcont(self):
        self.proc.send_signal(signal.SIGCONT)
        self.stopped = False

    def stop(self):
        p = self.proc
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGCONT)
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run_check(name, url, mode, secret=None, flush=None, restart=None):
    """Run one mode of the check; its TAP becomes an indented subtest.
    flush: a Redis to empty first (the normal mode clears its database).
    restart: a Redis to restart when the check prints RESTART_LINE."""
    if flush is not None:
        flush.command("FLUSHALL")
    t0 = time.monotonic()
    restarted = False
    killed = threading.Event()

    with tempfile.TemporaryFile() as errf:
        p = subprocess.Popen([CHECK, url, mode, str(TIMEOUT_MS[mode])],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=errf)

        def kill():
            killed.set()
            p.kill()

        timer = threading.Timer(RUN_TIMEOUT_S, kill)
        timer.start()
        lines = []
        try:
            for line in p.stdout:
                lines.append(line)
                if restart is not None and line.rstrip() == RESTART_LINE:
                    restart.restart()
                    restarted = True
            rc = p.wait()
        finally:
            timer.cancel()
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
        if killed.is_set():
            rc = "timeout"
        errf.seek(0)
        err = errf.read()
    out = b"".join(lines)
    took = time.monotonic() - t0
    print("# %s: %s %s (%.1f s)" % (name, os.path.basename(CHECK), mode, took))
    for line in out.decode(errors="replace").splitlines():
        print("    " + line)
    for line in err.decode(errors="replace").splitlines():
        print("    # " + line)
    text = out.decode(errors="replace")
    plan = [l for l in text.splitlines() if l.startswith("1..")]
    passed = (rc == 0 and len(plan) == 1 and plan[0] != "1..0"
              and "\nnot ok" not in "\n" + text)
    if restart is not None and not restarted:
        passed = False
        print("    # the check never asked for the restart")
    ok(passed, "%s (exit %s)" % (name, rc))
    if secret is not None:
        both = out + err
        ok(SECRET_MARK.encode() not in both
           and secret.encode() not in both
           and urllib.parse.quote(secret, safe="").encode() not in both,
           "%s: no password in the output" % name)
    return passed


def check_marker(name, redis, db):
    key = "t_store_redis:marker"
    ok(redis.command("EXISTS", key, db=db) == b":1",
       "%s: the store wrote to database %d" % (name, db))
    if db != 0:
        ok(redis.command("EXISTS", key) == b":0",
           "%s: and not to database 0" % name)


def main():
    if not REDIS_SERVER:
        print("1..0 # SKIP redis-server is not installed")
        return 0
    if not os.access(CHECK, os.X_OK):
        print("Bail out! %s is not built (set REDIS_STORE_CHECK or "
              "LCGATE_BUILDDIR)" % CHECK)
        return 1

    base = os.environ.get("TMPDIR", "/tmp")
    if len(base) > 60:              # unix socket paths are short
        base = "/tmp"
    tmp = tempfile.mkdtemp(prefix="lcgate-redis-", dir=base)
    servers = []

    def cleanup():
        while servers:
            servers.pop().stop()
        shutil.rmtree(tmp, ignore_errors=True)

    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(1))
    try:
        plain = Redis(tmp, "plain")
        servers.append(plain)
        auth = Redis(tmp, "auth", password=PASSWORD, extra=[
            "--requirepass", PASSWORD,
            "--user", ACL_USER, "on", ">" + ACL_PASSWORD, "~*", "&*",
            "+@all"])
        servers.append(auth)
        qpass = urllib.parse.quote(PASSWORD, safe="")

        name = "normal over TCP, default database"
        run_check(name, "redis://127.0.0.1:%d" % plain.port, "normal",
                  flush=plain)
        check_marker(name, plain, 0)

        name = "normal over TCP, database 3"
        run_check(name, "redis://127.0.0.1:%d/3" % plain.port, "normal",
                  flush=plain)
        check_marker(name, plain, 3)

        name = "normal over a unix socket, database 2"
        run_check(name, "unix://%s?db=2" % plain.sock, "normal",
                  flush=plain)
        check_marker(name, plain, 2)

        name = "normal with AUTH (requirepass, percent-encoded)"
        run_check(name, "redis://:%s@127.0.0.1:%d/1" % (qpass, auth.port),
                  "normal", secret=PASSWORD, flush=auth)
        check_marker(name, auth, 1)

        name = "normal with an ACL user over a unix socket"
        run_check(name, "unix://%s:%s@%s" % (ACL_USER, ACL_PASSWORD,
                                             auth.sock),
                  "normal", secret=ACL_PASSWORD, flush=auth)
        check_marker(name, auth, 0)

        run_check("CLIENT PAUSE and CLIENT KILL over TCP",
                  "redis://127.0.0.1:%d" % plain.port, "pause")
        run_check("CLIENT PAUSE and CLIENT KILL with AUTH",
                  "redis://:%s@127.0.0.1:%d" % (qpass, auth.port), "pause",
                  secret=PASSWORD)

        run_check("server restarted under the store, over TCP",
                  "redis://127.0.0.1:%d" % plain.port, "restart",
                  restart=plain)
        run_check("server restarted under the store, with AUTH over a "
                  "unix socket",
                  "unix://:%s@%s?db=1" % (qpass, auth.sock), "restart",
                  restart=auth, secret=PASSWORD)

        plain.sigstop()
        try:
            run_check("SIGSTOPped redis over TCP",
                      "redis://127.0.0.1:%d" % plain.port, "hang")
            run_check("SIGSTOPped redis over a unix socket",
                      "unix://%s?db=1" % plain.sock, "hang")
        finally:
            plain.sigcont()
        ok(plain.wait_ready(10.0), "redis answers again after SIGCONT")

        run_check("nothing listening on the port",
                  "redis://127.0.0.1:%d" % free_port(), "down")
        run_check("no socket file",
                  "unix://%s" % os.path.join(tmp, "none.sock"), "down")
        run_check("wrong password",
                  "redis://:%s@127.0.0.1:%d" % (WRONG_PASSWORD, auth.port),
                  "down", secret=WRONG_PASSWORD)
        run_check("password to a server without one",
                  "redis://:%s@127.0.0.1:%d" % (qpass, plain.port), "down",
                  secret=PASSWORD)
    except Exception as e:      # a harness failure is a failed test
        ok(False, "harness", "%s: %s" % (type(e).__name__, e))
    finally:
        cleanup()
    print("1..%d" % n_tests)
    return 1 if n_failed else 0


if __name__ == "__main__":
    sys.exit(main())
