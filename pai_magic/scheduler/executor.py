"""The ExecutionManager: one Notebook Job = one pai_magic notebook run on OpenPAI.

jupyter-scheduler runs ``process()`` in a spawned process per job (IN_PROGRESS, ``execute``,
then COMPLETED or FAILED). ``execute`` prepares the run from the staged input (parameters
from the dialog, read as papermill reads them), submits it once, writes the OpenPAI job name
beside the input (so Stop can find it), follows it with progress in the job's status message,
and copies the executed notebook (and HTML) to the staging paths the scheduler downloads
from; for a job run with its input folder, the files the notebook wrote go into the staging
folder and ``packaged_files`` too, so they download beside it (jupyter-scheduler's own rule).
A stop asked through the scheduler arrives as a flag file: the run interrupts the kernel,
fetches what ran and stops the OpenPAI job; the job then reads STOPPED. Anything that goes
wrong after the submit stops the OpenPAI job, so nothing keeps a GPU for nobody.
A warning of the core about the run (parameters put at the top of a notebook with no cell
tagged ``parameters``) ends the job's final status message, once, whatever the outcome: that
is the line the Notebook Jobs list keeps. A parameter name the core refuses is refused when the
job is created (:mod:`.scheduler`); one that reaches a run anyway (a definition stored before)
fails the job before anything is submitted.
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any, Dict

from jupyter_scheduler.executors import ExecutionManager
from jupyter_scheduler.models import JobFeature, Status
from jupyter_scheduler.orm import Job
from jupyter_scheduler.utils import get_utc_timestamp

from pai_magic.scheduler.database import BUSY_TIMEOUT, session_factory
from pai_magic.scheduler.settings import DEFAULT_COMPUTE_TYPES, JOB_FILE, STOP_FLAG, read_settings

log = logging.getLogger(__name__)


class PaiExecutionManager(ExecutionManager):
    """Runs the staged notebook on OpenPAI and brings the executed copy into the staging area."""

    stopped = False
    _db_session: Any = None

    @property
    def db_session(self) -> Any:
        """The parent's session factory, patient with a locked SQLite (see :mod:`.database`)."""
        if self._db_session is None:
            self._db_session = session_factory(self.db_url)
        return self._db_session

    def _update(self, **fields: Any) -> None:
        with self.db_session() as session:
            session.query(Job).filter(Job.job_id == self.job_id).update(fields)
            session.commit()

    def execute(self) -> None:
        from pai_magic.core.client import PaiClient
        from pai_magic.core.notebook import NotebookRunSpec, parse_value
        from pai_magic.core.notebook.run import follow_run, prepare_run, submit_run
        from pai_magic.core.profiles import load_profile

        job = self.model
        staging_dir = os.path.dirname(self.staging_paths["input"])
        settings = read_settings(staging_dir)
        types = settings.get("compute_types") or DEFAULT_COMPUTE_TYPES
        compute = types.get(job.compute_type or "", None) or next(iter(types.values()))
        client = PaiClient(load_profile(settings.get("profile")))
        params = {k: parse_value(v) if isinstance(v, str) else v for k, v in (job.parameters or {}).items()}
        # "Run job with input folder": jupyter-scheduler copied the folder into staging; the task gets it too
        files = [os.path.join(staging_dir, f) for f in (job.packaged_files or [])] if job.package_input_folder else []
        spec = NotebookRunSpec(notebook=self.staging_paths["input"], image=job.runtime_environment_name,
                               parameters=params, gpu=int(compute.get("gpu", 0)), cpu=int(compute.get("cpu", 1)),
                               memory_mb=int(compute.get("memory_mb", 4096)),
                               virtual_cluster=client.profile.virtual_cluster,
                               html="html" in (job.output_formats or []),
                               install_deps=bool(settings.get("install_deps", False)),
                               out_root=os.path.join(staging_dir, "pai-runs"), name=Path(job.input_filename).stem,
                               linger=float(settings.get("linger", 600)), python=settings.get("python") or None,
                               files=files,
                               # as jupyter-scheduler's own runs: side files download only with the input folder
                               outputs_mb=float(settings.get("outputs_mb", 1024.0)) if job.package_input_folder else 0)
        run = prepare_run(spec, ssh_key_path=client.profile.ssh_key)
        for warning in run.warnings:
            log.warning("pai_magic: job %s: %s", self.job_id, warning)
        full = submit_run(client, run)
        stop = threading.Event()
        flag = os.path.join(staging_dir, STOP_FLAG)
        done = threading.Event()
        wake = threading.Event()
        # the newest progress line not yet in the job's row: a line, not a write that could fail the run
        pending: list[str] = [f"OpenPAI job {full}: submitted"]
        pending_lock = threading.Lock()

        def write_pending() -> None:
            """Write the newest line; on failure keep it for the next turn. Why: the runner's
            status changes only when a cell starts, so a line lost to one failed write (the
            scheduler's sqlite busy beyond its timeout on a loaded machine) never comes again
            and "cell 2 of 2" of a cell running for hours would read "starting the kernel"."""
            with pending_lock:
                if not pending:
                    return
                line = pending[-1]
            try:
                self._update(status_message=line)
            except Exception as exc:  # noqa: BLE001 - progress is best effort; it is retried, the run goes on
                log.debug("pai_magic: progress of job %s not written yet: %s", self.job_id, exc)
                return
            with pending_lock:
                if pending and pending[-1] == line:
                    pending.clear()

        def report() -> None:
            """Thread: the stop flag, and the progress writes (off the follower's loop, which a
            locked database would otherwise block for seconds)."""
            while not done.is_set():
                if os.path.exists(flag):
                    stop.set()
                write_pending()
                wake.wait(0.3)
                wake.clear()
            write_pending()

        reporter = threading.Thread(target=report, name="pai-nb-progress", daemon=True)

        def progress(p: Any) -> None:
            # called only when the line changed (at most once per poll): no throttling, which
            # would drop the last change ("cell 2 of 2") of a cell that then runs for hours
            with pending_lock:
                pending[:] = [f"OpenPAI {p.line()}"[:1000]]
            wake.set()

        try:
            Path(staging_dir, JOB_FILE).write_text(full, encoding="utf-8")  # how Stop finds the job
            reporter.start()
            result = follow_run(client, run, on_progress=progress, stop=stop,
                                start_timeout=settings.get("start_timeout"))
        except BaseException:
            try:
                client.stop(run.name)  # a run we cannot follow must not keep its GPU
            except Exception:  # noqa: BLE001
                pass
            raise
        finally:
            done.set()
            wake.set()
            if reporter.is_alive():
                # its last write (which waits for a locked database as long as any) must not land
                # after the job's final status
                reporter.join(timeout=BUSY_TIMEOUT + 5)
        self._collect(result, job)
        outputs = result.outputs_message.replace("(--outputs-mb)", "(c.PaiScheduler.outputs_mb)")
        warned = "".join(f"; warning: {w}" for w in run.warnings) + (f"; {outputs}" if outputs else "")
        if result.state == "SUCCEEDED":
            if warned:
                self._update(status_message=f"OpenPAI job {full} succeeded{warned}"[:2000])
            return
        if result.state == "STOPPED" and stop.is_set():
            self.stopped = True
            self._message = f"OpenPAI job {full} stopped; {result.message}{warned}"
            return
        from pai_magic.core.notebook.files import SEND_FILES_FIX

        fix = "set c.PaiScheduler.install_deps = True in the server's config"
        message = result.message.replace("run again with --install-deps", fix).replace(
            SEND_FILES_FIX, "create the job with 'Run job with input folder' ticked, the files in the notebook's folder")
        raise RuntimeError(f"OpenPAI job {full} {result.state}: {message}{warned}")

    def _collect(self, result: Any, job: Any) -> None:
        """Copy what came back to the staging paths the Notebook Jobs list downloads from."""
        if result.outputs and job.package_input_folder:
            self._stage_outputs(result)
        if not result.notebook:
            return
        if "ipynb" in (job.output_formats or []):
            shutil.copyfile(result.notebook, self.staging_paths["ipynb"])
        if "html" in (job.output_formats or []):
            if result.html:
                shutil.copyfile(result.html, self.staging_paths["html"])
            else:
                from pai_magic.core.notebook.run import to_html

                shutil.copyfile(to_html(Path(result.notebook)), self.staging_paths["html"])

    def _stage_outputs(self, result: Any) -> None:
        """The files the notebook wrote, where jupyter-scheduler's own runs leave theirs: in the
        job's staging folder at their relative paths, listed in ``packaged_files``, so "Download
        job files" brings them beside the executed notebook (for jobs run with their input folder,
        as jupyter-scheduler does)."""
        staging_dir = os.path.dirname(self.staging_paths["input"])
        moved = []
        for rel in result.outputs:
            source, target = Path(result.out_dir, rel), Path(staging_dir, rel)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, target)
            except OSError as exc:
                log.warning("pai_magic: job %s: %s stays in %s: %s", self.job_id, rel, result.out_dir, exc)
                continue
            moved.append(rel)
        if moved:
            with self.db_session() as session:
                record = session.query(Job).filter(Job.job_id == self.job_id).one()
                record.packaged_files = sorted(set(record.packaged_files or []) | set(moved))
                session.commit()

    def on_complete(self) -> None:
        if self.stopped:
            self._update(status=Status.STOPPED, status_message=getattr(self, "_message", "stopped"),
                         end_time=get_utc_timestamp())
            return
        super().on_complete()

    def supported_features(cls) -> Dict[JobFeature, bool]:
        # called as cls.supported_features(cls) by jupyter-scheduler, like its own managers
        return {
            JobFeature.job_name: True,
            JobFeature.output_formats: True,
            JobFeature.job_definition: True,
            JobFeature.idempotency_token: False,
            JobFeature.tags: False,
            JobFeature.email_notifications: False,
            JobFeature.timeout_seconds: False,
            JobFeature.retry_on_timeout: False,
            JobFeature.max_retries: False,
            JobFeature.min_retry_interval_millis: False,
            JobFeature.output_filename_template: False,
            JobFeature.stop_job: True,
            JobFeature.delete_job: True,
        }

    def validate(cls, input_path: str) -> bool:
        # called as cls.validate(cls, path) by jupyter-scheduler's create_job
        """Any notebook: the image's python3 kernel runs it, whatever kernel it was saved with."""
        return True
