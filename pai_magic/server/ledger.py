"""Submissions keyed by the client's request id, so one click never submits twice.

OpenPAI job names can never be reused and a submit can fail after the job was created, so
the sidebar sends a fresh ``requestId`` with each form submission and re-sends the SAME id
when it retries (double click, flaky network, page reload mid-request). The first request
does the work; every later one with that id waits for it and gets the same answer.
The core's submit already resolves a doubtful failure with a GET before any retry; this
ledger covers the hop between the browser and the server.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future
from typing import Any, Callable


class SubmissionLedger:
    """A bounded map ``requestId -> Future`` of recent submissions."""

    def __init__(self, capacity: int = 1000) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, Future] = OrderedDict()

    def claim(self, request_id: str) -> tuple[Future, bool]:
        """The future for ``request_id`` and whether this caller must do the work."""
        with self._lock:
            existing = self._entries.get(request_id)
            if existing is not None:
                return existing, False
            future: Future = Future()
            self._entries[request_id] = future
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)
            return future, True

    def run(self, request_id: str | None, work: Callable[[], Any]) -> tuple[Any, bool]:
        """Run ``work`` once per ``request_id``; returns (result, was_duplicate). Blocking."""
        if not request_id:
            return work(), False
        future, owner = self.claim(request_id)
        if not owner:
            return future.result(), True
        try:
            result = work()
        except BaseException as exc:
            future.set_exception(exc)
            raise
        future.set_result(result)
        return result, False
