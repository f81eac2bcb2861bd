"""Run a notebook as an OpenPAI job and bring the executed copy back.

Where the files live: a job's container disk is gone once the job ends, and OpenPAI has no
upload API. So the job gets the ssh runtime plugin with the user's key; once its task runs,
ONE SSH session uploads the parameterised notebook, the stdlib-only runner
(:mod:`task_runner`) and its settings into ``/tmp/<job>`` (``pai-nb-...``: its own folder: no shared
parent another uid may own) and then, on the same
session, polls the runner's ``status.json`` and fetches the executed notebook every time the
runner rewrote it (after each cell). Whatever executed is therefore already on this machine
when a cell fails, when the job is stopped (here or anywhere else) or when time runs out.
At the end the caller acknowledges the fetch (``.ack``) and the runner exits, ending the job
(SUCCEEDED, or FAILED with the runner's exit code); a stop asked here interrupts the kernel
first, fetches the last state, then stops the job (STOPPED). Nobody fetching: the runner
lingers at most ``linger`` seconds, then ends.

Every run is recorded in :mod:`results` so other faces find the executed copy by job name.
"""
from __future__ import annotations

import json
import math
import os
import re
import shlex
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pai_magic.core.client import PaiClient
from pai_magic.core.errors import AuthError, ForbiddenError, InvalidInputError, NotFoundError, PaiError
from pai_magic.core.jobs import submit_job, task_reason
from pai_magic.core.kinds import NOTEBOOK, PREFIXES, job_kind, kind_stem
from pai_magic.core.models import JobDetail
from pai_magic.core.notebook import task_runner
from pai_magic.core.notebook.files import collect_files, missing_file_hint
from pai_magic.core.notebook.outputs import DEFAULT_LIMIT_MB, OutputFiles, fetch_outputs
from pai_magic.core.notebook.params import code_cell_count, inject_parameters, injection_warning, read_notebook
from pai_magic.core.notebook.results import NotebookResult, find_result, record
from pai_magic.core.protocol import JobSpec, build_protocol
from pai_magic.core.protocol.build import unique_job_name
from pai_magic.core.ssh.connect import SshSession, connect
from pai_magic.core.ssh.keys import SshKey, ensure_key

RUNNER_FILE = "pai_nb_runner.py"
INPUT_FILE = "input.ipynb"
CONFIG_FILE = "run.json"
GO_FILE = ".go"
UPLOAD_WAIT = 600          # seconds the task waits for the notebook before giving up
FINAL = {"succeeded": "SUCCEEDED", "failed": "FAILED", "stopped": "STOPPED", "timeout": "TIMEOUT",
         "error": "FAILED"}
STOP_GRACE = 20.0          # seconds a stop waits for the runner to save before stopping the job
REST_EVERY = 10.0          # seconds between job-state reads while the SSH session carries progress
REST_RATE = 5.0            # job reads per second for ALL runs followed by this process (a sweep of 100)
SSH_READY_TIMEOUT = 300.0  # a cluster's ssh plugin may apt-install sshd first: keep trying this long
_PYTHON_RE = re.compile(r"^[A-Za-z0-9_./+-]+\Z")  # one word: the job runs it as "$PY"
FETCH_EVERY = 2.0          # seconds between two fetches of a large (> 1 MB) notebook while it runs
#: The runner's files in the task's run folder: never brought back as the notebook's output.
OWN_FILES = frozenset({RUNNER_FILE, INPUT_FILE, CONFIG_FILE, GO_FILE, GO_FILE + ".tmp", "executed.ipynb",
                       task_runner.STATUS, task_runner.STOP_FILE, task_runner.ACK_FILE, task_runner.INPUTS})

ProgressFn = Callable[["RunProgress"], Any]


@dataclass
class NotebookRunSpec:
    """What a person asks for: the notebook, where to run it, its parameters, what to bring back."""

    notebook: str
    image: str
    parameters: dict[str, Any] = field(default_factory=dict)
    gpu: int = 0
    cpu: int = 1
    memory_mb: int = 4096
    virtual_cluster: str = "default"
    timeout: float | None = None       # the whole run, seconds (the runner enforces it per cell)
    html: bool = False
    install_deps: bool = False
    out_root: str | None = None        # runs land in OUT_ROOT/<job>/; default: <notebook dir>/pai-runs
    linger: float = 600.0
    name: str | None = None            # a readable stem; default: the notebook's name
    python: str | None = None          # the image's Python when python3 is not on its PATH
    storage: str | None = None         # "NAME" or "NAME:/mount": also keep every snapshot there (durable)
    files: list[str] = field(default_factory=list)  # files/folders the notebook reads, sent beside it
    outputs_mb: float = DEFAULT_LIMIT_MB  # files the notebook writes beside itself come back, up to this
    start_timeout: float | None = None  # seconds the job may wait for resources before it is stopped


@dataclass
class PreparedRun:
    """A run ready to submit: its job name, protocol and the files to upload."""

    spec: NotebookRunSpec
    name: str
    protocol: dict[str, Any] = field(repr=False)
    notebook_json: bytes = field(repr=False)
    out_dir: Path
    output_name: str
    total_cells: int
    key: SshKey | None = field(default=None, repr=False)
    warnings: list[str] = field(default_factory=list)  # the run goes ahead; each face shows them once
    files: list[tuple[Path, str]] = field(default_factory=list, repr=False)  # (local, path in the task's folder)

    @property
    def remote_dir(self) -> str:
        return remote_dir(self.name)

    @property
    def local_notebook(self) -> Path:
        return self.out_dir / self.output_name


@dataclass
class RunProgress:
    """One step of a run, for a face's status line."""

    job: str
    state: str          # SUBMITTED, WAITING, UPLOADING, RUNNING, INSTALLING, then a final state
    cell: int = 0
    total: int = 0
    source: str = ""
    message: str = ""
    notebook: str | None = None

    def line(self) -> str:
        if self.state == "RUNNING" and self.cell:
            text = f"{self.job}: cell {self.cell} of {self.total}"
            return text + (f" ({self.source})" if self.source else "")
        text = f"{self.job}: {self.state.lower()}"
        return text + (f": {self.message}" if self.message else "")


def default_out_root(notebook: Path) -> Path:
    return notebook.parent / "pai-runs"


def remote_dir(name: str) -> str:
    """The task's folder for one run. Why not ``/tmp/pai-nb/<job>``: a shared parent is made
    by the first job that needs it and belongs to that job's uid, so on a machine where jobs
    run as different uids (the embedded backend as root, a shared node) every later job could
    not create its folder and failed at once."""
    prefix = PREFIXES[NOTEBOOK]  # run names carry it already: /tmp/pai-nb-train_x1y2z3w4
    return f"/tmp/{name}" if name.startswith(prefix) else f"/tmp/{prefix}{name}"


def bootstrap_commands(remote_dir: str, upload_wait: int = UPLOAD_WAIT, python: str | None = None) -> list[str]:
    """The job's shell lines: wait for the upload, then run the runner with the image's Python."""
    d = shlex.quote(remote_dir)
    ticks = int(upload_wait * 10)
    find = f"PY={shlex.quote(python)}; [ -x \"$PY\" ]" if python else "PY=$(command -v python3 || command -v python)"
    return [
        f"mkdir -p -m 700 {d} && cd {d} || exit 1",
        f"n=0; while [ ! -e {GO_FILE} ]; do n=$((n+1)); if [ $n -gt {ticks} ]; then "
        f"echo 'pai_magic: no notebook was uploaded within {upload_wait} s; the job ends' >&2; exit 2; fi; "
        "sleep 0.1; done",
        find + ' || { echo "pai_magic: the image has no Python (or not at --python): use an '
        'image with Python 3, nbclient and ipykernel (e.g. jupyter/base-notebook)" >&2; exit 3; }',
        f'"$PY" {RUNNER_FILE} {CONFIG_FILE}',
    ]


def check_spec(spec: NotebookRunSpec) -> None:
    """The options of a run, checked as a job form's are (one message per field, whatever the
    face), before anything is built or submitted: a job with a malformed image, no CPU or a
    timeout that never comes would only fail later, in the task, or never end."""
    from pai_magic.core.jobform import check_count, check_image, check_virtual_cluster, parse_storages

    if not (spec.image or "").strip():
        raise InvalidInputError("A notebook job needs an image with Python, nbclient and ipykernel: give --image.")
    spec.image = check_image(spec.image)
    check_count("gpu", spec.gpu)
    check_count("cpu", spec.cpu)
    if spec.virtual_cluster:
        check_virtual_cluster(spec.virtual_cluster)
    if spec.timeout is not None and not (math.isfinite(spec.timeout) and spec.timeout > 0):
        raise InvalidInputError(f"--timeout must be more than 0 seconds, got {spec.timeout:g}.")
    if spec.start_timeout is not None and not (math.isfinite(spec.start_timeout) and spec.start_timeout > 0):
        raise InvalidInputError(f"--start-timeout must be more than 0 seconds, got {spec.start_timeout:g}.")
    if not (math.isfinite(spec.outputs_mb) and spec.outputs_mb >= 0):
        raise InvalidInputError(f"--outputs-mb must be 0 (bring none back) or more, got {spec.outputs_mb:g}.")
    if spec.python is not None and not _PYTHON_RE.match(spec.python):
        raise InvalidInputError(f"--python {spec.python!r} is not a path to a Python: give e.g. /opt/conda/bin/python "
                                "(letters, digits, / . _ - +).")
    if spec.storage is not None:
        parse_storages([spec.storage])


def prepare_run(spec: NotebookRunSpec, *, key: SshKey | None = None,
                ssh_key_path: str | None = None) -> PreparedRun:
    """Read and parameterise the notebook and build its job; nothing touches the network."""
    if not (spec.notebook or "").strip():
        raise InvalidInputError("Give the notebook to run, e.g. train.ipynb.")
    path = Path(spec.notebook).expanduser()
    if not path.is_file():
        raise NotFoundError(f"Notebook {spec.notebook} does not exist: check the path.")
    check_spec(spec)
    nb = read_notebook(path.read_bytes(), str(path))
    injected = inject_parameters(nb, spec.parameters)
    warning = injection_warning(nb, spec.parameters, path.name)
    key = key or ensure_key(ssh_key_path)
    name = unique_job_name(kind_stem(NOTEBOOK, spec.name or path.stem))
    job_spec = JobSpec(name=name, exact_name=True, image=spec.image,
                       commands=bootstrap_commands(remote_dir(name), python=spec.python),
                       gpu=spec.gpu, cpu=spec.cpu, memory_mb=spec.memory_mb, virtual_cluster=spec.virtual_cluster,
                       ssh_public_key=key.public_line, storages=_storages(spec.storage),
                       description=f"pai_magic notebook run of {path.name}")
    protocol = build_protocol(job_spec)
    out_root = Path(spec.out_root).expanduser() if spec.out_root else default_out_root(path.resolve())
    files = collect_files(spec.files, path.parent, exclude=[out_root], notebook=path)
    _check_writable(out_root)
    return PreparedRun(spec=spec, name=name, protocol=protocol,
                       notebook_json=json.dumps(injected, ensure_ascii=False, indent=1).encode("utf-8"),
                       out_dir=out_root / name, output_name=path.name, total_cells=code_cell_count(injected),
                       key=key, warnings=[warning] if warning else [], files=files)


def run_warnings(runs: list[PreparedRun]) -> list[str]:
    """The warnings of some runs (a sweep's points share theirs), each once, in order."""
    return list(dict.fromkeys(w for run in runs for w in run.warnings))


def _check_writable(out_root: Path) -> None:
    """Refuse a run folder this machine cannot write before the job exists: the executed notebook
    would otherwise have nowhere to land, after the run, with its GPU time spent."""
    try:
        out_root.mkdir(parents=True, exist_ok=True)
        writable = os.access(out_root, os.W_OK | os.X_OK)
        reason = "not writable"
    except OSError as exc:
        writable, reason = False, exc.strerror or type(exc).__name__
    if not writable:
        raise InvalidInputError(f"Cannot keep run folders in {out_root} ({reason}): give --out DIR, a folder "
                                "you can write to.")


def _storages(storage: str | None) -> list[tuple[str, str | None]]:
    if not storage:
        return []
    name, _, mount = storage.partition(":")
    return [(name.strip(), mount.strip() or None)]


def storage_folder(run: PreparedRun) -> str | None:
    """Where the durable copy goes on the storage: ``NAME:pai-nb-runs/<job>/<notebook>``."""
    pairs = _storages(run.spec.storage)
    return f"{pairs[0][0]}:pai-nb-runs/{run.name}/{run.output_name}" if pairs else None


def submit_run(client: PaiClient, run: PreparedRun) -> str:
    """Submit the run's job exactly once (core.jobs.submit_job) and record it; returns user~job."""
    submit_job(client, run.protocol)
    full = f"{client.user}~{run.name}"
    record(_result(run, full, "SUBMITTED"))
    return full


def _result(run: PreparedRun, full: str, state: str, **extra: Any) -> NotebookResult:
    return NotebookResult(job=full, state=state, out_dir=str(run.out_dir), input=str(run.spec.notebook),
                          parameters=dict(run.spec.parameters), storage_copy=storage_folder(run),
                          warnings=list(run.warnings), **extra)


def _runner_config(run: PreparedRun) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "notebook": INPUT_FILE, "output": "executed.ipynb", "output_dir": ".", "timeout": run.spec.timeout,
        "install_deps": bool(run.spec.install_deps), "linger": float(run.spec.linger), "kernel": "python3",
        "cleanup": True}
    pairs = _storages(run.spec.storage)
    if pairs:
        name, mount = pairs[0]
        conf["persist"] = {"storage": name, "mount": mount, "folder": f"pai-nb-runs/{run.name}"}
        conf["persist_name"] = run.output_name
    return conf


class _Follower:
    """The SSH side of one run: upload once, then poll status and fetch snapshots."""

    def __init__(self, client: PaiClient, run: PreparedRun, on_progress: ProgressFn | None) -> None:
        self.client = client
        self.run = run
        self.full = f"{client.user}~{run.name}"
        self.on_progress = on_progress
        self.session: SshSession | None = None
        self.uploaded = False
        self.seq = -1
        self.status: dict[str, Any] = {}
        self.fetched_sig: tuple[int, int] | None = None
        self.fetched_at = 0.0
        self.notebook: Path | None = None
        self.outputs: OutputFiles | None = None
        self.last_line = ""

    # ------------------------------------------------------------------ plumbing
    def emit(self, state: str, **fields: Any) -> None:
        progress = RunProgress(job=self.full, state=state, notebook=str(self.notebook) if self.notebook else None,
                               **fields)
        line = progress.line()
        if self.on_progress is not None and line != self.last_line:
            self.last_line = line
            self.on_progress(progress)

    def remote(self, name: str) -> str:
        return f"{self.run.remote_dir}/{name}"

    def open(self) -> SshSession:
        from pai_magic.core.ssh.tasks import resolve_target

        target, _ = resolve_target(self.client, self.run.name)
        key = self.run.key or ensure_key(self.client.profile.ssh_key)
        self.session = connect(target, key)
        return self.session

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def sftp(self) -> Any:
        assert self.session is not None
        return self.session.sftp()

    def upload(self) -> None:
        sftp = self.sftp()
        try:
            sftp.stat(self.remote(GO_FILE))
            self.uploaded = True  # an earlier follower already did it
            return
        except OSError:
            pass
        if not self.run.notebook_json:
            raise PaiError(f"The notebook of {self.full} was never uploaded (the run that started it ended early): "
                           f"stop the job with `pai-magic stop {self.run.name}` and run the notebook again.")
        size = len(self.run.notebook_json) + sum(p.stat().st_size for p, _ in self.run.files)
        self.emit("UPLOADING", message=f"{size / 1e6:.1f} MB")
        try:
            sftp.mkdir(self.run.remote_dir)
        except OSError:
            pass  # the job's first line made it
        made: set[str] = set()
        for local, rel in self.run.files:  # before .go: the notebook may read them in its first cell
            parts = rel.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                folder = "/".join(parts[:i])
                if folder not in made:
                    made.add(folder)
                    try:
                        sftp.mkdir(self.remote(folder))
                    except OSError:
                        pass  # already there
            sftp.put(str(local), self.remote(rel), confirm=True)
        import io

        runner_src = Path(task_runner.__file__).read_bytes()
        config = json.dumps(_runner_config(self.run)).encode()
        for name, data in ((RUNNER_FILE, runner_src), (INPUT_FILE, self.run.notebook_json), (CONFIG_FILE, config)):
            sftp.putfo(io.BytesIO(data), self.remote(name), file_size=len(data), confirm=True)
        sftp.putfo(io.BytesIO(b""), self.remote(GO_FILE + ".tmp"))
        sftp.posix_rename(self.remote(GO_FILE + ".tmp"), self.remote(GO_FILE))
        self.uploaded = True
        record(_result(self.run, self.full, "RUNNING"))

    def touch(self, name: str) -> None:
        import io

        self.sftp().putfo(io.BytesIO(b""), self.remote(name))

    def poll(self) -> dict[str, Any]:
        """Read status.json; fetch the executed notebook when the runner rewrote it."""
        sftp = self.sftp()
        try:
            with sftp.open(self.remote(task_runner.STATUS), "rb") as fh:
                status = json.loads(fh.read().decode("utf-8"))
        except (OSError, ValueError):
            status = {}
        if status and status.get("seq") != self.seq:
            self.seq = int(status.get("seq") or 0)
            self.status = status
            state = str(status.get("state") or "")
            if state == "running":
                self.emit("RUNNING", cell=int(status.get("cell") or 0), total=int(status.get("total") or 0),
                          source=str(status.get("source") or ""), message=str(status.get("message") or ""))
            elif state == "installing":
                self.emit("INSTALLING", message=str(status.get("message") or ""))
            elif state == "error":
                self.emit("ERROR", message=str(status.get("message") or ""))
        self.fetch(final=str(self.status.get("state") or "") in FINAL)
        return self.status

    def fetch(self, final: bool = True) -> bool:
        sftp = self.sftp()
        remote = self.remote("executed.ipynb")
        try:
            st = sftp.stat(remote)
        except OSError:
            return False
        sig = (int(st.st_size or 0), int(st.st_mtime or 0) * 1_000_000_000 + int(self.status.get("snapshots") or 0))
        if sig == self.fetched_sig:
            return False
        if (not final and sig[0] > 1 << 20 and time.monotonic() - self.fetched_at < FETCH_EVERY):
            return False  # a big notebook rewritten after every short cell: fetch it every few seconds
        target = self.run.local_notebook
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.part")
        with open(tmp, "wb") as fh:
            sftp.getfo(remote, fh)
        if tmp.stat().st_size == 0:
            tmp.unlink()
            return False
        os.replace(tmp, target)
        self.fetched_sig = sig
        self.fetched_at = time.monotonic()
        self.notebook = target
        return True

    def bring_outputs(self) -> None:
        """The files the notebook wrote (:mod:`.outputs`), once, before the task may go."""
        if self.outputs is not None:
            return
        notebook = Path(self.run.output_name)
        self.outputs = fetch_outputs(self.sftp(), self.run.remote_dir, self.run.out_dir, own=OWN_FILES,
                                     limit_mb=float(self.run.spec.outputs_mb),
                                     keep=frozenset({notebook.name, notebook.with_suffix(".html").name}),
                                     on_progress=lambda line: self.emit("FETCHING", message=line))


class _RestGate:
    """At most ``rate`` job reads per second across every follower thread of this process.

    A sweep follows each point in its own thread; without a shared budget 100 followers polling
    their jobs would exceed OpenPAI's 600 calls per minute per IP. A follower that gets no
    token simply keeps the job state it read last and asks again on its next turn.
    """

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.lock = threading.Lock()
        self.next = 0.0

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            if now < self.next:
                return False
            self.next = now + self.interval
            return True


_REST_GATE = _RestGate(REST_RATE)


def _ssh_errors() -> tuple[type[BaseException], ...]:
    """What a dropped task connection raises (paramiko loaded only once SSH is used)."""
    import paramiko

    return (OSError, EOFError, PaiError, paramiko.SSHException)


class _EndWatch:
    """While the notebook goes up, watch the job: if it ends (its task failed at once, was
    stopped), cut the SSH session so a blocked upload returns now instead of after a timeout.

    Why: a task that dies while we upload leaves paramiko waiting on a connection nobody
    answers; only the job's state tells that nothing will ever come.
    """

    def __init__(self, client: PaiClient, name: str, f: "_Follower", every: float = 1.0) -> None:
        self.client, self.name, self.f, self.every = client, name, f, every
        self.ended: JobDetail | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pai-nb-endwatch", daemon=True)

    def __enter__(self) -> "_EndWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while not self._done.wait(self.every):
            try:
                detail = _job_state(self.client, self.name)
            except PaiError:  # a refused token: the follower's own read reports it
                return
            if detail is not None and detail.terminal:
                self.ended = detail
                session = self.f.session
                if session is not None:
                    try:
                        session.close()
                    except Exception:  # closing a half-dead connection: it is going anyway
                        pass
                return


def _job_state(client: PaiClient, name: str) -> JobDetail | None:
    """The job's detail, or None on a passing fault (the next read tries again). A refused
    token never passes: raised, or a follow would wait for ever."""
    try:
        return client.get_job(name)
    except (AuthError, ForbiddenError):
        raise
    except PaiError:
        return None


def _task_running(detail: JobDetail) -> bool:
    return detail.state == "RUNNING" and any(t.state == "RUNNING" and t.container_ip for t in detail.tasks)


def follow_run(client: PaiClient, run: PreparedRun, *, on_progress: ProgressFn | None = None,
               stop: threading.Event | None = None, poll: float = 0.25,
               start_timeout: float | None = None, detach_when_running: bool = False) -> NotebookResult:
    """Upload, follow and fetch until the run ends; returns (and records) its result.

    ``detach_when_running``: return (state RUNNING) as soon as the notebook is uploaded and
    the runner started; ``notebook-result --wait`` (:func:`attach_run`) fetches it later.

    ``stop`` set by another thread: interrupt the kernel, fetch what ran, stop the job.
    ``start_timeout``: give up (and stop the job) if the task has not started by then; default
    the run's own (``NotebookRunSpec.start_timeout``; None waits as long as the cluster takes).
    """
    if start_timeout is None:
        start_timeout = run.spec.start_timeout
    f = _Follower(client, run, on_progress)
    full = f.full
    started = time.monotonic()
    run_deadline: float | None = None
    stop_asked: float | None = None
    job_stopped = False
    detail: JobDetail | None = None
    last_rest = 0.0
    unreachable_since: float | None = None
    wait_interval = 0.1
    final: str | None = None
    try:
        while True:
            now = time.monotonic()
            if run_deadline is not None and now > run_deadline and stop_asked is None:
                stop_asked = now  # the runner should have ended itself: a stuck kernel or task
            if stop is not None and stop.is_set() and stop_asked is None:
                stop_asked = now
            if stop_asked is not None:
                if f.session is not None:
                    try:
                        f.touch(task_runner.STOP_FILE)
                    except _ssh_errors():
                        f.close()
                if (now - stop_asked > STOP_GRACE or f.session is None or not f.uploaded) and not job_stopped:
                    _stop_quietly(client, run.name)
                    job_stopped = True
            if (f.session is None or now - last_rest >= REST_EVERY) and _REST_GATE.take():
                last_rest = now
                detail = _job_state(client, run.name) or detail
                if detail is not None and detail.terminal:
                    break
            if f.session is None:
                if detail is None or not _task_running(detail):
                    f.emit("WAITING" if detail is None or detail.state == "WAITING" else detail.state)
                    if start_timeout is not None and now - started > start_timeout and not job_stopped:
                        _stop_quietly(client, run.name)
                        job_stopped = True
                        final = "FAILED"
                        f.status = {"message": f"the task did not start within {start_timeout:g} s; "
                                               "the job was stopped"}
                        break
                    time.sleep(wait_interval)
                    wait_interval = min(5.0, wait_interval * 1.5)  # a task usually starts in a second or two
                    continue
                watch = _EndWatch(client, run.name, f)
                try:
                    with watch:
                        f.open()
                        if not f.uploaded:
                            f.upload()
                            if run.spec.timeout:
                                run_deadline = time.monotonic() + float(run.spec.timeout) + 60.0
                    unreachable_since = None
                except _ssh_errors() as exc:
                    f.close()
                    if watch.ended is not None:  # the job ended under us: its reason, not SSH's
                        detail = watch.ended
                        break
                    unreachable_since = unreachable_since or time.monotonic()
                    if time.monotonic() - unreachable_since > SSH_READY_TIMEOUT:
                        why = exc.message.rstrip(".") if isinstance(exc, PaiError) else (str(exc) or type(exc).__name__)
                        if not f.uploaded:  # nobody can ever feed this job: do not let it hold its GPU
                            _stop_quietly(client, run.name)
                            raise PaiError(f"Cannot reach the task of {full} over SSH ({why}), so the notebook "
                                           "could not be uploaded; the job was stopped.") from None
                        raise PaiError(f"Cannot reach the task of {full} over SSH ({why}); the job keeps "
                                       f"running: fetch it later with `pai-magic notebook-result {run.name} "
                                       "--wait`.") from None
                    time.sleep(1.0)
                    continue
            try:
                status = f.poll()
            except _ssh_errors():
                f.close()
                continue
            state = str(status.get("state") or "")
            if detach_when_running and state not in FINAL and f.uploaded:
                f.close()
                result = _result(run, full, "RUNNING", message=(
                    f"running, or ended and not fetched yet: `pai-magic notebook-result {run.name} --wait` "
                    f"follows it and fetches the executed notebook (the task keeps it {int(run.spec.linger)} s "
                    "after the run)"))
                return record(result)
            if state in FINAL:
                try:
                    f.bring_outputs()
                except _ssh_errors():
                    f.close()
                    continue  # reconnect, as for a poll: the runner waits for them to be fetched
                final = FINAL[state]
                if stop_asked is not None and not job_stopped:
                    _stop_quietly(client, run.name)  # a stop asked here ends the job STOPPED, not FAILED
                    job_stopped = True
                else:
                    try:
                        f.touch(task_runner.ACK_FILE)
                    except _ssh_errors():
                        pass
                break
            time.sleep(poll)
    finally:
        f.close()
    if final is None and (detail is None or not detail.terminal):
        detail = _settle(client, run.name, 30.0) or detail  # no word from the runner: the job's end says it
    return _finish(run, f, full, final, detail, stopped_here=stop_asked is not None)


def _stop_quietly(client: PaiClient, name: str) -> None:
    try:
        client.stop(name)
    except PaiError:
        pass


def _settle(client: PaiClient, name: str, timeout: float) -> JobDetail | None:
    from pai_magic.core.jobs import wait_for

    try:
        return wait_for(client, name, timeout=timeout, poll=1.0, first_poll=0.2)
    except PaiError:
        return None


def _finish(run: PreparedRun, f: _Follower, full: str, final: str | None, detail: JobDetail | None,
            stopped_here: bool) -> NotebookResult:
    status = f.status
    if final is None:
        job_state = detail.state if detail is not None else "UNKNOWN"
        final = {"SUCCEEDED": "SUCCEEDED", "STOPPED": "STOPPED"}.get(job_state, "FAILED")
        if stopped_here and final != "SUCCEEDED":
            final = "STOPPED"
    failed = status.get("failed_cell") if isinstance(status.get("failed_cell"), dict) else None
    message = str(status.get("message") or "")
    if final == "FAILED" and failed:
        message = (f"cell {failed.get('cell')} of {status.get('total')} failed: {failed.get('ename')}: "
                   f"{failed.get('evalue')}" + (f" (`{failed.get('source')}`)" if failed.get("source") else "")
                   + missing_file_hint(str(failed.get("ename") or "")))
    elif final == "TIMEOUT" and failed:
        limit = f"of {run.spec.timeout:g} s " if run.spec.timeout else ""
        message = (f"time limit {limit}reached in cell {failed.get('cell')} of {status.get('total')}"
                   + (f" (`{failed.get('source')}`)" if failed.get("source") else ""))
    elif final == "FAILED" and not message:
        diag = (task_reason(f.client, run.name, detail) if detail is not None and detail.terminal
                else (detail.diagnostics if detail is not None else "")) or ""
        when = "while the notebook ran (the cells that ran came back)" if f.notebook else "before the notebook ran"
        message = (f"the job ended {detail.state if detail else 'UNKNOWN'} {when}"
                   + (f" ({diag})" if diag else "") + f": see `pai-magic logs {run.name} --stderr`")
    elif final == "STOPPED":
        message = "the run was stopped" + ("; the cells that ran came back" if f.notebook else "")
    result = _result(run, full, final, notebook=str(f.notebook) if f.notebook else None, failed_cell=failed,
                     message=message)
    _add_outputs(result, f.outputs)
    if run.spec.html and f.notebook is not None:
        try:
            result.html = str(to_html(f.notebook))
        except PaiError as exc:
            result.message = (result.message + "; " if result.message else "") + exc.message
    record(result)
    f.emit(final, message="; ".join(m for m in (message, result.outputs_message) if m))
    return result


def _add_outputs(result: NotebookResult, outputs: OutputFiles | None) -> None:
    if outputs is not None:
        result.outputs = list(outputs.fetched)
        result.outputs_message = outputs.line()


def to_html(notebook: Path) -> Path:
    """The executed notebook as HTML next to it (nbconvert on this machine, not in the image)."""
    try:
        from nbconvert import HTMLExporter
    except ImportError:
        raise InvalidInputError("HTML output needs nbconvert on this machine: pip install nbconvert.") from None
    body, _ = HTMLExporter().from_filename(str(notebook))
    target = notebook.with_suffix(".html")
    target.write_text(body, encoding="utf-8")
    return target


def run_notebook(client: PaiClient, spec: NotebookRunSpec, *, on_progress: ProgressFn | None = None,
                 stop: threading.Event | None = None, poll: float = 0.25,
                 start_timeout: float | None = None) -> NotebookResult:
    """Prepare, submit once, follow and fetch: the whole run in one call (blocking)."""
    run = prepare_run(spec, ssh_key_path=client.profile.ssh_key)
    submit_run(client, run)
    return follow_run(client, run, on_progress=on_progress, stop=stop, poll=poll, start_timeout=start_timeout)


def attach_run(client: PaiClient, name: str) -> PreparedRun:
    """A run started elsewhere (or without waiting), to follow and fetch with :func:`follow_run`."""
    from pai_magic.core.client import split_job_name

    user, job = split_job_name(name, client.user)
    existing = find_result(f"{user}~{job}")
    try:  # one read first: an unknown job, a refused token or a dead cluster is an error now, not a wait
        client.get_job(job, user)
    except NotFoundError:
        raise NotFoundError(f"No job {user}~{job} on the cluster: check the name with `pai-magic jobs` "
                            "(notebook runs start with pai-nb-).") from None
    if user != client.user:  # its task holds the other user's SSH key, and the reads below name our jobs
        raise InvalidInputError(f"{user}~{job} is {user}'s run: only its owner can fetch it; see its state with "
                                f"`pai-magic job {user}~{job}`.")
    if existing is None and job_kind(job) != NOTEBOOK:
        raise InvalidInputError(f"{user}~{job} is not a notebook run: give a pai-nb-... job from "
                                "`pai-magic jobs`, or see its output with `pai-magic logs`.")
    if existing is not None:
        out_dir, notebook = Path(existing.out_dir), existing.input
    else:
        out_dir, notebook = Path("pai-runs").resolve() / job, f"{job}.ipynb"
    spec = NotebookRunSpec(notebook=notebook, image="-", parameters=dict(existing.parameters) if existing else {})
    return PreparedRun(spec=spec, name=job, protocol={}, notebook_json=b"", out_dir=out_dir,
                       output_name=Path(notebook).name, total_cells=0,
                       warnings=list(existing.warnings) if existing else [])


def stop_run(client: PaiClient, name: str, *, grace: float = STOP_GRACE) -> NotebookResult | None:
    """Stop a notebook run from anywhere: ask the runner to save, fetch the last state, stop the job.

    A run whose task cannot be reached is stopped right away (the last fetched snapshot stays).
    """
    from pai_magic.core.client import split_job_name

    user, job = split_job_name(name, client.user)
    existing = find_result(f"{user}~{job}")
    try:
        detail = client.get_job(job, user)
    except NotFoundError:
        raise
    if not detail.terminal and _task_running(detail) and existing is not None:
        f = _Follower(client, attach_run(client, f"{user}~{job}"), None)
        f.uploaded = True
        try:
            f.open()
            f.touch(task_runner.STOP_FILE)
            end = time.monotonic() + grace
            while time.monotonic() < end:
                if str(f.poll().get("state") or "") in FINAL:
                    break
                time.sleep(0.3)
            f.fetch()
            f.bring_outputs()
        except _ssh_errors():
            pass
        finally:
            f.close()
        if f.notebook is not None:
            existing.notebook = str(f.notebook)
        _add_outputs(existing, f.outputs)
    _stop_quietly(client, job)
    if existing is not None and not existing.terminal:
        existing.state = "STOPPED"
        existing.message = "the run was stopped"
        record(existing)
    return existing
