"""The user's SSH key: search order, generation (OpenSSH format, 0600), passphrases that
are passed (never prompted for), and one-line errors for anything unusable."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from pai_magic.core.errors import AuthError, InvalidInputError, NotFoundError
from pai_magic.core.ssh import keys


def _write_key(path, key, passphrase: bytes | None = None) -> str:
    enc = serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, enc))
    os.chmod(path, 0o600)
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return pub


@pytest.fixture
def home(tmp_path, monkeypatch):
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("HOME", str(h))
    return h


def test_generated_key_is_openssh_ed25519_private_0600_and_reused(home):
    assert keys.find_key() is None
    key = keys.ensure_key()
    assert key.generated and key.private_path == keys.pai_ssh_dir() / "id_ed25519"
    assert stat.S_IMODE(key.private_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.private_path.parent.stat().st_mode) == 0o700
    assert key.private_path.read_bytes().startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    assert key.key_type == "ssh-ed25519"
    # paramiko signs with it, and the public line is the one beside it
    pkey = key.load()
    assert isinstance(pkey, paramiko.Ed25519Key)
    assert key.public_line.split()[1] == pkey.get_base64()
    assert (key.private_path.parent / "id_ed25519.pub").read_text().strip() == key.public_line
    assert key.fingerprint == pkey.fingerprint
    # the second call finds the same pair instead of generating another
    again = keys.ensure_key()
    assert again.private_path == key.private_path and again.public_line == key.public_line


def test_stock_ssh_keygen_reads_the_generated_key(home):
    if not shutil.which("ssh-keygen"):
        pytest.skip("ssh-keygen not installed")
    key = keys.ensure_key()
    out = subprocess.run(["ssh-keygen", "-y", "-f", str(key.private_path)], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[1] == key.public_line.split()[1]


def test_user_keys_come_first_ed25519_before_rsa(home):
    rsa_pub = _write_key(home / ".ssh" / "id_rsa", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    found = keys.find_key()
    assert found is not None and found.private_path == home / ".ssh" / "id_rsa" and not found.generated
    assert found.public_line.split()[1] == rsa_pub.split()[1]  # derived: there is no id_rsa.pub
    assert isinstance(found.load(), paramiko.RSAKey)
    ed_pub = _write_key(home / ".ssh" / "id_ed25519", ed25519.Ed25519PrivateKey.generate())
    found = keys.ensure_key()
    assert found.private_path == home / ".ssh" / "id_ed25519"
    assert found.public_line.split()[1] == ed_pub.split()[1]
    assert not (keys.pai_ssh_dir() / "id_ed25519").exists()  # nothing generated


def test_a_configured_path_wins_and_a_missing_one_says_what_to_do(home, tmp_path):
    _write_key(home / ".ssh" / "id_ed25519", ed25519.Ed25519PrivateKey.generate())
    custom = tmp_path / "keys" / "cluster_key"
    pub = _write_key(custom, ed25519.Ed25519PrivateKey.generate())
    (custom.parent / "cluster_key.pub").write_text(pub + " me@laptop\n")
    found = keys.ensure_key(str(custom))
    assert found.private_path == custom and found.public_line == pub + " me@laptop"
    with pytest.raises(NotFoundError) as err:
        keys.ensure_key(tmp_path / "nope")
    assert "\n" not in str(err.value) and "ssh_key" in str(err.value)


def test_passphrase_is_an_argument_never_a_prompt(home, tmp_path):
    path = tmp_path / "locked"
    _write_key(path, ed25519.Ed25519PrivateKey.generate(), passphrase=b"s3cret-phrase")
    with pytest.raises(AuthError) as err:
        keys.load_private_key(path)  # stdin is not read: pytest would fail on a prompt
    message = str(err.value)
    assert "passphrase" in message and "\n" not in message
    with pytest.raises(AuthError) as err:
        keys.load_private_key(path, "wrong")
    assert "s3cret-phrase" not in str(err.value) and "\n" not in str(err.value)
    pkey = keys.load_private_key(path, "s3cret-phrase")
    assert isinstance(pkey, paramiko.Ed25519Key)
    # the public line of a locked key without .pub needs the passphrase too
    with pytest.raises(AuthError):
        keys.read_public_line(path)
    assert keys.read_public_line(path, "s3cret-phrase").split()[1] == pkey.get_base64()


def test_not_a_key_and_no_overwrite(tmp_path):
    junk = tmp_path / "junk"
    junk.write_text("hello, not a key\n")
    with pytest.raises(InvalidInputError) as err:
        keys.load_private_key(junk)
    assert "\n" not in str(err.value)
    existing = tmp_path / "id_ed25519"
    keys.generate_key(existing)
    before = existing.read_bytes()
    with pytest.raises(InvalidInputError):
        keys.generate_key(existing)
    assert existing.read_bytes() == before


def test_key_repr_holds_no_private_material(home):
    key = keys.ensure_key()
    private = key.private_path.read_text()
    body = "".join(private.splitlines()[1:-1])
    assert body[:40] not in repr(key)
