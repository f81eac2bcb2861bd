"""%pai_logout against the real embedded backend: the token of a %pai_login is revoked on the
cluster and forgotten here; bad input is a one-line UsageError; %pai_help lists it."""
from __future__ import annotations

import pytest
import requests
from IPython.core.error import UsageError

from pai_magic.core.profiles import load_profile


def test_pai_logout_revokes_a_password_login_and_the_next_call_asks_to_log_in(pai, secrets_to_hide):
    token = load_profile().token
    secrets_to_hide.append(token)
    backend = pai.backend
    view = pai.line("pai_logout")
    assert view.text.startswith(f"Logged out of {backend.url}") and "revoked" in view.text
    assert requests.get(f"{backend.api}/jobs", headers=backend.headers(token), timeout=30).status_code == 401
    assert load_profile().token == ""
    with pytest.raises(UsageError) as info:  # the session's client was dropped with the token
        pai.line("pai_jobs")
    assert "\n" not in str(info.value) and "login" in str(info.value).lower()
    assert "nothing to do" in pai.line("pai_logout").text


def test_pai_logout_bad_input_is_one_line_and_help_lists_it(pai):
    for line in ("--profile 'no good'", "--revoke=yes", "--profile nope"):
        with pytest.raises(UsageError) as info:
            pai.line("pai_logout", line)
        assert "\n" not in str(info.value), line
    assert load_profile().token  # still logged in: nothing was changed
    assert "%pai_logout" in [row[0] for row in pai.line("pai_help").rows]
