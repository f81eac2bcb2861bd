"""A real IPython InteractiveShell (history off, errors raised) with pai_magic loaded.

Every output a magic produces in these tests goes through :class:`Recorder`: displays
(with their display ids and in-place updates), the cell's result, and stdout/stderr. At
the end of each test the :func:`shell` fixture scans everything recorded for the secrets
known in that test (the backend's password, its token, every token in the test's profile
file), and ``test_no_secrets.py`` checks that the scan saw a real amount of output.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

#: every text a magic showed in this test session (scanned per test, counted at the end)
CAPTURED: list[str] = []
SECRETS_SEEN: set[str] = set()


class Recorder(DisplayPublisher):
    """Keeps every display (data, display id, update flag); thread-safe (the status board
    publishes from its own thread)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.lock = threading.Lock()
        self.items: list[dict[str, Any]] = []

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):  # noqa: D401
        with self.lock:
            self.items.append({"data": dict(data), "transient": dict(transient or {}), "update": update})

    def clear_output(self, wait: bool = False) -> None:
        pass

    def texts(self) -> list[str]:
        with self.lock:
            return [str(v) for item in self.items for v in item["data"].values()]

    def by_display(self, display_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [i for i in self.items if i["transient"].get("display_id") == display_id]

    def display_ids(self) -> list[str]:
        with self.lock:
            seen: list[str] = []
            for item in self.items:
                did = item["transient"].get("display_id")
                if did and did not in seen:
                    seen.append(did)
            return seen


class Driver:
    """Runs cells like a front end does and raises what the cell raised."""

    def __init__(self, shell: InteractiveShell, recorder: Recorder, capsys: Any) -> None:
        self.shell = shell
        self.recorder = recorder
        self.capsys = capsys
        self.outputs: list[str] = []

    def run(self, code: str) -> Any:
        result = self.shell.run_cell(code, store_history=False)
        self._collect(result)
        if result.error_before_exec is not None:
            raise result.error_before_exec
        if result.error_in_exec is not None:
            raise result.error_in_exec
        return result.result

    def line(self, magic: str, line: str = "") -> Any:
        return self.run(f"%{magic} {line}")

    def cell(self, magic: str, line: str, body: str) -> Any:
        return self.run(f"%%{magic} {line}\n{body}")

    def _collect(self, result: Any) -> None:
        if result.result is not None:
            try:
                data, _ = self.shell.display_formatter.format(result.result)
                self.outputs.extend(str(v) for v in data.values())
            except Exception:  # noqa: BLE001 - a repr failure is itself checked by the tests
                self.outputs.append(repr(result.result))
        if result.error_in_exec is not None:
            self.outputs.append(str(result.error_in_exec))

    def stdout(self) -> str:
        out = self.capsys.readouterr()
        self.outputs.extend([out.out, out.err])
        return out.out + out.err

    def all_text(self) -> str:
        self.stdout()
        return "\n".join(self.outputs + self.recorder.texts())


def make_shell(tmp_path: Path) -> tuple[InteractiveShell, Recorder]:
    """A fresh singleton shell (pai_magic.job() reaches it through get_ipython())."""
    InteractiveShell.clear_instance()
    config = Config()
    config.HistoryManager.enabled = False
    config.HistoryManager.hist_file = ":memory:"
    config.InteractiveShell.colors = "NoColor"
    shell = InteractiveShell.instance(config=config, ipython_dir=str(tmp_path / "ipython"))
    recorder = Recorder(shell=shell)
    shell.display_pub = recorder
    shell.run_line_magic("load_ext", "pai_magic")
    return shell, recorder


def known_secrets(extra: list[str]) -> set[str]:
    """The secrets of this test: given ones plus every token in the profile file."""
    found = {s for s in extra if s}
    from pai_magic.core.paths import config_dir

    path = config_dir() / "profiles.yaml"
    if path.exists():
        data = yaml.safe_load(path.read_text()) or {}
        for prof in (data.get("profiles") or {}).values():
            for key in ("token", "registry_password"):
                if prof.get(key):
                    found.add(str(prof[key]))
    return found


def leaked(text: str, secrets: set[str]) -> list[str]:
    """The secrets (shown only by their first 3 characters) that appear in ``text``."""
    return [f"{s[:3]}…" for s in sorted(secrets) if len(s) >= 6 and s in text]


@pytest.fixture
def secrets_to_hide() -> list[str]:
    """Tests append secrets they create; the backend's are added by ``pai``."""
    return []


@pytest.fixture
def shell(tmp_path: Path, capsys: Any, secrets_to_hide: list[str]) -> Iterator[Driver]:
    sh, recorder = make_shell(tmp_path)
    driver = Driver(sh, recorder, capsys)
    try:
        yield driver
    finally:
        try:
            sh.run_line_magic("unload_ext", "pai_magic")
        finally:
            text = driver.all_text()
            CAPTURED.append(text)
            InteractiveShell.clear_instance()
            secrets = known_secrets(secrets_to_hide)
            SECRETS_SEEN.update(secrets)
            found = leaked(text, secrets)
            assert not found, f"secret(s) shown in a magic's output: {found}"


@pytest.fixture
def pai(shell: Driver, local_backend: Any, secrets_to_hide: list[str], monkeypatch: pytest.MonkeyPatch) -> Driver:
    """The shell, logged in to the session's embedded backend through %pai_login (getpass patched)."""
    secrets_to_hide.extend([local_backend.password, local_backend.token])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": local_backend.password)
    shell.run("%config PaiMagics.poll_interval = 0.2")
    shell.line("pai_login", f"{local_backend.url} --user {local_backend.user}")
    shell.backend = local_backend  # type: ignore[attr-defined]
    return shell
