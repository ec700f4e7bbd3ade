"""Webhook signatures, in and out: ``Quarterhour-Signature`` and Shopify's HMAC header.

Our scheme (the same for inbound events and for the events we send)::

    Quarterhour-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

The key is the secret's UTF-8 bytes, the message the ASCII timestamp, a dot and the raw body
bytes exactly as sent (never a re-serialisation). A header may carry several ``v1=`` entries
(one per secret during a rotation); one matching a valid secret is enough. The timestamp must be
within ``tolerance_s`` (300 s) of the receiver's clock, either way. Comparisons are
constant-time (``hmac.compare_digest``).

Shopify: ``X-Shopify-Hmac-Sha256`` is the base64 HMAC-SHA256 of the raw body with the shop's
webhook signing secret; it carries no timestamp (replays are stopped by deduplication on
``X-Shopify-Webhook-Id``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable

SIGNATURE_HEADER = "Quarterhour-Signature"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_S = 300
# Longest signature header we parse (a timestamp and a few signatures).
MAX_HEADER_CHARS = 1_024
SECRET_PREFIX = "whsec_"
# Characters of a secret kept in clear to recognise it by (``whsec_`` and 6 more).
SHOWN_SECRET_CHARS = 12


class SignatureError(Exception):
    """The request is not authentic: missing or malformed header, stale or wrong signature."""


def generate_webhook_secret() -> str:
    """A new signing secret: ``whsec_`` and 64 hex characters (256 bits)."""
    return SECRET_PREFIX + secrets.token_hex(32)


def secret_prefix(secret: str) -> str:
    return secret[:SHOWN_SECRET_CHARS]


def _mac(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()


def sign(secret: str, timestamp_s: int, body: bytes) -> str:
    """The hex ``v1`` signature of ``body`` sent at ``timestamp_s``."""
    return _mac(secret, str(timestamp_s).encode("ascii") + b"." + body).hex()


def signature_header(secrets_: Iterable[str], timestamp_s: int, body: bytes) -> str:
    """The ``Quarterhour-Signature`` value signing ``body`` with each of ``secrets_``."""
    parts = [f"t={timestamp_s}"]
    parts += [f"{SIGNATURE_VERSION}={sign(secret, timestamp_s, body)}" for secret in secrets_]
    return ",".join(parts)


def parse_signature_header(header: str | None) -> tuple[int, list[bytes]]:
    """``(timestamp, signatures)`` of a ``Quarterhour-Signature`` value; ``SignatureError`` when
    missing or malformed. Unknown schemes (``v0=``, ``v2=``) are skipped."""
    if header is None or not header.strip():
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    if len(header) > MAX_HEADER_CHARS:
        raise SignatureError(f"{SIGNATURE_HEADER} header is too long")
    timestamp: int | None = None
    signatures: list[bytes] = []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif name == SIGNATURE_VERSION:
            try:
                signatures.append(bytes.fromhex(value))
            except ValueError:
                continue
    if timestamp is None or not signatures:
        raise SignatureError(
            f"malformed {SIGNATURE_HEADER} header: expected t=<unix>,{SIGNATURE_VERSION}=<hex>"
        )
    return timestamp, signatures


def check_timestamp(timestamp_s: int, now_s: float, tolerance_s: int) -> None:
    """``SignatureError`` unless ``timestamp_s`` is within ``tolerance_s`` of ``now_s``."""
    if abs(now_s - timestamp_s) > tolerance_s:
        raise SignatureError(
            f"signature timestamp {timestamp_s} is more than {tolerance_s} s from the "
            f"service's clock ({int(now_s)})"
        )


def matches(
    signatures: Iterable[bytes], secrets_: Iterable[str], timestamp_s: int, body: bytes
) -> bool:
    """Whether any signature is ``body``'s under any of ``secrets_`` (each compared in constant
    time; every pair is compared, so the time does not tell which secret matched)."""
    message = str(timestamp_s).encode("ascii") + b"." + body
    expected = [_mac(secret, message) for secret in secrets_]
    found = False
    for signature in signatures:
        for mac in expected:
            found |= hmac.compare_digest(signature, mac)
    return found


def shopify_hmac(secret: str, body: bytes) -> str:
    """Shopify's ``X-Shopify-Hmac-Sha256`` of ``body``: base64 HMAC-SHA256."""
    return base64.b64encode(_mac(secret, body)).decode("ascii")


def shopify_matches(header: str | None, secrets_: Iterable[str], body: bytes) -> bool:
    """Whether ``header`` is Shopify's signature of ``body`` under any of ``secrets_``."""
    if header is None or len(header) > MAX_HEADER_CHARS:
        return False
    try:
        given = base64.b64decode(header.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    found = False
    for secret in secrets_:
        found |= hmac.compare_digest(given, _mac(secret, body))
    return found
