"""The scheduler's database sessions wait out a SQLite lock longer than SQLAlchemy's 5 s default:
a status write from a job's process must not fail the job because another process was writing.
A real SQLite file, locked by a second connection as another server would lock it."""
from __future__ import annotations

import sqlite3
import threading
import time

from tests.notebook.conftest import need_scheduler

HELD = 6.0  # longer than the 5 s the driver waits by default


def test_a_write_waits_for_a_writer_that_holds_the_database_longer_than_the_default(tmp_path):
    need_scheduler()
    from jupyter_scheduler.orm import Job, create_tables

    from pai_magic.scheduler.database import session_factory

    db = tmp_path / "scheduler.sqlite"
    create_tables(f"sqlite:///{db}")
    Session = session_factory(f"sqlite:///{db}")
    with Session() as session:
        session.add(Job(job_id="j1", name="n", input_filename="a.ipynb", runtime_environment_name="e",
                        status="IN_PROGRESS"))
        session.commit()

    holder = sqlite3.connect(db, timeout=0, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    released = threading.Timer(HELD, holder.rollback)
    released.start()
    began = time.monotonic()
    try:
        with Session() as session:
            session.query(Job).filter(Job.job_id == "j1").update({"status_message": "written"})
            session.commit()
    finally:
        released.join()
        holder.close()
    assert time.monotonic() - began >= HELD - 0.5  # it did wait for the lock, and then wrote
    with Session() as session:
        assert session.query(Job).filter(Job.job_id == "j1").one().status_message == "written"
