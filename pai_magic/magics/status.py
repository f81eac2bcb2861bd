"""The live status line of a job, kept up to date without blocking the kernel.

``%%pai_job`` returns at once; a :class:`LiveStatus` (one output area of one cell) shows
the job's state, elapsed time and, at the end, exit code and diagnostics. All live statuses
of a kernel are fed by ONE :class:`StatusBoard`: a daemon thread that, every
``PaiMagics.poll_interval`` seconds (slower for jobs running for long), asks the core's job
watcher about every tracked job at once, then updates the displays. The watcher reads the
machine-wide shared job list (:mod:`pai_magic.core.polling`): all kernels, sidebars and CLI
watches of one user share one list request per interval, and a 429 pauses them all.

Front ends:
- rich (Jupyter): the status is a display with a ``display_id`` and each tick *replaces* it
  (``update_display``), so the cell shows one line that changes in place;
- text (terminal IPython, or ``%config PaiMagics.display = 'text'``): one printed line per
  change of state, never a line per tick.

Displays are published through the shell's own ``display_pub`` rather than the
``IPython.display`` functions (those go to the singleton shell, wrong when a process holds
several shells, as the tests do).

Other magics can add lines under a status (e.g. the SSH command once a task runs) with
:func:`register_status_extra`.
"""
from __future__ import annotations

import threading
import time
import uuid
from typing import Any, Callable

from pai_magic.core.diagnostics import readable_diagnostics
from pai_magic.magics.render import StatusSnapshot, job_duration

#: ``func(session, name, user, state) -> list[str] | None``, called when a tracked job changes
#: state; the lines returned are shown under its status line (SSH info, URLs ...).
StatusExtra = Callable[[Any, str, str, str], "list[str] | None"]
_EXTRAS: list[StatusExtra] = []
MISSING_TICKS = 5  # complete lists without the job before asking for it directly


def register_status_extra(func: StatusExtra) -> StatusExtra:
    """Add a provider of extra status lines (usable as a decorator); idempotent."""
    if func not in _EXTRAS:
        _EXTRAS.append(func)
    return func


def unregister_status_extra(func: StatusExtra) -> None:
    if func in _EXTRAS:
        _EXTRAS.remove(func)


def rich_frontend(shell: Any, mode: str = "auto") -> bool:
    """True when the front end renders HTML and replaces displays in place (a Jupyter kernel)."""
    if mode == "html":
        return True
    if mode == "text":
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


def publish(shell: Any, obj: Any, *, display_id: str | None = None, update: bool = False,
            text_only: bool = False) -> None:
    """Show ``obj`` in ``shell``'s output, optionally as (an update of) a named display."""
    if shell is None:
        print(repr(obj), flush=True)
        return
    if text_only:
        data, md = {"text/plain": repr(obj)}, {}
    else:
        data, md = shell.display_formatter.format(obj)
    kwargs: dict[str, Any] = {"metadata": md}
    if display_id is not None:
        kwargs["transient"] = {"display_id": display_id}
        kwargs["update"] = update
    shell.display_pub.publish(data, **kwargs)


class LiveStatus:
    """One job's status shown in one place; updated by the board or by a blocking wait."""

    def __init__(self, shell: Any, name: str, user: str, *, rich: bool,
                 snapshot: StatusSnapshot | None = None) -> None:
        self.shell = shell
        self.name = name
        self.user = user
        self.rich = rich
        self.display_id = f"pai-magic-{uuid.uuid4().hex}"
        self.snapshot = snapshot or StatusSnapshot(name=name)
        self._printed_state: str | None = None
        self._lock = threading.Lock()
        self.closed = False

    def show(self) -> None:
        """First appearance, in the output of the cell that is running now."""
        with self._lock:
            if self.rich:
                publish(self.shell, self.snapshot.view(), display_id=self.display_id)
            else:
                self._print_if_changed(force=True)

    def update(self, snapshot: StatusSnapshot) -> None:
        with self._lock:
            if self.closed:
                return
            self.snapshot = snapshot
            if self.rich:
                publish(self.shell, snapshot.view(), display_id=self.display_id, update=True)
            else:
                self._print_if_changed()
            if snapshot.terminal:
                self.closed = True

    def _print_if_changed(self, force: bool = False) -> None:
        # the lines themselves, not their count: "SSH: waiting ..." -> "SSH taskrole/0: ssh ..."
        # or a helper's error -> its answer keep the count and must still be printed
        key = "|".join([self.snapshot.state or "", self.snapshot.note or "", *self.snapshot.extra])
        if force or key != self._printed_state:
            self._printed_state = key
            publish(self.shell, self.snapshot.view(), text_only=True)


class _Tracked:
    def __init__(self, name: str, user: str) -> None:
        self.name = name
        self.user = user
        self.lives: list[LiveStatus] = []
        self.snapshot = StatusSnapshot(name=name)
        self.done = threading.Event()
        self.detail: Any = None  # the final JobDetail once terminal
        self.last_state: str | None = None
        self.extras_failed = False  # a helper failed (e.g. 401): ask again next tick, not next state


class StatusBoard:
    """Every job this kernel shows a live status for, polled by one daemon thread."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self._jobs: dict[tuple[str, str], _Tracked] = {}
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watcher: Any = None
        self.ticks = 0  # how many polling rounds ran (tests read it)

    # -- public ---------------------------------------------------------------------------
    def track(self, name: str, user: str, live: LiveStatus | None = None,
              snapshot: StatusSnapshot | None = None) -> _Tracked:
        """Follow ``user~name``; ``live`` (if any) is updated on every tick until the job ends."""
        key = (user, name)
        with self._lock:
            tracked = self._jobs.get(key)
            if tracked is None or tracked.done.is_set() and live is not None and not tracked.lives:
                tracked = self._jobs[key] = _Tracked(name, user)
            if snapshot is not None:
                tracked.snapshot = snapshot
            if live is not None:
                if not live.rich:
                    # a terminal has one output stream: an older text status of the same job
                    # would print every change a second time under the newer one
                    for old in [o for o in tracked.lives if not o.rich and o.shell is live.shell]:
                        old.closed = True
                        tracked.lives.remove(old)
                tracked.lives.append(live)
            watcher = self._watcher
        if watcher is not None:
            self._watch(watcher, name, user)
        self._ensure_thread()
        self._wake.set()
        return tracked

    def wait(self, name: str, user: str, timeout: float | None = None) -> _Tracked:
        """Block until the job ends (or ``timeout``); Ctrl-C raises ``KeyboardInterrupt`` here
        in the caller's thread while the board keeps watching."""
        tracked = self.track(name, user)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not tracked.done.is_set():
            remaining = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
            if remaining <= 0:
                break
            tracked.done.wait(remaining)
        return tracked

    def detach(self, name: str, user: str, note: str) -> None:
        """Say on the live displays that the cell stopped waiting (the job keeps running)."""
        with self._lock:
            tracked = self._jobs.get((user, name))
        if tracked is None:
            return
        for live in list(tracked.lives):
            snap = _copy(tracked.snapshot, note=note)
            live.update(snap)

    def client_changed(self) -> None:
        with self._lock:
            self._watcher = None
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        self._thread = None

    def tracked_names(self) -> list[str]:
        with self._lock:
            return [t.name for t in self._jobs.values() if not t.done.is_set()]

    # -- the thread -----------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="pai-magic-status", daemon=True)
            self._thread.start()

    def _interval(self) -> float:
        try:
            value = float(getattr(self.session.options(), "poll_interval", 2.0))
        except Exception:  # noqa: BLE001 - a bad config value must not kill the watcher
            value = 2.0
        return min(max(value, 0.05), 600.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                active = [t for t in self._jobs.values() if not t.done.is_set()]
                if not active:
                    self._thread = None
                    return
            try:
                self._tick(active)
            except Exception as exc:  # noqa: BLE001 - the thread must survive any failure
                self._note_all(active, _short_error(exc))
            self.ticks += 1
            self._wake.wait(self._next_wait())
            self._wake.clear()

    def _next_wait(self) -> float:
        """The configured interval while a job is young; slower for jobs running for long."""
        base = self._interval()
        watcher = self._watcher
        try:
            return float(watcher.next_interval(base)) if watcher is not None else base
        except Exception:  # noqa: BLE001 - never let the pacing stop the watch
            return base

    def _ensure_watcher(self) -> Any:
        with self._lock:
            watcher = self._watcher
        if watcher is not None:
            return watcher
        from pai_magic.core.jobs import JobWatcher

        client = self.session.client()
        # shared: every kernel, sidebar and CLI watch of this user on this machine reads ONE list
        watcher = JobWatcher(client, shared=True, max_age=self._interval())
        with self._lock:
            self._watcher = watcher
            keys = list(self._jobs)
        for user, name in keys:
            self._watch(watcher, name, user)
        return watcher

    @staticmethod
    def _watch(watcher: Any, name: str, user: str) -> None:
        watcher.add(name, user=user)

    def _tick(self, active: list[_Tracked]) -> None:
        from pai_magic.core.errors import PaiError

        try:
            watcher = self._ensure_watcher()
            watcher.max_age = self._interval()  # %config PaiMagics.poll_interval applies at once
            watcher.tick()  # ONE list request for all watched jobs
        except PaiError as err:
            self._note_all(active, _short_error(err))
            return
        now = time.time()
        for tracked in active:
            full = f"{tracked.user}~{tracked.name}"
            summary = watcher.states.get(full)
            if summary is None:
                if watcher.missing.get(full, 0) >= MISSING_TICKS:
                    self._gone(tracked, watcher)
                continue
            state = str(getattr(summary, "state", "UNKNOWN"))
            snap = StatusSnapshot(
                name=tracked.name, state=state,
                elapsed=job_duration(getattr(summary, "submission_time", None),
                                     getattr(summary, "completed_time", None), now),
                exit_code=getattr(summary, "exit_code", None),
                note=getattr(watcher, "note", None),
                extra=list(tracked.snapshot.extra))
            if state != tracked.last_state or tracked.extras_failed:
                retried = tracked.extras_failed
                fresh, tracked.extras_failed = self._extras(tracked.name, tracked.user, state)
                # an ended job's lines (SSH commands to a container that is gone) must not
                # linger, nor the note of a helper failure that has cleared since
                snap.extra = fresh if (fresh or snap.terminal or retried) else snap.extra
            if snap.terminal:
                snap.diagnostics = self._final_diagnostics(tracked)
                if tracked.detail is not None and tracked.detail.exit_code is not None:
                    snap.exit_code = tracked.detail.exit_code
            tracked.last_state = state
            self._publish(tracked, snap)
            if snap.terminal:
                watcher.remove(tracked.name, user=tracked.user)

    def _gone(self, tracked: _Tracked, watcher: Any) -> None:
        """A job absent from complete lists: ask once directly, then say so and stop."""
        from pai_magic.core.errors import NotFoundError, PaiError

        try:
            detail = self.session.client().get_job(tracked.name, user=tracked.user)
        except NotFoundError:
            watcher.remove(tracked.name, user=tracked.user)
            snap = _copy(tracked.snapshot, state="UNKNOWN", note="the cluster no longer lists this job")
            tracked.snapshot = snap
            for live in list(tracked.lives):
                live.update(snap)
                live.closed = True
            tracked.done.set()
            return
        except PaiError:
            return
        watcher.missing.pop(f"{tracked.user}~{tracked.name}", None)
        tracked.detail = detail if detail.terminal else None

    def _final_diagnostics(self, tracked: _Tracked) -> str | None:
        """The list answer has no diagnostics: one detail request per job, once, at its end."""
        from pai_magic.core.errors import PaiError

        try:
            tracked.detail = self.session.client().get_job(tracked.name, user=tracked.user)
        except PaiError:
            return None
        return readable_diagnostics(tracked.detail.diagnostics)

    def _extras(self, name: str, user: str, state: str) -> tuple[list[str], bool]:
        """(lines, whether a helper failed). A failure is a note that says the watch goes on
        (it did not pause) and is retried on the next tick, so it goes away once it clears."""
        lines: list[str] = []
        failed = False
        for func in list(_EXTRAS):
            try:
                lines.extend(func(self.session, name, user, state) or [])
            except Exception as exc:  # noqa: BLE001 - a helper's failure is a note, not a crash
                failed = True
                lines.append(f"({_short_error(exc, prefix='extra lines not shown, retrying')})")
        return lines, failed

    def _publish(self, tracked: _Tracked, snap: StatusSnapshot) -> None:
        tracked.snapshot = snap
        for live in list(tracked.lives):
            live.update(snap)
        if snap.terminal:
            tracked.done.set()

    def _note_all(self, active: list[_Tracked], note: str) -> None:
        for tracked in active:
            snap = _copy(tracked.snapshot, note=note)
            tracked.snapshot = snap
            for live in list(tracked.lives):
                live.update(snap)


def _copy(snap: StatusSnapshot, **changes: Any) -> StatusSnapshot:
    data: dict[str, Any] = dict(name=snap.name, state=snap.state, elapsed=snap.elapsed, exit_code=snap.exit_code,
                                diagnostics=snap.diagnostics, note=snap.note, extra=list(snap.extra))
    data.update(changes)
    return StatusSnapshot(**data)


def _short_error(exc: BaseException, prefix: str = "watch paused") -> str:
    """A note for the status line: the same sentence a magic would raise, kept short."""
    from pai_magic.core.errors import PaiError
    from pai_magic.magics.args import one_line
    from pai_magic.magics.messages import friendly_message

    text = friendly_message(exc) if isinstance(exc, PaiError) else one_line(str(exc))
    return f"{prefix}: {(text or type(exc).__name__)[:200]}"
