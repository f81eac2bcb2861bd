"""Sessions on the scheduler's database that wait out a lock instead of failing the job.

jupyter-scheduler opens its database with SQLAlchemy's defaults, which for SQLite means a
writer gives up after 5 s of "database is locked". One database is written by the server,
its task runner (every ``poll_interval``), and one process per running job (its progress
lines), and by every server sharing it; on a loaded 2-core machine a write can wait longer
than 5 s. A write that gives up there fails a job whose notebook runs fine on the cluster, or
leaves a finished job reading "in progress". So the scheduler and its execution processes
open the same database with a longer busy timeout. Other databases keep their driver's
settings.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

#: Seconds a SQLite write waits for another writer before it fails.
BUSY_TIMEOUT = 60.0


def engine_for(db_url: str) -> Any:
    """An engine on ``db_url``; for SQLite, one whose connections wait ``BUSY_TIMEOUT`` on a lock."""
    if make_url(db_url).get_backend_name() == "sqlite":
        return create_engine(db_url, connect_args={"timeout": BUSY_TIMEOUT})
    return create_engine(db_url)


def session_factory(db_url: str) -> Any:
    """What jupyter-scheduler's ``db_session`` holds (a sessionmaker), on :func:`engine_for`."""
    return sessionmaker(bind=engine_for(db_url))
