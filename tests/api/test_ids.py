"""Tests of api/ids.py: UUIDv7 layout by RFC 9562, time order, uniqueness."""

from __future__ import annotations

import time
import uuid

import pytest

from api.ids import new_id, uuid7_at


def test_the_layout_is_rfc_9562_version_7() -> None:
    # RFC 9562, appendix A.6: 2022-02-22 19:22:22 UTC with the example's random bits.
    example = uuid.UUID("017F22E2-79B0-7CC3-98C4-DC0C0C07398F")
    rand_a = 0xCC3
    rand_b = example.int & ((1 << 62) - 1)
    assert uuid7_at(0x017F22E279B0, (rand_a << 62) | rand_b) == example
    assert example.version == 7
    assert example.variant == uuid.RFC_4122


def test_a_new_id_carries_the_time_of_its_making() -> None:
    before_ms = time.time_ns() // 1_000_000
    made = new_id()
    after_ms = time.time_ns() // 1_000_000
    assert made.version == 7 and made.variant == uuid.RFC_4122
    assert before_ms <= made.int >> 80 <= after_ms


def test_ids_of_later_milliseconds_sort_later_as_their_stored_hex() -> None:
    earlier = [uuid7_at(1_700_000_000_000, bits) for bits in (0, (1 << 74) - 1, 12345)]
    later = uuid7_at(1_700_000_000_001, 0)
    assert all(one.hex < later.hex for one in earlier)


def test_new_ids_are_unique() -> None:
    assert len({new_id() for _ in range(10_000)}) == 10_000


def test_a_time_beyond_48_bits_is_refused() -> None:
    with pytest.raises(ValueError, match="48 bits"):
        uuid7_at(1 << 48, 0)
