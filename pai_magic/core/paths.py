"""Where pai_magic keeps its files, and how secret files are written.

One place decides the locations so that tests (and users with several setups) can move
everything with two environment variables: ``PAI_MAGIC_CONFIG_DIR`` (profiles, known_hosts,
generated keys) and ``PAI_MAGIC_DATA_DIR`` (the embedded backend's default data).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def config_dir() -> Path:
    env = os.environ.get("PAI_MAGIC_CONFIG_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "pai_magic"


def data_dir() -> Path:
    env = os.environ.get("PAI_MAGIC_DATA_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "pai_magic"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (0700) so secret files inside are never readable by others."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        os.chmod(path, 0o700)
    except OSError:
        pass
    return path


def write_private(path: Path, data: str | bytes) -> None:
    """Write a secret file atomically with mode 0600 from its first byte.

    The temporary file is created 0600 by ``mkstemp`` and renamed over the target, so a
    crash never leaves a half-written profile and the secret is never world-readable.
    """
    ensure_private_dir(path.parent)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
