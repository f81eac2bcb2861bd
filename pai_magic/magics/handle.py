"""A job handle: the Python object a notebook keeps for one OpenPAI job.

It holds only the job's name and user (and which profile), never state, so it survives a
kernel restart: ``pai_magic.job("NAME")`` or ``%pai_job NAME -o job`` gives an equivalent
handle whose methods ask the cluster again. Displaying it (ending a cell with ``job``) shows
a live status line, the same one ``%%pai_job`` shows.

Methods raise the core's ``PaiError``s (one-line messages) because this is Python API; the
magics turn them into ``UsageError``.
"""
from __future__ import annotations

import time
from typing import Any

from pai_magic.magics.render import StatusSnapshot, View, job_detail_view, job_duration


class JobHandle:
    """``name``, ``user``; ``state()``, ``detail()``, ``wait()``, ``stop()``, ``logs()``."""

    def __init__(self, name: str, user: str, *, session: Any = None) -> None:
        self.name = name
        self.user = user
        self._session = session
        self._shown_in: int | None = None  # execution count of a cell that already shows it

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def session(self) -> Any:
        if self._session is None:
            from pai_magic.magics.session import get_session

            self._session = get_session()
        return self._session

    def _client(self) -> Any:
        return self.session.client()

    @property
    def full_name(self) -> str:
        return f"{self.user}~{self.name}"

    # -- API --------------------------------------------------------------------------------
    def detail(self) -> Any:
        """The job's ``models.JobDetail`` now (state, exit code, every task)."""
        return self._client().get_job(self.name, user=self.user)

    def state(self) -> str:
        return self.detail().state

    def wait(self, timeout: float | None = None, *, show: bool = True) -> Any:
        """Block until the job ends (or ``timeout`` seconds), showing the live status line;
        Ctrl-C stops waiting (the job keeps running). Returns the final ``JobDetail``."""
        from pai_magic.core.errors import PaiTimeoutError

        session = self.session
        board = session.board()
        if show:
            self.display_status()
        else:
            board.track(self.name, self.user)
        try:
            tracked = board.wait(self.name, self.user, timeout=timeout)
        except KeyboardInterrupt:
            board.detach(self.name, self.user, "detached: the job keeps running")
            raise
        if not tracked.done.is_set():
            raise PaiTimeoutError(
                f"Job {self.name} did not end within {timeout:g} s; it keeps running: wait again or %pai_stop {self.name}.")
        return tracked.detail if tracked.detail is not None else self.detail()

    def stop(self) -> None:
        """Ask the cluster to stop the job (it goes through STOPPING to STOPPED)."""
        self._client().stop(self.name, user=self.user)

    def logs(self, task: str | None = None, *, stderr: bool = False, tail: int | None = None) -> str:
        """The task's log text (``task`` as ``ROLE/INDEX``; default the first task)."""
        from IPython.core.error import UsageError

        from pai_magic.core.errors import InvalidInputError
        from pai_magic.magics.args import parse_task

        try:
            role, index = parse_task(task)
        except UsageError as exc:
            raise InvalidInputError(str(exc)) from None
        chunk = self._client().task_log_text(self.name, role, index, stream="stderr" if stderr else "stdout",
                                             user=self.user)
        text = chunk.text
        if tail is not None:
            text = "\n".join(text.splitlines()[-tail:])
        return text

    def config(self) -> dict:
        """The job's protocol as the cluster stored it (secrets come back masked)."""
        return self._client().job_config(self.name, user=self.user)

    # -- display ----------------------------------------------------------------------------
    def display_status(self) -> Any:
        """Show a live status line here and keep it updated; returns its ``LiveStatus``."""
        from pai_magic.magics.status import LiveStatus, rich_frontend

        session = self.session
        shell = session.shell
        mode = getattr(session.options(), "display", "auto")
        snap = StatusSnapshot(name=self.name, state="SUBMITTED")
        board = session.board()
        with_existing = board._jobs.get((self.user, self.name))  # noqa: SLF001 - same package
        if with_existing is not None:
            snap = with_existing.snapshot
        live = LiveStatus(shell, self.name, self.user, rich=rich_frontend(shell, mode), snapshot=snap)
        live.show()
        tracked = board.track(self.name, self.user, live)
        if tracked.done.is_set():  # already over: show the final line at once
            live.update(tracked.snapshot)
        self._shown_in = session.cell_serial
        return live

    def _ipython_display_(self) -> None:
        """Ending a cell with a handle shows its live status (once per cell)."""
        if self._shown_in is not None and self._shown_in == self.session.cell_serial:
            return
        try:
            self.display_status()
        except Exception as exc:  # noqa: BLE001 - a display must never raise into the cell
            print(f"JobHandle({self.name!r}): {exc}")

    def summary_view(self) -> View:
        """A static view (for reprs): name and user, no network call."""
        return View(f"JobHandle({self.name!r}, user={self.user!r})",
                    f"<code>JobHandle({self.name!r}, user={self.user!r})</code>")

    def _repr_html_(self) -> str:
        return self.summary_view().html

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.summary_view().text)

    def __repr__(self) -> str:
        return f"JobHandle({self.name!r}, user={self.user!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobHandle) and (self.name, self.user) == (other.name, other.user)

    def __hash__(self) -> int:
        return hash((self.name, self.user))

    def show(self) -> View:
        """The detailed view of the job now (what ``%pai_job NAME`` prints)."""
        detail = self.detail()
        return job_detail_view(detail, now=time.time())


def attach(name: str, user: str | None = None, *, shell: Any = None) -> JobHandle:
    """Re-attach to an existing job by name (after a kernel restart): checks it exists."""
    from pai_magic.magics.session import get_session

    session = get_session(shell)
    client = session.client()
    detail = client.get_job(name, user=user)
    return JobHandle(detail.name or name, detail.user or user or session.profile().user, session=session)


__all__ = ["JobHandle", "attach", "job_duration"]
