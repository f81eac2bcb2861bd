"""The kernel starts of this Jupyter server process, phase by phase, for the frontend.

Why: a cluster can take minutes to schedule a kernel job and pull its image, and JupyterLab
shows only "Starting" meanwhile. The provisioner (which runs inside the Jupyter server) records
here what each start is doing; the server extension's ``GET /pai-magic/api/kernel-starts``
long-polls this registry and the labextension turns it into one notification per start.

One registry per process (:data:`STARTS`). It is thread-safe (phases arrive from the
provisioner's worker threads), bounded (finished starts are forgotten after a few minutes, at
most :data:`MAX_STARTS` are kept, each with at most :data:`MAX_PHASES` lines) and holds no
secret: names, paths, job names, and the one-line texts the kernel job already logs.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from pai_magic.core.errors import one_line

#: The machine keys of the phases, in the order a start goes through them ("restarting" starts
#: a kernel again in the same job; "stopped" ends a job during a start that failed; "ended" is
#: a running kernel whose job ended outside Jupyter).
PHASE_KEYS = ("submitted", "waiting", "running", "connecting", "restarting", "ready", "failed", "stopped",
              "ended")
#: "ended": not a start but the end of a kernel that ran (its job was stopped from the portal or
#: the CLI, or failed): without it the notebook only says "No Kernel", and the reason stays in
#: the server log.
STATES = ("starting", "ready", "failed", "ended")
#: Seconds a finished start stays visible (a frontend opened a little later still sees it).
KEEP_FINISHED = 300.0
#: Seconds after which a start that never finished is forgotten (the provisioner's own
#: timeout ends a start long before; this only bounds memory if something went wrong).
KEEP_UNFINISHED = 3 * 3600.0
MAX_STARTS = 50
MAX_PHASES = 40
TEXT_LIMIT = 300

Listener = Callable[[], None]


@dataclass
class Phase:
    key: str
    text: str
    at: float  # epoch seconds

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "text": self.text, "at": int(self.at * 1000)}


@dataclass
class KernelStart:
    """One start (or restart) of one kernel."""

    id: str                     # "<kernel_id>/<n>": one per start, so a restart is a new one
    kernel_id: str
    kernel_name: str
    display_name: str
    path: str | None            # the notebook (or console) the kernel was started for
    restart: bool
    started: float              # epoch seconds
    job: str | None = None
    state: str = "starting"
    error: str | None = None
    finished: float | None = None
    phases: list[Phase] = field(default_factory=list)
    _touched: float = 0.0       # monotonic seconds of the last change (for the bounds)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kernelId": self.kernel_id, "kernelName": self.kernel_name,
                "displayName": self.display_name, "path": self.path, "job": self.job,
                "restart": self.restart, "state": self.state, "error": self.error,
                "started": int(self.started * 1000),
                "finished": None if self.finished is None else int(self.finished * 1000),
                "phases": [p.to_json() for p in self.phases]}


class StartRegistry:
    """Kernel starts by kernel id (the latest start of each), with a version that changes on
    every change, so a long poll answers as soon as there is something new."""

    def __init__(self, *, keep_finished: float = KEEP_FINISHED, keep_unfinished: float = KEEP_UNFINISHED,
                 max_starts: int = MAX_STARTS, max_phases: int = MAX_PHASES,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.keep_finished = keep_finished
        self.keep_unfinished = keep_unfinished
        self.max_starts = max_starts
        self.max_phases = max_phases
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._starts: dict[str, KernelStart] = {}   # kernel_id -> latest start, oldest first
        self._sequence = 0                          # numbers the starts: ids are never reused
        self._listeners: list[Listener] = []
        # Milliseconds at creation: a server restarted later never reuses a version the
        # frontend still holds, so its first long poll answers at once.
        self._version = int(clock() * 1000)

    # -- reading -----------------------------------------------------------------------------
    @property
    def version(self) -> int:
        with self._lock:
            return self._version

    def snapshot(self) -> dict[str, Any]:
        """``{"version", "now", "starts": [...]}``: the answer of the HTTP endpoint."""
        with self._lock:
            self._prune()
            return {"version": self._version, "now": int(self._clock() * 1000),
                    "starts": [s.to_json() for s in self._starts.values()]}

    def get(self, kernel_id: str) -> dict[str, Any] | None:
        with self._lock:
            start = self._starts.get(kernel_id)
            return None if start is None else start.to_json()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener()`` (from whatever thread made the change) after each change;
        returns the function that unsubscribes it. A listener must be quick and not raise."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)
        return unsubscribe

    # -- writing -----------------------------------------------------------------------------
    def begin(self, kernel_id: str, *, kernel_name: str = "", display_name: str = "",
              path: str | None = None, restart: bool = False, job: str | None = None) -> str:
        """A start of ``kernel_id`` begins (a restart replaces the kernel's previous start)."""
        with self._lock:
            self._sequence += 1
            self._starts.pop(kernel_id, None)  # re-inserted last: the dict stays oldest first
            start = KernelStart(id=f"{kernel_id}/{self._sequence}", kernel_id=kernel_id,
                                kernel_name=one_line(kernel_name, 200), display_name=one_line(display_name, 200),
                                path=one_line(path, 1000) if path else None, restart=restart,
                                started=self._clock(), job=job, _touched=self._monotonic())
            self._starts[kernel_id] = start
            self._changed()
            start_id = start.id
        self._notify()
        return start_id

    def phase(self, kernel_id: str, key: str, text: str, *, job: str | None = None) -> None:
        """One more phase of the kernel's current start; ignored once that start finished
        (a later "SSH link re-established" or "stopped job" is not part of a start)."""
        if key not in PHASE_KEYS:
            raise ValueError(f"unknown phase key {key!r}: one of {', '.join(PHASE_KEYS)}")
        with self._lock:
            start = self._starts.get(kernel_id)
            if start is None or start.state != "starting":
                return
            if job:
                start.job = job
            if len(start.phases) >= self.max_phases:
                del start.phases[1]  # keep the first (when it began) and the latest ones
            start.phases.append(Phase(key, one_line(text, TEXT_LIMIT), self._clock()))
            self._changed(start)
        self._notify()

    def ready(self, kernel_id: str, text: str = "kernel ready") -> None:
        self._finish(kernel_id, "ready", text, None)

    def failed(self, kernel_id: str, error: str) -> None:
        line = one_line(error, TEXT_LIMIT)
        self._finish(kernel_id, "failed", line, line)

    def ended(self, kernel_id: str, reason: str, *, kernel_name: str = "", display_name: str = "",
              path: str | None = None, job: str | None = None) -> None:
        """A kernel that was running died because its job ended (the one-line ``reason``).

        A new entry (its own id: the frontend shows each entry once), not an update of the
        kernel's start, which was forgotten minutes after it finished; the caller names the
        kernel and its notebook again for that reason.
        """
        line = one_line(reason, TEXT_LIMIT)
        with self._lock:
            previous = self._starts.pop(kernel_id, None)
            self._sequence += 1
            now = self._clock()
            entry = KernelStart(id=f"{kernel_id}/{self._sequence}", kernel_id=kernel_id,
                                kernel_name=one_line(kernel_name or (previous.kernel_name if previous else ""), 200),
                                display_name=one_line(display_name or (previous.display_name if previous else ""),
                                                      200),
                                path=one_line(path, 1000) if path else (previous.path if previous else None),
                                restart=False, started=now, job=job or (previous.job if previous else None),
                                state="ended", error=line, finished=now,
                                phases=[Phase("ended", line, now)], _touched=self._monotonic())
            self._starts[kernel_id] = entry
            self._changed(entry)
        self._notify()

    def _finish(self, kernel_id: str, state: str, text: str, error: str | None) -> None:
        with self._lock:
            start = self._starts.get(kernel_id)
            if start is None or start.state != "starting":
                return
            if not start.phases or start.phases[-1].key != state:
                if len(start.phases) >= self.max_phases:
                    del start.phases[1]
                start.phases.append(Phase(state, one_line(text, TEXT_LIMIT), self._clock()))
            start.state = state
            start.error = error
            start.finished = self._clock()
            self._changed(start)
        self._notify()

    # -- internals (under the lock) ---------------------------------------------------------------
    def _changed(self, start: KernelStart | None = None) -> None:
        if start is not None:
            start._touched = self._monotonic()
        self._version += 1
        self._prune()

    def _prune(self) -> None:
        now = self._monotonic()
        for kid, start in list(self._starts.items()):
            age = now - start._touched
            if age > (self.keep_unfinished if start.state == "starting" else self.keep_finished):
                del self._starts[kid]
        excess = len(self._starts) - self.max_starts
        if excess > 0:  # the oldest finished ones first, then the oldest of all
            order = sorted(self._starts.values(), key=lambda s: (s.state == "starting", s._touched))
            for start in order[:excess]:
                del self._starts[start.kernel_id]

    def _notify(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener()
            except Exception:  # a listener of a closed event loop must not break a kernel start
                pass


#: The registry of this process (the Jupyter server's): the provisioner writes, the server
#: extension reads.
STARTS = StartRegistry()
