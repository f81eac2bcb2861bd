"""pai_magic's notebook runner: executes ONE notebook inside a job's task (uploaded as a file).

It runs with the image's own Python, so it imports nothing but the standard library until
the run starts; nbclient, nbformat and ipykernel must be in the image (``--install-deps``
pip-installs what is missing first). Everything the caller sees goes through files in the
working folder, written atomically (temporary file + rename), so a reader over SFTP never
sees half a file:

- ``status.json``: state (starting, installing, running, succeeded, failed, stopped,
  timeout, error), "cell i of n", the running cell's first line, the failed cell, a message.
- the executed notebook, rewritten after every cell (and every few seconds while a long cell
  prints), so whatever ran can be fetched while the job runs and survives a stop: the
  container's disk is gone once the job ends.
- ``.inputs.json``: the folder's files (size, mtime) before the kernel started; whatever is new
  or changed after it is the notebook's output, which the caller brings back.
- ``.stop`` (made by the caller): interrupt the kernel, save, end as stopped.
- ``.ack`` (made by the caller): the final notebook was fetched; the runner may exit. Without
  it the runner waits at most ``linger`` seconds, so nothing holds a GPU unwatched for long.

Exit codes: 0 succeeded, 1 a cell failed, 3 the image lacks what execution needs,
124 time limit, 130 stopped, 2 bad input.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from typing import Any

STATUS = "status.json"
STOP_FILE = ".stop"
ACK_FILE = ".ack"
INPUTS = ".inputs.json"  # the files of the folder before the kernel started: what is not the notebook's output
SKIP_DIRS = ("__pycache__", ".ipynb_checkpoints")
NEEDED = ("nbformat", "nbclient", "ipykernel")
EXIT = {"succeeded": 0, "failed": 1, "error": 2, "deps": 3, "timeout": 124, "stopped": 130}
SNAPSHOT_EVERY = 5.0


def write_atomic(path: str, data: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(data)
    os.replace(tmp, path)


def say(line: str) -> None:
    """A line in the job's log (what `pai-magic logs` shows)."""
    sys.stdout.write(f"[pai_magic] {line}\n")
    sys.stdout.flush()


class Run:
    def __init__(self, conf: dict[str, Any]) -> None:
        self.conf = conf
        self.out_dir = str(conf.get("output_dir") or ".")
        self.persist_dir = persist_dir(conf.get("persist"))
        self.output = os.path.join(self.out_dir, str(conf.get("output") or "executed.ipynb"))
        self.status_path = os.path.join(self.out_dir, STATUS)
        self.state: dict[str, Any] = {"state": "starting", "cell": 0, "total": 0, "seq": 0}
        self.lock = threading.RLock()
        self.nb: Any = None
        self.client: Any = None
        self.stopping = threading.Event()
        self.snap_outputs = -1

    # ---------------------------------------------------------------- files
    def status(self, **fields: Any) -> None:
        with self.lock:
            self.state.update(fields)
            self.state["seq"] = int(self.state.get("seq", 0)) + 1
            self.state["updated"] = time.time()
            if "exit" in fields:
                self.persist()  # the durable copy first: the caller may read it once it sees the end here
            write_atomic(self.status_path, json.dumps(self.state))

    def snapshot(self) -> None:
        """Write the notebook as executed so far (a retry covers a cell appending meanwhile)."""
        if self.nb is None:
            return
        with self.lock:
            for _ in range(5):
                try:
                    text = json.dumps(self.nb, ensure_ascii=False, indent=1)
                    break
                except RuntimeError:  # the kernel thread added an output while we serialised
                    time.sleep(0.01)
            else:
                return
            write_atomic(self.output, text + "\n")
            self.status(snapshots=int(self.state.get("snapshots", 0)) + 1)
            self.persist(text + "\n")

    def persist(self, notebook_text: str | None = None) -> None:
        """A durable copy on the job's storage: it outlives the container (best effort)."""
        if not self.persist_dir:
            return
        try:
            os.makedirs(self.persist_dir, exist_ok=True)
            if notebook_text is not None:
                write_atomic(os.path.join(self.persist_dir, str(self.conf.get("persist_name") or "executed.ipynb")),
                             notebook_text)
            with self.lock:
                write_atomic(os.path.join(self.persist_dir, STATUS), json.dumps(self.state))
        except OSError as exc:
            say(f"could not write to the storage folder {self.persist_dir}: {exc}")
            self.persist_dir = None

    # ---------------------------------------------------------------- deps
    def ensure_deps(self) -> bool:
        missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
        if not missing:
            return True
        if self.conf.get("install_deps"):
            self.status(state="installing", message=f"installing {' '.join(missing)} with pip")
            say(f"installing {' '.join(missing)} with {sys.executable} -m pip")
            rc = subprocess.call([sys.executable, "-m", "pip", "install", "--quiet", *missing],
                                 stdout=sys.stderr)
            importlib.invalidate_caches()
            missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
            if rc == 0 and not missing:
                return True
            self.status(state="error", exit="deps",
                        message=f"pip could not install {' '.join(missing) or 'nbclient ipykernel'} in the image "
                                f"(exit {rc}): build an image with `pip install nbclient ipykernel`.")
            return False
        self.status(state="error", exit="deps",
                    message=f"The image's Python ({sys.executable}) lacks {', '.join(missing)}: add "
                            "`pip install nbclient ipykernel` to the image, or run again with --install-deps.")
        return False

    # ---------------------------------------------------------------- stop
    def _kernel_pid(self) -> int | None:
        km = getattr(self.client, "km", None)
        prov = getattr(km, "provisioner", None)
        pid = getattr(prov, "pid", None) or getattr(getattr(prov, "process", None), "pid", None)
        return int(pid) if pid else None

    def request_stop(self) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        pid = self._kernel_pid()
        if pid:
            try:
                os.kill(pid, signal.SIGINT)
            except OSError:
                pass

    def watch(self) -> None:
        """Thread: a stop asked through ``.stop``, and snapshots while a long cell prints."""
        last = time.monotonic()
        while True:
            time.sleep(0.3)
            if os.path.exists(os.path.join(self.out_dir, STOP_FILE)):
                self.request_stop()
            if self.nb is not None and time.monotonic() - last >= SNAPSHOT_EVERY:
                last = time.monotonic()
                outputs = sum(len(c.get("outputs", [])) for c in self.nb.get("cells", []))
                if outputs != self.snap_outputs:
                    self.snap_outputs = outputs
                    try:
                        self.snapshot()
                    except OSError:
                        pass

    def on_sigterm(self, signum: int, frame: Any) -> None:
        """The job is being stopped from elsewhere: save what ran, then go (the container ends)."""
        try:
            self.snapshot()
            self.status(state="stopped", exit="stopped", message="the job was stopped")
        finally:
            pid = self._kernel_pid()
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            os._exit(EXIT["stopped"])

    # ---------------------------------------------------------------- run
    def execute(self) -> str:
        # jsonschema (under nbformat) imports rfc3987_syntax when installed, which compiles
        # grammars for 1-2 s; nothing here validates IRIs, so hide it (a fresh process).
        sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
        import nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

        self.nb = nbformat.read(str(self.conf["notebook"]), as_version=4)
        codes = [i for i, c in enumerate(self.nb.cells) if c.get("cell_type") == "code"]
        timeout = self.conf.get("timeout")
        deadline = None if not timeout else time.monotonic() + float(timeout)
        self.client = NotebookClient(self.nb, timeout=None, kernel_name=str(self.conf.get("kernel") or "python3"),
                                     allow_errors=False, record_timing=True,
                                     resources={"metadata": {"path": os.getcwd()}})
        self.status(state="running", total=len(codes), cell=0, message="starting the kernel")
        outcome = "succeeded"
        with self.client.setup_kernel():
            for n, idx in enumerate(codes, 1):
                cell = self.nb.cells[idx]
                first = next((ln for ln in str(cell.get("source", "")).splitlines() if ln.strip()), "")[:120]
                if self.stopping.is_set():
                    outcome = "stopped"
                    break
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        outcome = "timeout"
                        break
                    self.client.timeout = max(1, int(math.ceil(left)))
                self.status(state="running", cell=n, index=idx, source=first, message="")
                say(f"cell {n} of {len(codes)}: {first}")
                try:
                    self.client.execute_cell(cell, idx)
                except CellTimeoutError:
                    cell.setdefault("outputs", []).append(nbformat.v4.new_output(
                        "error", ename="TimeoutError", evalue=f"the run's time limit of {timeout} s was reached "
                        "in this cell (pai_magic --timeout)", traceback=[]))
                    outcome = "timeout"
                    self.state["failed_cell"] = {"cell": n, "index": idx, "ename": "TimeoutError",
                                                 "evalue": f"time limit of {timeout} s", "source": first}
                except (CellExecutionError, DeadKernelError) as exc:
                    if self.stopping.is_set():
                        outcome = "stopped"
                    else:
                        outcome = "failed"
                        ename = str(getattr(exc, "ename", type(exc).__name__))
                        evalue = str(getattr(exc, "evalue", "") or str(exc).strip().splitlines()[-1:] or "")
                        self.state["failed_cell"] = {"cell": n, "index": idx, "ename": ename,
                                                     "evalue": evalue[:300], "source": first}
                finally:
                    self.snapshot()
                if outcome != "succeeded":
                    break
        self.nb.metadata.setdefault("pai_magic", {})["outcome"] = outcome
        self.snapshot()
        return outcome

    def linger(self) -> None:
        """Keep the task (and its files) until the caller fetched the result, or ``linger`` s."""
        end = time.monotonic() + float(self.conf.get("linger", 600))
        ack = os.path.join(self.out_dir, ACK_FILE)
        while time.monotonic() < end and not os.path.exists(ack):
            time.sleep(0.2)
        if self.conf.get("cleanup") and os.path.exists(ack):
            for name in (self.output, str(self.conf["notebook"])):
                try:
                    os.unlink(name)
                except OSError:
                    pass


def folder_files(root: str) -> dict[str, list[int]]:
    """``{relative path: [size, mtime_ns]}`` of the regular files under ``root`` (no links followed)."""
    found: dict[str, list[int]] = {}
    for here, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for name in files:
            path = os.path.join(here, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                found[os.path.relpath(path, root).replace(os.sep, "/")] = [st.st_size, st.st_mtime_ns]
    return found


def persist_dir(spec: Any) -> str | None:
    """``{storage, mount, folder}`` -> the folder on the storage as this task sees it: where
    ``$PAI_STORAGE_<NAME>_PATH`` says (the embedded backend), else at its mount path (a cluster)."""
    if not isinstance(spec, dict) or not spec.get("storage"):
        return None
    env = "PAI_STORAGE_" + "".join(c if c.isalnum() else "_" for c in str(spec["storage"])).upper() + "_PATH"
    # the embedded backend always sets the variable; its mount path may belong to another backend
    mount = os.environ.get(env) or str(spec.get("mount") or f"/mnt/{spec['storage']}")
    return os.path.join(mount, str(spec.get("folder") or "pai-nb-runs"))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: pai_nb_runner.py run.json\n")
        return EXIT["error"]
    with open(argv[1], encoding="utf-8") as fh:
        conf = json.load(fh)
    run = Run(conf)
    os.makedirs(run.out_dir, exist_ok=True)
    signal.signal(signal.SIGTERM, run.on_sigterm)
    threading.Thread(target=run.watch, name="pai-nb-watch", daemon=True).start()
    exit_key = "error"
    try:
        if not run.ensure_deps():
            exit_key = "deps"
            say(str(run.state.get("message")))
        else:
            # what is here now was sent in; anything new or changed afterwards is the notebook's output
            write_atomic(os.path.join(run.out_dir, INPUTS), json.dumps(folder_files(run.out_dir)))
            outcome = run.execute()
            exit_key = outcome
            failed = run.state.get("failed_cell") or {}
            message = {"succeeded": "the notebook ran to the end",
                       "failed": f"cell {failed.get('cell')} failed: {failed.get('ename')}: {failed.get('evalue')}",
                       "stopped": "the run was stopped", "timeout": f"time limit of {conf.get('timeout')} s reached",
                       }.get(outcome, outcome)
            run.status(state=outcome, exit=outcome, message=message)
            say(message)
    except Exception as exc:  # noqa: BLE001 - the caller must read why, not find a silent task
        run.snapshot() if run.nb is not None else None
        run.status(state="error", exit="error", message=f"the runner failed: {type(exc).__name__}: {exc}")
        say(f"the runner failed: {type(exc).__name__}: {exc}")
    run.linger()
    return EXIT.get(exit_key, 2)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
