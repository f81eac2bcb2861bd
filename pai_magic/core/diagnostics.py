"""A job's diagnostics in a person's words.

OpenPAI's job controller (FrameworkController) ends every job with a line written for its own
log (``SucceededTaskCount 1 has reached MinSucceededTaskCount 1 in the TaskRole taskrole``,
``Stop to complete current job attempt: user requested``); the embedded backend writes the
same ones. A face shows those lines beside the job's state, so the few known ones are said
again here in plain words; any other line (the cluster's or the backend's own) is kept as is.
"""
from __future__ import annotations

import re
from typing import Callable

_Rewrite = Callable[["re.Match[str]"], str]


def _tasks(count: str) -> str:
    return "1 task" if count == "1" else f"{count} tasks"


_KNOWN: list[tuple[re.Pattern[str], _Rewrite]] = [
    (re.compile(r"SucceededTaskCount (\d+) has reached MinSucceededTaskCount \d+ in the TaskRole (\S+)"),
     lambda m: f"{_tasks(m[1])} of role {m[2]} succeeded, as many as the job needs."),
    (re.compile(r"FailedTaskCount (\d+) has reached MinFailedTaskCount \d+ in the TaskRole (\S+)"),
     lambda m: f"{_tasks(m[1])} of role {m[2]} failed, which ends the job: see that task's log."),
    (re.compile(r"Stop to complete current job attempt: user requested"),
     lambda m: "Stopped on request."),
    (re.compile(r"All Tasks are completed and no user specified conditions in "
                r"FrameworkAttemptCompletionPolicy have ever been triggered"),
     lambda m: "Every task ended."),
]


def readable_diagnostics(text: str | None) -> str | None:
    """``text`` with each known controller line (a whole line) put in plain words."""
    if not text:
        return text
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        for pattern, rewrite in _KNOWN:
            match = pattern.fullmatch(stripped)
            if match:
                line = rewrite(match)
                break
        lines.append(line)
    return "\n".join(lines)
