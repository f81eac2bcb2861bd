"""The embedded backend's state: one sqlite database in the data directory.

Why sqlite: the backend must survive a restart (jobs are never lost), list 10,000 jobs a
page at a time as fast as 100 (indexed ORDER BY ... LIMIT), and let a test or a benchmark
seed many finished jobs without going through the runner. One connection is shared by the
HTTP thread and the task monitor threads behind one lock; WAL mode lets another process
(a seeding test) write while the server reads.

Secrets never reach this file: job configs are stored with ``secrets`` masked, passwords
as scrypt hashes, tokens as the signed strings the server already handed out (needed for
revocation, as the real rest-server keeps them in a Kubernetes secret).
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    admin INTEGER NOT NULL DEFAULT 0,
    email TEXT NOT NULL DEFAULT '',
    extension TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS tokens (
    token TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    application INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    expires REAL
);
CREATE INDEX IF NOT EXISTS tokens_user ON tokens(username);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,            -- framework name: user~job
    job_name TEXT NOT NULL,
    username TEXT NOT NULL,
    vc TEXT NOT NULL,
    state TEXT NOT NULL,
    execution_type TEXT NOT NULL DEFAULT 'START',
    submission_time INTEGER NOT NULL,      -- epoch ms
    created_time INTEGER,
    launched_time INTEGER,
    completed_time INTEGER,
    app_exit_code INTEGER,
    diagnostics TEXT,
    trigger TEXT,                          -- json: message, taskRoleName, taskIndex
    retries INTEGER NOT NULL DEFAULT 0,
    attempt_id INTEGER NOT NULL DEFAULT 0,
    attempt_created INTEGER,
    attempt_launched INTEGER,
    attempt_completed INTEGER,
    total_gpu INTEGER NOT NULL DEFAULT 0,
    total_tasks INTEGER NOT NULL DEFAULT 0,
    total_roles INTEGER NOT NULL DEFAULT 0,
    config_masked TEXT NOT NULL DEFAULT '{}',  -- json of the submitted job, secrets masked
    run_spec TEXT NOT NULL DEFAULT '{}'        -- json the runner needs (commands, keys, storages)
);
CREATE INDEX IF NOT EXISTS jobs_sub ON jobs(submission_time, seq);
CREATE INDEX IF NOT EXISTS jobs_user_sub ON jobs(username, submission_time, seq);
CREATE INDEX IF NOT EXISTS jobs_state_sub ON jobs(state, submission_time, seq);
CREATE INDEX IF NOT EXISTS jobs_vc_sub ON jobs(vc, submission_time, seq);
CREATE TABLE IF NOT EXISTS tasks (
    job TEXT NOT NULL,
    role TEXT NOT NULL,
    idx INTEGER NOT NULL,
    uid TEXT NOT NULL,
    state TEXT NOT NULL,
    attempt_id INTEGER NOT NULL DEFAULT 0,
    retries INTEGER NOT NULL DEFAULT 0,
    pid INTEGER,
    ports TEXT NOT NULL DEFAULT '{}',
    container_ip TEXT,
    exit_code INTEGER,
    diagnostics TEXT,
    created_time INTEGER,
    launched_time INTEGER,
    completed_time INTEGER,
    attempts TEXT NOT NULL DEFAULT '[]',    -- json list of finished task attempts
    PRIMARY KEY (job, role, idx)
);
CREATE TABLE IF NOT EXISTS history (
    job TEXT NOT NULL,
    attempt_id INTEGER NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (job, attempt_id)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL,
    uid TEXT NOT NULL,
    role TEXT NOT NULL,
    idx INTEGER NOT NULL,
    type TEXT NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    ts INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_job ON events(job, ts);
"""

ACTIVE_STATES = ("WAITING", "RUNNING", "STOPPING")


def now_ms() -> int:
    return int(time.time() * 1000)


class Store:
    """Thread-safe access to the backend database (one connection, one lock)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30,
                                   isolation_level=None)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        try:
            self.path.chmod(0o600)
        except OSError:
            pass

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- low level -------------------------------------------------------------------------
    def execute(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, tuple(params))

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    def one(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchone()

    def transaction(self) -> "_Tx":
        return _Tx(self)

    # -- users -----------------------------------------------------------------------------
    def get_user(self, username: str) -> dict[str, Any] | None:
        row = self.one("SELECT * FROM users WHERE username=?", (username,))
        if row is None:
            return None
        user = dict(row)
        user["extension"] = json.loads(user["extension"] or "{}")
        user["admin"] = bool(user["admin"])
        return user

    def put_user(self, username: str, password_hash: str, *, admin: bool = False,
                 email: str = "", extension: dict[str, Any] | None = None) -> None:
        self.execute(
            "INSERT INTO users(username, password_hash, admin, email, extension) VALUES (?,?,?,?,?) "
            "ON CONFLICT(username) DO UPDATE SET password_hash=excluded.password_hash, admin=excluded.admin",
            (username, password_hash, int(admin), email, json.dumps(extension or {})))

    def update_user(self, username: str, **fields: Any) -> None:
        if "extension" in fields:
            fields["extension"] = json.dumps(fields["extension"])
        if not fields:
            return
        cols = ", ".join(f"{k}=?" for k in fields)
        self.execute(f"UPDATE users SET {cols} WHERE username=?", [*fields.values(), username])

    def delete_user(self, username: str) -> None:
        """The user and every token issued to them (a deleted user's token stops working)."""
        with self.transaction() as tx:
            tx.execute("DELETE FROM tokens WHERE username=?", (username,))
            tx.execute("DELETE FROM users WHERE username=?", (username,))

    # -- tokens ----------------------------------------------------------------------------
    def add_token(self, token: str, username: str, application: bool, expires: float | None) -> None:
        self.execute("INSERT INTO tokens(token, username, application, created, expires) VALUES (?,?,?,?,?)",
                     (token, username, int(application), time.time(), expires))

    def has_token(self, token: str) -> bool:
        return self.one("SELECT 1 FROM tokens WHERE token=?", (token,)) is not None

    def list_tokens(self, username: str) -> list[str]:
        self.execute("DELETE FROM tokens WHERE expires IS NOT NULL AND expires < ?", (time.time(),))
        return [r["token"] for r in self.query("SELECT token FROM tokens WHERE username=? ORDER BY created",
                                               (username,))]

    def revoke_token(self, token: str) -> None:
        self.execute("DELETE FROM tokens WHERE token=?", (token,))

    def revoke_browser_tokens(self, username: str) -> None:
        self.execute("DELETE FROM tokens WHERE username=? AND application=0", (username,))

    # -- jobs ------------------------------------------------------------------------------
    def get_job(self, name: str) -> dict[str, Any] | None:
        row = self.one("SELECT * FROM jobs WHERE name=?", (name,))
        return dict(row) if row is not None else None

    def job_exists(self, name: str) -> bool:
        return self.one("SELECT 1 FROM jobs WHERE name=?", (name,)) is not None

    def insert_job(self, job: dict[str, Any], tasks: list[dict[str, Any]]) -> bool:
        """Insert a job and its tasks atomically; False when the name is taken (409)."""
        with self.transaction() as tx:
            try:
                cols = ", ".join(job)
                tx.execute(f"INSERT INTO jobs({cols}) VALUES ({', '.join('?' * len(job))})", tuple(job.values()))
            except sqlite3.IntegrityError:
                return False
            for task in tasks:
                tcols = ", ".join(task)
                tx.execute(f"INSERT INTO tasks({tcols}) VALUES ({', '.join('?' * len(task))})", tuple(task.values()))
        return True

    def insert_jobs_bulk(self, jobs: list[dict[str, Any]], tasks: list[dict[str, Any]]) -> None:
        """Seed many jobs at once (tests and benchmarks); names must be unique."""
        if not jobs:
            return
        with self.transaction() as tx:
            cols = list(jobs[0])
            tx.executemany(f"INSERT INTO jobs({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                           [tuple(j[c] for c in cols) for j in jobs])
            if tasks:
                tcols = list(tasks[0])
                tx.executemany(f"INSERT INTO tasks({', '.join(tcols)}) VALUES ({', '.join('?' * len(tcols))})",
                               [tuple(t[c] for c in tcols) for t in tasks])

    def update_job(self, name: str, **fields: Any) -> None:
        if not fields:
            return
        cols = ", ".join(f"{k}=?" for k in fields)
        self.execute(f"UPDATE jobs SET {cols} WHERE name=?", [*fields.values(), name])

    def get_tasks(self, job: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.query("SELECT * FROM tasks WHERE job=? ORDER BY rowid", (job,))]

    def get_task(self, job: str, role: str, idx: int) -> dict[str, Any] | None:
        row = self.one("SELECT * FROM tasks WHERE job=? AND role=? AND idx=?", (job, role, idx))
        return dict(row) if row is not None else None

    def update_task(self, job: str, role: str, idx: int, **fields: Any) -> None:
        if not fields:
            return
        cols = ", ".join(f"{k}=?" for k in fields)
        self.execute(f"UPDATE tasks SET {cols} WHERE job=? AND role=? AND idx=?",
                     [*fields.values(), job, role, idx])

    def active_jobs(self) -> list[dict[str, Any]]:
        marks = ",".join("?" * len(ACTIVE_STATES))
        return [dict(r) for r in self.query(f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY seq",
                                            ACTIVE_STATES)]

    def save_history(self, job: str, attempt_id: int, detail: dict[str, Any]) -> None:
        self.execute("INSERT OR REPLACE INTO history(job, attempt_id, detail) VALUES (?,?,?)",
                     (job, attempt_id, json.dumps(detail)))

    def get_history(self, job: str, attempt_id: int) -> dict[str, Any] | None:
        row = self.one("SELECT detail FROM history WHERE job=? AND attempt_id=?", (job, attempt_id))
        return json.loads(row["detail"]) if row else None

    # -- events ----------------------------------------------------------------------------
    def add_event(self, job: str, uid: str, role: str, idx: int, type_: str, reason: str,
                  message: str) -> None:
        self.execute("INSERT INTO events(job, uid, role, idx, type, reason, message, ts) VALUES (?,?,?,?,?,?,?,?)",
                     (job, uid, role, idx, type_, reason, message, now_ms()))

    def get_events(self, job: str, type_: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM events WHERE job=?"
        params: list[Any] = [job]
        if type_:
            sql += " AND type=?"
            params.append(type_)
        sql += " ORDER BY ts DESC, id DESC"
        return [dict(r) for r in self.query(sql, params)]


class _Tx:
    """``with store.transaction() as tx``: BEGIN IMMEDIATE .. COMMIT under the store lock."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __enter__(self) -> sqlite3.Connection:
        self.store._lock.acquire()
        self.store._db.execute("BEGIN IMMEDIATE")
        return self.store._db

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                try:
                    self.store._db.execute("COMMIT")
                except sqlite3.Error:  # e.g. the disk is full: never leave the transaction open
                    self._rollback()
                    raise
            else:
                self._rollback()
        finally:
            self.store._lock.release()

    def _rollback(self) -> None:
        try:
            self.store._db.execute("ROLLBACK")
        except sqlite3.Error:  # sqlite may have rolled back already (SQLITE_FULL does)
            pass
