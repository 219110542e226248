"""A Redis primary, its replica and three sentinels on loopback, for the
failover tests, started in an lcgtest.Env (which stops them).

    ha = sentinel.Cluster(env, master="lcg")
    ha.sentinels                      # ["127.0.0.1:P1", ...] for the config
    ha.primary()                      # (host, port) as the sentinels say
    ha.kill_primary()                 # SIGKILL; returns when it is gone
    ha.wait_failover(old, timeout)    # the new primary's port, or raises

down-after-milliseconds is DOWN_MS and the failover timeout FAILOVER_MS:
a failover takes about DOWN_MS plus an election (a second or two here).
"""
import os
import signal
import socket
import time

import lcgtest as t

DOWN_MS = 1000
FAILOVER_MS = 5000


def cmd(port, *args, timeout=2.0):
    """One command (inline arrays of bulk strings) and its raw reply."""
    msg = b"*%d\r\n" % len(args) + b"".join(
        b"$%d\r\n%s\r\n" % (len(a), a) for a in (x.encode() if isinstance(x, str) else x
                                                  for x in args))
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(msg)
        data = b""
        s.settimeout(timeout)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if _complete(data):
                break
    return data


def _complete(data):
    """Is data one whole RESP reply? (enough for the replies used here)"""
    try:
        return _parse(data, 0) is not None
    except (ValueError, IndexError):
        return False


def _parse(data, i):
    """(value, next index) of the reply at data[i:], or None if incomplete."""
    end = data.find(b"\r\n", i)
    if end < 0:
        return None
    kind, line = data[i:i + 1], data[i + 1:end]
    if kind in (b"+", b"-", b":"):
        return line.decode(), end + 2
    if kind == b"$":
        n = int(line)
        if n < 0:
            return None, end + 2
        if len(data) < end + 2 + n + 2:
            return None
        return data[end + 2:end + 2 + n].decode(), end + 2 + n + 2
    if kind == b"*":
        n = int(line)
        if n < 0:
            return None, end + 2
        out, j = [], end + 2
        for _ in range(n):
            r = _parse(data, j)
            if r is None:
                return None
            v, j = r
            out.append(v)
        return out, j
    raise ValueError("unknown reply %r" % data[i:i + 20])


def value(port, *args):
    r = _parse(cmd(port, *args), 0)
    return r[0] if r else None


class Cluster:
    def __init__(self, env, master="lcg", extra=()):
        self.env, self.master = env, master
        self.nodes = {}                  # port -> process
        p = env.redis(list(extra))
        self.nodes[p.port] = p
        r = env.redis(["--replicaof", "127.0.0.1", str(p.port)] + list(extra))
        self.nodes[r.port] = r
        t.wait_for(lambda: "master_link_status:up" in value(r.port, "INFO", "replication"),
                   15, "the replica in sync")
        self.sentinel_procs = []
        self.sentinel_ports = []
        for k in range(3):
            port = t.free_port()
            conf = env.path("sentinel-%d.conf" % port)
            with open(conf, "w") as f:
                f.write("port %d\nbind 127.0.0.1\ndir %s\n"
                        "sentinel resolve-hostnames no\n"
                        "sentinel monitor %s 127.0.0.1 %d 2\n"
                        "sentinel down-after-milliseconds %s %d\n"
                        "sentinel failover-timeout %s %d\n"
                        "sentinel parallel-syncs %s 1\n"
                        % (port, env.dir, master, p.port, master, DOWN_MS, master,
                           FAILOVER_MS, master))
            sp = env.spawn(["redis-server", conf, "--sentinel"], "sentinel-%d" % port)
            sp.port = port
            self.sentinel_procs.append(sp)
            self.sentinel_ports.append(port)
        for port in self.sentinel_ports:
            t.wait_for(lambda: value(port, "PING") == "PONG", 10, "sentinel PING")
        # Each sentinel knows the others and the replica before a test kills anything.
        t.wait_for(lambda: all(self._known(port) for port in self.sentinel_ports), 20,
                   "sentinels that see each other and the replica")
        self.sentinels = ["127.0.0.1:%d" % port for port in self.sentinel_ports]

    def _known(self, port):
        m = value(port, "SENTINEL", "MASTER", self.master)
        if not isinstance(m, list):
            return False
        info = dict(zip(m[0::2], m[1::2]))
        return int(info.get("num-other-sentinels", 0)) >= 2 and \
            int(info.get("num-slaves", 0)) >= 1

    def primary(self, sentinel_port=None):
        """(host, port) of the primary as a sentinel says."""
        a = value(sentinel_port or self.sentinel_ports[0],
                  "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master)
        return (a[0], int(a[1])) if isinstance(a, list) and len(a) == 2 else None

    def kill_primary(self):
        """SIGKILL the primary; its port."""
        host, port = self.primary()
        p = self.nodes.pop(port)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)
        if p in self.env.procs:
            self.env.procs.remove(p)
        return port

    def wait_failover(self, old_port, timeout=30.0):
        """Until every sentinel names a primary other than old_port that
        says it is one; its port."""
        def moved():
            ports = {self.primary(s) for s in self.sentinel_ports}
            if len(ports) != 1:
                return None
            (_, port), = ports
            if port == old_port or port not in self.nodes:
                return None
            role = value(port, "ROLE")
            return port if isinstance(role, list) and role[0] == "master" else None
        return t.wait_for(moved, timeout, "a failover to the replica")
