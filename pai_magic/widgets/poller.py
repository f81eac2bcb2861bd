"""One background refresh loop per kernel, whatever the number of panels.

Each panel used to start its own thread; a notebook that displayed the panel in a few cells
(or re-ran the cell) had as many threads polling the cluster, each against OpenPAI's rate limit
(120 job lists a minute per IP). Panels now subscribe to the one :class:`Poller`; the thread
starts with the first subscriber and ends when the last one leaves, so a kernel without an
open panel runs no thread at all.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger("pai_magic.widgets")

THREAD_NAME = "pai-magic-panel-poller"
MAX_INTERVAL = 60.0   # failures back off up to this many seconds


@dataclass
class _Subscriber:
    refresh: Callable[[], bool]   # True when it worked
    interval: float
    wait: float                   # the current wait: ``interval``, doubled after each failure
    due: float                    # monotonic time of the next call


class Poller:
    """Calls each subscriber's ``refresh`` every ``interval`` seconds on one thread, the first
    time at once (showing a panel never waits on the network). A failing subscriber backs off
    (doubling up to a minute) without slowing the others; one that raises is logged and
    treated as a failure."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._subscribers: dict[int, _Subscriber] = {}
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self.cycles = 0   # subscriber calls made (tests and the benchmark read it)

    def subscribe(self, refresh: Callable[[], bool], interval: float) -> int:
        """Start polling ``refresh``; returns the id to :meth:`unsubscribe` with."""
        with self._lock:
            key = next(self._ids)
            self._subscribers[key] = _Subscriber(refresh, float(interval), float(interval), time.monotonic())
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
                self._thread.start()
            self._wake.notify_all()
            return key

    def unsubscribe(self, key: int) -> None:
        """Stop polling; the thread ends after the last subscriber leaves."""
        with self._lock:
            self._subscribers.pop(key, None)
            self._wake.notify_all()

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    @property
    def thread(self) -> threading.Thread | None:
        """The running loop's thread (None when no panel is open)."""
        with self._lock:
            return self._thread

    def _next(self) -> tuple[int, _Subscriber] | None:
        """Under the lock: wait until a subscriber is due; None (and the thread forgotten)
        when none is left."""
        while True:
            if not self._subscribers:
                self._thread = None
                return None
            key, sub = min(self._subscribers.items(), key=lambda kv: kv[1].due)
            delay = sub.due - time.monotonic()
            if delay <= 0:
                return key, sub
            self._wake.wait(delay)

    def _run(self) -> None:
        while True:
            with self._lock:
                picked = self._next()
            if picked is None:
                return
            key, sub = picked
            try:
                ok = bool(sub.refresh())
            except Exception:  # noqa: BLE001 - one panel's bug must not stop the others' refresh
                log.exception("pai_magic panel: refresh failed")
                ok = False
            with self._lock:
                self.cycles += 1
                if key in self._subscribers:
                    sub.wait = sub.interval if ok else min(max(sub.wait, sub.interval) * 2, MAX_INTERVAL)
                    sub.due = time.monotonic() + sub.wait


_POLLER = Poller()


def shared_poller() -> Poller:
    """The kernel's one poller."""
    return _POLLER
