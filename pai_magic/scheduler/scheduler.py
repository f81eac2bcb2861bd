"""The Scheduler: jupyter-scheduler's own (database, staging, downloads) with OpenPAI execution.

Why subclass the default Scheduler rather than write one: its job records, staging and the
Notebook Jobs list are exactly right; only where a job runs and how it stops change. So this
class sets :class:`PaiExecutionManager`, adopts the environment manager (the dialog's images
and compute types), hands its configuration to the execution processes, and replaces Stop:
the default kills the execution process, which would lose what ran; here the process is
asked (a flag file) to stop the run itself, which fetches what ran, then stops the OpenPAI job.
A job whose process is gone (a server restart) has its OpenPAI job stopped directly.

Recurring jobs (a job definition with a cron schedule) use jupyter-scheduler's own task runner,
subclassed in :mod:`pai_magic.scheduler.recurring` so a tick fired by two servers on one
database still runs once: ``create_job`` claims a job's idempotency token atomically first.
Deleting a definition keeps its finished runs (records and outputs) as ordinary jobs; the
default deletes them with it, which would throw away results the GPUs already paid for.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from jupyter_scheduler.exceptions import IdempotencyTokenError, SchedulerError
from jupyter_scheduler.models import CreateJob, DescribeJob, Status
from jupyter_scheduler.orm import Job
from jupyter_scheduler.scheduler import Scheduler
from traitlets import Bool, Dict, Float, List, Type, Unicode

from pai_magic.scheduler.database import session_factory
from pai_magic.scheduler.environments import DEFAULT_IMAGES, PaiEnvironmentManager
from pai_magic.scheduler.recurring import claim, create_claims_table, forget_claims
from pai_magic.scheduler.settings import DEFAULT_COMPUTE_TYPES, JOB_FILE, STOP_FLAG, write_settings


class PaiScheduler(Scheduler):
    """Notebook Jobs on OpenPAI (enable: ``c.SchedulerApp.scheduler_class = "pai_magic.scheduler.PaiScheduler"``)."""

    execution_manager_class = Type(
        default_value="pai_magic.scheduler.executor.PaiExecutionManager",
        klass="jupyter_scheduler.executors.ExecutionManager", config=True,
        help="Runs each job on OpenPAI through pai_magic.core.notebook.")
    task_runner_class = Type(
        default_value="pai_magic.scheduler.recurring.PaiTaskRunner", allow_none=True,
        klass="jupyter_scheduler.task_runner.BaseTaskRunner", config=True,
        help="Creates the runs of scheduled job definitions (each tick once, whatever the servers).")
    profile = Unicode(None, allow_none=True, config=True,
                      help="pai_magic profile to use (default: PAI_PROFILE, PAI_URL, or the active one).")
    images = List(Unicode(), default_value=list(DEFAULT_IMAGES), config=True,
                  help="Images offered as environments; each needs Python, nbclient and ipykernel "
                       "(or set install_deps).")
    compute_types = Dict(default_value=dict(DEFAULT_COMPUTE_TYPES), config=True,
                         help="Compute type name -> {gpu, cpu, memory_mb}; the first is the default.")
    install_deps = Bool(False, config=True, help="pip-install nbclient and ipykernel in the task first.")
    python = Unicode(None, allow_none=True, config=True,
                     help="The images' Python when python3 is not on their PATH (e.g. /opt/conda/bin/python).")
    start_timeout = Float(1800.0, config=True,
                          help="Seconds a job may wait for its task to start before it is stopped and FAILED.")
    linger = Float(600.0, config=True, help="Seconds a finished task waits for its result to be fetched.")
    outputs_mb = Float(1024.0, config=True,
                       help="MB of files a notebook writes beside itself brought back per job (0: none); with "
                            "'Run job with input folder' they download with the executed notebook.")

    def __init__(self, root_dir: str, environments_manager: Any, db_url: str, config: Any = None,
                 **kwargs: Any) -> None:
        create_claims_table(db_url)  # before the task runner (built by the parent) can fire
        self._db_session = session_factory(db_url)  # before the parent hands it to the task runner
        super().__init__(root_dir=root_dir, environments_manager=environments_manager, db_url=db_url,
                         config=config, **kwargs)
        self._adopt(environments_manager)
        write_settings(self.staging_path, {
            "profile": self.profile, "compute_types": dict(self.compute_types), "install_deps": self.install_deps,
            "python": self.python,
            "start_timeout": self.start_timeout, "linger": self.linger, "outputs_mb": self.outputs_mb})

    def _adopt(self, manager: Any) -> None:
        """Make the app's environment manager answer with OpenPAI's images and compute types.

        SchedulerApp builds its environment manager before the scheduler and hands the same
        object to its REST handler; delegating that object's three methods to a
        :class:`PaiEnvironmentManager` is what lets one config line enable everything.
        """
        if isinstance(manager, PaiEnvironmentManager):
            manager.scheduler = self
            return
        ours = PaiEnvironmentManager(self)
        for name in ("list_environments", "manage_environments_command", "output_formats_mapping"):
            setattr(manager, name, getattr(ours, name))
        self._environments = ours

    def _staging_dir(self, job_id: str) -> str | None:
        with self.db_session() as session:
            record = session.query(Job).filter(Job.job_id == job_id).one()
            paths = self.get_staging_paths(DescribeJob.from_orm(record))
        return os.path.dirname(paths["input"]) if paths else None

    def create_job(self, model: CreateJob) -> str:
        """The parent's, once per idempotency token: the parent's own check (a query, then an
        insert) lets two servers firing the same tick both through; a claimed key does not."""
        _check_parameters(model.parameters)
        if model.idempotency_token and not claim(self.db_session, model.idempotency_token,
                                                 model.job_definition_id):
            raise IdempotencyTokenError(model.idempotency_token)
        return super().create_job(model)

    def create_job_definition(self, model: Any) -> str:
        _check_parameters(model.parameters)
        return super().create_job_definition(model)

    def update_job_definition(self, job_definition_id: str, model: Any) -> None:
        _check_parameters(getattr(model, "parameters", None))
        super().update_job_definition(job_definition_id, model)

    def delete_job_definition(self, job_definition_id: str) -> None:
        """Stop and delete the definition's unfinished runs, keep its finished ones (detached, as
        ordinary jobs with their outputs), then delete the definition and its schedule."""
        with self.db_session() as session:
            runs = [(r.job_id, Status(r.status), r.start_time)
                    for r in session.query(Job).filter(Job.job_definition_id == job_definition_id)]
        finished = [job_id for job_id, status, started in runs if _finished(status, started)]
        for job_id, status, started in runs:
            if not _finished(status, started):
                self.delete_job(job_id)
        if finished:
            self._detach(finished)
        super().delete_job_definition(job_definition_id)
        forget_claims(self.db_session, job_definition_id)

    def _detach(self, job_ids: list[str]) -> None:
        with self.db_session() as session:
            session.query(Job).filter(Job.job_id.in_(job_ids)).update(
                {"job_definition_id": None}, synchronize_session=False)
            session.commit()

    def stop_job(self, job_id: str) -> None:
        with self.db_session() as session:
            record = session.query(Job).filter(Job.job_id == job_id).one()
            status, pid = Status(record.status), record.pid
        if status not in (Status.IN_PROGRESS, Status.QUEUED, Status.CREATED):
            return
        staging = self._staging_dir(job_id)
        if staging is None:
            return
        self._set(job_id, status=Status.STOPPING)
        Path(staging, STOP_FLAG).touch()
        if pid and _alive(pid):
            return  # the execution process stops the run, fetches what ran, and marks the job
        threading.Thread(target=self._stop_orphan, args=(job_id, staging), daemon=True).start()

    def delete_job(self, job_id: str) -> None:
        """Deleting a running job also stops its OpenPAI job (the staging folder the run would
        report into is about to go, so nothing would be fetched anyway)."""
        with self.db_session() as session:
            record = session.query(Job).filter(Job.job_id == job_id).one()
            status = Status(record.status)
        staging = self._staging_dir(job_id)
        if staging and status in (Status.IN_PROGRESS, Status.QUEUED, Status.CREATED, Status.STOPPING):
            try:
                name = Path(staging, JOB_FILE).read_text(encoding="utf-8").strip()
                from pai_magic.core.client import PaiClient
                from pai_magic.core.profiles import load_profile

                with PaiClient(load_profile(self.profile)) as client:
                    client.stop(name)
            except Exception as exc:  # noqa: BLE001 - deleting the record must still work
                self.log.warning("pai_magic: could not stop the OpenPAI job of %s: %s", job_id, exc)
        super().delete_job(job_id)

    def _stop_orphan(self, job_id: str, staging: str) -> None:
        """No process follows this job any more: stop the OpenPAI job by its recorded name."""
        message = "stopped"
        try:
            name = Path(staging, JOB_FILE).read_text(encoding="utf-8").strip()
            from pai_magic.core.client import PaiClient
            from pai_magic.core.notebook.run import stop_run
            from pai_magic.core.profiles import load_profile

            with PaiClient(load_profile(self.profile)) as client:
                stop_run(client, name)
            message = f"OpenPAI job {name} stopped"
        except Exception as exc:  # noqa: BLE001 - the record must still leave STOPPING
            message = f"stopped; the OpenPAI job may still run ({type(exc).__name__}: {exc})"[:1000]
        self._set(job_id, status=Status.STOPPED, status_message=message)

    def _set(self, job_id: str, **fields: Any) -> None:
        with self.db_session() as session:
            session.query(Job).filter(Job.job_id == job_id).update(fields)
            session.commit()


def _check_parameters(parameters: dict[str, Any] | None) -> None:
    """The core's rule for parameter names, at create: the dialog shows the one line and no job
    or definition exists (jupyter-scheduler answers a SchedulerError with its message, as a 500)."""
    from pai_magic.core.errors import InvalidInputError
    from pai_magic.core.notebook.params import check_parameter_name

    for name in parameters or {}:
        try:
            check_parameter_name(name)
        except InvalidInputError as exc:
            raise SchedulerError(exc.message) from None


def _finished(status: Status, start_time: int | None) -> bool:
    """A run that ended; a new job reads STOPPED (no start time) until its process starts it."""
    return status in (Status.COMPLETED, Status.FAILED) or (status == Status.STOPPED and bool(start_time))


def _alive(pid: int) -> bool:
    try:
        import psutil

        proc = psutil.Process(pid)
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except Exception:  # noqa: BLE001 - psutil.NoSuchProcess and friends
        return False
