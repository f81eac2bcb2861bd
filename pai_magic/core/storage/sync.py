"""Push a local folder (the notebook's code) to a folder on a storage, moving only what changed.

The quick check is rsync's: a file whose size and whole-second mtime match the remote copy is
not sent; every file sent gets the local mtime, so the next sync of an unchanged folder moves
no bytes. A small manifest in the remote folder remembers what the sync itself put there, so
files deleted locally are removed remotely while whatever a job wrote next to them (results,
checkpoints) is left alone. Each file lands under a temporary name and is renamed into place,
so a job never reads half a file.

Two targets: a folder on a mounted share (plain copies) and an SFTP session into a job that
has the storage mounted; both behind the same four-method interface.
"""
from __future__ import annotations

import fnmatch
import json
import os
import posixpath
import shutil
import stat
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

from pai_magic.core.errors import InvalidInputError, NotFoundError, TransferError

MANIFEST = ".pai-sync.json"
DEFAULT_EXCLUDES = (".git", "__pycache__", ".ipynb_checkpoints", "*.pyc", ".DS_Store", ".venv", "node_modules",
                    MANIFEST)
CHUNK = 1024 * 1024


@dataclass
class RemoteStat:
    size: int
    mtime: int


@dataclass
class SyncProgress:
    """Handed to ``on_progress`` after each file and every few MiB inside a large one."""

    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    current: str


@dataclass
class SyncResult:
    local_dir: str
    remote_dir: str
    files_total: int = 0
    files_sent: int = 0
    bytes_sent: int = 0
    files_deleted: int = 0
    unchanged: int = 0
    sent: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def message(self) -> str:
        if not self.files_sent and not self.files_deleted:
            return f"{self.remote_dir} is up to date ({self.files_total} files, no bytes moved)."
        parts = [f"sent {self.files_sent} of {self.files_total} files ({self.bytes_sent} bytes)"]
        if self.files_deleted:
            parts.append(f"removed {self.files_deleted} deleted locally")
        return f"Synced {self.local_dir} to {self.remote_dir}: " + ", ".join(parts) + "."


class SyncTarget(Protocol):
    """Where files go; paths are POSIX paths relative to the target's root."""

    root: str

    def scan(self) -> dict[str, RemoteStat]: ...

    def read_text(self, rel: str) -> str | None: ...

    def write_text(self, rel: str, text: str) -> None: ...

    def put(self, local: Path, rel: str, mtime: int, on_bytes: Callable[[int], None]) -> None: ...

    def remove(self, rel: str) -> None: ...

    def get(self, rel: str, local: Path, mtime: int) -> int: ...


# -- targets --------------------------------------------------------------------------------

class LocalFolderTarget:
    """A folder on a mounted share (kernel NFS or sshfs): ordinary file copies."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.fspath(root)

    def _abs(self, rel: str) -> Path:
        return Path(self.root, *rel.split("/"))

    def scan(self) -> dict[str, RemoteStat]:
        out: dict[str, RemoteStat] = {}
        base = Path(self.root)
        if not base.is_dir():
            return out
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                p = Path(dirpath, name)
                try:
                    st = p.lstat()
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    out[p.relative_to(base).as_posix()] = RemoteStat(st.st_size, int(st.st_mtime))
        return out

    def read_text(self, rel: str) -> str | None:
        try:
            return self._abs(rel).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def write_text(self, rel: str, text: str) -> None:
        dest = self._abs(rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, dest)

    def put(self, local: Path, rel: str, mtime: int, on_bytes: Callable[[int], None]) -> None:
        dest = self._abs(rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(local, "rb") as src, open(tmp, "wb") as out:
                while True:
                    chunk = src.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    on_bytes(len(chunk))
            shutil.copymode(local, tmp)
            os.utime(tmp, (mtime, mtime))
            os.replace(tmp, dest)
        except BaseException:
            try:
                tmp.unlink()
            except OSError:
                pass
            raise

    def remove(self, rel: str) -> None:
        try:
            self._abs(rel).unlink()
        except FileNotFoundError:
            pass

    def get(self, rel: str, local: Path, mtime: int) -> int:
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            shutil.copyfile(self._abs(rel), tmp)
            os.utime(tmp, (mtime, mtime))
            os.replace(tmp, local)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return local.stat().st_size


class SftpTarget:
    """A folder reached over SFTP (a paramiko ``SFTPClient``), e.g. inside a helper job."""

    def __init__(self, sftp: Any, root: str) -> None:
        self.sftp = sftp
        self.root = root.rstrip("/") or "/"
        self._made: set[str] = set()

    def _abs(self, rel: str) -> str:
        return posixpath.join(self.root, rel)

    def scan(self) -> dict[str, RemoteStat]:
        out: dict[str, RemoteStat] = {}
        pending = [""]
        while pending:
            rel_dir = pending.pop()
            try:
                entries = self.sftp.listdir_attr(self._abs(rel_dir) if rel_dir else self.root)
            except IOError:
                continue
            for a in entries:
                rel = posixpath.join(rel_dir, a.filename) if rel_dir else a.filename
                if stat.S_ISDIR(a.st_mode or 0):
                    pending.append(rel)
                    self._made.add(self._abs(rel))
                elif stat.S_ISREG(a.st_mode or 0):
                    out[rel] = RemoteStat(int(a.st_size or 0), int(a.st_mtime or 0))
        if out or pending:
            self._made.add(self.root)
        return out

    def _makedirs(self, path: str) -> None:
        if path in self._made or path in ("", "/"):
            return
        try:
            if stat.S_ISDIR(self.sftp.stat(path).st_mode or 0):
                self._made.add(path)
                return
        except IOError:
            pass
        self._makedirs(posixpath.dirname(path))
        try:
            self.sftp.mkdir(path)
        except IOError:
            if not stat.S_ISDIR(self.sftp.stat(path).st_mode or 0):
                raise
        self._made.add(path)

    def read_text(self, rel: str) -> str | None:
        try:
            with self.sftp.open(self._abs(rel), "r") as fh:
                return str(fh.read().decode("utf-8"))
        except (IOError, UnicodeDecodeError):
            return None

    def _rename(self, tmp: str, dest: str) -> None:
        try:
            self.sftp.posix_rename(tmp, dest)
        except IOError:
            try:
                self.sftp.remove(dest)
            except IOError:
                pass
            self.sftp.rename(tmp, dest)

    def write_text(self, rel: str, text: str) -> None:
        dest = self._abs(rel)
        self._makedirs(posixpath.dirname(dest))
        tmp = posixpath.join(posixpath.dirname(dest), f".{posixpath.basename(dest)}.{uuid.uuid4().hex[:8]}.tmp")
        with self.sftp.open(tmp, "w") as fh:
            fh.write(text.encode("utf-8"))
        self._rename(tmp, dest)

    def put(self, local: Path, rel: str, mtime: int, on_bytes: Callable[[int], None]) -> None:
        dest = self._abs(rel)
        self._makedirs(posixpath.dirname(dest))
        tmp = posixpath.join(posixpath.dirname(dest), f".{posixpath.basename(dest)}.{uuid.uuid4().hex[:8]}.tmp")
        seen = [0]

        def progress(done: int, _total: int) -> None:
            on_bytes(done - seen[0])
            seen[0] = done

        size = local.stat().st_size
        try:
            with open(local, "rb") as src:
                # putfo pipelines the writes (hand-written loops do not) and confirms the size.
                self.sftp.putfo(src, tmp, file_size=size, callback=progress, confirm=True)
            self.sftp.chmod(tmp, stat.S_IMODE(local.stat().st_mode))
            self.sftp.utime(tmp, (mtime, mtime))
            self._rename(tmp, dest)
        except BaseException:
            try:
                self.sftp.remove(tmp)
            except Exception:
                pass
            raise

    def remove(self, rel: str) -> None:
        try:
            self.sftp.remove(self._abs(rel))
        except IOError:
            pass

    def get(self, rel: str, local: Path, mtime: int) -> int:
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(tmp, "wb") as out:
                # getfo prefetches (parallel reads); a read() loop would be one round trip per block.
                size = self.sftp.getfo(self._abs(rel), out)
            os.utime(tmp, (mtime, mtime))
            os.replace(tmp, local)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return int(size)


# -- the sync itself ------------------------------------------------------------------------

def _excluded(rel: str, patterns: Iterable[str]) -> bool:
    parts = rel.split("/")
    for pat in patterns:
        if fnmatch.fnmatch(rel, pat) or any(fnmatch.fnmatch(part, pat) for part in parts):
            return True
    return False


def local_files(local_dir: Path, excludes: Iterable[str] = DEFAULT_EXCLUDES) -> dict[str, os.stat_result]:
    """Regular files under ``local_dir`` (symlinks followed to files), minus the excludes."""
    pats = tuple(excludes)
    out: dict[str, os.stat_result] = {}
    for dirpath, dirs, files in os.walk(local_dir, followlinks=False):
        rel_dir = Path(dirpath).relative_to(local_dir).as_posix()
        dirs[:] = [d for d in dirs if not _excluded(d if rel_dir == "." else f"{rel_dir}/{d}", pats)]
        for name in files:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if _excluded(rel, pats):
                continue
            try:
                st = os.stat(Path(dirpath, name))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                out[rel] = st
    return dict(sorted(out.items()))


def _load_manifest(target: SyncTarget) -> dict[str, list[int]]:
    raw = target.read_text(MANIFEST)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
        files = data.get("files", {})
        return {k: [int(v[0]), int(v[1])] for k, v in files.items()}
    except (ValueError, TypeError, AttributeError, IndexError):
        return {}


def sync_folder(local_dir: str | os.PathLike[str], target: SyncTarget, *,
                excludes: Iterable[str] = DEFAULT_EXCLUDES, delete: bool = True,
                on_progress: Callable[[SyncProgress], None] | None = None) -> SyncResult:
    """Make ``target`` hold the files of ``local_dir``; only changed files move.

    ``delete`` removes remote files that an earlier sync put there and that are gone
    locally, unless something else changed them since.
    """
    start = time.monotonic()
    src = Path(local_dir).expanduser()
    if not src.is_dir():
        raise NotFoundError(f"{src} is not a folder: give the folder to sync (for example . for the notebook's folder).")
    src = src.resolve()
    files = local_files(src, excludes)
    remote = target.scan()
    manifest = _load_manifest(target)
    result = SyncResult(str(src), target.root, files_total=len(files))

    todo: list[tuple[str, os.stat_result]] = []
    for rel, st in files.items():
        have = remote.get(rel)
        if have is not None and have.size == st.st_size and have.mtime == int(st.st_mtime):
            result.unchanged += 1
        else:
            todo.append((rel, st))
    bytes_total = sum(st.st_size for _, st in todo)
    done_files = 0
    done_bytes = 0

    def report(current: str) -> None:
        if on_progress is not None:
            on_progress(SyncProgress(done_files, len(todo), done_bytes, bytes_total, current))

    last_report = [0]

    def on_bytes(n: int) -> None:
        nonlocal done_bytes
        done_bytes += n
        if done_bytes - last_report[0] >= 4 * CHUNK:
            last_report[0] = done_bytes
            report(current_name[0])

    current_name = [""]
    for rel, st in todo:
        current_name[0] = rel
        try:
            target.put(src / rel, rel, int(st.st_mtime), on_bytes)
        except FileNotFoundError:
            continue  # deleted locally while syncing: the next sync handles it
        except (IOError, OSError) as exc:
            raise TransferError(f"Could not copy {rel} to {target.root} ({exc}); nothing partial was left: "
                                f"check space and permissions there, then sync again.") from None
        done_files += 1
        result.files_sent += 1
        result.sent.append(rel)
        report(rel)
    result.bytes_sent = done_bytes

    if delete:
        for rel, (size, mtime) in manifest.items():
            if rel in files:
                continue
            have = remote.get(rel)
            if have is not None and have.size == size and have.mtime == mtime:
                target.remove(rel)
                result.files_deleted += 1

    new_manifest = {rel: [st.st_size, int(st.st_mtime)] for rel, st in files.items()}
    if new_manifest != manifest:
        target.write_text(MANIFEST, json.dumps({"files": new_manifest}, separators=(",", ":")))
    result.seconds = time.monotonic() - start
    return result


def pull_folder(target: SyncTarget, local_dir: str | os.PathLike[str], *, only: Iterable[str] | None = None,
                excludes: Iterable[str] = DEFAULT_EXCLUDES) -> SyncResult:
    """Bring files from ``target`` into ``local_dir`` (results a job wrote); unchanged ones stay.

    ``only`` limits it to some relative paths or glob patterns (``["results/*"]``).
    """
    start = time.monotonic()
    dest = Path(local_dir).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    pats = tuple(excludes)
    wanted = tuple(only) if only else None
    remote = {rel: st for rel, st in target.scan().items() if not _excluded(rel, pats)
              and not rel.endswith(".tmp") and (wanted is None or any(fnmatch.fnmatch(rel, w) for w in wanted))}
    result = SyncResult(target.root, str(dest), files_total=len(remote))
    for rel, st in sorted(remote.items()):
        local = dest / rel
        try:
            have = local.stat()
            if have.st_size == st.size and int(have.st_mtime) == st.mtime:
                result.unchanged += 1
                continue
        except FileNotFoundError:
            pass
        try:
            result.bytes_sent += target.get(rel, local, st.mtime)
        except (IOError, OSError) as exc:
            raise TransferError(f"Could not fetch {rel} from {target.root} ({exc}); nothing partial was left: "
                                f"retry.") from None
        result.files_sent += 1
        result.sent.append(rel)
    result.seconds = time.monotonic() - start
    return result


def parse_sync_spec(spec: str, default_storage: str | None = None) -> tuple[str, str | None]:
    """``LOCAL_DIR[:STORAGE]`` -> (local dir, storage or the default)."""
    text = (spec or "").strip()
    if not text:
        raise InvalidInputError("--sync needs a folder: --sync LOCAL_DIR[:STORAGE] (for example --sync .:default).")
    local, sep, storage = text.rpartition(":")
    if not sep or "/" in storage or not storage:
        return text, default_storage
    return local, storage
