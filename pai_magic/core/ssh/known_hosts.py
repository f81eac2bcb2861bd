"""pai_magic's own known_hosts, keyed by job and task instead of by ip:port.

Why: job containers get fresh host keys while ip:port pairs are reused by later jobs, so the
usual ``[ip]:port`` entries would either cry wolf on every new job or teach users to ignore
changed keys. Each task gets a *host key alias* (``HostKeyAlias`` in OpenSSH terms) naming
the job, the task and its attempt; the file stays in OpenSSH format so that stock ``ssh -o
UserKnownHostsFile=<ours> -o HostKeyAlias=<alias>`` checks the same entries pai_magic does.
Trust on first use per alias, refuse a different key under the same alias, forget all of a
job's aliases when the job ends. Never the user's ``~/.ssh/known_hosts``, never a prompt.
"""
from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from pai_magic.core.errors import HostKeyError
from pai_magic.core.ssh.keys import pai_ssh_dir, public_key_fingerprint

ALIAS_SUFFIX = ".pai"
_SAFE = re.compile(r"^[a-z0-9_~-]+$")


def _alias_part(text: str) -> str:
    """Lowercase (OpenSSH lowercases the patterns it matches) and collision-free.

    A name that is not already lowercase-safe gets a short hash of its exact spelling, so
    ``Job`` and ``job`` never share an entry.
    """
    low = text.lower()
    if text == low and _SAFE.match(text):
        return text
    cleaned = re.sub(r"[^a-z0-9_~-]", "_", low)
    return f"{cleaned}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def job_alias_prefix(job: str) -> str:
    """Every alias of job ``user~name`` starts with this (used to forget a job)."""
    return _alias_part(job) + "."


def host_key_alias(job: str, role: str, index: int, attempt: str | int = 0) -> str:
    """The known_hosts name of one task container: ``user~job.role.index.aN.pai``.

    ``attempt`` distinguishes retries (a retried task is a new container with a new key);
    within one attempt a changed key is refused.
    """
    return f"{job_alias_prefix(job)}{_alias_part(role)}.{int(index)}.a{_alias_part(str(attempt))}{ALIAS_SUFFIX}"


@dataclass(frozen=True)
class KnownKey:
    alias: str
    key_type: str
    key_base64: str

    @property
    def fingerprint(self) -> str:
        return public_key_fingerprint(f"{self.key_type} {self.key_base64}")


def _hashed_match(pattern: str, host: str) -> bool:
    """OpenSSH ``|1|salt|hash`` entries (written when HashKnownHosts slipped through)."""
    try:
        _, magic, salt, digest = pattern.split("|")
        if magic != "1":
            return False
        mac = hmac.new(base64.b64decode(salt), host.encode(), hashlib.sha1).digest()
        return hmac.compare_digest(mac, base64.b64decode(digest))
    except (ValueError, TypeError):
        return False


def _matches(hosts_field: str, alias: str) -> bool:
    if hosts_field.startswith("|"):
        return _hashed_match(hosts_field, alias)
    return alias in {h.strip().lower() for h in hosts_field.split(",")}


class KnownHosts:
    """The file ``config_dir()/ssh/known_hosts`` (or ``path``), safe against concurrent writers."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path else pai_ssh_dir() / "known_hosts"

    # -- reading -------------------------------------------------------------------------
    def _lines(self) -> list[str]:
        try:
            return self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []

    @staticmethod
    def _parse(line: str) -> tuple[str, str, str] | None:
        parts = line.strip().split()
        if not parts or parts[0].startswith("#"):
            return None
        if parts[0].startswith("@"):  # @cert-authority / @revoked markers: not ours
            return None
        if len(parts) < 3:
            return None
        return parts[0], parts[1], parts[2]

    def lookup(self, alias: str) -> list[KnownKey]:
        found = []
        for line in self._lines():
            parsed = self._parse(line)
            if parsed and _matches(parsed[0], alias):
                found.append(KnownKey(alias, parsed[1], parsed[2]))
        return found

    def has(self, alias: str) -> bool:
        return bool(self.lookup(alias))

    # -- writing -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _write(self, lines: list[str]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    def add(self, alias: str, key_type: str, key_base64: str) -> None:
        with self._locked():
            lines = self._lines()
            lines.append(f"{alias} {key_type} {key_base64}")
            self._write(lines)

    def check(self, alias: str, key_type: str, key_base64: str, *, where: str = "") -> bool:
        """Trust on first use: record an unknown alias, accept the same key, refuse another.

        Returns True when the key was newly recorded. ``where`` names the task and address
        for the error message.
        """
        with self._locked():
            known = self.lookup(alias)
            if any(k.key_type == key_type and k.key_base64 == key_base64 for k in known):
                return False
            if known:
                old = known[0]
                new_fp = public_key_fingerprint(f"{key_type} {key_base64}")
                raise HostKeyError(
                    f"Host key of {where or alias} changed within the job (known {old.fingerprint}, "
                    f"offered {new_fp}): refusing to connect; if you trust the change, run "
                    f"pai_magic.core.ssh.forget_host_key('{alias}') and retry.", code="HostKeyChanged")
            lines = self._lines()
            lines.append(f"{alias} {key_type} {key_base64}")
            self._write(lines)
            return True

    def _remove_where(self, predicate: Callable[[str], bool]) -> int:
        with self._locked():
            lines = self._lines()
            kept = []
            for line in lines:
                parsed = self._parse(line)
                if parsed and predicate(parsed[0]):
                    continue
                kept.append(line)
            removed = len(lines) - len(kept)
            if removed:
                self._write(kept)
            return removed

    def forget(self, alias: str) -> int:
        return self._remove_where(lambda hosts: _matches(hosts, alias))

    def forget_job(self, job: str, aliases: list[str] | None = None) -> int:
        """Drop every key of job ``user~name`` (plain entries by prefix, hashed ones by alias)."""
        prefix = job_alias_prefix(job)
        extra = list(aliases or [])

        def belongs(hosts: str) -> bool:
            if hosts.startswith("|"):
                return any(_hashed_match(hosts, a) for a in extra)
            return any(h.strip().lower().startswith(prefix) for h in hosts.split(","))

        return self._remove_where(belongs)

    def aliases(self) -> list[str]:
        out = []
        for line in self._lines():
            parsed = self._parse(line)
            if parsed and not parsed[0].startswith("|"):
                out.extend(parsed[0].split(","))
        return out


def forget_host_key(alias: str, known_hosts: KnownHosts | None = None) -> int:
    """Forget one task's key (after the user decided a changed key is legitimate)."""
    return (known_hosts or KnownHosts()).forget(alias)


def forget_job_keys(job: str, known_hosts: KnownHosts | None = None) -> int:
    """Forget all of a job's host keys; call when the job reached a terminal state."""
    return (known_hosts or KnownHosts()).forget_job(job)
