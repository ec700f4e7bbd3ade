"""Ids of stored rows: UUIDv7 (RFC 9562), time-ordered.

A UUIDv4 key lands on a random leaf of its B-tree index: every insert dirties another page of
every index the id is in (the primary key, ``order_events.order_id``, ``trip_stops.order_id``,
...), each page a 4 KiB frame of the SQLite WAL and of its checkpoint. A UUIDv7 begins with the
Unix time in milliseconds, so new ids append to the right-hand leaf: a group commit of eight
order intakes writes a quarter less (``docs/load.md``, session 8). Its 74 random bits keep ids
unguessable enough to be no help to an attacker (they are not credentials: every read is
checked against the caller's shop), and its time is the row's creation, public anyway.
"""

from __future__ import annotations

import os
import time
import uuid

_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0b10 << 62
_RAND_A_MASK = (1 << 12) - 1
_RAND_B_MASK = (1 << 62) - 1


def uuid7_at(unix_ms: int, random_bits: int) -> uuid.UUID:
    """The UUIDv7 of ``unix_ms`` (48 bits) with ``random_bits`` (74 used: 12 ``rand_a``, 62
    ``rand_b``)."""
    if not 0 <= unix_ms < 1 << 48:
        raise ValueError(f"unix_ms {unix_ms} does not fit 48 bits")
    rand_a = (random_bits >> 62) & _RAND_A_MASK
    rand_b = random_bits & _RAND_B_MASK
    return uuid.UUID(int=(unix_ms << 80) | _VERSION_7 | (rand_a << 64) | _VARIANT_RFC | rand_b)


def new_id() -> uuid.UUID:
    """A fresh UUIDv7 for a new row: now's milliseconds and 74 random bits."""
    return uuid7_at(time.time_ns() // 1_000_000, int.from_bytes(os.urandom(10), "big"))
