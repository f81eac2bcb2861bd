"""Storage details as a v1.8 rest-server sends them carry credentials; none may reach a face.

Shapes from microsoft/pai v1.8.0 src/rest-server/src/models/v2/storage.js: azureFile adds
``accountName``/``accountKey``, azureBlob ``accountKey`` or ``accountSASToken``, samba
``username``/``password`` to ``data``.
"""
from __future__ import annotations

import json

import pytest

from pai_magic.core.storage.info import StorageInfo

SECRET = "s3cr3t-value-never-shown"


@pytest.mark.parametrize("kind,data", [
    ("azureFile", {"shareName": "share", "accountName": "acct", "accountKey": SECRET}),
    ("azureBlob", {"containerName": "c", "accountName": "acct", "accountKey": SECRET}),
    ("azureBlob", {"containerName": "c", "accountName": "acct", "accountSASToken": SECRET}),
    ("samba", {"address": "//srv/share", "username": "u", "password": SECRET}),
])
def test_credentials_in_storage_data_are_dropped(kind, data):
    info = StorageInfo.from_api({"name": "s", "share": True, "volumeName": "v", "default": False},
                                {"name": "s", "type": kind, "data": data, "readOnly": False})
    shown = json.dumps(info.as_dict()) + repr(info)
    assert SECRET not in shown
    assert info.data.get("accountName", "acct") == "acct"  # what is not a secret stays
