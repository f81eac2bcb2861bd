"""Job policies that span several REST calls: submit once, wait, watch many, stop, follow logs.

- :func:`submit_job` NEVER submits a job twice. A POST is not retried blindly: after a
  doubtful failure (read timeout, connection dropped mid-answer, 5xx: the server may have
  created the job, microsoft/pai#5769) it first GETs the job and treats "it exists" as
  success. Because OpenPAI never reuses a job name, re-posting the SAME name is safe: if
  the first post landed meanwhile, the second answers 409, which after a doubt means "done".
- :func:`wait_for` polls one job with a growing interval up to ``poll`` seconds and raises
  :class:`PaiTimeoutError` carrying the last state when the time runs out.
- :class:`JobWatcher` follows many jobs with ONE list request per tick (not one per job),
  which keeps a sidebar or a sweep of 100 jobs under the cluster's rate limit.
- :func:`follow_logs` yields new log text until the task ends.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Iterator

from pai_magic.core.deadline import Deadline, operation, say_seconds
from pai_magic.core.http import redact_url
from pai_magic.core.client import DEFAULT_ORDER, PaiClient, protocol_name, split_job_name
from pai_magic.core.errors import (
    ConflictError,
    NotFoundError,
    PaiError,
    PaiTimeoutError,
    RateLimitedError,
    ServerError,
    UnreachableError,
)
from pai_magic.core.models import JobDetail, JobSummary, is_terminal
from pai_magic.core.polling import (
    ALL_USERS,
    DEFAULT_LIMIT,
    DEFAULT_RETRY_AFTER,
    MIN_INTERVAL,
    SharedJobList,
    invalidate_quietly,
    sharing_enabled,
    watch_interval,
)

# A job already on the cluster whose submission is older than this (seconds, before our
# first POST) cannot be the one we just sent: it is a reused name.
CLOCK_SKEW = 300.0
SETTLE_DELAYS = (0.2, 0.5, 1.0, 2.0)
LOOKUP_RESERVE = 8.0  # seconds of a submit's deadline kept for looking the job up after a doubt
_TRANSIENT = (UnreachableError, ServerError, PaiTimeoutError, RateLimitedError)


def _doubtful(exc: PaiError) -> bool:
    """True when the request may have been applied although no success came back."""
    return bool(getattr(exc, "request_sent", False)) and isinstance(
        exc, (PaiTimeoutError, UnreachableError, ServerError))


def _ours(detail: JobDetail, started: float) -> bool:
    if detail.submission_time is None:
        return True
    return detail.submission_time / 1000.0 >= started - CLOCK_SKEW


def _landed(client: PaiClient, name: str, started: float, delays: Iterable[float],
            within: Deadline | None = None) -> bool | None:
    """Look for the job a few times: a server still busy with the first POST may lag.

    True: it exists (ours); False: the cluster said it does not; None: the cluster did not
    answer before ``within`` ran out, so nobody knows.
    """
    known = False
    for delay in (0.0, *delays):
        if within is not None and within.expired:
            break
        if delay:
            time.sleep(delay if within is None else min(delay, within.remaining()))
        try:
            detail = client.get_job(name)
        except NotFoundError:
            known = True
            continue
        except (UnreachableError, ServerError, PaiTimeoutError, RateLimitedError):
            continue
        if not _ours(detail, started):
            raise ConflictError(f"Job name {name!r} belongs to an older job: OpenPAI never reuses job names, "
                                "even of finished jobs: choose another name.")
        return True
    return False if known else None


def submit_job(client: PaiClient, protocol: dict[str, Any] | str, *, validate: bool = True,
               attempts: int = 3, settle: Iterable[float] = SETTLE_DELAYS) -> str:
    """Submit ``protocol`` exactly once and return the job name (see the module docstring).

    ``validate`` first checks the job as the rest-server would (one clear error instead of
    a round trip). ``attempts`` bounds the POSTs made after doubtful failures. Everything,
    the POSTs and the lookups that resolve a doubt, happens within ONE deadline (the
    client's request timeout): each POST leaves :data:`LOOKUP_RESERVE` of it for the lookup.
    """
    name = _submit_once(client, protocol, validate=validate, attempts=attempts, settle=settle)
    invalidate_quietly(client)  # every poller on this machine sees the new job at its next poll
    return name


def _submit_once(client: PaiClient, protocol: dict[str, Any] | str, *, validate: bool, attempts: int,
                 settle: Iterable[float]) -> str:
    job, name, text = protocol_name(protocol)
    if validate:
        from pai_magic.core.protocol import validate_protocol

        validate_protocol(job)
    settle = tuple(settle)
    started = time.time()
    doubt: PaiError | None = None
    landed: bool | None = False
    with operation(client.http.deadline_seconds()) as whole:
        reserve = min(LOOKUP_RESERVE, whole.seconds / 3)
        for _ in range(max(1, attempts)):
            budget = whole.remaining() - reserve
            if budget <= 0.05:
                break
            try:
                with operation(budget):
                    client.submit(text)
                return name
            except ConflictError:
                if doubt is None:
                    raise
                if _landed(client, name, started, settle, whole):
                    return name  # our own earlier, doubtful POST created it
                raise
            except PaiError as exc:
                if not _doubtful(exc):
                    if doubt is not None:
                        raise type(exc)(f"{exc.message.rstrip('.')} (an earlier attempt may have created job "
                                        f"{name}: check with `pai-magic job {name}` before submitting again).",
                                        code=exc.code, status=exc.status) from None
                    raise
                doubt = exc
            landed = _landed(client, name, started, settle, whole)
            if landed:
                return name
    assert doubt is not None
    if landed is None or isinstance(doubt, PaiTimeoutError):
        where = redact_url(client.http.url("jobs"))
        why = (f"No answer from {where} within {say_seconds(whole.promised)} s" if isinstance(doubt, PaiTimeoutError)
               else f"{doubt.message.rstrip('.')}, then no answer within {say_seconds(whole.promised)} s")
        err = PaiTimeoutError(f"{why} while submitting job {name}; whether it was created is unknown: check with "
                              f"`pai-magic job {name}` before submitting it again.", code=doubt.code)
        err.request_sent = True  # type: ignore[attr-defined]
        raise err
    raise type(doubt)(f"Submitting job {name} failed and it did not appear on the cluster "
                      f"({doubt.message.rstrip('.')}); check with `pai-magic jobs`, then submit again.",
                      code=doubt.code, status=doubt.status)


def wait_for(client: PaiClient, name: str, *, user: str | None = None, timeout: float | None = None,
             on_progress: Callable[[JobDetail], Any] | None = None, poll: float = 5.0,
             first_poll: float = 0.25, tolerate_errors: int = 3,
             until: Callable[[JobDetail], bool] | None = None, shared: bool = False) -> JobDetail:
    """Poll the job until it is SUCCEEDED, FAILED or STOPPED and return its final detail.

    ``shared=True`` (without ``until``) watches the state through the machine-wide shared
    job-list poll (:mod:`pai_magic.core.polling`) and reads the job's detail only when its
    state changes, so a CLI ``--wait`` costs the cluster nothing the kernels do not already
    pay; ``on_progress`` is then called on each change of state.

    ``until(detail)`` returning True ends the wait early (e.g. "the task runs", to SSH
    into it); a job that ends first is returned as it is, so the caller sees why.

    ``on_progress(detail)`` is called after every poll. The interval starts at
    ``first_poll`` and grows to ``poll``. A few consecutive transient errors (cluster
    restarting, 5xx) are tolerated. ``PaiTimeoutError`` (with ``.state`` and ``.job``) when
    ``timeout`` seconds pass first.
    """
    if shared and until is None and sharing_enabled():
        return _wait_shared(client, name, user=user, timeout=timeout, on_progress=on_progress, poll=poll,
                            first_poll=first_poll, tolerate_errors=tolerate_errors)
    deadline = None if timeout is None else time.monotonic() + timeout
    interval = max(0.01, min(first_poll, poll))
    failures = 0
    detail: JobDetail | None = None
    while True:
        backoff = 0.0
        try:
            detail = client.get_job(name, user)
            failures = 0
        except RateLimitedError as exc:
            backoff = _retry_after(exc)  # the cluster answers, it asks us to come back later
        except (UnreachableError, ServerError, PaiTimeoutError):
            failures += 1
            if failures > tolerate_errors:
                raise
        if detail is not None:
            if on_progress is not None:
                on_progress(detail)
            if detail.terminal or (until is not None and until(detail)):
                return detail
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            raise _still_running(name, user, client, timeout, detail, detail.state if detail else "UNKNOWN")
        pause = max(interval, backoff)
        time.sleep(pause if deadline is None else min(pause, max(0.0, deadline - now)))
        interval = min(poll, interval * 1.5)


def _retry_after(exc: PaiError) -> float:
    """Seconds a 429 asked to wait (a minute when it did not say)."""
    wait = getattr(exc, "retry_after", None)
    return float(wait) if wait is not None else DEFAULT_RETRY_AFTER


def _still_running(name: str, user: str | None, client: PaiClient, timeout: float | None,
                   detail: JobDetail | None, state: str) -> PaiTimeoutError:
    u, job = split_job_name(name, user or client.user)
    err = PaiTimeoutError(f"Job {u}~{job} is still {state} after {timeout:g} s: wait again, or stop it "
                          f"with `pai-magic stop {job}`.")
    err.state = state  # type: ignore[attr-defined]
    err.job = detail  # type: ignore[attr-defined]
    return err


def _wait_shared(client: PaiClient, name: str, *, user: str | None, timeout: float | None,
                 on_progress: Callable[[JobDetail], Any] | None, poll: float, first_poll: float,
                 tolerate_errors: int, missing_ticks: int = 5) -> JobDetail:
    """:func:`wait_for` through the shared list poll: one detail read per change of state."""
    deadline = None if timeout is None else time.monotonic() + timeout
    detail = client.get_job(name, user)  # the job exists (NotFoundError otherwise) and its first state
    if on_progress is not None:
        on_progress(detail)
    if detail.terminal:
        return detail
    watcher = JobWatcher(client, [name], user=user or client.user, shared=True, max_age=MIN_INTERVAL)
    full = watcher.names[0]
    state = detail.state
    interval = max(0.01, min(first_poll, poll))
    failures = 0
    backoff = 0.0
    while True:
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            raise _still_running(name, user, client, timeout, detail, state)
        pause = max(backoff, interval if interval < poll else watcher.next_interval(poll))
        time.sleep(pause if deadline is None else min(pause, max(0.0, deadline - now)))
        interval = min(poll, interval * 1.5)
        backoff = 0.0
        try:
            watcher.tick()
            failures = 0
        except RateLimitedError as exc:
            backoff = _retry_after(exc)
            continue
        except _TRANSIENT:
            failures += 1
            if failures > tolerate_errors:
                raise
            continue
        summary = watcher.states.get(full)
        if watcher.missing.get(full, 0) >= missing_ticks:
            detail = client.get_job(name, user)  # NotFoundError if it is really gone
            watcher.missing.pop(full, None)
        elif summary is None or summary.state == state:
            continue
        else:
            try:
                detail = client.get_job(name, user)
            except _TRANSIENT:
                failures += 1
                if failures > tolerate_errors:
                    raise
                continue
        if detail.state == state and not detail.terminal:
            continue
        state = detail.state
        if on_progress is not None:
            on_progress(detail)
        if detail.terminal:
            return detail


def stop_job(client: PaiClient, name: str, *, user: str | None = None, wait: bool = False,
             timeout: float | None = 60.0, poll: float = 2.0,
             stopper: Callable[[PaiClient, str, str | None], bool] | None = None) -> JobDetail | None:
    """Stop a job; with ``wait``, return its final detail (STOPPED, or what it ended as).

    A job that already ended is not sent a STOP (the cluster would answer 202 and the person
    would read "stop requested" about a finished job): its detail is returned instead, so the
    face can say it had ended. Without ``wait``, None means the STOP was sent. ``stopper``
    may stop the job its own way first (True: done; see :mod:`pai_magic.core.stopping`).
    """
    current = client.get_job(name, user)
    if current.terminal:
        return current
    if stopper is None or not stopper(client, name, user):
        client.stop(name, user)
    invalidate_quietly(client)
    if not wait:
        return None
    return wait_for(client, name, user=user, timeout=timeout, poll=poll)


class JobWatcher:
    """Follow many jobs' states with ONE ``GET /jobs`` per :meth:`tick`.

    The list is asked newest first, sized to reach the watched jobs: when some are missing
    and the cluster holds more, the next tick asks a larger page. It starts at the shared
    list's default page, which any sidebar or kernel refresh fetches: a larger first page
    would make every watch on an account with more jobs than that ask the cluster itself. All watched jobs of one
    user are filtered by ``username``; jobs of several users share one unfiltered request.

    With ``shared=True`` the list comes from the machine-wide shared poll
    (:mod:`pai_magic.core.polling`): every kernel, sidebar and CLI watch of the user reads
    one list at most ``max_age`` seconds old, and a 429 pauses them all until its
    ``Retry-After``. ``note`` then says why the states may be old.
    """

    def __init__(self, client: PaiClient, names: Iterable[str] = (), *, user: str | None = None,
                 page_limit: int = DEFAULT_LIMIT, max_limit: int = 50000, shared: bool = False,
                 max_age: float = MIN_INTERVAL) -> None:
        self.client = client
        self.default_user = user or client.user
        self._watched: dict[str, float] = {}  # full name -> when it was added (epoch seconds)
        self._limit = page_limit
        self._max_limit = max_limit
        self.shared = shared
        self.max_age = max_age
        self.states: dict[str, JobSummary] = {}
        self.missing: dict[str, int] = {}  # full name -> ticks not seen although the list was complete
        self.ticks = 0
        self.note: str | None = None
        for name in names:
            self.add(name)

    def add(self, name: str, user: str | None = None) -> str:
        u, job = split_job_name(name, user or self.default_user)
        full = f"{u}~{job}"
        if full not in self._watched:
            self._watched[full] = time.time()
        return full

    def remove(self, name: str, user: str | None = None) -> None:
        u, job = split_job_name(name, user or self.default_user)
        full = f"{u}~{job}"
        self._watched.pop(full, None)
        self.states.pop(full, None)
        self.missing.pop(full, None)

    @property
    def names(self) -> list[str]:
        return list(self._watched)

    @property
    def all_terminal(self) -> bool:
        return bool(self._watched) and all(
            n in self.states and self.states[n].terminal for n in self._watched)

    def next_interval(self, base: float) -> float:
        """Seconds to the next tick: ``base`` while a watched job is young, slower for old ones."""
        now = time.time()
        waits = []
        for full, added in self._watched.items():
            summary = self.states.get(full)
            if summary is not None and summary.terminal:
                continue
            started = (summary.submission_time / 1000.0) if summary and summary.submission_time else added
            waits.append(watch_interval(base, now - max(started, 0.0)))
        return min(waits) if waits else base

    def _list(self, username: str | None, limit: int) -> tuple[list[JobSummary], int | None, float, bool]:
        """(items, total, when the list was made, whether it is known complete and current)."""
        if self.shared:
            lst = SharedJobList(self.client, username or ALL_USERS).get(max_age=self.max_age, limit=limit)
            self.note = lst.note
            return lst.items, lst.total, lst.fetched_at, lst.complete and not lst.limited
        page = self.client.list_jobs(username=username, limit=limit, order=DEFAULT_ORDER)
        complete = page.total is None or page.total <= len(page.items)
        return list(page.items), page.total, time.time(), complete

    def tick(self) -> list[JobSummary]:
        """One list request; returns the summaries whose state changed (or appeared) since the last tick."""
        self.ticks += 1
        if not self._watched:
            return []
        users = {n.split("~", 1)[0] for n in self._watched}
        username = next(iter(users)) if len(users) == 1 else None
        limit = max(self._limit, 2 * len(self._watched))
        items, total, made_at, complete = self._list(username, limit)
        seen = {s.full_name: s for s in items}
        changed: list[JobSummary] = []
        for full in self._watched:
            summary = seen.get(full)
            if summary is None:
                continue
            self.missing.pop(full, None)
            old = self.states.get(full)
            if old is None or old.state != summary.state:
                changed.append(summary)
            self.states[full] = summary
        absent = [n for n in self._watched if n not in seen]
        if absent and not complete and (total is None or total > len(items)):
            self._limit = min(self._max_limit, limit * 4)
        elif absent and complete:
            for full in absent:
                if made_at >= self._watched[full]:  # a list older than the watch cannot know the job
                    self.missing[full] = self.missing.get(full, 0) + 1
        return changed

    def run(self, *, timeout: float | None = None, poll: float = 5.0, first_poll: float = 0.25,
            on_change: Callable[[JobSummary], Any] | None = None, missing_ticks: int = 5) -> dict[str, JobSummary]:
        """Tick until every watched job is terminal; returns ``{user~job: summary}``.

        A job absent from a complete list for ``missing_ticks`` ticks raises NotFoundError.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = max(0.01, min(first_poll, poll))
        while True:
            for summary in self.tick():
                if on_change is not None:
                    on_change(summary)
            gone = sorted(n for n, count in self.missing.items() if count >= missing_ticks)
            if gone:
                raise NotFoundError(f"Jobs not found on the cluster: {', '.join(gone)}: check the names with "
                                    "`pai-magic jobs`.")
            if self.all_terminal:
                return dict(self.states)
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                waiting = sorted(n for n in self._watched if not (n in self.states and self.states[n].terminal))
                raise PaiTimeoutError(f"{len(waiting)} job(s) still running after {timeout:g} s "
                                      f"({', '.join(waiting[:5])}{' ...' if len(waiting) > 5 else ''}): wait again.")
            pause = interval if interval < poll else self.next_interval(poll)  # ramp up, then slow for old jobs
            time.sleep(pause if deadline is None else min(pause, max(0.0, deadline - now)))
            interval = min(poll, interval * 1.5)


def follow_logs(client: PaiClient, name: str, *, role: str | None = None, index: int = 0,
                stream: str = "stdout", user: str | None = None, poll: float = 1.0,
                timeout: float | None = None, follow: bool = True, tolerate_errors: int = 3) -> Iterator[str]:
    """Yield a task's log text as it grows, until the task (or the job) has ended.

    Each poll reads the job once, then the log from the last byte offset, so the final read
    happens after the end was observed and nothing is lost. A new task attempt (a retry)
    starts its own log: a marker line is yielded and reading restarts at its beginning. So
    does a log the cluster rotated under the reader (the file became shorter).
    With ``follow=False`` the current text is yielded once.

    Like :func:`wait_for`, a few consecutive transient errors are tolerated while following:
    a cluster answers 500 "Failed to get log list" whenever a node's log-manager hiccups.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    offset = 0
    attempt_key: tuple[int, int] | None = None
    interval = min(0.25, poll)
    failures = 0
    while True:
        read_failed = False
        try:
            detail = client.get_job(name, user)
        except _TRANSIENT:
            failures += 1
            if not follow or failures > tolerate_errors:
                raise
            detail = None
        task = None
        if detail is not None:
            try:
                task = detail.task(role, index)
            except NotFoundError:
                if detail.terminal or not follow:
                    raise
        if detail is not None and task is not None:
            key = (detail.attempt_id, task.attempt_id)
            if attempt_key is not None and key != attempt_key:
                offset = 0
                yield f"\n--- {task.role}/{task.index}: job attempt {key[0]}, task attempt {key[1]} ---\n"
            attempt_key = key
            try:
                chunk = client.task_log_text(name, task.role, index, stream=stream, offset=offset, user=user,
                                             job_attempt=key[0], task_attempt=key[1])
                if chunk.restarted:
                    yield f"\n--- {task.role}/{task.index}: the log was rotated; lines may be missing ---\n"
                if chunk.text:
                    yield chunk.text
                offset = chunk.next_offset
                failures = 0
            except NotFoundError:
                if detail.terminal or not follow:
                    if not follow:
                        raise
                    return
            except _TRANSIENT:
                failures += 1
                if not follow or failures > tolerate_errors:
                    raise
                read_failed = True  # the final read must still happen: do not end on this poll
        ended = detail is not None and (detail.terminal or (task is not None and is_terminal(task.state)))
        if (ended and not read_failed) or not follow:
            return
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            state = detail.state if detail is not None else "unknown (the cluster did not answer)"
            raise PaiTimeoutError(f"Stopped following the log of {name} after {timeout:g} s; the job is still "
                                  f"{state}.")
        time.sleep(interval)
        interval = min(poll, interval * 1.5)


def task_reason(client: PaiClient, name: str, detail: JobDetail | None = None) -> str:
    """One line saying why a job's task ended: the last non-empty line of its first failed (or
    first) task's stderr, else the job's diagnostics; "" when neither says anything.

    Why: a run that waits for its task (a notebook run, a kernel start) and sees the job end
    early must say what the task said, not "it failed" or nothing after a timeout.
    """
    try:
        detail = detail or client.get_job(name)
    except PaiError:
        return ""
    lines: list[str] = []
    if detail.tasks:
        task = min(detail.tasks, key=lambda t: (t.state not in ("FAILED", "STOPPED"), t.role, t.index))
        try:
            lines = client.task_log_text(name, task.role, task.index, stream="stderr", detail=detail,
                                         tail=True).text.splitlines()
        except PaiError:
            pass
    for text in (lines, (detail.diagnostics or "").splitlines()):
        said = [ln.strip() for ln in text if ln.strip()]
        if said:
            return said[-1][:300]
    return ""
