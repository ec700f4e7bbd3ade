"""Shop API keys (generated here, stored as SHA-256) and the admin token check."""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "qh_"
# Characters of a key kept in clear to recognise it by (``qh_`` and 8 random characters).
SHOWN_PREFIX_CHARS = 11


def generate_api_key() -> str:
    """A new shop API key: ``qh_`` and 43 URL-safe random characters (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """The stored form of a key: its SHA-256, hex."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def key_prefix(key: str) -> str:
    return key[:SHOWN_PREFIX_CHARS]


def tokens_equal(given: str, expected: str) -> bool:
    """Constant-time comparison of two secrets."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )
