"""Passwords and tokens of the embedded backend, shaped like the real rest-server's.

Tokens are HS256 JWTs with the payload the rest-server signs (``username``,
``application``, ``jobSpecific``, ``encodedFrameworkName``, ``iat``, ``exp``), so a client
that decodes a token (to show its expiry, say) behaves the same against a cluster. A
token is valid only while it is also listed in the store: logout and revoke delete it
there, exactly as the real server deletes it from its Kubernetes secret.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from typing import Any

USER_TOKEN_SECONDS = 7 * 24 * 3600  # the rest-server's default, whatever `expiration` says

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2 ** 14, 8, 1


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                         dklen=len(digest) // 2)
    return hmac.compare_digest(got.hex(), digest)


def generate_password() -> str:
    return secrets.token_urlsafe(18)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Signs and checks JWTs with the backend's secret (kept 0600 in the data dir)."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def __repr__(self) -> str:
        return "TokenSigner(<secret>)"

    def sign(self, username: str, application: bool = False) -> tuple[str, float | None]:
        now = int(time.time())
        payload: dict[str, Any] = {"username": username, "application": application, "jobSpecific": False,
                                   "encodedFrameworkName": "", "iat": now}
        expires: float | None = None
        if not application:
            expires = now + USER_TOKEN_SECONDS
            payload["exp"] = int(expires)
        # a random id keeps two tokens signed in the same second distinct
        payload["jti"] = secrets.token_hex(8)
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        sig = _b64(hmac.new(self._secret, f"{header}.{body}".encode(), hashlib.sha256).digest())
        return f"{header}.{body}.{sig}", expires

    def verify(self, token: str) -> dict[str, Any] | None:
        """The payload of a well-signed, unexpired token; None otherwise (never raises)."""
        try:
            header, body, sig = token.split(".")
            want = _b64(hmac.new(self._secret, f"{header}.{body}".encode(), hashlib.sha256).digest())
            if not hmac.compare_digest(want, sig):
                return None
            payload = json.loads(_unb64(body))
        except (ValueError, TypeError, json.JSONDecodeError):
            return None
        if not isinstance(payload, dict) or not payload.get("username"):
            return None
        exp = payload.get("exp")
        if exp is not None and float(exp) < time.time():
            return None
        return payload

    def mac(self, text: str) -> str:
        """A short signature for self-authorizing URLs (log content links)."""
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()[:32]
