"""Local port forwarding over ONE SSH connection: many ports, one pump thread, stable ports.

Why not ``ssh -L`` per port (what the generic remote-kernel tools do): five processes per
kernel, each with its own login, and a forward that dies with its process. Here one paramiko
transport carries every forwarded connection as a ``direct-tcpip`` channel; the local
listeners (127.0.0.1, ports the caller chose or got once) outlive the transport, so after a
dropped link :meth:`PortForwarder.ensure_connected` (or the next accepted connection) opens a
new transport and clients such as ZeroMQ simply reconnect to the same local ports.

Why a session channel stays open: OpenSSH's sshd turns on TCP_NODELAY for the connection only
once a session runs (``ssh_packet_set_interactive``); with forwards alone each small message
waits on Nagle's algorithm and a round trip took ~40 ms instead of ~5 ms (FACTS.md).

One thread (``selectors``) moves the bytes of every connection. Opening a channel costs a
round trip (and a reconnect, if the link is down), so each accepted connection is handed to a
short-lived opener thread, which passes the ready pair back to the pump.

Resumable mode (:meth:`PortForwarder.set_relay`, used for kernels): each local connection is
a stream through the relay that the kernel supervisor runs in the job (protocol in
``pai_magic/kernel/supervisor.py``). When the link drops, the local socket stays open (it is
simply not read: TCP backpressure), the stream reconnects by itself (0.2 s doubling to 5 s)
and both sides resend what the other did not get: ZeroMQ on either end never sees the drop,
so no message in flight is lost and IOPub subscriptions stay. Direct mode stays for every
other use and for supervisors without a relay.
"""
from __future__ import annotations

import logging
import os
import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Collection, Sequence

from pai_magic.core.errors import InvalidInputError, PaiError, UnreachableError
from pai_magic.core.ssh.connect import SshSession
from pai_magic.core.ssh.relay_wire import (ACK_EVERY, FRAME_MAX, QUEUE_HIGH, RELAY_MAGIC, data_frames, frame,
                                           parse_frames, wait_io)

log = logging.getLogger("pai_magic.ssh.forward")

BUF = 1 << 16
#: The command of the session channel kept open (see the module docstring): it reads its
#: standard input until the channel closes and prints nothing.
KEEP_SESSION_COMMAND = "exec cat >/dev/null"


@dataclass(frozen=True)
class Forward:
    """``127.0.0.1:local_port`` -> ``remote_host:remote_port`` as seen from the SSH server."""

    local_port: int
    remote_host: str
    remote_port: int


class _Pair:
    """One forwarded connection: a local socket and its channel."""

    __slots__ = ("sock", "chan", "local_eof", "remote_eof", "transport")

    def __init__(self, sock: socket.socket, chan: Any) -> None:
        self.sock = sock
        self.chan = chan
        self.transport = chan.get_transport()
        self.local_eof = False
        self.remote_eof = False


class PortForwarder:
    """Listen on local ports and forward each connection through one SSH transport.

    ``connect`` returns a new authenticated :class:`SshSession`; it is called on first use and
    again whenever the transport is found dead. The listeners are bound in the constructor
    (a taken port raises :class:`InvalidInputError` at once), so ``local_ports`` is known
    before anything connects.
    """

    def __init__(self, connect: Callable[[], SshSession], forwards: Sequence[Forward], *,
                 bind_host: str = "127.0.0.1", keep_session: bool = True,
                 open_timeout: float = 10.0, io_timeout: float = 60.0,
                 on_reconnect: Callable[[SshSession], None] | None = None,
                 avoid: Collection[int] = ()) -> None:
        self._connect = connect
        self._bind_host = bind_host
        self._keep_session = keep_session
        self._open_timeout = open_timeout
        self._io_timeout = io_timeout
        self._on_reconnect = on_reconnect
        self._lock = threading.RLock()
        self._session: SshSession | None = None
        self._keeper: Any = None
        self._connects = 0
        self._closed = False
        self._pairs: set[_Pair] = set()
        self._relay: tuple[str, int] | None = None
        self._streams: set[_RelayStream] = set()
        self._streams_lock = threading.Lock()
        self._relink_lock = threading.Lock()
        self._relink_delay = RELINK_FIRST
        self._relink_next = 0.0
        self._pending: list[_Pair] = []
        self._pending_lock = threading.Lock()
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        self._listeners: list[tuple[socket.socket, Forward]] = []
        try:
            for fwd in forwards:
                self._listeners.append((self._listen_avoiding(fwd, set(avoid)), fwd))
        except BaseException:
            self._close_listeners()
            raise
        self._forwards = [Forward(sock.getsockname()[1], f.remote_host, f.remote_port)
                          for sock, f in self._listeners]
        for i, (sock, _f) in enumerate(self._listeners):
            self._sel.register(sock, selectors.EVENT_READ, ("listen", i))
        self._thread = threading.Thread(target=self._pump, name="pai-ssh-forward", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        ports = ", ".join(f"{f.local_port}->{f.remote_host}:{f.remote_port}" for f in self._forwards)
        return f"PortForwarder({ports}, connected={self.connected})"

    # -- public -------------------------------------------------------------------------------
    @property
    def forwards(self) -> list[Forward]:
        return list(self._forwards)

    @property
    def local_ports(self) -> list[int]:
        return [f.local_port for f in self._forwards]

    @property
    def connected(self) -> bool:
        session = self._session
        return session is not None and session.active

    @property
    def connects(self) -> int:
        """How many transports were opened so far (1 after the first connect)."""
        return self._connects

    def set_remote(self, remotes: Sequence[tuple[str, int]]) -> None:
        """Point the same local ports at new remote ends (new connections only)."""
        if len(remotes) != len(self._forwards):
            raise InvalidInputError(f"expected {len(self._forwards)} remote ends, got {len(remotes)}")
        self._forwards = [Forward(f.local_port, h, int(p)) for f, (h, p) in zip(self._forwards, remotes)]

    def set_relay(self, port: int | None, host: str = "127.0.0.1") -> None:
        """Carry new connections as resumable streams through the job's relay at ``host:port``
        (``None``: direct forwards again). Listener ``i`` becomes the relay's port index ``i``.

        Why: a direct forward dies with the link and ZeroMQ loses what was in flight; a stream
        through the relay survives a dropped link (see pai_magic/kernel/supervisor.py).
        """
        self._relay = None if port is None else (host, int(port))

    @property
    def relay(self) -> tuple[str, int] | None:
        return self._relay

    @property
    def streams(self) -> int:
        """How many resumable streams are open."""
        return len(self._streams)

    def session(self) -> SshSession:
        """The live session, connecting (again) if needed; SFTP and exec can share it."""
        with self._lock:
            if self._closed:
                raise UnreachableError("The port forwarder was closed: start the kernel again.")
            if self._session is not None and self._session.active:
                return self._session
            old, self._session = self._session, None
            if old is not None:
                self._drop_pairs(old.transport)
                old.close()
            session = self._connect()
            if self._keep_session:
                try:
                    keeper = session.open_channel()
                    keeper.exec_command(KEEP_SESSION_COMMAND)
                    self._keeper = keeper
                except (PaiError, OSError, EOFError) as exc:
                    log.debug("could not keep a session channel open: %s", exc)
            self._session = session
            self._connects += 1
            reconnected = self._connects > 1
        if reconnected and self._on_reconnect is not None:
            self._on_reconnect(session)
        return session

    def ensure_connected(self) -> bool:
        """Connect if the transport is down; True when a new transport was opened."""
        before = self._connects
        self.session()
        return self._connects != before

    def drop(self) -> None:
        """Close the current transport (as a lost link would); the listeners stay."""
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()
            self._drop_pairs(session.transport)

    def close(self) -> None:
        """Close every forwarded connection, the listeners and the transport."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            session, self._session = self._session, None
        self._wake()
        self._thread.join(timeout=5)
        for pair in list(self._pairs) + self._pending:
            self._close_pair(pair)
        with self._streams_lock:
            streams = list(self._streams)
        deadline = time.monotonic() + 3  # each sees the close within half a second
        for stream in streams:
            stream.thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._close_listeners()
        if session is not None:
            session.close()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._sel.close()

    def __enter__(self) -> "PortForwarder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- listeners and openers -----------------------------------------------------------------
    def _listen(self, fwd: Forward) -> socket.socket:
        sock = socket.socket(socket.AF_INET6 if ":" in self._bind_host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._bind_host, int(fwd.local_port)))
        except OSError as exc:
            sock.close()
            raise InvalidInputError(f"Local port {fwd.local_port} is taken ({exc.strerror}): choose another "
                                    "port or stop what listens there.") from None
        sock.listen(64)
        sock.setblocking(False)
        return sock

    def _listen_avoiding(self, fwd: Forward, avoid: set[int]) -> socket.socket:
        """A listener for ``fwd``; a port the system picks (``local_port`` 0) is never one of
        ``avoid``. Why: when the far end is this very machine (the embedded backend's tasks),
        the remote ports were only reserved, not yet bound, and a listener of ours on one of
        them makes the kernel there fail to bind it."""
        held: list[socket.socket] = []
        try:
            for _ in range(64):
                sock = self._listen(fwd)
                if fwd.local_port or sock.getsockname()[1] not in avoid:
                    return sock
                held.append(sock)  # kept open while asking again, so the next pick differs
            raise InvalidInputError(f"No free local port outside {sorted(avoid)}: stop some listeners and retry.")
        finally:
            for sock in held:
                sock.close()

    def _close_listeners(self) -> None:
        for sock, _f in self._listeners:
            try:
                sock.close()
            except OSError:
                pass

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _accept(self, index: int) -> None:
        sock = self._listeners[index][0]
        try:
            conn, _peer = sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        relay = self._relay
        if relay is not None:
            stream = _RelayStream(self, conn, index, relay)
            with self._streams_lock:
                self._streams.add(stream)
            stream.thread.start()
            return
        fwd = self._forwards[index]
        threading.Thread(target=self._open, args=(conn, fwd), name="pai-ssh-forward-open", daemon=True).start()

    def _open(self, conn: socket.socket, fwd: Forward) -> None:
        import paramiko

        try:
            peer = conn.getpeername()[:2]
            session = self.session()
            chan = session.transport.open_channel("direct-tcpip", (fwd.remote_host, fwd.remote_port),
                                                  peer, timeout=self._open_timeout)
        except (PaiError, paramiko.SSHException, EOFError, OSError) as exc:
            log.debug("forward to %s:%s not opened: %s", fwd.remote_host, fwd.remote_port, exc)
            conn.close()
            return
        conn.settimeout(self._io_timeout)
        chan.settimeout(self._io_timeout)
        pair = _Pair(conn, chan)
        with self._pending_lock:
            if self._closed:
                self._close_pair(pair)
                return
            self._pending.append(pair)
        self._wake()

    def _relink(self) -> SshSession | None:
        """The live session for a stream that lost its link, or None while the reconnect
        backs off (0.2 s doubling to 5 s, shared by every waiting stream)."""
        with self._relink_lock:
            session = self._session
            if session is not None and session.active:
                return session
            if time.monotonic() < self._relink_next:
                return None
            try:
                session = self.session()
            except Exception as exc:  # noqa: BLE001 - any failure to connect: try again later
                log.debug("reconnect for resumable streams failed: %s", exc)
                self._relink_next = time.monotonic() + self._relink_delay
                self._relink_delay = min(RELINK_MAX, self._relink_delay * 2)
                return None
            self._relink_delay = RELINK_FIRST
            return session

    def _stream_done(self, stream: "_RelayStream") -> None:
        with self._streams_lock:
            self._streams.discard(stream)

    # -- the pump ----------------------------------------------------------------------------
    def _pump(self) -> None:
        while not self._closed:
            try:
                events = self._sel.select(timeout=0.5)
            except (OSError, ValueError):
                if self._closed:
                    break
                raise
            for key, _mask in events:
                kind, ref = key.data
                if kind == "wake":
                    try:
                        while os.read(self._wake_r, 4096):
                            pass
                    except OSError:
                        pass
                elif kind == "listen":
                    self._accept(ref)
                elif kind == "local":
                    self._from_local(ref)
                elif kind == "remote":
                    self._from_remote(ref)
            self._adopt_pending()
            # a closed channel may still hold data the peer sent before closing: drain it first
            for pair in [p for p in self._pairs if not p.transport.is_active()
                         or (p.chan.closed and not p.chan.recv_ready() and p.remote_eof)]:
                self._close_pair(pair)

    def _adopt_pending(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, []
        for pair in pending:
            self._pairs.add(pair)
            self._sel.register(pair.sock, selectors.EVENT_READ, ("local", pair))
            self._sel.register(pair.chan.fileno(), selectors.EVENT_READ, ("remote", pair))

    def _from_local(self, pair: _Pair) -> None:
        try:
            data = pair.sock.recv(BUF)
        except (BlockingIOError, InterruptedError, socket.timeout):
            return
        except OSError:
            data = b""
        if data:
            try:
                pair.chan.sendall(data)
            except Exception:  # paramiko raises SSHException, socket errors, EOFError
                self._close_pair(pair)
            return
        # the local client closed its side: pass the EOF on, keep reading the other way
        pair.local_eof = True
        self._unregister(pair.sock)
        try:
            pair.chan.shutdown_write()
        except Exception:  # paramiko raises SSHException, socket errors, EOFError
            pass
        if pair.remote_eof:
            self._close_pair(pair)

    def _from_remote(self, pair: _Pair) -> None:
        chan = pair.chan
        if chan.recv_ready():
            try:
                data = chan.recv(BUF)
            except (socket.timeout, OSError, EOFError):
                data = b""
        elif chan.eof_received or chan.closed:
            data = b""
        else:
            return  # a spurious wake-up of the channel's pipe
        if data:
            try:
                pair.sock.sendall(data)
            except OSError:
                self._close_pair(pair)
            return
        pair.remote_eof = True
        self._unregister(chan.fileno())
        try:
            pair.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        if pair.local_eof or chan.closed:
            self._close_pair(pair)

    def _unregister(self, fileobj: Any) -> None:
        try:
            self._sel.unregister(fileobj)
        except (KeyError, ValueError, OSError):
            pass

    def _close_pair(self, pair: _Pair) -> None:
        self._pairs.discard(pair)
        self._unregister(pair.sock)
        try:
            self._unregister(pair.chan.fileno())
        except (OSError, ValueError):
            pass
        for closer in (pair.sock.close, pair.chan.close):
            try:
                closer()
            except Exception:
                pass

    def _drop_pairs(self, transport: Any) -> None:
        # the pump notices dead transports itself within its select timeout; waking it makes
        # that immediate
        self._wake()


# -- resumable streams through the job's relay ----------------------------------------------
#: How long a stream waits for the link to come back before its local socket is closed.
RESUME_LIMIT = 600.0
#: seconds a finished stream waits for the relay to close its channel (the sign it has our close)
CLOSE_WAIT = 30.0
RELINK_FIRST, RELINK_MAX = 0.2, 5.0


class _StreamGone(Exception):
    """The relay refused the stream (unknown, expired, kernel port closed): close locally."""


class _RelayStream:
    """One local connection carried as a resumable stream; its own thread moves its bytes.

    Why a thread per stream: a kernel has five, and the stream's state machine (handshake,
    resend, waiting for the link) reads straight; every socket is non-blocking and waits in
    ``poll`` on both directions, so a full buffer one way never stalls the other.
    """

    def __init__(self, owner: "PortForwarder", sock: socket.socket, index: int, relay: tuple[str, int]) -> None:
        self.owner = owner
        self.sock = sock
        self.index = index
        self.relay = relay
        self.sid = os.urandom(16).hex()
        self.chan: Any = None
        self.known = False            # the relay answered NEW once: later handshakes resume
        self.out = bytearray()        # read locally, not yet acked by the relay
        self.out_base = 0
        self.wq = bytearray()         # frames for the current channel
        self.inbuf = bytearray()
        self.to_local = bytearray()
        self.received = 0
        self.acked = 0
        self.local_eof = False        # our close is due after ``out``
        self.peer_closed = False
        self.local_dead = False
        # the link died after the relay's close: ours may have died with it, and the relay keeps
        # the stream (a thread, the kernel socket, its buffer) until it has ours, so relink once
        self.close_unsure = False
        self.closing_since = 0.0
        self.thread = threading.Thread(target=self.run, name="pai-ssh-relay-stream", daemon=True)

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # noqa: BLE001 - any failure ends this stream only, as a lost connection would
            log.debug("relay stream %s ended: %r", self.sid, exc)
        finally:
            self._close_chan()
            try:
                self.sock.close()
            except OSError:
                pass
            self.owner._stream_done(self)

    # -- the link ------------------------------------------------------------------------------
    def _close_chan(self) -> None:
        chan, self.chan = self.chan, None
        if chan is not None:
            try:
                chan.close()
            except Exception:  # noqa: BLE001 - paramiko raises many kinds on a dead transport
                pass

    def _link(self) -> None:
        """Open a channel to the relay and (re)join the stream; waits for the link to return."""
        import paramiko

        deadline = time.monotonic() + (RESUME_LIMIT if self.known else self.owner._open_timeout)
        while True:
            if self.owner._closed:
                raise _StreamGone("forwarder closed")
            session = self.owner._relink()
            if session is not None:
                try:
                    self._handshake(session)
                    return
                except paramiko.ChannelException as exc:  # the link is up, the relay is not
                    raise _StreamGone(f"relay refused the channel: {exc}") from None
                except (PaiError, paramiko.SSHException, EOFError, OSError) as exc:
                    self._close_chan()
                    log.debug("relay stream %s: no link yet: %s", self.sid, exc)
                    if not self.known:
                        raise _StreamGone(str(exc)) from None
            if time.monotonic() > deadline:
                raise _StreamGone("the link did not come back")
            self._flush_local()
            time.sleep(0.1)

    def _flush_local(self) -> None:
        """What arrived before the link dropped still goes to the local client meanwhile."""
        if self.to_local and not self.local_dead:
            try:
                del self.to_local[:self.sock.send(self.to_local)]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self.local_dead = True
                self.to_local = bytearray()

    def _handshake(self, session: SshSession) -> None:
        chan = session.transport.open_channel("direct-tcpip", self.relay, ("127.0.0.1", 0),
                                              timeout=self.owner._open_timeout)
        self.chan = chan
        chan.settimeout(self.owner._open_timeout)
        line = f"{RELAY_MAGIC} {self.sid} {self.index} {self.received} {'R' if self.known else 'N'}\n"
        chan.sendall(line.encode())
        got = bytearray()
        while b"\n" not in got:
            chunk = chan.recv(4096)
            if not chunk:
                raise EOFError("the relay closed the stream's channel during the handshake")
            got += chunk
            if len(got) > 4096:
                raise EOFError("no handshake answer from the relay")
        answer, _, rest = bytes(got).partition(b"\n")
        words = answer.decode("ascii", "replace").split()
        if words == ["NEW"] and not self.known:
            peer = 0
        elif len(words) == 2 and words[0] == "OK" and self.known:
            peer = int(words[1])
        else:
            raise _StreamGone(f"relay answered {answer!r}")
        if not self.out_base <= peer <= self.out_base + len(self.out):
            raise _StreamGone(f"relay's count {peer} is outside what was sent")
        self.known = True
        del self.out[:peer - self.out_base]
        self.out_base = peer
        self.inbuf = bytearray(rest)
        self.wq = data_frames(self.out)
        if self.local_eof:
            self.wq += frame(b"C")
        self.acked = self.received
        chan.settimeout(0.0)
        self._frames()

    # -- the bytes -----------------------------------------------------------------------------
    def _run(self) -> None:
        self.sock.setblocking(False)
        while True:
            if self.chan is None and not self.peer_closed:
                self._link()
            elif self.chan is None and self.close_unsure and not self.to_local:
                self.close_unsure = False
                self._shutdown_local()  # the client has everything: its EOF does not wait for the link
                try:
                    self._link()  # the resumed stream carries our close; the relay then ends it
                except _StreamGone:
                    return  # the relay has ended it already (it had our close) or is gone
            chan = self.chan
            if self.peer_closed and not self.to_local:
                self._shutdown_local()
                if chan is None and not self.close_unsure:
                    return  # the relay closed the channel on a live link: it had our close
                if chan is not None and not self.wq:
                    # ours is sent: the relay's closing the channel says it arrived; a link that
                    # dies first may have lost it (then close_unsure resumes the stream once)
                    self.closing_since = self.closing_since or time.monotonic()
                    if time.monotonic() - self.closing_since > CLOSE_WAIT:
                        return
            rl: list[Any] = []
            wl: list[Any] = []
            if chan is not None and len(self.to_local) < QUEUE_HIGH:
                rl.append(chan)
            if not self.local_eof and not self.peer_closed and len(self.wq) < QUEUE_HIGH:
                rl.append(self.sock)
            if self.to_local:
                wl.append(self.sock)
            # a channel has no writable event: poll its window while frames wait
            timeout = 0.02 if self.wq else 0.5
            try:
                readable, writable = wait_io(rl, wl, timeout)
            except (OSError, ValueError):  # a socket closed under us: the checks below notice it
                readable, writable = [], []
                time.sleep(0.05)
            if self.owner._closed:
                return
            if self.sock in readable:
                self._from_local()
            if chan is not None and (chan in readable or chan.closed or chan.eof_received):
                if not self._from_chan(chan):
                    continue
            if self.sock in writable and self.to_local:
                try:
                    n = self.sock.send(self.to_local)
                    del self.to_local[:n]
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:  # the local client is gone: close the stream
                    self.local_dead = True
                    self.to_local = bytearray()
                    if not self.local_eof:
                        self.local_eof = True
                        self.wq += frame(b"C")
            if self.wq and self.chan is not None:
                self._to_chan()

    def _lost(self) -> None:
        """The link died under this stream: keep everything, reconnect in the next turn."""
        log.debug("relay stream %s: link lost, resuming", self.sid)
        self._close_chan()
        if self.peer_closed:
            self.close_unsure = True

    def _shutdown_local(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _from_local(self) -> None:
        try:
            data = self.sock.recv(FRAME_MAX)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            self.out += data
            self.wq += frame(b"D", data)
            return
        self.local_eof = True
        self.wq += frame(b"C")

    def _from_chan(self, chan: Any) -> bool:
        try:
            data = chan.recv(1 << 18) if chan.recv_ready() or chan.closed or chan.eof_received else None
        except socket.timeout:
            return True
        except (OSError, EOFError):
            data = b""
        if data is None:
            return True
        if not data:
            transport = chan.get_transport()
            if self.peer_closed and transport is not None and transport.is_active():
                # the relay closed the channel on a live link: it had our close and ended the
                # stream; only local bytes remain
                self._close_chan()
                self.wq = bytearray()
            else:
                self._lost()
            return False
        self.inbuf += data
        self._frames()
        return True

    def _frames(self) -> None:
        for kind, payload in parse_frames(self.inbuf):
            if kind == b"D":
                self.received += len(payload)
                if not self.local_dead:
                    self.to_local += payload
            elif kind == b"A":
                (count,) = struct.unpack(">Q", payload)
                if self.out_base <= count <= self.out_base + len(self.out):
                    del self.out[:count - self.out_base]
                    self.out_base = count
            elif kind == b"C":
                self.peer_closed = True
                if not self.local_eof:  # answer with ours: nothing more is read locally
                    self.local_eof = True
                    self.wq += frame(b"C")
        if self.received - self.acked >= ACK_EVERY:
            self.acked = self.received
            self.wq += frame(b"A", struct.pack(">Q", self.received))

    def _to_chan(self) -> None:
        chan = self.chan
        try:
            while self.wq and chan.send_ready():
                n = chan.send(bytes(self.wq[:FRAME_MAX]))
                if n <= 0:
                    break
                del self.wq[:n]
        except socket.timeout:
            return
        except (OSError, EOFError) as exc:
            log.debug("relay stream %s: send failed: %s", self.sid, exc)
            self._lost()
        except Exception as exc:  # noqa: BLE001 - paramiko's SSHException on a dead transport
            log.debug("relay stream %s: send failed: %r", self.sid, exc)
            self._lost()
