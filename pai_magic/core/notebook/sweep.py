"""A sweep: one notebook job per parameter point, each submitted exactly once, followed together.

All points are prepared (named, built) before anything is submitted, so a bad value fails
before any job exists. Each job is then submitted once through ``core.jobs.submit_job``
(which never re-posts blindly); a point whose submit fails is reported as such and is NOT
tried again. The submitted runs are followed in parallel threads (all at once: a task waits
only so long for its upload), each with its own SSH session, and each lands in its own
output folder. :func:`follow_runs` is that following, for any set of submitted runs, and the
one place where Ctrl-C means "stop them": every face that blocks on runs gets the same rule.
"""
from __future__ import annotations

import dataclasses
import threading
from typing import Any, Callable

from pai_magic.core.client import PaiClient
from pai_magic.core.errors import AuthError, ForbiddenError, PaiError, UnreachableError
from pai_magic.core.notebook.results import NotebookResult, record
from pai_magic.core.notebook.run import NotebookRunSpec, PreparedRun, ProgressFn, follow_run, prepare_run, submit_run
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


def follow_runs(client: PaiClient, runs: list[PreparedRun], *, on_progress: ProgressFn | None = None,
                stop: threading.Event | None = None, poll: float = 0.25, detach_when_running: bool = False,
                on_interrupt: Callable[[str], Any] | None = None) -> list[NotebookResult]:
    """Follow submitted runs together (one daemon thread each); one result per run, in order.

    Ctrl-C in the calling thread sets ``stop``: each run's kernel is interrupted, what ran is
    fetched and its job stopped (STOPPED), then the results are returned. Why not let the
    interrupt through: the followers would go on (a pool joins its threads at exit, so the
    command hung) and the jobs would run on unwatched, holding their GPUs. A second Ctrl-C
    while they stop leaves at once (the threads are daemons). ``on_interrupt`` gets the line
    to show when that happens.
    """
    stop = stop if stop is not None else threading.Event()
    results: list[NotebookResult | None] = [None] * len(runs)
    ended = [threading.Event() for _ in runs]

    def follow(i: int, run: PreparedRun) -> None:
        try:
            results[i] = follow_run(client, run, on_progress=on_progress, stop=stop, poll=poll,
                                    detach_when_running=detach_when_running)
        except Exception as exc:  # noqa: BLE001 - a follower must say why, never vanish
            message = exc.message if isinstance(exc, PaiError) else f"{type(exc).__name__}: {exc}"
            results[i] = record(NotebookResult(job=f"{client.user}~{run.name}", state="FAILED",
                                               out_dir=str(run.out_dir), input=run.spec.notebook,
                                               parameters=dict(run.spec.parameters), message=message,
                                               warnings=list(run.warnings)))
        finally:
            ended[i].set()

    threads = [threading.Thread(target=follow, args=(i, run), name=f"pai-nb-{run.name}", daemon=True)
               for i, run in enumerate(runs)]
    for thread in threads:
        thread.start()
    # Events, not Thread.join: a join cut by Ctrl-C made its thread look ended (seen on CPython
    # 3.11), and this wait must go on after the first Ctrl-C until the runs stopped
    try:
        for event in ended:
            while not event.wait(0.5):
                pass
    except KeyboardInterrupt:
        stop.set()
        if on_interrupt is not None:
            on_interrupt(INTERRUPT_LINE)
        for event in ended:
            while not event.wait(0.5):
                pass
    return [r for r in results if r is not None]


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
