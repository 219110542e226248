"""Under systemd, when JOURNAL_STREAM names the file lcgate's stderr is
(its device and inode), every text log line starts with its sd-daemon(3)
priority (<6> info, <4> warn, <3> error); with JOURNAL_STREAM naming
another file, lines are unchanged."""
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import lcgtest as t  # noqa: E402

tap = t.Tap()
env = t.Env("lcgate-journald")


def start(name, journal_stream):
    """lcgate with its stderr on NAME.log and JOURNAL_STREAM from that
    file's (dev, ino) by journal_stream(). Returns the Gate."""
    port, admin = t.free_port(), t.free_port()
    cpath = env.path(name + ".conf")
    with open(cpath, "w") as f:
        f.write("[server]\nlisten = 127.0.0.1:%d\nadmin_listen = 127.0.0.1:%d\n"
                "access_log = off\n[upstream]\nbase_url = http://127.0.0.1:9\n"
                "[cache]\nttl = 1s\nstale_while_revalidate = 5s\n" % (port, admin))
    logpath = env.path(name + ".log")
    log = open(logpath, "ab")
    st = os.fstat(log.fileno())
    e = {k: v for k, v in os.environ.items() if not k.startswith("LCGATE_")}
    e["JOURNAL_STREAM"] = journal_stream(st)
    p = subprocess.Popen([t.LCGATE, "-c", cpath], stdout=log, stderr=subprocess.STDOUT, env=e,
                         cwd=env.dir, start_new_session=True)
    p.name, p.logpath = name, logpath
    env.procs.append(p)
    env.gates.append(p)
    g = t.Gate(env, p, port, admin, cpath)
    g.wait_ready()
    return g


def lines(g, word):
    return [ln for ln in g.log().splitlines() if word in ln]


g = start("lcgate-journal", lambda st: "%d:%d" % (st.st_dev, st.st_ino))
with open(g.conf_path, "a") as f:
    f.write("[cache]\nbogus = 1\n")
os.kill(g.proc.pid, signal.SIGHUP)
t.wait_for(lambda: lines(g, "reload rejected"), 5, "the rejected reload")
g.stop()
listening = lines(g, "listening on")
tap.ok(listening and listening[0].startswith("<6>") and "lcgate[info]" in listening[0],
       "an info line starts with <6>", listening)
rejected = lines(g, "reload rejected")
tap.ok(rejected and rejected[0].startswith("<3>") and "lcgate[error]" in rejected[0],
       "an error line starts with <3>", rejected)
tap.ok(all(ln[:1] == "<" for ln in g.log().splitlines() if "lcgate[" in ln),
       "every text line carries a priority")

g = start("lcgate-not-journal", lambda st: "%d:%d" % (st.st_dev, st.st_ino + 1))
g.stop()
listening = lines(g, "listening on")
tap.ok(listening and listening[0][:2] == "20" and
       all(ln[:1] != "<" for ln in g.log().splitlines()),
       "JOURNAL_STREAM naming another file: lines start with the time, as before", listening)
tap.done(env)
