"""The kernel supervisor: the main process of a kernel job, inside the task.

It is copied into the task over SFTP and run with the image's Python, so it uses the standard
library only and runs on any Python 3.6+. It talks to the provisioner through files in its
private directory (0700; the provisioner reads and writes them over SFTP on the same SSH
connection that carries the kernel's ports):

``hello.json``   written at start: the five loopback ports the kernel will bind, the Python,
                 the relay's port (below).
``error``        one line when the kernel cannot run here (no ipykernel), then it waits for
                 the provisioner to read it (or a grace period) and exits 2.
``lease``        the provisioner rewrites it every few seconds; when it has not changed for
                 ``lease`` seconds (measured on this side's monotonic clock, so clock skew does
                 not matter) the Jupyter server is gone: the kernel is killed and the job ends.
``kernel.json``  the connection file (HMAC key, CurveZMQ keys; 0600).
``start-N``      request: start kernel generation N (a restart is a new generation in the same
                 job). Answers: ``kernel-N.pid``, ``kernel-N.ready`` (its shell port accepts
                 connections), ``kernel-N.exit`` (exit status).
``signal-N-S``   request: send signal S to generation N.
``stop``         request: kill the kernel and exit 0.

The relay (``"relay": port`` in hello.json): resumable streams to the kernel's ports, so a
dropped SSH link loses no ZeroMQ message. Why: every forwarded TCP connection dies with the
link, and ZeroMQ does not resend what was in flight (a cell's output, its execute_reply, the
IOPub subscription). The provisioner's forwarder instead connects each local connection to
this relay, which holds the kernel-side connection open across link drops. The wire (frames,
constants, the wait) is ``pai_magic/core/ssh/relay_wire.py``, which the forwarder uses too and
the provisioner copies in beside this file as ``pai_relay_wire.py``. Protocol: the forwarder
opens with one line
``PAIRELAY1 <stream id hex> <port index> <bytes received> <N|R>`` (N: a new stream, R: a
resume); the relay answers ``NEW``, ``OK <bytes received>`` or ``ERR <why>``, then frames flow
both ways: type (1 byte) + length (4 bytes, big endian) + payload. ``D`` data; ``A`` ack (the
8-byte count of data bytes received; sent every ``ACK_EVERY`` bytes); ``C`` close (no more
data; answered with a close, after which the stream is forgotten). Each side keeps what it
sent until acked and resends from the peer's count on resume. While the forwarder is away the
relay keeps reading the kernel up to ``RELAY_CAP`` bytes (past it the stream is dropped: the
old behaviour, never unbounded memory); a stream not resumed within ``RELAY_EXPIRE`` seconds
is dropped.

Why the kernel is this process's child and not an SSH exec channel's: a dropped SSH link
must not end the kernel (the provisioner reconnects and finds it running).
"""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

try:  # in the job: copied in beside this file (pai_magic is not installed in the image)
    from pai_relay_wire import ACK_EVERY, FRAME_MAX, QUEUE_HIGH, RELAY_MAGIC, data_frames, frame, parse_frames, wait_io
except ImportError:  # run from the package's own tree (tests): the wire is the package's file
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "core", "ssh"))
    from relay_wire import ACK_EVERY, FRAME_MAX, QUEUE_HIGH, RELAY_MAGIC, data_frames, frame, parse_frames, wait_io

POLL = 0.05
ERROR_GRACE = 120.0


def write_atomic(path, text, mode=0o600):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.rename(tmp, path)


def say(text):
    sys.stderr.write("pai-magic kernel: " + text + "\n")
    sys.stderr.flush()


def kernel_ports():
    """The ports the job declared (``ports: {kernel: 5}``), else five free loopback ports."""
    declared = os.environ.get("PAI_CONTAINER_HOST_kernel_PORT_LIST", "")
    ports = [int(p) for p in declared.split(",") if p.strip().isdigit()]
    if len(ports) >= 5:
        return ports[:5]
    socks = []
    try:
        for _ in range(5):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def has_ipykernel():
    try:
        import importlib.util
        return importlib.util.find_spec("ipykernel") is not None
    except Exception:
        return False


PORT_KEYS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")


def listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def listen_avoiding(avoid):
    """A loopback listener on a port the system picks, never one of ``avoid``: the kernel's
    ports are only declared (not bound) until it starts, and on the embedded backend the
    task's ports are merely reserved, so a pick among them would make the kernel fail to bind."""
    held = []
    try:
        for _ in range(64):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            if sock.getsockname()[1] not in avoid:
                sock.listen(64)
                return sock
            held.append(sock)  # kept bound while asking again, so the next pick differs
        raise OSError("no free loopback port outside %s" % sorted(avoid))
    finally:
        for sock in held:
            sock.close()


# ------------------------------------------------------------------------------ the relay
RELAY_CAP = 64 << 20
RELAY_EXPIRE = 600.0


class RelayStream(object):
    """One kernel-side connection that outlives the forwarder's connections."""

    def __init__(self, relay, sid, kernel):
        self.relay = relay
        self.sid = sid
        self.kernel = kernel          # None once closed
        self.conn = None
        self.lock = threading.Lock()
        self.incoming = None          # (conn, peer_count, reply) handed over by the acceptor
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.out = bytearray()        # read from the kernel, not yet acked by the forwarder
        self.out_base = 0             # count of the first byte of ``out``
        self.wq = bytearray()         # frames for the current connection
        self.inbuf = bytearray()
        self.to_kernel = bytearray()
        self.received = 0
        self.acked = 0
        self.kernel_eof = False       # our close is due after ``out``
        self.peer_closed = False
        self.away_since = time.monotonic()
        self.done = False

    def attach(self, conn, peer_count, reply):
        with self.lock:
            if self.done:
                return False
            old, self.incoming = self.incoming, (conn, peer_count, reply)
        if old is not None:
            old[0].close()
        try:
            self.wake_w.send(b"x")
        except OSError:
            pass
        return True

    def _adopt(self):
        with self.lock:
            incoming, self.incoming = self.incoming, None
        if incoming is None:
            return
        conn, peer_count, reply = incoming
        self._drop_conn()
        if not (self.out_base <= peer_count <= self.out_base + len(self.out)):
            conn.sendall(b"ERR bad count\n")
            conn.close()
            self.finish()
            return
        del self.out[:peer_count - self.out_base]
        self.out_base = peer_count
        conn.setblocking(False)
        self.conn = conn
        self.inbuf = bytearray()
        self.wq = bytearray(reply if reply else ("OK %d\n" % self.received).encode())
        self.wq += data_frames(self.out)
        if self.kernel_eof:
            self.wq += frame(b"C")
        self.acked = self.received

    def _drop_conn(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
            self.conn = None
            self.away_since = time.monotonic()

    def finish(self):
        with self.lock:
            self.done = True
            incoming, self.incoming = self.incoming, None
        if incoming is not None:
            incoming[0].close()
        self._drop_conn()
        if self.kernel is not None:
            self.kernel.close()
            self.kernel = None
        self.relay.forget(self)
        self.wake_r.close()
        self.wake_w.close()

    def _close_kernel(self):
        if self.kernel is not None:
            self.kernel.close()
            self.kernel = None

    def run(self):
        try:
            self._run()
        except Exception as exc:  # a bug must not take the supervisor down: drop this stream
            say("relay stream %s failed: %r" % (self.sid, exc))
        if not self.done:
            self.finish()

    def _run(self):
        while not self.done:
            self._adopt()
            if self.done:
                return
            conn, kernel = self.conn, self.kernel
            if conn is None:
                if time.monotonic() - self.away_since > self.relay.expire:
                    say("relay stream %s not resumed within %gs: dropped" % (self.sid, self.relay.expire))
                    return self.finish()
                if len(self.out) > self.relay.cap:
                    say("relay stream %s: over %d bytes buffered while the link is down: dropped"
                        % (self.sid, self.relay.cap))
                    return self.finish()
            rl, wl = [self.wake_r], []
            if kernel is not None and not self.kernel_eof and (
                    (conn is None and len(self.out) <= self.relay.cap)
                    or (conn is not None and len(self.wq) < QUEUE_HIGH)):
                rl.append(kernel)
            if conn is not None:
                if len(self.to_kernel) < QUEUE_HIGH:
                    rl.append(conn)
                if self.wq:
                    wl.append(conn)
            if kernel is not None and self.to_kernel:
                wl.append(kernel)
            try:
                readable, writable = wait_io(rl, wl, 1.0)
            except (OSError, ValueError):
                readable, writable = [], []
                time.sleep(0.05)
            if self.wake_r in readable:
                try:
                    self.wake_r.recv(4096)
                except OSError:
                    pass
            if kernel is not None and kernel in readable:
                self._from_kernel()
            if conn is not None and conn is self.conn and conn in readable:
                self._from_conn()
            if self.done:
                return
            if self.kernel is not None and self.kernel in writable and self.to_kernel:
                try:
                    n = self.kernel.send(self.to_kernel)
                    del self.to_kernel[:n]
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    self._kernel_gone()
            if self.conn is not None and self.conn in writable and self.wq:
                try:
                    n = self.conn.send(self.wq)
                    del self.wq[:n]
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    self._drop_conn()
            if self.peer_closed and not self.to_kernel:
                self._close_kernel()
                if not self.wq or self.conn is None:
                    return self.finish()

    def _kernel_gone(self):
        """The kernel closed its side: our close follows what is buffered."""
        self._close_kernel()
        self.to_kernel = bytearray()
        if not self.kernel_eof:
            self.kernel_eof = True
            if self.conn is not None:
                self.wq += frame(b"C")

    def _from_kernel(self):
        try:
            data = self.kernel.recv(FRAME_MAX)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            return self._kernel_gone()
        self.out += data
        if self.conn is not None:
            self.wq += frame(b"D", data)

    def _from_conn(self):
        conn = self.conn
        if conn is None:
            return
        try:
            data = conn.recv(1 << 18)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            return self._drop_conn()
        self.inbuf += data
        for kind, payload in parse_frames(self.inbuf):
            if kind == b"D":
                self.received += len(payload)
                if self.kernel is not None and not self.peer_closed:
                    self.to_kernel += payload
            elif kind == b"A":
                count = struct.unpack(">Q", payload)[0]
                if self.out_base <= count <= self.out_base + len(self.out):
                    del self.out[:count - self.out_base]
                    self.out_base = count
            elif kind == b"C":
                self.peer_closed = True
                if not self.kernel_eof:  # answer with ours (nothing more comes from the kernel)
                    self.kernel_eof = True
                    self.wq += frame(b"C")
        if self.received - self.acked >= ACK_EVERY:
            self.acked = self.received
            self.wq += frame(b"A", struct.pack(">Q", self.received))
        if self.peer_closed and self.kernel_eof and self.kernel is None:
            pass


class Relay(object):
    """Accepts the forwarder's connections on a loopback port; see the module docstring."""

    def __init__(self, ports, directory=None, cap=RELAY_CAP, expire=RELAY_EXPIRE):
        self.ports = list(ports)
        self.dir = directory
        self.cap = cap
        self.expire = expire
        self.streams = {}
        self.lock = threading.Lock()
        self.sock = listen_avoiding(self.ports)
        self.port = self.sock.getsockname()[1]

    def start(self):
        t = threading.Thread(target=self._accept_loop, name="pai-relay")
        t.daemon = True
        t.start()
        return self

    def close(self):
        try:  # wakes the accept() blocked in the thread; close() alone leaves the port listening
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def forget(self, stream):
        with self.lock:
            sid = stream.sid
            if self.streams.get(sid) is stream:
                del self.streams[sid]

    def kernel_port(self, index):
        """Port ``index`` of the current connection file (a restart may rewrite it), else hello's."""
        if self.dir is not None:
            try:
                with open(os.path.join(self.dir, "kernel.json")) as fh:
                    return int(json.load(fh)[PORT_KEYS[index]])
            except (OSError, ValueError, KeyError, IndexError):
                pass
        return self.ports[index]

    def _accept_loop(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._handshake, args=(conn,), name="pai-relay-hello")
            t.daemon = True
            t.start()

    def _handshake(self, conn):
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(30)
            line = b""
            while not line.endswith(b"\n"):
                byte = conn.recv(1)  # one by one: what follows the line is the stream's
                if not byte or len(line) > 200:
                    raise OSError("no handshake")
                line += byte
            parts = line.decode("ascii", "replace").split()
            if len(parts) != 5 or parts[0] != RELAY_MAGIC or parts[4] not in ("N", "R"):
                conn.sendall(b"ERR bad handshake\n")
                conn.close()
                return
            sid, index, count, mode = parts[1], int(parts[2]), int(parts[3]), parts[4]
            with self.lock:
                stream = self.streams.get(sid)
            if stream is not None:
                if not stream.attach(conn, count, None):
                    conn.sendall(b"ERR unknown stream\n")
                    conn.close()
                return
            if mode != "N" or count != 0:
                conn.sendall(b"ERR unknown stream\n")
                conn.close()
                return
            if not 0 <= index < len(self.ports):
                conn.sendall(b"ERR unknown port index\n")
                conn.close()
                return
            try:
                kernel = socket.create_connection(("127.0.0.1", self.kernel_port(index)), timeout=5)
            except OSError:
                conn.sendall(b"ERR kernel port refused\n")
                conn.close()
                return
            kernel.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            kernel.setblocking(False)
            stream = RelayStream(self, sid, kernel)
            with self.lock:
                self.streams[sid] = stream
            stream.attach(conn, 0, b"NEW\n")
            t = threading.Thread(target=stream.run, name="pai-relay-stream")
            t.daemon = True
            t.start()
        except (OSError, ValueError):
            try:
                conn.close()
            except OSError:
                pass


class Supervisor:
    def __init__(self, directory, lease):
        self.dir = directory
        self.lease = lease
        self.proc = None
        self.gen = 0
        self.ready = False
        self.last_lease = None
        self.renewed = time.monotonic()
        self.shell_port = 0

    def path(self, name):
        return os.path.join(self.dir, name)

    def check_lease(self):
        try:
            with open(self.path("lease")) as fh:
                value = fh.read()
        except OSError:
            value = None
        if value != self.last_lease:
            self.last_lease = value
            self.renewed = time.monotonic()
        return time.monotonic() - self.renewed <= self.lease

    def start(self, gen):
        if self.proc is not None:  # a restart before the old kernel's exit was seen
            self.kill(signal.SIGKILL)
            try:
                self.proc.wait(5)
            except Exception:
                pass
            self.reap()
        with open(self.path("kernel.json")) as fh:
            info = json.load(fh)
        self.shell_port = int(info["shell_port"])
        self.gen = gen
        # a port another process listens on would fool the readiness check (it connects) and
        # make the kernel die binding it: say which one instead (an old kernel may take a moment)
        taken = [p for p in PORT_KEYS if listening(int(info[p]))]
        deadline = time.monotonic() + 3
        while taken and time.monotonic() < deadline:
            time.sleep(0.1)
            taken = [p for p in taken if listening(int(info[p]))]
        if taken:
            write_atomic(self.path("kernel-%d.exit" % gen), "98")
            say("kernel %d not started: port %d (%s) on the task's loopback is taken by another process"
                % (gen, int(info[taken[0]]), taken[0]))
            return
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", self.path("kernel.json")]
        env = dict(os.environ)
        env.pop("PYTHONSTARTUP", None)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, env=env)
        self.ready = False
        write_atomic(self.path("kernel-%d.pid" % gen), str(self.proc.pid))
        say("kernel %d started (pid %d)" % (gen, self.proc.pid))

    def kill(self, sig):
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except OSError:
                pass

    def reap(self):
        if self.proc is None:
            return
        if not self.ready and self.proc.poll() is None and listening(self.shell_port):
            self.ready = True
            write_atomic(self.path("kernel-%d.ready" % self.gen), "")
        code = self.proc.poll()
        if code is not None:
            write_atomic(self.path("kernel-%d.exit" % self.gen), str(code))
            say("kernel %d exited with status %d" % (self.gen, code))
            self.proc = None

    def requests(self):
        try:
            names = sorted(os.listdir(self.dir))
        except OSError:
            return
        for name in names:
            if name == "stop":
                return "stop"
            if name.startswith("start-") and not name.endswith(".tmp"):
                os.unlink(self.path(name))
                self.start(int(name[6:]))
            elif name.startswith("signal-") and not name.endswith(".tmp"):
                os.unlink(self.path(name))
                _, gen, sig = name.split("-")
                if self.gen == int(gen):
                    self.kill(int(sig))
        return None

    def end(self, code):
        self.kill(signal.SIGKILL)
        if self.proc is not None:
            try:
                self.proc.wait(5)
            except Exception:
                pass
            self.reap()
        sys.exit(code)

    def run(self):
        signal.signal(signal.SIGTERM, lambda *a: self.end(143))
        signal.signal(signal.SIGHUP, lambda *a: self.end(129))
        if not has_ipykernel():
            message = ("The image's Python (%s, %s) has no ipykernel: add 'pip install ipykernel' to the image, "
                       "or install the kernel with --python naming a Python that has it."
                       % (sys.executable, sys.version.split()[0]))
            say(message)
            write_atomic(self.path("error"), message)
            deadline = time.monotonic() + ERROR_GRACE
            while time.monotonic() < deadline and not os.path.exists(self.path("stop")):
                time.sleep(POLL)
            sys.exit(2)
        ports = kernel_ports()
        relay = Relay(ports, self.dir).start()
        write_atomic(self.path("hello.json"), json.dumps({
            "pid": os.getpid(), "ports": ports, "python": sys.executable,
            "version": sys.version.split()[0], "relay": relay.port}))
        say("supervisor ready (lease %gs)" % self.lease)
        while True:
            if not self.check_lease():
                say("lease expired: the Jupyter server stopped renewing it for %gs; ending the job" % self.lease)
                self.end(3)
            if self.requests() == "stop":
                say("stop requested")
                self.end(0)
            self.reap()
            time.sleep(POLL if self.proc is None or self.ready else POLL / 3)


def main(argv):
    directory = argv[1]
    lease = float(argv[2]) if len(argv) > 2 else 300.0
    os.chmod(directory, 0o700)
    Supervisor(directory, lease).run()


if __name__ == "__main__":
    main(sys.argv)
