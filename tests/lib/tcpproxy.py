"""A TCP proxy on a free loopback port, run in the test's own process, that
can hold a server's replies: hold_after(b"MGET") lets everything through
until a client sends a chunk containing MGET, then keeps that connection's
server-to-client bytes until release(). Replies are never dropped or
reordered, only delayed; other connections are not touched."""
import select
import socket
import threading


class Proxy:
    def __init__(self, target_port, host="127.0.0.1"):
        self.target = (host, target_port)
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        self.lock = threading.Lock()
        self.trigger = None       # bytes that start holding on a connection
        self.held = threading.Event()   # set once a connection holds
        self.released = threading.Event()
        self.released.set()
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def hold_after(self, needle):
        with self.lock:
            self.trigger = needle
            self.held.clear()
            self.released.clear()

    def release(self):
        with self.lock:
            self.trigger = None
        self.released.set()

    def close(self):
        self.stopping = True
        self.release()
        self.ls.close()

    def _accept(self):
        while not self.stopping:
            try:
                cs, _ = self.ls.accept()
            except OSError:
                return
            try:
                ss = socket.create_connection(self.target, timeout=5)
            except OSError:
                cs.close()
                continue
            threading.Thread(target=self._pump, args=(cs, ss), daemon=True).start()

    def _pump(self, cs, ss):
        holding = False
        backlog = []
        try:
            while True:
                r, _, _ = select.select([cs, ss], [], [], 0.02)
                if holding and self.released.is_set():
                    for chunk in backlog:
                        cs.sendall(chunk)
                    backlog, holding = [], False
                if cs in r:
                    data = cs.recv(65536)
                    if not data:
                        return
                    with self.lock:
                        if self.trigger is not None and self.trigger in data and not holding:
                            holding = True
                            self.held.set()
                    ss.sendall(data)
                if ss in r:
                    data = ss.recv(65536)
                    if not data:
                        return
                    if holding:
                        backlog.append(data)
                    else:
                        cs.sendall(data)
        except OSError:
            return
        finally:
            cs.close()
            ss.close()
