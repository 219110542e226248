"""Certificates for the TLS tests, made with the openssl command in a test's
own directory: a CA, server certificates for the loopback names (127.0.0.1,
::1, localhost), and client certificates. Nothing here touches the system
store.

    ca = tlskit.CA(env.path("pki"))
    srv = ca.server("redis")            # .cert, .key, .chain (cert + CA)
    cli = ca.client("lcgate")
    other = tlskit.CA(env.path("pki2"))  # a CA that signed none of them
"""
import os
import subprocess

LOOPBACK_SAN = "DNS:localhost,IP:127.0.0.1,IP:::1"


def _run(args, cwd):
    p = subprocess.run(["openssl"] + args, cwd=cwd, capture_output=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (" ".join(args[:2]), p.stderr.decode()[-600:]))


class Pair:
    """A certificate and its key (PEM files), and the chain (the cert
    followed by the CA's)."""

    def __init__(self, cert, key, chain):
        self.cert, self.key, self.chain = cert, key, chain


class CA:
    def __init__(self, directory, name="lcgate test CA"):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.cert = os.path.join(directory, "ca.pem")
        self.key = os.path.join(directory, "ca.key")
        self.serial = 1
        _run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes", "-keyout", self.key, "-out", self.cert, "-days", "2",
              "-subj", "/CN=%s" % name,
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"], directory)

    def _issue(self, name, ext):
        key = os.path.join(self.dir, name + ".key")
        csr = os.path.join(self.dir, name + ".csr")
        cert = os.path.join(self.dir, name + ".pem")
        extf = os.path.join(self.dir, name + ".ext")
        with open(extf, "w") as f:
            f.write(ext)
        _run(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
              "-keyout", key, "-out", csr, "-subj", "/CN=%s" % name], self.dir)
        self.serial += 1
        _run(["x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
              "-set_serial", str(self.serial), "-days", "2", "-out", cert,
              "-extfile", extf], self.dir)
        chain = os.path.join(self.dir, name + ".chain.pem")
        with open(chain, "w") as out:
            out.write(open(cert).read() + open(self.cert).read())
        return Pair(cert, key, chain)

    def server(self, name, san=LOOPBACK_SAN):
        """A server certificate for the loopback names (or san)."""
        return self._issue(name, "basicConstraints=CA:FALSE\n"
                                 "keyUsage=critical,digitalSignature\n"
                                 "extendedKeyUsage=serverAuth\n"
                                 "subjectAltName=%s\n" % san)

    def client(self, name):
        """A client certificate (for servers that ask for one)."""
        return self._issue(name, "basicConstraints=CA:FALSE\n"
                                 "keyUsage=critical,digitalSignature\n"
                                 "extendedKeyUsage=clientAuth\n")
