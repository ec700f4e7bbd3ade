"""Shop API keys (generated here, stored as SHA-256), the admin token check and delivery PINs
(stored salted and hashed)."""

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


# A generated delivery PIN has this many digits (a given one 4 to 8).
PIN_DIGITS = 4
# A stored PIN is ``sha256$<salt hex>$<HMAC-SHA256(salt, pin) hex>``. Deliberately fast: a PIN
# of 4 to 8 digits has at most 10^8 values, so an attacker holding the database finds it by
# trying them all whatever the hash costs (10^4 PBKDF2 rounds would only turn microseconds into
# a few seconds per order). Slow hashing buys nothing here; the salt keeps equal PINs apart and
# the hash keeps PINs out of the database in clear. Online guessing is what the PIN resists, and
# that is limited by the API, not by the hash. (The project is unreleased: no stored PIN uses the
# former PBKDF2 scheme.)
PIN_HASH_SCHEME = "sha256"
PIN_SALT_BYTES = 16


def generate_pin() -> str:
    """A random delivery PIN of ``PIN_DIGITS`` digits (leading zeros kept)."""
    return f"{secrets.randbelow(10**PIN_DIGITS):0{PIN_DIGITS}d}"


def _pin_digest(pin: str, salt: bytes) -> str:
    return hmac.digest(salt, pin.encode("ascii"), "sha256").hex()  # one C call


def hash_pin(pin: str) -> str:
    """The stored form of a PIN: ``sha256$<salt hex>$<digest hex>`` (about 2 us)."""
    salt = secrets.token_bytes(PIN_SALT_BYTES)
    return f"{PIN_HASH_SCHEME}${salt.hex()}${_pin_digest(pin, salt)}"


def verify_pin(pin: str, stored: str | None) -> bool:
    """Whether ``pin`` is the PIN ``stored`` was made from (constant time); no PIN: ``False``."""
    if stored is None or not pin.isascii():
        return False
    scheme, _, rest = stored.partition("$")
    salt, _, digest = rest.partition("$")
    if scheme != PIN_HASH_SCHEME:  # pragma: no cover - one scheme so far
        return False
    return tokens_equal(_pin_digest(pin, bytes.fromhex(salt)), digest)
