"""Plain data the core returns to every face.

Faces render these; they never see raw HTTP answers. ``from_api`` constructors accept what
an OpenPAI rest-server (v1.0 .. v1.8) returns, including its quirks (string
``containerPorts``, missing fields on older versions).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
JOB_STATES = ("WAITING", "RUNNING", "STOPPING", "SUCCEEDED", "FAILED", "STOPPED", "UNKNOWN")


def check_job_state(value: str | None) -> str | None:
    """A state filter as typed (any case, blank for none) -> the state, or an
    ``InvalidInputError`` on field ``state`` naming the states: every face refuses alike."""
    state = (value or "").strip().upper()
    if not state:
        return None
    if state not in JOB_STATES:
        from pai_magic.core.errors import InvalidInputError

        raise InvalidInputError(f"{value!r} is not a job state: choose one of {', '.join(JOB_STATES)}.",
                                field="state")
    return state


def is_terminal(state: str | None) -> bool:
    """True once a job can no longer change state (a RUNNING job may still be between retries)."""
    return (state or "").upper() in TERMINAL_STATES


def summary_line(text: str | None, limit: int = 300) -> str:
    """One line from a multi-line message (a job's diagnostics are often several sentences on
    separate lines): the lines joined with "; ", so they do not run together when flattened."""
    lines = [" ".join(line.split()) for line in str(text or "").splitlines()]
    flat = "; ".join(line.rstrip(";") for line in lines if line)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def parse_ports(raw: dict[str, Any] | None) -> dict[str, list[int]]:
    """``containerPorts`` values are strings on a real cluster ("37508", "15001,15002")."""
    ports: dict[str, list[int]] = {}
    for name, value in (raw or {}).items():
        if value is None:
            continue
        parts = value if isinstance(value, list) else str(value).split(",")
        nums = [int(p) for p in (str(x).strip() for x in parts) if p.isdigit()]
        if nums:
            ports[name] = nums
    return ports


@dataclass
class ClusterInfo:
    """``GET /info``: tells the version and whether basic login exists."""

    name: str
    version: str
    launcher_type: str
    authn_method: str  # "basic" or "OIDC"

    @property
    def has_basic_login(self) -> bool:
        return self.authn_method.lower() == "basic"

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> "ClusterInfo":
        return cls(name=str(data.get("name", "")), version=str(data.get("version", "")),
                   launcher_type=str(data.get("launcherType", "")),
                   authn_method=str(data.get("authnMethod", "basic")))


@dataclass
class TaskStatus:
    """One task instance: where it runs and on which ports (ssh, http ...)."""

    role: str
    index: int
    state: str
    container_ip: str | None = None
    ports: dict[str, list[int]] = field(default_factory=dict)
    exit_code: int | None = None
    diagnostics: str | None = None
    retries: int = 0
    attempt_id: int = 0

    @classmethod
    def from_api(cls, role: str, data: dict[str, Any]) -> "TaskStatus":
        details = data.get("containerDetails") or {}
        attempts = data.get("attempts") or []
        attempt_id = int(data.get("attemptId", 0) or 0)
        # The task endpoint lists the current attempt FIRST, then the history: take the newest id.
        ids = [int(a.get("attemptId") or 0) for a in attempts if isinstance(a, dict)]
        if ids:
            attempt_id = max(ids)
        return cls(
            role=role,
            index=int(data.get("taskIndex", 0)),
            state=str(data.get("taskState", "UNKNOWN")),
            container_ip=data.get("containerIp") or details.get("containerIp"),
            ports=parse_ports(data.get("containerPorts")),
            exit_code=data.get("containerExitCode"),
            diagnostics=data.get("containerExitDiagnostics") or None,
            retries=int(data.get("retries", 0) or 0),
            attempt_id=attempt_id,
        )


class _JobNaming:
    """What a listed job and a job's detail both answer, said once."""

    name: str
    user: str
    state: str

    @property
    def full_name(self) -> str:
        return f"{self.user}~{self.name}"

    @property
    def terminal(self) -> bool:
        return is_terminal(self.state)


@dataclass
class JobSummary(_JobNaming):
    """One row of ``GET /jobs``."""

    name: str
    user: str
    state: str
    virtual_cluster: str | None = None
    gpus: int = 0
    submission_time: int | None = None  # epoch milliseconds
    completed_time: int | None = None
    exit_code: int | None = None
    retries: int = 0

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> "JobSummary":
        return cls(
            name=str(data.get("name", "")),
            user=str(data.get("username", "")),
            state=str(data.get("state", "UNKNOWN")),
            virtual_cluster=data.get("virtualCluster"),
            gpus=int(data.get("totalGpuNumber", 0) or 0),
            submission_time=data.get("submissionTime") or data.get("createdTime"),
            completed_time=data.get("completedTime"),
            exit_code=data.get("appExitCode"),
            retries=int(data.get("retries", 0) or 0),
        )


@dataclass
class JobDetail(_JobNaming):
    """``GET /jobs/<user>~<name>``: status and every task."""

    name: str
    user: str
    state: str
    virtual_cluster: str | None = None
    submission_time: int | None = None
    completed_time: int | None = None
    exit_code: int | None = None
    diagnostics: str | None = None
    retries: int = 0
    tasks: list[TaskStatus] = field(default_factory=list)
    attempt_id: int = 0  # jobStatus.attemptId: the job attempt whose task logs to read

    def task(self, role: str | None = None, index: int = 0) -> TaskStatus:
        """The task ``role/index``; with no role, the first role's task ``index``."""
        from pai_magic.core.errors import NotFoundError

        for task in self.tasks:
            if (role is None or task.role == role) and task.index == index:
                return task
        known = ", ".join(f"{t.role}/{t.index}" for t in self.tasks) or "none yet"
        raise NotFoundError(f"Job {self.name} has no task {role or '<first>'}/{index}; its tasks: {known}.")

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> "JobDetail":
        status = data.get("jobStatus") or {}
        tasks: list[TaskStatus] = []
        for role, role_data in (data.get("taskRoles") or {}).items():
            for ts in (role_data or {}).get("taskStatuses") or []:
                tasks.append(TaskStatus.from_api(role, ts))
        return cls(
            name=str(data.get("name", "")),
            user=str(status.get("username") or data.get("username") or ""),
            state=str(status.get("state", "UNKNOWN")),
            virtual_cluster=status.get("virtualCluster"),
            submission_time=status.get("submissionTime") or status.get("createdTime"),
            completed_time=status.get("completedTime"),
            exit_code=status.get("appExitCode"),
            diagnostics=status.get("appExitDiagnostics") or None,
            retries=int(status.get("retries", 0) or 0),
            tasks=tasks,
            attempt_id=int(status.get("attemptId", 0) or 0),
        )


@dataclass
class JobPage:
    """One page of ``GET /jobs``. ``total`` is None when the cluster could not tell."""

    items: list[JobSummary]
    total: int | None = None
    offset: int = 0
    limit: int | None = None

    def __iter__(self) -> Iterator[JobSummary]:  # a page reads like the list it holds
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def has_more(self) -> bool:
        if self.total is None:
            return False
        return self.offset + len(self.items) < self.total


@dataclass
class TokenStatus:
    """What ``check_token`` learned: the token works, for whom, and whether it is an application token."""

    valid: bool
    user: str | None = None
    application: bool = False
    expires_at: int | None = None  # epoch seconds, from the JWT when it says
    checked_with: str = ""  # "tokens/check" or the fallback call used on older clusters


@dataclass
class LogChunk:
    """Text of a task log read from byte ``offset``; ``next_offset`` is where to continue."""

    text: str
    offset: int
    next_offset: int
    stream: str = "stdout"
    restarted: bool = False  # the log was rotated (shorter than ``offset``): ``text`` starts at its byte 0
