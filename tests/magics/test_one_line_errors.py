"""A PaiError escaping from user code in a cell is one line, like a magic's error."""
from __future__ import annotations

from IPython.core.interactiveshell import InteractiveShell


def test_reattach_typo_is_one_line_and_the_hook_is_given_back(monkeypatch, capsys, local_backend):
    monkeypatch.setenv("PAI_URL", local_backend.url)
    monkeypatch.setenv("PAI_USER", local_backend.user)
    monkeypatch.setenv("PAI_TOKEN", local_backend.token)
    shell = InteractiveShell.instance()
    try:
        shell.run_line_magic("load_ext", "pai_magic")
        result = shell.run_cell("import pai_magic\npai_magic.job('no_such_job_xyz')")
        assert not result.success
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("NotFoundError: ") and "no_such_job_xyz" in lines[0]
        assert "Traceback" not in err and "%pai_jobs" in lines[0]
        assert shell.run_cell("1 + 1").result == 2  # the shell goes on
        shell.run_line_magic("unload_ext", "pai_magic")
        assert shell.custom_exceptions == ()
    finally:
        InteractiveShell.clear_instance()


def test_another_extensions_hook_is_left_alone():
    shell = InteractiveShell.instance()
    try:
        def theirs(self, etype, value, tb, tb_offset=None):
            return None

        shell.set_custom_exc((KeyError,), theirs)
        shell.run_line_magic("load_ext", "pai_magic")
        assert shell.custom_exceptions == (KeyError,)
    finally:
        InteractiveShell.clear_instance()


def test_an_escaping_registry_error_is_not_called_a_cluster_token_problem(registry_basic, monkeypatch, capsys):
    monkeypatch.setenv("PAI_REGISTRY", registry_basic.url)
    shell = InteractiveShell.instance()
    try:
        shell.run_line_magic("load_ext", "pai_magic")
        shell.run_cell("from pai_magic.core.registry import RegistryClient\n"
                       "RegistryClient.from_profile(None).repositories()")
        lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("AuthError: ")
        assert "refused the token" not in lines[0] and "%pai_login" not in lines[0]
    finally:
        InteractiveShell.clear_instance()
