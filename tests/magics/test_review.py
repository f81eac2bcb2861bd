"""Defects found using the magics as a researcher does (against the real embedded backend)."""
from __future__ import annotations

import time

import pytest
from IPython.core.error import UsageError

from pai_magic.core.errors import AuthError, NotFoundError
from pai_magic.magics.errors import friendly_message
from pai_magic.magics.status import register_status_extra, unregister_status_extra

WAIT = 60  # seconds; a bound for a hung backend, never a timing assertion


@pytest.mark.parametrize("core_text, magic", [
    ("check the job name with `pai-magic jobs` (USER~NAME for another user's job).", "%pai_jobs"),
    ("check the task ROLE/INDEX with `pai-magic job NAME`", "%pai_job NAME"),
    ("stop it with `pai-magic stop train_1`.", "%pai_stop train_1"),
    ("look at its logs (pai-magic logs job_1).", "%pai_logs job_1"),
    ("(pai-magic ssh-info NAME).", "%pai_ssh_info NAME"),
    ("add the key (pai-magic ssh-key --add) first", "%pai_ssh_key --add"),
    ("run `pai-magic login URL --profile lab`.", "%pai_login URL --profile lab"),
])
def test_core_hints_name_the_magic_not_the_cli_verb(core_text, magic):
    message = friendly_message(NotFoundError(core_text))
    assert magic in message and "pai-magic" not in message


def test_a_hint_given_in_both_faces_is_said_once():
    message = friendly_message(NotFoundError("No such repository: list them with %pai_images / pai-magic images."))
    assert message.count("%pai_images") == 1 and "pai-magic" not in message


def test_unknown_job_points_at_pai_jobs(pai):
    with pytest.raises(UsageError) as info:
        pai.line("pai_job", "no_such_job_zz")
    text = str(info.value)
    assert "%pai_jobs" in text and "pai-magic" not in text and "\n" not in text


@pytest.mark.parametrize("display", ["html", "text"])
def test_a_failed_status_helper_is_retried_and_its_note_clears(pai, display):
    """A status helper (the SSH lines) that fails once, e.g. on a refused token that the user
    then renews, used to leave its error under the status until the job changed state, worded
    as if the watch had paused; it is now retried on the next tick and the note goes away.
    In a terminal a changed line used to go unprinted when the NUMBER of lines stayed the same."""
    pai.run(f"%config PaiMagics.display = '{display}'")
    calls: list[str] = []

    def flaky(session, name, user, state):
        if state != "RUNNING":
            return None
        calls.append(state)
        if len(calls) == 1:
            raise AuthError("Token expired or refused by http://x: run `pai-magic login` / %pai_login.")
        return [f"helper ok for {name}"]

    register_status_extra(flaky)
    try:
        handle = pai.cell("pai_job", "flaky_extra", "sleep 30")
        deadline = time.monotonic() + WAIT
        while not any(f"helper ok for {handle.name}" in t for t in pai.recorder.texts()):
            assert time.monotonic() < deadline, "the helper was never asked again after it failed"
            time.sleep(0.1)
        texts = [t for t in pai.recorder.texts() if t.startswith(f"[pai] {handle.name}:")]
        failed_notes = [t for t in texts if "Token expired" in t]
        assert failed_notes, "the failure was shown while it lasted"
        assert all("watch paused" not in t for t in failed_notes), "the watch never paused: the note must not say so"
        assert "Token expired" not in texts[-1], "the note of a cleared failure lingers"
    finally:
        unregister_status_extra(flaky)
        pai.line("pai_stop", handle.name)
        handle.wait(timeout=WAIT, show=False)


def test_a_job_shown_twice_in_a_terminal_prints_each_change_once(pai):
    """In a terminal, displaying a handle again (``job``) used to make both text statuses
    print every later change: the STOPPED line came out twice."""
    pai.run("%config PaiMagics.display = 'text'")
    handle = pai.cell("pai_job", "twice -o job", "sleep 30")
    deadline = time.monotonic() + WAIT
    while not any(t.startswith(f"[pai] {handle.name}: RUNNING") for t in pai.recorder.texts()):
        assert time.monotonic() < deadline, "the job never ran"
        time.sleep(0.1)
    pai.run("job")  # shown again, as a researcher does to look at it
    pai.line("pai_stop", handle.name)
    handle.wait(timeout=WAIT, show=False)
    deadline = time.monotonic() + WAIT
    while not any(t.startswith(f"[pai] {handle.name}: STOPPED") for t in pai.recorder.texts()):
        assert time.monotonic() < deadline, "the status never showed STOPPED"
        time.sleep(0.1)
    time.sleep(1)  # let a second (duplicate) print arrive if there is one; never a timing assertion
    stopped = [t for t in pai.recorder.texts() if t.startswith(f"[pai] {handle.name}: STOPPED")]
    assert len(stopped) == 1, stopped
