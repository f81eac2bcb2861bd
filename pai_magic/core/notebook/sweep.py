"""A sweep: one notebook job per parameter point, each submitted exactly once, followed together.

All points are prepared (named, built) before anything is submitted, so a bad value fails
before any job exists. Each job is then submitted once through ``core.jobs.submit_job``
(which never re-posts blindly); a point whose submit fails is reported as such and is NOT
tried again. The submitted runs are followed in parallel threads (all at once: a task waits
only so long for its upload), each with its own SSH session, and each lands in its own
output folder. :class:`RunFollowers` is that following, for any set of submitted runs (a face
that returns at once keeps it); :func:`follow_runs` waits on it and is the one place where
Ctrl-C means "stop them": every face that blocks on runs gets the same rule.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, Callable

from pai_magic.core.client import PaiClient
from pai_magic.core.errors import AuthError, ForbiddenError, PaiError, UnreachableError, one_line
from pai_magic.core.notebook.results import NotebookResult, record
from pai_magic.core.notebook.run import (NotebookRunSpec, PreparedRun, ProgressFn, RunProgress, follow_run,
                                         prepare_run, submit_run)
from pai_magic.core.ssh.keys import ensure_key


def prepare_sweep(spec: NotebookRunSpec, points: list[dict[str, Any]], *,
                  ssh_key_path: str | None = None) -> list[PreparedRun]:
    """One prepared run per point (``spec.parameters`` are the defaults each point overrides)."""
    key = ensure_key(ssh_key_path)
    runs = []
    for point in points:
        params = {**spec.parameters, **point}
        runs.append(prepare_run(dataclasses.replace(spec, parameters=params), key=key))
    return runs


def submit_sweep(client: PaiClient, runs: list[PreparedRun]) -> list[tuple[PreparedRun, PaiError | None]]:
    """Submit each run once; a failed submit is kept with its error, never retried here.

    After a refused token or an unreachable cluster the other points are not even tried (each
    would fail the same way, one more connection and one more error line per point); they carry
    that same error."""
    out: list[tuple[PreparedRun, PaiError | None]] = []
    fatal: PaiError | None = None
    for run in runs:
        if fatal is not None:
            out.append((run, fatal))
            continue
        try:
            submit_run(client, run)
            out.append((run, None))
        except PaiError as exc:
            out.append((run, exc))
            if isinstance(exc, (AuthError, ForbiddenError, UnreachableError)):
                fatal = exc
    return out


INTERRUPT_LINE = "Stopping the run(s): the cells that ran come back, then the job(s) stop"


class RunFollowers:
    """Submitted runs, each followed by a daemon thread, without blocking the caller.

    What a face that must return at once holds (a magic's cell ends while its runs go on), and
    what :func:`follow_runs` waits on. A follower that fails records a FAILED result and says
    so through ``on_progress`` like any end, so every face shows it the same way.
    """

    def __init__(self, client: PaiClient, runs: list[PreparedRun], *, on_progress: ProgressFn | None = None,
                 stop: threading.Event | None = None, poll: float = 0.25, detach_when_running: bool = False) -> None:
        self.client = client
        self.runs = list(runs)
        self.on_progress = on_progress
        self.stop_event = stop if stop is not None else threading.Event()
        self.poll = poll
        self.detach_when_running = detach_when_running
        self.results: dict[str, NotebookResult] = {}  # by user~job, as each run ends
        # Events, not Thread.join: a join cut by Ctrl-C made its thread look ended (seen on CPython 3.11)
        self._ended = [threading.Event() for _ in self.runs]

    def job(self, run: PreparedRun) -> str:
        return f"{self.client.user}~{run.name}"

    def start(self) -> "RunFollowers":
        for run, ended in zip(self.runs, self._ended):
            threading.Thread(target=self._follow, args=(run, ended), name=f"pai-nb-{run.name}", daemon=True).start()
        return self

    def _follow(self, run: PreparedRun, ended: threading.Event) -> None:
        try:
            self.results[self.job(run)] = follow_run(self.client, run, on_progress=self.on_progress,
                                                     stop=self.stop_event, poll=self.poll,
                                                     detach_when_running=self.detach_when_running)
        except Exception as exc:  # noqa: BLE001 - a follower must say why, never vanish
            message = one_line(exc.message if isinstance(exc, PaiError) else f"{type(exc).__name__}: {exc}")
            self.results[self.job(run)] = record(NotebookResult(
                job=self.job(run), state="FAILED", out_dir=str(run.out_dir), input=run.spec.notebook,
                parameters=dict(run.spec.parameters), message=message, warnings=list(run.warnings)))
            if self.on_progress is not None:
                self.on_progress(RunProgress(job=self.job(run), state="FAILED", message=message))
        finally:
            ended.set()

    def stop(self) -> None:
        """Interrupt every run's kernel, fetch what ran, stop the jobs (they end STOPPED)."""
        self.stop_event.set()

    @property
    def done(self) -> bool:
        return all(ended.is_set() for ended in self._ended)

    def wait(self, timeout: float | None = None) -> bool:
        """Until every run ended (True) or ``timeout`` s passed (False); a Ctrl-C gets through."""
        end = None if timeout is None else time.monotonic() + timeout
        for ended in self._ended:
            while not ended.wait(0.5 if end is None else max(0.0, min(0.5, end - time.monotonic()))):
                if end is not None and time.monotonic() >= end:
                    return False
        return True

    def ordered(self) -> list[NotebookResult]:
        """The results of the runs that ended, in the runs' order."""
        return [self.results[self.job(run)] for run in self.runs if self.job(run) in self.results]


def follow_runs(client: PaiClient, runs: list[PreparedRun], *, on_progress: ProgressFn | None = None,
                stop: threading.Event | None = None, poll: float = 0.25, detach_when_running: bool = False,
                on_interrupt: Callable[[str], Any] | None = None) -> list[NotebookResult]:
    """Follow submitted runs together (:class:`RunFollowers`); one result per run, in order.

    Ctrl-C in the calling thread stops them: each run's kernel is interrupted, what ran is
    fetched and its job stopped (STOPPED), then the results are returned. Why not let the
    interrupt through: the followers would go on (a pool joins its threads at exit, so the
    command hung) and the jobs would run on unwatched, holding their GPUs. A second Ctrl-C
    while they stop leaves at once (the threads are daemons). ``on_interrupt`` gets the line
    to show when that happens.
    """
    followers = RunFollowers(client, runs, on_progress=on_progress, stop=stop, poll=poll,
                             detach_when_running=detach_when_running).start()
    try:
        followers.wait()
    except KeyboardInterrupt:
        followers.stop()
        if on_interrupt is not None:
            on_interrupt(INTERRUPT_LINE)
        followers.wait()
    return followers.ordered()


def run_sweep(client: PaiClient, spec: NotebookRunSpec, points: list[dict[str, Any]], *,
              on_progress: ProgressFn | None = None, stop: threading.Event | None = None,
              poll: float = 0.25) -> list[NotebookResult]:
    """Submit every point once, follow them together; one result per point, in point order.

    Every submitted point is followed at once: a job whose notebook is not uploaded soon gives
    up (``UPLOAD_WAIT``), so none may queue behind the others here. The followers share one
    budget of job reads (``run.REST_RATE``).
    """
    runs = prepare_sweep(spec, points, ssh_key_path=client.profile.ssh_key)
    submitted = submit_sweep(client, runs)
    followed = iter(follow_runs(client, [run for run, error in submitted if error is None],
                                on_progress=on_progress, stop=stop, poll=poll))
    return [next(followed) if error is None else
            NotebookResult(job=f"{client.user}~{run.name}", state="FAILED", out_dir=str(run.out_dir),
                           input=run.spec.notebook, parameters=dict(run.spec.parameters),
                           message=f"not submitted: {error.message}", warnings=list(run.warnings))
            for run, error in submitted]
