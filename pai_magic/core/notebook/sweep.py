"""A sweep: one notebook job per parameter point, each submitted exactly once, followed together.

All points are prepared (named, built) before anything is submitted, so a bad value fails
before any job exists. Each job is then submitted once through ``core.jobs.submit_job``
(which never re-posts blindly); a point whose submit fails is reported as such and is NOT
tried again. The submitted runs are followed in parallel threads (all at once: a task waits
only so long for its upload), each with its own SSH session, and each lands in its own
output folder.
"""
from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

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


def run_sweep(client: PaiClient, spec: NotebookRunSpec, points: list[dict[str, Any]], *,
              on_progress: ProgressFn | None = None, stop: threading.Event | None = None,
              parallel: int | None = None, poll: float = 0.25) -> list[NotebookResult]:
    """Submit every point once, follow them together; one result per point, in point order.

    Every submitted point is followed at once by default (``parallel``): a job whose notebook
    is not uploaded soon gives up (``UPLOAD_WAIT``), so none may queue behind the others here.
    The followers share one budget of job reads (``run.REST_RATE``).
    """
    runs = prepare_sweep(spec, points, ssh_key_path=client.profile.ssh_key)
    submitted = submit_sweep(client, runs)
    results: list[NotebookResult | None] = [None] * len(submitted)

    def follow(i: int, run: PreparedRun) -> None:
        try:
            results[i] = follow_run(client, run, on_progress=on_progress, stop=stop, poll=poll)
        except PaiError as exc:
            results[i] = record(NotebookResult(job=f"{client.user}~{run.name}", state="FAILED",
                                               out_dir=str(run.out_dir), input=run.spec.notebook,
                                               parameters=dict(run.spec.parameters), message=exc.message,
                                               warnings=list(run.warnings)))

    workers = max(1, parallel or len(submitted))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pai-nb-sweep") as pool:
        for i, (run, error) in enumerate(submitted):
            if error is not None:
                results[i] = NotebookResult(job=f"{client.user}~{run.name}", state="FAILED", out_dir=str(run.out_dir),
                                            input=run.spec.notebook, parameters=dict(run.spec.parameters),
                                            message=f"not submitted: {error.message}", warnings=list(run.warnings))
            else:
                pool.submit(follow, i, run)
    return [r for r in results if r is not None]
