"""``%pai_doctor --profile NAME`` (and ``pai-magic doctor --profile NAME``) against the real
embedded backend: a named profile is checked instead of the session's; an unknown or malformed
name is one line (UsageError / exit 2) naming the profiles that exist and how to log in."""
from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from pai_magic.cli import main as cli_main
from pai_magic.core.profiles import Profile, save_profile


@pytest.fixture
def two_profiles(local_backend):
    """``lab`` is the embedded backend (active), ``dead`` a cluster that does not answer."""
    save_profile(Profile(name="dead", url="http://127.0.0.1:9", user="nobody", token="t-dead-000000"))
    save_profile(Profile(name="lab", url=local_backend.url, user=local_backend.user, token=local_backend.token))
    return local_backend


def _rows(view):
    return {line.split(":", 1)[0].split(None, 1)[-1].strip(): line for line in view.text.splitlines() if ":" in line}


def test_magic_checks_the_named_profile_not_the_current_one(shell, two_profiles, secrets_to_hide):
    secrets_to_hide.append(two_profiles.token)
    current = shell.line("pai_doctor", "")
    assert "profile 'lab'" in current.text and two_profiles.url in current.text
    named = shell.line("pai_doctor", "--profile dead")
    assert "profile 'dead'" in named.text and "http://127.0.0.1:9" in named.text
    assert "does not answer" in _rows(named)["cluster"], named.text
    assert "profile 'lab'" not in named.text
    # the session's choice is untouched: a later plain %pai_doctor checks lab again
    assert "profile 'lab'" in shell.line("pai_doctor", "").text


def test_magic_unknown_or_malformed_profile_is_one_usage_line(shell, two_profiles):
    with pytest.raises(UsageError) as info:
        shell.line("pai_doctor", "--profile nope")
    message = str(info.value)
    assert "\n" not in message and "'nope'" in message, message
    assert "known: dead, lab" in message and "%pai_login URL --profile nope" in message, message
    with pytest.raises(UsageError) as info:
        shell.line("pai_doctor", "--profile 'a b'")
    assert "\n" not in str(info.value) and "is not valid" in str(info.value) and "e.g. lab" in str(info.value)


def test_magic_help_lists_the_option(shell):
    from pai_magic.magics.args import help_text

    func = shell.shell.magics_manager.magics["line"]["pai_doctor"]
    assert "--profile NAME" in help_text(func)


def test_cli_unknown_profile_exits_2_with_one_line(two_profiles, capsys):
    code = cli_main(["doctor", "--profile", "nope"])
    out, err = capsys.readouterr()
    assert code == 2 and not out, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "'nope'" in lines[0] and "known: dead, lab" in lines[0], err
    assert cli_main(["doctor", "--profile", "dead"]) == 1  # a known profile: the report, whose cluster fails
    out, _ = capsys.readouterr()
    assert "profile 'dead'" in out and "FIX  cluster" in out, out
