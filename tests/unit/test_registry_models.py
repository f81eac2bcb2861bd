"""Image references, Link parsing, filters, error mapping and doctor: pure functions."""
from __future__ import annotations

import json

import pytest

from pai_magic.core.errors import (
    AuthError,
    InvalidInputError,
    NotFoundError,
    PaiError,
    RateLimitedError,
    ServerError,
)
from pai_magic.core.registry.client import _next_link, match_filter
from pai_magic.core.registry.doctor import check_insecure_registry
from pai_magic.core.registry.models import DeleteResult, ImageDetail, ImageRef, parse_reference
from pai_magic.core.registry.transport import error_for


@pytest.mark.parametrize("text,host,expected", [
    ("team/train:v1", None, ImageRef("team/train", "v1")),
    ("train", None, ImageRef("train", "latest")),
    ("10.0.0.5:5000/team/train:v1", "10.0.0.5:5000", ImageRef("team/train", "v1")),
    ("http://10.0.0.5:5000/team/train", "10.0.0.5:5000", ImageRef("team/train", "latest")),
    ("a/b@sha256:" + "a" * 64, None, ImageRef("a/b", None, "sha256:" + "a" * 64)),
    ("a/b:t@sha256:" + "b" * 64, None, ImageRef("a/b", "t", "sha256:" + "b" * 64)),
    ("localhost/x:1", "localhost", ImageRef("x", "1")),
])
def test_parse_reference(text, host, expected):
    assert parse_reference(text, host) == expected


def test_reference_string_and_manifest_reference():
    ref = parse_reference("a/b:t@sha256:" + "c" * 64)
    assert str(ref) == "a/b:t@sha256:" + "c" * 64
    assert ref.reference == "sha256:" + "c" * 64
    assert parse_reference("a/b", default_tag=None).tag is None


@pytest.mark.parametrize("text", ["", "Team/Train:v1", "a//b", "a/b:bad tag", "a/b@sha256:xyz",
                                  "other.host:5000/a:b"])
def test_bad_references_are_one_line(text):
    with pytest.raises(InvalidInputError) as err:
        parse_reference(text, "10.0.0.5:5000")
    assert "\n" not in str(err.value)


def test_next_link_relative_and_absolute():
    assert _next_link('</v2/_catalog?last=b&n=2>; rel="next"') == "/v2/_catalog?last=b&n=2"
    assert _next_link('<http://h/v2/_catalog?last=x>; rel=next') == "http://h/v2/_catalog?last=x"
    assert _next_link('</a>; rel="prev", </b>; rel="next"') == "/b"
    assert _next_link(None) is None and _next_link('</a>; rel="prev"') is None


def test_match_filter_glob_or_substring():
    assert match_filter("team/train", "train")
    assert match_filter("team/train", "team/*")
    assert not match_filter("team/train", "other/*")
    assert match_filter("x", None)


def _body(code, message="m"):
    return json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()


@pytest.mark.parametrize("status,body,what,kind,needle", [
    (401, _body("UNAUTHORIZED"), "the catalog", AuthError, "registry_user"),
    (404, _body("NAME_UNKNOWN"), "repository a/b", NotFoundError, "Repository a/b does not exist"),
    (404, _body("MANIFEST_UNKNOWN"), "image a/b:v9", NotFoundError, "Image a/b:v9 does not exist"),
    (404, b"<html><body>nginx 404</body></html>", "the catalog", NotFoundError, "HTML"),
    (405, _body("UNSUPPORTED"), "delete of image a@sha256:1", PaiError, "storage.delete.enabled: true"),
    (429, b"slow down", "x", RateLimitedError, "wait"),
    (502, b"<html>Bad Gateway</html>", "x", ServerError, "proxy"),
    (400, _body("TAG_INVALID", "manifest tag did not match URI"), "image a:b", InvalidInputError,
     "TAG_INVALID: manifest tag did not match URI"),
])
def test_error_mapping_is_one_line_and_typed(status, body, what, kind, needle):
    err = error_for(status, body, what)
    assert type(err) is kind or isinstance(err, kind)
    assert needle in str(err)
    assert "\n" not in str(err)


def test_delete_warning_names_the_other_tags():
    assert DeleteResult("a:b", "sha256:" + "1" * 64).warning is None
    warning = DeleteResult("a:b", "sha256:" + "1" * 64, ["c", "d"]).warning
    assert "c, d" in warning and "gone too" in warning


def test_detail_platform_text():
    assert ImageDetail("a", "b", "d", "m", os="linux", architecture="arm64", variant="v8").platform == "linux/arm64/v8"
    assert ImageDetail("a", "b", "d", "m").platform == "-"


# ---------------------------------------------------------------------------- doctor
def test_doctor_https_and_loopback_need_nothing(tmp_path):
    assert check_insecure_registry("https://reg.lab", tmp_path / "d.json").ok
    assert check_insecure_registry("http://127.0.0.1:5000", tmp_path / "d.json").ok


def test_doctor_missing_file_gives_snippet_and_restart_hint(tmp_path):
    check = check_insecure_registry("http://10.0.0.5:5000", tmp_path / "daemon.json")
    assert not check.ok
    assert json.loads(check.snippet) == {"insecure-registries": ["10.0.0.5:5000"]}
    assert "restart" in check.hint and "daemon.json" in check.hint


def test_doctor_merges_existing_config(tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"log-driver": "json-file", "insecure-registries": ["10.1.1.1:5000"]}))
    check = check_insecure_registry("http://10.0.0.5:5000", path)
    assert not check.ok
    assert json.loads(check.snippet) == {"log-driver": "json-file",
                                         "insecure-registries": ["10.1.1.1:5000", "10.0.0.5:5000"]}


@pytest.mark.parametrize("entry", ["10.0.0.5:5000", "http://10.0.0.5:5000", "10.0.0.0/8"])
def test_doctor_listed_entries(tmp_path, entry):
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"insecure-registries": [entry]}))
    assert check_insecure_registry("http://10.0.0.5:5000", path).ok


def test_doctor_broken_json_and_no_scheme(tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text("{oops")
    check = check_insecure_registry("http://10.0.0.5:5000", path)
    assert not check.ok and "not valid JSON" in check.message
    with pytest.raises(InvalidInputError):
        check_insecure_registry("10.0.0.5:5000", path)
