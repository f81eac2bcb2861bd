"""Request bodies the server extension will not read answer its JSON error, however they come.

Before, a body over the Jupyter server's max_body_size got tornado's bare 400 and a reset
connection (chunked or not), and everything below that size was buffered before Jupyter's
authentication ran. Now the extension streams bodies and answers 413 with its one JSON line
as soon as a body passes its limit (1 MiB, or the server's max_body_size when lower).
Real HTTP against a real ``jupyter server`` with the extension enabled.
"""
from __future__ import annotations

import json
from typing import Iterator

import pytest
import requests

from tests.fixtures.chunked import send_chunked
from tests.server.conftest import _start
from tests.server.jupyter_process import JupyterProcess

PATH = "/pai-magic/api/profiles"
TOO_LARGE = ("The request body is over 1024 kB, the most this API reads: send the JSON object the API "
             "describes (pai_magic/server/openapi.yaml), not files.")


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterProcess]:
    proc = _start(tmp_path_factory.mktemp("jupyter-bodies"))
    try:
        yield proc
    finally:
        proc.stop()


def test_a_body_over_the_limit_gets_the_json_413_chunked_or_not(jupyter):
    headers = {"Authorization": f"token {jupyter.token}", "Content-Type": "application/json"}
    base = f"http://127.0.0.1:{jupyter.port}"
    shapes = {
        "many chunks": (b" " * 16384 for _ in range(128)),  # 2 MiB
        "one chunk that declares 64 MiB": iter([b" " * 65536] * 32),
        "a body that never ends": iter(lambda: b" " * 65536, None),
    }
    for shape, chunks in shapes.items():
        status, ctype, body, sent = send_chunked(base, PATH, chunks, headers,
                                                 64 << 20 if "declares" in shape else None)
        assert (status, ctype.split(";")[0]) == (413, "application/json"), (shape, status, body[:200])
        assert json.loads(body) == {"error": TOO_LARGE, "field": None}, (shape, body[:200])
        assert sent < 32 << 20, (shape, sent)  # answered while the body still came
    resp = jupyter.post("pai-magic/api/profiles", data=b" " * (3 << 20), headers={"Content-Type": "application/json"})
    assert resp.status_code == 413 and resp.json() == {"error": TOO_LARGE, "field": None}, resp.text[:200]

    # a chunked body within the limit is read as any other; the server still answers
    status, _, body, _ = send_chunked(base, PATH, iter([b'{"prof', b'ile": "nope"}']), headers)
    assert status == 404 and "No profile named 'nope'" in json.loads(body)["error"], body[:200]
    assert jupyter.get("pai-magic/api/status").status_code == 200


def test_without_jupyters_token_nothing_of_the_body_is_read(jupyter):
    """Authentication comes first: a JSON 403 at once, not after buffering the body."""
    base = f"http://127.0.0.1:{jupyter.port}"
    status, ctype, body, sent = send_chunked(base, PATH, iter(lambda: b" " * 65536, None),
                                             {"Content-Type": "application/json"})
    assert (status, ctype.split(";")[0]) == (403, "application/json"), (status, body[:200])
    assert "\n" not in json.loads(body)["error"] and sent < 32 << 20, (body[:200], sent)
    assert requests.get(f"{base}/pai-magic/api/status", timeout=30).status_code == 403
