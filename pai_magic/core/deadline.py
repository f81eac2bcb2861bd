"""How long one command may wait for the cluster: one overall deadline, not one per socket read.

Why: a timeout per socket read multiplied by urllib3's retries, and by a submit's POSTs and
its doubt lookups, let a cluster that accepts connections and never answers keep
``pai-magic submit`` silent for half an hour. Here every request (with its retries and
``Retry-After`` waits) and every multi-request operation (a submit with its doubt lookups)
runs inside a :class:`Deadline`, and the message says the number the user configured:
"no answer from URL within 30 s".

The number comes, first match wins, from:
1. an explicit value (``PaiHttp(deadline=...)``, ``%config PaiMagics.request_timeout``);
2. :func:`request_timeout_scope` (the CLI's ``--request-timeout`` wraps a command in one);
3. the environment variable ``PAI_MAGIC_REQUEST_TIMEOUT``;
4. :data:`DEFAULT_REQUEST_TIMEOUT` (30 s).

Waiting for a JOB (``--wait``, ``--timeout``) is a different, longer clock: each poll of a
wait is one operation with its own deadline.
"""
from __future__ import annotations

import contextlib
import contextvars
import math
import os
import time
from typing import Iterator

from pai_magic.core.errors import InvalidInputError

DEFAULT_REQUEST_TIMEOUT = 30.0
ENV_VAR = "PAI_MAGIC_REQUEST_TIMEOUT"
MIN_TIMEOUT = 0.05
MAX_TIMEOUT = 24 * 3600.0

_scope_seconds: contextvars.ContextVar[float | None] = contextvars.ContextVar("pai_request_timeout", default=None)
_current: contextvars.ContextVar["Deadline | None"] = contextvars.ContextVar("pai_deadline", default=None)


def check_timeout(value: object, what: str = "request timeout") -> float:
    """``value`` as seconds, or a one-line error saying what is accepted."""
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInputError(f"The {what} {value!r} is not a number of seconds: give e.g. 30.") from None
    if not math.isfinite(seconds) or not MIN_TIMEOUT <= seconds <= MAX_TIMEOUT:
        raise InvalidInputError(f"The {what} must be between {MIN_TIMEOUT:g} and {MAX_TIMEOUT:g} seconds "
                                f"(got {value!r}).")
    return seconds


def request_timeout() -> float:
    """The configured seconds one operation may wait for the cluster (see the module docstring)."""
    scoped = _scope_seconds.get()
    if scoped is not None:
        return scoped
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return check_timeout(env, f"{ENV_VAR} value")
    return DEFAULT_REQUEST_TIMEOUT


@contextlib.contextmanager
def request_timeout_scope(seconds: float | None) -> Iterator[None]:
    """Within the block (this thread / task), operations default to ``seconds``; None changes nothing."""
    if seconds is None:
        yield
        return
    token = _scope_seconds.set(check_timeout(seconds))
    try:
        yield
    finally:
        _scope_seconds.reset(token)


class Deadline:
    """A point in (monotonic) time, and the number of seconds the user was promised."""

    def __init__(self, seconds: float, *, promised: float | None = None) -> None:
        self.seconds = float(seconds)
        self.promised = float(promised if promised is not None else seconds)
        self.started = time.monotonic()
        self.at = self.started + self.seconds

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def __repr__(self) -> str:
        return f"Deadline({self.seconds:g} s, {self.remaining():.1f} s left)"


def current_deadline() -> Deadline | None:
    """The innermost operation deadline of this thread, if any."""
    return _current.get()


@contextlib.contextmanager
def operation(seconds: float | None = None, *, promised: float | None = None) -> Iterator[Deadline]:
    """Run the block as one operation of at most ``seconds`` (default :func:`request_timeout`).

    Nested operations never outlive the outer one: a submit's POST given "all but the time
    its doubt lookups need" still ends when the submit's own deadline does. ``promised`` is
    the number messages quote (the outer one's when nested).
    """
    outer = _current.get()
    total = request_timeout() if seconds is None else float(seconds)
    deadline = Deadline(total, promised=promised)
    if outer is not None and outer.at < deadline.at:
        deadline.at = outer.at
        deadline.seconds = max(0.0, deadline.at - deadline.started)
    if outer is not None and promised is None:
        deadline.promised = outer.promised
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)


def say_seconds(seconds: float) -> str:
    """``30`` / ``2.5``: how messages quote a number of seconds."""
    return f"{seconds:.0f}" if seconds >= 10 or float(seconds).is_integer() else f"{seconds:.1f}"
