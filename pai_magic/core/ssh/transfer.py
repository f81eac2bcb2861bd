"""Upload and download files and directories, never leaving a partial file in place.

Every file is written under a temporary name (``.NAME.pai-part-XXXXXXXX``) in its final
directory, then checked (size always; sha256 when the remote has ``openssl`` or ``sha256sum``)
and only then renamed over the final name. A transfer cut mid-way leaves at most that temporary file (the
local one is removed; the remote one too when the connection still lives). Bulk data moves
through :mod:`sftp_stream` (large pipelined requests); metadata through paramiko's SFTPClient.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import secrets
import shlex
import stat as statmod
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Callable

from pai_magic.core.errors import (InvalidInputError, NotFoundError, PaiError, PaiTimeoutError,
                                   TransferError, UnreachableError)
from pai_magic.core.ssh.connect import SshSession
from pai_magic.core.ssh.exec import run_capture
from pai_magic.core.ssh.sftp_stream import (FXF_CREAT, FXF_EXCL, FXF_READ, FXF_TRUNC, FXF_WRITE,
                                            SftpStream, open_stream)

if TYPE_CHECKING:  # paramiko loads lazily: %pai_* and the CLI start fast
    import paramiko

PART_MARK = ".pai-part-"
#: Verify and rename after this many files or bytes, so a directory of many small files
#: costs one remote ``sha256sum`` per batch instead of one per file.
BATCH_FILES = 64
BATCH_BYTES = 1 << 30
PROGRESS_EVERY = 0.1  # seconds between progress callbacks (plus one at each file's end)


@dataclass
class TransferProgress:
    """What a progress bar needs; ``path`` is the file being moved right now."""

    path: str
    file_done: int
    file_size: int
    bytes_done: int
    bytes_total: int
    files_done: int
    files_total: int

    @property
    def fraction(self) -> float:
        return 1.0 if self.bytes_total == 0 else self.bytes_done / self.bytes_total


@dataclass
class TransferredFile:
    source: str
    destination: str
    size: int
    sha256: str    # "" when not verified (verify=False)
    verified: str  # "sha256", or "size" (verify=False, or the remote has no sha256sum)


@dataclass
class TransferResult:
    direction: str  # "upload" or "download"
    files: list[TransferredFile] = field(default_factory=list)
    directories: int = 0
    bytes: int = 0
    seconds: float = 0.0

    @property
    def mib_per_s(self) -> float:
        return self.bytes / (1 << 20) / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        kinds = {f.verified for f in self.files}
        check = "sha256" if kinds == {"sha256"} else ("size" if kinds == {"size"} else "size/sha256")
        return (f"{self.direction}ed {len(self.files)} file(s), {self.bytes} bytes in {self.seconds:.1f}s "
                f"({self.mib_per_s:.1f} MiB/s), verified by {check}")


ProgressFn = Callable[[TransferProgress], None]


class _Progress:
    """Throttles callbacks so a widget is not redrawn for every 256 KiB request."""

    def __init__(self, fn: ProgressFn | None, bytes_total: int, files_total: int) -> None:
        self.fn = fn
        self.bytes_total = bytes_total
        self.files_total = files_total
        self.bytes_done = 0
        self.files_done = 0
        self._last = 0.0
        self.path = ""
        self.file_done = 0
        self.file_size = 0

    def start_file(self, path: str, size: int) -> None:
        self.path, self.file_done, self.file_size = path, 0, size
        self._emit(force=True)

    def add(self, n: int) -> None:
        self.file_done += n
        self.bytes_done += n
        self._emit()

    def end_file(self) -> None:
        self.files_done += 1
        self._emit(force=True)

    def _emit(self, force: bool = False) -> None:
        if self.fn is None:
            return
        now = time.monotonic()
        if not force and now - self._last < PROGRESS_EVERY:
            return
        self._last = now
        self.fn(TransferProgress(self.path, self.file_done, self.file_size, self.bytes_done,
                                 self.bytes_total, self.files_done, self.files_total))


def _part_name(name: str) -> str:
    return f".{name}{PART_MARK}{secrets.token_hex(4)}"


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise TransferError("Transfer cancelled; nothing was left under the final name.")


def _clean_remote_path(path: str) -> str:
    """SFTP does not expand ``~``: ``~/x`` means x in the SFTP start directory."""
    path = path.strip() or "."
    if path == "~":
        return "."
    if path.startswith("~/"):
        return path[2:] or "."
    return path


#: How the remote computes sha256, fastest first: ``openssl dgst`` uses the CPU's SHA
#: instructions (about 3x coreutils' ``sha256sum`` on x86 with SHA-NI); both print the hash
#: first on each line, in argument order.
_HASHERS = (("openssl", "openssl dgst -sha256 -r --"), ("sha256sum", "sha256sum --"))


def _remote_hasher(session: SshSession) -> str | None:
    def probe() -> str | None:
        script = "; ".join(f"command -v {name} >/dev/null 2>&1 && {{ echo {name}; exit 0; }}"
                           for name, _ in _HASHERS) + "; exit 0"
        found = run_capture(session, script, timeout=30).stdout.strip()
        return next((cmd for name, cmd in _HASHERS if name == found), None)

    hasher: str | None = session.remote_cap("sha256", probe)
    return hasher


def _remote_sha256sum(session: SshSession, paths: list[str]) -> list[str] | None:
    """sha256 of each remote path (in order), or None when the remote has no hasher."""
    hasher = _remote_hasher(session)
    if hasher is None:
        return None
    res = run_capture(session, hasher + " " + " ".join(shlex.quote(p) for p in paths),
                      timeout=max(60.0, session.options.io_timeout))
    if res.exit_status != 0:
        raise TransferError(f"{hasher.split()[0]} failed in {session.target.where}: "
                            f"{(res.stderr.strip().splitlines() or ['no output'])[-1]}")
    out = []
    for line in res.stdout.splitlines():
        line = line.lstrip("\\")  # sha256sum escapes names holding a backslash or newline
        if len(line) >= 64:
            out.append(line[:64].lower())
    if len(out) != len(paths):
        raise TransferError(f"The remote hasher in {session.target.where} printed {len(out)} hashes for "
                            f"{len(paths)} files; the transfer was not verified.")
    return out


def _wrap(exc: BaseException, what: str, where: str, final: str) -> PaiError:
    """One line that says what broke and that nothing sits under the final name."""
    if isinstance(exc, TransferError):
        return exc
    reason = str(exc) if isinstance(exc, PaiError) else (str(exc) or type(exc).__name__)
    err = TransferError(f"{what} {where} broke ({reason.rstrip('.')}); nothing was written under "
                        f"{final}; run it again.")
    if isinstance(exc, (UnreachableError, PaiTimeoutError)):
        err.status = exc.status
    return err


# ------------------------------------------------------------------------------- upload
@dataclass
class _UpFile:
    local: Path
    remote: str  # final remote path
    size: int
    mode: int
    part: str = ""
    sha256: str = ""


def _remote_is_dir(sftp: paramiko.SFTPClient, path: str) -> bool | None:
    """True/False, or None when nothing is there (a timeout or lost link propagates)."""
    try:
        return statmod.S_ISDIR(sftp.stat(path).st_mode or 0)
    except FileNotFoundError:
        return None


def _planning_error(exc: BaseException, where: str) -> PaiError:
    """Errors while looking at the remote before any byte moved."""
    if isinstance(exc, PaiError):
        return exc
    if isinstance(exc, PermissionError):
        return InvalidInputError(f"Permission denied in {where} ({exc}): choose a path you may write/read.")
    if isinstance(exc, TimeoutError):
        return PaiTimeoutError(f"{where} did not answer an SFTP request in time: the task or the network stalled.")
    return UnreachableError(f"SFTP to {where} failed ({exc or type(exc).__name__}): check the task is still RUNNING.")


def _missing_parents(sftp: paramiko.SFTPClient, path: str) -> list[str]:
    """The ancestors of ``path`` that do not exist yet, outermost first (``mkdir -p``): an
    upload to ``inputs/data.csv`` in a fresh container should just work."""
    missing: list[str] = []
    parent = posixpath.dirname(path.rstrip("/"))
    while parent and parent not in ("/", ".") and _remote_is_dir(sftp, parent) is None:
        missing.append(parent)
        parent = posixpath.dirname(parent)
    return missing[::-1]


def _plan_upload(sftp: paramiko.SFTPClient, local: Path, remote: str) -> tuple[list[str], list[_UpFile]]:
    remote = _clean_remote_path(remote)
    target_is_dir = _remote_is_dir(sftp, remote)
    if local.is_dir():
        root = posixpath.join(remote, local.name) if target_is_dir else remote
        dirs = _missing_parents(sftp, root) + [root]
        files: list[_UpFile] = []
        for base, subdirs, names in os.walk(local):
            subdirs.sort()
            rel = os.path.relpath(base, local)
            rbase = root if rel == "." else posixpath.join(root, *Path(rel).parts)
            if rel != ".":
                dirs.append(rbase)
            for name in sorted(names):
                path = Path(base) / name
                st = path.stat()
                if statmod.S_ISREG(st.st_mode):
                    files.append(_UpFile(path, posixpath.join(rbase, name), st.st_size, st.st_mode & 0o777))
        return dirs, files
    st = local.stat()
    if target_is_dir or remote.endswith("/"):
        dest = posixpath.join(remote, local.name)
    else:
        dest = remote
    parents = _missing_parents(sftp, dest)
    parent = posixpath.dirname(dest)
    if parent and parent not in ("/", ".") and not parents and _remote_is_dir(sftp, parent) is False:
        raise InvalidInputError(f"Remote path {parent} exists and is not a directory: choose another destination.")
    return parents, [_UpFile(local, dest, st.st_size, st.st_mode & 0o777)]


def _mkdirs(sftp: paramiko.SFTPClient, dirs: list[str]) -> int:
    made = 0
    for d in dirs:
        kind = _remote_is_dir(sftp, d)
        if kind is True:
            continue
        if kind is False:
            raise InvalidInputError(f"Remote path {d} exists and is not a directory: choose another "
                                    "destination.")
        sftp.mkdir(d)
        made += 1
    return made


def _finish_upload_batch(session: SshSession, sftp: paramiko.SFTPClient, batch: list[_UpFile], verify: bool,
                         result: TransferResult) -> None:
    for f in batch:
        got = sftp.stat(f.part).st_size
        if got != f.size:
            raise TransferError(f"Uploaded {f.remote} has {got} of {f.size} bytes; kept nothing under "
                                "the final name; run the upload again.")
    hashes = _remote_sha256sum(session, [f.part for f in batch]) if verify else None
    if hashes is not None:
        for f, h in zip(batch, hashes):
            if h != f.sha256:
                raise TransferError(f"Uploaded {f.remote} does not match the local sha256; kept nothing "
                                    "under the final name; run the upload again.")
    for f in batch:
        sftp.chmod(f.part, f.mode)
        _remote_rename(sftp, f.part, f.remote)
        result.files.append(TransferredFile(str(f.local), f.remote, f.size, f.sha256,
                                            "sha256" if hashes is not None else "size"))
        f.part = ""


def _remote_rename(sftp: paramiko.SFTPClient, src: str, dst: str) -> None:
    """Atomic replace where the server has posix-rename (OpenSSH), else remove + rename."""
    try:
        sftp.posix_rename(src, dst)
        return
    except OSError:
        pass
    try:
        sftp.remove(dst)
    except OSError:
        pass
    sftp.rename(src, dst)


def upload(session: SshSession, local: str | os.PathLike, remote: str, *,
           on_progress: ProgressFn | None = None, verify: bool = True,
           cancel: threading.Event | None = None) -> TransferResult:
    """Copy a local file or directory (recursively) to ``remote`` in the task.

    Like ``scp``: an existing remote directory receives the file (or directory) inside it.
    """
    local = Path(local).expanduser()
    if not local.exists():
        raise NotFoundError(f"Local path {local} does not exist: check the name.")
    started = time.monotonic()
    where = session.target.where
    try:
        sftp = session.sftp()
        dirs, files = _plan_upload(sftp, local, remote)
    except Exception as exc:  # OSError, EOFError, paramiko.SSHException, PaiError
        raise _planning_error(exc, where) from None
    result = TransferResult("upload")
    progress = _Progress(on_progress, sum(f.size for f in files), len(files))
    stream: SftpStream | None = None
    batch: list[_UpFile] = []
    absolute: dict[str, str] = {}
    current = ""
    try:
        result.directories = _mkdirs(sftp, dirs)
        stream = open_stream(session)
        batch_bytes = 0
        for f in files:
            _check_cancel(cancel)
            current = f.remote
            parent = posixpath.dirname(f.remote) or "."
            if parent not in absolute:
                absolute[parent] = sftp.normalize(parent)
            f.part = posixpath.join(absolute[parent], _part_name(posixpath.basename(f.remote)))
            batch.append(f)
            progress.start_file(f.remote, f.size)
            digest = hashlib.sha256() if verify else None  # only when it will be compared
            with open(f.local, "rb") as fh:
                def reader(n: int, fh: IO[bytes] = fh, digest: hashlib._Hash | None = digest) -> bytes:
                    _check_cancel(cancel)
                    data = fh.read(n)
                    if digest is not None:
                        digest.update(data)
                    return data

                handle = stream.open(f.part, FXF_WRITE | FXF_CREAT | FXF_EXCL | FXF_TRUNC, 0o600)
                sent = stream.write_from(handle, reader, progress.add)
                stream.close_handle(handle)
            if sent != f.size:
                raise TransferError(f"{f.local} changed size while being uploaded ({sent} of {f.size} "
                                    "bytes); run the upload again.")
            f.sha256 = digest.hexdigest() if digest is not None else ""
            result.bytes += f.size
            progress.end_file()
            batch_bytes += f.size
            if len(batch) >= BATCH_FILES or batch_bytes >= BATCH_BYTES:
                _finish_upload_batch(session, sftp, batch, verify, result)
                batch, batch_bytes = [], 0
        if batch:
            current = batch[-1].remote
            _finish_upload_batch(session, sftp, batch, verify, result)
            batch = []
    except BaseException as exc:
        for f in batch:
            if f.part and session.active:
                try:
                    sftp.remove(f.part)
                except Exception:
                    pass
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        if isinstance(exc, (NotFoundError, InvalidInputError)):
            raise
        raise _wrap(exc, "Upload of", f"{local} to {where}", current or remote) from None
    finally:
        if stream is not None:
            stream.close()
    result.seconds = time.monotonic() - started
    return result


# ----------------------------------------------------------------------------- download
@dataclass
class _DownFile:
    remote: str
    local: Path
    size: int
    mode: int
    part: Path | None = None
    sha256: str = ""


def _plan_download(sftp: paramiko.SFTPClient, remote: str, local: Path) -> tuple[list[Path], list[_DownFile]]:
    remote = _clean_remote_path(remote)
    try:
        st = sftp.stat(remote)
    except FileNotFoundError:
        raise NotFoundError(f"Remote path {remote} does not exist in the task: check the path "
                            "(relative paths start in the task's working directory).") from None
    if statmod.S_ISDIR(st.st_mode or 0):
        root = local / posixpath.basename(remote.rstrip("/") or "root") if local.is_dir() else local
        dirs = [root]
        files: list[_DownFile] = []

        def walk(rdir: str, ldir: Path) -> None:
            for entry in sorted(sftp.listdir_attr(rdir), key=lambda e: e.filename):
                rpath = posixpath.join(rdir, entry.filename)
                mode = entry.st_mode or 0
                if statmod.S_ISLNK(mode):
                    try:
                        target = sftp.stat(rpath)
                    except OSError:
                        continue
                    if not statmod.S_ISREG(target.st_mode or 0):
                        continue  # a link to a directory could loop: skipped
                    entry, mode = target, target.st_mode or 0
                if statmod.S_ISDIR(mode):
                    dirs.append(ldir / entry.filename)
                    walk(rpath, ldir / entry.filename)
                elif statmod.S_ISREG(mode):
                    files.append(_DownFile(rpath, ldir / entry.filename, entry.st_size or 0, mode & 0o777))

        walk(remote, root)
        return dirs, files
    if local.is_dir():
        dest = local / posixpath.basename(remote)
    else:
        if not local.parent.is_dir():
            raise NotFoundError(f"Local directory {local.parent} does not exist: create it first.")
        dest = local
    return [], [_DownFile(remote, dest, st.st_size or 0, (st.st_mode or 0o644) & 0o777)]


class _RemoteHasher(threading.Thread):
    """Runs the remote sha256sum of a batch while the batch downloads (the source must not
    change meanwhile; if it does, the hashes differ and the download is refused)."""

    def __init__(self, session: SshSession, paths: list[str]) -> None:
        super().__init__(daemon=True, name="pai-remote-sha256")
        self.session, self.paths = session, paths
        self.hashes: list[str] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.hashes = _remote_sha256sum(self.session, self.paths)
        except BaseException as exc:  # reported by result()
            self.error = exc

    def result(self, timeout: float) -> list[str] | None:
        self.join(timeout)
        if self.is_alive():
            raise PaiTimeoutError(f"sha256sum in {self.session.target.where} did not finish within "
                                  f"{timeout:g}s after the download.")
        if self.error is not None:
            raise self.error
        return self.hashes


def _download_one(stream: SftpStream, f: _DownFile, progress: _Progress,
                  cancel: threading.Event | None, fsync: bool, verify: bool) -> None:
    f.part = f.local.with_name(_part_name(f.local.name))
    fd = os.open(f.part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    digest = hashlib.sha256() if verify else None  # hashing costs CPU: only when checked
    try:
        def sink(offset: int, data: memoryview) -> None:
            _check_cancel(cancel)
            if digest is not None:
                digest.update(data)
            view = data
            while view:
                n = os.pwrite(fd, view, offset)
                offset += n
                view = view[n:]
            progress.add(len(data))

        handle = stream.open(f.remote, FXF_READ)
        try:
            stream.read_into(handle, f.size, sink)
        finally:
            try:
                stream.close_handle(handle)
            except PaiError:
                pass
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    f.sha256 = digest.hexdigest() if digest is not None else ""


def download(session: SshSession, remote: str, local: str | os.PathLike, *,
             on_progress: ProgressFn | None = None, verify: bool = True,
             cancel: threading.Event | None = None, fsync: bool = False) -> TransferResult:
    """Copy a remote file or directory (recursively) from the task to ``local``.

    Like ``scp``: an existing local directory receives the file (or directory) inside it.
    ``fsync`` flushes each file to disk before the rename (survives a power cut, costs
    about a tenth of the speed); without it a broken *transfer* still never leaves a
    partial file, which is the promise made here, as scp and sftp make none.
    """
    local = Path(local).expanduser()
    started = time.monotonic()
    where = session.target.where
    try:
        sftp = session.sftp()
        dirs, files = _plan_download(sftp, remote, local)
    except Exception as exc:  # OSError, EOFError, paramiko.SSHException, PaiError
        raise _planning_error(exc, where) from None
    result = TransferResult("download")
    progress = _Progress(on_progress, sum(f.size for f in files), len(files))
    stream: SftpStream | None = None
    batch: list[_DownFile] = []
    current = ""
    try:
        for d in dirs:
            if d.exists() and not d.is_dir():
                raise InvalidInputError(f"Local path {d} exists and is not a directory: choose another "
                                        "destination.")
            if not d.exists():
                d.mkdir(parents=True)
                result.directories += 1
        stream = open_stream(session)
        for start in range(0, len(files), BATCH_FILES):
            batch = files[start:start + BATCH_FILES]
            hasher = None
            if verify:
                hasher = _RemoteHasher(session, [sftp.normalize(f.remote) for f in batch])
                hasher.start()
            for f in batch:
                _check_cancel(cancel)
                current = str(f.local)
                progress.start_file(f.remote, f.size)
                _download_one(stream, f, progress, cancel, fsync, verify)
                got = f.part.stat().st_size if f.part else -1
                if got != f.size:
                    raise TransferError(f"Downloaded {f.remote} has {got} of {f.size} bytes; kept nothing "
                                        f"under {f.local}; run the download again.")
                result.bytes += f.size
                progress.end_file()
            hashes = hasher.result(max(120.0, session.options.io_timeout)) if hasher else None
            for i, f in enumerate(batch):
                if hashes is not None and hashes[i] != f.sha256:
                    raise TransferError(f"Downloaded {f.remote} does not match its sha256 in the task (did it "
                                        f"change meanwhile?); kept nothing under {f.local}; run it again.")
                assert f.part is not None
                os.chmod(f.part, f.mode)
                os.replace(f.part, f.local)
                f.part = None
                result.files.append(TransferredFile(f.remote, str(f.local), f.size, f.sha256,
                                                    "sha256" if hashes is not None else "size"))
        batch = []
    except BaseException as exc:
        for f in batch:
            if f.part is not None:
                try:
                    f.part.unlink()
                except OSError:
                    pass
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        if isinstance(exc, (NotFoundError, InvalidInputError)):
            raise
        raise _wrap(exc, "Download of", f"{remote} from {where}", current or str(local)) from None
    finally:
        if stream is not None:
            stream.close()
    result.seconds = time.monotonic() - started
    return result
