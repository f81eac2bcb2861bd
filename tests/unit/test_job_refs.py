"""The job reference and list-filter checks every face (magics, CLI, server) calls."""
from __future__ import annotations

import pytest

from pai_magic.core.client import check_list_filter, parse_job_ref, split_job_name
from pai_magic.core.errors import InvalidInputError
from pai_magic.core.models import check_job_state


def test_job_refs():
    assert parse_job_ref(" train_1 ") == (None, "train_1")
    assert parse_job_ref("alice.b~train_1") == ("alice.b", "train_1")
    assert split_job_name("train_1", "bob") == ("bob", "train_1")
    for bad in ("", "a b", "x~", "~x", "a~b~c", "../x", "a b~x"):
        with pytest.raises(InvalidInputError, match="is not a job name"):
            parse_job_ref(bad)
    with pytest.raises(InvalidInputError, match="Whose job"):
        split_job_name("train_1", None)


def test_list_filters_name_their_field():
    assert check_job_state(" succeeded ") == "SUCCEEDED" and check_job_state("") is None
    assert check_list_filter(" alice ", "user") == "alice" and check_list_filter(None, "vc") is None
    for value, field, check in (("DONE", "state", check_job_state),
                                ("a b", "user", lambda v: check_list_filter(v, "user")),
                                ("x/y", "vc", lambda v: check_list_filter(v, "vc"))):
        with pytest.raises(InvalidInputError) as caught:
            check(value)
        assert caught.value.field == field and "\n" not in str(caught.value)
