"""The user's SSH key: found, or generated once, never prompted for.

Why this module exists: a kernel has no TTY, so a passphrase can only arrive as an argument;
paramiko cannot generate Ed25519 keys, so generation goes through ``cryptography`` and writes
OpenSSH-format files that stock ``ssh`` reads too. The search order follows what a researcher
already has (``~/.ssh/id_ed25519``, then ``~/.ssh/id_rsa``) before creating a pair owned by
pai_magic under ``config_dir()/ssh/``.
"""
from __future__ import annotations

import base64
import hashlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pai_magic.core.errors import AuthError, InvalidInputError, NotFoundError
from pai_magic.core.paths import config_dir, ensure_private_dir, write_private

if TYPE_CHECKING:  # paramiko loads lazily: %pai_* and the CLI start fast
    import paramiko

USER_KEY_NAMES = ("id_ed25519", "id_rsa")
GENERATED_KEY_NAME = "id_ed25519"


def pai_ssh_dir() -> Path:
    """Where pai_magic keeps its own key pair and known_hosts (inside the config dir)."""
    return config_dir() / "ssh"


@dataclass(frozen=True)
class SshKey:
    """A private key on disk and its public line; the private bytes are never held here."""

    private_path: Path
    public_line: str  # "ssh-ed25519 AAAA... comment"
    generated: bool = False

    @property
    def key_type(self) -> str:
        return self.public_line.split()[0]

    @property
    def fingerprint(self) -> str:
        """``SHA256:...`` exactly as ``ssh-keygen -l`` prints it."""
        return public_key_fingerprint(self.public_line)

    def load(self, passphrase: str | None = None) -> paramiko.PKey:
        """The paramiko key object, decrypted with ``passphrase`` when the file needs one."""
        return load_private_key(self.private_path, passphrase)


def public_key_fingerprint(public_line: str) -> str:
    blob = base64.b64decode(public_line.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def _load_crypto_key(path: Path, passphrase: str | None) -> Any:
    """Parse with ``cryptography`` so every failure becomes a one-line error, never a prompt."""
    from cryptography.hazmat.primitives import serialization

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"SSH key {path} does not exist: give an existing private key path "
                            "or leave it unset to use ~/.ssh/id_ed25519 or a generated key.") from None
    except OSError as exc:
        raise InvalidInputError(f"Cannot read SSH key {path}: {exc.strerror}; check its permissions.") from None
    password = passphrase.encode() if passphrase else None
    loaders = (serialization.load_ssh_private_key, serialization.load_pem_private_key)
    last: Exception | None = None
    for loader in loaders:
        try:
            return loader(data, password=password)
        except TypeError as exc:
            # cryptography says "Password was not given but private key is encrypted" or the
            # reverse; which one depends on whether a passphrase was passed.
            if passphrase:
                last = exc
                continue
            raise AuthError(f"SSH key {path} is protected by a passphrase: pass it as passphrase= "
                            "(magic/CLI: --passphrase-env VAR); pai_magic never prompts.") from None
        except ValueError as exc:
            last = exc
            continue
        except Exception as exc:  # unsupported algorithms raise UnsupportedAlgorithm
            last = exc
            continue
    if passphrase and last is not None and "decrypt" in str(last).lower():
        raise AuthError(f"Wrong passphrase for SSH key {path}: check the passphrase you passed.") from None
    if passphrase:
        raise AuthError(f"Cannot open SSH key {path} with the given passphrase: check it, or "
                        "convert the key with ssh-keygen -p.") from None
    raise InvalidInputError(f"{path} is not an SSH private key pai_magic can read (OpenSSH or PEM "
                            "ed25519/RSA/ECDSA): give another key path.") from None


def load_private_key(path: Path | str, passphrase: str | None = None) -> paramiko.PKey:
    """A paramiko ``PKey`` for ``path`` (ed25519, RSA or ECDSA; OpenSSH or PEM format)."""
    import paramiko
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    path = Path(path).expanduser()
    key = _load_crypto_key(path, passphrase)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        cls: type[paramiko.PKey] = paramiko.Ed25519Key
    elif isinstance(key, rsa.RSAPrivateKey):
        cls = paramiko.RSAKey
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        cls = paramiko.ECDSAKey
    else:
        raise InvalidInputError(f"SSH key {path} has a type pai_magic does not support "
                                "(use ed25519, RSA or ECDSA).")
    try:
        return cls.from_private_key_file(str(path), password=passphrase)
    except paramiko.PasswordRequiredException:
        raise AuthError(f"SSH key {path} is protected by a passphrase: pass it as passphrase= "
                        "(magic/CLI: --passphrase-env VAR); pai_magic never prompts.") from None
    except paramiko.SSHException as exc:
        raise AuthError(f"Cannot load SSH key {path} ({exc}); check the passphrase or the file.") from None


def _public_line_from_private(path: Path, passphrase: str | None, comment: str) -> str:
    from cryptography.hazmat.primitives import serialization

    key = _load_crypto_key(path, passphrase)
    line = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode()
    return f"{line} {comment}".strip()


def read_public_line(private_path: Path | str, passphrase: str | None = None) -> str:
    """The public line of a key: from ``<key>.pub`` when present, else derived from the key."""
    private_path = Path(private_path).expanduser()
    pub = private_path.with_name(private_path.name + ".pub")
    if pub.is_file():
        text = pub.read_text(encoding="utf-8", errors="replace").strip()
        parts = text.split()
        if len(parts) >= 2 and _looks_like_key_type(parts[0]):
            return text
    return _public_line_from_private(private_path, passphrase, "")


def _looks_like_key_type(word: str) -> bool:
    return word.startswith(("ssh-", "ecdsa-", "sk-"))


def user_key_candidates(home: Path | None = None) -> list[Path]:
    """The user's own keys pai_magic would use, in order (only the ones that exist)."""
    ssh_dir = (home or Path.home()) / ".ssh"
    return [ssh_dir / name for name in USER_KEY_NAMES if (ssh_dir / name).is_file()]


def find_key(configured: str | Path | None = None, *, passphrase: str | None = None,
             home: Path | None = None) -> SshKey | None:
    """The key to use without creating one: the configured path, the user's, or ours."""
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise NotFoundError(f"The configured SSH key {path} does not exist: fix the profile's "
                                "ssh_key or remove it to use ~/.ssh/id_ed25519 or a generated key.")
        return SshKey(path, read_public_line(path, passphrase))
    for path in user_key_candidates(home):
        return SshKey(path, read_public_line(path, passphrase))
    ours = pai_ssh_dir() / GENERATED_KEY_NAME
    if ours.is_file():
        return SshKey(ours, read_public_line(ours), generated=True)
    return None


def generate_key(path: Path | None = None, comment: str | None = None) -> SshKey:
    """Create an ed25519 pair in OpenSSH format: private 0600 (dir 0700), public beside it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    path = Path(path) if path else pai_ssh_dir() / GENERATED_KEY_NAME
    if path.exists():
        raise InvalidInputError(f"{path} already exists: pai_magic does not overwrite keys; "
                                "remove it first or use it as it is.")
    ensure_private_dir(path.parent)
    comment = comment or f"pai_magic@{socket.gethostname()}"
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    line = f"{public} {comment}"
    write_private(path, private)
    pub_path = path.with_name(path.name + ".pub")
    pub_path.write_text(line + "\n", encoding="utf-8")
    os.chmod(pub_path, 0o644)
    return SshKey(path, line, generated=True)


def ensure_key(configured: str | Path | None = None, *, passphrase: str | None = None,
               home: Path | None = None) -> SshKey:
    """The key pai_magic connects with, generating ours the first time none exists."""
    found = find_key(configured, passphrase=passphrase, home=home)
    return found if found is not None else generate_key()
