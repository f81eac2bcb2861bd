"""Recurring Notebook Jobs (job definitions with a cron schedule): each tick runs once.

jupyter-scheduler's TaskRunner keeps each scheduled definition's next run time in memory and,
every ``TaskRunner.poll_interval`` seconds (default 10), creates a job for each definition
whose time has come. That memory belongs to one server process: two servers on one scheduler
database (two JupyterLabs of one person, an old server still running beside its restarted
successor) each load the definitions and each fire the same tick, and every run is an OpenPAI
job holding GPUs. So every run a tick creates carries a token naming the definition and the
tick, and :class:`~pai_magic.scheduler.PaiScheduler` claims the token in the scheduler's
database (a primary key: atomic across processes) before it creates or submits anything; the
second claim of a tick fails and that server creates nothing.

Each runner also checks a due tick against the definition as the database holds it now: a
schedule changed through another server (whose runner alone hears of the change) must not go
on firing here at the old times.

What stays jupyter-scheduler's design: a tick that passes while no server runs is skipped,
not caught up (a starting runner computes the next run time from now); a definition created
through one server is fired only by the servers started after it (the others learn of it when
they restart); the task runner's memory is not shared.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

import pytz
from croniter import croniter
from jupyter_scheduler.exceptions import IdempotencyTokenError
from jupyter_scheduler.models import CreateJob
from jupyter_scheduler.task_runner import TaskRunner, UpdateJobDefinitionCache
from jupyter_scheduler.utils import get_utc_timestamp
from sqlalchemy import Column, Integer, MetaData, String, Table
from sqlalchemy.exc import IntegrityError, NoResultFound, OperationalError

from pai_magic.scheduler.database import engine_for

TOKEN_PREFIX = "pai-magic-tick:"

_metadata = MetaData()
#: One row per run token ever claimed; a second insert of the same token is refused.
CLAIMS = Table("pai_magic_run_claims", _metadata,
               Column("token", String(256), primary_key=True),
               Column("job_definition_id", String(36), index=True),
               Column("claim_time", Integer, nullable=False))


def tick_token(job_definition_id: str, run_time_ms: int) -> str:
    """The idempotency token of a definition's run for one scheduled time (ms since the epoch)."""
    return f"{TOKEN_PREFIX}{job_definition_id}@{int(run_time_ms)}"


def on_schedule(schedule: str | None, tz: str | None, run_time_ms: int) -> bool:
    """Whether ``run_time_ms`` is a time of ``schedule`` (cron) read in ``tz`` (UTC by default)."""
    if not schedule:
        return False
    zone = pytz.timezone(tz) if tz else timezone.utc
    return bool(croniter.match(schedule, datetime.fromtimestamp(run_time_ms / 1000, tz=zone)))


def create_claims_table(db_url: str) -> None:
    """Create the claims table beside jupyter-scheduler's tables (no-op when it exists)."""
    engine = engine_for(db_url)
    try:
        _metadata.create_all(engine)
    except OperationalError:
        # another server created it between the check and the create: fine if it is there now
        _metadata.create_all(engine)
    finally:
        engine.dispose()


def claim(db_session: Callable[[], Any], token: str, job_definition_id: str | None) -> bool:
    """True for the first caller with ``token`` (in any process on this database), else False."""
    with db_session() as session:
        try:
            session.execute(CLAIMS.insert().values(token=token, job_definition_id=job_definition_id,
                                                   claim_time=get_utc_timestamp()))
            session.commit()
        except IntegrityError:
            session.rollback()
            return False
    return True


def forget_claims(db_session: Callable[[], Any], job_definition_id: str) -> None:
    """Drop a deleted definition's claims (its ids are never reused, so they guard nothing)."""
    with db_session() as session:
        session.execute(CLAIMS.delete().where(CLAIMS.c.job_definition_id == job_definition_id))
        session.commit()


class PaiTaskRunner(TaskRunner):
    """jupyter-scheduler's TaskRunner whose runs carry their tick's token.

    ``process_queue`` calls ``create_job`` only when the cached next run time equals the queued
    one, and updates the cache after it, so the cache holds the tick being fired here.
    """

    def create_job(self, job_definition_id: str) -> None:
        cached = self.cache.get(job_definition_id)
        try:
            definition = self.scheduler.get_job_definition(job_definition_id)
        except NoResultFound:
            # deleted through another server on this database: this runner still had it cached
            self.cache.delete(job_definition_id)
            return
        if not definition.active:
            return
        run_time = cached.next_run_time if cached else get_utc_timestamp()
        if cached and (cached.schedule, cached.timezone) != (definition.schedule, definition.timezone):
            # changed through another server: follow the database from now on
            self.cache.update(job_definition_id, UpdateJobDefinitionCache(
                schedule=definition.schedule, timezone=definition.timezone))
        if not on_schedule(definition.schedule, definition.timezone, run_time):
            self.log.info("pai_magic: job definition %s is no longer scheduled for %s (changed through another "
                          "server); not running it", job_definition_id, run_time)
            return
        token = tick_token(job_definition_id, run_time)
        input_uri = self.scheduler.get_staging_paths(definition)["input"]
        try:
            self.scheduler.create_job(CreateJob(
                **definition.dict(exclude={"schedule", "timezone"}, exclude_none=True),
                input_uri=input_uri, idempotency_token=token))
        except IdempotencyTokenError:
            self.log.info("pai_magic: the run of job definition %s for %s was created by another server "
                          "on this database; not creating it again", job_definition_id, run_time)
