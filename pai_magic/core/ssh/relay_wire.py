"""The wire of the kernel relay: what the forwarder (core/ssh/forward.py) and the relay in the
job's supervisor (kernel/supervisor.py) both speak, kept in one place so the two cannot drift.

Why a module of its own, standard library only and Python 3.6 syntax: the supervisor runs on
the job image's Python, where pai_magic is not installed, so the provisioner copies this file
into the job beside it (as ``pai_relay_wire.py``) and the supervisor imports it from there.

A stream starts with a one-line handshake (``RELAY_MAGIC`` ...), then carries frames both
ways: a type byte, a 4-byte length, the payload. ``D`` data, ``A`` acknowledgement (8-byte
count of bytes received), ``C`` close.
"""
import select
import struct
from typing import Any, Dict, List, Tuple, Union

RELAY_MAGIC = "PAIRELAY1"
#: each side acknowledges once it has received this much since its last acknowledgement, so the
#: bytes kept for a resend stay bounded
ACK_EVERY = 32 << 10
FRAME_MAX = 64 << 10
#: stop reading a source while this much is queued for its destination (TCP backpressure)
QUEUE_HIGH = 1 << 20
HEADER = struct.Struct(">cI")


def frame(kind: bytes, payload: bytes = b"") -> bytes:
    """One frame: type, length, payload."""
    return HEADER.pack(kind, len(payload)) + payload


def data_frames(data: Union[bytes, bytearray]) -> bytearray:
    out = bytearray()
    for i in range(0, len(data), FRAME_MAX):
        out += frame(b"D", bytes(data[i:i + FRAME_MAX]))
    return out


def parse_frames(buf: bytearray) -> List[Tuple[bytes, bytes]]:
    """The complete frames at the front of ``buf``, removed from it."""
    out: List[Tuple[bytes, bytes]] = []
    while len(buf) >= HEADER.size:
        kind, size = HEADER.unpack_from(buf)
        if len(buf) < HEADER.size + size:
            break
        out.append((kind, bytes(buf[HEADER.size:HEADER.size + size])))
        del buf[:HEADER.size + size]
    return out


def wait_io(readers: List[Any], writers: List[Any], timeout: float) -> Tuple[List[Any], List[Any]]:
    """``select`` for sockets and paramiko channels, with ``poll`` underneath: no 1024-fd limit
    (a Jupyter server with many kernels and websockets passes it)."""
    poller = select.poll()
    objs: Dict[int, Any] = {}
    for obj in readers:
        objs[obj.fileno()] = obj
        poller.register(obj.fileno(), select.POLLIN)
    for obj in writers:
        fd = obj.fileno()
        objs[fd] = obj
        poller.register(fd, select.POLLOUT | (select.POLLIN if obj in readers else 0))
    readable: List[Any] = []
    writable: List[Any] = []
    for fd, event in poller.poll(timeout * 1000):
        obj = objs[fd]
        if event & (select.POLLIN | select.POLLHUP | select.POLLERR) and obj in readers:
            readable.append(obj)
        if event & (select.POLLOUT | select.POLLHUP | select.POLLERR) and obj in writers:
            writable.append(obj)
    return readable, writable
