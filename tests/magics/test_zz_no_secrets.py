"""No token and no password in anything the magics show.

Every test of this folder that uses the ``shell`` fixture is scanned at its end (see
conftest.py): displays, status lines, cell results, stdout/stderr and error messages,
against the backend's password and token and every token in that test's profile file.
This file checks the scanner itself and runs a session that touches every output path
with secrets around, including a job that prints its whole environment.
"""
from __future__ import annotations

from tests.magics.conftest import CAPTURED, SECRETS_SEEN, known_secrets, leaked


def test_the_scanner_finds_a_planted_secret():
    assert leaked("before s3cr3t-value after", {"s3cr3t-value"}) == ["s3c…"]
    assert leaked("nothing here", {"s3cr3t-value"}) == []


def test_a_full_session_shows_no_secret(pai, local_backend, secrets_to_hide):
    pai.line("pai_profile")
    pai.line("pai_profile", pai.line("pai_profile").rows[0][1])
    handle = pai.cell("pai_job", "envdump --wait -o job", "env | sort\necho token-check")
    pai.line("pai_logs", handle.name)
    pai.line("pai_logs", f"{handle.name} --stderr")
    pai.line("pai_job", handle.name)
    pai.line("pai_jobs", "--all")
    pai.run("job")
    pai.run("repr(job), str(job), job._repr_html_()")
    pai.cell("pai_job", "--dry-run", "echo dry")
    text = pai.all_text()
    assert "token-check" in text and "PAI_JOB_NAME" in text, "the scan sees the real outputs"
    secrets = known_secrets([local_backend.password, local_backend.token])
    assert len(secrets) >= 3, "password, fixture token and the token %pai_login saved"
    assert leaked(text, secrets) == []


def test_every_scanned_test_had_secrets_to_look_for():
    """When run with the rest of the folder, the per-test scans had real secrets and output."""
    if len(CAPTURED) > 2:
        assert SECRETS_SEEN, "the scans knew no secret at all"
        assert sum(len(t) for t in CAPTURED) > 10_000
