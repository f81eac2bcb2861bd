"""The kernel supervisor: the main process of a kernel job, inside the task.

It is copied into the task over SFTP and run with the image's Python, so it uses the standard
library only and runs on any Python 3.6+. It talks to the provisioner through files in its
private directory (0700; the provisioner reads and writes them over SFTP on the same SSH
connection that carries the kernel's ports):

``hello.json``   written at start: the five loopback ports the kernel will bind, the Python.
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

Why the kernel is this process's child and not an SSH exec channel's: a dropped SSH link
must not end the kernel (the provisioner reconnects and finds it running).
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

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
        write_atomic(self.path("hello.json"), json.dumps({
            "pid": os.getpid(), "ports": ports, "python": sys.executable,
            "version": sys.version.split()[0]}))
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
