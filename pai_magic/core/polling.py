"""ONE job-list poll per cluster and user on this machine, shared by every kernel, sidebar and watch.

Why: OpenPAI limits ``GET /jobs`` to 120 calls per minute per user (and everything to 600
per minute per address). Each kernel polling every 2 s and the sidebar every 3 s made four
notebooks and a sidebar of one person exceed it, and then the cluster answers 429 to all.

How: the newest list of a (cluster, user) lives in a small file under the pai_magic data dir
(``<data dir>/poll/<hash>.json``, 0600), guarded by an ``fcntl`` lock. A poller that finds
the file younger than the age it accepts reads it; one that finds it older takes the lock,
asks the cluster ONCE, and writes the answer for everyone; others waiting on the lock then
read that fresh answer instead of asking again. Nobody refreshes more often than
:data:`MIN_INTERVAL`, so one machine stays at <= 30 list calls per minute per user whatever
runs on it. A 429 is written down with its ``Retry-After``: until then every poller serves the
last list (marked ``limited``) without calling the cluster.

:func:`watch_interval` slows the polling of jobs that have been running for a while.
``PAI_MAGIC_SHARED_POLL=off`` turns the sharing off (each poller asks the cluster itself).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from pai_magic.core.errors import PaiError, RateLimitedError
from pai_magic.core.models import JobSummary
from pai_magic.core.paths import data_dir, write_private

MIN_INTERVAL = 2.0        # seconds: the fastest anyone on this machine refreshes one user's list
MAX_INTERVAL = 30.0       # the slowest a live status gets (a job running for a long time)
DEFAULT_RETRY_AFTER = 60.0  # a 429 without Retry-After: express-rate-limit's window is a minute
LIMIT_MEMORY = 600.0      # a larger page someone asked for is kept this long before shrinking back
DEFAULT_LIMIT = 50
ALL_USERS = "*"
SWITCH = "PAI_MAGIC_SHARED_POLL"  # "off": every poller asks the cluster itself (e.g. a data dir without locks)


def sharing_enabled() -> bool:
    return os.environ.get(SWITCH, "").strip().lower() not in ("0", "off", "no", "false")


def watch_interval(base: float, running_for: float | None) -> float:
    """Seconds between two polls of a job that has been running ``running_for`` seconds.

    A fresh job changes often (WAITING -> RUNNING -> done within a minute for short ones): poll
    at ``base``. A job running for long changes rarely: one poll per 30th of its age, at most
    :data:`MAX_INTERVAL` (a 5-minute job every 10 s, a 15-minute one every 30 s).
    """
    if running_for is None or running_for <= 0:
        return base
    return max(base, min(MAX_INTERVAL, running_for / 30.0))


@dataclass
class SharedList:
    """A job list as some poller on this machine last got it."""

    items: list[JobSummary]
    total: int | None
    limit: int
    fetched_at: float           # epoch seconds of the answer
    fresh: bool = False         # True when THIS call asked the cluster
    limited_until: float = 0.0  # epoch seconds: the cluster said 429, nobody asks before that
    note: str | None = None     # why the list may be old (rate limited), for a status line

    def age(self, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.fetched_at)

    @property
    def complete(self) -> bool:
        """True when no job of the user is missing from ``items``."""
        return (self.total is not None and self.total <= len(self.items)) or len(self.items) < self.limit

    @property
    def limited(self) -> bool:
        return self.limited_until > time.time()


@dataclass
class _Stats:
    requests: int = 0   # list calls this process made through the shared poll
    served: int = 0     # answers given from the file without a call
    limited: int = 0    # 429s seen


STATS = _Stats()


def poll_dir() -> Path:
    return data_dir() / "poll"


def cache_key(rest_base: str, username: str) -> str:
    return hashlib.sha256(f"{rest_base.rstrip('/')}|{username}".encode()).hexdigest()[:24]


class SharedJobList:
    """The shared list of ``username``'s jobs (``ALL_USERS`` for everyone's) on one cluster."""

    def __init__(self, client: Any, username: str | None = None, *, directory: Path | None = None,
                 min_interval: float = MIN_INTERVAL) -> None:
        self.client = client
        self.username = username or client.user or ALL_USERS
        folder = directory or poll_dir()
        key = cache_key(client.http.base_url, self.username)
        self.path = folder / f"{key}.json"
        self.lock_path = folder / f"{key}.lock"
        self.min_interval = min_interval

    # -- file -------------------------------------------------------------------------------
    def _read(self) -> SharedList | None:
        try:
            data = json.loads(self.path.read_text())
            return SharedList(items=[JobSummary(**row) for row in data["items"]], total=data.get("total"),
                              limit=int(data["limit"]), fetched_at=float(data["fetched_at"]),
                              limited_until=float(data.get("limited_until") or 0.0), note=data.get("note"))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # none yet, or damaged: the next refresh rewrites it

    def _write(self, shared: SharedList) -> None:
        data = {"items": [asdict(s) for s in shared.items], "total": shared.total, "limit": shared.limit,
                "fetched_at": shared.fetched_at, "limited_until": shared.limited_until, "note": shared.note}
        try:
            write_private(self.path, json.dumps(data, separators=(",", ":")))
        except OSError:
            pass  # a full disk must not stop the poll: the next one asks again

    @contextlib.contextmanager
    def _locked(self, wait: float) -> Iterator[bool]:
        """Hold the lock (True), or give up after ``wait`` seconds (False) and go on unlocked."""
        fd: int | None = None
        got = False
        try:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            until = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    got = True
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() >= until:
                        break
                    time.sleep(0.02)
        except OSError:
            pass
        try:
            yield got
        finally:
            if fd is not None:
                if got:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    # -- the poll -----------------------------------------------------------------------------
    def get(self, *, max_age: float = MIN_INTERVAL, limit: int = DEFAULT_LIMIT) -> SharedList:
        """A list at most ``max_age`` seconds old (never younger than the minimum interval
        between calls) with at least ``limit`` newest jobs, or all of them.

        Raises :class:`RateLimitedError` only when the cluster refused and nothing is known yet.
        """
        if not sharing_enabled():
            return self._direct(limit)
        max_age = max(float(max_age), self.min_interval)
        cached = self._usable(self._read(), max_age, limit)
        if cached is not None:
            return cached
        with self._locked(wait=self.client.http.deadline_seconds() + 5.0):
            # whoever held the lock may just have refreshed it
            current = self._read()
            cached = self._usable(current, max_age, limit)
            if cached is not None:
                return cached
            return self._refresh(current, limit)

    def _usable(self, shared: SharedList | None, max_age: float, limit: int) -> SharedList | None:
        if shared is None:
            return None
        now = time.time()
        if shared.limited_until > now:
            wait = shared.limited_until - now
            note = _limited_note(shared.limited_until)
            if shared.limit == 0:  # refused before anything was known: nothing to serve
                limited = RateLimitedError(f"{note[0].upper()}{note[1:]}.")
                limited.retry_after = wait  # type: ignore[attr-defined]
                raise limited
            STATS.served += 1
            shared.note = note
            return shared
        if shared.age(now) <= max_age and (shared.limit >= limit or shared.complete):
            STATS.served += 1
            shared.note = None
            return shared
        return None

    def _refresh(self, previous: SharedList | None, limit: int) -> SharedList:
        from pai_magic.core.client import DEFAULT_ORDER

        now = time.time()
        # never a shorter page than the default: a sidebar's 20 rows must serve a watcher's 50,
        # or each would ask the cluster for its own length
        limit = max(limit, DEFAULT_LIMIT)
        if previous is not None and now - previous.fetched_at < LIMIT_MEMORY:
            limit = max(limit, previous.limit)  # someone needed a longer page recently: keep serving it
        username = None if self.username == ALL_USERS else self.username
        STATS.requests += 1
        try:
            page = self.client.list_jobs(username=username, limit=limit, order=DEFAULT_ORDER)
        except RateLimitedError as exc:
            STATS.limited += 1
            wait = getattr(exc, "retry_after", None)
            until = now + (float(wait) if wait is not None else DEFAULT_RETRY_AFTER)
            if previous is None:
                self._write(SharedList(items=[], total=None, limit=0, fetched_at=0.0, limited_until=until))
                raise
            previous.limited_until = until
            self._write(previous)
            previous.note = _limited_note(until)
            return previous
        shared = SharedList(items=list(page.items), total=page.total, limit=limit, fetched_at=time.time(),
                            fresh=True)
        self._write(shared)
        return shared

    def _direct(self, limit: int) -> SharedList:
        """The list straight from the cluster, nothing written or shared (the switch is off)."""
        from pai_magic.core.client import DEFAULT_ORDER

        STATS.requests += 1
        username = None if self.username == ALL_USERS else self.username
        page = self.client.list_jobs(username=username, limit=limit, order=DEFAULT_ORDER)
        return SharedList(items=list(page.items), total=page.total, limit=limit, fetched_at=time.time(), fresh=True)

    def invalidate(self) -> None:
        """Make the next poll ask the cluster (after a submit or stop from this machine)."""
        with self._locked(wait=2.0):
            shared = self._read()
            if shared is not None and shared.limited_until <= time.time():
                shared.fetched_at = 0.0
                self._write(shared)


def _limited_note(until: float) -> str:
    """Stable for one 429 (a text status prints a line only when its note changes)."""
    return (f"the cluster is rate limiting job lists (HTTP 429); states may be old until "
            f"{time.strftime('%H:%M:%S', time.localtime(until))}")


def shared_list(client: Any, username: str | None = None) -> SharedJobList:
    """The shared poll of ``username``'s jobs (default: the client's user) on the client's cluster."""
    return SharedJobList(client, username)


def invalidate_quietly(client: Any) -> None:
    """:meth:`SharedJobList.invalidate` for a face that just changed a job; never raises."""
    try:
        SharedJobList(client).invalidate()
    except (OSError, PaiError, AttributeError):
        pass
